"""The journal shared by fixes, cluster and repair: tables, runs, the writer, and undo."""
