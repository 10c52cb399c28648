"""The fast paths in personas.normalize give exactly what the full libraries give.

Imports call these for every cell, so each has a shortcut for the common case; these
properties compare the shortcut with the slow path it replaces on generated input.
"""

from __future__ import annotations

import unicodedata

import phonenumbers
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from personas.normalize import clean_text, name_key, normalize_email, normalize_phone


def _reference_phone(text: str, region: str) -> str | None:
    """phonenumbers' full parse and validity check, and the placeholder rule (one repeated
    digit or consecutive digits over the whole national number)."""
    text = text.strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return "invalid"
    typed = "".join(ch for ch in text.split("x")[0] if ch.isdigit())
    for digits in (
        phonenumbers.national_significant_number(number),
        typed,
        typed.removeprefix(str(number.country_code)),
    ):
        if len(digits) >= 7 and (len(set(digits)) == 1 or any(digits in run * 2 for run in _RUNS)):
            return "invalid"
    reason = phonenumbers.is_possible_number_with_reason(number)
    if (
        reason != phonenumbers.ValidationResult.IS_POSSIBLE
    ):  # a local-only number needs its area code
        return "invalid"
    if not phonenumbers.is_valid_number(number):
        return "invalid"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_RUNS = ("0123456789", "1234567890", "9876543210", "0987654321")


def _ours_phone(text: str, region: str) -> str | None:
    try:
        return normalize_phone(text, region)
    except ValidationError:
        return "invalid"


digits = st.text(alphabet="0123456789", min_size=0, max_size=13)
separators = st.sampled_from(["", " ", "-", ".", "(", ")", "+", "+1 ", "1-", "  ", "x"])
phone_like = st.lists(st.one_of(digits, separators), max_size=8).map("".join)


@hsettings(max_examples=1500, deadline=None)
@given(text=phone_like, region=st.sampled_from(["US", "CA", "GB", "FR"]))
def test_phone_fast_path_matches_phonenumbers(text, region):
    assert _ours_phone(text, region) == _reference_phone(text, region)


@hsettings(max_examples=3000, deadline=None)
@given(national=st.integers(2_000_000_000, 9_999_999_999))
def test_north_american_fast_path_validity_matches_the_full_check(national):
    """The fast path skips the parse, not the validity check: the same answer as
    phonenumbers' parse and full check of the whole number (Caribbean NANP regions assign only
    part of some exchanges, so validity is never decided by exchange alone)."""
    text = str(national)
    assert _ours_phone(text, "US") == _reference_phone(text, "US")


@pytest.mark.parametrize(
    "text",
    [
        "(415) 555-0134",
        "415.555.0134",
        "1-415-555-0134",
        "+14155550134",
        "4155550134",
        "+1 (415) 555 0134",
    ],
)
def test_common_us_formats(text):
    assert normalize_phone(text, "US") == "+14155550134" == _reference_phone(text, "US")


def _reference_email(text: str) -> str | None:
    """Django's validator after removing format characters (category Cf), and the
    placeholder user names refused."""
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf").strip()
    if not text:
        return None
    text = text.lower()
    if len(text) > 254:
        return "invalid"
    try:
        validate_email(text)
    except ValidationError:
        return "invalid"
    if text.rsplit("@", 1)[0] in settings.PERSONAS_PLACEHOLDER_EMAIL_USERS:
        return "invalid"
    return text


def _ours_email(text: str) -> str | None:
    try:
        return normalize_email(text)
    except ValidationError:
        return "invalid"


email_part = st.text(alphabet="abcXYZ09._-+@!#'é ", max_size=12)
email_like = st.one_of(
    st.tuples(email_part, email_part, st.sampled_from(["com", "co.uk", "c", "x1", "", "com."])).map(
        lambda t: f"{t[0]}@{t[1]}.{t[2]}"
    ),
    st.text(max_size=30),
)


@hsettings(max_examples=1500, deadline=None)
@given(text=email_like)
def test_email_fast_path_matches_django(text):
    assert _ours_email(text) == _reference_email(text)


def _reference_clean(value: str, max_length: int) -> str:
    import re

    text = re.sub(r"\s+", " ", value).strip()
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text):
        return "control"
    if len(text) > max_length:
        return "long"
    return text


def _ours_clean(value: str, max_length: int) -> str:
    try:
        return clean_text(value, max_length=max_length, label="Name")
    except ValidationError as exc:
        return "control" if "control" in exc.messages[0] else "long"


@hsettings(max_examples=1500, deadline=None)
@given(value=st.text(alphabet=st.sampled_from("ab É\t\n\x00\x1f\xa0\u2003"), max_size=12))
def test_clean_text_fast_path_matches_full_path(value):
    assert _ours_clean(value, 8) == _reference_clean(value, 8)


def _reference_name_key(value: str) -> str:
    import re

    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", stripped.casefold()).strip()


@hsettings(max_examples=1000, deadline=None)
@given(value=st.text(max_size=16))
def test_name_key_fast_path_matches_full_path(value):
    assert name_key(value) == (_reference_name_key(value) if value else "")
