"""Settings › Signup forms, and the compliance exports (consent history, personas with consents)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from . import search_memo, selectors
from .forms import ListFilterForm
from .forms_public import SignupFormSettingsForm
from .models import SignupForm
from .roles import Cap, require_cap


@require_cap(Cap.SETTINGS)
@require_http_methods(["GET"])
def signup_forms(request: HttpRequest) -> HttpResponse:
    forms = SignupForm.objects.select_related("store")
    return render(request, "personas/settings/signup_forms.html", {"signup_forms": forms})


@require_cap(Cap.SETTINGS)
@require_http_methods(["GET", "POST"])
def signup_form_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    instance = get_object_or_404(SignupForm, pk=pk) if pk else None
    form = SignupFormSettingsForm(
        request.POST if request.method == "POST" else None, instance=instance
    )
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Signup form “{saved.name}” saved.")
        return redirect("personas:signup_forms")
    return render(
        request, "personas/settings/signup_form_edit.html", {"form": form, "instance": instance}
    )


def _escape(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_stream(header: list[str], rows: Iterator[list]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield "\ufeff" + buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate(0)
        writer.writerow([_escape(v) for v in row])
        yield buffer.getvalue()


def _download(stream: Iterator[str], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_cap(Cap.EXPORT)
@require_http_methods(["GET"])
def consent_history_export(request: HttpRequest, pk: int) -> HttpResponse:
    persona = selectors.persona_for_staff(user=request.user, pk=pk)
    rows = (
        [
            c.created_at.isoformat(),
            c.channel,
            c.before,
            c.after,
            c.hard,
            c.actor_kind,
            c.actor_label,
        ]
        for c in persona.consent_changes.order_by("created_at", "id").iterator()
    )
    header = ["when", "channel", "before", "after", "hard opt-out", "actor", "by"]
    return _download(_csv_stream(header, rows), f"persona-{persona.pk}-consent-history.csv")


@require_cap(Cap.EXPORT)
@require_http_methods(["GET"])
def personas_export(request: HttpRequest) -> HttpResponse:
    """The current list (filters and search applied) with the consent column set."""
    lq = ListFilterForm(search_memo.resolve(request).data).to_query()
    qs = selectors.filtered_personas(user=request.user, lq=lq)
    header = [
        "id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "phone_extension",
        "customer_id",
        "birthday",
        "loyalty_enrolled",
        "points",
        "entry_source",
        "created_at",
        "text_consent",
        "email_consent",
        "voice_consent",
        "push_consent",
        "browser_consent",
    ]
    rows = (
        [
            p.pk,
            p.first_name,
            p.last_name,
            p.email,
            p.phone,
            p.phone_ext,
            p.customer_id,
            p.birthday,
            p.loyalty_enrolled,
            p.points_balance,
            p.entry_source,
            p.created_at.isoformat(),
            p.text_consent,
            p.email_consent,
            p.voice_consent,
            p.push_consent,
            p.browser_consent,
        ]
        for p in qs.order_by("-id").iterator(chunk_size=2000)
    )
    return _download(_csv_stream(header, rows), "personas.csv")
