"""Run the real task worker (``manage.py db_worker``) against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{s['NAME']}"


def run_worker_batch(timeout: float = 120) -> subprocess.CompletedProcess:
    """Drain the "database" task backend's queue in a separate worker process, then return."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.test_settings",
        DATABASE_URL=database_url(),
        TASK_BACKEND="database",
    )
    env.pop("SQLITE_TEST_NAME", None)
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            "db_worker",
            "--batch",
            "--backend",
            "database",
            "--no-startup-delay",
            "--no-reload",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
