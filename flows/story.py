"""A step's log in words: what it read, what it decided and its net effect on the persona.

The test run and every run log show this (``describe``), never Python data or raw JSON.
Attribute changes use the Activity tab's wording (``personas.wording``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from personas.wording import attribute_change, field_label, field_value, ops_words, value_words

from .definition import STEP_TYPES

EVENT_WORDS = {
    "next": "Done",
    "noMatch": "No condition matched",
    "profileFound": "Profile found",
    "profileNotFound": "Profile not found",
    "profileUpdated": "Profile updated",
    "failed": "Failed",
    "sent": "Sent",
    "suppressed": "Not sent",
    "waiting": "Waiting",
}


def event_words(event: str) -> str:
    if event.startswith("match_") and event[6:].isdigit():
        return f"Condition {event[6:]} matched"
    return EVENT_WORDS.get(event, event)


@dataclass
class StepStory:
    """``read``: the values the step read, as lines; ``decided``: what it decided, a line;
    ``effects``: its net effect on the persona, a line per trait."""

    label: str
    read: list[str] = field(default_factory=list)
    decided: str = ""
    effects: list[str] = field(default_factory=list)


def _quoted(value: Any) -> str:
    if isinstance(value, str):
        return f"“{value}”" if value else "nothing (empty)"
    return value_words(value) if value is not None else "nothing"


def describe(
    *,
    step_type: str,
    event: str,
    next_step: str,
    inputs: dict[str, Any] | None,
    outputs: dict[str, Any] | None,
    error: str = "",
) -> StepStory:
    """The story of one logged step (``FlowStepLog`` fields, or a test run's step)."""
    inputs, outputs = inputs or {}, outputs or {}
    story = StepStory(STEP_TYPES.get(step_type, {}).get("label", step_type))
    if step_type == "persona-update":
        for section, verb in (("add", "Add"), ("set", "Set")):
            for item in inputs.get(section) or []:
                story.read.append(f"{verb} {item.get('key')} = {_quoted(item.get('value'))}")
        for key in inputs.get("remove") or []:
            story.read.append(f"Remove {key}")
        for channel in inputs.get("force_opt_out") or []:
            story.read.append(f"Force {channel} opt-out")
        story.effects = _persona_update_effects(inputs, outputs)
    elif step_type == "split-based-on":
        story.read.append(f"Value tested: {_quoted(inputs.get('input'))}")
        matched = outputs.get("matched")
        story.decided = f"Matched “{matched}”" if matched else "No condition matched"
    elif step_type == "look-up-profile":
        story.read.append(f"Looked for: {_quoted(inputs.get('identifier'))}")
        data = outputs.get("ProfileData") or {}
        if data.get("profileConnectSid"):
            story.decided = f"Found persona #{data['profileConnectSid']}"
    elif step_type == "update-profile-traits":
        story.read.append(f"Profile: {_quoted(inputs.get('profile_connect_sid'))}")
        for trait in inputs.get("traits") or []:
            story.read.append(f"{trait.get('key')} = {_quoted(trait.get('value'))}")
    elif step_type == "send-message":
        for key in ("channel", "to", "body"):
            if key in inputs:
                story.read.append(f"{key.capitalize()}: {_quoted(inputs[key])}")
    elif step_type == "wait":
        until = inputs.get("until") or inputs.get("would wait until")
        if until:
            story.read.append(f"Waits until {until}")
    elif step_type == "set-variables":
        for item in inputs.get("variables") or []:
            story.read.append(f"flow.variables.{item.get('key')} = {_quoted(item.get('value'))}")
    if not story.effects:
        # Traits are set: their values are the step's inputs.
        values = {t.get("key"): t.get("value") for t in inputs.get("traits") or []}
        story.effects = _field_effects(outputs.get("changes") or {}, values)
    if not story.decided:
        story.decided = event_words(event)
    if error:
        story.decided = f"{story.decided}: {error}"
    story.decided += f" → {next_step}" if next_step else " → the run ends"
    return story


def _persona_update_effects(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[str]:
    """Per attribute the step touched, in the order it touched them: before → after with the
    ops on the way (values from the inputs); then consents and fields from the changes."""
    changes = outputs.get("changes") or {}
    operations = outputs.get("operations") or []
    values: dict[str, list[Any]] = {}
    for section in ("add", "set"):
        for item in inputs.get(section) or []:
            values.setdefault(f"{section}:{item.get('key')}", []).append(item.get("value"))
    lines, seen = [], []
    for op in operations:
        if op.get("key") not in seen:
            seen.append(op.get("key"))
    for key in seen:
        ops = [o for o in operations if o.get("key") == key]
        names = [f"{o['op']}:{o['result']}" for o in ops]
        used: dict[str, int] = {}
        op_values = []
        for o in ops:
            bucket = values.get(f"{o['op']}:{key}", [])
            n = used.get(o["op"], 0)
            op_values.append(bucket[n] if n < len(bucket) else None)
            used[o["op"]] = n + 1
        change = changes.get(f"attr:{key}")
        if change is not None:
            before, after = change.get("before"), change.get("after")
            lines.append(attribute_change(key, before, after, names, op_values))
        elif names and names[0].endswith(":created") and names[-1] == "remove:removed":
            lines.append(attribute_change(key, None, None, names, op_values))
        else:
            how = ops_words(names, op_values)
            lines.append(f"{key}: unchanged ({how})" if how else f"{key}: unchanged")
    others = {k: v for k, v in changes.items() if not k.startswith("attr:")}
    return lines + _field_effects(others)


def _field_effects(changes: dict[str, Any], values: dict[str, Any] | None = None) -> list[str]:
    out = []
    for key, change in changes.items():
        if key.startswith("attr:"):
            ops = change.get("ops") or []
            value = (values or {}).get(key[5:])
            out.append(
                attribute_change(
                    key[5:],
                    change.get("before"),
                    change.get("after"),
                    ops,
                    [value] * len(ops) if value is not None else None,
                )
            )
        elif isinstance(change, dict):  # worded as the Activity tab words it
            before, after = (field_value(key, change.get(side)) for side in ("before", "after"))
            out.append(f"{field_label(key)}: {before} → {after}")
    return out


def for_log(entry: Any) -> StepStory:
    """``describe`` of a ``FlowStepLog`` or a test run's ``TestStep``."""
    outputs = dict(getattr(entry, "outputs", None) or {})
    if getattr(entry, "changes", None):
        outputs.setdefault("changes", entry.changes)
    return describe(
        step_type=entry.step_type,
        event=entry.event,
        next_step=entry.next_step or "",
        inputs=entry.inputs,
        outputs=outputs,
        error=entry.error or "",
    )
