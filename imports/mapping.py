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

from .csvfile import storable
from .formats import ColumnFormat, ColumnProfile, Hints, Resolved, resolve

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


def _exported_key(key: str) -> str:
    """An attribute key as the persona export wrote it (``attr:<key>``): itself when valid."""
    try:
        validate_attribute_key(key)
    except ValidationError:
        return attribute_key_for(key)
    return key


def auto_mapping(headers: list[str]) -> dict[str, str]:
    """Column index (as text) → target; unknown headers become custom attributes."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for index, header in enumerate(headers):
        key = header_key(header)
        target = _LOOKUP.get(key)
        if header.strip().lower().startswith("attr:") and header.strip()[5:].strip():
            # the persona export's custom attribute columns come back as those attributes
            mapping[str(index)] = f"attr:{_exported_key(header.strip()[5:].strip())}"
            continue
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


def parse_bool(value: str) -> bool:
    return ColumnFormat("bool").read(value)


def parse_date(value: str, fmt: ColumnFormat | None = None) -> dt.date:
    """A birthday cell read by its column's format; alone (no column), by the format a
    column holding just this value resolves to (``formats.resolve``: the one date rule)."""
    if fmt is None:
        profile = ColumnProfile()
        profile.add(value)
        fmt = resolve("date", profile, None, Hints(), past=True).format
    return _past(fmt.read(value), value)


def _past(day: dt.date, value: str) -> dt.date:
    if not birthday_in_past(day):  # the personas service's rule, in this column's words
        raise ValidationError(f"“{value[:40]}” is not a birthday in the past")
    return day


def parse_int(value: str, fmt: ColumnFormat | None = None) -> int:
    return (fmt or ColumnFormat("whole", numbers=Hints().numbers)).read(value)


def column_format(
    target: str,
    profile: dict[str, Any] | None,
    choice: dict[str, str] | None,
    hints: Hints,
) -> Resolved:
    """How the column mapped to ``target`` is read: its target's kind, what its values showed
    (``profile``, see ``formats.ColumnProfile``) and the mapping's answers (``choice``)."""
    kind = "attr" if target.startswith("attr:") else TARGETS.get(target, ("", "text"))[1]
    if kind not in ("attr", "int", "date"):
        kind = "bool" if kind == "bool" else "text"
    return resolve(
        kind,
        ColumnProfile.from_dict(profile),
        choice,
        hints,
        past=target == "birthday",
    )


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


def parse_row(line: int, cells: list[str], columns: list[tuple]) -> ParsedRow:
    """``columns``: (index, target, header[, format]) for every mapped column; a column
    without its ``ColumnFormat`` is read by the defaults (``column_format`` of no profile).

    A cell that cannot be used goes to ``warnings`` (the row is taken without it when another
    of its cells identifies the customer); ``errors`` are what refuses the whole row."""
    row = ParsedRow(line, cells)
    if any("\x00" in cell for cell in cells):
        row.errors.append("The row contains a NUL character (a damaged file?)")
        return row
    markers = empty_markers()
    for column in columns:
        index, target, header = column[:3]
        fmt = column[3] if len(column) > 3 else None
        if index >= len(cells):
            continue
        value = cells[index]
        if is_blank(value, markers):
            continue
        try:
            if target.startswith("attr:"):
                key = target[5:]
                fmt = fmt or column_format(target, None, None, Hints()).format
                row.attrs[key] = validate_attribute_value(key, fmt.read(value))
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
                row.fields["birthday"] = parse_date(value, fmt)
            elif target == "loyalty":
                row.fields["loyalty_enrolled"] = parse_bool(value)
            elif target.endswith("_opt_in"):
                row.consents[target.removesuffix("_opt_in")] = parse_bool(value)
            elif target == "points":
                row.points = parse_int(value, fmt)
            elif target == "favorite_store":
                row.store = value.strip()
        except PlaceholderIdentifier as exc:
            row.warnings.append(f"{header}: {exc.messages[0].rstrip('.')}")
        except ValidationError as exc:
            row.warnings.append(_cell_problem(header, value, exc.messages[0].rstrip(".")))
    return row


def profile_rows(
    rows: Any, *, columns: list[int], limit: int | None = None
) -> dict[str, dict[str, Any]]:
    """Profile ``columns`` over ``rows`` (``(line, cells)`` pairs; the first ``limit`` rows
    when given): column index as text → ``ColumnProfile.as_dict()``. Blank cells and the
    "no value" markers say nothing about a column's format."""
    markers = empty_markers()
    profiles = {index: ColumnProfile() for index in columns}
    for count, (_line, cells) in enumerate(rows, start=1):
        width = len(cells)
        for index, profile in profiles.items():
            if index < width:
                value = cells[index]
                if not is_blank(value, markers):
                    profile.add(value)
        if limit is not None and count >= limit:
            break
    out = {}
    for index, profile in profiles.items():
        data = profile.as_dict()  # its examples as kept for previews (NUL shown as \0)
        data["examples"] = storable(data["examples"])
        data["proofs"] = {key: storable([value])[0] for key, value in data["proofs"].items()}
        out[str(index)] = data
    return out
