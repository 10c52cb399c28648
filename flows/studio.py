"""Twilio Studio flow definitions in and out: ``from_studio`` and ``to_studio``.

Our flow definitions are shaped like Studio's (``flows/definition.py``), but a real Studio export
differs in five places. This module converts between the two, and nothing else: plain functions
on JSON-like values, with no database or model access, and the input is never changed.

================  ===============================================  ===============================
Studio            Studio writes                                    we keep (internal form)
================  ===============================================  ===============================
``trigger``       a state, ``initial_state`` names it               our flow trigger + our
                                                                   ``initial_state``; the state
                                                                   itself in ``studio_trigger``
split conditions  inside each ``match`` transition                 ``properties.conditions`` with
                                                                   events ``match_1``, ``match_2``…
``send-message``  ``to`` / ``from`` / ``body`` / ``service`` …     ``{"channel": "text", "body"}``
``set-variables`` ``properties.variables: [{"key", "value"}]``     the same (a new step type)
``flags``         top level, ``{"allow_concurrent_calls": true}``  ``StudioImport.flags``
================  ===============================================  ===============================

Everything else (``description``, ``offset`` inside properties, our own step types, keys we do
not know) passes through unchanged in both directions, so ``to_studio(**from_studio(doc)
.as_export_args()) == doc`` for a Studio export, and internal → Studio → internal gives back the
same definition. (For the latter the definition is in the editor's form: a split's transitions
in ``events_for`` order, a Send Message's ``suppressed`` right after ``sent``, no ``to`` equal to
the default and no empty ``"studio"``; anything else comes back in that form.)

Where Studio data has no meaning here it is kept, opaque, under a ``"studio"`` key (in a step's
``properties`` or in one split condition) and written back on export:

- ``"absent"``: Studio keys that export would otherwise fill with their default (``to``,
  ``from``, a condition's ``friendly_name`` / ``arguments``) but the original left out.
- ``"transitions"``: ``[[index, transition], …]``, Studio transitions with no equivalent here
  that lead nowhere (``delivered``, ``undelivered`` on a Send Message), with their position.
- send-message: ``from`` (when not ``{{flow.channel.address}}``), ``service``, ``channel`` (a
  Studio channel SID, not our text/email channel), ``media_url``, ``attributes``.
- split condition: ``friendly_name`` (when not Studio's default "If value <type> <value>"),
  ``arguments`` (when not ``[input]``), ``value_list`` (the value was a list, joined with ",").

Values equal to what export writes by default are left out on import, which is what makes both
round trips exact. The engine ignores ``"studio"``; editors must keep it when saving a step.

Decisions
---------

*Widgets we do not run* (``make-http-request``, ``run-function``, ``say-play``,
``send-and-wait-for-reply``, …; see ``UNSUPPORTED_WIDGETS``) refuse the import: one
``StudioError`` lists every such widget by name and type with the reason. Importing them as
disabled steps was rejected: a skipped HTTP request leaves the templates that read its output
blank, a skipped "send & wait" makes the following split test an empty reply, so the flow would
run but not as it does in Studio, silently. A refusal makes the user choose. Widget types that
are neither Studio's known ones nor ours pass through; ``validate()`` reports them.

*A match transition with several conditions* (Studio requires all of them) is refused, naming
the step: our splits test one condition per branch, and rewriting an AND as chained splits would
have to copy the later branches into every link. The user splits it into two Split steps.

*Condition types*: ``CONDITION_TYPES`` maps each supported Studio type onto an operator; those
not in ``flows.definition.SPLIT_OPERATORS`` yet are in ``NEW_OPERATORS`` (for the engine to
add). The date and time types (``UNSUPPORTED_CONDITIONS``) are refused: Studio compares them in
the account's time zone with its own formats, and guessing would route customers wrongly
without any error.

*The trigger*: ``incomingRequest`` (a start through the API or manual enrolment) becomes our
``{"type": "manual"}``, ``incomingMessage`` (the customer texts in) ``{"type":
"inbound_text"}``. When both are connected, ``incomingRequest`` wins if both lead to the same
widget; if they lead to different widgets the flow is refused (a flow here has one start, and
the other branch would be unreachable). Other events (``incomingCall``,
``incomingConversationMessage``, ``incomingParent``) are kept in the trigger but never start a
run. With nothing connected the flow starts at its first widget. Studio cannot express our other
trigger types (purchase, consent…): export writes them as ``incomingRequest``, and the caller
keeps our trigger beside the definition.

*Send Message*: ``to`` defaults to the persona (``{{contact.channel.address}}`` or absent);
another ``to`` is kept as our ``to`` property (the engine must honour it). A ``suppressed``
transition (no text consent) is added, without ``next``, after ``sent`` when missing, and export
leaves out a ``suppressed`` transition that leads nowhere, since Studio has no such event.
Email sends (``channel: "email"``) have no Studio form and are exported in our shape.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

TRIGGER = "trigger"
DEFAULT_TRIGGER_NAME = "Trigger"
DEFAULT_FLAGS: dict[str, Any] = {"allow_concurrent_calls": True}
CONTACT_ADDRESS = "{{contact.channel.address}}"
FLOW_ADDRESS = "{{flow.channel.address}}"

# The Studio trigger events that start a run here, and the trigger each one becomes.
START_EVENTS: dict[str, dict[str, str]] = {
    "incomingRequest": {"type": "manual"},
    "incomingMessage": {"type": "inbound_text"},
}
# The transitions Studio gives a new Trigger widget, in Studio's order.
STUDIO_TRIGGER_EVENTS = (
    "incomingMessage",
    "incomingCall",
    "incomingConversationMessage",
    "incomingRequest",
    "incomingParent",
)

# Studio condition type -> our split operator (a one-to-one map, so export can reverse it).
CONDITION_TYPES: dict[str, str] = {
    "equal_to": "equal_to",
    "not_equal_to": "not_equal_to",
    "matches_any_of": "in_list",
    "does_not_match_any_of": "not_in_list",
    "is_blank": "is_empty",
    "is_not_blank": "is_not_empty",
    "contains": "contains",
    "does_not_contain": "not_contains",
    "starts_with": "starts_with",
    "does_not_start_with": "not_starts_with",
    "regex": "regex",
    "less_than": "less_than",
    "greater_than": "greater_than",
}
OPERATOR_TYPES: dict[str, str] = {op: kind for kind, op in CONDITION_TYPES.items()}

# Operators a converted flow may use that flows.definition.SPLIT_OPERATORS does not have yet,
# with labels in its style. Like ours, they compare case-insensitively after stripping spaces:
# not_in_list is the negation of in_list, not_contains of contains, not_starts_with of
# starts_with. regex tests the pattern anywhere in the value (re.search, IGNORECASE); the
# pattern comes from an imported file, so the engine must bound its cost (pattern length,
# input length, a time-limited matcher) before running it on customers' texts.
NEW_OPERATORS: dict[str, str] = {
    "not_in_list": "is not one of (comma-separated)",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "not_starts_with": "does not start with",
    "regex": "matches the regular expression",
}
# Step types a converted flow may use that flows.definition.STEP_TYPES does not have yet, in
# its format. set-variables: properties {"variables": [{"key", "value"}]}, values are templates
# stored for the run and read back as {{flow.variables.KEY}}.
NEW_STEP_TYPES: dict[str, dict[str, Any]] = {
    "set-variables": {"label": "Set Variables", "events": ["next"]},
}
UNSUPPORTED_CONDITIONS: dict[str, str] = {
    kind: (
        "Studio compares dates and times in the account's time zone and formats, which flows "
        "here cannot reproduce; test a number or text instead, or use a Wait step"
    )
    for kind in ("is_before_time", "is_after_time", "is_before_date", "is_after_date")
}

_CALL = "it works on a phone call, and flows here do not handle calls"
# Studio widget type -> (the name Studio shows, why it cannot run here).
UNSUPPORTED_WIDGETS: dict[str, tuple[str, str]] = {
    "make-http-request": (
        "Make HTTP Request",
        "it calls another web service, and flows here only update personas and send messages",
    ),
    "run-function": ("Run Function", "it runs code on Twilio Functions, which is not available"),
    "run-subflow": ("Run Subflow", "subflows are not available; copy its steps into this flow"),
    "send-and-wait-for-reply": (
        "Send & Wait For Reply",
        "flows here do not wait for a reply; use Send Message",
    ),
    "send-to-flex": ("Send To Flex", "there is no hand-off to Flex agents here"),
    "send-to-auto-pilot": ("Send To Autopilot", "there is no Autopilot here"),
    "connect-virtual-agent": ("Connect Virtual Agent", _CALL),
    "add-twiml-redirect": ("TwiML Redirect", "it hands the execution to other TwiML"),
    "start-conversation": ("Start Conversation", "there are no Conversations here"),
    "say-play": ("Say/Play", _CALL),
    "gather-input-on-call": ("Gather Input On Call", _CALL),
    "connect-call-to": ("Connect Call To", _CALL),
    "record-voicemail": ("Record Voicemail", _CALL),
    "record-call": ("Call Recording", _CALL),
    "enqueue-call": ("Enqueue Call", _CALL),
    "make-outgoing-call": ("Make Outgoing Call", _CALL),
    "make-outgoing-call-v2": ("Make Outgoing Call", _CALL),
    "capture-payments": ("Capture Payments", _CALL),
    "fork-stream": ("Fork Stream", _CALL),
}

_OUR_CHANNELS = ("text", "email")
# Send Message properties kept opaque (under "studio"): our SMS backend picks the sender.
_SEND_KEPT = ("service", "channel", "media_url", "attributes")
_MATCH_EVENT = re.compile(r"match_([1-9][0-9]*)")
_TEMPLATE_PATH = re.compile(r"\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")
# Template paths a run can read (flows.engine._context; flow.variables with set-variables).
# What ``trigger`` holds depends on the trigger, so every trigger path counts as known.
_KNOWN_PATHS = (
    "persona",
    "trigger",
    "widgets",
    "flow.name",
    "flow.run_id",
    "flow.version",
    "flow.variables",
)
_MISSING = object()


class StudioError(ValidationError):
    """A Studio flow that cannot be imported; ``messages`` lists every reason, each naming its
    step."""


@dataclass
class StudioImport:
    """A converted flow.

    ``definition``: our internal definition (``{"description", "initial_state", "states"}``).
    ``trigger``: our flow trigger (``{"type": "manual"}`` or ``{"type": "inbound_text"}``), or
    None when the document had no Studio trigger (our earlier shape: the caller decides).
    ``studio_trigger``: Studio's trigger state, unchanged, for export (None if there was none).
    ``flags``: the top-level ``flags``, or None. ``notes``: what the user should know, in plain
    words (kept Studio settings, inert starts, Studio template values not provided here).
    """

    definition: dict[str, Any]
    trigger: dict[str, Any] | None = None
    studio_trigger: dict[str, Any] | None = None
    flags: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def as_export_args(self) -> dict[str, Any]:
        """The keyword arguments of ``to_studio`` that write this flow back (copies)."""
        return {
            "definition": copy.deepcopy(self.definition),
            "trigger": copy.deepcopy(self.trigger),
            "studio_trigger": copy.deepcopy(self.studio_trigger),
            "flags": copy.deepcopy(self.flags),
        }


# ---------------------------------------------------------------------------------------------
# Studio -> internal


def from_studio(document: Any) -> StudioImport:
    """Convert a Studio flow definition (or one of ours, which passes through) to our form.

    ``document``: ``{"description", "states": [...], "initial_state", "flags"}`` as Studio
    exports it. Raises ``StudioError`` listing every widget, condition or transition that
    cannot run here. The result is not validated: call ``flows.definition.validate()`` on
    ``definition`` (it may use ``NEW_STEP_TYPES`` and ``NEW_OPERATORS``, see ``new_features``).
    """
    if not isinstance(document, dict) or not isinstance(document.get("states"), list):
        raise StudioError("Expected a Studio flow definition: a JSON object with “states”.")
    problems: list[str] = []
    notes: list[str] = []
    triggers = [s for s in document["states"] if isinstance(s, dict) and s.get("type") == TRIGGER]
    if len(triggers) > 1:
        problems.append("The flow has more than one Trigger widget; keep one.")
    states = [
        _state_from_studio(s, problems, notes)
        for s in document["states"]
        if not any(s is t for t in triggers)
    ]
    definition = {k: copy.deepcopy(v) for k, v in document.items() if k not in ("states", "flags")}
    definition["states"] = states
    trigger = studio_trigger = None
    if triggers:
        studio_trigger = copy.deepcopy(triggers[0])
        event, initial, other = _start(studio_trigger, _first_name(states))
        name = studio_trigger.get("name", DEFAULT_TRIGGER_NAME)
        if other:
            problems.append(
                f"Step “{name}” (Trigger): an API request starts at “{initial}” and an incoming "
                f"message at “{other}”; a flow here has one start: connect both to the same "
                "widget, or make two flows."
            )
        definition["initial_state"] = initial
        trigger = dict(START_EVENTS.get(event or "", {"type": "manual"}))
        notes.extend(_trigger_notes(studio_trigger, event, initial))
    if problems:
        raise StudioError(problems)
    notes.extend(_template_notes(states))
    flags = copy.deepcopy(document["flags"]) if "flags" in document else None
    return StudioImport(definition, trigger, studio_trigger, flags, notes)


def new_features(definition: dict[str, Any]) -> list[str]:
    """The ``NEW_STEP_TYPES`` and ``NEW_OPERATORS`` names a definition uses, sorted."""
    used = set()
    for state in definition.get("states") or []:
        if not isinstance(state, dict):
            continue
        if state.get("type") in NEW_STEP_TYPES:
            used.add(state["type"])
        props = state.get("properties")
        if state.get("type") == "split-based-on" and isinstance(props, dict):
            for cond in props.get("conditions") or []:
                if isinstance(cond, dict) and cond.get("operator") in NEW_OPERATORS:
                    used.add(cond["operator"])
    return sorted(used)


def _state_from_studio(state: Any, problems: list[str], notes: list[str]) -> Any:
    if not isinstance(state, dict):
        return copy.deepcopy(state)
    kind = state.get("type")
    props = state.get("properties")
    if kind in UNSUPPORTED_WIDGETS:
        label, reason = UNSUPPORTED_WIDGETS[kind]
        problems.append(f"Step “{state.get('name')}” ({label}) can't run here: {reason}.")
        return copy.deepcopy(state)
    if kind == "split-based-on" and isinstance(props, dict) and "conditions" not in props:
        return _split_from_studio(state, problems, notes)
    if kind == "send-message" and isinstance(props, dict):
        if props.get("channel") not in _OUR_CHANNELS:
            return _send_from_studio(state, problems, notes)
    return copy.deepcopy(state)


def _split_from_studio(state: dict, problems: list[str], notes: list[str]) -> dict:
    name = state.get("name")
    props = state["properties"]
    out = copy.deepcopy(state)
    out["properties"] = new_props = copy.deepcopy(props)
    conditions: list[dict] = []
    transitions: list[Any] = []
    kept: list[list] = []
    for index, t in enumerate(state.get("transitions") or []):
        event = t.get("event") if isinstance(t, dict) else None
        if event == "match":
            found = t.get("conditions") or []
            if len(found) != 1:
                problems.append(
                    f"Step “{name}” (Split Based On…): a “match” transition has "
                    f"{len(found) or 'no'} conditions; here each branch tests exactly one: "
                    "split it into one Split step per condition."
                )
                continue
            cond = _condition_from_studio(name, found[0], props.get("input"), problems)
            conditions.append(cond)
            if "arguments" in cond.get("studio", {}):
                notes.append(
                    f"Step “{name}”: condition {len(conditions)} names other arguments "
                    f"({cond['studio']['arguments']}) than the value tested; here every "
                    f"condition tests the step's input “{props.get('input')}”."
                )
            moved = {k: copy.deepcopy(v) for k, v in t.items() if k != "conditions"}
            transitions.append({**moved, "event": f"match_{len(conditions)}"})
        elif event == "noMatch":
            transitions.append(copy.deepcopy(t))
        else:
            _keep_aside(name, index, t, kept, problems, transitions)
    new_props["conditions"] = conditions
    if kept:
        new_props.setdefault("studio", {})["transitions"] = kept
    if "transitions" in state:
        out["transitions"] = transitions
    return out


def _default_friendly_name(kind: Any, value: Any) -> str:
    """Studio's own label for a new condition ("If value equal_to yes")."""
    if value is _MISSING:
        return f"If value {kind}"
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    return f"If value {kind} {value}"


def _condition_from_studio(step: Any, cond: Any, input_: Any, problems: list[str]) -> dict:
    if not isinstance(cond, dict):
        problems.append(f"Step “{step}”: a condition must be an object.")
        return {}
    kind = cond.get("type")
    label = cond.get("friendly_name") or kind
    if kind in UNSUPPORTED_CONDITIONS:
        problems.append(
            f"Step “{step}”: the condition “{label}” ({kind}) can't be tested here: "
            f"{UNSUPPORTED_CONDITIONS[kind]}."
        )
        return {}
    if kind not in CONDITION_TYPES:
        problems.append(f"Step “{step}”: the condition “{label}” has an unknown type “{kind}”.")
        return {}
    out: dict[str, Any] = {"operator": CONDITION_TYPES[kind]}
    studio: dict[str, Any] = {}
    value = cond.get("value", _MISSING)
    if isinstance(value, list):
        out["value"] = ",".join(str(v) for v in value)
        studio["value_list"] = True
    elif value is not _MISSING:
        out["value"] = copy.deepcopy(value)
    absent = []
    defaults = {"friendly_name": _default_friendly_name(kind, value), "arguments": [input_]}
    for key, default in defaults.items():
        if key not in cond:
            absent.append(key)
        elif cond[key] != default:
            studio[key] = copy.deepcopy(cond[key])
    if absent:
        studio["absent"] = absent
    if studio:
        out["studio"] = studio
    for key, item in cond.items():
        if key not in ("type", "value", "friendly_name", "arguments"):
            out[key] = copy.deepcopy(item)
    return out


def _send_from_studio(state: dict, problems: list[str], notes: list[str]) -> dict:
    name = state.get("name")
    props = state["properties"]
    new_props: dict[str, Any] = {"channel": "text"}
    studio: dict[str, Any] = {}
    absent = []
    for key, default in (("to", CONTACT_ADDRESS), ("from", FLOW_ADDRESS)):
        if key not in props:
            absent.append(key)
        elif props[key] != default:
            (new_props if key == "to" else studio)[key] = copy.deepcopy(props[key])
    for key, value in props.items():
        if key in _SEND_KEPT:
            studio[key] = copy.deepcopy(value)
        elif key not in ("to", "from"):
            new_props[key] = copy.deepcopy(value)
    transitions: list[Any] = []
    kept: list[list] = []
    for index, t in enumerate(state.get("transitions") or []):
        event = t.get("event") if isinstance(t, dict) else None
        if event in ("sent", "failed", "suppressed") or not isinstance(t, dict):
            transitions.append(copy.deepcopy(t))
        else:
            _keep_aside(name, index, t, kept, problems, transitions)
    events = [t.get("event") for t in transitions if isinstance(t, dict)]
    if "suppressed" not in events:
        at = events.index("sent") + 1 if "sent" in events else len(transitions)
        transitions.insert(at, {"event": "suppressed"})
    if absent:
        studio["absent"] = absent
    if kept:
        studio["transitions"] = kept
    if studio:
        new_props["studio"] = studio
    out = copy.deepcopy(state)
    out["properties"] = new_props
    out["transitions"] = transitions
    settings = [k for k in ("from", *_SEND_KEPT) if k in studio]
    if settings:
        notes.append(
            f"Step “{name}”: Studio's {', '.join(settings)} are kept for export only; here the "
            "SMS backend chooses the sender"
            + (", and the media is not sent." if "media_url" in studio else ".")
        )
    if "to" in new_props:
        notes.append(
            f"Step “{name}”: Studio sends this message to “{new_props['to']}”, not to the "
            "persona's own number; it is kept as the step's “to”."
        )
    return out


def _keep_aside(
    step: Any, index: int, t: Any, kept: list[list], problems: list[str], transitions: list
) -> None:
    """A Studio transition with no equivalent here: kept for export if it leads nowhere."""
    if not isinstance(t, dict):
        transitions.append(copy.deepcopy(t))
        return
    event = t.get("event")
    if t.get("next"):
        hint = (
            " (delivery receipts are not followed here; connect “sent” or “failed” instead)"
            if event in ("delivered", "undelivered")
            else ""
        )
        problems.append(
            f"Step “{step}”: the “{event}” transition to “{t['next']}” has no equivalent "
            f"here{hint}."
        )
        return
    kept.append([index, copy.deepcopy(t)])


def _first_name(states: list[Any]) -> str:
    for state in states:
        if isinstance(state, dict) and isinstance(state.get("name"), str):
            return state["name"]
    return ""


def _start(trigger_state: dict, fallback: str) -> tuple[str | None, str, str]:
    """``(event, first step, conflicting step)`` of a Studio trigger state: the start event
    (None when no start is connected, then the first step is ``fallback``), and the incoming
    message's target when it differs from the API request's one."""
    targets: dict[str, str] = {}
    for t in trigger_state.get("transitions") or []:
        if isinstance(t, dict) and t.get("event") in START_EVENTS and t.get("next"):
            targets.setdefault(t["event"], t["next"])
    request, message = targets.get("incomingRequest"), targets.get("incomingMessage")
    if request:
        return "incomingRequest", request, message if message and message != request else ""
    if message:
        return "incomingMessage", message, ""
    return None, fallback, ""


def _trigger_notes(trigger_state: dict, event: str | None, initial: str) -> list[str]:
    name = trigger_state.get("name", DEFAULT_TRIGGER_NAME)
    notes = []
    if event is None:
        notes.append(
            f"Step “{name}” (Trigger): no start is connected; the flow starts at its first "
            f"step “{initial}” when a persona is enrolled."
        )
    for t in trigger_state.get("transitions") or []:
        if not isinstance(t, dict) or not t.get("next") or t.get("event") == event:
            continue
        if t.get("event") == "incomingMessage":
            notes.append(
                f"Step “{name}” (Trigger): incoming messages also start this flow in Studio; "
                "here it starts by enrolment or the API (choose the inbound text trigger "
                "instead if customers' texts should start it)."
            )
        else:
            notes.append(
                f"Step “{name}” (Trigger): the “{t.get('event')}” start (to “{t['next']}”) is "
                "kept for export but never starts a run here."
            )
    return notes


def _template_paths(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "studio":
                _template_paths(item, found)
    elif isinstance(value, list):
        for item in value:
            _template_paths(item, found)
    elif isinstance(value, str) and "{{" in value:
        found.update(_TEMPLATE_PATH.findall(value))


def _template_notes(states: list[Any]) -> list[str]:
    """One note naming the Studio template values (``{{contact.…}}``, ``{{flow.data.…}}``…)
    that a run here does not provide, so they would render empty (validate() refuses most)."""
    unknown: dict[str, list[str]] = {}
    for state in states:
        if not isinstance(state, dict):
            continue
        found: set[str] = set()
        _template_paths(state.get("properties"), found)
        for path in sorted(found):
            if not any(path == k or path.startswith(k + ".") for k in _KNOWN_PATHS):
                unknown.setdefault(path, []).append(str(state.get("name")))
    if not unknown:
        return []
    listed = "; ".join(f"{path} (in {', '.join(steps)})" for path, steps in unknown.items())
    return [f"These Studio values are not provided here and render empty: {listed}."]


# ---------------------------------------------------------------------------------------------
# internal -> Studio


def to_studio(
    *,
    definition: dict[str, Any],
    trigger: dict[str, Any] | None,
    studio_trigger: dict[str, Any] | None = None,
    flags: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write our definition in Studio's shape: ``{"description", "states", "initial_state",
    "flags"}``.

    The Trigger state is ``studio_trigger`` as kept by ``from_studio`` (unchanged unless our
    start moved: then the transition for ``trigger`` is pointed at our ``initial_state``), or,
    without one, a new Trigger whose ``incomingMessage`` (``inbound_text``) or
    ``incomingRequest`` (any other trigger) leads to our first step. With neither ``trigger``
    nor ``studio_trigger`` no Trigger is written (our earlier, trigger-less shape). ``flags``
    is written when given (``DEFAULT_FLAGS`` is what Studio uses). Never raises: steps with no
    Studio form (our own types, email sends) are written in our shape.
    """
    out: dict[str, Any] = {}
    if "description" in definition:
        out["description"] = copy.deepcopy(definition["description"])
    for key, value in definition.items():
        if key not in ("description", "states", "initial_state"):
            out[key] = copy.deepcopy(value)
    raw_states = definition.get("states")
    states = (
        [_state_to_studio(s) for s in raw_states]
        if isinstance(raw_states, list)
        else copy.deepcopy(raw_states)
    )
    initial = definition.get("initial_state")
    if trigger is not None or studio_trigger is not None:
        names = [s.get("name") for s in states or [] if isinstance(s, dict)]
        start = _trigger_for_export(
            trigger=trigger,
            studio_trigger=studio_trigger,
            initial=initial if isinstance(initial, str) else "",
            names=names,
        )
        out["states"] = [start, *(states or [])]
        out["initial_state"] = start.get("name", DEFAULT_TRIGGER_NAME)
    else:
        out["states"] = states
        if "initial_state" in definition:
            out["initial_state"] = copy.deepcopy(initial)
    if flags is not None:
        out["flags"] = copy.deepcopy(flags)
    return out


def _trigger_for_export(
    *, trigger: dict | None, studio_trigger: dict | None, initial: str, names: list
) -> dict:
    current, start, other = None, "", ""
    if studio_trigger is not None:
        current, start, other = _start(studio_trigger, _first_name([{"name": n} for n in names]))
    if trigger is None:
        wanted = current or "incomingRequest"
    else:
        wanted = "incomingMessage" if trigger.get("type") == "inbound_text" else "incomingRequest"
    if studio_trigger is None:
        name, n = DEFAULT_TRIGGER_NAME, 2
        while name in names:
            name, n = f"{DEFAULT_TRIGGER_NAME}_{n}", n + 1
        return {
            "name": name,
            "type": TRIGGER,
            "transitions": [
                {"event": e, **({"next": initial} if e == wanted and initial else {})}
                for e in STUDIO_TRIGGER_EVENTS
            ],
            "properties": {"offset": {"x": 0, "y": 0}},
        }
    kept = copy.deepcopy(studio_trigger)
    if start == initial and not other and (current or "incomingRequest") == wanted:
        return kept  # importing it again gives the same start
    other_event = "incomingMessage" if wanted == "incomingRequest" else "incomingRequest"
    transitions = kept.get("transitions")
    if not isinstance(transitions, list):
        kept["transitions"] = transitions = []
    found = False
    for t in transitions:
        if not isinstance(t, dict):
            continue
        if t.get("event") == wanted and not found:
            found = True
            if initial:
                t["next"] = initial
            else:
                t.pop("next", None)
        elif t.get("event") == other_event and t.get("next") and t["next"] != initial:
            t.pop("next")  # it would otherwise be a second start, refused on import
    if not found:
        transitions.append({"event": wanted, **({"next": initial} if initial else {})})
    return kept


def _state_to_studio(state: Any) -> Any:
    if not isinstance(state, dict) or not isinstance(state.get("properties"), dict):
        return copy.deepcopy(state)
    props = state["properties"]
    if state.get("type") == "split-based-on" and "conditions" in props:
        return _split_to_studio(state)
    if state.get("type") == "send-message" and props.get("channel") == "text":
        return _send_to_studio(state)
    return copy.deepcopy(state)


def _condition_to_studio(cond: Any, input_: Any) -> Any:
    if not isinstance(cond, dict):
        return copy.deepcopy(cond)
    studio = cond.get("studio") if isinstance(cond.get("studio"), dict) else {}
    absent = set(studio.get("absent") or [])
    kind = OPERATOR_TYPES.get(cond.get("operator"), cond.get("operator"))
    value = copy.deepcopy(cond["value"]) if "value" in cond else _MISSING
    if studio.get("value_list") and isinstance(value, str):
        value = value.split(",") if value else []
    out: dict[str, Any] = {}
    if "friendly_name" not in absent:
        out["friendly_name"] = copy.deepcopy(
            studio.get("friendly_name", _default_friendly_name(kind, value))
        )
    if "arguments" not in absent:
        out["arguments"] = copy.deepcopy(studio.get("arguments", [input_]))
    out["type"] = kind
    if value is not _MISSING:
        out["value"] = value
    for key, item in cond.items():
        if key not in ("operator", "value", "studio"):
            out[key] = copy.deepcopy(item)
    return out


def _split_to_studio(state: dict) -> dict:
    props = state["properties"]
    conditions = props.get("conditions") if isinstance(props.get("conditions"), list) else []
    studio = props.get("studio") if isinstance(props.get("studio"), dict) else {}
    out = copy.deepcopy(state)
    out["properties"] = {
        k: copy.deepcopy(v) for k, v in props.items() if k not in ("conditions", "studio")
    }
    # match_N transitions become Studio "match" transitions in condition order (Studio tries
    # them in list order, we try conditions in order), filling the places the match_* held.
    transitions: list[Any] = []
    slots: list[int] = []
    matches: dict[int, dict] = {}
    for t in state.get("transitions") or []:
        m = _MATCH_EVENT.fullmatch(str(t.get("event"))) if isinstance(t, dict) else None
        i = int(m.group(1)) if m else 0
        if m and i <= len(conditions) and i not in matches:
            matches[i] = t
            slots.append(len(transitions))
            transitions.append(None)
        else:
            transitions.append(copy.deepcopy(t))
    input_ = props.get("input")
    for slot, i in zip(slots, sorted(matches), strict=True):
        moved = {k: copy.deepcopy(v) for k, v in matches[i].items() if k != "event"}
        cond = _condition_to_studio(conditions[i - 1], input_)
        transitions[slot] = {**moved, "event": "match", "conditions": [cond]}
    for i, cond in enumerate(conditions, start=1):
        if i not in matches:  # a condition nothing connects: Studio still needs its transition
            condition = _condition_to_studio(cond, input_)
            transitions.append({"event": "match", "conditions": [condition]})
    _put_back(transitions, studio.get("transitions"))
    if "transitions" in state or transitions:
        out["transitions"] = transitions
    return out


def _send_to_studio(state: dict) -> dict:
    props = state["properties"]
    studio = props.get("studio") if isinstance(props.get("studio"), dict) else {}
    absent = set(studio.get("absent") or [])
    new_props: dict[str, Any] = {}
    if "to" in props or "to" not in absent:
        new_props["to"] = copy.deepcopy(props.get("to", CONTACT_ADDRESS))
    if "from" in studio or "from" not in absent:
        new_props["from"] = copy.deepcopy(studio.get("from", FLOW_ADDRESS))
    for key, value in props.items():
        if key not in ("channel", "to", "studio"):
            new_props[key] = copy.deepcopy(value)
    for key, value in studio.items():
        if key not in ("absent", "transitions", "from"):
            new_props[key] = copy.deepcopy(value)
    transitions = [
        copy.deepcopy(t)
        for t in state.get("transitions") or []
        if not (isinstance(t, dict) and t.get("event") == "suppressed" and not t.get("next"))
    ]
    _put_back(transitions, studio.get("transitions"))
    out = copy.deepcopy(state)
    out["properties"] = new_props
    if "transitions" in state or transitions:
        out["transitions"] = transitions
    return out


def _put_back(transitions: list, kept: Any) -> None:
    """Insert the transitions ``_keep_aside`` kept, at their original positions."""
    if not isinstance(kept, list):
        return
    for item in sorted((k for k in kept if isinstance(k, list) and len(k) == 2), key=_index):
        transitions.insert(min(_index(item), len(transitions)), copy.deepcopy(item[1]))


def _index(item: list) -> int:
    return item[0] if isinstance(item[0], int) else 0
