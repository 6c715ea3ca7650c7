"""Settings for the test suite: the real settings, with a fast password hasher."""

from tagwarden.settings import *  # noqa: F403

# Tests import the WSGI application (schema fuzzing), which refuses the development key.
SECRET_KEY = "tagwarden-test-suite-key-not-secret-and-not-for-any-server"

# PBKDF2 costs ~0.3 s a user; tests create thousands of users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# No `collectstatic` before tests: plain storage, so pages render without the hashed manifest.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
