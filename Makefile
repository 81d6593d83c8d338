# The two commands of the README: `make run` (serve the demo) and `make test` (the whole suite).
# `make run PORT=8010` serves on another port (default 8000).
PY ?= python3
PORT ?= 8000
VENV ?= .venv
BIN := $(VENV)/bin
LOCAL_NETWORKS := 127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16

.PHONY: run check-port test install lint system-deps fuzz manage

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-connectors.txt | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-connectors.txt
	touch $@

install: $(VENV)/.installed

# Debian packages the tests drive for real: chromium (admin browser tests), openssh-server (tunnels),
# clickhouse-server (the ClickHouse connector's tests start their own instance), node and php with curl
# (the seeds' JavaScript and PHP request examples, replayed by their own runtimes).
SYSTEM_PACKAGES := chromium:chromium openssh-server:/usr/sbin/sshd clickhouse-server:/usr/sbin/clickhouse-server \
	nodejs:node php-cli:php php-curl:/usr/share/doc/php-curl
system-deps:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
		package=$${entry%%:*}; probe=$${entry#*:}; \
		command -v $$probe >/dev/null 2>&1 || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "missing Debian packages:$$missing ('sudo apt-get install$$missing'); their tests skip locally"; fi; \
	fi

LOCAL_ENV := DEBUG=true DATASOURCE_ALLOWED_NETWORKS=$(LOCAL_NETWORKS) SCHEMA_REFRESH_ASYNC=true

# One line and a non-zero exit when PORT is not a port number or 127.0.0.1:PORT cannot be bound (in use,
# or privileged), before anything is installed, migrated or started. SO_REUSEADDR as runserver sets it:
# only a listening socket counts as busy, not a connection in TIME_WAIT.
define CHECK_PORT_PY
import errno, socket, sys
arg = sys.argv[1]
if not (arg.isascii() and arg.isdigit() and 0 < int(arg) < 65536):
    sys.exit(f"make run: PORT={arg} is not a port number (1-65535).")
port = int(arg)
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    sock.bind(("127.0.0.1", port))
except OSError as exc:
    other = port + 1 if port < 65535 else 8000
    if exc.errno == errno.EADDRINUSE:
        sys.exit(f"make run: port {port} on 127.0.0.1 is already in use: stop what listens there, or choose another port (make run PORT={other}).")
    sys.exit(f"make run: cannot listen on 127.0.0.1:{port} ({exc.strerror}): choose another port (make run PORT={other}).")
finally:
    sock.close()
endef
export CHECK_PORT_PY

check-port:
	@$(PY) -c "$$CHECK_PORT_PY" '$(PORT)'

run: check-port install
	@echo ">> Local run: SQLite at ./db.sqlite3, DEBUG on, connection tests may reach loopback and private networks ($(LOCAL_NETWORKS))."
	@echo ">> A Celery worker and beat run beside the web server (broker: a SQLite file under ./var, no server)."
	$(LOCAL_ENV) $(BIN)/python manage.py migrate --noinput
	$(LOCAL_ENV) $(BIN)/python manage.py seed_demo
	@mkdir -p var
	@echo ">> Serving on http://127.0.0.1:$(PORT)/ (make run PORT=... for another port)."
	@trap 'kill 0' INT TERM EXIT; \
	$(LOCAL_ENV) $(BIN)/celery -A config worker --pool=solo --loglevel=WARNING & \
	$(LOCAL_ENV) $(BIN)/celery -A config beat --loglevel=WARNING --schedule var/celerybeat-schedule & \
	$(LOCAL_ENV) $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

# A management command with the local run's settings (what `make run` passes): the same database, cache
# and networks, e.g. make manage ARGS="create_token demo --scopes datasource.read --name ci".
ARGS ?= help
manage: install
	@$(LOCAL_ENV) $(BIN)/python manage.py $(ARGS)

# Three test processes (most tests wait on servers, not the CPU), a module per process at a time (its servers, Redis database and fixtures stay
# its own); each process has its own test database. PYTEST_ARGS=-n0 runs them in one process.
PYTEST_ARGS ?= -n 3 --dist loadfile
test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# schemathesis over every operation of the live server alone (about 3 minutes; `make test` runs it too,
# with its fixed seed). Explore with another seed: `make fuzz FUZZ_SEED=random` (or any integer).
FUZZ_SEED ?= 20251
fuzz: install
	FUZZ_SEED=$(FUZZ_SEED) $(BIN)/python -m pytest -m fuzz tests/core/test_fuzz_schemathesis.py

lint: install
	$(BIN)/ruff check .
