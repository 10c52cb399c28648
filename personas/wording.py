"""How the product words a change to a persona, the same on the Activity tab, in a flow's test
run and in its run log: "vip: absent → absent (added false, set true, then removed)"."""

from __future__ import annotations

from typing import Any

# An attribute op as recorded (``changes.apply_attribute_ops``: "op:result") → its words.
_OP_WORDS = {
    "add:created": "added",
    "add:kept": "add skipped (it was there)",
    "set:created": "set",
    "set:replaced": "set",
    "set:kept": "set (same value)",
    "remove:removed": "removed",
    "remove:absent": "remove (it was not there)",
}


def value_words(value: Any, *, attribute: bool = False) -> str:
    """A stored value in words: nothing is "absent" for an attribute, "—" for a field."""
    if value is None:
        return "absent" if attribute else "—"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def ops_words(ops: list[str], values: list[Any] | None = None) -> str:
    """``["add:created", "set:replaced", "remove:removed"]`` → "added, set, then removed";
    with ``values`` (one per op, None for a remove) → "added false, set true, then removed"."""
    words = []
    for i, op in enumerate(ops):
        word = _OP_WORDS.get(op, op.replace(":", " "))
        value = values[i] if values is not None and i < len(values) else None
        if value is not None and op in ("add:created", "set:created", "set:replaced", "set:kept"):
            word = f"{word.split(' (')[0]} {value_words(value)}" + (
                f" ({word.split(' (')[1]}" if " (" in word else ""
            )
        words.append(word)
    if len(words) > 1:
        return ", ".join(words[:-1]) + ", then " + words[-1]
    return words[0] if words else ""


def attribute_change(
    key: str, before: Any, after: Any, ops: list[str], values: list[Any] | None = None
) -> str:
    """One attribute's net change with what happened to it on the way."""
    line = f"{key}: {value_words(before, attribute=True)} → {value_words(after, attribute=True)}"
    how = ops_words(ops, values)
    return f"{line} ({how})" if how else line
