from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from .forms_public import email_input, phone_input
from .services.privacy import Identifier, parse_identifier


class EraseForm(forms.Form):
    confirm = forms.CharField(
        label="Type DELETE to confirm",
        max_length=10,
        help_text="This cannot be undone.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value.upper() != "DELETE":
            raise ValidationError("Type DELETE (in capitals or not) to confirm the deletion.")
        return value


class DataRequestForm(forms.Form):
    """The public page: a phone and/or an email the customer will prove they own."""

    phone = forms.CharField(
        label="Mobile phone number",
        required=False,
        max_length=40,
        widget=phone_input(),
    )
    email = forms.CharField(
        label="Email address",
        required=False,
        max_length=254,
        widget=email_input(),
    )

    def clean_phone(self) -> Identifier | None:
        raw = self.cleaned_data["phone"].strip()
        if not raw:
            return None
        if "@" in raw:
            raise ValidationError("Enter a phone number here, or use the email field.")
        try:
            return parse_identifier(raw)
        except ValidationError as exc:
            raise ValidationError("Enter a valid phone number, e.g. (555) 123-4567.") from exc

    def clean_email(self) -> Identifier | None:
        raw = self.cleaned_data["email"].strip()
        if not raw:
            return None
        if "@" not in raw:
            raise ValidationError("Enter a valid email address.")
        try:
            return parse_identifier(raw)
        except ValidationError as exc:
            raise ValidationError("Enter a valid email address.") from exc

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors and not data.get("phone") and not data.get("email"):
            raise ValidationError("Enter your phone number, your email address, or both.")
        return data

    def identifiers(self) -> list[Identifier]:
        return [i for i in (self.cleaned_data.get("phone"), self.cleaned_data.get("email")) if i]


class CodeForm(forms.Form):
    def __init__(self, *args, kinds: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for kind in kinds:
            label = "Code sent by text" if kind == "phone" else "Code sent by email"
            self.fields[kind] = forms.CharField(
                label=label,
                max_length=12,
                widget=forms.TextInput(
                    attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}
                ),
            )


class RecoveryForm(forms.Form):
    identifier = forms.CharField(
        label="Phone number or email",
        max_length=254,
        help_text="Hashed for the look-up; never stored or shown in clear.",
    )
    reason = forms.CharField(label="Reason for the recovery", max_length=300, required=False)
