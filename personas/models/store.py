from __future__ import annotations

from django.db import models


class Store(models.Model):
    name = models.CharField(max_length=120, unique=True)
    code = models.SlugField(max_length=40, unique=True)
    time_zone = models.CharField(max_length=64, default="America/New_York")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


SIGNUP_FIELDS = ("first_name", "last_name", "email", "phone", "birthday", "favorite_store")


def _default_fields() -> list[str]:
    return ["first_name", "last_name", "email", "phone"]


class SignupForm(models.Model):
    """A customer-facing signup form; personas created from it carry it as their source."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    store = models.ForeignKey(Store, null=True, blank=True, on_delete=models.SET_NULL)
    enrolls_loyalty = models.BooleanField(default=True)
    # An email opt-in on this form is confirmed by a link sent to the address (the customer
    # has not proved the address). Text opt-ins from any public form always need a YES.
    email_double_opt_in = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    # Which traits the public page asks for (phone or email is always asked).
    fields_asked = models.JSONField(default=_default_fields, blank=True)
    ask_email_opt_in = models.BooleanField(default=True)
    ask_text_opt_in = models.BooleanField(default=True)
    consent_text = models.TextField(
        blank=True,
        default=(
            "By checking a box you agree to receive marketing messages from us on that channel. "
            "Message frequency varies. Msg & data rates may apply. Reply STOP to cancel, HELP "
            "for help."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
