"""igny8ctl: administration and data-integrity toolkit for igny8 databases."""

__version__ = "0.1.0"
