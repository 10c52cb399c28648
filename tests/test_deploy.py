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
