"""Create a draft flow from JSON (an export of this app, or a bare Studio-shaped definition)."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from flows.services import import_json


class Command(BaseCommand):
    help = "Import a flow from a JSON file; it is created as a draft (publish it in the editor)."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, **opts):
        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            flow = import_json(path.read_text(encoding="utf-8"), user=None)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"Imported flow #{flow.pk} “{flow.name}” as a draft.")
