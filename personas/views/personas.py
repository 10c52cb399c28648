"""Staff pages for personas. Views parse, call one service or selector, render.

Slide-outs (create, edit traits, archive, adjust points) render as a drawer fragment for htmx
and as a full page when opened directly, so every action works with a plain link and form.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh, push_url, replace_url

from .. import search_memo, selectors, tabs
from ..forms import (
    ATTRIBUTE_TYPES,
    ArchiveForm,
    ListFilterForm,
    PersonaCreateForm,
    PointsAdjustForm,
    TraitsForm,
    seen_snapshot,
)
from ..htmx import client_redirect, drawer, is_partial
from ..models import Channel, ConsentState, MergeRecord, PointsEntry, SignupForm, Store
from ..roles import Cap, require_cap
from ..services import changes
from ..services.changes import (
    Actor,
    Changeset,
    ConsentAction,
    ConsentOp,
    DuplicatePersonaError,
    PointsOp,
)
from ..services.merge import duplicate_hint
from . import back_to
from .merge import merge_lookup_redirect

# The profile's own tabs; apps add theirs after these (personas.tabs).
OWN_TABS = {
    "general": "General",
    "points": "Points",
    "purchases": "Purchases",
    "activity": "Activity",
}


def _error_text(exc: ValidationError) -> list[str]:
    return list(exc.messages)


# ---------------------------------------------------------------------------------------------
# List and search


@require_cap(Cap.MANAGE_PERSONAS)
@require_http_methods(["GET", "POST"])
def persona_list(request: HttpRequest) -> HttpResponse:
    search = search_memo.resolve(request)
    form = ListFilterForm(search.data)
    lq = form.to_query()
    if lq.q.strip().lower().startswith("merge:"):
        return merge_lookup_redirect(request, lq.q.strip()[6:])
    if search.expired:
        messages.info(request, "That search has expired. Search again.")
    params = search.params
    base = reverse("personas:list")
    # The address bar keeps the filters and the search's token, never the search text; the
    # profile's "← Personas" link leads back to this same address.
    query = _with(params, cursor=lq.cursor) if lq.cursor else params.urlencode()
    search_memo.keep_list_address(request, f"{base}?{query}" if query else base)
    page = selectors.persona_page(user=request.user, lq=lq, page_size=settings.PERSONAS_PAGE_SIZE)
    if (
        search.typed  # a search just submitted; never a reload or Back (that would bounce)
        and page.search.exact_id
        and not is_partial(request)
        and not lq.cursor
        and len(page.personas) == 1
        and page.personas[0].pk == page.search.exact_id
    ):
        messages.info(request, f"Found by {page.search.kind}.")
        return redirect("personas:detail", pk=page.search.exact_id)
    if request.method == "POST" and not is_partial(request):
        # Without JavaScript the form posts; redirect so the address keeps only the token.
        return redirect(f"{base}?{params.urlencode()}" if params else base)
    archived_matches = 0
    if lq.q.strip() and not page.personas and not lq.cursor:
        archived_matches = selectors.count_archived(user=request.user, q=lq.q).n
    context = {
        "form": form,
        "lq": lq,
        "page": page,
        "archived_matches": archived_matches,
        "sorts": selectors.SORTS,
        "detail_prefix": base,
        "channels": Channel.choices,
        "base_query": params.urlencode(),
        "next_query": _with(params, cursor=page.next_cursor) if page.next_cursor else "",
        "filters_open": any(
            [lq.entry_source, lq.loyalty, lq.consent, lq.store, lq.attr_key, lq.created_from]
        ),
    }
    if is_partial(request):
        context["fragment"] = True  # the export link follows the search out of band
        response = render(request, "personas/persona_list.html#results", context)
        # A page of results is a step Back can return to; each keystroke of a search is not.
        follow = replace_url if request.method == "POST" else push_url
        return follow(response, f"{base}?{query}" if query else base)
    return render(request, "personas/persona_list.html", context)


@require_cap(Cap.MANAGE_PERSONAS)
@require_http_methods(["GET"])
def persona_count(request: HttpRequest) -> HttpResponse:
    """How many personas the list's search and filters select, loaded after the list so that
    counting never holds the page up ("2,920 personas", "About 1,000,000 personas")."""
    search = search_memo.resolve(request)
    lq = ListFilterForm(search.data).to_query()
    count = selectors.count_personas(user=request.user, lq=lq)
    return render(request, "personas/_count.html", {"count": count.label()})


@require_cap(Cap.MANAGE_PERSONAS)
@require_http_methods(["GET"])
def archived_count(request: HttpRequest) -> HttpResponse:
    search = search_memo.resolve(request)
    q = search.data.get("q", "")[:200]
    count = selectors.count_archived(user=request.user, q=q)
    return render(request, "personas/_count.html", {"count": count.label("archived persona")})


def _with(params: Any, **values: Any) -> str:
    q = params.copy()
    for key, value in values.items():
        q[key] = value
    return q.urlencode()


# ---------------------------------------------------------------------------------------------
# Create


@require_cap(Cap.MANAGE_PERSONAS)
@require_http_methods(["GET", "POST"])
def persona_create(request: HttpRequest) -> HttpResponse:
    form = PersonaCreateForm(request.POST or None)
    duplicate = None
    if request.method == "POST" and form.is_valid():
        changeset, source = form.to_changeset()
        try:
            result = changes.create(changeset, Actor.staff(request.user), entry_source=source)
        except DuplicatePersonaError as exc:
            duplicate = exc.existing
            form.add_error(exc.field_name, exc.messages[0])
        except ValidationError as exc:
            _attach_errors(form, exc)
        else:
            persona = result.persona
            note = " A double opt-in text is on its way." if changeset.consents else ""
            messages.success(request, f"Persona {persona.display_name} created.{note}")
            for warning in result.warnings:  # e.g. a placeholder phone left out
                messages.warning(request, warning)
            if is_partial(request):  # from the slide-out: the whole page goes to the persona
                return client_redirect(persona.get_absolute_url())
            return redirect(persona)
    context = {
        "form": form,
        "duplicate": duplicate,
        "signup_forms": SignupForm.objects.filter(is_active=True).exists(),
    }
    return drawer(
        request,
        title="New persona",
        body="personas/_create_form.html",
        context=context,
        close_url=reverse("personas:list"),
    )


def _attach_errors(form: Any, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field_name, errors in exc.error_dict.items():
            target = field_name if field_name in form.fields else None
            for error in errors:
                form.add_error(target, error.messages[0] if hasattr(error, "messages") else error)
    else:
        for message in exc.messages:
            form.add_error(None, message)


# ---------------------------------------------------------------------------------------------
# Detail


@require_cap(Cap.MANAGE_PERSONAS)
@require_http_methods(["GET"])
def persona_detail(request: HttpRequest, pk: int, tab: str = "general") -> HttpResponse:
    persona = selectors.persona_for_staff(user=request.user, pk=pk)
    added = tabs.registered_tabs()
    context: dict[str, Any] = {
        "persona": persona,
        "tab": tab,
        "tabs": {**OWN_TABS, **{name: added_tab.label for name, added_tab in added.items()}},
        "consent_rows": _consent_rows(persona),
    }
    if tab == "general":
        context["attributes"] = sorted((persona.attributes or {}).items())
        context["purchases"] = selectors.purchase_summary(persona)
        if persona.status == "active":
            context["duplicate_hint"] = duplicate_hint(persona)
    elif tab == "points":
        context["entries"] = list(
            persona.points_entries.select_related("actor_user", "purchase")[:200]
        )
        context["points_summary"] = selectors.points_summary(persona)
    elif tab == "purchases":
        context["purchases"] = list(persona.purchases.select_related("store")[:200])
    elif tab == "activity":
        kind = request.GET.get("kind", "")
        kind = kind if kind in selectors.ACTIVITY_KINDS else ""
        context["activity"] = selectors.persona_activity(persona, kind=kind)
        context["activity_kind"] = kind
        context["activity_kinds"] = selectors.ACTIVITY_KINDS.items()
        context["activity_limit"] = selectors.ACTIVITY_LIMIT
        context["merge_records"] = list(
            MergeRecord.objects.filter(Q(survivor=persona) | Q(merged=persona)).select_related(
                "survivor", "merged", "created_by", "undone_by"
            )[:50]
        )
    elif tab in added:
        context.update(added[tab].render_fn(request, persona))
    return render(request, "personas/persona_detail.html", context)


def _consent_rows(persona: Any) -> list[dict[str, Any]]:
    rows = []
    labels = {
        "email": "Email opted in",
        "text": "Text opted in",
        "voice": "Voice opted in",
        "browser": "Browser opted in",
        "push": "Push opted in",
    }
    # What each channel sends, and where: the confirmations name both.
    nouns = {
        "email": "emails",
        "text": "texts",
        "voice": "calls",
        "browser": "browser notifications",
        "push": "push notifications",
    }
    phone = persona.phone_display
    addresses = {"email": persona.email, "text": phone, "voice": phone}
    for channel in ("email", "text", "voice", "browser", "push"):
        state = persona.consent(channel)
        rows.append(
            {
                "channel": channel,
                "label": labels[channel],  # the switch's name: "Email opted in", on or off
                "name": labels[channel].removesuffix(" opted in"),
                "noun": nouns[channel],
                "address": addresses.get(channel) or "",
                "state": state,
                "state_label": ConsentState(state).label,
                # A pending request is not an opt-in: the switch shows off until the YES.
                "on": state == ConsentState.OPTED_IN,
                # Waiting for a YES (text) or a click (email): ask again, or stop asking.
                "awaiting": state == ConsentState.PENDING and channel in ("text", "email"),
                "readonly": channel == "push",
                "needs_phone": channel in ("text", "voice") and not persona.phone,
                "needs_email": channel == "email" and not persona.email,
                # A staff text opt-in is a double opt-in: switching on sends a text.
                "asks_yes": channel == "text" and settings.PERSONAS_TEXT_DOUBLE_OPT_IN,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# Traits


@require_cap(Cap.MANAGE_PERSONAS)
@require_http_methods(["GET", "POST"])
def persona_traits(request: HttpRequest, pk: int) -> HttpResponse:
    persona = selectors.persona_for_staff(user=request.user, pk=pk)
    if persona.status != "active":
        messages.error(request, "Unarchive this persona before editing its traits.")
        return _back_to(request, persona)
    initial = {
        "first_name": persona.first_name,
        "last_name": persona.last_name,
        "phone": (persona.phone or "")
        + (f" ext. {persona.phone_ext}" if persona.phone_ext else ""),
        "email": persona.email or "",
        "birthday": persona.birthday,
        "customer_id": persona.customer_id or "",
        "favorite_store": persona.favorite_store_id,
        "loyalty": persona.loyalty_enrolled,
        "seen": seen_snapshot(persona),
    }
    form = TraitsForm(request.POST or None, persona=persona, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            result = changes.apply(persona, form.to_changeset(), Actor.staff(request.user))
        except DuplicatePersonaError as exc:
            form.add_error(exc.field_name, exc.messages[0])
            form.duplicate = exc.existing
        except ValidationError as exc:
            _attach_errors(form, exc)
        else:
            if result.changed:
                messages.success(request, "Traits saved.")
            else:
                messages.info(request, "Nothing changed.")
            return _back_to(request, persona)
    return drawer(
        request,
        title="Edit Traits",
        body="personas/_traits_form.html",
        context={
            "form": form,
            "persona": persona,
            "attribute_types": ATTRIBUTE_TYPES,
            "stores": Store.objects.all(),
        },
        close_url=persona.get_absolute_url(),
    )


def _back_to(request: HttpRequest, persona: Any) -> HttpResponse:
    if is_partial(request):
        return HttpResponseClientRefresh()
    return redirect(persona)


# ---------------------------------------------------------------------------------------------
# Consent toggles


@require_cap(Cap.MANAGE_PERSONAS)
@require_POST
def persona_consent(request: HttpRequest, pk: int, channel: str) -> HttpResponse:
    persona = selectors.persona_for_staff(user=request.user, pk=pk)
    value = request.POST.get("value")
    if channel not in Channel.values or value not in ("on", "off", "resend"):
        messages.error(request, "That opt-in change was not understood; nothing changed.")
    else:
        action = {
            "on": ConsentAction.OPT_IN,
            "off": ConsentAction.OPT_OUT,
            "resend": ConsentAction.REQUEST_DOUBLE_OPT_IN,
        }[value]
        try:
            result = changes.apply(
                persona,
                Changeset(consents=[ConsentOp(channel, action)], action="consent changed"),
                Actor.staff(request.user),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(_error_text(exc)))
        else:
            persona = result.persona
            messages.success(request, _consent_message(channel, persona.consent(channel), value))
    if is_partial(request):
        persona = selectors.persona_for_staff(user=request.user, pk=pk)
        return render(
            request,
            "personas/persona_detail.html#consents",
            {"persona": persona, "consent_rows": _consent_rows(persona), "oob_messages": True},
        )
    return redirect(persona)


def _consent_message(channel: str, state: str, value: str) -> str:
    label = Channel(channel).label
    if state == ConsentState.PENDING:
        return f"Double opt-in text sent. {label} stays pending until the customer replies YES."
    if state == ConsentState.OPTED_IN:
        return f"Opted in to {label}."
    if state == ConsentState.OPTED_OUT:
        return f"Opted out of {label}."
    return f"{label} unchanged."


# ---------------------------------------------------------------------------------------------
# Archive


@require_cap(Cap.MANAGE_PERSONAS)
@require_http_methods(["GET", "POST"])
def persona_archive(request: HttpRequest, pk: int) -> HttpResponse:
    persona = selectors.persona_for_staff(user=request.user, pk=pk)
    form = ArchiveForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            changes.apply(
                persona,
                Changeset(status=("archived", form.cleaned_data["reason"]), action="archived"),
                Actor.staff(request.user),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(_error_text(exc)))
        else:
            messages.success(
                request,
                f"{persona.display_name} archived. It no longer appears in search; "
                "find it under View Archived Personas.",
            )
        return _back_to(request, persona)
    return drawer(
        request,
        title="Archive persona",
        body="personas/_archive_form.html",
        context={"form": form, "persona": persona},
        close_url=persona.get_absolute_url(),
    )


@require_cap(Cap.MANAGE_PERSONAS)
@require_POST
def persona_unarchive(request: HttpRequest, pk: int) -> HttpResponse:
    persona = selectors.persona_for_staff(user=request.user, pk=pk)
    try:
        changes.apply(
            persona,
            Changeset(status=("active", ""), action="unarchived"),
            Actor.staff(request.user),
        )
    except DuplicatePersonaError as exc:
        messages.error(
            request,
            format_html(
                '{} The active persona is <a href="{}">{}</a>.',
                exc.messages[0],
                exc.existing.get_absolute_url(),
                exc.existing.display_name,
            ),
        )
        return redirect(back_to(request, reverse("personas:archived")))
    except ValidationError as exc:
        messages.error(request, " ".join(_error_text(exc)))
        return redirect(reverse("personas:archived"))
    messages.success(request, f"{persona.display_name} is active again.")
    return redirect(persona)


@require_cap(Cap.MANAGE_PERSONAS)
@require_http_methods(["GET", "POST"])
def archived_list(request: HttpRequest) -> HttpResponse:
    search = search_memo.resolve(request)
    base_url = reverse("personas:archived")
    address = f"{base_url}?{search.params.urlencode()}" if search.params else base_url
    if request.method == "POST" and not is_partial(request):
        return redirect(address)  # the address keeps only the search's token
    if search.expired:
        messages.info(request, "That search has expired. Search again.")
    q = search.data.get("q", "")[:200]
    count_query = search.params.urlencode()
    base = selectors.archived_personas(request.user)
    search = selectors.search_candidates(user=request.user, query=q, base=base)
    qs = base if search.ids is None else base.filter(pk__in=search.ids)
    context = {
        "personas": list(qs.order_by("-archived_at", "-id")[:100]),
        "q": q,
        "count_query": count_query,
    }
    if is_partial(request):
        response = render(request, "personas/archived_list.html#archived-results", context)
        return replace_url(response, address)  # typing a search: no Back step per keystroke
    return render(request, "personas/archived_list.html", context)


# ---------------------------------------------------------------------------------------------
# Points


@require_cap(Cap.ADJUST_POINTS)
@require_http_methods(["GET", "POST"])
def points_adjust(request: HttpRequest, pk: int) -> HttpResponse:
    persona = selectors.persona_for_staff(user=request.user, pk=pk)
    form = PointsAdjustForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        points = form.cleaned_data["points"]
        try:
            changes.apply(
                persona,
                Changeset(
                    points=[PointsOp(PointsEntry.Kind.ADJUST, points, form.cleaned_data["reason"])],
                    action="points adjusted",
                ),
                Actor.staff(request.user),
            )
        except ValidationError as exc:
            _attach_errors(form, exc)
        else:
            messages.success(request, f"Points adjusted by {points:+d}.")
            return _back_to(request, persona)
    return drawer(
        request,
        title="Adjust points",
        body="personas/_points_form.html",
        context={"form": form, "persona": persona},
        close_url=reverse("personas:detail_tab", args=[persona.pk, "points"]),
    )


# ---------------------------------------------------------------------------------------------
# Replies


@require_cap(Cap.MANAGE_PERSONAS)
@require_http_methods(["GET"])
def replies(request: HttpRequest) -> HttpResponse:
    outcomes = dict(selectors.REPLY_OUTCOMES)
    outcome = request.GET.get("outcome", "")
    outcome = outcome if outcome in outcomes else ""
    page = selectors.reply_page(
        user=request.user,
        outcome=outcome,
        cursor=request.GET.get("cursor", ""),
        page_size=settings.PERSONAS_PAGE_SIZE,
    )
    base_query = f"outcome={outcome}" if outcome else ""
    context = {
        "page": page,
        "outcome": outcome,
        "outcome_label": outcomes.get(outcome, ""),
        "outcomes": selectors.REPLY_OUTCOMES,
        "base_query": base_query,
        "next_query": "&".join(filter(None, [base_query, f"cursor={page.next_cursor}"]))
        if page.next_cursor
        else "",
        "paged": bool(request.GET.get("cursor")),
    }
    if is_partial(request):
        return render(request, "personas/replies.html#reply-results", context)
    return render(request, "personas/replies.html", context)
