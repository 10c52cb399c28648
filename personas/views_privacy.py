"""Privacy pages: the staff erase action, Settings › Data & Privacy, the public data-controls page.

The public page never says whether a phone or email is known: it sends codes to whatever the
customer proves they own and always answers the same way; the deletion itself runs as a
background task after the codes are verified.
"""

from __future__ import annotations

import hashlib

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from . import selectors
from .client import request_client_address
from .forms_privacy import CodeForm, DataRequestForm, EraseForm
from .models import ErasureRequest
from .roles import Cap, require_cap
from .services import otp, privacy
from .services.changes import Actor
from .views import _drawer

_SESSION_KEY = "privacy_challenge"
PURPOSE = "erase"


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
        response = redirect("personas:list")
        if getattr(request, "htmx", False):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = reverse("personas:list")
        return response
    return _drawer(
        request,
        title="Full opt-out + data deletion",
        body="personas/privacy/_erase_form.html",
        context={"form": form, "persona": persona},
        close_url=persona.get_absolute_url(),
    )


@require_cap(Cap.SETTINGS)
@require_http_methods(["GET"])
def privacy_settings(request: HttpRequest) -> HttpResponse:
    public_url = request.build_absolute_uri(reverse("personas:data_controls"))
    return render(
        request,
        "personas/privacy/settings.html",
        {"public_url": public_url, "requests": ErasureRequest.objects.all()[:100]},
    )


# ---------------------------------------------------------------------------------------------
# Public data-controls page (no login)


def _client_key(request: HttpRequest) -> str:
    """The rate-limit key of the client address (personas.client: the rightmost hop that is
    not one of our PERSONAS_TRUSTED_PROXY_COUNT proxies, never an entry the client wrote)."""
    address = request_client_address(request)
    return hashlib.sha256(address.encode()).hexdigest()[:32]


@require_http_methods(["GET", "POST"])
def data_controls(request: HttpRequest) -> HttpResponse:
    form = DataRequestForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        identifiers = form.identifiers()
        try:
            otp.check_rate(client=_client_key(request), identifiers=identifiers, purpose=PURPOSE)
        except otp.RateLimited as exc:
            form.add_error(None, exc.messages[0])
        else:
            challenge = otp.start(
                identifiers, purpose=PURPOSE, purpose_label="confirm your data deletion"
            )
            request.session[_SESSION_KEY] = challenge.pk
            return redirect("personas:data_controls_verify")
    status = 429 if form.errors.get("__all__") and "Too many" in str(form.errors) else 200
    return render(request, "personas/privacy/public_request.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
def data_controls_verify(request: HttpRequest) -> HttpResponse:
    challenge_id = request.session.get(_SESSION_KEY)
    kinds = _pending_kinds(challenge_id)
    if not kinds:
        messages.info(request, "Your code has expired or was used. Start again below.")
        return redirect("personas:data_controls")
    form = CodeForm(request.POST if request.method == "POST" else None, kinds=kinds)
    if request.method == "POST" and form.is_valid():
        try:
            challenge = otp.verify(challenge_id, PURPOSE, form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
        else:
            from .tasks import erase_verified_request

            request.session.pop(_SESSION_KEY, None)
            transaction.on_commit(lambda: erase_verified_request.enqueue(challenge.pk))
            return redirect("personas:data_controls_done")
    return render(
        request,
        "personas/privacy/public_verify.html",
        {"form": form, "kinds": kinds},
    )


def _pending_kinds(challenge_id: int | None) -> list[str]:
    from .models import VerificationChallenge

    if not isinstance(challenge_id, int):
        return []
    challenge = VerificationChallenge.objects.filter(
        pk=challenge_id, purpose=PURPOSE, verified_at__isnull=True
    ).first()
    return list(challenge.code_hashes) if challenge else []


@require_http_methods(["GET"])
def data_controls_done(request: HttpRequest) -> HttpResponse:
    return render(request, "personas/privacy/public_done.html")
