"""WSGI entry point (gunicorn in `make serve`, README "Deploying")."""

import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagwarden.settings")

application = get_wsgi_application()

# A server without DEBUG must have its own secret key (README, Configuration): sessions,
# CSRF tokens and password-reset links signed with the public development key are forgeable.
if not settings.DEBUG and getattr(settings, "DEVELOPMENT_SECRET_KEY", None) == settings.SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (README, Configuration).")
