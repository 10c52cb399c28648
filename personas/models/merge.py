from __future__ import annotations

from django.conf import settings
from django.db import models


class MergeRecord(models.Model):
    """One merge: who, when, which values came from where, and what moved (so it can be undone)."""

    survivor = models.ForeignKey(
        "personas.Persona", on_delete=models.CASCADE, related_name="merges_received"
    )
    merged = models.ForeignKey(
        "personas.Persona", on_delete=models.CASCADE, related_name="merges_given"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    survivor_before = models.JSONField(default=dict)
    survivor_after = models.JSONField(default=dict)
    merged_before = models.JSONField(default=dict)
    sources = models.JSONField(default=dict)  # field → "survivor" | "merged"
    moved = models.JSONField(default=dict)  # {"purchases": [...], "audit": [...], ...}
    points_moved = models.IntegerField(default=0)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["survivor", "-id"], name="merge_survivor_idx")]

    def __str__(self) -> str:
        return f"Merge #{self.pk}: {self.merged_id} → {self.survivor_id}"


class NotDuplicate(models.Model):
    """Two personas a person said are different customers (never suggested again)."""

    low = models.ForeignKey("personas.Persona", on_delete=models.CASCADE, related_name="+")
    high = models.ForeignKey("personas.Persona", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["low", "high"], name="uniq_not_duplicate")]

    def __str__(self) -> str:
        return f"{self.low_id} ≠ {self.high_id}"


class PossibleDuplicate(models.Model):
    """A pair staff should look at: a public submission used an identifier of an existing
    customer without proving it, so it became a separate persona instead of being linked."""

    persona = models.ForeignKey("personas.Persona", on_delete=models.CASCADE, related_name="+")
    other = models.ForeignKey("personas.Persona", on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["persona", "other"], name="uniq_possible_duplicate")
        ]

    def __str__(self) -> str:
        return f"Possible duplicate #{self.persona_id} ~ #{self.other_id}"
