"""Reading uploaded CSV files: encoding and delimiter detection, streaming rows with line numbers.

Files are never read whole into memory: detection looks at the first 64 KiB, and rows are read
through ``csv.reader`` over a text stream, so memory stays flat in the file's size.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ENCODINGS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16",
    "cp1252": "Windows-1252 / Latin-1",
}
DELIMITERS = {",": "Comma", ";": "Semicolon", "\t": "Tab"}
SAMPLE_BYTES = 64 * 1024

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
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t").delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


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
            reader = csv.reader(fh, delimiter=delimiter)
            for row in reader:
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
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            next(reader)
        except StopIteration:
            return
        start = reader.line_num + 1
        try:
            for row in reader:
                line = start
                start = reader.line_num + 1
                if line <= start_after_line:
                    continue
                yield line, row
        except UnicodeDecodeError as exc:
            raise CSVFileError(
                f"Line {start}: the file is not valid {ENCODINGS.get(encoding, encoding)}. "
                "Choose another encoding."
            ) from exc
        except csv.Error as exc:
            raise CSVFileError(f"Line {start}: {exc}.") from exc


def count_rows(path: Path | str, *, encoding: str, delimiter: str) -> int:
    return sum(1 for _ in iter_rows(path, encoding=encoding, delimiter=delimiter))


def storable(cells: list[str]) -> list[str]:
    """Cells as kept for reports and previews: NUL (which databases refuse) shown as \\0."""
    return [c.replace("\x00", "\\0") if "\x00" in c else c for c in cells]


def escape_cell(value: str) -> str:
    """Neutralise spreadsheet formula injection: cells starting with = + - @ (or tab/CR)."""
    if value and value[0] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
