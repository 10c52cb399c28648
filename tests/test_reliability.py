"""Reliability on PostgreSQL: concurrent writers lose nothing, workers never run a task twice,
and a worker killed in the middle of flow steps leaves nothing half-written."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import connection, transaction
from django_tasks_db.models import DBTaskResult

from flows import engine, services
from flows.models import Flow, FlowRun, FlowStepLog
from imports import pipeline
from imports import services as import_services
from imports.models import ImportJob
from personas.models import AuditEvent, OutboundMessage
from personas.services import changes
from personas.services.changes import Actor, AttributeOp, Changeset
from personas.tasks import send_outbound_message
from tests.concurrency import raised, run_together
from tests.personas.factories import OutboundMessageFactory, PersonaFactory
from tests.worker import ROOT, database_url, run_worker_batch

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks and several worker processes need PostgreSQL (run with DATABASE_URL)",
    ),
]


def test_staff_edits_flow_steps_and_an_import_batch_on_one_persona_lose_nothing():
    persona = PersonaFactory(phone="+12025550123", attributes={})
    run_ids = []
    for i in range(5):
        flow = Flow.objects.create(
            name=f"Tagger {i}",
            trigger={"type": "manual"},
            reentry="each",
            definition={
                "initial_state": "tag",
                "states": [
                    {
                        "name": "tag",
                        "type": "persona-update",
                        "properties": {"set": [{"key": f"flow_{i}", "value": "yes"}]},
                        "transitions": [{"event": "next"}],
                    }
                ],
            },
        )
        services.publish(flow, user=None)
        flow.refresh_from_db()
        with transaction.atomic():
            run_ids += engine.enroll(flow, [persona.pk])
    job = import_services.upload(
        io.BytesIO(b"Mobile,Import Key\n2025550123,from-import\n"), name="one.csv", user=None
    )
    job.status = ImportJob.Status.PREVIEWED
    job.existing = "overwrite"
    job.save()

    def staff(i):
        def go():
            changes.apply(
                persona.pk,
                Changeset(set=[AttributeOp(f"staff_{i}", i)]),
                Actor.system(f"staff {i}"),
            )

        return go

    def flows():
        engine.advance_batch(run_ids)

    def importer():
        pipeline.run(job.pk)

    assert raised(run_together(*[staff(i) for i in range(5)], flows, importer)) == []
    persona.refresh_from_db()
    keys = set(persona.attributes)
    assert {f"staff_{i}" for i in range(5)} <= keys
    assert {f"flow_{i}" for i in range(5)} <= keys
    assert persona.attributes["import_key"] == "from-import"
    assert AuditEvent.objects.filter(persona=persona).count() == 5 + 5 + 1
    assert persona.version == 1 + 11


def test_several_workers_never_run_the_same_task_twice():
    # Double opt-in requests go out while the number's request is pending.
    persona = PersonaFactory(phone="+12025550124", text_consent="pending")
    messages = [
        OutboundMessageFactory(persona=persona, to=persona.phone, transactional=True)
        for _ in range(60)
    ]
    for message in messages:
        send_outbound_message.using(backend="database").enqueue(message.pk)
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.test_settings",
        DATABASE_URL=database_url(),
        TASK_BACKEND="database",
    )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "db_worker",
                "--batch",
                "--backend",
                "database",
                "--no-startup-delay",
                "--no-reload",
                "--worker-id",
                f"w{i}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    results = list(DBTaskResult.objects.all())
    assert len(results) == 60
    assert all(r.status == "SUCCESSFUL" and len(r.worker_ids) == 1 for r in results)
    assert all(r.return_value == "sent" for r in results)  # never "skipped": ran once each
    assert OutboundMessage.objects.filter(status="sent").count() == 60


def test_a_worker_killed_during_flow_steps_leaves_whole_steps_and_resumes():
    personas = [PersonaFactory(attributes={}) for _ in range(1500)]
    flow = Flow.objects.create(
        name="Three steps",
        trigger={"type": "manual"},
        reentry="each",
        definition={
            "initial_state": "a",
            "states": [
                {
                    "name": "a",
                    "type": "persona-update",
                    "properties": {"set": [{"key": "step_a", "value": "1"}]},
                    "transitions": [{"event": "next", "next": "b"}],
                },
                {
                    "name": "b",
                    "type": "persona-update",
                    "properties": {"set": [{"key": "step_b", "value": "1"}]},
                    "transitions": [{"event": "next", "next": "c"}],
                },
                {
                    "name": "c",
                    "type": "persona-update",
                    "properties": {"set": [{"key": "step_c", "value": "1"}]},
                    "transitions": [{"event": "next"}],
                },
            ],
        },
    )
    services.publish(flow, user=None)
    flow.refresh_from_db()
    from flows.tasks import run_flow_batch

    runs = FlowRun.objects.bulk_create(
        FlowRun(
            flow=flow,
            version=flow.current_version,
            persona=p,
            current_state="a",
            context={"trigger": {"type": "manual"}},
        )
        for p in personas
    )
    ids = [r.pk for r in runs]
    for start in range(0, len(ids), 50):
        run_flow_batch.using(backend="database").enqueue(ids[start : start + 50])
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.test_settings",
        DATABASE_URL=database_url(),
        TASK_BACKEND="database",
    )
    worker = subprocess.Popen(
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
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = FlowStepLog.objects.count()
            if 300 <= done < 3 * len(ids) - 600:
                break
            time.sleep(0.02)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert FlowRun.objects.exclude(status="completed").exists(), "killed too late to test"
    _assert_consistent(ids)
    # A new worker picks the stalled runs up; every step ran exactly once.
    assert (
        engine.resume_stalled(older_than=__import__("datetime").timedelta(0), backend="database")
        > 0
    )
    proc = run_worker_batch()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert FlowRun.objects.filter(status="completed").count() == len(ids)
    assert FlowStepLog.objects.count() == 3 * len(ids)
    assert AuditEvent.objects.filter(actor_kind="flow").count() == 3 * len(ids)
    _assert_consistent(ids)


def _assert_consistent(run_ids):
    """Each run's position, its step logs and its persona's attributes agree."""
    position = {"a": 0, "b": 1, "c": 2}
    for run in FlowRun.objects.filter(pk__in=run_ids).select_related("persona"):
        logs = list(FlowStepLog.objects.filter(run=run).values_list("step", flat=True))
        assert run.steps_taken == len(logs)
        done = len(logs) if run.status == "completed" else position[run.current_state]
        assert len(logs) == done
        attrs = run.persona.attributes
        assert [k for k in ("step_a", "step_b", "step_c") if k in attrs] == [
            f"step_{s}" for s in logs
        ]
        events = AuditEvent.objects.filter(actor_kind="flow", actor_ref__run=run.pk).count()
        assert events == len(logs)
