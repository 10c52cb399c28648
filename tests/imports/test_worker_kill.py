"""A real worker process killed in the middle of an import: nothing half-written, and a new
worker resumes after the last committed batch without duplicating anyone."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import pytest
from django.db.models import Count

from imports import services
from imports.models import ImportJob
from imports.selectors import stale_jobs
from imports.tasks import run_import
from personas.models import AuditEvent, Persona
from tests.worker import ROOT, database_url, run_worker_batch

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 6000


def _start_worker() -> subprocess.Popen:
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.test_settings",
        DATABASE_URL=database_url(),
        TASK_BACKEND="database",
        IMPORTS_BATCH_SIZE="100",
    )
    env.pop("SQLITE_TEST_NAME", None)
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "db_worker",
            "--backend",
            "database",
            "--no-startup-delay",
            "--no-reload",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_killed_worker_leaves_whole_batches_and_the_import_resumes(settings):
    text = "First Name,Mobile,E-mail\n" + "".join(
        f"P{n},+1202{5550000 + n},p{n}@example.com\n" for n in range(ROWS)
    )
    job = services.upload(io.BytesIO(text.encode()), name="big.csv", user=None)
    job.status = ImportJob.Status.PREVIEWED
    job.save()
    run_import.using(backend="database").enqueue(job.pk)

    worker = _start_worker()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status == "running" and 500 <= job.rows_done < ROWS - 1000:
                break
            assert worker.poll() is None, worker.stderr.read()[-2000:]
            time.sleep(0.05)
        else:
            pytest.fail(f"the import never got going: {job.status} {job.rows_done}")
        os.killpg(worker.pid, signal.SIGKILL)  # no clean-up, as when a machine dies
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)

    job.refresh_from_db()
    assert job.status == "running" and 0 < job.rows_done < ROWS
    # Only whole, committed batches: personas, audit events and counters agree.
    assert Persona.objects.count() == job.created == job.rows_done
    assert job.rows_done % 100 == 0
    assert AuditEvent.objects.filter(actor_kind="import").count() == job.rows_done

    # The stalled job is found (no heartbeat) and queued again; a new worker finishes it.
    settings.IMPORTS_STALE_SECONDS = 0
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=job.heartbeat_at)
    time.sleep(0.01)
    assert stale_jobs() == [job.pk]  # what the history page and resume_stale() look for
    run_import.using(backend="database").enqueue(job.pk)
    proc = run_worker_batch()
    assert proc.returncode == 0, proc.stderr[-2000:]

    job.refresh_from_db()
    assert job.status == "completed"
    assert job.created == ROWS and job.counted == ROWS
    assert Persona.objects.count() == ROWS
    dupes = Persona.objects.values("phone").annotate(n=Count("id")).filter(n__gt=1)
    assert not dupes.exists()
    assert AuditEvent.objects.filter(actor_kind="import", action="created").count() == ROWS
