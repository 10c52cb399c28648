"""Privacy pages for staff: the erase action (full opt-out and data deletion) and Settings ›
Data & Privacy. The customer's own data controls are in ``customers``."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from .. import selectors
from ..forms_privacy import EraseForm
from ..htmx import client_redirect, drawer
from ..models import ErasureRequest
from ..roles import Cap, require_cap
from ..services import privacy
from ..services.changes import Actor


@require_cap(Cap.ERASE)
@require_http_methods(["GET", "POST"])
def persona_erase(request: HttpRequest, pk: int) -> HttpResponse:
    persona = selectors.persona_for_staff(user=request.user, pk=pk)
    form = EraseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            privacy.erase(
                persona,
                actor=Actor.staff(request.user),
                via=ErasureRequest.Via.STAFF,
                requested_by=request.user,
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect(persona)
        messages.success(
            request,
            "The customer was opted out of everything and their personal data was deleted. "
            "Their phone and email are blocklisted.",
        )
        if getattr(request, "htmx", False):
            return client_redirect(reverse("personas:list"))
        return redirect("personas:list")
    return drawer(
        request,
        title="Full opt-out + data deletion",
        body="personas/privacy/_erase_form.html",
        context={"form": form, "persona": persona},
        close_url=persona.get_absolute_url(),
    )


@require_cap(Cap.SETTINGS)
@require_http_methods(["GET"])
def privacy_settings(request: HttpRequest) -> HttpResponse:
    public_url = request.build_absolute_uri(reverse("customers:data_controls"))
    return render(
        request,
        "personas/privacy/settings.html",
        {"public_url": public_url, "requests": ErasureRequest.objects.all()[:100]},
    )
