# Personas — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEMO_PERSONAS ?= 3000

.PHONY: run test install lint format bench worker clean lock audit

# Reproducible installs: every version pinned in constraints.txt (refresh with `make lock`).
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

## make run: SQLite, demo data (first time only), demo users, web + task worker on :8000
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --personas $(DEMO_PERSONAS) --if-empty
	$(PY) manage.py housekeeping --schedule
	@echo "Serving http://127.0.0.1:8000  (Ctrl-C stops the web server and the worker)"
	@trap 'kill 0' INT TERM EXIT; \
	  $(PY) manage.py db_worker --queue-name default & \
	  $(PY) manage.py runserver 127.0.0.1:8000 --noreload

worker: install
	$(PY) manage.py db_worker

## make test: the whole suite (SQLite by default, PostgreSQL when DATABASE_URL is set) + ruff
test: install
	@$(PY) scripts/find_chromium.py
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) scripts/check_imports.py
	$(PY) -m pytest -q
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) bench/search.py

lock: install
	$(PIP) freeze --exclude-editable | grep -v '^-e' > constraints.txt

## make audit: known-vulnerability audit of the pinned dependencies (needs PyPI's JSON API)
audit: install
	$(VENV)/bin/pip-audit --progress-spinner off -r constraints.txt --no-deps --disable-pip

clean:
	rm -rf $(VENV) var staticfiles screenshots
