from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.urls import reverse

from ..normalize import format_phone
from .consent import ConsentState
from .store import SignupForm, Store

_BADGE_CHANNELS = (
    ("text", "SMS"),
    ("email", "Email"),
    ("voice", "Voice"),
    ("push", "Push"),
    ("browser", "Web"),
)
# Badge titles ("Text: opted out"): the consent states' own labels.
_STATE_TITLES = {state: label.lower() for state, label in ConsentState.choices}


class PersonaStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ARCHIVED = "archived", "Archived"
    MERGED = "merged", "Merged"
    ERASED = "erased", "Erased"


class EntrySource(models.TextChoices):
    MANUAL = "manual", "Manual"
    SIGNUP_FORM = "signup_form", "Signup form"
    IMPORT = "import", "Import"
    FLOW = "flow", "Flow"
    API = "api", "API"
    POS = "pos", "POS"
    WALLET = "wallet", "Wallet"


class FavoriteStoreSource(models.TextChoices):
    """Who set the favorite store. Precedence lives in ``personas.services.rules``."""

    WALLET = "wallet", "Customer in wallet / loyalty app"
    SIGNUP_FORM = "signup_form", "Customer on a signup form"
    STAFF = "staff", "Staff"
    IMPORT = "import", "CSV import"
    PURCHASE = "purchase", "Purchase history"


def visible_q(prefix: str = "") -> Q:
    """The one visibility rule, as a condition: not hidden by the privacy blocklist.
    ``prefix`` reaches it from a related model ("persona__")."""
    return Q(**{f"{prefix}hidden": False})


def is_visible(persona: object) -> bool:
    """``visible_q`` for a loaded persona (or an import's row of one)."""
    return not getattr(persona, "hidden", False)


class PersonaQuerySet(models.QuerySet):
    """``visible()``: what staff may see anywhere (never a blocklisted persona);
    ``restrict(user)``: the same, except for the privacy/support group (Django admin)."""

    def visible(self) -> PersonaQuerySet:
        return self.filter(visible_q())

    def restrict(self, user: object) -> PersonaQuerySet:
        from ..roles import in_privacy_group  # cycle: roles reads the persona model's permissions

        return self if in_privacy_group(user) else self.visible()


def consent_field(label: str) -> models.CharField:
    return models.CharField(
        label,
        max_length=12,
        choices=ConsentState.choices,
        default=ConsentState.NEVER,
    )


class Persona(models.Model):
    """One customer profile.

    Identifier columns are kept normalised (lower-case email, E.164 phone) and the ``*_key``
    columns hold search forms (accent-free lower-case names, reversed phone digits) so every
    search is an index range scan. Written only through ``personas.services.changes``.
    """

    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    email = models.CharField(max_length=254, null=True, blank=True)
    phone = models.CharField(max_length=20, null=True, blank=True)
    # An extension typed with the phone ("ext. 12"): kept, shown and exported. A number with
    # an extension is its own identifier (an office line's extensions are different people).
    phone_ext = models.CharField("extension", max_length=10, blank=True, default="")
    birthday = models.DateField(null=True, blank=True)
    customer_id = models.CharField("customer ID", max_length=64, null=True, blank=True)

    first_key = models.CharField(max_length=150, blank=True, default="", editable=False)
    last_key = models.CharField(max_length=150, blank=True, default="", editable=False)

    points_balance = models.IntegerField(default=0)
    loyalty_enrolled = models.BooleanField(default=False)
    loyalty_enrolled_at = models.DateTimeField(null=True, blank=True)

    entry_source = models.CharField(
        max_length=16, choices=EntrySource.choices, default=EntrySource.MANUAL
    )
    # The import that created this persona (imports.ImportJob id; personas does not import it).
    import_job_id = models.PositiveIntegerField(null=True, blank=True, editable=False)
    signup_form = models.ForeignKey(
        SignupForm, null=True, blank=True, on_delete=models.SET_NULL, related_name="personas"
    )
    favorite_store = models.ForeignKey(
        Store, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    favorite_store_source = models.CharField(
        max_length=16, choices=FavoriteStoreSource.choices, blank=True, default=""
    )

    attributes = models.JSONField(default=dict, blank=True)

    text_consent = consent_field("text")
    email_consent = consent_field("email")
    voice_consent = consent_field("voice")
    push_consent = consent_field("push")
    browser_consent = consent_field("browser")

    status = models.CharField(
        max_length=10, choices=PersonaStatus.choices, default=PersonaStatus.ACTIVE
    )
    archived_reason = models.CharField(max_length=200, blank=True, default="")
    archived_at = models.DateTimeField(null=True, blank=True)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from"
    )
    # Set when an identifier is on the privacy blocklist: hidden from staff everywhere.
    hidden = models.BooleanField(default=False)

    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PersonaQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["phone", "phone_ext"],
                condition=Q(status="active") & Q(phone__isnull=False),
                name="uniq_active_phone",
                violation_error_message="An active persona already has this phone number.",
            ),
            models.UniqueConstraint(
                fields=["email"],
                condition=Q(status="active") & Q(email__isnull=False),
                name="uniq_active_email",
                violation_error_message="An active persona already has this email.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "archived", "merged", "erased"]),
                name="persona_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["email"], name="persona_email_idx"),
            models.Index(fields=["phone"], name="persona_phone_idx"),
            models.Index(fields=["customer_id"], name="persona_customer_id_idx"),
            models.Index(fields=["first_key", "last_key"], name="persona_first_last_idx"),
            models.Index(fields=["last_key", "first_key"], name="persona_last_first_idx"),
            models.Index(fields=["points_balance", "id"], name="persona_points_idx"),
            models.Index(
                fields=["import_job_id", "id"],
                name="persona_import_job_idx",
                condition=Q(import_job_id__isnull=False),
            ),
        ]
        permissions = [
            ("manage_persona", "Can view, create and manage personas"),
            ("export_persona", "Can export personas"),
            ("merge_persona", "Can merge and unmerge personas"),
            ("adjust_points", "Can adjust points"),
            ("run_import", "Can run imports and send double opt-in to imports"),
            ("view_flows", "Can view flows and runs"),
            ("edit_flows", "Can edit and activate flows"),
            ("erase_persona", "Can erase a customer's data"),
            ("manage_settings", "Can manage stores, signup forms and privacy settings"),
            ("manage_team", "Can manage team members and roles"),
        ]

    def __str__(self) -> str:
        return self.display_name

    def get_absolute_url(self) -> str:
        return reverse("personas:detail", args=[self.pk])

    @property
    def phone_display(self) -> str:
        """The phone as people read it, with its extension."""
        text = format_phone(self.phone)
        return f"{text} ext. {self.phone_ext}" if text and self.phone_ext else text

    @property
    def display_name(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email or self.phone or f"Persona #{self.pk}"

    @property
    def initials(self) -> str:
        letters = (self.first_name[:1] + self.last_name[:1]).upper()
        return letters or "?"

    def consent(self, channel: str) -> str:
        return getattr(self, f"{channel}_consent")

    @property
    def consent_badges(self) -> list[tuple[str, str, str]]:
        """(state, label, title) for every channel that was ever asked, for the list badges."""
        out = []
        for channel, short in _BADGE_CHANNELS:
            state = getattr(self, f"{channel}_consent")
            if state != "never":
                mark = {"opted_out": " ✕", "pending": " …"}.get(state, "")
                out.append((state, short + mark, f"{short}: {_STATE_TITLES[state]}"))
        return out

    @property
    def consents(self) -> list[tuple[str, str]]:
        from .consent import Channel  # cycle: models.consent imports this module

        return [(c.value, self.consent(c.value)) for c in Channel]


class PhoneFragment(models.Model):
    """One tail of a persona's phone digits (``normalize.phone_fragments``), for searching by
    any 4 or more digits of the number. Written by the personas service whenever a phone is
    set or changed (``services.phone_index``); the key (digits, persona) is the index a
    fragment search scans, so the table holds nothing else."""

    pk = models.CompositePrimaryKey("digits", "persona")
    digits = models.CharField(max_length=20)
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="phone_fragments")

    class Meta:
        verbose_name = "phone fragment"

    def __str__(self) -> str:
        return f"…{self.digits[-4:]}"
