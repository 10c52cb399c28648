"""Privacy forms for staff: the erase confirmation and the admin's blocklist recovery (the
customer's own data-controls forms are in ``customers.forms``)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError


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


class RecoveryForm(forms.Form):
    identifier = forms.CharField(
        label="Phone number or email",
        max_length=254,
        help_text="Hashed for the look-up; never stored or shown in clear.",
    )
    reason = forms.CharField(label="Reason for the recovery", max_length=300, required=False)
