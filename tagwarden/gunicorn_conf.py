"""gunicorn configuration for `make serve` (README, Deploying), every value from the environment.

HOST, PORT                where to listen (0.0.0.0:8000)
WEB_CONCURRENCY           worker processes (2 × CPUs + 1, at most 8)
GUNICORN_THREADS          threads per worker (4; 1 means plain sync workers)
GUNICORN_TIMEOUT          seconds before a silent worker is restarted (30)

Each thread may hold one database connection (CONN_MAX_AGE), so PostgreSQL needs at least
workers × threads connections per server, plus a few for management commands.
"""

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = f"{os.environ.get('HOST') or '0.0.0.0'}:{_int('PORT', 8000)}"
workers = _int("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8))
threads = _int("GUNICORN_THREADS", 4)
worker_class = "gthread" if threads > 1 else "sync"
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = 30
keepalive = 5  # a load balancer reuses connections
# tagwarden.request logs every request (with principal and request id); no second access log.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# gunicorn's control socket has one default path per user: two servers on a host would share it.
control_socket_disable = True
wsgi_app = "tagwarden.wsgi:application"
