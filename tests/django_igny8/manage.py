"""Django's command line for the igny8-shaped test project (``IGNY8_DJANGO_DATABASE_URL``)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "igny8site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
