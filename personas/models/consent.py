from __future__ import annotations

from django.conf import settings
from django.db import models


class Channel(models.TextChoices):
    TEXT = "text", "Text (SMS)"
    EMAIL = "email", "Email"
    VOICE = "voice", "Voice"
    PUSH = "push", "Push"
    BROWSER = "browser", "Browser"


class ConsentState(models.TextChoices):
    OPTED_IN = "opted_in", "Opted in"
    OPTED_OUT = "opted_out", "Opted out"
    PENDING = "pending", "Pending double opt-in"
    NEVER = "never", "Never asked"


class ConsentChange(models.Model):
    """Every change of a channel's consent state, in order."""

    persona = models.ForeignKey(
        "personas.Persona", on_delete=models.CASCADE, related_name="consent_changes"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    before = models.CharField(max_length=12, choices=ConsentState.choices)
    after = models.CharField(max_length=12, choices=ConsentState.choices)
    hard = models.BooleanField(default=False, help_text="A forced (hard) opt-out.")
    actor_kind = models.CharField(max_length=12)
    actor_label = models.CharField(max_length=200, blank=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["persona", "channel"], name="consent_persona_channel_idx")]

    def __str__(self) -> str:
        return f"{self.channel}: {self.before} → {self.after}"
