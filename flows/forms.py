from __future__ import annotations

from typing import Any

from django import forms

from personas.models import EntrySource, SignupForm

from .definition import (
    CHANNELS,
    SPLIT_OPERATORS,
    STEP_TYPES,
    events_for,
    step_name_problem,
    template_problems,
)
from .services import TRIGGER_TYPES

LINES_HELP = "One per line: key = value (values may use Liquid, e.g. {{persona.first_name}})."


def _pairs(text: str) -> list[dict[str, str]]:
    out = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        key, _, value = line.partition("=")
        out.append({"key": key.strip(), "value": value.strip()})
    return out


def _lines(items: list[dict[str, Any]]) -> str:
    return "\n".join(f"{i.get('key', '')} = {i.get('value', '')}" for i in items or [])


class FlowForm(forms.Form):
    name = forms.CharField(max_length=120)
    trigger_type = forms.ChoiceField(label="Starts when", choices=list(TRIGGER_TYPES.items()))
    source = forms.ChoiceField(
        label="Created from",
        required=False,
        choices=[("", "Any source"), *EntrySource.choices],
    )
    signup_form = forms.ModelChoiceField(
        label="Signup form",
        required=False,
        queryset=SignupForm.objects.all(),
        empty_label="Any signup form",
    )
    key = forms.CharField(label="Attribute key", required=False, max_length=64)
    value = forms.CharField(label="Attribute value (optional)", required=False, max_length=200)
    channel = forms.ChoiceField(
        label="Channel", required=False, choices=[("", "Any channel"), *[(c, c) for c in CHANNELS]]
    )
    reentry = forms.ChoiceField(
        label="Re-entry", choices=[("once", "Once per persona"), ("each", "Each time")]
    )

    def trigger(self) -> dict[str, Any]:
        d = self.cleaned_data
        kind = d["trigger_type"]
        trigger: dict[str, Any] = {"type": kind}
        if kind == "persona_created":
            if d.get("source"):
                trigger["source"] = d["source"]
            if d.get("signup_form"):
                trigger["source"] = "signup_form"
                trigger["signup_form_id"] = d["signup_form"].pk
        elif kind == "attribute_changed":
            trigger["key"] = d.get("key", "").strip()
            if d.get("value"):
                trigger["value"] = d["value"]
        elif kind == "consent_changed" and d.get("channel"):
            trigger["channel"] = d["channel"]
        return trigger


class AddStepForm(forms.Form):
    step_type = forms.ChoiceField(
        label="Step type", choices=[(k, v["label"]) for k, v in STEP_TYPES.items()]
    )
    name = forms.CharField(
        label="Step name",
        required=False,
        max_length=64,
        help_text="Letters, digits and _ ; leave empty for a generated name.",
    )

    def clean_name(self) -> str:
        return _clean_step_name(self.cleaned_data.get("name", ""), required=False)


# The properties each step type's form edits (the rest of a step's properties are kept).
EDITED_KEYS = {
    "persona-update": ("add", "set", "remove", "force_opt_out"),
    "update-profile-traits": ("profile_connect_sid", "traits", "profile_connector_instance"),
    "look-up-profile": ("identifier",),
    "split-based-on": ("input", "conditions"),
    "wait": ("until_time", "amount", "unit"),
    "set-variables": ("variables",),
    "send-message": ("channel", "body"),
}


def _clean_step_name(value: str, *, required: bool) -> str:
    name = (value or "").strip()
    if (name or required) and (problem := step_name_problem(name)):
        raise forms.ValidationError(problem)
    return name


class StepForm(forms.Form):
    """The properties of one step, by type, plus where each transition goes. Its templates
    are checked as the flow will run them: a problem is shown on its field, and the step is
    not saved until it is fixed."""

    name = forms.CharField(label="Step name", max_length=64)

    def clean_name(self) -> str:
        return _clean_step_name(self.cleaned_data.get("name", ""), required=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        state = {**self.state, "properties": self.properties()}
        for field, problem in template_problems(state, set(self.step_names) | {data["name"]}):
            target = field if field in self.fields else None
            self.add_error(target, problem)
        return data

    def __init__(self, *args: Any, state: dict[str, Any], step_names: list[str], **kwargs: Any):
        props = state.get("properties") or {}
        kind = state["type"]
        initial = {"name": state["name"]}
        super().__init__(*args, initial=initial, **kwargs)
        self.state = state
        self.step_names = list(step_names)
        f = self.fields
        if kind == "persona-update":
            f["add"] = forms.CharField(
                label="Add custom attributes",
                required=False,
                widget=forms.Textarea(attrs={"rows": 3}),
                help_text=LINES_HELP,
                initial=_lines(props.get("add")),
            )
            f["set"] = forms.CharField(
                label="Set custom attributes",
                required=False,
                widget=forms.Textarea(attrs={"rows": 3}),
                help_text=LINES_HELP,
                initial=_lines(props.get("set")),
            )
            f["remove"] = forms.CharField(
                label="Delete custom attributes",
                required=False,
                widget=forms.Textarea(attrs={"rows": 2}),
                help_text="One key per line.",
                initial="\n".join(i.get("key", "") for i in props.get("remove", []) or []),
            )
            f["force_opt_out"] = forms.MultipleChoiceField(
                label="Force channel opt-out",
                required=False,
                widget=forms.CheckboxSelectMultiple,
                choices=[(c, c.capitalize()) for c in CHANNELS],
                initial=props.get("force_opt_out", []),
            )
        elif kind == "update-profile-traits":
            f["profile_connect_sid"] = forms.CharField(
                label="Profile Connect SID",
                initial=props.get("profile_connect_sid", ""),
                help_text="e.g. {{widgets.look_up_profile_1.ProfileData.profileConnectSid}} "
                "or {{trigger.persona.id}}",
            )
            f["traits"] = forms.CharField(
                label="Traits",
                widget=forms.Textarea(attrs={"rows": 4}),
                help_text=LINES_HELP
                + " Standard traits (first_name, email, phone…) update that field.",
                initial=_lines(props.get("traits")),
            )
            f["profile_connector_instance"] = forms.CharField(
                label="Profile connector instance (optional)",
                required=False,
                initial=props.get("profile_connector_instance", ""),
            )
        elif kind == "look-up-profile":
            f["identifier"] = forms.CharField(
                label="Find by (phone, email, customer ID or persona id)",
                initial=props.get("identifier", ""),
            )
        elif kind == "split-based-on":
            f["input"] = forms.CharField(
                label="Value to test",
                initial=props.get("input", ""),
                help_text="e.g. {{persona.attributes.tier}}",
            )
            f["conditions"] = forms.CharField(
                label="Conditions (in order)",
                widget=forms.Textarea(attrs={"rows": 4}),
                help_text="One per line: operator: value. Operators: " + ", ".join(SPLIT_OPERATORS),
                initial="\n".join(
                    f"{c.get('operator')}: {c.get('value', '')}"
                    for c in props.get("conditions", []) or []
                ),
            )
        elif kind == "wait":
            f["amount"] = forms.IntegerField(
                label="Wait", min_value=1, required=False, initial=props.get("amount", 1)
            )
            f["unit"] = forms.ChoiceField(
                label="Unit",
                choices=[("minutes", "minutes"), ("hours", "hours"), ("days", "days")],
                initial=props.get("unit", "days"),
            )
            f["until_time"] = forms.CharField(
                label="…or until this time of day (store time)",
                required=False,
                initial=props.get("until_time", ""),
                help_text="e.g. 09:30; overrides the delay.",
            )
        elif kind == "set-variables":
            f["variables"] = forms.CharField(
                label="Variables",
                required=False,
                widget=forms.Textarea(attrs={"rows": 4}),
                help_text=LINES_HELP + " Later steps read them as {{flow.variables.KEY}}.",
                initial=_lines(props.get("variables")),
            )
        elif kind == "send-message":
            f["channel"] = forms.ChoiceField(
                label="Channel",
                choices=[("text", "Text"), ("email", "Email")],
                initial=props.get("channel", "text"),
            )
            f["body"] = forms.CharField(
                label="Message",
                widget=forms.Textarea(attrs={"rows": 4}),
                initial=props.get("body", ""),
                help_text="Liquid: {{persona.first_name}}…",
            )
        current = {t.get("event"): t.get("next", "") for t in state.get("transitions", []) or []}
        targets = [("", "End the run")] + [(n, n) for n in step_names if n != state["name"]]
        if kind == "split-based-on":
            targets.append((state["name"], state["name"] + " (loop)"))
        self.events = []
        for event in events_for(state):
            name = f"next__{event}"
            f[name] = forms.ChoiceField(
                label=f"On “{event}” go to",
                choices=targets,
                required=False,
                initial=current.get(event, ""),
            )
            self.events.append(event)

    def properties(self) -> dict[str, Any]:
        """The step's properties as edited, keeping what the editor does not show (a Studio
        export's ``offset``, ``to``, its kept sender settings…)."""
        edited = self._edited()
        kept = {
            k: v
            for k, v in (self.state.get("properties") or {}).items()
            if k not in EDITED_KEYS.get(self.state["type"], ())
        }
        return {**kept, **edited}

    def _edited(self) -> dict[str, Any]:
        d = self.cleaned_data
        kind = self.state["type"]
        if kind == "persona-update":
            return {
                "add": _pairs(d["add"]),
                "set": _pairs(d["set"]),
                "remove": [{"key": k.strip()} for k in d["remove"].splitlines() if k.strip()],
                "force_opt_out": list(d["force_opt_out"]),
            }
        if kind == "update-profile-traits":
            props = {
                "profile_connect_sid": d["profile_connect_sid"].strip(),
                "traits": _pairs(d["traits"]),
            }
            if d.get("profile_connector_instance"):
                props["profile_connector_instance"] = d["profile_connector_instance"].strip()
            return props
        if kind == "look-up-profile":
            return {"identifier": d["identifier"].strip()}
        if kind == "split-based-on":
            conditions = []
            for line in d["conditions"].splitlines():
                if line.strip():
                    op, _, value = line.partition(":")
                    conditions.append({"operator": op.strip(), "value": value.strip()})
            return {"input": d["input"].strip(), "conditions": conditions}
        if kind == "wait":
            if d.get("until_time"):
                return {"until_time": d["until_time"].strip()}
            return {"amount": d.get("amount") or 1, "unit": d["unit"]}
        if kind == "set-variables":
            return {"variables": _pairs(d["variables"])}
        return {"channel": d["channel"], "body": d["body"]}

    def transitions(self) -> dict[str, str]:
        return {e: self.cleaned_data.get(f"next__{e}") or "" for e in self.events}


class ImportForm(forms.Form):
    definition = forms.CharField(
        label="Flow JSON",
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false"}),
        help_text="An export of a flow, or a Studio-shaped definition "
        '{"initial_state", "states": [...]}.',
    )
