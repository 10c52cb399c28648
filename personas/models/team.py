from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class TeamChange(models.Model):
    """One change to one team member's access, made on Settings › Team: who, whom, before → after.

    The names and the actor's role are copied at the time, so the history still reads right
    after a rename, a role change or a deleted account.
    """

    class Kind(models.TextChoices):
        INVITED = "invited", "Added"
        ROLE = "role", "Role changed"
        DEACTIVATED = "deactivated", "Deactivated"
        REACTIVATED = "reactivated", "Reactivated"
        RESET_SENT = "reset_sent", "Password link sent"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    actor_role = models.CharField(max_length=200, blank=True)
    target = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="team_changes",
    )
    target_label = models.CharField(max_length=254)
    before = models.CharField(max_length=200, blank=True)
    after = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="teamchange_recent_idx"),
            models.Index(fields=["target", "-created_at"], name="teamchange_target_idx"),
        ]

    def __str__(self) -> str:
        return self.sentence()

    def sentence(self) -> str:
        """The change in words: "Owner jane changed bo from Staff to Manager"."""
        who = f"{self.actor_role} {self.actor_label}".strip()
        whom = self.target_label
        if self.kind == self.Kind.ROLE:
            before, after = self.before or "no role", self.after or "no role"
            return f"{who} changed {whom} from {before} to {after}"
        if self.kind == self.Kind.INVITED:
            return f"{who} added {whom} as {self.after}"
        if self.kind == self.Kind.DEACTIVATED:
            return f"{who} deactivated {whom}"
        if self.kind == self.Kind.REACTIVATED:
            return f"{who} reactivated {whom}"
        return f"{who} sent {whom} a password link"
