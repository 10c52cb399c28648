"""Deployment settings: check --deploy is clean, a missing SECRET_KEY is an error, and SQLite
connections are set up for a web server and a worker side by side."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    base["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_passes_with_production_settings():
    proc = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_ENV="production",
        SECRET_KEY="x" * 20 + "-production-secret-for-the-check-only-0123456789",
        ALLOWED_HOSTS="personas.example.com",
        CSRF_TRUSTED_ORIGINS="https://personas.example.com",
        # Production needs a shared cache for its rate limits (personas.E002); checks never
        # connect to it.
        REDIS_URL="redis://redis.example.internal:6379/0",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


def test_production_without_a_secret_key_refuses_to_start():
    proc = run_manage("check", DJANGO_ENV="production", ALLOWED_HOSTS="personas.example.com")
    assert proc.returncode != 0
    assert "SECRET_KEY must be set" in proc.stderr


@pytest.mark.django_db
def test_sqlite_connections_use_wal_with_a_roomy_checkpoint():
    """The web server reads while the worker writes (WAL), and bulk writers committing every
    batch do not copy the log back after every few batches."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite connection settings")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == 10_000
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 1  # NORMAL


def test_the_web_process_access_log_never_carries_query_strings_or_referers(tmp_path):
    """The Procfile's gunicorn, really started: a request whose query string and Referer hold
    a phone number and an email is logged by path, status and request id only."""
    import socket
    import time
    import urllib.error
    import urllib.request

    procfile = (ROOT / "Procfile").read_text()
    assert "web: gunicorn -c config/gunicorn.py config.wsgi" in procfile
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings", "PORT": str(port), "WEB_CONCURRENCY": "1"}
    log = tmp_path / "web.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "config/gunicorn.py"]
            + ["--bind", f"127.0.0.1:{port}", "config.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/no-such-page/?q=%2B12025550123&email=jo%40example.com",
                headers={
                    "Referer": f"http://127.0.0.1:{port}/personas/?q=jo%40example.com",
                    "X-Request-ID": "req-abc-123",
                },
            )
            for _ in range(100):
                try:
                    urllib.request.urlopen(request, timeout=5)  # noqa: S310 (local server)
                except urllib.error.HTTPError as exc:
                    assert exc.code == 404
                    break
                except OSError:
                    time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(timeout=20)
    text = log.read_text()
    line = next(x for x in text.splitlines() if "req-abc-123" in x)
    assert '"GET /no-such-page/" 404' in line
    for secret in ("12025550123", "example.com", "q=", "personas/?"):
        assert secret not in text
