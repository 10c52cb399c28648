from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse


class Flow(models.Model):
    """A marketing flow: a draft definition, its trigger, and its published versions."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    class Reentry(models.TextChoices):
        ONCE = "once", "Once per persona"
        EACH = "each", "Each time the trigger happens"

    name = models.CharField(max_length=120, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    definition = models.JSONField(default=dict)  # the draft, in Studio's flow-definition shape
    trigger = models.JSONField(default=dict)  # {"type": "persona_created", "source": "…"}
    reentry = models.CharField(max_length=5, choices=Reentry.choices, default=Reentry.ONCE)
    current_version = models.ForeignKey(
        "FlowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("flows:detail", args=[self.pk])

    def recent_enrolments(self, limit: int = 10) -> EnrolmentList:
        """The latest bulk enrolments, for the flow's page (one query; ids left unloaded)."""
        return EnrolmentList(
            self.enrolments.select_related("created_by", "cancelled_by").defer("persona_ids")[
                :limit
            ]
        )


class FlowVersion(models.Model):
    """An immutable published definition; runs keep the version they started on."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    trigger = models.JSONField(default=dict)
    reentry = models.CharField(max_length=5, default="once")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="uniq_flow_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.flow.name} v{self.number}"


class FlowRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        STOPPED = "stopped", "Stopped"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(FlowVersion, on_delete=models.PROTECT, related_name="runs")
    persona = models.ForeignKey(
        "personas.Persona", on_delete=models.CASCADE, related_name="flow_runs"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    current_state = models.CharField(max_length=100, blank=True)
    context = models.JSONField(default=dict)  # {"trigger": {...}, "widgets": {...}}
    steps_taken = models.PositiveIntegerField(default=0)
    wake_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)  # the last step's commit (stall detection)
    finished_at = models.DateTimeField(null=True, blank=True)
    dry_run = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["status", "wake_at"], name="flowrun_status_wake_idx"),
            models.Index(fields=["persona", "flow"], name="flowrun_persona_flow_idx"),
        ]

    def __str__(self) -> str:
        return f"Run #{self.pk} of {self.flow_id}"


class FlowStepLog(models.Model):
    run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="steps")
    step = models.CharField(max_length=100)
    step_type = models.CharField(max_length=40)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    inputs = models.JSONField(default=dict)
    outputs = models.JSONField(default=dict)
    event = models.CharField(max_length=60, blank=True)
    next_step = models.CharField(max_length=100, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "id"], name="flowsteplog_run_idx")]

    def __str__(self) -> str:
        return f"{self.step} → {self.event}"


class EnrolmentList(list):
    """A flow's recent enrolments; ``active`` when one waits or runs (the panel refreshes)."""

    @property
    def active(self) -> bool:
        return any(
            e.status in (FlowEnrolment.Status.QUEUED, FlowEnrolment.Status.RUNNING) for e in self
        )


class FlowEnrolment(models.Model):
    """One confirmed bulk enrolment of personas into a flow (``flows.enrolment``).

    ``filters`` are the personas-list search and filters it was asked with (only the ones set,
    as text: ``{"q": "kim", "loyalty": "yes"}``) and ``description`` says them in words. The
    search text can be personal data (a phone, an email): it stays behind staff sign-in, here,
    and never goes into a URL, a task argument or a log line. ``persona_ids`` are the personas
    counted and confirmed, resolved at confirmation; the task works through them in batches,
    ``position`` being how many it has handled (committed with each batch's runs).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting to start"
        RUNNING = "running", "Enrolling"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="enrolments")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    filters = models.JSONField(default=dict, blank=True)
    description = models.CharField(max_length=500)
    confirmed_count = models.PositiveIntegerField()
    persona_ids = models.JSONField(default=list, blank=True)  # emptied once it ends
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    position = models.PositiveIntegerField(default=0)
    enrolled = models.PositiveIntegerField(default=0)
    note = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["flow", "-created_at"], name="flowenrolment_flow_idx")]

    def __str__(self) -> str:
        # Never the filters: the search text may be a customer's phone or email.
        return f"Enrolment #{self.pk} into flow {self.flow_id}"

    @property
    def skipped(self) -> int:
        """Personas handled but not enrolled: no longer active or visible, or already in a
        once-per-persona flow by the time their batch ran."""
        return max(self.position - self.enrolled, 0)

    @property
    def badge(self) -> str:
        """The badge style of the status (the stylesheet calls a finished job "completed")."""
        return "completed" if self.status == self.Status.DONE else self.status
