"""Merge a list of (survivor, merged) persona id pairs, e.g. after an import clean-up."""

from __future__ import annotations

import csv
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from personas.services.changes import Actor
from personas.services.merge import merge_pairs


class Command(BaseCommand):
    help = (
        "Merge pairs of personas from a CSV file with columns survivor,merged (persona ids), "
        "through the same service as the merge slide-out."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV with a header row: survivor,merged")

    def handle(self, *args, **opts):
        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        pairs = []
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    pairs.append((int(row["survivor"]), int(row["merged"])))
                except (KeyError, TypeError, ValueError) as exc:
                    raise CommandError(f"Line {n}: expected two persona ids.") from exc
        results = merge_pairs(pairs, actor=Actor("merge", None, "Bulk merge command"))
        merged = 0
        for survivor, other, outcome in results:
            merged += outcome.startswith("merged")
            self.stdout.write(f"{other} → {survivor}: {outcome}")
        self.stdout.write(f"{merged} merged, {len(results) - merged} refused")
