"""Editing, publishing and moving flows; what views and commands call."""

from __future__ import annotations

import copy
import json
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from personas.models import Persona
from personas.selectors import ListQuery

from . import engine, enrolment, studio
from .definition import (
    STEP_TYPES,
    empty_definition,
    events_for,
    step_name_problem,
    unstorable_text,
    validate,
)
from .models import Flow, FlowEnrolment, FlowRun, FlowStepLog, FlowVersion
from .tasks import run_enrolment

TRIGGER_TYPES = {
    "manual": "Manual enrolment",
    "persona_created": "Persona created",
    "purchase": "Purchase recorded",
    "attribute_changed": "Custom attribute changed",
    "consent_changed": "Consent changed",
    "inbound_text": "Text received from the persona",
}

DEFAULT_PROPERTIES: dict[str, dict[str, Any]] = {
    "persona-update": {"add": [], "set": [], "remove": [], "force_opt_out": []},
    "update-profile-traits": {"profile_connect_sid": "{{trigger.persona.id}}", "traits": []},
    "look-up-profile": {"identifier": "{{trigger.persona.phone}}"},
    "split-based-on": {"input": "", "conditions": []},
    "wait": {"amount": 1, "unit": "days"},
    "send-message": {"channel": "text", "body": ""},
    "set-variables": {"variables": []},
}


def create_flow(*, name: str, trigger: dict, reentry: str, user: Any) -> Flow:
    name = (name or "").strip()
    if not name:
        raise ValidationError("Give the flow a name.")
    if Flow.objects.filter(name=name).exists():
        raise ValidationError("A flow with this name already exists.")
    _check_trigger(trigger)
    return Flow.objects.create(
        name=name[:120],
        trigger=trigger,
        reentry=reentry,
        definition=empty_definition(),
        created_by=user,
    )


def _check_trigger(trigger: dict) -> None:
    kind = trigger.get("type")
    if kind not in TRIGGER_TYPES:
        raise ValidationError("Choose what starts the flow.")
    if kind == "attribute_changed" and not str(trigger.get("key", "")).strip():
        raise ValidationError("Name the custom attribute whose change starts the flow.")


def _editable(flow: Flow) -> None:
    if flow.status == Flow.Status.ARCHIVED:
        raise ValidationError("An archived flow cannot be edited.")


def save_definition(flow: Flow, definition: dict) -> list[str]:
    """Store the draft (even when invalid, so work is not lost); return the problems."""
    _editable(flow)
    problems = validate(definition)
    if problems and "NUL character" in problems[0]:
        raise ValidationError(problems[0])
    flow.definition = definition
    flow.save(update_fields=["definition", "updated_at"])
    return problems


def add_step(flow: Flow, *, step_type: str, name: str, after: str = "", event: str = "") -> dict:
    _editable(flow)
    if step_type not in STEP_TYPES:
        raise ValidationError("Choose a step type.")
    name = (name or "").strip()
    definition = copy.deepcopy(flow.definition or empty_definition())
    states = definition.setdefault("states", [])
    if not name:
        base = step_type.replace("-", "_")
        n = 1
        while any(s["name"] == f"{base}_{n}" for s in states):
            n += 1
        name = f"{base}_{n}"
    if problem := step_name_problem(name):
        raise ValidationError(problem)
    if any(s["name"] == name for s in states):
        raise ValidationError(f"A step called “{name}” already exists.")
    state = {
        "name": name,
        "type": step_type,
        "properties": copy.deepcopy(DEFAULT_PROPERTIES[step_type]),
        "transitions": [{"event": e} for e in STEP_TYPES[step_type]["events"]],
    }
    states.append(state)
    if not definition.get("initial_state"):
        definition["initial_state"] = name
    if after:
        for s in states:
            if s["name"] == after:
                for t in s.setdefault("transitions", []):
                    if t.get("event") == (event or events_for(s)[0]) and not t.get("next"):
                        t["next"] = name
    save_definition(flow, definition)
    return state


def update_step(
    flow: Flow, name: str, *, properties: dict, transitions: dict[str, str], new_name: str = ""
) -> None:
    _editable(flow)
    definition = copy.deepcopy(flow.definition)
    state = next((s for s in definition["states"] if s["name"] == name), None)
    if state is None:
        raise ValidationError("That step no longer exists.")
    state["properties"] = properties
    state["transitions"] = [
        {"event": event, **({"next": target} if target else {})}
        for event, target in transitions.items()
    ]
    if new_name and new_name != name:
        if problem := step_name_problem(new_name):
            raise ValidationError(problem)
        if any(s["name"] == new_name for s in definition["states"]):
            raise ValidationError(f"A step called “{new_name}” already exists.")
        state["name"] = new_name
        for s in definition["states"]:
            for t in s.get("transitions", []):
                if t.get("next") == name:
                    t["next"] = new_name
        if definition.get("initial_state") == name:
            definition["initial_state"] = new_name
    save_definition(flow, definition)


def delete_step(flow: Flow, name: str) -> None:
    _editable(flow)
    definition = copy.deepcopy(flow.definition)
    definition["states"] = [s for s in definition["states"] if s["name"] != name]
    for s in definition["states"]:
        for t in s.get("transitions", []):
            if t.get("next") == name:
                t.pop("next")
    if definition.get("initial_state") == name:
        definition["initial_state"] = (
            definition["states"][0]["name"] if definition["states"] else ""
        )
    save_definition(flow, definition)


def set_first_step(flow: Flow, name: str) -> None:
    definition = copy.deepcopy(flow.definition)
    definition["initial_state"] = name
    save_definition(flow, definition)


def publish(flow: Flow, *, user: Any) -> FlowVersion:
    """An immutable version; new runs use it, running ones keep theirs."""
    problems = validate(flow.definition)
    if problems:
        raise ValidationError(problems)
    _check_trigger(flow.trigger)
    with transaction.atomic():
        flow = (
            Flow.objects.select_for_update(of=("self",))
            .select_related("current_version")
            .get(pk=flow.pk)
        )
        current = flow.current_version
        if current is not None and (
            current.definition == flow.definition
            and current.trigger == flow.trigger
            and current.reentry == flow.reentry
        ):
            hint = " Resume it to run it again." if flow.status == Flow.Status.PAUSED else ""
            raise ValidationError(
                f"Nothing has changed since version {current.number}: there is nothing new "
                f"to publish.{hint}"
            )
        number = (flow.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = FlowVersion.objects.create(
            flow=flow,
            number=number,
            definition=copy.deepcopy(flow.definition),
            trigger=flow.trigger,
            reentry=flow.reentry,
            created_by=user,
        )
        flow.current_version = version
        flow.status = Flow.Status.ACTIVE
        flow.save(update_fields=["current_version", "status", "updated_at"])
    engine.forget_active_flows()
    return version


def set_status(flow: Flow, status: str) -> Flow:
    allowed = {
        Flow.Status.PAUSED: {Flow.Status.ACTIVE},
        Flow.Status.ACTIVE: {Flow.Status.PAUSED},
        Flow.Status.ARCHIVED: {Flow.Status.DRAFT, Flow.Status.PAUSED, Flow.Status.ACTIVE},
    }
    if flow.status not in allowed.get(status, set()):
        raise ValidationError(f"A {flow.status} flow cannot become {status}.")
    if status == Flow.Status.ACTIVE and flow.current_version is None:
        raise ValidationError("Publish the flow first.")
    flow.status = status
    flow.save(update_fields=["status", "updated_at"])
    engine.forget_active_flows()
    return flow


def enroll_persona(flow: Flow, persona: Persona) -> list[int]:
    if flow.status != Flow.Status.ACTIVE:
        raise ValidationError("Only an active (published, not paused) flow can enrol personas.")
    with transaction.atomic():
        ids = engine.enroll(flow, [persona.pk], trigger={"type": "manual"})
    if not ids:
        raise ValidationError(
            "This persona cannot be enrolled: it is already in this flow (once per persona) "
            "or it is not active."
        )
    return ids


@transaction.atomic
def request_enrolment(
    *, flow: Flow, user: Any, lq: ListQuery, confirmed_count: Any, typed: str | None = None
) -> FlowEnrolment:
    """A confirmed bulk enrolment (``enrolment.request_enrolment``: same arguments, same
    errors), and its task queued once the job commits: the worker must find the job, and a
    rolled-back request queues nothing."""
    job = enrolment.request_enrolment(
        flow=flow, user=user, lq=lq, confirmed_count=confirmed_count, typed=typed
    )
    transaction.on_commit(lambda: run_enrolment.enqueue(job.pk))
    return job


# ---------------------------------------------------------------------------------------------
# JSON export / import


# Our own settings that Studio's shape has no place for ride in the Trigger state's
# properties under this key, and only when Studio's own start events cannot say them.
SETTINGS_KEY = "personas"


def export_document(flow: Flow) -> dict[str, Any]:
    """The flow as Twilio Studio's flow definition (``description``, ``states`` with a
    Trigger state, ``initial_state``, ``flags``): what Studio imports, and what
    ``import_json`` reads back unchanged. A trigger Studio cannot express (persona created,
    purchase…) and a re-entry other than once per persona are kept in the Trigger state's
    properties under ``SETTINGS_KEY``."""
    definition = copy.deepcopy(flow.definition or empty_definition())
    flags = definition.pop("flags", None)
    trigger = dict(flow.trigger or {"type": "manual"})
    studio_state = trigger.pop("studio_state", None)
    document = studio.to_studio(
        definition=definition,
        trigger=trigger,
        studio_trigger=studio_state,
        flags=flags if flags is not None else dict(studio.DEFAULT_FLAGS),
    )
    settings_: dict[str, Any] = {}
    if trigger.get("type") not in ("manual", "inbound_text") or len(trigger) > 1:
        settings_["trigger"] = trigger
    if flow.reentry != Flow.Reentry.ONCE:
        settings_["reentry"] = flow.reentry
    if (document.get("description") or "") != flow.name:
        settings_["name"] = flow.name
    if settings_:
        for state in document.get("states", []):
            if state.get("type") == "trigger":
                state.setdefault("properties", {})[SETTINGS_KEY] = settings_
    return document


def export_json(flow: Flow) -> str:
    return json.dumps(export_document(flow), indent=2, ensure_ascii=False, sort_keys=False)


def import_studio(text: str, *, user: Any) -> tuple[Flow, list[str]]:
    """A new draft flow from JSON: a Twilio Studio export, one of ours (``export_json``), or
    our earlier shapes (``{"name", "trigger", "reentry", "definition"}`` or a bare
    definition). Returns the flow and notes in plain words (Studio settings kept but handled
    here by the SMS backend, inert start events…). ValidationError lists every reason a
    file is refused, each naming its step."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from exc
    if not isinstance(data, dict):
        raise ValidationError("Expected a flow definition with “states”.")
    wrapper = data if isinstance(data.get("definition"), dict) else {}
    document = wrapper.get("definition") if wrapper else data
    if not isinstance(document, dict) or "states" not in document:
        raise ValidationError("Expected a flow definition with “states”.")
    if problem := unstorable_text(data):  # the name and trigger too, not only the steps
        raise ValidationError(problem)
    converted = studio.from_studio(document)
    definition = converted.definition
    if converted.flags is not None and converted.flags != studio.DEFAULT_FLAGS:
        definition["flags"] = converted.flags  # export writes the default ones itself
    studio_state = copy.deepcopy(converted.studio_trigger)
    ours: dict[str, Any] = {}
    if studio_state is not None:
        ours = (studio_state.get("properties") or {}).pop(SETTINGS_KEY, None) or {}
    problems = validate(definition)
    if problems:
        raise ValidationError(problems)
    trigger = dict(ours.get("trigger") or wrapper.get("trigger") or converted.trigger or {})
    trigger = trigger or {"type": "manual"}
    _check_trigger(trigger)
    if studio_state is not None and studio_state != _built_trigger_state(definition, trigger):
        trigger["studio_state"] = studio_state  # as Studio wrote it, for export
    reentry = ours.get("reentry") or wrapper.get("reentry") or Flow.Reentry.ONCE
    if reentry not in Flow.Reentry.values:
        raise ValidationError("The re-entry setting is not one this product knows.")
    name = str(
        ours.get("name") or wrapper.get("name") or document.get("description") or "Imported flow"
    )[:120]
    base, n = name, 2
    while Flow.objects.filter(name=name).exists():
        name = f"{base} ({n})"[:120]
        n += 1
    flow = Flow.objects.create(
        name=name, definition=definition, trigger=trigger, reentry=reentry, created_by=user
    )
    return flow, list(converted.notes)


def _built_trigger_state(definition: dict[str, Any], trigger: dict[str, Any]) -> Any:
    """The Trigger state export writes for this trigger when none is kept."""
    document = studio.to_studio(definition=definition, trigger=trigger, studio_trigger=None)
    return next((s for s in document.get("states", []) if s.get("type") == "trigger"), None)


def import_json(text: str, *, user: Any) -> Flow:
    return import_studio(text, user=user)[0]


# ---------------------------------------------------------------------------------------------
# Privacy: an erased persona's runs stop and their logs lose personal values


def scrub_erased(persona_ids: list[int], values: list[str]) -> None:
    runs = FlowRun.objects.filter(persona_id__in=persona_ids)
    runs.filter(status__in=[FlowRun.Status.RUNNING, FlowRun.Status.WAITING]).update(
        status=FlowRun.Status.STOPPED, error="The customer's data was deleted."
    )
    runs.update(context={})
    FlowStepLog.objects.filter(run__persona_id__in=persona_ids).update(inputs={}, outputs={})
