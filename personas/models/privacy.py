from __future__ import annotations

from django.conf import settings
from django.db import models


class BlocklistEntry(models.Model):
    """One blocklisted identifier, kept only as a keyed hash (no readable contact data)."""

    class Kind(models.TextChoices):
        PHONE = "phone", "Phone"
        EMAIL = "email", "Email"

    class Reason(models.TextChoices):
        ERASURE = "erasure", "Full opt-out and data deletion"
        CUSTOMER_REQUEST = "customer_request", "Customer asked not to be contacted"
        LEGAL = "legal", "Legal request"
        FRAUD = "fraud", "Fraud or abuse"

    digest = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=5, choices=Kind.choices)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "blocklist entry"
        verbose_name_plural = "blocklist"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} …{self.digest[-8:]}"


class ErasureRequest(models.Model):
    """The PII-free record that a customer's data was deleted."""

    class Via(models.TextChoices):
        STAFF = "staff", "Staff, in the app"
        PUBLIC_PAGE = "public_page", "Customer, on the data-controls page"
        SYSTEM = "system", "System"

    created_at = models.DateTimeField(auto_now_add=True)
    via = models.CharField(max_length=12, choices=Via.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    persona_ids = models.JSONField(default=list, blank=True)
    digests = models.JSONField(default=list, blank=True)
    points_removed = models.IntegerField(default=0)
    matched = models.BooleanField(default=False, help_text="A persona held this customer's data.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Erasure #{self.pk} ({self.get_via_display()})"


class BlocklistRecovery(models.Model):
    """An account recovery: a blocklist entry removed by a privacy/support user."""

    created_at = models.DateTimeField(auto_now_add=True)
    digest = models.CharField(max_length=64)
    kind = models.CharField(max_length=5)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=300)
    personas_unhidden = models.IntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "blocklist recoveries"

    def __str__(self) -> str:
        return f"Recovery #{self.pk}"


class VerificationChallenge(models.Model):
    """One-time codes proving a customer owns a phone and/or email (short-lived).

    Holds the identifiers only while the request is open; deleted once used or expired.
    Codes are stored as keyed hashes.
    """

    purpose = models.CharField(max_length=20)
    identifiers = models.JSONField(default=list)  # [{"kind": "phone", "value": "+1555…"}]
    code_hashes = models.JSONField(default=dict)  # kind → hex digest
    salt = models.CharField(max_length=32)
    attempts = models.PositiveSmallIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Challenge #{self.pk} ({self.purpose})"
