"""Background work for flows: a batch of runs per task; a wake-up task for waiting runs."""

from __future__ import annotations

import datetime as dt

from django_tasks import task

from . import engine, enrolment


@task()
def run_flow_batch(run_ids: list[int]) -> int:
    return engine.advance_batch(run_ids)


@task()
def wake_runs() -> int:
    engine.resume_stalled()
    return engine.resume_due()


@task()
def run_enrolment(enrolment_id: int) -> int:
    """A confirmed bulk enrolment (``flows.enrolment.run``): only its id travels in the queue,
    never the search that chose its personas."""
    return enrolment.run(enrolment_id=enrolment_id)


def _queue_runs(run_ids: list[int], backend: str) -> None:
    run_flow_batch.using(backend=backend).enqueue(run_ids)


def _queue_wake(when: dt.datetime) -> None:
    wake_runs.using(run_after=when).enqueue()


# The engine queues runs and wake-ups through these (it does not import this module).
engine.use_queue(engine.Queue(runs=_queue_runs, wake=_queue_wake))
