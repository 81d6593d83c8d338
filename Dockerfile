# syntax=docker/dockerfile:1
# One image for every process of compose.yaml: web (gunicorn, the default command), worker and beat
# (celery -A config ...) and the one-off migrate step (python manage.py migrate). No secret is baked in:
# SECRET_KEY, ENCRYPTION_KEYS, ALLOWED_HOSTS and DATABASE_URL come from the environment at run time
# (with DEBUG off the settings refuse to start without them, see README "Configuration").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    DEBUG=false \
    PORT=8000

WORKDIR /app

# An unprivileged user with a fixed numeric id (Kubernetes' runAsNonRoot can verify a numeric USER).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

# Every pinned requirement is a wheel (psycopg[binary] brings its own libpq): no compiler in the image.
# The connector drivers are an optional extra: build with --build-arg CONNECTORS=none to leave them out
# (those types then answer CONNECTOR_UNAVAILABLE naming the package).
ARG CONNECTORS=all
COPY requirements.txt requirements-connectors.txt ./
RUN pip install -r requirements.txt \
 && if [ "$CONNECTORS" = all ]; then pip install -r requirements-connectors.txt; fi

# The code stays owned by root (read-only to the app); only var/ (file sources, beat's schedule, the metrics
# directory of PROMETHEUS_MULTIPROC_DIR) is writable.
COPY . .

# Static files (admin, Swagger UI, Redoc assets) are collected at build with the DEBUG-off storage
# (WhiteNoise's manifest). The settings need secrets to load with DEBUG off: throwaway values, made
# for this step alone (they live in no layer and no image environment).
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    ENCRYPTION_KEYS="build:$(python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip(chr(61)))')" \
    python manage.py collectstatic --noinput
RUN mkdir -p var/files var/metrics && chown -R app:app var

USER 10001:10001

EXPOSE 8000

# Liveness only (/healthz: the process answers). Readiness (/readyz: database, migrations, broker) is for
# the load balancer or orchestrator deciding where to send traffic, not a reason to restart the container.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)" || exit 1

# gunicorn.conf.py loads the settings in the master (a missing secret stops it with one line, before any
# worker forks). With no bind configured gunicorn listens on 0.0.0.0:$PORT; WEB_CONCURRENCY sets the workers.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "--timeout", "60", "config.wsgi:application"]
