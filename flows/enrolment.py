"""Bulk enrolment: count who a personas-list search would enrol, confirm, then enrol in batches.

Three steps, each its own function:

1. ``count_matching`` says how many personas a search and its filters would enrol *now* and
   in which words to describe them. Nothing is written.
2. ``request_enrolment`` takes the person's confirmation: it counts again, refuses when the
   number is not the one they confirmed (or, above ``FLOWS_ENROL_TYPE_COUNT_ABOVE``, not the
   one they typed), and records one ``FlowEnrolment`` holding the ids it counted.
3. ``run`` (the ``run_enrolment`` task) enrols those ids in batches, recording progress.

Why the ids are resolved at confirmation and not again by the task: the person confirmed a
number, so the job works through exactly the personas behind that number. Personas that join
the search later are not added; personas that stop being eligible before their batch runs
(blocklisted, archived, merged, erased, or enrolled meanwhile in a once-per-persona flow) are
skipped by ``engine.enroll`` and counted as skipped. So a job never enrols more than it was
confirmed for, and never anyone the person could not have seen.

Every count and every id comes from ``selectors.filtered_personas``: active personas staff may
see (never a blocklisted one), the list's search and its filters, less the personas already in
the flow when its published version runs once per persona.

The search text can be personal data (a phone number, an email): it is stored on the job,
behind staff sign-in, and shown on the flow's page; it never goes into a URL, a task argument,
a log line or a flash message.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.formats import date_format

from personas import selectors
from personas.models import Channel, ConsentState, EntrySource, Persona, Store
from personas.roles import Cap, has_cap
from personas.selectors import ListQuery

from . import engine
from .models import Flow, FlowEnrolment, FlowRun

BATCH_SIZE = 1000  # personas enrolled per committed batch
MAX_PERSONAS = 200_000  # one job's most; narrower searches for more
DEFAULT_TYPE_COUNT_ABOVE = 500
# The list-filter fields a job keeps (sorting and paging say nothing about who is enrolled).
FILTER_FIELDS = (
    "q",
    "entry_source",
    "loyalty",
    "channel",
    "consent",
    "store",
    "attr_key",
    "attr_value",
    "created_from",
    "created_to",
    "import_job",
)


class EnrolmentError(Exception):
    """A refusal, in words for the person. ``code``: "inactive", "nobody", "too_many",
    "changed", "typed", "duplicate" or "not_queued"."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class EnrolmentPreview:
    """What confirming would do, counted now.

    ``count``: personas that would be enrolled. ``already``: matching personas left out
    because they are already in this once-per-persona flow. ``description``: who, in words
    ("all personas", "personas matching “kim”, enrolled in loyalty"). ``must_type``: the
    number has to be typed to confirm. ``search_capped``: the search stopped at its
    first matches (``selectors.CANDIDATE_CAP``), so more personas may match than are counted.
    ``too_many``: above ``MAX_PERSONAS``, refused. ``filters``: the filter fields set, as
    text, for the confirmation form to post back."""

    count: int
    already: int
    description: str
    must_type: bool
    search_capped: bool
    too_many: bool
    version: int
    filters: dict[str, str]


def type_count_above() -> int:
    return int(getattr(settings, "FLOWS_ENROL_TYPE_COUNT_ABOVE", DEFAULT_TYPE_COUNT_ABOVE))


# ---------------------------------------------------------------------------------------------
# Counting


def count_matching(*, flow: Flow, user: Any, lq: ListQuery) -> EnrolmentPreview:
    """Count the personas ``lq`` would enrol into ``flow`` now. Writes nothing.

    A handful of queries whatever the number of personas: one count (with the already-enrolled
    ones counted in the same query), the search's index scans when there is search text, and
    the store's name when the store filter is set.

    Raises ``PermissionDenied`` without the edit-flows capability and ``EnrolmentError``
    ("inactive") unless the flow is active and published.
    """
    _check(flow, user)
    matching = selectors.filtered_personas(user=user, lq=lq)
    if _once(flow):
        counts = matching.aggregate(
            total=Count("pk"), already=Count("pk", filter=Q(pk__in=_enrolled(flow)))
        )
        total, already = counts["total"], counts["already"]
    else:
        total, already = matching.count(), 0
    count = total - already
    capped = bool(lq.q.strip()) and selectors.search_candidates(user=user, query=lq.q).capped
    return EnrolmentPreview(
        count=count,
        already=already,
        description=describe(lq),
        must_type=count > type_count_above(),
        search_capped=capped,
        too_many=count > MAX_PERSONAS,
        version=flow.current_version.number,
        filters=filters_of(lq),
    )


def _check(flow: Flow, user: Any) -> None:
    if not has_cap(user, Cap.EDIT_FLOWS):
        raise PermissionDenied("Enrolling personas needs the edit-flows capability.")
    if flow.status != Flow.Status.ACTIVE or flow.current_version is None:
        raise EnrolmentError(
            "Only an active flow can enrol personas: publish it or resume it first.",
            code="inactive",
        )


def _once(flow: Flow) -> bool:
    # The published version's policy is the one ``engine.enroll`` applies.
    return flow.current_version.reentry == Flow.Reentry.ONCE


def _enrolled(flow: Flow) -> QuerySet:
    return FlowRun.objects.filter(flow=flow, dry_run=False).values("persona_id")


def _eligible(*, flow: Flow, user: Any, lq: ListQuery) -> QuerySet[Persona]:
    qs = selectors.filtered_personas(user=user, lq=lq)
    if _once(flow):
        qs = qs.exclude(pk__in=_enrolled(flow))
    return qs


# ---------------------------------------------------------------------------------------------
# Describing a search in words


def filters_of(lq: ListQuery) -> dict[str, str]:
    """The filter fields ``lq`` sets, as the text a form posts: ``{"q": "kim", "loyalty":
    "yes", "created_from": "2025-03-01"}``. Empty ones are left out."""
    out = {}
    for name in FILTER_FIELDS:
        value = getattr(lq, name)
        if isinstance(value, dt.date):
            value = value.isoformat()
        if value not in (None, ""):
            out[name] = str(value)
    return out


def describe(lq: ListQuery) -> str:
    """Who a search selects, in words: "all personas", "personas matching “kim”, enrolled in
    loyalty, created from Mar 1, 2025". Filters the list ignores are not mentioned (a consent
    state only counts with its channel)."""
    parts = []
    if lq.q.strip():
        parts.append(f"matching “{lq.q.strip()}”")
    if lq.entry_source:
        label = dict(EntrySource.choices).get(lq.entry_source, lq.entry_source)
        parts.append(f"whose source is {label}")
    if lq.loyalty == "yes":
        parts.append("enrolled in loyalty")
    elif lq.loyalty == "no":
        parts.append("not enrolled in loyalty")
    if lq.channel and lq.consent:
        channel = dict(Channel.choices).get(lq.channel, lq.channel)
        state = dict(ConsentState.choices).get(lq.consent, lq.consent).lower()
        parts.append(f"with {channel} consent {state}")
    if lq.store:
        name = Store.objects.filter(pk=lq.store).values_list("name", flat=True).first()
        parts.append(f"whose favorite store is {name or 'a deleted store'}")
    if lq.attr_key:
        if lq.attr_value:
            parts.append(f"whose attribute “{lq.attr_key}” is “{lq.attr_value}”")
        else:
            parts.append(f"with the attribute “{lq.attr_key}”")
    if lq.import_job:
        parts.append(f"created by import #{lq.import_job}")
    if lq.created_from and lq.created_to:
        parts.append(f"created between {_day(lq.created_from)} and {_day(lq.created_to)}")
    elif lq.created_from:
        parts.append(f"created on or after {_day(lq.created_from)}")
    elif lq.created_to:
        parts.append(f"created on or before {_day(lq.created_to)}")
    if not parts:
        return "all personas"
    return "personas " + ", ".join(parts)


def _day(day: dt.date) -> str:
    return date_format(day, "M j, Y")


# ---------------------------------------------------------------------------------------------
# Confirming


def _number(text: Any) -> int | None:
    """A number as a person types or a form posts it: "2920", "2,920", "2 920" → 2920."""
    digits = re.sub(r"[\s,._'\u00a0\u202f]", "", str(text if text is not None else ""))
    return int(digits) if digits.isdigit() and len(digits) < 10 else None


@transaction.atomic
def request_enrolment(
    *, flow: Flow, user: Any, lq: ListQuery, confirmed_count: Any, typed: str | None = None
) -> FlowEnrolment:
    """Record a confirmed enrolment; returns the queued ``FlowEnrolment`` (its task is
    queued by ``services.request_enrolment``, which views call).

    ``confirmed_count`` is the number the confirmation page showed (as posted); ``typed`` what
    the person typed, required above ``FLOWS_ENROL_TYPE_COUNT_ABOVE``. The personas are
    counted again under a lock on the flow, and nothing is written unless that count is the
    confirmed one, so a person never starts a different number than they confirmed.

    Raises ``PermissionDenied`` without the edit-flows capability, and ``EnrolmentError``:
    "inactive" (the flow is not active), "nobody" (no persona to enrol), "too_many" (above
    ``MAX_PERSONAS``), "changed" (the count is not the confirmed one), "typed" (the number
    was not typed, or not the right one) or "duplicate" (the same search is already queued
    or running for this flow).
    """
    # Locks the flow row only (its version is on the nullable side of a join): confirmations
    # of one flow take turns, so a double click cannot queue the same job twice.
    flow = (
        Flow.objects.select_for_update(of=("self",))
        .select_related("current_version")
        .get(pk=flow.pk)
    )
    _check(flow, user)
    ids = list(
        _eligible(flow=flow, user=user, lq=lq)
        .order_by("id")
        .values_list("id", flat=True)[: MAX_PERSONAS + 1]
    )
    count = len(ids)
    if count > MAX_PERSONAS:
        raise EnrolmentError(
            f"That is more than {MAX_PERSONAS:,} personas, the most one enrolment takes. "
            "Narrow the search or the filters.",
            code="too_many",
        )
    confirmed = _number(confirmed_count)
    if confirmed is None:
        raise EnrolmentError(
            f"Nothing was enrolled: check the number ({count:,}) and confirm it.",
            code="changed",
        )
    if confirmed != count:
        raise EnrolmentError(
            f"The number of personas to enrol changed since you looked: {confirmed:,} then, "
            f"{count:,} now. Nobody was enrolled: check the new number and confirm again.",
            code="changed",
        )
    if count == 0:
        raise EnrolmentError("No persona matches: there is nobody to enrol.", code="nobody")
    if count > type_count_above():
        got = _number(typed)
        if got is None:
            raise EnrolmentError(
                f"Type the number of personas, {count}, to confirm: above "
                f"{type_count_above():,} personas it has to be typed. Nobody was enrolled.",
                code="typed",
            )
        if got != count:
            raise EnrolmentError(
                f"You typed {got:,}, but {count:,} personas would be enrolled. Nobody was "
                f"enrolled: type {count} to confirm.",
                code="typed",
            )
    filters = filters_of(lq)
    pending = FlowEnrolment.objects.filter(
        flow=flow, status__in=[FlowEnrolment.Status.QUEUED, FlowEnrolment.Status.RUNNING]
    ).only("filters")
    if any(job.filters == filters for job in pending):
        raise EnrolmentError(
            "The same enrolment (same search and filters) is already waiting or running for "
            "this flow: see “Bulk enrolments” on the flow's page.",
            code="duplicate",
        )
    job = FlowEnrolment.objects.create(
        flow=flow,
        created_by=user,
        filters=filters,
        description=describe(lq)[:500],
        confirmed_count=count,
        persona_ids=ids,
    )
    return job


# ---------------------------------------------------------------------------------------------
# Running and cancelling


def run(*, enrolment_id: int, batch_size: int = BATCH_SIZE) -> int:
    """Enrol the job's personas in batches; returns how many this call enrolled.

    Only a queued or running job does anything: a cancelled, done or missing one returns 0.
    Each batch commits its runs together with the job's ``position`` and ``enrolled``, under
    the job's row lock, so a worker that dies mid-job leaves no batch half done and a retry
    (or a second worker) carries on after the last committed batch. When the flow stops being
    active (paused, archived) the job ends there, saying so.
    """
    with transaction.atomic():
        job = FlowEnrolment.objects.select_for_update().filter(pk=enrolment_id).first()
        if job is None or job.status not in (
            FlowEnrolment.Status.QUEUED,
            FlowEnrolment.Status.RUNNING,
        ):
            return 0
        if job.status == FlowEnrolment.Status.QUEUED:
            job.status = FlowEnrolment.Status.RUNNING
            job.started_at = timezone.now()
            job.save(update_fields=["status", "started_at"])
        ids = list(job.persona_ids)
    total = 0
    while True:
        with transaction.atomic():
            job = (
                FlowEnrolment.objects.select_for_update()
                .only("status", "position", "enrolled", "flow_id", "confirmed_count")
                .get(pk=enrolment_id)
            )
            if job.status != FlowEnrolment.Status.RUNNING:
                return total
            batch = ids[job.position : job.position + batch_size]
            if not batch:
                _finish(job, "")
                return total
            flow = Flow.objects.select_related("current_version").get(pk=job.flow_id)
            if flow.status != Flow.Status.ACTIVE or flow.current_version is None:
                _finish(
                    job,
                    f"Stopped after {job.position:,} of {len(ids):,}: the flow is "
                    f"{flow.get_status_display().lower()}.",
                )
                return total
            started = engine.enroll(flow, batch, trigger={"type": "manual", "enrolment": job.pk})
            job.position += len(batch)
            job.enrolled += len(started)
            job.save(update_fields=["position", "enrolled"])
            total += len(started)


def _finish(job: FlowEnrolment, note: str) -> None:
    job.status = FlowEnrolment.Status.DONE
    job.finished_at = timezone.now()
    job.note = note[:300]
    job.persona_ids = []  # a work list, not a record: the runs say who was enrolled
    job.save(update_fields=["status", "finished_at", "note", "persona_ids"])


@transaction.atomic
def cancel(*, enrolment: FlowEnrolment, user: Any) -> FlowEnrolment:
    """Cancel a job that has not started; returns it, cancelled. Its task then does nothing.

    Raises ``PermissionDenied`` without the edit-flows capability and ``EnrolmentError``
    ("not_queued") once the job has started, finished or been cancelled.
    """
    if not has_cap(user, Cap.EDIT_FLOWS):
        raise PermissionDenied("Cancelling an enrolment needs the edit-flows capability.")
    job = FlowEnrolment.objects.select_for_update().get(pk=enrolment.pk)
    if job.status == FlowEnrolment.Status.RUNNING:
        raise EnrolmentError(
            f"This enrolment has already started ({job.position:,} of "
            f"{job.confirmed_count:,} handled), so it can no longer be cancelled. Pause the "
            "flow to stop it.",
            code="not_queued",
        )
    if job.status == FlowEnrolment.Status.DONE:
        raise EnrolmentError(
            f"This enrolment has finished ({job.enrolled:,} enrolled): there is nothing left "
            "to cancel.",
            code="not_queued",
        )
    if job.status == FlowEnrolment.Status.CANCELLED:
        raise EnrolmentError("This enrolment was already cancelled.", code="not_queued")
    job.status = FlowEnrolment.Status.CANCELLED
    job.cancelled_by = user
    job.finished_at = timezone.now()
    job.persona_ids = []
    job.save(update_fields=["status", "cancelled_by", "finished_at", "persona_ids"])
    return job


# ---------------------------------------------------------------------------------------------
# Privacy


def scrub_erased(persona_ids: list[int], values: list[str]) -> None:
    """An erasure hook (``personas.services.privacy.register_erasure_hook``): a job whose
    search text holds an erased customer's phone or email forgets that text.

    Phones are also matched on their digits, as staff type them in any format."""
    needles = [v.lower() for v in values if len(v) >= 3]
    digits = {re.sub(r"\D", "", v) for v in needles if v.startswith("+")}
    digits = {d for d in digits if len(d) >= 7}
    if not needles:
        return
    for job in FlowEnrolment.objects.filter(filters__has_key="q").only("filters", "description"):
        q = str(job.filters.get("q", "")).lower()
        typed = re.sub(r"\D", "", q)
        hit = any(n in q for n in needles) or (
            len(typed) >= 7 and any(d.endswith(typed) for d in digits)
        )
        if hit:
            filters = {**job.filters, "q": "(deleted customer data)"}
            description = "personas matching a search for a deleted customer"
            FlowEnrolment.objects.filter(pk=job.pk).update(filters=filters, description=description)
