"""Values read as people write them (issue #26, examples 1–4): number styles and date orders
found per column over the whole file, Excel serials, two-digit years, typed custom attributes
that flows and Liquid compare as numbers, and a property: a value written in any locale's
habit is imported as itself or reported naming its column, never as a different value."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from flows.models import FlowStepLog
from imports import pipeline, services
from imports.formats import ColumnProfile, Hints, date_shape, number_styles, resolve
from imports.forms import MappingForm
from imports.mapping import parse_row
from imports.models import ImportJob
from personas.models import Persona
from tests.flows.test_engine import _flow, _one
from tests.flows.test_engine import _run as run_flow
from tests.imports.test_imports import _issues, _job, _run

pytestmark = pytest.mark.django_db

TODAY = dt.date.today()


def _preview(text: str, **choices) -> ImportJob:
    """Upload, map and dry-run ``text`` as the mapping page does; the job with its preview."""
    job = _job(text, **choices)
    job.status = ImportJob.Status.PREVIEWING
    job.save()
    job.preview = pipeline.preview(job)
    job.status = ImportJob.Status.PREVIEWED
    job.save()
    return job


def _column(job: ImportJob, header: str) -> dict:
    [col] = [c for c in job.preview["columns"] if c["header"] == header]
    return col


# ---------------------------------------------------------------------------------------------
# Example 1: European numbers


def test_example_1_semicolon_file_points_read_as_thousands():
    text = "Mobile;Points\n2025550101;1.000\n2025550102;2.500\n2025550103;12\n"
    job = _run(text)
    assert (job.created, job.errors, job.warnings) == (3, 0, 0)
    points = dict(Persona.objects.values_list("phone", "points_balance"))
    assert points == {"+12025550101": 1000, "+12025550102": 2500, "+12025550103": 12}


@pytest.mark.parametrize(
    ("delimiter", "cells", "expected"),
    [
        # a points column: 2.5 points cannot be, so 2.500 is two thousand five hundred
        (",", ["1.000", "2.500"], [1000, 2500]),
        (";", ["1 000", "2 500"], [1000, 2500]),
        (",", ["1,000", "2,500"], [1000, 2500]),
        (",", ["1,000", "$2,500.00"], [1000, 2500]),
        (";", ["1.000", "7"], [1000, 7]),
        (",", ["1'000", "2'500"], [1000, 2500]),
    ],
)
def test_points_columns_in_every_local_habit(delimiter, cells, expected):
    rows = "".join(f'20255501{i:02d}{delimiter}"{cell}"\n' for i, cell in enumerate(cells, 1))
    job = _run(f"Mobile{delimiter}Points\n{rows}")
    assert job.errors == 0 and job.warnings == 0, _issues(job)
    got = [Persona.objects.get(phone=f"+120255501{i:02d}").points_balance for i in (1, 2)]
    assert got == expected


def test_a_number_that_contradicts_its_column_is_reported_naming_column_and_format():
    # Most of the column is written 1.234,56; "1,250.00" cannot be read that way.
    text = (
        "E-mail;Spend\na@example.com;1.250,00\nb@example.com;300,50\n"
        "c@example.com;12,00\nd@example.com;1,250.00\n"
    )
    job = _run(text)
    assert (job.created, job.errors, job.warnings) == (4, 0, 1)
    [reason] = _issues(job).values()
    assert reason.startswith("Spend:") and "1.234,56" in reason and "1,250.00" in reason
    spend = dict(Persona.objects.values_list("email", "attributes__spend"))
    assert spend["a@example.com"] == 1250 and spend["b@example.com"] == 300.5
    assert spend["d@example.com"] is None  # left out, never read as another number


# ---------------------------------------------------------------------------------------------
# Examples 2 and 3: dates


def test_example_2_excel_short_date_with_two_digit_year_is_a_past_birthday():
    job = _run("Mobile,Birthday\n2025550101,3/14/55\n2025550102,7/4/05\n2025550103,12/1/30\n")
    assert (job.created, job.errors, job.warnings) == (3, 0, 0), _issues(job)
    days = dict(Persona.objects.values_list("phone", "birthday"))
    assert days["+12025550101"] == dt.date(1955, 3, 14)
    assert days["+12025550102"] == dt.date(2005, 7, 4)
    assert days["+12025550103"] == dt.date(1930, 12, 1)  # 2030 is not in the past


def test_example_3_a_day_first_value_makes_the_whole_column_day_first():
    job = _run("Mobile,DOB\n2025550101,05/04/1990\n2025550102,25/12/1990\n")
    assert (job.created, job.errors, job.warnings) == (2, 0, 0), _issues(job)
    days = dict(Persona.objects.values_list("phone", "birthday"))
    assert days == {"+12025550101": dt.date(1990, 4, 5), "+12025550102": dt.date(1990, 12, 25)}


def test_example_3_the_proof_may_come_last_in_a_long_file(settings):
    settings.IMPORTS_PROFILE_ROWS = 10  # the mapping page saw only the first rows
    rows = "".join(f"2025550{i:03d},05/04/1990\n" for i in range(100, 130))
    job = _preview(f"Mobile,DOB\n{rows}2025550999,25/12/1990\n")
    col = _column(job, "DOB")
    assert col["format"].startswith("Day first") and not col["ambiguous"]
    assert ["05/04/1990", "5 Apr 1990"] in col["examples"]
    job = pipeline.run(job.pk)
    assert job.errors == 0 and job.warnings == 0
    assert Persona.objects.get(phone="+12025550100").birthday == dt.date(1990, 4, 5)


def test_example_3_an_ambiguous_column_asks_and_reads_as_answered():
    text = "Mobile,DOB\n2025550101,05/04/1990\n2025550102,03/02/1991\n"
    job = _preview(text)
    col = _column(job, "DOB")
    assert col["ambiguous"] and col["format"].startswith("Month first")  # the US habit
    form = MappingForm(job=job)
    [dob] = [c for c in form.columns if c["header"] == "DOB"]
    assert dob["ambiguous"] and "doesn't say" in dict(dob["dates"].field.choices)[""]
    job = _job(text, formats={"1": {"dates": "dmy"}})
    job = pipeline.run(job.pk)
    assert Persona.objects.get(phone="+12025550101").birthday == dt.date(1990, 4, 5)


def test_a_date_against_the_answered_order_is_reported_not_swapped():
    job = _run(
        "Mobile,E-mail,DOB\n2025550101,a@example.com,25/12/1990\n",
        formats={"2": {"dates": "mdy"}},
    )
    assert (job.created, job.warnings) == (1, 1)
    [reason] = _issues(job).values()
    assert reason.startswith("DOB:") and "month first (MM/DD/YYYY)" in reason
    assert Persona.objects.get().birthday is None


def test_excel_serial_dates_in_a_csv_date_column():
    job = _run("Mobile,Birthday\n2025550101,33000\n2025550102,25569\n")
    assert (job.created, job.errors, job.warnings) == (2, 0, 0), _issues(job)
    days = dict(Persona.objects.values_list("phone", "birthday"))
    assert days == {"+12025550101": dt.date(1990, 5, 7), "+12025550102": dt.date(1970, 1, 1)}


def test_a_lone_year_among_written_dates_is_not_an_excel_serial():
    job = _run(
        "Mobile,E-mail,Birthday\n2025550101,a@example.com,1990\n"
        "2025550102,b@example.com,04/05/1991\n2025550103,c@example.com,1992-01-02\n"
    )
    assert Persona.objects.get(phone="+12025550101").birthday is None
    assert any(r.startswith("Birthday:") for r in _issues(job).values())


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("1990-04-05", dt.date(1990, 4, 5)),
        ("19900405", dt.date(1990, 4, 5)),
        ("1990/04/05", dt.date(1990, 4, 5)),
        ("5 Apr 1990", dt.date(1990, 4, 5)),
        ("April 5, 1990", dt.date(1990, 4, 5)),
        ("5-Apr-90", dt.date(1990, 4, 5)),
        ("1990-04-05T00:00:00", dt.date(1990, 4, 5)),
        ("04/05/1990 12:00 AM", dt.date(1990, 4, 5)),
    ],
)
def test_dates_every_order_reads_the_same(cell, expected):
    for order in ("dmy", "mdy"):
        job = _run(f'Mobile,DOB\n2025550101,"{cell}"\n', formats={"1": {"dates": order}})
        if "/" in cell and not cell.startswith("1990"):
            continue  # 04/05/1990 depends on the order: covered above
        assert Persona.objects.get().birthday == expected, (cell, order, _issues(job))
        Persona.objects.all().delete()


# ---------------------------------------------------------------------------------------------
# Example 4: typed custom attributes


def test_example_4_attribute_columns_are_stored_typed():
    text = (
        "Mobile,Spend,Visits,VIP,Last visit,Zip\n"
        '2025550101,"1,250.00",7,yes,2026-10-01,02134\n'
        "2025550102,99.5,2,no,2026-09-15,10001\n"
    )
    job = _run(text)
    assert job.errors == 0 and job.warnings == 0, _issues(job)
    attrs = Persona.objects.get(phone="+12025550101").attributes
    assert attrs == {
        "spend": 1250,
        "visits": 7,
        "vip": True,
        "last_visit": "2026-10-01",
        "zip": "02134",  # a code with a leading zero stays text
    }
    assert Persona.objects.get(phone="+12025550102").attributes["spend"] == 99.5


def test_example_4_a_split_and_liquid_compare_imported_numbers_as_numbers():
    _run('Mobile,Spend,Visits\n2025550101,"1,250.00",7\n')
    persona = Persona.objects.get()
    split = _one(
        "split-based-on",
        {
            "input": "{{persona.attributes.spend}}",
            "conditions": [{"operator": "greater_than", "value": "1000"}],
        },
        ["noMatch", "match_1"],
    )
    run = run_flow(_flow(split), persona)
    assert FlowStepLog.objects.get(run=run).event == "match_1"
    liquid = _one(
        "persona-update",
        {
            "set": [
                {
                    "key": "tier",
                    "value": (
                        "{% if persona.attributes.visits > 5 %}regular{% else %}new{% endif %}"
                    ),
                }
            ]
        },
        ["next"],
    )
    run = run_flow(_flow(liquid), persona)
    log = FlowStepLog.objects.get(run=run)
    assert log.event == "next", log.error
    persona.refresh_from_db()
    assert persona.attributes["tier"] == "regular"


def test_an_attribute_type_is_chosen_in_the_mapping():
    job = _run("Mobile,Code\n2025550101,12\n", formats={"1": {"type": "text"}})
    assert job.errors == 0
    assert Persona.objects.get().attributes["code"] == "12"


def test_the_mapping_shows_detected_formats_and_values_before_after():
    job = _job("Mobile;DOB;Points;Spend\n2025550101;25/12/1990;1.000;1.250,50\n")
    form = MappingForm(job=job)
    cols = {c["header"]: c for c in form.columns}
    assert "Day first" in dict(cols["DOB"]["dates"].field.choices)[""]
    assert "1.234,56" in dict(cols["Points"]["numbers"].field.choices)[""]
    assert ("1.000", "1,000") in cols["Points"]["previews"]
    assert "Number" in dict(cols["Spend"]["type"].field.choices)[""]
    assert ("1.250,50", "1,250.5") in cols["Spend"]["previews"]


def test_parse_row_without_a_profile_keeps_attributes_as_text():
    row = parse_row(2, ["7"], [(0, "attr:visits", "Visits")])
    assert row.attrs == {"visits": "7"}


# ---------------------------------------------------------------------------------------------
# The property: a value written in a locale's habit is itself or a reported cell.

# (decimal sign, group separators, delimiter the locale's spreadsheets write)
LOCALES = {
    "en-US": (".", [",", ""], ","),
    "en-CH": (".", ["'", ""], ","),
    "de-DE": (",", [".", ""], ";"),
    "fr-FR": (",", [" ", "\u202f", ""], ";"),
    "pt-BR": (",", [".", ""], ";"),
}


def _write_number(value: Decimal, decimal: str, group: str) -> str:
    sign = "-" if value < 0 else ""
    text = f"{abs(value):f}"
    whole, _, frac = text.partition(".")
    grouped = f"{int(whole):,}".replace(",", group) if group else whole
    return sign + grouped + (decimal + frac if frac else "")


@st.composite
def written_numbers(draw):
    locale = draw(st.sampled_from(sorted(LOCALES)))
    decimal, groups, delimiter = LOCALES[locale]
    group = draw(st.sampled_from(groups))
    delimiter = draw(st.sampled_from([delimiter, ","]))  # some tools always write commas
    places = draw(st.integers(0, 3))
    values = draw(
        st.lists(
            st.decimals(-(10**11), 10**11, places=places, allow_nan=False, allow_infinity=False),
            min_size=1,
            max_size=8,
        )
    )
    currency = draw(st.sampled_from(["", "$", "€ ", " €", "USD "]))
    written = []
    for value in values:
        text = _write_number(value, decimal, group)
        written.append(currency + text if not currency.endswith("€") else text + currency)
    return ("point" if decimal == "." else "comma"), delimiter, values, written


@hsettings(max_examples=300, deadline=None)
@given(written_numbers(), st.booleans())
def test_property_numbers_are_read_as_written_or_refused(case, whole_target):
    style, delimiter, values, written = case
    if whole_target:
        values = [Decimal(int(v)) for v in values]  # the writing below drops the fraction
        written = [_rewrite_whole(w, style) for w in written]
    profile = ColumnProfile()
    for text in written:
        profile.add(text)
    kind = "int" if whole_target else "attr"
    resolved = resolve(kind, profile, {"type": "number"}, Hints(delimiter=delimiter))
    if resolved.ambiguous:  # the mapping asks; the user knows their file
        resolved = resolve(kind, profile, {"type": "number", "numbers": style}, Hints())
    for value, text in zip(values, written, strict=True):
        try:
            got = resolved.format.read(text)
        except ValidationError:
            continue  # reported, naming its column (see the tests above)
        assert Decimal(str(got)) == value, (text, got, resolved)


def _rewrite_whole(text: str, style: str) -> str:
    decimal = "." if style == "point" else ","
    head, sep, tail = text.rpartition(decimal)
    if not sep:
        return text
    suffix = "".join(c for c in tail if not c.isdigit())
    return head + suffix


@st.composite
def written_dates(draw):
    past = draw(st.booleans())
    two_digit = draw(st.booleans())
    if past:
        low = dt.date(TODAY.year - 99, 1, 1) if two_digit else dt.date(1900, 3, 1)
        high = TODAY
    else:
        low, high = dt.date(TODAY.year - 49, 1, 1), dt.date(TODAY.year + 48, 12, 31)
    values = draw(st.lists(st.dates(low, high), min_size=1, max_size=8))
    order = draw(st.sampled_from(["dmy", "mdy", "ymd", "serial"]))
    sep = draw(st.sampled_from(["/", "-", "."]))
    pad = draw(st.booleans())
    delimiter = draw(st.sampled_from([",", ";"]))
    written = []
    for day in values:
        y = f"{day.year % 100:02d}" if two_digit and order != "ymd" else str(day.year)
        d, m = (f"{day.day:02d}", f"{day.month:02d}") if pad else (str(day.day), str(day.month))
        if order == "serial":
            written.append(str((day - dt.date(1899, 12, 30)).days))
        elif order == "ymd":
            written.append(f"{day.year}{sep}{m}{sep}{d}")
        elif order == "dmy":
            written.append(f"{d}{sep}{m}{sep}{y}")
        else:
            written.append(f"{m}{sep}{d}{sep}{y}")
    return past, order, delimiter, values, written


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(written_dates())
def test_property_dates_are_read_as_written_or_refused(case):
    past, order, delimiter, values, written = case
    profile = ColumnProfile()
    for text in written:
        profile.add(text)
    resolved = resolve("date", profile, None, Hints(delimiter=delimiter), past=past)
    if resolved.ambiguous and order in ("dmy", "mdy"):
        resolved = resolve("date", profile, {"dates": order}, Hints(), past=past)
    for value, text in zip(values, written, strict=True):
        try:
            got = resolved.format.read(text, today=TODAY)
        except ValidationError:
            continue
        assert got == value, (text, got, resolved)


@pytest.mark.parametrize(
    ("text", "styles"),
    [
        ("1.000", {"point": Decimal("1"), "comma": Decimal("1000")}),
        ("1,250.00", {"point": Decimal("1250")}),
        ("1.250,00", {"comma": Decimal("1250")}),
        ("(12.50)", {"point": Decimal("-12.5")}),
        ("12-", {"point": Decimal("-12"), "comma": Decimal("-12")}),
        ("00123", {}),  # a code
        ("+12025550101", {}),  # a phone
        ("1234567890123456", {}),  # an identifier
        ("202-555-0101", {}),
        ("1.2.3", {}),
    ],
)
def test_number_styles_table(text, styles):
    assert number_styles(text) == styles


@pytest.mark.parametrize(
    ("text", "orders"),
    [
        ("25/12/1990", {"dmy"}),
        ("12/25/1990", {"mdy"}),
        ("05/04/1990", {"dmy", "mdy"}),
        ("31/31/1990", None),
        ("1990-12-25", "iso"),
        ("not a date", None),
    ],
)
def test_date_shapes_table(text, orders):
    shape = date_shape(text, serials=False)
    if orders is None:
        assert shape is None
    elif orders == "iso":
        assert shape.kind == "iso"
    else:
        assert set(shape.orders) == orders


def test_the_upload_profile_is_bounded_and_the_preview_profiles_the_whole_file(settings):
    settings.IMPORTS_PROFILE_ROWS = 5
    rows = "".join(f"2025550{i:03d},{i}\n" for i in range(100, 160))
    job = _job(f"Mobile,Visits\n{rows}")
    assert job.profile["1"]["values"] == 5
    job = _preview(f"Mobile,Visits\n{rows}")
    assert ImportJob.objects.get(pk=job.pk).profile["1"]["values"] == 60
    assert services.first_rows_profile(job)["1"]["values"] == 5


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(written_numbers(), written_dates())
def test_property_imported_values_are_the_written_ones_or_reported(numbers, dates):
    """Through upload, mapping and run: each value lands as written, or its row reports the
    cell naming its column. The simulated user answers the mapping's questions truly."""
    import csv
    import io
    import uuid

    style, delimiter, amounts, spend_cells = numbers
    past, order, _, days, day_cells = dates
    n = min(len(amounts), len(days))
    tag = uuid.uuid4().hex[:10]
    header = "DOB" if past else "Joined"
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["E-mail", "Spend", header])
    for i in range(n):
        writer.writerow([f"p{i}.{tag}@example.com", spend_cells[i], day_cells[i]])
    job = _job(buffer.getvalue())
    formats = {"1": {"type": "number"}, "2": {} if past else {"type": "date"}}
    job.formats = formats
    importer = pipeline.Importer(job, write=False)
    if importer.resolved[1].ambiguous:
        formats["1"]["numbers"] = style
    if importer.resolved[2].ambiguous and order in ("dmy", "mdy"):
        formats["2"]["dates"] = order
    importer.close()
    job.formats = formats
    job.save()
    job = pipeline.run(job.pk)
    issues = _issues(job)
    for i in range(n):
        line = i + 2
        persona = Persona.objects.filter(email=f"p{i}.{tag}@example.com").first()
        assert persona is not None, issues.get(line)
        attrs = persona.attributes or {}
        if "spend" in attrs:
            assert Decimal(str(attrs["spend"])) == amounts[i], (spend_cells[i], attrs)
        else:
            assert "Spend:" in issues.get(line, ""), (spend_cells[i], issues.get(line))
        got = persona.birthday if past else attrs.get("joined")
        if got is not None:
            expected = days[i] if past else days[i].isoformat()
            assert got == expected, (day_cells[i], got, issues.get(line))
        else:
            assert f"{header}:" in issues.get(line, ""), (day_cells[i], issues.get(line))


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.from_regex(r"\A[0-9]{1,17}\Z"), min_size=1, max_size=10))
def test_property_the_digits_fast_path_counts_as_the_general_one(cells):
    fast, general = ColumnProfile(), ColumnProfile()
    for cell in cells:
        fast._add_digits(cell)
        general._add_general(cell)
    assert fast.as_dict() == general.as_dict()


def test_the_persona_exports_attribute_columns_map_back_to_their_attributes():
    from imports.mapping import auto_mapping

    mapping = auto_mapping(["Mobile", "attr:shoe_size", "attr:vipStatus", "Shoe Size"])
    assert mapping == {
        "0": "phone",
        "1": "attr:shoe_size",
        "2": "attr:vipStatus",
        "3": "attr:shoe_size",
    }
