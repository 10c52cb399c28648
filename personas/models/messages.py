from __future__ import annotations

from django.db import models


class OutboundMessage(models.Model):
    """Every message we send (or decide not to send) to a customer."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SUPPRESSED = "suppressed", "Suppressed"

    persona = models.ForeignKey(
        "personas.Persona", null=True, on_delete=models.SET_NULL, related_name="messages"
    )
    channel = models.CharField(max_length=10)
    template = models.CharField(max_length=64)
    to = models.CharField(max_length=254)
    body = models.TextField()
    transactional = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    provider_id = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel} {self.template} ({self.status})"
