"""Reading uploaded CSV files: encoding and delimiter detection, streaming rows with line numbers.

Files are never read whole into memory: detection looks at the first 64 KiB, and rows are read
through ``csv.reader`` over a text stream, so memory stays flat in the file's size. Lines are
read with a bounded ``readline``: a line longer than ``IMPORTS_MAX_LINE_BYTES`` or a row wider
than ``IMPORTS_MAX_COLUMNS`` is refused before it is held whole or split into cells.

Spreadsheets (.xlsx, .xls, .ods) are converted once, at upload, to a UTF-8 CSV file with
python-calamine (first sheet, typed cells written as the text a CSV export would hold), so the
rest of the import reads them like any CSV.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import python_calamine
from django.conf import settings

ENCODINGS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16",
    "cp1252": "Windows-1252 / Latin-1",
}
DELIMITERS = {",": "Comma", ";": "Semicolon", "\t": "Tab"}
SAMPLE_BYTES = 64 * 1024
SPREADSHEET_EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
DEFAULT_MAX_COLUMNS = 500
DEFAULT_MAX_LINE_BYTES = 1024 * 1024

csv.field_size_limit(1024 * 1024)


class CSVFileError(Exception):
    """The file cannot be read as CSV; the message says why in plain words."""


@dataclass
class Sniffed:
    encoding: str
    delimiter: str
    headers: list[str]
    sample: list[list[str]]


def detect_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(head) >= 4 and head[1:4:2] == b"\x00\x00" and head[0] != 0:
        return "utf-16"  # UTF-16 LE without BOM: every other byte is NUL in ASCII text
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sample's end is still UTF-8.
        if exc.start < len(head) - 4:
            return "cp1252"
    return "utf-8"


def detect_delimiter(text: str) -> str:
    """The delimiter that splits the header and the rows below it into the same number of
    cells (the most cells, among those that do); ``csv.Sniffer``'s guess when none does.

    The header decides between equals: ``1,5`` in a ``;`` file is a decimal comma, and the
    header of such a file holds no comma."""
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if not lines:
        return ","
    if len(lines) > 1:
        lines = lines[:-1] if not text.endswith(("\n", "\r")) else lines  # a cut last line
    best, best_width = "", 1
    for delimiter in DELIMITERS:
        try:
            widths = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
        except csv.Error:
            continue
        width = widths[0]
        rows = widths[1:] or [width]
        if width > best_width and sum(w == width for w in rows) >= 0.9 * len(rows):
            best, best_width = delimiter, width
    if best:
        return best
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t").delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def limits() -> tuple[int, int]:
    """(most columns, longest line in bytes) an import reads: ``IMPORTS_MAX_COLUMNS`` and
    ``IMPORTS_MAX_LINE_BYTES``."""
    return (
        int(getattr(settings, "IMPORTS_MAX_COLUMNS", DEFAULT_MAX_COLUMNS)),
        int(getattr(settings, "IMPORTS_MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES)),
    )


def _size(n: int) -> str:
    mib = 1024 * 1024
    if n >= mib and n % mib == 0:
        return f"{n // mib} MB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KB"
    return f"{n:,} bytes"


def too_many_columns(count: int, line: int, max_columns: int) -> CSVFileError:
    if line <= 1:
        return CSVFileError(f"The file has {count:,} columns; at most {max_columns:,} are read.")
    return CSVFileError(f"Line {line} has {count:,} columns; at most {max_columns:,} are read.")


class _BoundedLines:
    """The lines of a text stream for ``csv.reader``, each read with a bounded ``readline``, so
    a huge line is refused after reading at most the limit, never held whole. A line whose
    delimiters alone show it is too wide is refused before the csv module splits it."""

    def __init__(self, fh: IO[str], *, delimiter: str, max_columns: int, max_chars: int):
        self.fh = fh
        self.delimiter = delimiter
        self.max_columns = max_columns
        self.max_chars = max_chars
        self.line = 0
        self.record_chars = 0  # characters of the record being read (reset by the caller)

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        text = self.fh.readline(self.max_chars + 2)
        if not text:
            raise StopIteration
        self.line += 1
        length = len(text.rstrip("\r\n"))
        self.record_chars += length
        if length > self.max_chars:
            raise CSVFileError(
                f"Line {self.line} is longer than {_size(self.max_chars)}: check that the file "
                "is a CSV file with one record per line (at most "
                f"{self.max_columns:,} columns are read)."
            )
        if self.record_chars > self.max_chars:
            raise CSVFileError(
                f"Line {self.line}: the record is longer than {_size(self.max_chars)}; check "
                "for a quote that is never closed."
            )
        count = text.count(self.delimiter) + 1
        if count > self.max_columns and '"' not in text:
            raise too_many_columns(count, self.line, self.max_columns)
        return text


def _records(
    fh: IO[str], delimiter: str, state: dict[str, int] | None = None
) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, cells) for every record, header included, within
    the column and line limits. ``state["next"]`` is where the next record starts (for error
    messages)."""
    max_columns, max_chars = limits()
    lines = _BoundedLines(fh, delimiter=delimiter, max_columns=max_columns, max_chars=max_chars)
    reader = csv.reader(lines, delimiter=delimiter)
    state = {} if state is None else state
    state["next"] = 1
    for row in reader:
        line = state["next"]
        state["next"] = reader.line_num + 1
        lines.record_chars = 0
        if len(row) > max_columns:
            raise too_many_columns(len(row), line, max_columns)
        yield line, row


def open_text(path: Path | str, encoding: str) -> io.TextIOWrapper:
    raw = open(path, "rb")  # noqa: SIM115 - closed with the wrapper
    return io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")


def sniff(path: Path | str, *, encoding: str = "", delimiter: str = "") -> Sniffed:
    with open(path, "rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    if not head.strip():
        raise CSVFileError("The file is empty.")
    encoding = encoding or detect_encoding(head)
    try:
        text = head.decode(encoding, errors="ignore")
    except LookupError as exc:
        raise CSVFileError("Unknown encoding.") from exc
    delimiter = delimiter or detect_delimiter(text.lstrip("\ufeff"))
    rows = []
    try:
        with open_text(path, encoding) as fh:
            for _line, row in _records(fh, delimiter):
                rows.append(row)
                if len(rows) >= 6:
                    break
    except UnicodeDecodeError as exc:
        raise CSVFileError(
            f"The file is not valid {ENCODINGS.get(encoding, encoding)}. "
            "Choose another encoding (Windows-1252 for most spreadsheet exports)."
        ) from exc
    except csv.Error as exc:
        raise CSVFileError(f"The file is not valid CSV: {exc}.") from exc
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise CSVFileError("The first line must hold the column headers.")
    headers = storable([h.strip().lstrip("\ufeff") for h in rows[0]])
    return Sniffed(encoding, delimiter, headers, [storable(r) for r in rows[1:]])


def iter_rows(
    path: Path | str, *, encoding: str, delimiter: str, start_after_line: int = 0
) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, cells) for every data row after the header.

    ``start_after_line`` skips records that start at or before that line (resume after a
    checkpoint). Line numbers count physical lines, so a quoted field with embedded newlines
    makes the next record start further down, as a spreadsheet shows it.
    """
    with open_text(path, encoding) as fh:
        state: dict[str, int] = {"next": 1}
        first = True
        try:
            for line, row in _records(fh, delimiter, state):
                if first or line <= start_after_line:
                    first = False
                    continue  # the header, or before the checkpoint
                yield line, row
        except UnicodeDecodeError as exc:
            raise CSVFileError(
                f"Line {state['next']}: the file is not valid "
                f"{ENCODINGS.get(encoding, encoding)}. "
                "Choose another encoding."
            ) from exc
        except csv.Error as exc:
            raise CSVFileError(f"Line {state['next']}: {exc}.") from exc


def count_rows(path: Path | str, *, encoding: str, delimiter: str) -> int:
    return sum(1 for _ in iter_rows(path, encoding=encoding, delimiter=delimiter))


def storable(cells: list[str]) -> list[str]:
    """Cells as kept for reports and previews: NUL (which databases refuse) shown as \\0."""
    return [c.replace("\x00", "\\0") if "\x00" in c else c for c in cells]


# ---------------------------------------------------------------------------------------------
# Spreadsheets: converted once, at upload, to the CSV text an export would hold.


def is_spreadsheet(name: str) -> bool:
    return name.lower().endswith(SPREADSHEET_EXTENSIONS)


def cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a CSV export would hold: 123 (not 123.0), ISO dates."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return str(value)


def spreadsheet_to_csv(source: Any, out: IO[str], *, sheet: str = "") -> list[str]:
    """Write one sheet of a workbook (a path or a seekable binary file; ``sheet`` by name,
    the first by default) to ``out`` as CSV, one row at a time, and return the workbook's
    sheet names. Refuses a sheet wider than ``IMPORTS_MAX_COLUMNS``."""
    max_columns, _max_line = limits()
    try:
        with python_calamine.CalamineWorkbook.from_object(source) as workbook:
            if not workbook.sheet_names:
                raise CSVFileError("The spreadsheet has no sheets.")
            names = list(workbook.sheet_names)
            if sheet and sheet not in names:
                raise CSVFileError(f"The spreadsheet has no sheet called “{sheet[:60]}”.")
            data = workbook.get_sheet_by_name(sheet) if sheet else workbook.get_sheet_by_index(0)
            if data.width > max_columns:
                raise too_many_columns(data.width, 1, max_columns)
            writer = csv.writer(out, lineterminator="\n")
            wrote = False
            for row in data.iter_rows():
                writer.writerow([cell_text(value) for value in row])
                wrote = True
    except python_calamine.PasswordError as exc:
        raise CSVFileError("The spreadsheet is protected by a password.") from exc
    except python_calamine.CalamineError as exc:
        raise CSVFileError(
            "The file cannot be read as a spreadsheet: save it again as .xlsx, or as .csv."
        ) from exc
    if not wrote:
        raise CSVFileError(f"The sheet “{sheet[:60]}” is empty." if sheet else "The file is empty.")
    return names
