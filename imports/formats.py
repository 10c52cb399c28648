"""How a column writes its numbers and dates, found from its values, and reading a cell by it.

Files come from spreadsheets and point-of-sale exports written in every local habit: ``1.000``
is a thousand in a European file and one in an American one, ``05/04/1990`` is the 5th of April
or May 4th. A cell alone cannot say which, a column usually can: ``2.500`` in a points column,
``25/12/1990`` in a date column. So every mapped column is *profiled* (``ColumnProfile``) over
the whole file, its format is *resolved* (``resolve``) from the profile, the user's choice in
the mapping and the file's hints (delimiter, phone region), and each cell is *read* by that
format (``ColumnFormat.read``). A value the format cannot read is refused with a message naming
the format: never read as a different value.

Shapes:

- number styles: ``"point"`` (``1,234.56``: decimal point, groups of three by comma, space or
  apostrophe) and ``"comma"`` (``1.234,56``: decimal comma, groups by point, space or
  apostrophe). Currency signs and codes around the number, a leading ``-`` or ``−``, a trailing
  ``-`` and accounting parentheses are read; leading zeros (``00123``: a code, not a number),
  a leading ``+`` (a phone) and more than 15 digits (an ID) are not numbers.
- date orders: ``"dmy"``, ``"mdy"``, ``"ymd"``. ISO dates (``1990-12-25``), ``YYYYMMDD``, month
  names (``14 Mar 1955``, ``March 14, 1955``) read the same in every order. A time after the
  date is ignored. In a date column a whole number from 1 to 2,958,465 (optionally with a
  fraction: a time) is an Excel serial date (days since 1899-12-30, Excel's 1900 date system).
- two-digit years: a birthday is always in the past (``55`` → 1955, ``05`` → 2005 until the
  5th birthday in 2005 would be in the future); other dates fall within fifty years of today.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

NUMBER_STYLES = {"point": "1,234.56", "comma": "1.234,56"}
DATE_ORDERS = {
    "dmy": "Day first (31/12/1990)",
    "mdy": "Month first (12/31/1990)",
    "ymd": "Year first (1990/12/31)",
}
DATE_PATTERNS = {"dmy": "DD/MM/YYYY", "mdy": "MM/DD/YYYY", "ymd": "YYYY/MM/DD"}
# What a custom attribute column is stored as.
ATTRIBUTE_TYPES = {"text": "Text", "number": "Number", "bool": "Yes/no", "date": "Date"}
# Phone regions whose people write the month first; every other region writes the day first
# (or the year first, which is never ambiguous).
MONTH_FIRST_REGIONS = frozenset({"US", "PH", "FM", "MH", "PW", "AS", "GU", "MP", "PR", "VI"})
EXCEL_EPOCH = dt.date(1899, 12, 30)  # serial 1 is 1900-01-01 (after Excel's 1900 leap bug: 61)
EXCEL_MAX_SERIAL = 2_958_465  # 9999-12-31
MAX_DIGITS = 15  # beyond this a "number" is an identifier (card, barcode): kept as text

_TRUE = {"yes", "y", "true", "t", "1", "on", "x", "opted in", "optedin", "subscribed"}
_FALSE = {"no", "n", "false", "f", "0", "off", "opted out", "optedout", "unsubscribed"}

# ---------------------------------------------------------------------------------------------
# Numbers

_SPACES = "\u00a0\u202f\u2009\u2007 "
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}(?=[\s\d(+\-−])|(?<=[\d)\s])[A-Z]{3}$")
_POINT = re.compile(r"^(?:\d{1,3}(?:([, '])\d{3}(?:\1\d{3})*)?|\d+)?(?:\.\d+)?$")
_COMMA = re.compile(r"^(?:\d{1,3}(?:([. '])\d{3}(?:\1\d{3})*)?|\d+)?(?:,\d+)?$")


def _number_core(text: str) -> tuple[str, bool] | None:
    """The digits and separators of a written number and whether it is negative; None when
    the text is not written as a number (signs of a code, a phone or an identifier)."""
    v = text.strip()
    for space in _SPACES[:-1]:
        v = v.replace(space, " ")
    v = v.replace("’", "'").replace("−", "-")
    negative = False
    if v.startswith("(") and v.endswith(")"):
        negative, v = True, v[1:-1].strip()
    v = _CURRENCY_CODE.sub("", v).strip()
    while v and (v[0] in "$€£¥₹₩₽¢" or v[0] == "-"):
        if v[0] == "-":
            if negative:
                return None
            negative = True
        v = v[1:].strip()
    while v and (v[-1] in "$€£¥₹₩₽¢" or v[-1] == "-"):
        if v[-1] == "-":
            if negative:
                return None
            negative = True
        v = v[:-1].strip()
    if not v or not (v[0].isdigit() or v[0] in ".,") or not v[-1].isdigit():
        return None
    digits = sum(c.isdigit() for c in v)
    if digits > MAX_DIGITS or not v.isascii():
        return None
    if len(v) > 1 and v[0] == "0" and v[1].isdigit():
        return None  # 00123: a code, whose zeros a number would lose
    return v, negative


def number_styles(text: str) -> dict[str, Decimal]:
    """The styles under which ``text`` is a number, each with the value it reads."""
    core = _number_core(text)
    if core is None:
        return {}
    v, negative = core
    out: dict[str, Decimal] = {}
    if _POINT.match(v):
        out["point"] = Decimal(re.sub(r"[, ']", "", v))
    if _COMMA.match(v):
        out["comma"] = Decimal(re.sub(r"[. ']", "", v).replace(",", "."))
    if negative:
        out = {k: -d for k, d in out.items()}
    return out


def as_number(value: Decimal) -> int | float:
    """A read number as JSON holds it: an int when whole, else a float."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


# ---------------------------------------------------------------------------------------------
# Dates

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_TIME = re.compile(
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?[AaPp]\.?[Mm]\.?)?(?:Z|[+-]\d{2}:?\d{2})?)$"
)
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TRIPLE = re.compile(r"^(\d{1,4})([/.\- ])(\d{1,2})\2(\d{1,4})$")
_NAMED = re.compile(
    r"^(?:(\d{1,2})(?:st|nd|rd|th)?[ \-]?([A-Za-z]+)\.?,?[ \-]?"  # 14 Mar 1955, 5-Apr-90
    r"|([A-Za-z]+)\.?[ \-]?(\d{1,2})(?:st|nd|rd|th)?,?[ \-]?)"  # March 14, 1955
    r"'?(\d{2}|\d{4})$"
)
_SERIAL = re.compile(r"^\d{1,7}(?:\.\d+)?$")
_DIGIT = re.compile(r"\d")
# What may be a number at all (a cheap test before the parsers): digits with signs, currency,
# separators, spaces, parentheses and currency codes around them.
_NUMBERISH = re.compile(
    r"^[\s(+\-−$€£¥₹₩₽¢A-Z]*[\d.,][\d.,'’\s\u00a0\u202f\u2009\u2007]*[\s)\-−$€£¥₹₩₽¢A-Z]*$"
)


def _valid_compact(v: str) -> bool:
    try:
        dt.date(int(v[:4]), int(v[4:6]), int(v[6:]))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class DateShape:
    """What a written date says about its column: ``order`` is the orders it can be read in
    (``None``: every order reads it the same), ``parts`` its (first, second, year) numbers."""

    kind: str  # "iso", "named", "triple", "serial"
    orders: frozenset[str] | None
    parts: tuple[int, int, int] = (0, 0, 0)
    two_digit_year: bool = False
    dotted: bool = False


def date_shape(text: str, *, serials: bool) -> DateShape | None:
    """How ``text`` is written as a date, or None when it is not one in any order."""
    v = " ".join(text.split())
    v = _TIME.sub("", v).strip()
    if not v:
        return None
    if serials and _SERIAL.match(v):
        if 1 <= float(v) <= EXCEL_MAX_SERIAL and not _COMPACT.match(v):
            return DateShape("serial", None, (int(float(v)), 0, 0))
    if m := _ISO.match(v) or _COMPACT.match(v):
        if m.re is _COMPACT and not _valid_compact(v):
            return None
        return DateShape("iso", None, (int(m[1]), int(m[2]), int(m[3])))
    if m := _TRIPLE.match(v):
        a, sep, b, c = m[1], m[2], m[3], m[4]
        if len(a) == 4:
            return DateShape("iso", None, (int(a), int(b), int(c))) if len(c) <= 2 else None
        if len(c) not in (2, 4):
            return None
        first, second = int(a), int(b)
        orders = {
            o
            for o, (d, mo) in (("dmy", (first, second)), ("mdy", (second, first)))
            if 1 <= d <= 31 and 1 <= mo <= 12
        }
        if not orders:
            return None
        return DateShape(
            "triple", frozenset(orders), (first, second, int(c)), len(c) == 2, sep == "."
        )
    if m := _NAMED.match(v):
        day, month = (m[1], m[2]) if m[1] else (m[4], m[3])
        number = _MONTHS.get(month.lower())
        if number is None:
            return None
        return DateShape("named", None, (int(day), number, int(m[5])), len(m[5]) == 2)
    return None


def _full_year(
    year: int, two_digit: bool, month: int, day: int, *, past: bool, today: dt.date
) -> int:
    if not two_digit:
        return year
    if past:  # a birthday: the latest century that puts it on or before today
        year += 2000
        try:
            if dt.date(year, month, day) > today:
                year -= 100
        except ValueError:
            if year > today.year:
                year -= 100
        return year
    # other dates: within fifty years of today
    base = today.year - 50
    candidate = base - base % 100 + year
    return candidate + 100 if candidate < base else candidate


def read_date(shape: DateShape, order: str, *, past: bool, today: dt.date) -> dt.date:
    """The date ``shape`` holds read in ``order``; ValueError when it is no date then."""
    if shape.kind == "serial":
        serial = shape.parts[0]
        # Excel counts a 29 February 1900 that never was: serials before it start a day later.
        return EXCEL_EPOCH + dt.timedelta(days=serial if serial >= 61 else serial + 1)
    if shape.kind == "iso":
        return dt.date(*shape.parts)
    if shape.kind == "named":
        day, month, year = shape.parts
        return dt.date(
            _full_year(year, shape.two_digit_year, month, day, past=past, today=today), month, day
        )
    if shape.orders is not None and order not in shape.orders:
        raise ValueError(order)
    first, second, year = shape.parts
    day, month = (first, second) if order == "dmy" else (second, first)
    return dt.date(
        _full_year(year, shape.two_digit_year, month, day, past=past, today=today), month, day
    )


# ---------------------------------------------------------------------------------------------
# A column's format


@dataclass(frozen=True)
class ColumnFormat:
    """How one column's cells are read. ``kind``: "text", "number", "whole" (a whole number,
    e.g. points), "date", "bool". ``past``: its dates are birthdays."""

    kind: str
    numbers: str = "point"
    dates: str = "mdy"
    past: bool = False
    serials: bool = False  # the column holds Excel serial dates (any whole number is one)

    @property
    def phrase(self) -> str:
        """The format inside a sentence: "day first (DD/MM/YYYY)", "1,234.56"."""
        if self.kind in ("number", "whole"):
            return NUMBER_STYLES[self.numbers]
        if self.kind == "date":
            return (
                DATE_ORDERS[self.dates].split(" (")[0].lower() + f" ({DATE_PATTERNS[self.dates]})"
            )
        return ATTRIBUTE_TYPES.get(self.kind, "Text").lower()

    @property
    def label(self) -> str:
        if self.kind in ("number", "whole"):
            return f"Numbers written {NUMBER_STYLES[self.numbers]}"
        if self.kind == "date":
            return DATE_ORDERS[self.dates].split(" (")[0] + f" ({DATE_PATTERNS[self.dates]})"
        return ATTRIBUTE_TYPES.get(self.kind, "Text")

    def read(self, value: str, *, today: dt.date | None = None) -> Any:
        """The value of one non-blank cell; ValidationError naming this format otherwise."""
        v = value.strip()
        if self.kind in ("number", "whole"):
            styles = number_styles(v)
            if self.numbers not in styles:
                other = "" if not styles else " (it reads as a number written the other way)"
                raise ValidationError(
                    f"“{v[:40]}” is not a number written {NUMBER_STYLES[self.numbers]}{other}"
                )
            number = styles[self.numbers]
            if self.kind == "whole":
                if number != number.to_integral_value():
                    raise ValidationError(f"“{v[:40]}” is not a whole number")
                if abs(number) > 10_000_000:
                    raise ValidationError(f"“{v[:40]}” is too large")
                return int(number)
            result = as_number(number)
            if (
                isinstance(result, int)
                and abs(result) > 2**53
                or isinstance(result, float)
                and not math.isfinite(result)
            ):
                raise ValidationError(f"“{v[:40]}” is too large")
            return result
        if self.kind == "date":
            today = today or dt.date.today()
            shape = date_shape(v, serials=True)
            if shape is not None and shape.kind == "serial" and not self.serials:
                # Among written dates only a large serial is one (10000 is 1927-05-18): a
                # lone "1990" is a year, not day 1,990 of Excel's calendar.
                shape = shape if shape.parts[0] >= 10_000 else None
            if shape is None:
                raise ValidationError(f"“{v[:40]}” is not a date (this column reads {self.phrase})")
            try:
                day = read_date(shape, self.dates, past=self.past, today=today)
            except (ValueError, OverflowError):
                raise ValidationError(
                    f"“{v[:40]}” is not a date written {self.phrase}, as this column is"
                ) from None
            if shape.kind == "serial" and self.past and day.year < 1900:
                raise ValidationError(f"“{v[:40]}” is not a date (this column reads {self.phrase})")
            return day
        if self.kind == "bool":
            low = v.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValidationError(f"“{v[:40]}” is not yes/no (use yes/no, Y/N, true/false or 1/0)")
        return v


# ---------------------------------------------------------------------------------------------
# Profiling a column


@dataclass
class ColumnProfile:
    """What a column's non-blank values say about its format (bounded: counts and a few
    examples, whatever the file's length)."""

    values: int = 0
    numbers: dict[str, int] = field(default_factory=lambda: {"point": 0, "comma": 0})
    number_differs: int = 0  # values the two styles read differently (1.000, 1,500)
    whole: dict[str, int] = field(default_factory=lambda: {"point": 0, "comma": 0})
    dates: int = 0  # values that are a date in some order (serials not counted)
    serials: int = 0
    orders: dict[str, int] = field(default_factory=lambda: {"dmy": 0, "mdy": 0})  # proofs
    ambiguous_dates: int = 0
    two_digit_years: int = 0
    dotted: int = 0
    bools: int = 0
    bool_words: int = 0  # yes/no words other than 1/0
    codes: int = 0  # digits a number would change: 02134, +12025550101, long identifiers
    examples: list[str] = field(default_factory=list)
    proofs: dict[str, str] = field(default_factory=dict)  # "dmy" → "25/12/1990", "comma" → …

    def add(self, value: str) -> None:
        v = value.strip()
        self.values += 1
        if len(self.examples) < 3 and v[:60] not in self.examples:
            self.examples.append(v[:60])
        if v.isascii() and v.isdigit():
            self._add_digits(v)
        else:
            self._add_general(v)

    def _add_general(self, v: str) -> None:
        if not _DIGIT.search(v):  # words: neither a number nor a date, maybe a yes/no
            low = v.lower()
            if low in _TRUE or low in _FALSE:
                self.bools += 1
                self.bool_words += 1
            return
        styles = number_styles(v) if _NUMBERISH.match(v) else {}
        for style, number in styles.items():
            self.numbers[style] += 1
            if number == number.to_integral_value():
                self.whole[style] += 1
        if not styles and v.lstrip("+").replace(" ", "").isdigit():
            self.codes += 1  # 02134, +12025550101: neither a number nor a date
            return
        if len(styles) == 2 and styles["point"] != styles["comma"]:
            self.number_differs += 1
        elif len(styles) == 1:
            style = next(iter(styles))
            self.proofs.setdefault(style, v[:40])
        shape = date_shape(v, serials=True)
        if shape is not None:
            if shape.kind == "serial":
                self.serials += 1
            else:
                self.dates += 1
                self.two_digit_years += shape.two_digit_year
                self.dotted += shape.dotted
                if shape.orders is not None:
                    if len(shape.orders) == 1:
                        order = next(iter(shape.orders))
                        self.orders[order] += 1
                        self.proofs.setdefault(order, v[:40])
                    elif shape.parts[0] != shape.parts[1]:
                        self.ambiguous_dates += 1
                        self.proofs.setdefault("ambiguous", v[:40])
        low = v.lower()
        if low in _TRUE or low in _FALSE:
            self.bools += 1
            self.bool_words += not low.isdigit()

    def _add_digits(self, v: str) -> None:
        """``add`` for the commonest cell, plain digits, without the general parsers (the
        same counts: a test compares the two)."""
        if len(v) > 1 and v[0] == "0" or len(v) > MAX_DIGITS:
            self.codes += 1
            return
        for style in ("point", "comma"):
            self.numbers[style] += 1
            self.whole[style] += 1
        if len(v) == 8 and _COMPACT.match(v) and _valid_compact(v):
            self.dates += 1
        elif 1 <= int(v) <= EXCEL_MAX_SERIAL:
            self.serials += 1
        if v in ("0", "1"):
            self.bools += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "numbers": self.numbers,
            "number_differs": self.number_differs,
            "whole": self.whole,
            "dates": self.dates,
            "serials": self.serials,
            "orders": self.orders,
            "ambiguous_dates": self.ambiguous_dates,
            "two_digit_years": self.two_digit_years,
            "dotted": self.dotted,
            "bools": self.bools,
            "bool_words": self.bool_words,
            "codes": self.codes,
            "examples": self.examples,
            "proofs": self.proofs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ColumnProfile:
        profile = cls()
        for name, value in (data or {}).items():
            if hasattr(profile, name):
                setattr(profile, name, value)
        return profile


@dataclass(frozen=True)
class Hints:
    """What the file says about its habits beyond a column: its delimiter (``;`` is what
    spreadsheets write where the comma is the decimal sign) and the product's phone region."""

    delimiter: str = ","
    region: str = ""

    @property
    def numbers(self) -> str:
        return "comma" if self.delimiter == ";" else "point"

    @property
    def dates(self) -> str:
        if self.delimiter == ";":
            return "dmy"
        region = self.region or settings.PHONE_DEFAULT_REGION
        return "mdy" if region.upper() in MONTH_FIRST_REGIONS else "dmy"


def _nearly_all(count: int, n: int) -> bool:
    """``count`` of ``n`` values is the column's type, the rest a few mistakes (reported one
    by one): at least two values, and at most one in twenty (at least one) otherwise."""
    return count >= 2 and n - count <= max(1, n // 20) or count == n


def detected_type(profile: ColumnProfile) -> str:
    """The type a custom-attribute column's values share: "number", "date", "bool" or "text".

    A column holding codes a number would change (``02134``) is text, whatever else it holds."""
    n = profile.values
    if not n or profile.codes:
        return "text"
    if profile.bools == n and profile.bool_words:
        return "bool"
    if _nearly_all(max(profile.numbers.values()), n):
        return "number"
    if _nearly_all(profile.dates, n) and profile.dates > max(profile.numbers.values()):
        return "date"
    return "text"


def number_style(profile: ColumnProfile, hints: Hints, *, whole: bool = False) -> tuple[str, bool]:
    """The column's number style and whether the file left it open (the hint chose, and the
    two styles read some value differently: the mapping asks).

    The style more values are written in wins; between equals, for a whole-number column
    (points), the style that reads more of them as whole numbers (``2.500`` points are 2500)."""
    point, comma = profile.numbers["point"], profile.numbers["comma"]
    if point != comma:
        return ("point" if point > comma else "comma"), False
    if whole and profile.whole["point"] != profile.whole["comma"]:
        return ("point" if profile.whole["point"] > profile.whole["comma"] else "comma"), False
    return hints.numbers, profile.number_differs > 0


def date_order(profile: ColumnProfile, hints: Hints) -> tuple[str, bool]:
    """The column's date order and whether the file left it open (the mapping asks).

    Day first if more values prove it (``25/12/1990``), month first if more prove that
    (``12/25/1990``); otherwise, when some value reads differently in the two orders, the
    default is day first for dotted dates (``05.04.1990``) or a ``;`` file, else the phone
    region's habit."""
    dmy, mdy = profile.orders["dmy"], profile.orders["mdy"]
    if dmy != mdy:
        return ("dmy" if dmy > mdy else "mdy"), False
    default = hints.dates
    if profile.dotted and profile.dotted * 2 >= profile.dates:
        default = "dmy"
    return default, bool(dmy or profile.ambiguous_dates)


@dataclass(frozen=True)
class Resolved:
    """A column's format with how it was chosen, for the mapping and the preview."""

    format: ColumnFormat
    detected: str  # what the profile says, in words
    ambiguous: bool = False  # the file does not say: the mapping asks


def resolve(
    kind: str,
    profile: ColumnProfile,
    choice: dict[str, str] | None,
    hints: Hints,
    *,
    past: bool = False,
) -> Resolved:
    """A column's format: ``kind`` is its target's ("int", "date", "bool", "attr", …),
    ``choice`` the mapping's answers (``{"type": …, "numbers": …, "dates": …}``, each
    optional: missing or "" means as detected)."""
    choice = choice or {}
    if kind == "attr":
        kind = choice.get("type") or detected_type(profile)
        if kind not in ATTRIBUTE_TYPES:
            kind = "text"
    kind = {"int": "whole"}.get(kind, kind)
    if kind in ("number", "whole"):
        style, ambiguous = number_style(profile, hints, whole=kind == "whole")
        chosen = choice.get("numbers") if choice.get("numbers") in NUMBER_STYLES else ""
        detected = f"Numbers written {NUMBER_STYLES[style]}"
        return Resolved(
            ColumnFormat(kind, numbers=chosen or style), detected, ambiguous and not chosen
        )
    if kind == "date":
        order, ambiguous = date_order(profile, hints)
        chosen = choice.get("dates") if choice.get("dates") in DATE_ORDERS else ""
        serials = profile.serials > 0 and profile.serials >= profile.dates
        fmt = ColumnFormat("date", dates=chosen or order, past=past, serials=serials)
        detected = DATE_ORDERS[order].split(" (")[0]
        if profile.serials and not profile.dates:
            detected = "Excel serial dates"
        elif profile.serials:
            detected += ", Excel serial dates"
        if profile.two_digit_years:
            detected += ", two-digit years (birthdays in the past)" if past else ", two-digit years"
        return Resolved(fmt, detected, ambiguous and not chosen)
    if kind == "bool":
        return Resolved(ColumnFormat("bool"), "Yes/no")
    return Resolved(ColumnFormat("text"), "Text")
