from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat

from .csvfile import DELIMITERS, ENCODINGS
from .formats import ATTRIBUTE_TYPES, DATE_ORDERS, NUMBER_STYLES, Hints
from .mapping import MATCH_KEYS, TARGETS, attribute_key_for, column_format
from .models import ImportJob, SavedMapping
from .pipeline import _shown
from .uploads import limit_message

ENCODING_CHOICES = [("", "Detect automatically"), *ENCODINGS.items()]
DELIMITER_CHOICES = [("", "Detect automatically"), *DELIMITERS.items()]
TARGET_CHOICES = [
    ("", "Don't import"),
    ("attr", "Custom attribute"),
    *[(key, label) for key, (label, _kind) in TARGETS.items()],
]


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file or spreadsheet",
        help_text=(
            "CSV: UTF-8, UTF-16 or Windows-1252; comma, semicolon or tab separated. "
            "Excel or OpenDocument (.xlsx, .xls, .ods): the first sheet is read."
        ),
    )
    encoding = forms.ChoiceField(label="Encoding", choices=ENCODING_CHOICES, required=False)
    delimiter = forms.ChoiceField(label="Delimiter", choices=DELIMITER_CHOICES, required=False)

    def __init__(self, *args: Any, too_large: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = filesizeformat(settings.IMPORTS_MAX_BYTES)
        columns = settings.IMPORTS_MAX_COLUMNS
        self.fields["file"].help_text += f" Up to {limit} and {columns:,} columns."
        if too_large:  # SizeLimitUploadHandler stopped the file: say why it is missing
            self.fields["file"].error_messages["required"] = limit_message()


def _match_key_field(ordinal: str) -> forms.ChoiceField:
    """One of the three match-key selects. They sit in one line under the legend "Match rows
    to existing personas by", so each carries its own accessible name."""
    label = f"{ordinal} match key"
    return forms.ChoiceField(
        label=label,
        choices=list(MATCH_KEYS.items()),
        widget=forms.Select(attrs={"aria-label": label}),
    )


class MappingForm(forms.Form):
    """One "map to" choice (and custom attribute key) per column, plus the import's choices."""

    saved_mapping = forms.ModelChoiceField(
        label="Use a saved mapping",
        queryset=SavedMapping.objects.all(),
        required=False,
        empty_label="—",
    )
    match_1 = _match_key_field("First")
    match_2 = _match_key_field("Second")
    match_3 = _match_key_field("Third")
    existing = forms.ChoiceField(
        label="When a row matches an existing persona",
        choices=ImportJob.Existing.choices,
        widget=forms.RadioSelect,
    )
    double_opt_in = forms.ChoiceField(
        label="Double opt-in texts for rows that opt in to SMS",
        choices=ImportJob.DoubleOptIn.choices,
        widget=forms.RadioSelect,
    )
    double_opt_in_at = forms.DateTimeField(
        label="Send at",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )
    encoding = forms.ChoiceField(label="Encoding", choices=list(ENCODINGS.items()))
    delimiter = forms.ChoiceField(label="Delimiter", choices=list(DELIMITERS.items()))
    save_as = forms.CharField(
        label="Save this mapping as",
        required=False,
        max_length=120,
        help_text="Optional: reuse it for the next file from the same system.",
    )

    def __init__(self, *args: Any, job: ImportJob, **kwargs: Any) -> None:
        initial = kwargs.setdefault("initial", {})
        keys = (job.match_keys + list(MATCH_KEYS))[:3]
        initial.setdefault("match_1", keys[0])
        initial.setdefault("match_2", keys[1])
        initial.setdefault("match_3", keys[2])
        initial.setdefault("existing", job.existing)
        initial.setdefault("double_opt_in", job.double_opt_in)
        initial.setdefault("double_opt_in_at", job.double_opt_in_at)
        initial.setdefault("encoding", job.encoding)
        initial.setdefault("delimiter", job.delimiter)
        super().__init__(*args, **kwargs)
        self.job = job
        if len(job.sheets) > 1 and job.workbook:
            self.fields["sheet"] = forms.ChoiceField(
                label="Sheet",
                choices=[(name, name) for name in job.sheets],
                initial=job.sheet,
                help_text="The workbook has several sheets: choose the one to import.",
            )
        self.columns = []
        hints = Hints(delimiter=job.delimiter)
        for index, header in enumerate(job.headers):
            target = job.mapping.get(str(index), "")
            choice = "attr" if target.startswith("attr:") else target
            key = target[5:] if target.startswith("attr:") else attribute_key_for(header)
            self.fields[f"col_{index}"] = forms.ChoiceField(
                label=f"Map “{header}” to", choices=TARGET_CHOICES, required=False, initial=choice
            )
            self.fields[f"key_{index}"] = forms.CharField(
                label=f"Custom attribute key for “{header}”",
                required=False,
                max_length=64,
                initial=key,
            )
            samples = [row[index] for row in job.sample if index < len(row) and row[index]][:3]
            self.columns.append(
                {
                    "index": index,
                    "header": header,
                    "samples": samples,
                    "select": self[f"col_{index}"],
                    "key": self[f"key_{index}"],
                    **self._format_fields(index, header, target, hints),
                }
            )

    def _format_fields(self, index: int, header: str, target: str, hints: Hints) -> dict:
        """How the column is read, with a choice where it matters: the type of a custom
        attribute, the number style of a number column, the date order of a date column.
        The first option is what the file shows ("as detected"); a column whose values leave
        the order open says so and asks."""
        if not target:
            return {}
        choice = (self.job.formats or {}).get(str(index), {})
        profile = (self.job.profile or {}).get(str(index))
        resolved = column_format(target, profile, choice, hints)
        detected = column_format(target, profile, {}, hints)
        fmt = resolved.format
        out: dict[str, Any] = {"format": fmt, "ambiguous": resolved.ambiguous}
        asks: list[tuple[str, str, str, dict[str, str]]] = []  # name, label, detected, options
        if target.startswith("attr:"):
            kind = ATTRIBUTE_TYPES.get(detected.format.kind, "Text")
            asks.append(("type", f"Store “{header}” as", f"{kind} (detected)", ATTRIBUTE_TYPES))
        if fmt.kind in ("number", "whole"):
            style = f"{NUMBER_STYLES[detected.format.numbers]} (detected)"
            asks.append(("numbers", f"Numbers in “{header}” written", style, NUMBER_STYLES))
        if fmt.kind == "date":
            order = DATE_ORDERS[detected.format.dates]
            order += " (the file doesn't say: check)" if detected.ambiguous else " (detected)"
            asks.append(("dates", f"Dates in “{header}” written", order, DATE_ORDERS))
        for name, label, first, options in asks:
            self.fields[f"{name}_{index}"] = forms.ChoiceField(
                label=label,
                choices=[("", first), *options.items()],
                required=False,
                initial=choice.get(name, ""),
            )
            out[name] = self[f"{name}_{index}"]
        if out.get("type") or out.get("numbers") or out.get("dates"):
            out["previews"] = self._previews(index, fmt)
        return out

    def _previews(self, index: int, fmt: Any) -> list[tuple[str, str]]:
        pairs = []
        profile = (self.job.profile or {}).get(str(index)) or {}
        values = [*(profile.get("proofs") or {}).values(), *profile.get("examples", [])]
        for value in list(dict.fromkeys(values))[:3]:
            try:
                pairs.append((value, _shown(fmt.read(value))))
            except ValidationError as exc:
                pairs.append((value, f"not read: {exc.messages[0]}"))
        return pairs

    def clean(self) -> dict:
        data = super().clean()
        keys = [data.get("match_1"), data.get("match_2"), data.get("match_3")]
        if len(set(keys)) != 3:
            self.add_error("match_2", "Choose each match key once.")
        return data

    def mapping(self) -> dict[str, str]:
        out = {}
        for column in self.columns:
            i = column["index"]
            choice = self.cleaned_data.get(f"col_{i}") or ""
            if choice == "attr":
                key = (self.cleaned_data.get(f"key_{i}") or "").strip()
                out[str(i)] = f"attr:{key or attribute_key_for(column['header'])}"
            else:
                out[str(i)] = choice
        return out

    def formats(self) -> dict[str, dict[str, str]]:
        """The answers on how to read columns: ``{"3": {"numbers": "comma"}}``."""
        out: dict[str, dict[str, str]] = {}
        for column in self.columns:
            i = column["index"]
            answers = {
                name: self.cleaned_data.get(f"{name}_{i}") or ""
                for name in ("type", "numbers", "dates")
                if f"{name}_{i}" in self.fields
            }
            answers = {k: v for k, v in answers.items() if v}
            if answers:
                out[str(i)] = answers
        return out

    def match_keys(self) -> list[str]:
        return [self.cleaned_data[f"match_{n}"] for n in (1, 2, 3)]

    def choices(self) -> dict[str, Any]:
        """Everything ``services.configure`` takes from the page, as its keyword arguments."""
        data = self.cleaned_data
        return {
            "mapping": self.mapping(),
            "match_keys": self.match_keys(),
            "existing": data["existing"],
            "double_opt_in": data["double_opt_in"],
            "double_opt_in_at": data.get("double_opt_in_at"),
            "encoding": data["encoding"],
            "delimiter": data["delimiter"],
            "save_as": data.get("save_as", "").strip(),
            "formats": self.formats(),
            "sheet": data.get("sheet", ""),
        }


class SendDoubleOptInForm(forms.Form):
    when = forms.ChoiceField(
        choices=[("now", "Now"), ("at", "At a chosen time")],
        widget=forms.RadioSelect,
        initial="now",
    )
    at = forms.DateTimeField(
        label="Send at",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("when") == "at" and not data.get("at"):
            self.add_error("at", "Choose when to send the texts.")
        return data
