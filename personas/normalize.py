"""Normalisation of identifiers and names, shared by the service, search and imports."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from functools import lru_cache

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

_SPACES = re.compile(r"\s+")
# Bidirectional embedding/override/isolate controls: they can make a name read backwards.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


class PlaceholderIdentifier(ValidationError):
    """A value that stands for "no phone" or "no email" (000-000-0000, none@…, test@…).

    It identifies nobody: callers keep the customer without it (with a warning) and it never
    matches anyone.
    """


def strip_format_characters(text: str) -> str:
    """``text`` without Unicode format characters (category Cf: zero-width space, joiner and
    non-joiner, word joiner, BOM, soft hyphen, bidi controls). For identifiers."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def clean_name(text: str) -> str:
    """A name or other free text: format characters removed at the ends, bidi controls
    removed everywhere (a zero-width joiner inside an emoji sequence stays)."""
    if text.isascii():
        return text
    text = _BIDI.sub("", text)
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or unicodedata.category(text[start]) == "Cf"):
        start += 1
    while end > start and (text[end - 1].isspace() or unicodedata.category(text[end - 1]) == "Cf"):
        end -= 1
    return text[start:end]


# Control characters, and unpaired surrogates (not text at all: no database can store them).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def unstorable(text: str) -> str:
    """What in ``text`` no database here can store, or "": a NUL character (PostgreSQL refuses
    it) or an unpaired surrogate (what "\\ud800" in JSON decodes to; not Unicode text at all).
    The one check behind the persona service's attribute values and the flow import."""
    if "\x00" in text:
        return "NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "unpaired surrogate"
    return ""


def clean_text(value: object, *, max_length: int, label: str) -> str:
    text = "" if value is None else str(value)
    stripped = text.strip()
    # Fast path (imports call this for every cell): printable text without runs of spaces is
    # already in its clean form. Anything else takes the full path below.
    if stripped.isprintable() and "  " not in stripped:
        if len(stripped) > max_length:
            raise ValidationError(f"{label} is longer than {max_length} characters.")
        return stripped
    text = clean_name(_SPACES.sub(" ", text).strip())
    if _CONTROL.search(text):
        raise ValidationError(f"{label} contains control characters.")
    if len(text) > max_length:
        raise ValidationError(f"{label} is longer than {max_length} characters.")
    return text


# A strict subset of what Django's EmailValidator accepts (ASCII dot-atom user part, ASCII
# host labels, a letters-only top-level domain): a match needs no further check. Anything
# else goes through ``validate_email`` itself, so the accepted set is exactly Django's.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{}|~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{}|~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


def normalize_email(value: object) -> str | None:
    """The one form of an email address (lower case, no format characters), or None when
    blank. Raises ValidationError when it is not an address, ``PlaceholderIdentifier`` when it
    stands for "no email" (``PERSONAS_PLACEHOLDER_EMAIL_USERS``)."""
    text = strip_format_characters("" if value is None else str(value)).strip()
    if not text:
        return None
    text = text.lower()
    if len(text) > 254:
        raise ValidationError("Enter a valid email address.")
    if _PLAIN_EMAIL.fullmatch(text) is None:
        validate_email(text)
    if is_placeholder_email(text):
        raise PlaceholderIdentifier(
            "This email stands for “no email” and identifies nobody: kept without it."
        )
    return text


def is_placeholder_email(email: str) -> bool:
    user = email.rsplit("@", 1)[0]
    return user in settings.PERSONAS_PLACEHOLDER_EMAIL_USERS


# Regions whose numbers are North American (country code 1, national prefix 1): a plain
# 10-digit number (or 11 digits with the leading 1) whose area code starts with 2-9 has one
# E.164 form, the one phonenumbers gives (tests compare both on generated numbers). Saves
# phonenumbers' full parse (~25 µs) on the common case of a bulk import.
_NANP_REGIONS = {"US", "CA"}
_PHONE_PUNCTUATION = str.maketrans("", "", " ()-.")


def normalize_phone(value: object, region: str | None = None) -> str | None:
    """Parse a phone number typed in any common format into E.164, or None when blank.

    The number must be valid for its region (``phonenumbers.is_valid_number``), not merely of
    a possible length; the message says why not. A number made of one repeated digit or a
    run of consecutive digits (000-000-0000, 123-456-7890) raises ``PlaceholderIdentifier``.
    An extension is ignored here (``phone_extension`` reads it).
    """
    text = strip_format_characters("" if value is None else str(value)).strip()
    if not text:
        return None
    if text.startswith("+1") and len(text) == 12 and text[2] in "23456789" and text.isascii():
        if text[2:].isdigit():  # already E.164 for a North American number
            return _checked_nanp(text[2:])
    region = region or settings.PHONE_DEFAULT_REGION
    if region in _NANP_REGIONS:
        digits = text.translate(_PHONE_PUNCTUATION)
        if digits.isascii() and digits.isdigit():
            if len(digits) == 10 and digits[0] in "23456789":
                return _checked_nanp(digits)
            if len(digits) == 11 and digits[0] == "1" and digits[1] in "23456789":
                return _checked_nanp(digits[1:])
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError("Enter a valid phone number.") from exc
    typed = "".join(ch for ch in text.split("x")[0].split(";")[0] if ch.isdigit())
    country = str(number.country_code)
    if any(
        _is_placeholder_digits(digits)
        for digits in (
            phonenumbers.national_significant_number(number),
            typed,
            typed.removeprefix(country),
        )
    ):
        raise _placeholder_phone()
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason in (
        phonenumbers.ValidationResult.TOO_SHORT,
        phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    ):
        raise ValidationError("This phone number is too short: add the area code.")
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise ValidationError("Enter a valid phone number.")
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("This is not a real phone number: check the digits.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_extension(value: object) -> str:
    """The extension typed with a phone number ("ext. 12", "x12", ";ext=12"), or ""."""
    text = strip_format_characters("" if value is None else str(value)).strip()
    if not text or text.isdigit():
        return ""
    try:
        number = phonenumbers.parse(text, settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return ""
    return number.extension or ""


def _placeholder_phone() -> PlaceholderIdentifier:
    return PlaceholderIdentifier(
        "This phone number stands for “no phone” and identifies nobody: kept without it."
    )


_RUNS = ("0123456789", "1234567890", "9876543210", "0987654321")


def _is_placeholder_digits(national: str) -> bool:
    """One repeated digit, or consecutive digits, over a whole national number (of a real
    number's length: "12" is too short, not a placeholder)."""
    if len(national) < 7:
        return False
    if len(set(national)) == 1:
        return True
    return any(national in run * 2 for run in _RUNS)


def _checked_nanp(national: str) -> str:
    """E.164 of a 10-digit North American number, or the error of an unreal one."""
    if _is_placeholder_digits(national):
        raise _placeholder_phone()
    if not _nanp_valid(national):
        raise ValidationError("This is not a real phone number: check the area code and digits.")
    return "+1" + national


@lru_cache(maxsize=65536)
def _nanp_valid(national: str) -> bool:
    """phonenumbers' full validity check of a 10-digit North American number, without its
    parse (the digits are known). Not by area code and exchange alone: some NANP regions
    (Barbados…) assign only part of an exchange. Cached for re-imports of the same file."""
    return phonenumbers.is_valid_number(
        phonenumbers.PhoneNumber(country_code=1, national_number=int(national))
    )


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
    if value.isascii():  # NFKD and accent stripping change nothing in ASCII
        return " ".join(value.lower().split())
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped.casefold()).strip()


PHONE_FRAGMENT_MIN = 4


def phone_fragments(e164: str | None) -> list[str]:
    """Every tail of a phone number's digits at least ``PHONE_FRAGMENT_MIN`` (4) long.

    ``"+12025550123"`` → ``["12025550123", "2025550123", …, "0123"]``. Digits typed anywhere
    in the number are the start of one of its tails, so a fragment search ("555-01") is a
    prefix range scan over these rows (``PhoneFragment``), an index scan on both databases.
    An empty or missing number has none.
    """
    digits = "".join(ch for ch in e164 or "" if ch.isdigit())
    return [digits[i:] for i in range(len(digits) - PHONE_FRAGMENT_MIN + 1)]


def prefix_range(prefix: str) -> tuple[str, str]:
    """The half-open range [prefix, upper) that holds every string starting with prefix.

    Used with plain B-tree indexes (binary collation on SQLite, ``C`` collation on PostgreSQL),
    so prefix search is an index range scan on both databases.
    """
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def identifier_digest(kind: str, normalised: str) -> str:
    """HMAC-SHA256 (hex, 64 chars) of ``"kind:value"`` for an already-normalised identifier.

    ``kind`` is "phone" (E.164) or "email" (lower case). Keyed with ``BLOCKLIST_HMAC_KEY``: the
    blocklist and the consent of addresses keep only these digests, never a readable address.
    """
    key = settings.BLOCKLIST_HMAC_KEY.encode()
    return hmac.digest(key, f"{kind}:{normalised}".encode(), hashlib.sha256).hex()
