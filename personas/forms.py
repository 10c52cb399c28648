"""Forms parse requests into changesets. Rules live in ``personas.services.changes``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from .models import Channel, ConsentState, EntrySource, Persona, PersonaStatus, SignupForm, Store
from .roles import ROLES
from .selectors import SORTS, ListQuery, search_candidates, visible_personas
from .services.changes import AttributeOp, Changeset, ConsentOp

ATTRIBUTE_TYPES = [
    ("text", "Text"),
    ("number", "Number"),
    ("boolean", "True / false"),
    ("date", "Date"),
    ("null", "Empty"),
]


class ListFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200)
    entry_source = forms.ChoiceField(
        required=False, choices=[("", "Any source"), *EntrySource.choices]
    )
    loyalty = forms.ChoiceField(
        required=False, choices=[("", "Any"), ("yes", "Enrolled"), ("no", "Not enrolled")]
    )
    channel = forms.ChoiceField(required=False, choices=[("", "Any channel"), *Channel.choices])
    consent = forms.ChoiceField(required=False, choices=[("", "Any state"), *ConsentState.choices])
    store = forms.ModelChoiceField(
        required=False, queryset=Store.objects.all(), empty_label="Any store"
    )
    attr_key = forms.CharField(required=False, max_length=64)
    attr_value = forms.CharField(required=False, max_length=200)
    created_from = forms.DateField(required=False)
    created_to = forms.DateField(required=False)
    sort = forms.ChoiceField(required=False, choices=list(SORTS.items()))
    cursor = forms.CharField(required=False, max_length=400)
    import_job = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def to_query(self) -> ListQuery:
        data = self.cleaned_data if self.is_valid() else {}
        store = data.get("store")
        return ListQuery(
            q=data.get("q", ""),
            entry_source=data.get("entry_source", ""),
            loyalty=data.get("loyalty", ""),
            channel=data.get("channel", ""),
            consent=data.get("consent", ""),
            store=store.pk if store else None,
            attr_key=(data.get("attr_key") or "").strip(),
            attr_value=(data.get("attr_value") or "").strip(),
            created_from=data.get("created_from"),
            created_to=data.get("created_to"),
            import_job=data.get("import_job"),
            sort=data.get("sort") or "-created",
            cursor=data.get("cursor", ""),
        )


class PersonaCreateForm(forms.Form):
    first_name = forms.CharField(required=False, max_length=150)
    last_name = forms.CharField(required=False, max_length=150)
    phone = forms.CharField(required=False, max_length=40)
    email = forms.CharField(required=False, max_length=254)
    birthday = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    customer_id = forms.CharField(required=False, max_length=64, label="Customer ID")
    favorite_store = forms.ModelChoiceField(
        required=False, queryset=Store.objects.all(), empty_label="No favorite store"
    )
    signup_form = forms.ModelChoiceField(
        required=False,
        queryset=SignupForm.objects.filter(is_active=True),
        empty_label="None (manual entry)",
        label="Signup Form",
    )
    loyalty = forms.BooleanField(required=False, label="Loyalty")
    send_double_opt_in = forms.BooleanField(required=False, label="Send Double Opt-in Text")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not any(data.get(k) for k in ("first_name", "last_name", "phone", "email")):
            raise ValidationError("Enter at least a name, a phone number or an email.")
        if data.get("send_double_opt_in") and not data.get("phone"):
            self.add_error("phone", "A phone number is needed to send the double opt-in text.")
        return data

    def to_changeset(self) -> tuple[Changeset, str]:
        d = self.cleaned_data
        fields: dict[str, Any] = {
            k: d.get(k) for k in ("first_name", "last_name", "phone", "email", "customer_id")
        }
        fields["birthday"] = d.get("birthday")
        fields["loyalty_enrolled"] = bool(d.get("loyalty"))
        source = EntrySource.MANUAL
        if d.get("signup_form"):
            fields["signup_form_id"] = d["signup_form"].pk
            source = EntrySource.SIGNUP_FORM
        changeset = Changeset(fields=fields, action="created")
        if d.get("favorite_store"):
            changeset.favorite_store = (d["favorite_store"].pk, "staff")
        if d.get("send_double_opt_in"):
            changeset.consents.append(ConsentOp(Channel.TEXT, "request_double_opt_in"))
        return changeset, source


class TraitsForm(forms.Form):
    """Standard traits plus the custom attribute rows (attr_key / attr_type / attr_value lists)."""

    first_name = forms.CharField(required=False, max_length=150)
    last_name = forms.CharField(required=False, max_length=150)
    phone = forms.CharField(required=False, max_length=40)
    email = forms.CharField(required=False, max_length=254)
    birthday = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    customer_id = forms.CharField(required=False, max_length=64, label="Customer ID")
    favorite_store = forms.ModelChoiceField(
        required=False, queryset=Store.objects.all(), empty_label="No favorite store"
    )
    loyalty = forms.BooleanField(required=False, label="Enrolled in loyalty")
    seen = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, persona: Any = None, **kwargs: Any) -> None:
        self.persona = persona
        super().__init__(*args, **kwargs)
        self.attribute_rows: list[dict[str, str]] = []
        self.attribute_errors: list[str] = []
        if self.is_bound:
            self.attribute_rows = _posted_rows(self.data)
        elif persona is not None:
            self.attribute_rows = [
                {"key": k, "type": attribute_type(v), "value": attribute_input(v)}
                for k, v in sorted((persona.attributes or {}).items())
            ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        seen_keys: set[str] = set()
        for row in self.attribute_rows:
            if not row["key"] and not row["value"]:
                continue
            if row["key"] in seen_keys:
                self.attribute_errors.append(f"“{row['key']}” appears twice.")
            seen_keys.add(row["key"])
            try:
                row["parsed"] = parse_typed(row["type"], row["value"])
            except ValidationError as exc:
                self.attribute_errors.append(f"{row['key'] or 'New attribute'}: {exc.messages[0]}")
        if self.attribute_errors:
            raise ValidationError("Check the custom attributes below.")
        return data

    def to_changeset(self) -> Changeset:
        """Only what the user changed, compared with what the form showed (``seen``), so a
        concurrent edit of another trait or attribute is kept, and one of the same is refused."""
        d = self.cleaned_data
        persona = self.persona
        seen = _load_seen(d.get("seen") or "") or json.loads(seen_snapshot(persona))
        fields: dict[str, Any] = {}
        expected: dict[str, Any] = {}
        for name in ("first_name", "last_name", "phone", "email", "customer_id", "birthday"):
            if _differs(d.get(name), seen.get(name)):
                fields[name] = d.get(name)
                expected[name] = seen.get(name)
        if bool(d.get("loyalty")) != persona.loyalty_enrolled:
            fields["loyalty_enrolled"] = bool(d.get("loyalty"))
        base = seen.get("attributes") if isinstance(seen.get("attributes"), dict) else {}
        wanted = {
            row["key"]: row["parsed"]
            for row in self.attribute_rows
            if row["key"] and "parsed" in row
        }
        set_ops = [
            AttributeOp(k, v)
            for k, v in wanted.items()
            if k not in base or base[k] != v or type(base[k]) is not type(v)
        ]
        removes = [k for k in base if k not in wanted]
        for key in [op.key for op in set_ops] + removes:
            expected[f"attr:{key}"] = base.get(key)
        store = d.get("favorite_store")
        changeset = Changeset(
            fields=fields, set=set_ops, remove=removes, expected=expected, action="traits edited"
        )
        if (store.pk if store else None) != persona.favorite_store_id:
            changeset.favorite_store = (store.pk if store else None, "staff")
        return changeset


def _differs(new: Any, seen: Any) -> bool:
    if isinstance(new, dt.date):
        new = new.isoformat()
    if isinstance(new, str):
        new = new.strip()
    return (new or None) != (seen or None)


def seen_snapshot(persona: Any) -> str:
    """What the editor saw, so a stale save can be detected (keys compared only when edited)."""
    snap = {
        "first_name": persona.first_name,
        "last_name": persona.last_name,
        "phone": persona.phone,
        "email": persona.email,
        "customer_id": persona.customer_id,
        "birthday": persona.birthday.isoformat() if persona.birthday else None,
        "attributes": persona.attributes or {},
    }
    return json.dumps(snap)


def _load_seen(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _posted_rows(data: QueryDict) -> list[dict[str, str]]:
    keys = data.getlist("attr_key")
    types = data.getlist("attr_type")
    values = data.getlist("attr_value")
    rows = []
    for i, key in enumerate(keys):
        rows.append(
            {
                "key": key.strip(),
                "type": types[i] if i < len(types) else "text",
                "value": values[i] if i < len(values) else "",
            }
        )
    return rows


def attribute_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str) and len(value) == 10:
        try:
            dt.date.fromisoformat(value)
            return "date"
        except ValueError:
            pass
    return "text"


def attribute_input(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_typed(kind: str, raw: str) -> Any:
    raw = raw.strip() if kind != "text" else raw
    if kind == "text":
        return raw
    if kind == "null":
        return None
    if kind == "boolean":
        lowered = raw.lower()
        if lowered in {"true", "yes", "1", "y", "on"}:
            return True
        if lowered in {"false", "no", "0", "n", "off", ""}:
            return False
        raise ValidationError("enter true or false.")
    if kind == "number":
        try:
            number = float(raw)
        except ValueError as exc:
            raise ValidationError("enter a number.") from exc
        return int(number) if number.is_integer() and "." not in raw else number
    if kind == "date":
        try:
            return dt.date.fromisoformat(raw).isoformat()
        except ValueError as exc:
            raise ValidationError("enter a date as YYYY-MM-DD.") from exc
    raise ValidationError("unknown type.")


class ArchiveForm(forms.Form):
    reason = forms.CharField(
        max_length=200,
        label="Reason",
        help_text="For example: duplicate profile, customer asked, test record.",
    )


class PointsAdjustForm(forms.Form):
    points = forms.IntegerField(
        label="Points", help_text="Positive to add, negative to remove.", min_value=-1_000_000
    )
    reason = forms.CharField(max_length=200, label="Reason")

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise ValidationError("Enter a number other than zero.")
        if points > 1_000_000:
            raise ValidationError("That is more than one adjustment may add.")
        return points


class MergeForm(forms.Form):
    """The merge slide-out's request (GET while choosing, POST to merge): the other persona
    (``other``) or a search for one (``q``); which of the two survives (``survivor``: the other
    persona's id, else this one); per field whose value to keep (``choice_<field>``: the merged
    persona's id, else the survivor's); and ``confirm``. Nothing is required and nothing is
    refused (what is not understood is left out), so the form is always valid."""

    # Plain fields: each value as sent, with no validator to refuse it.
    other = forms.Field(required=False)
    q = forms.Field(required=False)
    survivor = forms.Field(required=False)
    confirm = forms.Field(required=False)

    def __init__(self, data: QueryDict, *, persona: Persona, user: Any) -> None:
        super().__init__(data)
        self.persona = persona
        self.user = user

    def clean_other(self) -> Persona | None:
        """One this user may see, not this persona, neither erased nor merged away."""
        other_id = self.cleaned_data["other"] or ""
        if not (other_id.isdigit() and int(other_id) != self.persona.pk):
            return None
        return (
            visible_personas(self.user)
            .exclude(status__in=[PersonaStatus.ERASED, PersonaStatus.MERGED])
            .filter(pk=int(other_id))
            .first()
        )

    def clean_q(self) -> str:
        return (self.cleaned_data["q"] or "").strip()[:200]

    def clean_confirm(self) -> bool:
        return bool(self.cleaned_data["confirm"])

    def clean(self) -> dict[str, Any]:
        """With an other persona: ``survivor`` and ``merged`` (personas) and ``choices``
        (field → "survivor" or "merged"); without one, None, None and {}."""
        data = super().clean()
        other = data.get("other")
        survivor = merged = None
        choices: dict[str, str] = {}
        if other is not None:
            if data.get("survivor") == str(other.pk):
                survivor, merged = other, self.persona
            else:
                survivor, merged = self.persona, other
            choices = {
                key.removeprefix("choice_"): "merged" if value == str(merged.pk) else "survivor"
                for key, value in self.data.items()
                if key.startswith("choice_")
            }
        data.update(survivor=survivor, merged=merged, choices=choices)
        return data

    def candidates(self) -> list[Persona]:
        """While no other persona is picked: up to ten the search finds, this one left out."""
        q, other = self.cleaned_data["q"], self.cleaned_data["other"]
        if not q or other is not None:
            return []
        search = search_candidates(user=self.user, query=q)
        ids = [i for i in (search.ids or []) if i != self.persona.pk][:10]
        return list(Persona.objects.filter(pk__in=ids))


class SignupFormSettingsForm(forms.ModelForm):
    fields_asked = forms.MultipleChoiceField(
        label="Ask for",
        choices=[
            ("first_name", "First name"),
            ("last_name", "Last name"),
            ("email", "Email"),
            ("birthday", "Birthday"),
            ("favorite_store", "Favorite store"),
        ],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="The mobile phone number is always asked.",
    )

    class Meta:
        model = SignupForm
        fields = [
            "name",
            "slug",
            "store",
            "fields_asked",
            "enrolls_loyalty",
            "ask_email_opt_in",
            "ask_text_opt_in",
            "email_double_opt_in",
            "consent_text",
            "is_active",
        ]
        labels = {
            "enrolls_loyalty": "Enroll in loyalty",
            "ask_email_opt_in": "Ask for email opt-in",
            "ask_text_opt_in": "Ask for SMS opt-in",
            "email_double_opt_in": "Email opt-in needs a confirmation link",
            "consent_text": "Consent wording shown to the customer",
            "is_active": "Accepting signups",
        }
        help_texts = {"slug": "Part of the public address: /signup/<slug>/"}


class InviteForm(forms.Form):
    email = forms.CharField(label="Email", max_length=254)  # the service checks and explains it
    role = forms.ChoiceField(
        label="Role",
        choices=[("", "Choose a role")] + [(r, r) for r in ROLES],
        error_messages={
            "required": "Choose a role.",
            "invalid_choice": "That is not a role. Choose one of: " + ", ".join(ROLES) + ".",
        },
    )
