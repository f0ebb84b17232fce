"""A minimal igny8: its tenant models on the database ``IGNY8_DJANGO_DATABASE_URL`` names
(``postgresql://user@host:port/name`` or ``sqlite:///path``)."""

import os
from urllib.parse import unquote, urlsplit

_URL = os.environ["IGNY8_DJANGO_DATABASE_URL"]
if _URL.startswith("sqlite:///"):
    _DATABASE = {"ENGINE": "django.db.backends.sqlite3", "NAME": _URL[len("sqlite:///"):]}
else:
    _PARTS = urlsplit(_URL)
    _DATABASE = {"ENGINE": "django.db.backends.postgresql", "NAME": _PARTS.path[1:],
                 "USER": unquote(_PARTS.username or ""),
                 "PASSWORD": unquote(_PARTS.password or ""), "HOST": _PARTS.hostname or "",
                 "PORT": str(_PARTS.port or "")}

SECRET_KEY = "igny8ctl-tests-only"
DEBUG = False
USE_TZ = True
DATABASES = {"default": _DATABASE}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "igny8_core_auth.User"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "igny8_core.auth",
    "igny8_core.planner",
    "igny8_core.system",
]
