"""Import personas from a CSV file with the same pipeline as the web import."""

from __future__ import annotations

import json
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from imports import pipeline, services
from imports.csvfile import CSVFileError
from imports.mapping import validate_mapping
from imports.models import ImportJob, SavedMapping


class Command(BaseCommand):
    help = (
        "Import personas from a CSV file: headers are matched automatically (or by --mapping), "
        "rows are validated, deduplicated and written through the personas service."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file (UTF-8/UTF-16/Windows-1252; , ; or tab).")
        parser.add_argument(
            "--mapping",
            help="A saved mapping's name, or a JSON file {header: target} "
            '(targets: first_name, phone, …, "attr:<key>", or "" to ignore).',
        )
        parser.add_argument(
            "--match",
            default="phone,email,customer_id",
            help="Match key order, comma-separated (default: phone,email,customer_id).",
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Overwrite existing personas' fields (default: fill empty fields only).",
        )
        parser.add_argument(
            "--double-opt-in",
            choices=["now", "later"],
            default="now",
            help="Send double opt-in texts now, or later from Import History.",
        )
        parser.add_argument("--user", help="Username recorded as the importer.")
        parser.add_argument("--dry-run", action="store_true", help="Count only; write nothing.")
        parser.add_argument("--json", action="store_true", help="Print the counts as JSON.")

    def handle(self, *args, **opts):
        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        user = None
        if opts["user"]:
            user = get_user_model().objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"No user called {opts['user']}.")
        started = time.monotonic()
        try:
            with path.open("rb") as fh:
                job = services.upload(fh, name=path.name, user=user)
            job.mapping = self._mapping(job, opts["mapping"])
            problems = validate_mapping(job.mapping, job.headers)
            if problems:
                raise CommandError(" ".join(problems))
            job.match_keys = [k.strip() for k in opts["match"].split(",") if k.strip()]
            job.existing = "overwrite" if opts["overwrite"] else "fill_empty"
            job.double_opt_in = opts["double_opt_in"]
            if opts["dry_run"]:
                result = pipeline.preview(job)
                counts = result["counts"]
                services.finish(job)
                job.status = ImportJob.Status.CANCELLED
                job.message = "Dry run from the command line."
                job.save()
            else:
                job.status = ImportJob.Status.PREVIEWED
                job.save()
                job = pipeline.run(job.pk)
                counts = {
                    "created": job.created,
                    "updated": job.updated,
                    "unchanged": job.unchanged,
                    "skipped": job.skipped,
                    "error": job.errors,
                }
        except (ValidationError, CSVFileError) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from exc
        elapsed = time.monotonic() - started
        total = sum(counts.values())
        report = {
            "import": job.pk,
            "dry_run": opts["dry_run"],
            **counts,
            "rows": total,
            "seconds": round(elapsed, 2),
        }
        if opts["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self.stdout.write(
                f"Import #{job.pk}{' (dry run)' if opts['dry_run'] else ''}: {total} rows — "
                + ", ".join(f"{v} {k}" for k, v in counts.items())
                + f" in {elapsed:.1f}s"
            )

    def _mapping(self, job: ImportJob, spec: str | None) -> dict[str, str]:
        if not spec:
            return job.mapping
        saved = SavedMapping.objects.filter(name=spec).first()
        if saved is not None:
            return services.apply_saved_mapping(job, saved)
        path = Path(spec)
        if not path.is_file():
            raise CommandError(f"--mapping: no saved mapping or JSON file called {spec}.")
        try:
            by_header = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CommandError(f"--mapping: {path} is not valid JSON ({exc}).") from exc
        mapping = dict(job.mapping)
        for index, header in enumerate(job.headers):
            if header in by_header:
                mapping[str(index)] = by_header[header] or ""
        return mapping
