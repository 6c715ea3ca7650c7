"""Tagwarden settings, every one from the environment (README, Configuration, lists them).

Development and the test suite need none. Production (`make serve`, README "Deploying") sets
at least SECRET_KEY and ALLOWED_HOSTS, and HTTPS=1 behind TLS; `manage.py check --deploy`
then passes (tests/production/test_deploy_check.py runs it).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}.") from None


DEBUG = _env_bool("DEBUG", default=False)
# Only development and the test suite may run on the well-known development key: the WSGI
# entry point (tagwarden/wsgi.py, what `make serve` runs) refuses it when DEBUG is off, and
# `manage.py check --deploy` flags it.
DEVELOPMENT_SECRET_KEY = "django-insecure-tagwarden-development-key"
SECRET_KEY = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY

ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS")

# Behind TLS (HTTPS=1): cookies only over HTTPS, HSTS, and plain-HTTP requests redirected,
# except the health checks a load balancer sends over plain HTTP.
HTTPS = _env_bool("HTTPS", default=False)
SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", default=HTTPS)
CSRF_COOKIE_SECURE = _env_bool("CSRF_COOKIE_SECURE", default=HTTPS)
SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", default=HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = _env_bool("SECURE_HSTS_PRELOAD", default=False)
# A TLS-terminating proxy says the original scheme in X-Forwarded-Proto; trust it only when
# the proxy sets (and overwrites) that header.
if _env_bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "tagwarden.apps.TagwardenAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "rules.apps.AutodiscoverRulesConfig",
    "organisations",
    "projects",
    "environments",
    "features",
    "permissions",
    "impact",
    "permission_documents",
    "audit",
    "sdk",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outermost after security: every response (even a 500) carries X-Request-ID and is logged.
    "tagwarden.middleware.RequestLogMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tagwarden.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "tagwarden" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "tagwarden.wsgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
        conn_health_checks=_env_bool("CONN_HEALTH_CHECKS", default=True),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite waits instead of failing on concurrent writes (docs/CONCURRENCY.md): every
    # transaction takes the write lock when it begins (IMMEDIATE), so a reader never has to
    # upgrade to a writer mid-transaction (the "database is locked" that no busy timeout can
    # wait out), and a writer waits up to `timeout` seconds for the lock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _env_bool(
    "DB_PREPARED_STATEMENTS", default=True
):
    # Parameters bound by the server, and a query run 5 times on a connection prepared there
    # (psycopg's automatic prepared statements): PostgreSQL then plans the engine's policy
    # query once per connection instead of at every decision, where planning cost more than
    # running it (docs/PERFORMANCE.md, "Decisions"). Kept connections (CONN_MAX_AGE) keep
    # their prepared statements. Off (`DB_PREPARED_STATEMENTS=0`) behind a pooler that
    # cannot keep them, such as PgBouncer in transaction mode.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"server_side_binding": True, "prepare_threshold": 5}
    )

# Policies kept by each process across requests, under their organisation's stamp, read again
# at every request (docs/PERMISSIONS.md, "Policies kept across requests"). Off: every request
# loads its policies from the grants.
SHARED_POLICIES = _env_bool("SHARED_POLICIES", default=True)

# Login throttling counts attempts in this cache. It lives in the database so every process
# on every host shares the counters (`make serve` runs `createcachetable`; the test runner
# creates the table itself).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "tagwarden_cache",
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # The engine answers object permissions through rules predicates (permissions/rules.py).
    "rules.permissions.ObjectPermissionBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
# WhiteNoise serves STATIC_ROOT (filled by `collectstatic`, which `make serve` runs) with
# compressed, content-hashed names.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Hashed, expiring tokens (django-rest-knox): `Authorization: Token <key>`.
        "organisations.authentication.ExpiringTokenAuthentication",
        "organisations.authentication.OrganisationAPIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's parsers, refusing what the databases cannot store (docs/API.md, Conventions).
    "DEFAULT_PARSER_CLASSES": [
        "tagwarden.api.parsers.JSONParser",
        "tagwarden.api.parsers.FormParser",
        "tagwarden.api.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "tagwarden.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tagwarden.api.exceptions.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Client address for throttling: REMOTE_ADDR unless NUM_PROXIES trusted proxies append
    # X-Forwarded-For (DRF's default, None, would trust any client-sent X-Forwarded-For).
    "NUM_PROXIES": _env_int("NUM_PROXIES", 0),
    "DEFAULT_THROTTLE_RATES": {
        "login_username": os.environ.get("LOGIN_THROTTLE_USERNAME", "5/min"),
        "login_address": os.environ.get("LOGIN_THROTTLE_ADDRESS", "20/min"),
    },
}

TOKEN_TTL = _env_int("TOKEN_TTL", 10 * 60 * 60)
if TOKEN_TTL <= 0:
    raise ImproperlyConfigured("TOKEN_TTL must be a positive number of seconds.")
REST_KNOX = {
    "TOKEN_TTL": timedelta(seconds=TOKEN_TTL),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tagwarden API",
    "DESCRIPTION": "Tag-scoped, role-based access control for feature flags.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Path converters (tagwarden/converters.py): what matches no route is a 404.
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "env_key": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tagwarden.api.schema.explain_one_or_many",
        "tagwarden.api.schema.unsupported_media_type",
    ],
}

API_KEY_CUSTOM_HEADER = "HTTP_AUTHORIZATION"

# LOG_FORMAT=json: one JSON object a line (python-json-logger), with the request id on every
# record logged while a request runs; text otherwise. tagwarden.request logs one line a request.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'text' or 'json', got {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "tagwarden.middleware.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {
        "tagwarden.request": {"level": os.environ.get("REQUEST_LOG_LEVEL", "INFO")},
    },
}
