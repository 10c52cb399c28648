"""Column mapping (headers → persona traits) and cell parsing with readable messages."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from personas.normalize import (
    PlaceholderIdentifier,
    clean_text,
    normalize_email,
    normalize_phone,
    phone_extension,
)
from personas.services.changes import (
    birthday_in_past,
    validate_attribute_key,
    validate_attribute_value,
)

# target → (label, kind)
TARGETS: dict[str, tuple[str, str]] = {
    "first_name": ("First name", "text"),
    "last_name": ("Last name", "text"),
    "email": ("Email", "email"),
    "phone": ("Phone", "phone"),
    "birthday": ("Birthday", "date"),
    "customer_id": ("Customer ID", "text"),
    "favorite_store": ("Favorite store", "store"),
    "loyalty": ("Loyalty enrolled", "bool"),
    "email_opt_in": ("Email opt-in", "bool"),
    "text_opt_in": ("SMS opt-in", "bool"),
    "voice_opt_in": ("Voice opt-in", "bool"),
    "points": ("Points", "int"),
}
MATCH_KEYS = {"phone": "Phone", "email": "Email", "customer_id": "Customer ID"}

_SYNONYMS = {
    "first_name": {"firstname", "first", "givenname", "fname", "forename"},
    "last_name": {"lastname", "last", "surname", "familyname", "lname"},
    "email": {"email", "emailaddress", "mail", "emailaddr"},
    "phone": {
        "phone",
        "phonenumber",
        "mobile",
        "mobilephone",
        "mobilenumber",
        "cell",
        "cellphone",
        "cellnumber",
        "telephone",
        "tel",
        "sms",
        "smsnumber",
    },
    "birthday": {"dob", "dateofbirth", "birthday", "birthdate", "bday"},
    "customer_id": {
        "customerid",
        "custid",
        "customerno",
        "customernumber",
        "posid",
        "posnumber",
        "memberid",
        "loyaltyid",
        "externalid",
        "clientid",
    },
    "favorite_store": {
        "favoritestore",
        "favouritestore",
        "store",
        "homestore",
        "preferredstore",
        "storename",
    },
    "loyalty": {
        "loyalty",
        "loyaltymember",
        "loyaltyenrolled",
        "member",
        "enrolled",
        "loyaltyoptin",
    },
    "email_opt_in": {
        "emailoptin",
        "emailconsent",
        "emailsubscribed",
        "acceptsemail",
        "acceptsemailmarketing",
        "emailmarketing",
        "emailsubscriber",
    },
    "text_opt_in": {
        "smsoptin",
        "textoptin",
        "smsconsent",
        "textconsent",
        "acceptssms",
        "acceptssmsmarketing",
        "smsmarketing",
        "mobileoptin",
        "textmarketing",
    },
    "voice_opt_in": {"voiceoptin", "calloptin", "phoneoptin", "voiceconsent"},
    "points": {"points", "pointsbalance", "loyaltypoints", "balance", "rewardpoints"},
}
_LOOKUP = {syn: target for target, syns in _SYNONYMS.items() for syn in syns}
# Never mapped by an import: push opt-in comes only from the customer's own device.
_REFUSED = {"pushoptin", "pushconsent", "pushnotifications"}


def header_key(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def attribute_key_for(header: str) -> str:
    key = re.sub(r"[^A-Za-z0-9_.\-]+", "_", header.strip()).strip("_").lower()
    if not key or not (key[0].isalpha() or key[0] == "_"):
        key = f"col_{key}" if key else "column"
    return key[:64]


def auto_mapping(headers: list[str]) -> dict[str, str]:
    """Column index (as text) → target; unknown headers become custom attributes."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for index, header in enumerate(headers):
        key = header_key(header)
        target = _LOOKUP.get(key)
        if not key or key in _REFUSED:
            mapping[str(index)] = ""
        elif target and target not in used:
            mapping[str(index)] = target
            used.add(target)
        else:
            mapping[str(index)] = f"attr:{attribute_key_for(header)}"
    return mapping


def validate_mapping(mapping: dict[str, str], headers: list[str]) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    for index in range(len(headers)):
        target = mapping.get(str(index), "")
        if not target:
            continue
        if target.startswith("attr:"):
            try:
                validate_attribute_key(target[5:])
            except ValidationError as exc:
                problems.append(f"Column “{headers[index]}”: {exc.messages[0]}")
        elif target not in TARGETS:
            problems.append(f"Column “{headers[index]}”: unknown target “{target}”.")
        if target in seen:
            problems.append(
                f"Columns “{headers[seen[target]]}” and “{headers[index]}” are both mapped to "
                f"{TARGETS.get(target, (target[5:],))[0]}."
            )
        seen[target] = index
    if not any(t in seen for t in MATCH_KEYS):
        problems.append(
            "Map at least one of Phone, Email or Customer ID: rows are matched on them."
        )
    return problems


# ---------------------------------------------------------------------------------------------
# Cells

_TRUE = {"yes", "y", "true", "t", "1", "on", "x", "opted in", "optedin", "subscribed"}
_FALSE = {"no", "n", "false", "f", "0", "off", "opted out", "optedout", "unsubscribed"}
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%m/%d/%y",
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%m-%d-%Y",
    "%b %d %Y",
    "%b %d, %Y",
    "%B %d %Y",
    "%B %d, %Y",
    "%d %b %Y",
    "%d %B %Y",
    "%Y%m%d",
)


def parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValidationError(f"“{value[:40]}” is not yes/no (use yes/no, Y/N, true/false or 1/0)")


def parse_date(value: str) -> dt.date:
    v = value.strip()
    if len(v) == 10 and v[4] == "-" and v[7] == "-" and v.isascii():
        # The common ISO form without strptime's cost; the same checks and messages.
        try:
            day = dt.date.fromisoformat(v)
        except ValueError:
            day = None
        if day is not None:
            return _past(day, value)
    v = " ".join(v.split())
    if "T" in v and len(v) > 10:
        v = v.split("T")[0]
    elif len(v) > 10 and " " in v and ":" in v:
        v = v.rsplit(" ", 1)[0]
    for fmt in _DATE_FORMATS:
        try:
            day = dt.datetime.strptime(v, fmt).date()
        except ValueError:
            continue
        return _past(day, value)
    raise ValidationError(f"“{value[:40]}” is not a date (use YYYY-MM-DD or MM/DD/YYYY)")


def _past(day: dt.date, value: str) -> dt.date:
    if not birthday_in_past(day):  # the personas service's rule, in this column's words
        raise ValidationError(f"“{value[:40]}” is not a birthday in the past")
    return day


def parse_int(value: str) -> int:
    v = value.strip().replace(",", "").replace(" ", "")
    try:
        number = float(v) if "." in v else int(v)
    except ValueError as exc:
        raise ValidationError(f"“{value[:40]}” is not a whole number") from exc
    if isinstance(number, float):
        if not number.is_integer():
            raise ValidationError(f"“{value[:40]}” is not a whole number")
        number = int(number)
    if abs(number) > 10_000_000:
        raise ValidationError(f"“{value[:40]}” is too large")
    return number


@dataclass
class ParsedRow:
    line: int
    raw: list[str]
    fields: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    consents: dict[str, bool] = field(default_factory=dict)
    points: int | None = None
    store: str = ""
    errors: list[str] = field(default_factory=list)  # what refuses the whole row
    # Cells the row is taken without (not usable, or a placeholder that identifies nobody).
    warnings: list[str] = field(default_factory=list)
    prints: list[int] = field(default_factory=list)  # identifier fingerprints (in-file dedupe)

    @property
    def empty(self) -> bool:
        return not any(cell.strip() for cell in self.raw)


_markers_cache: tuple[tuple[str, ...], frozenset[str]] = ((), frozenset())


def empty_markers() -> frozenset[str]:
    """What spreadsheets and POS exports write for "no value" (``IMPORTS_EMPTY_MARKERS``),
    lower-cased: such a cell is blank."""
    global _markers_cache
    configured = tuple(settings.IMPORTS_EMPTY_MARKERS)
    if _markers_cache[0] != configured:
        _markers_cache = (configured, frozenset(m.strip().lower() for m in configured))
    return _markers_cache[1]


def is_blank(value: str, markers: frozenset[str] | None = None) -> bool:
    text = value.strip() if value else ""
    return not text or text.lower() in (empty_markers() if markers is None else markers)


def mail_address(value: str) -> str:
    """The address of an email written as mail programs export it: ``mailto:x@y``,
    ``<x@y>`` or ``Name <x@y>``; any other text unchanged (``normalize_email`` judges it)."""
    text = value.strip()
    if text[:7].lower() == "mailto:":
        text = text[7:].split("?", 1)[0].strip()
    if "<" in text and text.endswith(">"):
        _name, address = parseaddr(text)
        if address and "@" in address:
            return address
    return text


def _cell_problem(header: str, value: str, message: str) -> str:
    """One unusable cell, in the words of the report: its column, its value as typed, why."""
    typed = " ".join(value.split())[:40]
    if typed and typed not in message:
        return f"{header}: {message} (“{typed}”)"
    return f"{header}: {message}"


def parse_row(line: int, cells: list[str], columns: list[tuple[int, str, str]]) -> ParsedRow:
    """``columns``: (index, target, header) for every mapped column.

    A cell that cannot be used goes to ``warnings`` (the row is taken without it when another
    of its cells identifies the customer); ``errors`` are what refuses the whole row."""
    row = ParsedRow(line, cells)
    if any("\x00" in cell for cell in cells):
        row.errors.append("The row contains a NUL character (a damaged file?)")
        return row
    markers = empty_markers()
    for index, target, header in columns:
        if index >= len(cells):
            continue
        value = cells[index]
        if is_blank(value, markers):
            continue
        try:
            if target.startswith("attr:"):
                key = target[5:]
                row.attrs[key] = validate_attribute_value(key, value.strip())
            elif target in ("first_name", "last_name"):
                row.fields[target] = clean_text(value, max_length=150, label=header)
            elif target == "customer_id":
                row.fields[target] = clean_text(value, max_length=64, label=header)
            elif target == "email":
                row.fields["email"] = normalize_email(mail_address(value))
            elif target == "phone":
                row.fields["phone"] = normalize_phone(value)
                ext = phone_extension(value)
                if ext:
                    row.fields["phone_ext"] = ext
            elif target == "birthday":
                row.fields["birthday"] = parse_date(value)
            elif target == "loyalty":
                row.fields["loyalty_enrolled"] = parse_bool(value)
            elif target.endswith("_opt_in"):
                row.consents[target.removesuffix("_opt_in")] = parse_bool(value)
            elif target == "points":
                row.points = parse_int(value)
            elif target == "favorite_store":
                row.store = value.strip()
        except PlaceholderIdentifier as exc:
            row.warnings.append(f"{header}: {exc.messages[0].rstrip('.')}")
        except ValidationError as exc:
            row.warnings.append(_cell_problem(header, value, exc.messages[0].rstrip(".")))
    return row
