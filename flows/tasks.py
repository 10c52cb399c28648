"""Background work for flows: a batch of runs per task; a wake-up task for waiting runs."""

from __future__ import annotations

from django_tasks import task


@task()
def run_flow_batch(run_ids: list[int]) -> int:
    from .engine import advance_batch

    return advance_batch(run_ids)


@task()
def wake_runs() -> int:
    from .engine import resume_due, resume_stalled

    resume_stalled()
    return resume_due()


@task()
def run_enrolment(enrolment_id: int) -> int:
    """A confirmed bulk enrolment (``flows.enrolment.run``): only its id travels in the queue,
    never the search that chose its personas."""
    from .enrolment import run

    return run(enrolment_id=enrolment_id)
