"""Spreadsheet uploads (issue 7) and hard limits on a file's shape with flat memory (issue 5)."""

from __future__ import annotations

import datetime as dt
import io
import tracemalloc
import zipfile
from xml.sax.saxutils import escape

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from imports import pipeline, services
from imports.csvfile import CSVFileError, cell_text, iter_rows, sniff
from imports.forms import MappingForm
from imports.models import ImportJob
from personas.models import Persona
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

# ---------------------------------------------------------------------------------------------
# A minimal .xlsx written by hand (no writer library needed): inline strings, numbers, and a
# date stored as an Excel serial number with a date number format (numFmtId 14).

_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/styles.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>
</Types>"""
_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
 Target="xl/workbook.xml"/>
</Relationships>"""
_WORKBOOK = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"
 xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="Customers" sheetId="1" r:id="rId1"/></sheets>
</workbook>"""
_WORKBOOK_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
 Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles"
 Target="styles.xml"/>
</Relationships>"""
_STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="1"><fill><patternFill patternType="none"/></fill></fills>
<borders count="1"><border/></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="2">
<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>
<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
</cellXfs>
</styleSheet>"""

DATE_STYLE = object()


def _excel_serial(day: dt.date) -> int:
    return (day - dt.date(1899, 12, 30)).days


def _cell(ref: str, value) -> str:
    if isinstance(value, tuple) and value[0] is DATE_STYLE:
        return f'<c r="{ref}" s="1"><v>{_excel_serial(value[1])}</v></c>'
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        return f'<c r="{ref}"><v>{value}</v></c>'
    if value is None:
        return ""
    return f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>'


def _sheet_xml(rows: list[list]) -> str:
    sheet_rows = []
    for r, row in enumerate(rows, start=1):
        cells = "".join(_cell(f"{chr(ord('A') + c)}{r}", v) for c, v in enumerate(row))
        sheet_rows.append(f'<row r="{r}">{cells}</row>')
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{''.join(sheet_rows)}</sheetData></worksheet>"
    )


def make_xlsx(rows: list[list], *, more: dict[str, list[list]] | None = None) -> bytes:
    """An .xlsx whose first sheet ("Customers") holds ``rows``; ``more``: further sheets."""
    sheets = {"Customers": rows, **(more or {})}
    names = list(sheets)
    content_types, workbook, rels = _CONTENT_TYPES, _WORKBOOK, _WORKBOOK_RELS
    for n, name in enumerate(names[1:], start=2):
        content_types = content_types.replace(
            "</Types>",
            f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        )
        workbook = workbook.replace(
            "</sheets>", f'<sheet name="{escape(name)}" sheetId="{n}" r:id="rId{n + 1}"/></sheets>'
        )
        rels = rels.replace(
            "</Relationships>",
            f'<Relationship Id="rId{n + 1}" Type="http://schemas.openxmlformats.org/'
            f'officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>'
            "</Relationships>",
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", content_types)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("xl/workbook.xml", workbook)
        archive.writestr("xl/_rels/workbook.xml.rels", rels)
        archive.writestr("xl/styles.xml", _STYLES)
        for n, name in enumerate(names, start=1):
            archive.writestr(f"xl/worksheets/sheet{n}.xml", _sheet_xml(sheets[name]))
    return buffer.getvalue()


def _previewed(job: ImportJob) -> ImportJob:
    job.status = ImportJob.Status.PREVIEWED
    job.save()
    return job


def test_example_7_an_xlsx_file_imports_like_the_csv(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    data = make_xlsx(
        [
            ["First Name", "Mobile", "E-mail", "DOB", "Points", "Loyalty"],
            ["Zoë", "(202) 555-0101", "zoe@example.com", (DATE_STYLE, dt.date(1990, 4, 2)), 42],
            ["Bo", 2025550102, "bo@example.com", (DATE_STYLE, dt.date(1985, 12, 31)), 7.0],
        ]
    )
    job = services.upload(io.BytesIO(data), name="Team export.xlsx", user=None)
    assert job.original_name == "Team export.xlsx"
    assert job.headers == ["First Name", "Mobile", "E-mail", "DOB", "Points", "Loyalty"]
    assert (job.encoding, job.delimiter) == ("utf-8", ",")
    # Typed cells as a CSV export would hold them: whole numbers without ".0", ISO dates.
    assert job.sample[0][:5] == ["Zoë", "(202) 555-0101", "zoe@example.com", "1990-04-02", "42"]
    assert job.sample[1][:5] == ["Bo", "2025550102", "bo@example.com", "1985-12-31", "7"]
    assert job.mapping["0"] == "first_name" and job.mapping["3"] == "birthday"

    job = pipeline.run(_previewed(job).pk)
    assert job.status == ImportJob.Status.COMPLETED, job.message
    zoe = Persona.objects.get(phone="+12025550101")
    assert (zoe.first_name, zoe.email, zoe.birthday) == (
        "Zoë",
        "zoe@example.com",
        dt.date(1990, 4, 2),
    )
    bo = Persona.objects.get(phone="+12025550102")
    assert (bo.email, bo.birthday) == ("bo@example.com", dt.date(1985, 12, 31))


def test_an_xlsx_upload_through_the_page_goes_to_the_mapping(client, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    client.force_login(make_user("Marketing"))
    data = make_xlsx([["First Name", "Mobile"], ["Ana", "202-555-0103"]])
    page = client.post(reverse("imports:new"), {"file": SimpleUploadedFile("t.xlsx", data)})
    assert page.status_code == 302, page.content.decode()[:2000]
    job = ImportJob.objects.get()
    assert job.original_name == "t.xlsx" and job.headers == ["First Name", "Mobile"]


def test_a_spreadsheet_wider_than_the_limit_is_refused(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.IMPORTS_MAX_COLUMNS = 5
    data = make_xlsx([[f"c{i}" for i in range(8)], list(range(8))])
    with pytest.raises(ValidationError, match="The file has 8 columns; at most 5 are read."):
        services.upload(io.BytesIO(data), name="wide.xlsx", user=None)
    assert not ImportJob.objects.exists()


def test_a_file_that_is_not_a_spreadsheet_is_refused(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    with pytest.raises(ValidationError, match="cannot be read as a spreadsheet"):
        services.upload(io.BytesIO(b"a,b\n1,2\n"), name="x.xlsx", user=None)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (123, "123"),
        (123.0, "123"),
        (2025550101.0, "2025550101"),
        (0.1, "0.1"),
        (dt.date(1990, 4, 2), "1990-04-02"),
        (dt.datetime(1990, 4, 2), "1990-04-02"),
        (dt.datetime(2024, 5, 6, 7, 8, 9), "2024-05-06T07:08:09"),
        ("Zoë", "Zoë"),
    ],
)
def test_spreadsheet_cells_become_the_text_a_csv_would_hold(value, text):
    assert cell_text(value) == text


# ---------------------------------------------------------------------------------------------
# Limits: a file wider or with longer lines than the limits is refused, with flat memory.

PEAK_LIMIT = 20 * 1024 * 1024


def _peak(fn) -> tuple[int, Exception | None]:
    tracemalloc.start()
    error = None
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - returned for the test to check
        error = exc
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, error


def test_example_5_a_file_wider_than_the_limit_is_refused_with_flat_memory(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    assert settings.IMPORTS_MAX_COLUMNS == 500
    assert settings.IMPORTS_MAX_LINE_BYTES == 1024 * 1024
    # 1 MB header line of 500,000 columns: within the line limit, far past the column limit.
    wide = ",".join(["a"] * 500_000) + "\n" + ",".join(["1"] * 500_000) + "\n"
    data = wide.encode()
    peak, error = _peak(lambda: services.upload(io.BytesIO(data), name="wide.csv", user=None))
    assert isinstance(error, ValidationError)
    assert error.messages == ["The file has 500,000 columns; at most 500 are read."]
    assert peak < PEAK_LIMIT, peak
    assert not ImportJob.objects.exists()

    # A quoted header cannot be counted by its commas: it is parsed (within the line limit).
    quoted = ('"a",' * 1000).rstrip(",") + "\n"
    with pytest.raises(ValidationError, match="The file has 1,000 columns; at most 500 are read."):
        services.upload(io.BytesIO(quoted.encode()), name="q.csv", user=None)

    # A 2 MB single line of "a,a,a,...": refused at the line limit before it is split.
    huge = (",".join(["a"] * 1_000_000) + "\n").encode()
    peak, error = _peak(lambda: services.upload(io.BytesIO(huge), name="huge.csv", user=None))
    assert isinstance(error, ValidationError)
    assert error.messages[0].startswith("Line 1 is longer than 1 MB:")
    assert peak < PEAK_LIMIT, peak

    # 500 columns are fine; a data row wider than the limit stops the import at its line.
    header = ",".join(f"c{i}" for i in range(500)) + "\n"
    ok = header + (",".join(["x"] * 500) + "\n") * 6 + ",".join(["y"] * 501) + "\n"
    path = tmp_path / "rows.csv"
    path.write_text(ok)
    assert len(sniff(path).headers) == 500  # the header and the first rows are fine
    rows = iter_rows(path, encoding="utf-8", delimiter=",")
    assert [next(rows)[0] for _ in range(6)] == [2, 3, 4, 5, 6, 7]
    with pytest.raises(CSVFileError, match="Line 8 has 501 columns; at most 500 are read."):
        next(rows)
    # Within the rows the upload looks at, the same row is refused at upload.
    path.write_text(header + ",".join(["y"] * 501) + "\n")
    with open(path, "rb") as fh, pytest.raises(ValidationError, match="Line 2 has 501 columns"):
        services.upload(fh, name="rows.csv", user=None)


def test_example_5_a_line_longer_than_the_limit_is_refused_with_flat_memory(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    # A 50 MB line at line 5, after a good header and three good rows: the upload reads the
    # header and the first rows, so it is refused there, after reading at most 1 MB of it.
    good = "First Name,Mobile,Note\n" + "Ana,202-555-0104,hello\n" * 3
    path = tmp_path / "long.csv"
    with open(path, "w") as fh:
        fh.write(good)
        fh.write("Bo,202-555-0105,")
        chunk = "x" * (1024 * 1024)
        for _ in range(50):
            fh.write(chunk)
        fh.write("\nCy,202-555-0106,bye\n")

    with open(path, "rb") as fh:
        peak, error = _peak(lambda: services.upload(fh, name="long.csv", user=None))
    assert isinstance(error, ValidationError)
    assert error.messages == [
        "Line 5 is longer than 1 MB: check that the file is a CSV file with one record per "
        "line (at most 500 columns are read)."
    ]
    assert peak < PEAK_LIMIT, peak

    # Past the sniffed rows, the dry run and the run stop at the line with the same message.
    settings.IMPORTS_MAX_LINE_BYTES = 64 * 1024
    text = good + "Bo,202-555-0105," + "x" * 200_000 + "\n" + "Cy,202-555-0106,bye\n"
    text = good * 3 + text  # the long line is now at line 17
    path.write_text(text)
    seen = []

    def read_all():
        for line, _row in iter_rows(path, encoding="utf-8", delimiter=","):
            seen.append(line)

    peak, error = _peak(read_all)
    assert isinstance(error, CSVFileError)
    assert str(error).startswith("Line 17 is longer than 64 KB:")
    assert seen[-1] == 16
    assert peak < PEAK_LIMIT, peak


def test_an_unclosed_quote_is_refused_at_the_record_limit(settings, tmp_path):
    settings.IMPORTS_MAX_LINE_BYTES = 1024
    path = tmp_path / "quote.csv"
    path.write_text('a,b\n1,"never closed\n' + "more text\n" * 500)
    with pytest.raises(CSVFileError, match=r"Line \d+: the record is longer than 1 KB"):
        list(iter_rows(path, encoding="utf-8", delimiter=","))


def test_a_workbook_with_several_sheets_offers_the_choice(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    data = make_xlsx(
        [["Read me"], ["Export of 2026-11-02"]],
        more={"Customers 2026": [["Mobile", "Points"], ["202-555-0191", 40]]},
    )
    job = services.upload(io.BytesIO(data), name="Export.xlsx", user=None)
    assert job.sheets == ["Customers", "Customers 2026"] and job.sheet == "Customers"
    assert job.headers == ["Read me"] and job.workbook
    form = MappingForm(job=job)
    assert [c for c, _ in form.fields["sheet"].choices] == job.sheets
    choices = {
        "mapping": {"0": "attr:read_me"},
        "match_keys": ["phone", "email", "customer_id"],
        "existing": "fill_empty",
        "double_opt_in": "later",
        "double_opt_in_at": None,
        "encoding": "",
        "delimiter": "",
    }
    with pytest.raises(ValidationError, match="other columns: check the mapping again"):
        services.configure(job, **choices, sheet="Customers 2026")
    job.refresh_from_db()
    assert job.sheet == "Customers 2026" and job.headers == ["Mobile", "Points"]
    assert job.mapping == {"0": "phone", "1": "points"}
    job = services.configure(job, **{**choices, "mapping": job.mapping}, sheet=job.sheet)
    job = pipeline.run(_previewed(job).pk)
    assert job.created == 1 and Persona.objects.get().points_balance == 40
    job.refresh_from_db()
    assert not job.workbook and not job.file  # the workbook goes with the file


def test_a_workbook_with_one_sheet_keeps_no_copy(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    job = services.upload(
        io.BytesIO(make_xlsx([["Mobile"], ["202-555-0192"]])), name="One.xlsx", user=None
    )
    assert job.sheets == ["Customers"] and not job.workbook
    assert "sheet" not in MappingForm(job=job).fields
