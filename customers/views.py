"""The customer's own pages (no staff login): the SMS webhook, signup forms and the email
confirmation link, the wallet, and the data controls.

Every change goes through the one mutation path with the customer as actor. The data-controls
page never says whether a phone or email is known: it sends codes to whatever the customer
proves they own and always answers the same way; the deletion itself runs as a background
task after the codes are verified.
"""

from __future__ import annotations

import hashlib
from xml.sax.saxutils import escape

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from personas.client import request_client_address
from personas.messaging.backends import inbound_request_allowed
from personas.models import (
    Channel,
    FavoriteStoreSource,
    Persona,
    PersonaStatus,
    SignupForm,
    VerificationChallenge,
)
from personas.services import email_confirm as email_confirmation
from personas.services import inbound, otp, signup
from personas.services.changes import (
    Actor,
    BlockedIdentifierError,
    ChangeError,
    Changeset,
    ConsentAction,
    ConsentOp,
    apply,
)
from personas.services.identity import customer_for, proven_kinds
from personas.services.privacy import parse_identifier
from personas.tasks import erase_verified_request

from .forms import CodeForm, DataRequestForm, PublicSignupForm, WalletStartForm, WalletStoreForm


def _client_key(request: HttpRequest) -> str:
    """The rate-limit key of the client address (personas.client: the rightmost hop that is
    not one of our PERSONAS_TRUSTED_PROXY_COUNT proxies, never an entry the client wrote)."""
    address = request_client_address(request)
    return hashlib.sha256(address.encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# Inbound SMS webhook (Twilio-compatible)


@csrf_exempt  # a provider's server posts here; the Twilio signature is its proof
@require_POST
def sms_inbound(request: HttpRequest) -> HttpResponse:
    if not inbound_request_allowed(request):  # the one rule, kept with the SMS backends
        return HttpResponseForbidden("Invalid signature.")
    sid = request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""
    if not sid:
        return HttpResponse("MessageSid is required.", status=400)
    result = inbound.handle(
        message_sid=sid, from_=request.POST.get("From", ""), body=request.POST.get("Body", "")
    )
    reply = f"<Message>{escape(result.reply)}</Message>" if result.reply else ""
    return HttpResponse(
        f'<?xml version="1.0" encoding="UTF-8"?><Response>{reply}</Response>',
        content_type="text/xml",
    )


# ---------------------------------------------------------------------------------------------
# Signup forms


def _limited(request: HttpRequest, scope: str) -> bool:
    limit, window = settings.PERSONAS_SIGNUP_RATE_PER_CLIENT
    return otp._hit(f"{scope}:client:{_client_key(request)}", limit, window)


@require_http_methods(["GET", "POST"])
def signup_page(request: HttpRequest, slug: str) -> HttpResponse:
    form_def = get_object_or_404(SignupForm.objects.select_related("store"), slug=slug)
    if not form_def.is_active:
        raise Http404("This signup form is closed.")
    data = request.POST if request.method == "POST" else None
    form = PublicSignupForm(data, signup_form=form_def)
    if data is not None:
        if _limited(request, "signup"):
            form.add_error(None, "Too many signups from here. Please try again later.")
            status = 429
            return render(
                request,
                "customers/signup.html",
                {"form": form, "signup": form_def},
                status=status,
            )
        if form.is_bot:
            return redirect("customers:signup_done", slug=slug)  # say nothing to a bot
        if form.is_valid():
            try:
                signup.submit(form_def, form.values())
            except BlockedIdentifierError:
                pass  # the same thanks: the page never tells who is on the blocklist
            except ChangeError as exc:
                for message in exc.messages:
                    form.add_error(None, message)
                return render(request, "customers/signup.html", {"form": form, "signup": form_def})
            return redirect("customers:signup_done", slug=slug)
    return render(request, "customers/signup.html", {"form": form, "signup": form_def})


@require_http_methods(["GET"])
def signup_done(request: HttpRequest, slug: str) -> HttpResponse:
    form_def = get_object_or_404(SignupForm, slug=slug)
    return render(request, "customers/signup_done.html", {"signup": form_def})


# ---------------------------------------------------------------------------------------------
# Wallet: the customer's own page, signed in with a one-time code

_WALLET_CHALLENGE = "wallet_challenge"
_WALLET_PERSONA = "wallet_persona"
# The digest of the identifier the customer proved with a code (no readable value in the
# session): what they may opt in to without a further confirmation.
_WALLET_PROVEN = "wallet_proven"
WALLET_CHANNELS = [
    (Channel.EMAIL, "Email"),
    (Channel.TEXT, "Text messages (SMS)"),
    (Channel.VOICE, "Phone calls"),
    (Channel.BROWSER, "Browser notifications"),
    (Channel.PUSH, "App notifications on this device"),
]


def _wallet_actor(request: HttpRequest, persona: Persona) -> Actor:
    """The customer, with the identifier they proved if the persona still holds it."""
    kinds = proven_kinds(persona, request.session.get(_WALLET_PROVEN))
    return Actor.customer("wallet", proven=kinds)


def _wallet_persona(request: HttpRequest) -> Persona | None:
    pid = request.session.get(_WALLET_PERSONA)
    if not isinstance(pid, int):
        return None
    return (
        Persona.objects.visible()
        .filter(pk=pid, status=PersonaStatus.ACTIVE)
        .select_related("favorite_store")
        .first()
    )


@require_http_methods(["GET", "POST"])
def wallet_start(request: HttpRequest) -> HttpResponse:
    if _wallet_persona(request):
        return redirect("customers:wallet")
    form = WalletStartForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            ident = parse_identifier(form.cleaned_data["identifier"])
            otp.check_rate(client=_client_key(request), identifiers=[ident], purpose="wallet")
        except otp.RateLimited as exc:
            form.add_error(None, exc.messages[0])
        except ValidationError as exc:
            form.add_error("identifier", exc.messages[0])
        else:
            challenge = otp.start([ident], purpose="wallet", purpose_label="sign in")
            request.session[_WALLET_CHALLENGE] = challenge.pk
            return redirect("customers:wallet_verify")
    return render(request, "customers/wallet_start.html", {"form": form})


@require_http_methods(["GET", "POST"])
def wallet_verify(request: HttpRequest) -> HttpResponse:
    challenge_id = request.session.get(_WALLET_CHALLENGE)
    challenge = (
        VerificationChallenge.objects.filter(
            pk=challenge_id, purpose="wallet", verified_at__isnull=True
        ).first()
        if isinstance(challenge_id, int)
        else None
    )
    if challenge is None:
        messages.info(request, "Your code expired or was used. Ask for a new one.")
        return redirect("customers:wallet_start")
    kinds = list(challenge.code_hashes)
    form = CodeForm(request.POST if request.method == "POST" else None, kinds=kinds)
    if request.method == "POST" and form.is_valid():
        try:
            challenge = otp.verify(challenge_id, "wallet", form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
        else:
            ident = otp.identifiers_of(challenge)[0]
            challenge.delete()
            request.session.pop(_WALLET_CHALLENGE, None)
            persona = customer_for(**{ident.kind: ident.value})
            if persona is None:
                return render(request, "customers/wallet_none.html")
            request.session.cycle_key()
            request.session[_WALLET_PERSONA] = persona.pk
            request.session[_WALLET_PROVEN] = [ident.kind, ident.digest]
            return redirect("customers:wallet")
    return render(request, "customers/wallet_verify.html", {"form": form, "kinds": kinds})


@require_http_methods(["GET"])
def wallet(request: HttpRequest) -> HttpResponse:
    persona = _wallet_persona(request)
    if persona is None:
        return redirect("customers:wallet_start")
    context = {
        "persona": persona,
        "purchases": persona.purchases.select_related("store")[:10],
        "store_form": WalletStoreForm(initial={"store": persona.favorite_store_id}),
        "channels": [
            {"channel": c, "label": label, "state": persona.consent(c)}
            for c, label in WALLET_CHANNELS
        ],
    }
    return render(request, "customers/wallet.html", context)


@require_POST
def wallet_store(request: HttpRequest) -> HttpResponse:
    persona = _wallet_persona(request)
    if persona is None:
        return redirect("customers:wallet_start")
    form = WalletStoreForm(request.POST)
    if form.is_valid():
        apply(
            persona,
            Changeset(
                favorite_store=(form.cleaned_data["store"].pk, FavoriteStoreSource.WALLET),
                action="favorite store chosen",
            ),
            _wallet_actor(request, persona),
        )
        messages.success(request, f"Your favorite store is now {form.cleaned_data['store'].name}.")
    else:
        messages.error(request, "Choose a store from the list.")
    return redirect("customers:wallet")


@require_POST
def wallet_consent(request: HttpRequest, channel: str) -> HttpResponse:
    persona = _wallet_persona(request)
    if persona is None:
        return redirect("customers:wallet_start")
    value = request.POST.get("value")
    if channel not in Channel.values or value not in ("on", "off"):
        messages.error(request, "That change was not understood; nothing changed.")
        return redirect("customers:wallet")
    action = ConsentAction.OPT_IN if value == "on" else ConsentAction.OPT_OUT
    actor = _wallet_actor(request, persona)
    proof = ", ".join(sorted(actor.proven)) or "an identifier the profile no longer holds"
    try:
        result = apply(
            persona,
            Changeset(
                consents=[ConsentOp(channel, action)],
                action="consent changed",
                evidence=f"Wallet, signed in with a one-time code sent to the {proof}",
            ),
            actor,
        )
    except ChangeError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        label = dict(WALLET_CHANNELS)[channel]
        if result.persona.consent(channel) == "pending":
            messages.success(
                request,
                f"{label}: we texted your number. Reply YES to that text to turn texts on.",
            )
        else:
            messages.success(request, f"{label}: {'on' if value == 'on' else 'off'}.")
    return redirect("customers:wallet")


@require_POST
def wallet_signout(request: HttpRequest) -> HttpResponse:
    request.session.pop(_WALLET_PERSONA, None)
    with transaction.atomic():
        request.session.cycle_key()
    messages.info(request, "You're signed out.")
    return redirect("customers:wallet_start")


@require_http_methods(["GET", "POST"])
def email_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link in an email double opt-in: GET asks, POST confirms (link scanners only GET)."""
    if request.method == "POST":
        persona = email_confirmation.confirm(token)
        context = {"persona": persona, "done": persona is not None}
    else:
        context = {"persona": email_confirmation.pending_for(token), "done": False}
    return render(request, "customers/email_confirm.html", context)


# ---------------------------------------------------------------------------------------------
# Data controls: the customer deletes their own data

_SESSION_KEY = "privacy_challenge"
PURPOSE = "erase"


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
            return redirect("customers:data_controls_verify")
    status = 429 if form.errors.get("__all__") and "Too many" in str(form.errors) else 200
    return render(request, "customers/data_controls.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
def data_controls_verify(request: HttpRequest) -> HttpResponse:
    challenge_id = request.session.get(_SESSION_KEY)
    kinds = _pending_kinds(challenge_id)
    if not kinds:
        messages.info(request, "Your code has expired or was used. Start again below.")
        return redirect("customers:data_controls")
    form = CodeForm(request.POST if request.method == "POST" else None, kinds=kinds)
    if request.method == "POST" and form.is_valid():
        try:
            challenge = otp.verify(challenge_id, PURPOSE, form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
        else:
            request.session.pop(_SESSION_KEY, None)
            transaction.on_commit(lambda: erase_verified_request.enqueue(challenge.pk))
            return redirect("customers:data_controls_done")
    return render(
        request,
        "customers/data_controls_verify.html",
        {"form": form, "kinds": kinds},
    )


def _pending_kinds(challenge_id: int | None) -> list[str]:
    if not isinstance(challenge_id, int):
        return []
    challenge = VerificationChallenge.objects.filter(
        pk=challenge_id, purpose=PURPOSE, verified_at__isnull=True
    ).first()
    return list(challenge.code_hashes) if challenge else []


@require_http_methods(["GET"])
def data_controls_done(request: HttpRequest) -> HttpResponse:
    return render(request, "customers/data_controls_done.html")
