from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One change to one persona: who did it and, per key, before → after.

    ``changes`` maps a key ("email", "attr:vip", "consent:text", …) to
    ``{"before": …, "after": …, "op": "created|kept|replaced|removed|absent|set"}``.
    """

    class ActorKind(models.TextChoices):
        USER = "user", "Staff user"
        IMPORT = "import", "Import"
        FLOW = "flow", "Flow"
        CUSTOMER = "customer", "Customer"
        SYSTEM = "system", "System"
        MERGE = "merge", "Merge"

    persona = models.ForeignKey(
        "personas.Persona", on_delete=models.CASCADE, related_name="audit_events"
    )
    action = models.CharField(max_length=32)
    actor_kind = models.CharField(max_length=12, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True)
    actor_ref = models.JSONField(default=dict, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["persona", "-id"], name="audit_persona_idx")]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label or self.actor_kind}"
