"""Flow benchmark: enrol N personas into a published persona-update → split-based-on →
update-profile-traits flow and let real task workers (``db_worker``) run them.

Prints runs/s and step applications/s with 1 and with 2 workers, checks the audit trail is
complete, and prints beside it the raw limit of the same database: a plain batched UPDATE of
the same personas' attributes.

    .venv/bin/python bench/flows.py --personas 100000                      # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/personas_bench_flows \\
        .venv/bin/python bench/flows.py --personas 100000                  # PostgreSQL

The database is wiped first (a SQLite file in var/, or the PostgreSQL database given).
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFINITION = {
    "description": "Benchmark",
    "initial_state": "mark_vip",
    "states": [
        {
            "name": "mark_vip",
            "type": "persona-update",
            "properties": {
                "set": [{"key": "vip_status", "value": "true"}],
                "remove": [{"key": "temp_flag"}],
            },
            "transitions": [{"event": "next", "next": "by_points"}],
        },
        {
            "name": "by_points",
            "type": "split-based-on",
            "properties": {
                "input": "{{persona.points}}",
                "conditions": [{"operator": "greater_than", "value": "100"}],
            },
            "transitions": [
                {"event": "noMatch", "next": "update_traits"},
                {"event": "match_1", "next": "update_traits"},
            ],
        },
        {
            "name": "update_traits",
            "type": "update-profile-traits",
            "properties": {
                "profile_connect_sid": "{{trigger.persona.id}}",
                "traits": [{"key": "segment", "value": "bench-{{flow.run_id}}"}],
            },
            "transitions": [
                {"event": "profileUpdated"},
                {"event": "profileNotFound"},
                {"event": "failed"},
            ],
        },
    ],
}


def setup(url: str | None) -> str:
    if not url:
        db = ROOT / "var" / "bench_flows.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{db}"
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["TASK_BACKEND"] = "database"
    os.environ["DEBUG"] = "0"  # as deployed: no query log (the workers inherit this)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    call_command("migrate", verbosity=0)
    return url


def seed(n: int) -> None:
    from django.core.management import call_command

    call_command("seed_demo", personas=n, verbosity=0)


def raw_limit(ids: list[int]) -> float:
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            placeholders = ",".join(["%s"] * len(chunk))
            cursor.execute(
                f"UPDATE personas_persona SET version = version + 1 WHERE id IN ({placeholders})",
                chunk,
            )
    elapsed = time.perf_counter() - started
    return len(ids) / elapsed


def run_once(workers: int, url: str, ids: list[int], label: str) -> dict:
    from django.db import transaction
    from django_tasks_db.models import DBTaskResult

    from flows import engine, services
    from flows.models import Flow, FlowRun, FlowStepLog
    from personas.models import AuditEvent

    # Each pass sets its own value, so its persona-update step really changes every persona
    # (an audit event each) even after an earlier pass ran the same flow.
    definition = copy.deepcopy(DEFINITION)
    definition["states"][0]["properties"]["set"][0]["value"] = f"true-{label}"
    flow = Flow.objects.create(
        name=f"Bench {label}", definition=definition, trigger={"type": "manual"}, reentry="each"
    )
    services.publish(flow, user=None)
    flow.refresh_from_db()
    DBTaskResult.objects.all().delete()
    audit_before = AuditEvent.objects.filter(actor_kind="flow").count()
    with transaction.atomic():
        engine.enroll(flow, ids, trigger={"type": "bench"})
    tasks = DBTaskResult.objects.count()
    env = dict(
        os.environ,
        DATABASE_URL=url,
        TASK_BACKEND="database",
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
    )
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "db_worker",
                "--batch",
                "--no-startup-delay",
                "--no-reload",
                "--worker-id",
                f"bench-{label}-{i}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            print(err.decode()[-2000:])
    elapsed = time.perf_counter() - started
    runs = FlowRun.objects.filter(flow=flow)
    completed = runs.filter(status="completed").count()
    steps = FlowStepLog.objects.filter(run__flow=flow).count()
    audit = AuditEvent.objects.filter(actor_kind="flow").count() - audit_before
    # Every step application that changed a persona has its audit event.
    changed_steps = FlowStepLog.objects.filter(run__flow=flow, outputs__has_key="changes").count()
    return {
        "workers": workers,
        "tasks": tasks,
        "runs": completed,
        "steps": steps,
        "seconds": elapsed,
        "runs_per_s": completed / elapsed,
        "steps_per_s": steps / elapsed,
        "audit_events": audit,
        "audit_complete": audit == changed_steps and completed == len(ids),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--personas", type=int, default=100_000)
    args = parser.parse_args()
    url = setup(os.environ.get("DATABASE_URL"))
    from django.db import connection

    from personas.models import Persona

    seed(args.personas)
    ids = list(
        Persona.objects.filter(status="active")
        .order_by("id")
        .values_list("id", flat=True)[: args.personas]
    )
    print(f"{connection.vendor}: {len(ids):,} personas enrolled per run")
    raw = raw_limit(ids)
    print(f"  raw limit (batched UPDATE of the same personas): {raw:,.0f} rows/s")
    for workers in (1, 2):
        r = run_once(workers, url, ids, f"w{workers}")
        print(
            f"  {workers} worker{'s' if workers > 1 else ' '}: {r['runs_per_s']:,.0f} runs/s, "
            f"{r['steps_per_s']:,.0f} step applications/s ({r['steps']:,} steps in "
            f"{r['seconds']:.1f} s, {r['tasks']} tasks); audit events {r['audit_events']:,} "
            f"({'complete' if r['audit_complete'] else 'INCOMPLETE'}); target ≥ 5,000 steps/s: "
            f"{'MEETS' if r['steps_per_s'] >= 5000 else 'BELOW'}"
        )


if __name__ == "__main__":
    main()
