from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from .mapping import MATCH_KEYS


class ImportJob(models.Model):
    """One CSV import: the file, its mapping, its progress and its outcome counts."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Needs mapping"
        PREVIEWING = "previewing", "Checking the file"
        PREVIEWED = "previewed", "Ready to run"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    class Existing(models.TextChoices):
        FILL_EMPTY = "fill_empty", "Fill empty fields only"
        OVERWRITE = "overwrite", "Overwrite with the file's values"

    class DoubleOptIn(models.TextChoices):
        NOW = "now", "Send now"
        SCHEDULED = "scheduled", "Send at a chosen time"
        LATER = "later", "Not yet (send later from Import History)"

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    file = models.FileField(upload_to="imports/", blank=True)  # the rows, as CSV
    # An uploaded spreadsheet with several sheets, kept until the mapping is settled so that
    # another sheet can be chosen; its sheet names, and the sheet ``file`` holds.
    workbook = models.FileField(upload_to="imports/", blank=True)
    sheets = models.JSONField(default=list, blank=True)
    sheet = models.CharField(max_length=255, blank=True)
    original_name = models.CharField(max_length=255)
    size = models.BigIntegerField(default=0)
    encoding = models.CharField(max_length=20, default="utf-8")
    delimiter = models.CharField(max_length=2, default=",")
    headers = models.JSONField(default=list)
    sample = models.JSONField(default=list)  # the first rows, for the mapping page

    mapping = models.JSONField(default=dict)  # {"0": "phone", "3": "attr:shoe_size", "4": ""}
    # What each column's values show of their format ({"3": ColumnProfile.as_dict()}): the
    # first rows at upload, the whole file once the dry run has read it.
    profile = models.JSONField(default=dict, blank=True)
    # The mapping's answers on how to read a column ({"3": {"type": "number", "numbers":
    # "comma", "dates": "dmy"}}); a missing answer means as detected.
    formats = models.JSONField(default=dict, blank=True)
    match_keys = models.JSONField(default=list)  # ["phone", "email", "customer_id"]
    existing = models.CharField(max_length=12, choices=Existing.choices, default="fill_empty")
    double_opt_in = models.CharField(max_length=10, choices=DoubleOptIn.choices, default="now")
    double_opt_in_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UPLOADED)
    cancel_requested = models.BooleanField(default=False)
    total_rows = models.IntegerField(null=True, blank=True)
    rows_done = models.IntegerField(default=0)
    checkpoint_line = models.IntegerField(default=0)  # last committed CSV line
    created = models.IntegerField(default=0)
    updated = models.IntegerField(default=0)
    unchanged = models.IntegerField(default=0)
    skipped = models.IntegerField(default=0)
    errors = models.IntegerField(default=0)
    # Rows taken (created/updated/unchanged) without a cell that was not usable.
    warnings = models.IntegerField(default=0)
    preview = models.JSONField(default=dict, blank=True)
    message = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    doi_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Import #{self.pk} ({self.original_name})"

    def get_absolute_url(self) -> str:
        return reverse("imports:detail", args=[self.pk])

    @property
    def counted(self) -> int:
        return self.created + self.updated + self.unchanged + self.skipped + self.errors

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.PREVIEWING, self.Status.QUEUED, self.Status.RUNNING)

    @property
    def match_labels(self) -> list[str]:
        return [MATCH_KEYS.get(k, k) for k in self.match_keys]

    @property
    def mapping_columns(self) -> str:
        """How many columns the mapping imports, for the history list ("11 of 11 columns,
        1 custom"); the import's page shows the mapping whole."""
        targets = [self.mapping.get(str(i), "") for i in range(len(self.headers))]
        used = [t for t in targets if t]
        attrs = sum(t.startswith("attr:") for t in used)
        text = f"{len(used)} of {len(targets)} column{'s' if len(targets) != 1 else ''}"
        return f"{text}, {attrs} custom" if attrs else text

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class ImportIssue(models.Model):
    """A row the import did not take (skipped or error), kept for the error report."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="issues")
    line = models.IntegerField()
    outcome = models.CharField(max_length=8)  # skipped / error / warning (taken, see reason)
    reason = models.CharField(max_length=300)
    raw = models.JSONField(default=list)
    persona_id = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["line"]
        indexes = [models.Index(fields=["job", "line"], name="import_issue_job_line_idx")]

    def __str__(self) -> str:
        return f"Line {self.line}: {self.outcome}"


class PendingDoubleOptIn(models.Model):
    """A double opt-in text an import recorded as pending but has not sent yet."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="pending_texts")
    persona = models.ForeignKey("personas.Persona", on_delete=models.CASCADE, related_name="+")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "persona"], name="uniq_pending_doi_job_persona")
        ]

    def __str__(self) -> str:
        return f"Pending double opt-in #{self.pk}"


class SavedMapping(models.Model):
    """A column mapping saved for reuse, keyed by header text."""

    name = models.CharField(max_length=120, unique=True)
    columns = models.JSONField(default=dict)  # {"Mobile": "phone", "Shoe Size": "attr:shoe_size"}
    match_keys = models.JSONField(default=list)
    existing = models.CharField(max_length=12, default="fill_empty")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
