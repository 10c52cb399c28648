"""Print (or write) a flow as JSON: name, trigger, re-entry and its Studio-shaped definition."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from flows.models import Flow
from flows.services import export_json


class Command(BaseCommand):
    help = "Export a flow (by id or name) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("flow", help="Flow id or name.")
        parser.add_argument("--output", help="Write to this file instead of standard output.")

    def handle(self, *args, **opts):
        ref = opts["flow"]
        flow = Flow.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
        flow = flow or Flow.objects.filter(name=ref).first()
        if flow is None:
            raise CommandError(f"No flow {ref!r}.")
        text = export_json(flow)
        if opts["output"]:
            Path(opts["output"]).write_text(text + "\n", encoding="utf-8")
        else:
            self.stdout.write(text)
