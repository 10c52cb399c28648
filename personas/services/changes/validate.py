"""Validation: a changeset is checked and normalised before anything is planned; an
invalid changeset raises ``ChangeError`` with every problem found and changes nothing."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from ...models import (
    Channel,
    EntrySource,
    FavoriteStoreSource,
    PersonaStatus,
    PointsEntry,
    SignupForm,
    Store,
)
from ...normalize import (
    PlaceholderIdentifier,
    clean_text,
    normalize_email,
    normalize_phone,
    phone_extension,
    unstorable,
)
from ..consent import ConsentAction
from .rules import birthday_in_past
from .types import AttributeOp, ChangeError, Changeset, Cleaned

STANDARD_FIELDS = ("first_name", "last_name", "email", "phone", "birthday", "customer_id")


EDITABLE_FIELDS = (*STANDARD_FIELDS, "phone_ext", "loyalty_enrolled")


CREATE_ONLY_FIELDS = ("entry_source", "signup_form_id", "import_job_id")


CHANNELS = tuple(c.value for c in Channel)


_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


_POINTS_KINDS = frozenset(PointsEntry.Kind.values)


_STORE_SOURCES = frozenset(FavoriteStoreSource.values)


_STATUSES = frozenset(PersonaStatus.values)


_ENTRY_SOURCES = frozenset(EntrySource.values)


def validate_attribute_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ValidationError("An attribute key cannot be empty.")
    key = key.strip()
    limit = settings.PERSONAS_ATTRIBUTE_KEY_MAX
    if len(key) > limit:
        raise ValidationError(f"Attribute key “{key[:20]}…” is longer than {limit} characters.")
    if not _KEY_RE.match(key):
        raise ValidationError(
            f"Attribute key “{key}” may use letters, digits, “_”, “-” and “.”, "
            "and must start with a letter or “_”."
        )
    return key


def validate_attribute_value(key: str, value: Any) -> Any:
    """Values are typed: string, number, boolean, date (stored as ISO text) or null."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise ValidationError(f"The number for “{key}” is too large.")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"The number for “{key}” must be finite.")
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        limit = settings.PERSONAS_ATTRIBUTE_VALUE_MAX
        if len(value) > limit:
            raise ValidationError(f"The value for “{key}” is longer than {limit} characters.")
        problem = unstorable(value)
        if problem == "NUL character":
            raise ValidationError(f"The value for “{key}” contains a NUL character.")
        if problem:
            raise ValidationError(f"The value for “{key}” is not valid text.")
        return value
    raise ValidationError(
        f"The value for “{key}” must be text, a number, true/false, a date or empty."
    )


def validate_field(name: str, value: Any) -> Any:
    if name in ("first_name", "last_name"):
        label = "First name" if name == "first_name" else "Last name"
        return clean_text(value, max_length=150, label=label)
    if name == "email":
        return normalize_email(value)
    if name == "phone":
        return normalize_phone(value)
    if name == "phone_ext":
        text = "" if value is None else str(value).strip()
        if text and not (text.isascii() and text.isdigit() and len(text) <= 10):
            raise ValidationError("An extension is up to 10 digits.")
        return text
    if name == "customer_id":
        return clean_text(value, max_length=64, label="Customer ID") or None
    if name == "birthday":
        if value in (None, ""):
            return None
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value.strip())
            except ValueError as exc:
                raise ValidationError("Enter the birthday as a date (YYYY-MM-DD).") from exc
        if isinstance(value, dt.datetime):
            value = value.date()
        if not isinstance(value, dt.date):
            raise ValidationError("Enter the birthday as a date.")
        if not birthday_in_past(value):
            raise ValidationError("The birthday must be a real date in the past.")
        return value
    if name == "loyalty_enrolled":
        if not isinstance(value, bool):
            raise ValidationError("Loyalty must be on or off.")
        return value
    if name == "entry_source":
        if value not in _ENTRY_SOURCES:
            raise ValidationError("Unknown entry source.")
        return value
    if name == "import_job_id":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValidationError("Unknown import.")
        return value
    if name == "signup_form_id":
        if value is None:
            return None
        if not SignupForm.objects.filter(pk=value).exists():
            raise ValidationError("Unknown signup form.")
        return int(value)
    raise ValidationError(f"“{name}” is not a persona trait.")


def validate(changeset: Changeset, *, creating: bool) -> Cleaned:
    """Check and normalise a changeset; raise ChangeError with every problem found."""
    errors: dict[str, list[str]] = {}

    def err(key: str, exc: ValidationError) -> None:
        errors.setdefault(key, []).extend(exc.messages)

    fields: dict[str, Any] = {}
    warnings: list[str] = []
    allowed = EDITABLE_FIELDS + (CREATE_ONLY_FIELDS if creating else ())
    for name, value in changeset.fields.items():
        if name not in allowed:
            errors.setdefault("__all__", []).append(f"“{name}” cannot be changed here.")
            continue
        try:
            fields[name] = validate_field(name, value)
        except PlaceholderIdentifier as exc:
            warnings.extend(exc.messages)  # the customer is kept without it
        except ValidationError as exc:
            err(name, exc)
    if "phone" in changeset.fields and "phone_ext" not in changeset.fields:
        # A phone written without its extension has none ("(202) 555-0100 ext. 12" keeps 12).
        fields["phone_ext"] = (
            phone_extension(changeset.fields["phone"]) if fields.get("phone") else ""
        )
    elif "phone" in fields and not fields["phone"]:
        fields["phone_ext"] = ""

    def clean_ops(ops: Iterable[AttributeOp], section: str) -> list[tuple[str, Any]]:
        out = []
        for op in ops:
            try:
                key = validate_attribute_key(op.key)
                out.append((key, validate_attribute_value(key, op.value)))
            except ValidationError as exc:
                err(f"attributes_{section}", exc)
        return out

    add = clean_ops(changeset.add, "add")
    set_ = clean_ops(changeset.set, "set")
    remove = []
    for key in changeset.remove:
        try:
            remove.append(validate_attribute_key(key))
        except ValidationError as exc:
            err("attributes_remove", exc)

    for op in changeset.consents:
        if op.channel not in CHANNELS:
            errors.setdefault("consent", []).append(f"Unknown channel “{op.channel}”.")
        if op.action not in ConsentAction.ALL:
            errors.setdefault("consent", []).append(f"Unknown consent action “{op.action}”.")
    if changeset.favorite_store is not None:
        store_id, source = changeset.favorite_store
        if source not in _STORE_SOURCES:
            errors.setdefault("favorite_store", []).append("Unknown favorite store source.")
        elif (
            store_id is not None
            and not changeset.prechecked
            and not Store.objects.filter(pk=store_id).exists()
        ):
            errors.setdefault("favorite_store", []).append("Unknown store.")
    for op in changeset.points:
        if op.kind not in _POINTS_KINDS:
            errors.setdefault("points", []).append("Unknown kind of points entry.")
        if not isinstance(op.points, int) or isinstance(op.points, bool):
            errors.setdefault("points", []).append("Points must be a whole number.")
        elif abs(op.points) > 10_000_000:
            errors.setdefault("points", []).append("That is too many points for one entry.")
    if changeset.status is not None and changeset.status[0] not in _STATUSES:
        errors.setdefault("status", []).append("Unknown status.")
    if errors:
        raise ChangeError(errors)
    return Cleaned(fields, add, set_, remove, warnings)
