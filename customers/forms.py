"""Forms on the customer's own pages: signup forms, the wallet, the data controls."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from personas.models import SignupForm, Store
from personas.normalize import clean_text, normalize_email, normalize_phone
from personas.services.privacy import Identifier, parse_identifier


def phone_input() -> forms.TextInput:
    """A customer's own phone number, typed on their phone: the phone keypad and autofill."""
    return forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel"})


def email_input() -> forms.EmailInput:
    """A customer's own email address: the email keyboard and autofill."""
    return forms.EmailInput(attrs={"autocomplete": "email"})


class PublicSignupForm(forms.Form):
    # A field people never see (hidden with CSS): bots fill it in.
    website = forms.CharField(required=False, label="Leave this empty")

    def __init__(self, *args: Any, signup_form: SignupForm, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.signup_form = signup_form
        asked = set(signup_form.fields_asked or [])
        if "first_name" in asked:
            self.fields["first_name"] = forms.CharField(
                label="First name",
                max_length=150,
                widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
            )
        if "last_name" in asked:
            self.fields["last_name"] = forms.CharField(
                label="Last name",
                max_length=150,
                required=False,
                widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
            )
        self.fields["phone"] = forms.CharField(
            label="Mobile phone",
            max_length=40,
            required="email" not in asked,
            widget=phone_input(),
        )
        if "email" in asked:
            self.fields["email"] = forms.CharField(
                label="Email",
                max_length=254,
                required=False,
                widget=email_input(),
            )
        if "birthday" in asked:
            self.fields["birthday"] = forms.DateField(
                label="Birthday",
                required=False,
                widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}),
            )
        if "favorite_store" in asked:
            self.fields["store"] = forms.ModelChoiceField(
                label="Your favorite store",
                queryset=Store.objects.all(),
                required=False,
                empty_label="Choose a store",
            )
        if signup_form.ask_email_opt_in and "email" in asked:
            self.fields["email_opt_in"] = forms.BooleanField(
                label="Email me offers and rewards news", required=False
            )
        if signup_form.ask_text_opt_in:
            self.fields["text_opt_in"] = forms.BooleanField(
                label="Text me offers and rewards news", required=False
            )

    def clean_first_name(self) -> str:
        return clean_text(self.cleaned_data["first_name"], max_length=150, label="First name")

    def clean_last_name(self) -> str:
        return clean_text(self.cleaned_data["last_name"], max_length=150, label="Last name")

    def clean_phone(self) -> str | None:
        return normalize_phone(self.cleaned_data.get("phone"))

    def clean_email(self) -> str | None:
        return normalize_email(self.cleaned_data.get("email"))

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors and not data.get("phone") and not data.get("email"):
            raise ValidationError("Enter your mobile phone or your email.")
        if data.get("text_opt_in") and not data.get("phone"):
            self.add_error("phone", "Enter your mobile phone to get texts.")
        return data

    @property
    def is_bot(self) -> bool:
        return bool(self.data.get("website"))

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        store = data.pop("store", None)
        data["store_id"] = store.pk if store else None
        data.pop("website", None)
        return data


class WalletStartForm(forms.Form):
    identifier = forms.CharField(
        label="Mobile phone or email",
        max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "username"}),
    )


class WalletStoreForm(forms.Form):
    store = forms.ModelChoiceField(
        label="Favorite store", queryset=Store.objects.all(), empty_label="Choose a store"
    )


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
