"""Normalisation of identifiers and names, shared by the service, search and imports."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: object, *, max_length: int, label: str) -> str:
    text = "" if value is None else str(value)
    text = _SPACES.sub(" ", text).strip()
    if _CONTROL.search(text):
        raise ValidationError(f"{label} contains control characters.")
    if len(text) > max_length:
        raise ValidationError(f"{label} is longer than {max_length} characters.")
    return text


def normalize_email(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    text = text.lower()
    if len(text) > 254:
        raise ValidationError("Enter a valid email address.")
    validate_email(text)
    return text


def normalize_phone(value: object, region: str | None = None) -> str | None:
    """Parse a phone number typed in any common format into E.164, or None when blank."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region or settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError("Enter a valid phone number.") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValidationError("Enter a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def try_phone(value: str, region: str | None = None) -> str | None:
    try:
        return normalize_phone(value, region)
    except ValidationError:
        return None


def format_phone(e164: str | None) -> str:
    """A human form of a stored number: national format in the default region."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    home = phonenumbers.country_code_for_region(settings.PHONE_DEFAULT_REGION)
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == home
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, fmt)


def name_key(value: str | None) -> str:
    """Accent-free, case-folded, single-spaced form of a name, for prefix search."""
    if not value:
        return ""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped.casefold()).strip()


def phone_reversed(e164: str | None) -> str:
    if not e164:
        return ""
    return "".join(ch for ch in e164 if ch.isdigit())[::-1]


def prefix_range(prefix: str) -> tuple[str, str]:
    """The half-open range [prefix, upper) that holds every string starting with prefix.

    Used with plain B-tree indexes (binary collation on SQLite, ``C`` collation on PostgreSQL),
    so prefix search is an index range scan on both databases.
    """
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)
