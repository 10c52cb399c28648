"""Run the periodic housekeeping now, or (--schedule) queue it to repeat every hour."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand
from django_tasks_db.models import DBTaskResult

from personas.services import housekeeping as work
from personas.tasks import housekeeping as hourly_task


class Command(BaseCommand):
    help = "Expire unanswered double opt-ins and one-time codes; --schedule queues it hourly."

    def add_arguments(self, parser):
        parser.add_argument(
            "--schedule",
            action="store_true",
            help="Queue the hourly task for the worker (once: skipped if already queued).",
        )

    def handle(self, *args, **opts):
        if opts["schedule"]:
            queued = DBTaskResult.objects.filter(
                task_path="personas.tasks.housekeeping", status="READY"
            ).exists()
            if not queued:
                hourly_task.enqueue(60)
            self.stdout.write("Housekeeping is scheduled hourly.")
            return

        self.stdout.write(json.dumps(work.run()))
