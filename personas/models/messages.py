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


class InboundMessage(models.Model):
    """A text a customer sent us (Twilio webhook). Stored once per provider message id."""

    class Outcome(models.TextChoices):
        CONFIRMED = "confirmed", "Double opt-in confirmed"
        OPTED_OUT = "opted_out", "Opted out of texts"
        RESUBSCRIBE = "resubscribe", "Asked to re-subscribe (double opt-in sent)"
        UNBLOCKED = "unblocked", "Texted START: the number is no longer blocked"
        REMINDED = "reminded", "Reminded: reply YES to confirm or STOP to cancel"
        HELP = "help", "Asked for help"
        IGNORED = "ignored", "No action"
        UNKNOWN = "unknown", "Unknown number"

    message_sid = models.CharField(max_length=64, unique=True)
    persona = models.ForeignKey(
        "personas.Persona", null=True, on_delete=models.SET_NULL, related_name="inbound_messages"
    )
    from_number = models.CharField(max_length=20, blank=True)  # only kept for known personas
    body = models.CharField(max_length=320, blank=True)
    keyword = models.CharField(max_length=16, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"Inbound {self.keyword or 'text'} ({self.outcome})"
