"""Flow definitions in the shape of a Twilio Studio flow definition, and their validation.

``{"description", "initial_state", "states": [{"name", "type", "properties",
"transitions": [{"event", "next"}]}]}`` — a transition without ``next`` ends the run.
Every message names the step it is about.
"""

from __future__ import annotations

import re
from typing import Any

import regex

from personas.normalize import unstorable

from .templating import check

CHANNELS = ("text", "email", "voice", "push", "browser")
SPLIT_OPERATORS = {
    "equal_to": "is equal to",
    "not_equal_to": "is not equal to",
    "contains": "contains",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "greater_than": "is greater than",
    "less_than": "is less than",
    "in_list": "is one of (comma-separated)",
    "not_in_list": "is not one of (comma-separated)",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "not_starts_with": "does not start with",
    "regex": "matches the regular expression",
}
STEP_TYPES: dict[str, dict[str, Any]] = {
    "persona-update": {"label": "Persona Update", "events": ["next"], "beta": True},
    "update-profile-traits": {
        "label": "Update Profile Traits",
        "events": ["profileUpdated", "profileNotFound", "failed"],
    },
    "look-up-profile": {
        "label": "Look Up Profile",
        "events": ["profileFound", "profileNotFound", "failed"],
    },
    "split-based-on": {"label": "Split Based On…", "events": ["noMatch"]},
    "wait": {"label": "Wait", "events": ["next"]},
    "send-message": {"label": "Send Message", "events": ["sent", "suppressed", "failed"]},
    "set-variables": {"label": "Set Variables", "events": ["next"]},
}
# A send-message step texts the persona's own number; Studio's way of saying so.
OWN_ADDRESSES = (
    "",
    "{{contact.channel.address}}",
    "{{trigger.persona.phone}}",
    "{{persona.phone}}",
)
MAX_PATTERN = 200  # characters of a "matches the regular expression" condition
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def step_name_problem(name: Any) -> str:
    """Why ``name`` cannot name a step ("" when it can): letters, digits and _, a letter or _
    first, at most 64 characters (it appears in templates as ``widgets.NAME`` and in URLs)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        return (
            f"“{str(name)[:40]}” is not a valid step name: use letters, digits and _, "
            "starting with a letter (at most 64)."
        )
    return ""


def template_fields(state: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The Liquid templates of one step: ``(field, text, item)`` where field names the
    editor's field (``add``, ``set``, ``traits``, ``variables``, ``profile_connect_sid``,
    ``identifier``, ``input``, ``conditions``, ``body``, ``to``) and item the key of a
    ``key = value`` line ("" for a single value)."""
    props = state.get("properties") or {}
    if not isinstance(props, dict):
        return []
    out: list[tuple[str, str, str]] = []
    kind = state.get("type")
    sections = {
        "persona-update": ("add", "set"),
        "update-profile-traits": ("traits",),
        "set-variables": ("variables",),
    }.get(kind, ())
    for section in sections:
        for item in props.get(section, []) or []:
            if isinstance(item, dict) and isinstance(item.get("value"), str):
                out.append((section, item["value"], str(item.get("key", ""))))
    singles = {
        "update-profile-traits": ("profile_connect_sid",),
        "look-up-profile": ("identifier",),
        "split-based-on": ("input",),
        "send-message": ("body", "to"),
    }.get(kind, ())
    for name in singles:
        if isinstance(props.get(name), str):
            out.append((name, props[name], ""))
    if kind == "split-based-on":
        for i, cond in enumerate(props.get("conditions", []) or [], start=1):
            if isinstance(cond, dict) and isinstance(cond.get("value"), str):
                out.append(("conditions", cond["value"], f"condition {i}"))
    return out


def template_problems(state: dict[str, Any], step_names: set[str]) -> list[tuple[str, str]]:
    """``(field, problem)`` for every template of the step that cannot render as written."""
    out = []
    for field, text, item in template_fields(state):
        for problem in check(text, step_names=step_names):
            out.append((field, f"{item}: {problem}" if item else problem))
    return out


def events_for(state: dict[str, Any]) -> list[str]:
    kind = state.get("type")
    events = list(STEP_TYPES.get(kind, {}).get("events", []))
    if kind == "split-based-on":
        conditions = (state.get("properties") or {}).get("conditions") or []
        events = [*events, *[f"match_{i + 1}" for i in range(len(conditions))]]
    return events


def _kv_list(step: str, props: dict, name: str, problems: list[str], *, values: bool) -> None:
    items = props.get(name, [])
    if not isinstance(items, list):
        problems.append(f"Step “{step}”: “{name}” must be a list.")
        return
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            problems.append(f"Step “{step}”: every item of “{name}” needs a key.")
            continue
        if not _KEY_RE.match(item["key"]) or len(item["key"]) > 64:
            problems.append(f"Step “{step}”: “{item['key'][:40]}” is not a valid attribute key.")
        if values and not isinstance(item.get("value", ""), str | int | float | bool):
            problems.append(f"Step “{step}”: the value of “{item['key']}” must be text.")


def _check_properties(state: dict[str, Any], problems: list[str]) -> None:
    name, kind = state["name"], state["type"]
    props = state.get("properties") or {}
    if not isinstance(props, dict):
        problems.append(f"Step “{name}”: properties must be an object.")
        return
    if kind == "persona-update":
        for section in ("add", "set"):
            _kv_list(name, props, section, problems, values=True)
        _kv_list(name, props, "remove", problems, values=False)
        for channel in props.get("force_opt_out", []) or []:
            if channel not in CHANNELS:
                problems.append(f"Step “{name}”: unknown opt-out channel “{channel}”.")
    elif kind == "update-profile-traits":
        if not str(props.get("profile_connect_sid", "")).strip():
            problems.append(f"Step “{name}”: profile_connect_sid is required.")
        _kv_list(name, props, "traits", problems, values=True)
        if not props.get("traits"):
            problems.append(f"Step “{name}”: add at least one trait to update.")
    elif kind == "look-up-profile":
        if not str(props.get("identifier", "")).strip():
            problems.append(f"Step “{name}”: identifier is required (a phone, email, id…).")
    elif kind == "split-based-on":
        if not str(props.get("input", "")).strip():
            problems.append(f"Step “{name}”: the value to test (input) is required.")
        conditions = props.get("conditions", [])
        if not isinstance(conditions, list) or not conditions:
            problems.append(f"Step “{name}”: add at least one condition.")
        else:
            for i, cond in enumerate(conditions, start=1):
                if not isinstance(cond, dict) or cond.get("operator") not in SPLIT_OPERATORS:
                    problems.append(f"Step “{name}”: condition {i} has an unknown operator.")
                elif cond["operator"] == "regex":
                    if why := pattern_problem(str(cond.get("value", ""))):
                        problems.append(f"Step “{name}”: condition {i}: {why}")
    elif kind == "wait":
        unit = props.get("unit", "minutes")
        if "until_time" in props:
            if not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", str(props["until_time"])):
                problems.append(f"Step “{name}”: until_time must look like 09:30.")
        else:
            try:
                amount = int(props.get("amount", 0))
            except (TypeError, ValueError):
                amount = -1
            if unit not in ("minutes", "hours", "days") or amount <= 0 or amount > 366 * 24 * 60:
                problems.append(f"Step “{name}”: wait a positive number of minutes, hours or days.")
    elif kind == "set-variables":
        _kv_list(name, props, "variables", problems, values=True)
    elif kind == "send-message":
        to = "".join(str(props.get("to", "")).split())
        if to not in {"".join(a.split()) for a in OWN_ADDRESSES}:
            problems.append(
                f"Step “{name}”: it sends to “{str(props['to'])[:60]}”; a flow here sends only "
                "to the persona's own number or address (their consent is for it)."
            )
        if props.get("channel") not in ("text", "email"):
            problems.append(f"Step “{name}”: channel must be text or email.")
        if not str(props.get("body", "")).strip():
            problems.append(f"Step “{name}”: the message body is required.")
        elif len(str(props["body"])) > 1600:
            problems.append(f"Step “{name}”: the message body is longer than 1600 characters.")


def pattern_problem(pattern: str) -> str:
    """Why a regular expression cannot be a split condition ("" when it can)."""
    if len(pattern) > MAX_PATTERN:
        return f"the pattern is longer than {MAX_PATTERN} characters."
    try:
        regex.compile(pattern)
    except regex.error as exc:
        return f"the pattern is not a valid regular expression ({exc})."
    return ""


def unstorable_text(value: Any) -> str:
    """Why text anywhere in a JSON value (from an imported file) cannot be stored, or ""."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and (problem := unstorable(item)):
            if problem == "NUL character":
                return "The flow definition contains a NUL character; remove it."
            return (
                "The flow definition contains an unpaired surrogate (not valid Unicode); remove it."
            )
    return ""


def validate(definition: Any) -> list[str]:
    """Every problem found, each naming its step; an empty list means the flow is valid."""
    problems: list[str] = []
    if not isinstance(definition, dict):
        return ["The flow definition must be a JSON object."]
    if problem := unstorable_text(definition):
        return [problem]
    states = definition.get("states")
    if not isinstance(states, list) or not states:
        return ["The flow has no steps yet: add one."]
    names: dict[str, dict] = {}
    for i, state in enumerate(states, start=1):
        if not isinstance(state, dict):
            problems.append(f"Step {i} must be an object.")
            continue
        name = state.get("name")
        if problem := step_name_problem(name):
            problems.append(f"Step {i}: {problem}")
            continue
        if name in names:
            problems.append(f"Step “{name}”: two steps have this name.")
            continue
        names[name] = state
        if state.get("type") not in STEP_TYPES:
            problems.append(f"Step “{name}”: unknown type “{state.get('type')}”.")
            continue
        _check_properties(state, problems)
    step_names = {s.get("name") for s in states if isinstance(s, dict)}
    for state in names.values():
        if state.get("type") in STEP_TYPES:
            for field, problem in template_problems(state, step_names):
                problems.append(f"Step “{state['name']}”, {field}: {problem}")
    initial = definition.get("initial_state")
    if initial not in names:
        problems.append(f"The first step “{initial}” does not exist.")
    for name, state in names.items():
        if state.get("type") not in STEP_TYPES:
            continue
        allowed = events_for(state)
        seen = set()
        for t in state.get("transitions", []) or []:
            if not isinstance(t, dict):
                problems.append(f"Step “{name}”: a transition must be an object.")
                continue
            event = t.get("event")
            if event not in allowed:
                problems.append(f"Step “{name}”: unknown transition event “{event}”.")
            if event in seen:
                problems.append(f"Step “{name}”: the event “{event}” is connected twice.")
            seen.add(event)
            target = t.get("next")
            if target is not None and target not in names:
                problems.append(f"Step “{name}”: “{event}” goes to a missing step “{target}”.")
    if initial in names and not problems:
        reachable, todo = set(), [initial]
        while todo:
            current = todo.pop()
            if current in reachable:
                continue
            reachable.add(current)
            for t in names[current].get("transitions", []) or []:
                if t.get("next"):
                    todo.append(t["next"])
        for name in names:
            if name not in reachable:
                problems.append(f"Step “{name}”: no transition leads to it (unreachable).")
    return problems


def next_step(state: dict[str, Any], event: str) -> str | None:
    for t in state.get("transitions", []) or []:
        if t.get("event") == event:
            return t.get("next")
    return None


def empty_definition() -> dict[str, Any]:
    return {"description": "", "initial_state": "", "states": []}


def warnings(state: dict[str, Any]) -> list[str]:
    """Editor hints that do not block saving (the Persona Update node's own warnings)."""
    out = []
    if state.get("type") == "persona-update":
        props = state.get("properties") or {}
        sections: dict[str, list[str]] = {}
        for section in ("add", "set", "remove"):
            for item in props.get(section, []) or []:
                if isinstance(item, dict) and item.get("key"):
                    sections.setdefault(item["key"], []).append(section)
        for key, where in sections.items():
            if len(where) > 1:
                out.append(
                    f"“{key}” appears in {', '.join(where)}: they apply in the order "
                    "add → set → remove, so the last one wins."
                )
        if "text" in (props.get("force_opt_out") or []):
            out.append(
                "Forcing a text opt-out is a hard opt-out: the customer gets no more texts "
                "until they opt in again themselves (check your compliance rules)."
            )
    return out
