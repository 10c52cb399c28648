"""The flow engine: enrolment, step execution, waits, test runs.

A step runs inside a transaction that holds the run's row lock (and its persona's): the step's
effects on the persona (through the one mutation path), its log record and the run's next
position commit together, so a worker that dies mid-step leaves the step undone and a retry
runs it exactly once. Runs are advanced by coarse tasks (a batch of runs per task, see
``advance_batch``), never one task per persona; ``step_once`` is the single-run form.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from personas import messaging
from personas.models import AuditEvent, ConsentState, Persona, PersonaStatus
from personas.models.persona import is_visible
from personas.normalize import normalize_email, try_phone
from personas.services import changes
from personas.services.bulkdb import insert_tuples, update_tuples
from personas.services.changes import (
    Actor,
    AttributeOp,
    ChangeError,
    Changeset,
    ConsentAction,
    ConsentOp,
)
from personas.services.identity import customer_for

from .definition import SPLIT_OPERATORS, next_step
from .models import Flow, FlowRun, FlowStepLog, FlowVersion
from .templating import TemplateError, render, split_matches, value_of

STEP_LIMIT = 100
RUNS_PER_TASK = 1000  # runs advanced together by one task (a batch)
STANDARD_TRAITS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone": "phone",
    "birthday": "birthday",
    "customer_id": "customer_id",
}

# Templating: see flows/templating.py (checked, bounded, nil for missing).


# ---------------------------------------------------------------------------------------------
# Background work the engine asks for


@dataclass(frozen=True)
class Queue:
    """How the engine asks for background work: ``runs(run_ids, backend)`` queues runs to
    advance (one batch), ``wake(when)`` a wake-up for waiting runs. Calls run one way (tasks →
    engine), so the engine never imports ``flows.tasks``: that module plugs its tasks in here
    with ``use_queue`` when it is loaded (``flows.services`` imports it, and the app's
    ``ready`` imports services), before any run can be enrolled or woken."""

    runs: Callable[[list[int], str], None]
    wake: Callable[[dt.datetime], None]


_queue: Queue | None = None


def use_queue(queue: Queue) -> None:
    global _queue
    _queue = queue


def _queued() -> Queue:
    if _queue is None:
        raise RuntimeError("flows.tasks is not loaded: the flow engine cannot queue work.")
    return _queue


def persona_data(p: Persona) -> dict[str, Any]:
    """What templates read of a persona; a value it does not have is None (Liquid's nil),
    never "": ``{% if persona.email %}`` is false without an email, as a split says."""
    return {
        "id": str(p.pk),
        "first_name": p.first_name or None,
        "last_name": p.last_name or None,
        "email": p.email or None,
        "phone": p.phone or None,
        "customer_id": p.customer_id or None,
        "birthday": p.birthday.isoformat() if p.birthday else None,
        "points": p.points_balance,
        "loyalty_enrolled": p.loyalty_enrolled,
        "attributes": dict(p.attributes or {}),
        "consents": {c: p.consent(c) for c in ("text", "email", "voice", "push", "browser")},
        **{f"attr_{k}": v for k, v in (p.attributes or {}).items()},
    }


def _context(run: FlowRun, persona: Persona, flow_name: str) -> dict[str, Any]:
    data = persona_data(persona)
    ctx = dict(run.context or {})
    trigger = dict(ctx.get("trigger") or {})
    trigger.setdefault("persona", data)
    return {
        "persona": data,
        "trigger": trigger,
        "widgets": ctx.get("widgets") or {},
        "flow": {
            "name": flow_name,
            "run_id": run.pk,
            "version": run.version.number,
            "variables": ctx.get("variables") or {},
        },
    }


# ---------------------------------------------------------------------------------------------
# Steps


@dataclass
class StepResult:
    event: str
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    wait_until: dt.datetime | None = None
    changes: dict[str, Any] = field(default_factory=dict)


def _visible(persona: Persona | None) -> bool:
    return persona is not None and is_visible(persona) and persona.status == PersonaStatus.ACTIVE


def _step_persona_update(props, ctx, persona, actor, now) -> StepResult:
    inputs = {"add": [], "set": [], "remove": [], "force_opt_out": []}
    changeset = Changeset(action="flow: persona update")
    for section in ("add", "set"):
        for item in props.get(section, []) or []:
            value = render(item.get("value", ""), ctx)
            inputs[section].append({"key": item["key"], "value": value})
            getattr(changeset, section).append(AttributeOp(item["key"], value))
    for item in props.get("remove", []) or []:
        key = item["key"] if isinstance(item, dict) else str(item)
        inputs["remove"].append(key)
        changeset.remove.append(key)
    for channel in props.get("force_opt_out", []) or []:
        inputs["force_opt_out"].append(channel)
        changeset.consents.append(ConsentOp(channel, ConsentAction.FORCE_OPT_OUT))
    result = changes.apply(persona, changeset, actor)
    return StepResult(
        "next",
        inputs,
        {"operations": result.attribute_ops},
        changes=result.event.changes if result.event else {},
    )


def _find_persona(sid: str) -> Persona | None:
    sid = sid.strip()
    if sid.upper().startswith("PER"):
        sid = sid[3:]
    if not sid.isdigit():
        return None
    return Persona.objects.filter(pk=int(sid)).first()


def _step_update_traits(props, ctx, persona, actor, now) -> StepResult:
    sid = render(props.get("profile_connect_sid", ""), ctx).strip()
    traits = [
        {"key": t["key"], "value": render(t.get("value", ""), ctx)}
        for t in props.get("traits", []) or []
    ]
    inputs = {"profile_connect_sid": sid, "traits": traits}
    if props.get("profile_connector_instance"):
        inputs["profile_connector_instance"] = props["profile_connector_instance"]
    target = _find_persona(sid) if sid else None
    if not _visible(target):
        return StepResult("profileNotFound", inputs, error="" if sid else "Empty profile id.")
    fields, attrs = {}, []
    for t in traits:
        if t["key"] in STANDARD_TRAITS:
            fields[STANDARD_TRAITS[t["key"]]] = t["value"]
        else:
            attrs.append(AttributeOp(t["key"], t["value"]))
    try:
        result = changes.apply(
            target,
            Changeset(fields=fields, set=attrs, action="flow: update profile traits"),
            actor,
        )
    except ChangeError as exc:
        return StepResult("failed", inputs, error=" ".join(exc.messages)[:500])
    return StepResult(
        "profileUpdated",
        inputs,
        {"profileConnectSid": str(target.pk)},
        changes=result.event.changes if result.event else {},
    )


def _step_look_up(props, ctx, persona, actor, now) -> StepResult:
    raw = render(props.get("identifier", ""), ctx).strip()
    inputs = {"identifier": raw}
    if not raw:
        return StepResult("profileNotFound", inputs, error="Empty identifier.")
    found = None
    if "@" in raw:
        try:
            email = normalize_email(raw)
        except ValidationError:
            return StepResult("failed", inputs, error="Not a valid email address.")
        found = customer_for(email=email, include_hidden=True)
    else:
        phone = try_phone(raw)
        if phone:
            found = customer_for(phone=phone, include_hidden=True)
        if found is None:
            found = Persona.objects.filter(
                Q(customer_id=raw) | Q(pk=int(raw) if raw.isdigit() and len(raw) < 12 else -1),
                status=PersonaStatus.ACTIVE,
            ).first()
    if not _visible(found):
        return StepResult("profileNotFound", inputs)
    data = persona_data(found)
    return StepResult(
        "profileFound",
        inputs,
        {"ProfileData": {"profileConnectSid": str(found.pk), "traits": data, **data}},
    )


def _step_split(props, ctx, persona, actor, now) -> StepResult:
    template = props.get("input", "")
    value, typed = value_of(template, ctx)
    inputs = {"input": value}
    for i, cond in enumerate(props.get("conditions", []) or [], start=1):
        arg = render(cond.get("value", ""), ctx)
        if split_matches(cond.get("operator", ""), value, arg, typed=typed):
            label = f"{SPLIT_OPERATORS.get(cond.get('operator'), '?')} {arg}".strip()
            return StepResult(f"match_{i}", inputs, {"matched": label})
    return StepResult("noMatch", inputs)


def _step_set_variables(props, ctx, persona, actor, now) -> StepResult:
    """Studio's Set Variables: each value rendered, then readable as flow.variables.KEY."""
    inputs: dict[str, list] = {"variables": []}
    values: dict[str, str] = {}
    for item in props.get("variables", []) or []:
        value = render(item.get("value", ""), ctx)
        inputs["variables"].append({"key": item["key"], "value": value})
        values[item["key"]] = value
    return StepResult("next", inputs, {"variables": values})


def _step_wait(props, ctx, persona, actor, now, run=None, name="") -> StepResult:
    waiting = (run.context or {}).get("_waiting") if run else None
    if waiting and waiting.get("step") == name:
        return StepResult("next", {"waited_until": waiting.get("until")})
    if "until_time" in props:
        store = persona.favorite_store
        zone = ZoneInfo(store.time_zone if store else settings.PERSONAS_DEFAULT_TIME_ZONE)
        local = now.astimezone(zone)
        hour, minute = (int(x) for x in str(props["until_time"]).split(":"))
        until = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if until <= local:
            until += dt.timedelta(days=1)
    else:
        amount = int(props.get("amount", 1))
        until = now + dt.timedelta(**{props.get("unit", "minutes"): amount})
    return StepResult("", {"until": until.isoformat()}, wait_until=until)


def _step_send(props, ctx, persona, actor, now) -> StepResult:
    channel = props.get("channel", "text")
    body = render(props.get("body", ""), ctx)
    inputs = {"channel": channel, "body": body}
    if persona.consent(channel) != ConsentState.OPTED_IN or not (
        persona.phone if channel == "text" else persona.email
    ):
        return StepResult("suppressed", inputs, {"reason": f"No {channel} consent or address."})
    try:
        message = messaging.queue_text(persona, channel=channel, body=body)
    except Exception as exc:  # noqa: BLE001 - recorded and followed as "failed"
        return StepResult("failed", inputs, error=type(exc).__name__)
    return StepResult("sent", inputs, {"message_id": message.pk})


EXECUTORS = {
    "persona-update": _step_persona_update,
    "update-profile-traits": _step_update_traits,
    "look-up-profile": _step_look_up,
    "split-based-on": _step_split,
    "set-variables": _step_set_variables,
    "send-message": _step_send,
}


def execute(state: dict, run: FlowRun, persona: Persona, flow_name: str, now) -> StepResult:
    ctx = _context(run, persona, flow_name)
    actor = Actor.flow_step(flow_name, run.pk or 0, state["name"])
    props = state.get("properties") or {}
    try:
        if state["type"] == "wait":
            return _step_wait(props, ctx, persona, actor, now, run=run, name=state["name"])
        return EXECUTORS[state["type"]](props, ctx, persona, actor, now)
    except TemplateError as exc:
        return StepResult("failed", error=str(exc)[:500])
    except ChangeError as exc:
        return StepResult("failed", error=" ".join(exc.messages)[:500])


# ---------------------------------------------------------------------------------------------
# Runs


def _states(version: FlowVersion) -> dict[str, dict]:
    return {s["name"]: s for s in version.definition.get("states", [])}


def _move_on(run: FlowRun, state: dict, result: StepResult, target: str | None, now) -> bool:
    """After a step: go to ``target`` (True), or end the run (False) — failed when the step
    failed with an error and has no ``failed`` transition, completed otherwise."""
    if target is None:
        failed = result.event == "failed" and result.error and not _has(state, "failed")
        _finish(
            run,
            FlowRun.Status.FAILED if failed else FlowRun.Status.COMPLETED,
            now,
            result.error if failed else "",
        )
        return False
    run.current_state = target
    run.status = FlowRun.Status.RUNNING
    run.wake_at = None
    return True


def _finish(run: FlowRun, status: str, now, error: str = "") -> None:
    run.status = status
    run.finished_at = now
    run.error = error[:500]
    run.wake_at = None


def step_once(run_id: int, *, now: dt.datetime | None = None) -> bool:
    """Run the run's current step (one transaction). False when the run cannot go on now."""
    now = now or timezone.now()
    with transaction.atomic():
        run = (
            FlowRun.objects.select_for_update(skip_locked=True)
            .select_related("version", "flow")
            .filter(pk=run_id, status__in=[FlowRun.Status.RUNNING, FlowRun.Status.WAITING])
            .first()
        )
        if run is None:
            return False
        if run.status == FlowRun.Status.WAITING and run.wake_at and run.wake_at > now:
            return False
        persona = Persona.objects.select_related("favorite_store").get(pk=run.persona_id)
        if not _visible(persona):
            _finish(
                run,
                FlowRun.Status.STOPPED,
                now,
                "The persona left the flow (archived, merged, erased or hidden by privacy rules).",
            )
            run.save()
            return False
        states = _states(run.version)
        state = states.get(run.current_state)
        if state is None:
            _finish(run, FlowRun.Status.FAILED, now, f"Step “{run.current_state}” is missing.")
            run.save()
            return False
        if run.steps_taken >= STEP_LIMIT:
            _finish(
                run,
                FlowRun.Status.FAILED,
                now,
                f"Stopped after {STEP_LIMIT} steps: the flow loops.",
            )
            run.save()
            return False
        started = timezone.now()
        result = execute(state, run, persona, run.flow.name, now)
        if result.wait_until is not None:
            run.status = FlowRun.Status.WAITING
            run.wake_at = result.wait_until
            run.context = {
                **run.context,
                "_waiting": {"step": state["name"], "until": result.inputs["until"]},
            }
            run.save()
            FlowStepLog.objects.create(
                run=run,
                step=state["name"],
                step_type=state["type"],
                started_at=started,
                finished_at=timezone.now(),
                inputs=result.inputs,
                outputs={},
                event="waiting",
            )
            wake = result.wait_until
            transaction.on_commit(lambda: _schedule_wake(wake))
            return False
        target = next_step(state, result.event)
        widgets = dict(run.context.get("widgets") or {})
        widgets[state["name"]] = result.outputs
        context = {k: v for k, v in run.context.items() if k != "_waiting"}
        context["widgets"] = widgets
        if state["type"] == "set-variables" and result.event == "next":
            context["variables"] = {
                **(context.get("variables") or {}),
                **result.outputs.get("variables", {}),
            }
        run.context = json.loads(json.dumps(context, default=str))
        run.steps_taken += 1
        FlowStepLog.objects.create(
            run=run,
            step=state["name"],
            step_type=state["type"],
            started_at=started,
            finished_at=timezone.now(),
            inputs=_jsonable(result.inputs),
            outputs=_jsonable(
                {**result.outputs, **({"changes": result.changes} if result.changes else {})}
            ),
            event=result.event,
            next_step=target or "",
            error=result.error,
        )
        _move_on(run, state, result, target, now)
        run.save()
        return run.status == FlowRun.Status.RUNNING


def _has(state: dict, event: str) -> bool:
    return any(t.get("event") == event for t in state.get("transitions", []) or [])


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def advance(run_id: int, *, now: dt.datetime | None = None) -> None:
    while step_once(run_id, now=now):
        pass


def advance_many(run_ids: Iterable[int], *, now: dt.datetime | None = None) -> None:
    for run_id in run_ids:
        advance(run_id, now=now)


def resume_due(*, now: dt.datetime | None = None) -> int:
    """Wake the waiting runs whose time has come (called by the scheduled wake task)."""
    now = now or timezone.now()
    due = list(
        FlowRun.objects.filter(status=FlowRun.Status.WAITING, wake_at__lte=now)
        .order_by("wake_at")
        .values_list("pk", flat=True)[:5000]
    )
    advance_batch(due, now=now)
    return len(due)


def resume_stalled(*, older_than: dt.timedelta | None = None, backend: str = "default") -> int:
    """Runs left "running" by a worker that died (their task is gone): queue them again.

    Safe to call any time: a run that is still being worked on is locked (skipped) or has
    moved on, and each step commits with its log, so nothing is applied twice."""
    limit = timezone.now() - (older_than if older_than is not None else dt.timedelta(minutes=5))
    ids = list(
        FlowRun.objects.filter(status=FlowRun.Status.RUNNING, updated_at__lt=limit, dry_run=False)
        .order_by("id")
        .values_list("pk", flat=True)[:50_000]
    )
    for start in range(0, len(ids), RUNS_PER_TASK):
        _queued().runs(ids[start : start + RUNS_PER_TASK], backend)
    return len(ids)


def _schedule_wake(when: dt.datetime) -> None:
    _queued().wake(when)


# ---------------------------------------------------------------------------------------------
# Enrolment


def enroll(
    flow: Flow,
    persona_ids: Iterable[int],
    *,
    trigger: dict[str, Any] | None = None,
    run_now: bool = False,
) -> list[int]:
    """Start runs of the flow's published version for these personas (background by default).

    Blocklisted (hidden), erased, merged and archived personas are never enrolled; with the
    "once" re-entry policy a persona already enrolled is skipped.
    """
    version = flow.current_version
    if version is None or flow.status != Flow.Status.ACTIVE:
        return []
    ids = list(dict.fromkeys(persona_ids))
    eligible = set(
        Persona.objects.visible()
        .filter(pk__in=ids, status=PersonaStatus.ACTIVE)
        .values_list("pk", flat=True)
    )
    if version.reentry == Flow.Reentry.ONCE:
        eligible -= set(
            FlowRun.objects.filter(flow=flow, persona_id__in=eligible, dry_run=False).values_list(
                "persona_id", flat=True
            )
        )
    initial = version.definition.get("initial_state", "")
    runs = FlowRun.objects.bulk_create(
        [
            FlowRun(
                flow=flow,
                version=version,
                persona_id=pid,
                current_state=initial,
                context={"trigger": trigger or {"type": "manual"}},
            )
            for pid in ids
            if pid in eligible
        ],
        batch_size=500,
    )
    run_ids = [r.pk for r in runs]
    if run_now:
        advance_batch(run_ids)
    elif run_ids:
        runs = _queued().runs
        for start in range(0, len(run_ids), RUNS_PER_TASK):
            chunk = run_ids[start : start + RUNS_PER_TASK]
            transaction.on_commit(lambda chunk=chunk: runs(chunk, "default"))
    return run_ids


_ACTIVE_CACHE: dict[str, Any] = {"at": 0.0, "flows": []}


def _active_flows() -> list[Flow]:
    if time.monotonic() - _ACTIVE_CACHE["at"] > 2:
        _ACTIVE_CACHE["flows"] = list(
            Flow.objects.filter(status=Flow.Status.ACTIVE, current_version__isnull=False)
            .exclude(trigger__type="manual")
            .select_related("current_version")
        )
        _ACTIVE_CACHE["at"] = time.monotonic()
    return _ACTIVE_CACHE["flows"]


def forget_active_flows() -> None:
    _ACTIVE_CACHE["at"] = 0.0


def _matches(trigger: dict, notice: changes.ChangeNotice) -> dict | None:
    kind = trigger.get("type")
    if notice.actor_kind == "flow" and kind != "persona_created":
        return None  # a flow's own changes do not start other flows (no cascades)
    if kind == "persona_created" and notice.created:
        source = trigger.get("source") or ""
        if source and source != notice.entry_source:
            return None
        form = trigger.get("signup_form_id")
        if form and int(form) != (notice.signup_form_id or 0):
            return None
        return {"type": "persona_created", "source": notice.entry_source}
    if kind == "attribute_changed":
        key = f"attr:{trigger.get('key', '')}"
        change = notice.changes.get(key)
        if change is None:
            return None
        wanted = trigger.get("value")
        if wanted not in (None, "") and str(change.get("after")) != str(wanted):
            return None
        return {"type": "attribute_changed", "key": trigger.get("key"), **change}
    if kind == "consent_changed":
        for key, change in notice.changes.items():
            if not key.startswith("consent:"):
                continue
            channel = key[8:]
            if trigger.get("channel") and trigger["channel"] != channel:
                continue
            if trigger.get("state") and trigger["state"] != change.get("after"):
                continue
            return {"type": "consent_changed", "channel": channel, **change}
    if kind == "purchase" and "points_balance" in notice.changes:
        change = notice.changes["points_balance"]
        if (change.get("after") or 0) > (change.get("before") or 0):
            return {"type": "purchase", **change}
    return None


def on_persona_changes(notices: list[changes.ChangeNotice]) -> None:
    """The personas change hook: enrol personas into active flows whose trigger matches."""
    flows = _active_flows()
    if not flows:
        return
    for flow in flows:
        trigger = flow.current_version.trigger or {}
        matched: dict[int, dict] = {}
        for notice in notices:
            data = _matches(trigger, notice)
            if data is not None:
                matched.setdefault(notice.persona_id, data)
        if matched:
            with transaction.atomic():
                for pid, data in matched.items():
                    enroll(flow, [pid], trigger=data)


def on_inbound_text(persona_id: int, body: str) -> None:
    """A text from the persona's number (not a keyword): enrol active flows started by one
    (Studio's ``incomingMessage``). The text is ``trigger.message.Body``, as in Studio."""
    for flow in _active_flows():
        trigger = flow.current_version.trigger or {}
        if trigger.get("type") == "inbound_text":
            with transaction.atomic():
                data = {"type": "inbound_text", "message": {"Body": body}}
                enroll(flow, [persona_id], trigger=data)


# ---------------------------------------------------------------------------------------------
# Test run: everything a real run would do, rolled back


class _Rollback(Exception):
    pass


@dataclass
class TestStep:
    step: str
    step_type: str
    event: str
    next_step: str
    inputs: dict
    outputs: dict
    changes: dict
    error: str


def test_run(version_or_flow: Flow, persona: Persona) -> tuple[list[TestStep], str]:
    """Which steps would run, which transitions they would take and exactly which attributes
    and consents would change — computed by running the flow and rolling everything back."""
    flow = version_or_flow
    definition = flow.definition
    steps: list[TestStep] = []
    outcome = ""
    states = {s["name"]: s for s in definition.get("states", [])}
    try:
        with transaction.atomic():
            version = FlowVersion.objects.create(
                flow=flow,
                number=999_999_999,
                definition=definition,
                trigger=flow.trigger,
            )
            run = FlowRun.objects.create(
                flow=flow,
                version=version,
                persona=persona,
                dry_run=True,
                current_state=definition.get("initial_state", ""),
                context={"trigger": {"type": "test run"}},
            )
            now = timezone.now()
            for _ in range(STEP_LIMIT):
                run.refresh_from_db()
                state = states.get(run.current_state)
                if state is None or run.status not in ("running",):
                    break
                if state["type"] == "wait":
                    # A test run does not wait: it notes the wait and goes on.
                    result = _step_wait(state.get("properties") or {}, {}, persona, None, now)
                    target = next_step(state, "next")
                    steps.append(
                        TestStep(
                            state["name"],
                            "wait",
                            "next",
                            target or "",
                            {"would wait until": result.inputs["until"]},
                            {},
                            {},
                            "",
                        )
                    )
                    if target is None:
                        outcome = "completed"
                        break
                    FlowRun.objects.filter(pk=run.pk).update(current_state=target)
                    continue
                step_once(run.pk, now=now)
                log = FlowStepLog.objects.filter(run=run).order_by("-id").first()
                changes_made = (log.outputs or {}).get("changes", {}) if log else {}
                steps.append(
                    TestStep(
                        log.step,
                        log.step_type,
                        log.event,
                        log.next_step,
                        log.inputs,
                        log.outputs,
                        changes_made,
                        log.error,
                    )
                )
            run.refresh_from_db()
            outcome = outcome or run.status
            raise _Rollback
    except _Rollback:
        pass
    return steps, outcome


def audit_for_run(run: FlowRun) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(actor_kind="flow", actor_ref__run=run.pk))


# ---------------------------------------------------------------------------------------------
# Batched execution: many runs advance together, one transaction per round


def _prepare_persona_update(props, ctx) -> tuple[Changeset, dict]:
    inputs: dict[str, list] = {"add": [], "set": [], "remove": [], "force_opt_out": []}
    changeset = Changeset(action="flow: persona update")
    for section in ("add", "set"):
        for item in props.get(section, []) or []:
            value = render(item.get("value", ""), ctx)
            inputs[section].append({"key": item["key"], "value": value})
            getattr(changeset, section).append(AttributeOp(item["key"], value))
    for item in props.get("remove", []) or []:
        key = item["key"] if isinstance(item, dict) else str(item)
        inputs["remove"].append(key)
        changeset.remove.append(key)
    for channel in props.get("force_opt_out", []) or []:
        inputs["force_opt_out"].append(channel)
        changeset.consents.append(ConsentOp(channel, ConsentAction.FORCE_OPT_OUT))
    return changeset, inputs


def _prepare_traits(props, ctx) -> tuple[str, list[dict], dict]:
    sid = render(props.get("profile_connect_sid", ""), ctx).strip()
    traits = [
        {"key": t["key"], "value": render(t.get("value", ""), ctx)}
        for t in props.get("traits", []) or []
    ]
    inputs = {"profile_connect_sid": sid, "traits": traits}
    return sid, traits, inputs


class _TargetCache:
    """Profiles found by id within one round: the run's own persona is already loaded."""

    def __init__(self) -> None:
        self.found: dict[str, Persona | None] = {}

    def get(self, sid: str, loaded: dict[int, Persona]) -> Persona | None:
        if sid not in self.found:
            key = sid[3:] if sid.upper().startswith("PER") else sid
            if key.isdigit() and int(key) in loaded:
                self.found[sid] = loaded[int(key)]
            else:
                self.found[sid] = _find_persona(sid)
        return self.found[sid]


# Step applications one transaction may hold: a batch's rounds share a transaction (its runs
# and personas locked and loaded once) until it has applied this many, then commit.
TRANSACTION_STEPS = 3000


def advance_batch(run_ids: Iterable[int], *, now: dt.datetime | None = None) -> int:
    """Advance many runs step by step, a round (one step of every run) at a time.

    A transaction locks the batch's runs and their personas, then runs rounds until the runs
    stop or it holds ``TRANSACTION_STEPS`` step applications; every step's persona changes
    (through ``apply_many``), its log and the run's new position are written in it, so they
    commit together. Returns the number of steps applied."""
    now = now or timezone.now()
    pending = list(run_ids)
    applied = 0
    rounds = 0
    while pending and rounds <= STEP_LIMIT:
        with transaction.atomic():
            batch = _lock_batch(pending, now)
            in_transaction = 0
            while batch.runs and rounds <= STEP_LIMIT:
                n = _batch_round(batch, now)
                rounds += 1
                applied += n
                in_transaction += n
                if in_transaction >= TRANSACTION_STEPS:
                    break
            # Nothing in the transaction reads them back: the rounds' step logs and each
            # run's latest position are written once, just before the commit.
            _write_round(batch.logs, list(batch.touched.values()), batch.texts)
            pending = [r.pk for r in batch.runs]
    return applied


@dataclass
class _Batch:
    runs: list[FlowRun]
    personas: dict[int, Persona]
    state_maps: dict[int, dict[str, dict]]
    templated: dict[int, bool] = field(default_factory=dict)  # id(state) → uses templates
    logs: list[tuple] = field(default_factory=list)  # step log rows, in database form
    touched: dict[int, FlowRun] = field(default_factory=dict)  # runs whose row changes
    texts: dict[int, str] = field(default_factory=dict)  # run id → its new context as JSON


def _lock_batch(run_ids: list[int], now: dt.datetime) -> _Batch:
    """Lock the runs that can go on now (others' locked runs are skipped) and their personas
    (in id order), each loaded once for the transaction."""
    runs = [
        r
        for r in FlowRun.objects.select_for_update(skip_locked=True).filter(
            pk__in=run_ids, status__in=[FlowRun.Status.RUNNING, FlowRun.Status.WAITING]
        )
        if not (r.status == FlowRun.Status.WAITING and r.wake_at and r.wake_at > now)
    ]
    if not runs:
        return _Batch([], {}, {})
    # One copy of each version and flow for the whole batch (not one per run).
    versions = FlowVersion.objects.in_bulk({r.version_id for r in runs})
    flows = Flow.objects.in_bulk({r.flow_id for r in runs})
    for r in runs:
        r.version = versions[r.version_id]
        r.flow = flows[r.flow_id]
    # The steps' contexts are read from, and ``apply_many`` plans on, these locked rows;
    # ``apply_many`` updates them in memory as it writes, so later rounds see every change.
    personas = {
        p.pk: p
        for p in Persona.objects.select_for_update(of=("self",))
        .select_related("favorite_store")
        .filter(pk__in={r.persona_id for r in runs})
        .order_by("pk")
    }
    return _Batch(runs, personas, {vid: _states(v) for vid, v in versions.items()})


def _has_template(value: Any) -> bool:
    """Whether rendering any string in a step's properties could read the context."""
    if isinstance(value, str):
        return "{" in value
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


_RUN_COLUMNS = (
    "status",
    "current_state",
    "context",
    "steps_taken",
    "wake_at",
    "error",
    "finished_at",
    "updated_at",
)
_LOG_COLUMNS = (
    "run_id",
    "step",
    "step_type",
    "started_at",
    "finished_at",
    "inputs",
    "outputs",
    "event",
    "next_step",
    "error",
)


def _log_row(
    run: FlowRun,
    state: dict[str, Any],
    started: Any,
    ended: Any,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    event: str,
    target: str,
    error: str,
) -> tuple:
    """One step log in ``_LOG_COLUMNS`` order."""
    return (
        run.pk,
        state["name"],
        state["type"],
        started,
        ended,
        json.dumps(inputs, default=str),
        json.dumps(outputs, default=str),
        event,
        target,
        error,
    )


def _batch_round(batch: _Batch, now: dt.datetime) -> int:
    """One step of every run in the batch; ``batch.runs`` keeps the runs that go on.
    Returns the number of steps applied."""
    runs, personas, state_maps, templated = (
        batch.runs,
        batch.personas,
        batch.state_maps,
        batch.templated,
    )
    updates: list[tuple[FlowRun, dict, StepResult]] = []
    bulk_pu: list[tuple[FlowRun, dict, Changeset, dict]] = []
    bulk_tr: list[tuple[FlowRun, dict, int, Changeset, dict]] = []
    started = timezone.now()
    finished: list[FlowRun] = []
    targets = _TargetCache()
    for run in runs:
        persona = personas.get(run.persona_id)
        state = state_maps[run.version_id].get(run.current_state)
        if not _visible(persona):
            _finish(
                run,
                FlowRun.Status.STOPPED,
                now,
                "The persona left the flow (archived, merged, erased or hidden by privacy rules).",
            )
            finished.append(run)
            continue
        if state is None or run.steps_taken >= STEP_LIMIT:
            error = (
                f"Stopped after {STEP_LIMIT} steps: the flow loops."
                if state
                else f"Step “{run.current_state}” is missing."
            )
            _finish(run, FlowRun.Status.FAILED, now, error)
            finished.append(run)
            continue
        props = state.get("properties") or {}
        kind = state["type"]
        try:
            if kind in ("persona-update", "update-profile-traits"):
                uses = templated.get(id(state))
                if uses is None:
                    uses = templated[id(state)] = _has_template(props)
                # Without a template nothing reads the context: it is not built.
                ctx = _context(run, persona, run.flow.name) if uses else {}
            if kind == "persona-update":
                changeset, inputs = _prepare_persona_update(props, ctx)
                bulk_pu.append((run, state, changeset, inputs))
                continue
            if kind == "update-profile-traits":
                sid, traits, inputs = _prepare_traits(props, ctx)
                target = targets.get(sid, personas) if sid else None
                if not _visible(target):
                    result = StepResult("profileNotFound", inputs)
                else:
                    fields = {
                        STANDARD_TRAITS[t["key"]]: t["value"]
                        for t in traits
                        if t["key"] in STANDARD_TRAITS
                    }
                    attrs = [
                        AttributeOp(t["key"], t["value"])
                        for t in traits
                        if t["key"] not in STANDARD_TRAITS
                    ]
                    cs = Changeset(fields=fields, set=attrs, action="flow: update profile traits")
                    bulk_tr.append((run, state, target.pk, cs, inputs))
                    continue
            else:
                result = execute(state, run, persona, run.flow.name, now)
        except TemplateError as exc:
            result = StepResult("failed", error=str(exc)[:500])
        updates.append((run, state, result))
    if bulk_pu:
        outcomes = changes.apply_many(
            [
                (r.persona_id, cs, Actor.flow_step(r.flow.name, r.pk, s["name"]))
                for r, s, cs, _ in bulk_pu
            ],
            locked=personas,
        )
        for (run, state, _cs, inputs), out in zip(bulk_pu, outcomes, strict=True):
            if out.error is not None:
                result = StepResult("failed", inputs, error=" ".join(out.error.messages))
            else:
                result = StepResult(
                    "next", inputs, {"operations": out.attribute_ops}, changes=out.changes
                )
            updates.append((run, state, result))
    if bulk_tr:
        outcomes = changes.apply_many(
            [
                (pid, cs, Actor.flow_step(r.flow.name, r.pk, s["name"]))
                for r, s, pid, cs, _ in bulk_tr
            ],
            locked=personas,
        )
        for (run, state, pid, _cs, inputs), out in zip(bulk_tr, outcomes, strict=True):
            if out.error is not None:
                result = StepResult("failed", inputs, error=" ".join(out.error.messages)[:500])
            else:
                result = StepResult(
                    "profileUpdated",
                    inputs,
                    {"profileConnectSid": str(pid)},
                    changes=out.changes,
                )
            updates.append((run, state, result))
    ended = timezone.now()
    continuing: list[FlowRun] = []
    texts, logs = batch.texts, batch.logs
    dumps = json.dumps
    for run, state, result in updates:
        if result.wait_until is not None:
            run.status = FlowRun.Status.WAITING
            run.wake_at = result.wait_until
            run.context = {
                **run.context,
                "_waiting": {"step": state["name"], "until": result.inputs["until"]},
            }
            texts.pop(run.pk, None)  # an earlier round's text is stale now
            logs.append(_log_row(run, state, started, ended, result.inputs, {}, "waiting", "", ""))
            wake = result.wait_until
            transaction.on_commit(lambda wake=wake: _schedule_wake(wake))
            finished.append(run)
            continue
        target = next_step(state, result.event)
        widgets = dict(run.context.get("widgets") or {})
        widgets[state["name"]] = result.outputs
        context = {k: v for k, v in run.context.items() if k != "_waiting"}
        context["widgets"] = widgets
        if state["type"] == "set-variables" and result.event == "next":
            context["variables"] = {
                **(context.get("variables") or {}),
                **result.outputs.get("variables", {}),
            }
        texts[run.pk] = text = dumps(context, default=str)
        # What the database now holds (and the next step reads, as after a reload).
        run.context = json.loads(text) if target is not None else context
        run.steps_taken += 1
        outputs = {**result.outputs, **({"changes": result.changes} if result.changes else {})}
        logs.append(
            _log_row(
                run,
                state,
                started,
                ended,
                result.inputs,
                outputs,
                result.event,
                target or "",
                result.error,
            )
        )
        if _move_on(run, state, result, target, now):
            continuing.append(run)
        finished.append(run)
    for run in finished:
        batch.touched[run.pk] = run
    batch.runs = continuing
    return len(updates)


def _write_round(logs: list[tuple], runs: list[FlowRun], texts: dict[int, str]) -> None:
    """Step logs (one INSERT batch / COPY) and run positions (one UPDATE batch), as plain
    tuples: values already in database form, JSON encoded once."""
    adapt = connection.ops.adapt_datetimefield_value
    if connection.vendor == "sqlite":  # SQLite stores datetimes as text (Django's format)
        logs = [(*row[:3], adapt(row[3]), adapt(row[4]), *row[5:]) for row in logs]
    insert_tuples(FlowStepLog._meta.db_table, _LOG_COLUMNS, logs)
    if not runs:
        return
    updated = adapt(timezone.now())  # ``updated_at`` is what stall detection reads
    dumps = json.dumps
    fields = [FlowRun._meta.get_field(c) for c in _RUN_COLUMNS]
    rows = [
        (
            r.status,
            r.current_state,
            texts.get(r.pk) or dumps(r.context, default=str),
            r.steps_taken,
            adapt(r.wake_at),
            r.error,
            adapt(r.finished_at),
            updated,
            r.pk,
        )
        for r in runs
    ]
    update_tuples(
        FlowRun._meta.db_table, [(f.column, f.cast_db_type(connection)) for f in fields], rows
    )
