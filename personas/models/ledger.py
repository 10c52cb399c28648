from __future__ import annotations

from django.conf import settings
from django.db import models

from .store import Store


class Purchase(models.Model):
    persona = models.ForeignKey(
        "personas.Persona", null=True, on_delete=models.SET_NULL, related_name="purchases"
    )
    store = models.ForeignKey(Store, null=True, blank=True, on_delete=models.SET_NULL)
    receipt_id = models.CharField(max_length=64)
    total = models.DecimalField(max_digits=10, decimal_places=2)
    purchased_at = models.DateTimeField()
    points_earned = models.IntegerField(default=0)

    class Meta:
        ordering = ["-purchased_at", "-id"]
        indexes = [
            models.Index(fields=["receipt_id"], name="purchase_receipt_idx"),
            models.Index(fields=["persona", "purchased_at"], name="purchase_persona_idx"),
        ]

    def __str__(self) -> str:
        return f"Receipt {self.receipt_id}"


class PointsEntry(models.Model):
    """The points ledger; ``Persona.points_balance`` is the cached sum of a persona's entries."""

    class Kind(models.TextChoices):
        EARN = "earn", "Earned on purchase"
        REDEEM = "redeem", "Redeemed"
        ADJUST = "adjust", "Adjustment"
        RETURN = "return", "Return"
        REMOVAL = "removal", "Removed (data deletion)"
        MERGE = "merge", "Merge transfer"

    persona = models.ForeignKey(
        "personas.Persona", on_delete=models.CASCADE, related_name="points_entries"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    points = models.IntegerField()
    reason = models.CharField(max_length=200, blank=True)
    purchase = models.ForeignKey(Purchase, null=True, blank=True, on_delete=models.SET_NULL)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["persona", "created_at"], name="points_persona_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.points:+d}"
