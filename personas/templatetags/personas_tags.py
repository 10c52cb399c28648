from __future__ import annotations

import json
from typing import Any

from django import template
from django.urls import reverse

from personas.wording import MESSAGE_WORDS, consent_words, field_label, field_value, ops_words
from personas.wording import actor_words as words

from .. import search_memo
from ..normalize import format_phone

register = template.Library()


@register.simple_tag(takes_context=True)
def personas_list_url(context: dict) -> str:
    """The persona list as this user last left it (search token, filters, page)."""
    base = reverse("personas:list")
    request = context.get("request")
    return search_memo.list_address(request, base) if request is not None else base


CHANNEL_SHORT = {
    "text": "SMS",
    "email": "Email",
    "voice": "Voice",
    "push": "Push",
    "browser": "Web",
}
STATE_TITLE = {
    "opted_in": "opted in",
    "opted_out": "opted out",
    "pending": "pending double opt-in",
    "never": "never asked",
}


@register.filter
def phone(value: str | None) -> str:
    return format_phone(value)


@register.filter
def channel_short(channel: str) -> str:
    return CHANNEL_SHORT.get(channel, channel)


@register.filter
def state_title(state: str) -> str:
    return STATE_TITLE.get(state, state)


@register.filter
def audit_value(value: Any) -> str:
    if value is None:
        return "—"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


@register.filter(name="ops_words")
def ops_words_filter(ops: list[str]) -> str:
    """["add:created", "set:replaced"] → "added, then set" (see ``personas.wording``)."""
    return ops_words(list(ops or []))


@register.filter
def change_key(key: str) -> str:
    """A recorded change's key in words (see ``personas.wording.field_label``)."""
    return field_label(key)


@register.filter
def change_value(value: Any, key: str) -> str:
    """A recorded value in words for its key (see ``personas.wording.field_value``)."""
    return field_value(key, value)


@register.simple_tag
def actor_words(kind: str, label: str) -> str:
    return words(actor_kind_label(kind), label or "")


@register.filter
def message_words(template: str) -> str:
    return MESSAGE_WORDS.get(template, template.replace("_", " ").capitalize())


@register.filter
def audit_key(key: str) -> str:
    if key.startswith("attr:"):
        return key[5:]
    if key.startswith("consent:"):
        return f"{CHANNEL_SHORT.get(key[8:], key[8:])} consent"
    return key.replace("_", " ").capitalize()


@register.filter
def actor_kind_label(kind: str) -> str:
    return {
        "user": "Staff",
        "import": "Import",
        "flow": "Flow",
        "customer": "Customer",
        "system": "System",
    }.get(kind, kind)


@register.filter
def consent_label(state: str) -> str:
    """A consent state in words (``personas.wording.consent_words``)."""
    return consent_words(state)


@register.filter
def pretty_json(value: Any) -> str:
    """A logged dict or list as JSON (true / null, double quotes), not Python's text of it."""
    return json.dumps(value, ensure_ascii=False, default=str)


@register.filter
def took(entry: Any) -> str:
    """How long a logged step took, from its ``started_at`` and ``finished_at``."""
    start, end = getattr(entry, "started_at", None), getattr(entry, "finished_at", None)
    if not start or not end:
        return ""
    seconds = max((end - start).total_seconds(), 0)
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
