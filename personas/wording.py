"""How the product words a change to a persona, the same on the Activity tab, in a flow's test
run and in its run log: "vip: absent → absent (added false, set true, then removed)"."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django.utils.dateformat import format as date_format

from personas.models import Channel, ConsentState, EntrySource, PersonaStatus
from personas.models.persona import FavoriteStoreSource
from personas.normalize import format_phone

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


# A consent state in words, wherever one is shown (Activity, test runs, run logs): the
# model's own labels, so the profile, the Activity and the flows say the same thing.
CONSENT_WORDS = dict(ConsentState.choices)


def consent_words(state: Any) -> str:
    return CONSENT_WORDS.get(state, "—" if state in (None, "") else str(state))


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


# ---------------------------------------------------------------------------------------------
# A persona's fields and their values, as the Activity tab shows them

FIELD_LABELS = {
    "signup_form_id": "Signup form",
    "favorite_store_id": "Favorite store",
    "favorite_store_source": "Favorite store set by",
    "entry_source": "Came from",
    "points_balance": "Points",
    "loyalty_enrolled": "Loyalty",
    "phone_ext": "Phone extension",
    "customer_id": "Customer ID",
    "archived_at": "Archived on",
    "merged_into_id": "Merged into",
    "import_job_id": "Import",
    "birthday": "Birthday",
}
# Message templates in words ("double_opt_in" → "Double opt-in request").
MESSAGE_WORDS = {
    "double_opt_in": "Double opt-in request",
    "email_double_opt_in": "Email confirmation link",
    "opt_out_confirmation": "Opt-out confirmation",
    "otp": "Sign-in code",
}


def field_label(key: str) -> str:
    """The name of a recorded change's key: a field, ``attr:<key>`` or ``consent:<channel>``."""
    if key.startswith("attr:"):
        return key[5:]
    if key.startswith("consent:"):
        return f"{dict(Channel.choices).get(key[8:], key[8:].capitalize())} consent"
    return FIELD_LABELS.get(key) or key.replace("_", " ").capitalize()


def field_value(key: str, value: Any) -> str:
    """A recorded value in words: states and sources by their labels, dates and times as
    people read them (times in the active time zone), phones as dialled, ids as "#7", yes/no
    for flags."""
    if key.startswith("attr:"):
        return value_words(value, attribute=True)
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    labels = {
        "entry_source": dict(EntrySource.choices),
        "favorite_store_source": dict(FavoriteStoreSource.choices),
        "status": dict(PersonaStatus.choices),
    }
    if key.startswith("consent:"):
        return consent_words(value)
    if key in labels:
        return labels[key].get(value, str(value))
    if key == "phone" and isinstance(value, str):
        return format_phone(value) or value
    if key.endswith("_id") and isinstance(value, int):
        return f"#{value}"
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
        try:
            if len(value) == 10:
                return date_format(dt.date.fromisoformat(value), "M j, Y")
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        if timezone.is_aware(moment):
            moment = timezone.localtime(moment)
        return date_format(moment, "M j, Y, g:i a")
    return str(value)


def actor_words(kind_label: str, actor_label: str) -> str:
    """Who made a change, without repeating its kind ("Flow" and "Flow “VIP”" → "“VIP”";
    "Customer" and "Customer (SMS reply)" → "via SMS reply")."""
    label = actor_label.strip()
    if kind_label and label.lower() == kind_label.lower():
        return ""  # the badge already says it
    if kind_label and label.lower().startswith(kind_label.lower() + " "):
        label = label[len(kind_label) + 1 :].strip()
        if label.startswith("(") and label.endswith(")"):  # "Customer (SMS reply)"
            label = "via " + label[1:-1]
    return label
