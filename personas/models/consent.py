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
    # The address the change belongs to (an HMAC, as ContactConsent.digest; blank for push and
    # browser) and what proves it: a message id, a signup form, a one-time code, an import row…
    address = models.CharField(max_length=64, blank=True, default="")
    evidence = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["persona", "channel"], name="consent_persona_channel_idx")]

    def __str__(self) -> str:
        return f"{self.channel}: {self.before} → {self.after}"


# Channels whose consent belongs to a contact point (an address), not to a profile: text and
# voice to an E.164 number, email to a normalised address. Push and browser stay per persona.
ADDRESS_CHANNELS: dict[str, str] = {"text": "phone", "voice": "phone", "email": "email"}


class ContactConsent(models.Model):
    """The consent an address (phone number or email) gave for one channel.

    The record is the truth; ``Persona.<channel>_consent`` mirrors the record of the address the
    persona holds now. Keyed by an HMAC of the normalised address (like the blocklist), so a
    suppression entry for a number nobody holds keeps no readable number.
    """

    channel = models.CharField(max_length=10, choices=Channel.choices)
    digest = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=ConsentState.choices)
    hard = models.BooleanField(default=False)
    # The latest choice the customer made from this address ("" when they never chose).
    customer_choice = models.CharField(max_length=12, blank=True, default="")
    # A pending request already got its one "Reply YES to confirm or STOP to cancel" answer.
    reminded = models.BooleanField(default=False)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "digest"], name="uniq_contact_consent")
        ]
        verbose_name = "consent of an address"
        verbose_name_plural = "consent of addresses"

    def __str__(self) -> str:
        return f"{self.get_channel_display()} …{self.digest[-8:]}: {self.get_state_display()}"
