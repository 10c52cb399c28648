"""What the import pages and the command call: upload, mapping, dry run, run, cancel, resume."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from personas.normalize import normalize_email, normalize_phone
from personas.spreadsheet import escape_cell

from .csvfile import (
    CSVFileError,
    is_spreadsheet,
    iter_rows,
    sniff,
    spreadsheet_to_csv,
)
from .formats import ATTRIBUTE_TYPES, DATE_ORDERS, NUMBER_STYLES
from .mapping import MATCH_KEYS, auto_mapping, mail_address, profile_rows, validate_mapping
from .models import ImportIssue, ImportJob, SavedMapping
from .selectors import stale_jobs
from .tasks import preview_import, run_import, send_double_opt_in
from .uploads import drop_file, limit_message


def upload(
    fileobj: Any, *, name: str, user: Any, encoding: str = "", delimiter: str = ""
) -> ImportJob:
    """Store the uploaded file (streamed in chunks) and detect its format and headers.

    A spreadsheet (.xlsx, .xls, .ods) is stored as the CSV text of its first sheet."""
    size = getattr(fileobj, "size", None)
    if size is not None and size > settings.IMPORTS_MAX_BYTES:
        raise ValidationError(limit_message())
    spreadsheet = is_spreadsheet(name)
    if not spreadsheet and not name.lower().endswith((".csv", ".txt", ".tsv")):
        raise ValidationError(
            "Upload a .csv file (comma, semicolon or tab separated) or an Excel or "
            "OpenDocument spreadsheet (.xlsx, .xls, .ods)."
        )
    job = ImportJob(created_by=user, original_name=name[:255], size=size or 0)
    if spreadsheet:
        # Kept while the mapping is open when it has several sheets (another may be chosen);
        # the chosen sheet is converted once to UTF-8 CSV, which the rest reads.
        encoding, delimiter = "utf-8", ","
        extension = name[name.rfind(".") :].lower()
        job.workbook.save(f"{uuid.uuid4().hex}{extension}", File(fileobj), save=False)
        try:
            convert_sheet(job, "")
        except ValidationError:
            job.workbook.delete(save=False)
            raise
        if len(job.sheets) < 2:
            job.workbook.delete(save=False)
    else:
        job.file.save(f"{uuid.uuid4().hex}.csv", File(fileobj), save=False)
    try:
        sniffed = sniff(job.file.path, encoding=encoding, delimiter=delimiter)
    except CSVFileError as exc:
        job.file.delete(save=False)
        raise ValidationError(str(exc)) from exc
    job.size = job.file.size
    job.encoding = sniffed.encoding
    job.delimiter = sniffed.delimiter
    job.headers = sniffed.headers
    job.sample = [row[: len(sniffed.headers) + 2] for row in sniffed.sample[:5]]
    job.mapping = auto_mapping(sniffed.headers)
    job.match_keys = list(MATCH_KEYS)
    job.profile = first_rows_profile(job)
    job.save()
    return job


def convert_sheet(job: ImportJob, sheet: str) -> None:
    """Write ``sheet`` of the job's workbook (the first when empty) to the job's CSV file,
    row by row, replacing what it held; sets ``sheets`` and ``sheet``."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as converted:
        try:
            names = spreadsheet_to_csv(job.workbook.path, converted, sheet=sheet)
        except CSVFileError as exc:
            raise ValidationError(str(exc)) from exc
        converted.flush()
        converted.seek(0)
        if job.file:
            job.file.delete(save=False)
        job.file.save(f"{uuid.uuid4().hex}.csv", File(converted.buffer), save=False)
    job.sheets = names
    job.sheet = sheet or names[0]


PROFILE_CELLS = 250_000  # what the upload reads at most to profile the columns (~1 s)


def first_rows_profile(job: ImportJob) -> dict[str, dict[str, Any]]:
    """Each column's format as its first ``IMPORTS_PROFILE_ROWS`` rows show it (for the
    mapping page; the dry run profiles the whole file). Empty when those rows cannot be read:
    the dry run then says why, line by line."""
    try:
        return profile_rows(
            iter_rows(job.file.path, encoding=job.encoding, delimiter=job.delimiter),
            columns=list(range(len(job.headers))),
            # a wide file reads fewer rows: about the same number of cells as a narrow one
            limit=min(settings.IMPORTS_PROFILE_ROWS, max(200, PROFILE_CELLS // len(job.headers))),
        )
    except CSVFileError:
        return {}


def clean_formats(formats: dict[str, dict[str, str]], headers: list[str]) -> dict:
    """The mapping's answers on reading columns, keeping known choices only."""
    allowed = {"type": ATTRIBUTE_TYPES, "numbers": NUMBER_STYLES, "dates": DATE_ORDERS}
    out: dict[str, dict[str, str]] = {}
    for index, choice in (formats or {}).items():
        if not str(index).isdigit() or int(index) >= len(headers):
            continue
        kept = {k: v for k, v in (choice or {}).items() if k in allowed and v in allowed[k]}
        if kept:
            out[str(index)] = kept
    return out


def apply_saved_mapping(job: ImportJob, saved: SavedMapping) -> dict[str, str]:
    mapping = dict(job.mapping)
    for index, header in enumerate(job.headers):
        if header in saved.columns:
            mapping[str(index)] = saved.columns[header]
    return mapping


def use_saved_mapping(*, job: ImportJob, saved: SavedMapping) -> ImportJob:
    """Give the job a saved mapping: its columns (by header, over the job's own choices), its
    match keys when it has any, and what it does with existing personas."""
    job.mapping = apply_saved_mapping(job, saved)
    job.match_keys = saved.match_keys or job.match_keys
    job.existing = saved.existing
    job.save(update_fields=["mapping", "match_keys", "existing"])
    return job


def configure(
    job: ImportJob,
    *,
    mapping: dict[str, str],
    match_keys: list[str],
    existing: str,
    double_opt_in: str,
    double_opt_in_at: dt.datetime | None,
    encoding: str,
    delimiter: str,
    save_as: str = "",
    user: Any = None,
    formats: dict[str, dict[str, str]] | None = None,
    sheet: str = "",
) -> ImportJob:
    """Validate and store the mapping and choices, then start the dry run in the background.

    ``formats``: how to read columns, ``{"3": {"type": "number", "numbers": "comma",
    "dates": "dmy"}}`` (each answer optional: as detected)."""
    if job.status not in (ImportJob.Status.UPLOADED, ImportJob.Status.PREVIEWED):
        raise ValidationError("This import has already started; its mapping cannot change.")
    problems = validate_mapping(mapping, job.headers)
    if double_opt_in == ImportJob.DoubleOptIn.SCHEDULED:
        if not double_opt_in_at:
            problems.append("Choose when to send the double opt-in texts.")
        elif double_opt_in_at < timezone.now():
            problems.append("The time to send the double opt-in texts is in the past.")
    if sheet and sheet != job.sheet and job.workbook:
        convert_sheet(job, sheet)
        sniffed = sniff(job.file.path, encoding="utf-8", delimiter=",")
        changed = sniffed.headers != job.headers
        job.headers, job.sample = sniffed.headers, sniffed.sample[:5]
        job.size = job.file.size
        job.profile = first_rows_profile(job)
        if changed:
            job.mapping, job.formats = auto_mapping(sniffed.headers), {}
        job.save()
        if changed:
            raise ValidationError(
                f"The sheet “{sheet[:60]}” has other columns: check the mapping again."
            )
    if problems:
        raise ValidationError(problems)
    if (encoding and encoding != job.encoding) or (delimiter and delimiter != job.delimiter):
        try:
            sniffed = sniff(job.file.path, encoding=encoding, delimiter=delimiter)
        except CSVFileError as exc:
            raise ValidationError(str(exc)) from exc
        if len(sniffed.headers) != len(job.headers):
            job.headers = sniffed.headers
            job.sample = sniffed.sample[:5]
            job.encoding, job.delimiter = sniffed.encoding, sniffed.delimiter
            job.mapping = auto_mapping(sniffed.headers)
            job.formats = {}
            job.profile = first_rows_profile(job)
            job.save()
            raise ValidationError(
                "With that encoding or delimiter the file has different columns: check the "
                "mapping again."
            )
        job.encoding, job.delimiter = sniffed.encoding, sniffed.delimiter
        job.profile = first_rows_profile(job)
    job.mapping = mapping
    job.formats = clean_formats(formats or {}, job.headers)
    job.match_keys = match_keys
    job.existing = existing
    job.double_opt_in = double_opt_in
    job.double_opt_in_at = double_opt_in_at
    job.status = ImportJob.Status.PREVIEWING
    job.rows_done = 0
    job.message = ""
    with transaction.atomic():
        job.save()
        if save_as:
            columns = {
                job.headers[int(i)]: t for i, t in mapping.items() if int(i) < len(job.headers)
            }
            SavedMapping.objects.update_or_create(
                name=save_as[:120],
                defaults={
                    "columns": columns,
                    "match_keys": match_keys,
                    "existing": existing,
                    "created_by": user,
                },
            )
        transaction.on_commit(lambda: preview_import.enqueue(job.pk))
    return job


def start(job: ImportJob) -> ImportJob:
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job.pk)
        if job.status != ImportJob.Status.PREVIEWED:
            raise ValidationError("Only a checked import can be run.")
        job.status = ImportJob.Status.QUEUED
        job.rows_done = 0
        job.save(update_fields=["status", "rows_done"])
        transaction.on_commit(lambda: run_import.enqueue(job.pk))
    return job


def cancel(job: ImportJob) -> ImportJob:
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job.pk)
        if job.status in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING):
            job.cancel_requested = True
            job.save(update_fields=["cancel_requested"])
        elif job.status in (ImportJob.Status.FAILED, ImportJob.Status.PREVIEWED):
            job.status = ImportJob.Status.CANCELLED
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "finished_at"])
            drop_file(job)
        else:
            raise ValidationError("This import cannot be cancelled now.")
    return job


def resume(job: ImportJob) -> ImportJob:
    """Re-queue a failed (or stalled) import; it continues after its last committed line."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job.pk)
        stalled = job.status == ImportJob.Status.RUNNING and job.pk in stale_jobs()
        if job.status != ImportJob.Status.FAILED and not stalled:
            raise ValidationError("Only a failed or stalled import can be resumed.")
        job.status = ImportJob.Status.QUEUED
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["status", "heartbeat_at"])
        transaction.on_commit(lambda: run_import.enqueue(job.pk))
    return job


def resume_stale() -> list[int]:
    """Find imports whose worker was killed (no heartbeat) and queue them again."""
    resumed = []
    for job_id in stale_jobs():
        with transaction.atomic():
            job = ImportJob.objects.select_for_update(skip_locked=True).filter(pk=job_id).first()
            if job is None or job.pk not in stale_jobs():
                continue
            job.heartbeat_at = timezone.now()
            job.message = "Resumed after the worker stopped."
            job.save(update_fields=["heartbeat_at", "message"])
            transaction.on_commit(lambda pk=job.pk: run_import.enqueue(pk))
            resumed.append(job.pk)
    return resumed


def send_double_opt_in_texts(job: ImportJob, *, at: dt.datetime | None = None) -> None:
    if job.status != ImportJob.Status.COMPLETED:
        raise ValidationError("Send double opt-in texts once the import has completed.")
    if at is not None and at < timezone.now():
        raise ValidationError("That time is in the past.")
    if at is None:
        transaction.on_commit(lambda: send_double_opt_in.enqueue(job.pk))
    else:
        ImportJob.objects.filter(pk=job.pk).update(double_opt_in_at=at)
        transaction.on_commit(lambda: send_double_opt_in.using(run_after=at).enqueue(job.pk))


def finish(job: ImportJob) -> None:
    drop_file(job)


def error_report(job: ImportJob) -> Iterator[str]:
    """The rows the import did not take, as CSV, with formula injection neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return value

    writer.writerow(["line", "outcome", "reason", *[escape_cell(h) for h in job.headers]])
    yield "\ufeff" + flush()
    for issue in job.issues.order_by("line").iterator(chunk_size=2000):
        writer.writerow(
            [
                issue.line,
                issue.outcome,
                escape_cell(issue.reason),
                *[escape_cell(str(c)) for c in issue.raw],
            ]
        )
        yield flush()


# ---------------------------------------------------------------------------------------------
# Erasure: the import's stored rows must not keep an erased customer's values.


def _normalised_forms(cell: str) -> set[str]:
    """The phone and email a cell stands for once normalised (``(202) 555-0301`` →
    ``+12025550301``; ``Cal <CAL@x.com>`` → ``cal@x.com``); nothing when it is neither."""
    forms: set[str] = set()
    for normalise in (normalize_phone, lambda v: normalize_email(mail_address(v))):
        try:
            value = normalise(cell)
        except (ValidationError, ValueError, TypeError):
            continue
        if value:
            forms.add(value)
    return forms


def _scrub_cells(cells: list, values: list[str], identifiers: set[str] | None = None) -> list:
    """``cells`` with every cell holding one of ``values`` (case-insensitive), or whose
    normalised phone or email is one of ``identifiers``, replaced by ``[erased]``."""
    lowered = [v.lower() for v in values]
    out = []
    for c in cells:
        if isinstance(c, str) and (
            any(v in c.lower() for v in lowered)
            or (identifiers and c.strip() and _normalised_forms(c) & identifiers)
        ):
            out.append("[erased]")
        else:
            out.append(c)
    return out


def _phone_needles(values: list[str]) -> tuple[set[str], list[str]]:
    """The erased phones (E.164) and, to find the rows that may hold them as typed, their
    last four digits (``555-0301``, ``5550301`` and ``(202) 555-0301`` all contain ``0301``)."""
    phones = {v for v in values if v.startswith("+") and v[1:].isdigit()}
    return phones, sorted({p[-4:] for p in phones if len(p) > 5})


def scrub_erased(persona_ids: list[int], values: list[str]) -> None:
    needles = [v for v in values if len(v) >= 3]
    if not needles:
        return
    phones, tails = _phone_needles(needles)
    identifiers = phones | {v.lower() for v in needles if "@" in v}
    # The exact values, and the rows that may hold an erased phone in another format.
    for value in [*needles, *tails]:
        issues = ImportIssue.objects.annotate(text=Cast("raw", TextField())).filter(
            text__icontains=value
        )
        for issue in issues:
            raw = _scrub_cells(issue.raw, needles, identifiers)
            if raw != issue.raw:
                ImportIssue.objects.filter(pk=issue.pk).update(raw=raw)
        jobs = ImportJob.objects.annotate(
            s=Cast("sample", TextField()), p=Cast("preview", TextField())
        ).filter(s__icontains=value) | ImportJob.objects.annotate(
            s=Cast("sample", TextField()), p=Cast("preview", TextField())
        ).filter(p__icontains=value)
        for job in jobs:
            sample = [_scrub_cells(row, needles, identifiers) for row in job.sample]
            preview = job.preview or {}
            for examples in (preview.get("examples") or {}).values():
                for example in examples:
                    example["cells"] = _scrub_cells(example.get("cells", []), needles, identifiers)
            ImportJob.objects.filter(pk=job.pk).update(sample=sample, preview=preview)
