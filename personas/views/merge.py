"""Merge and unmerge pages: the merge slide-out, unmerge, possible duplicates, merge: lookups."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods, require_POST

from .. import selectors
from ..forms import MergeForm
from ..htmx import client_redirect, drawer, is_partial
from ..models import MergeRecord
from ..roles import Cap, require_cap
from ..services import merge as merge_service
from ..services.changes import Actor
from . import back_to


def merge_lookup_redirect(request: HttpRequest, raw: str) -> HttpResponse:
    try:
        found, survivor = merge_service.merge_lookup(raw)
    except ValidationError:
        found = survivor = None
    partial = is_partial(request)  # typed into the search box, maybe not finished yet
    if survivor is None:
        if partial:
            return render(request, "personas/merge/_lookup_none.html")
        messages.info(request, "No merged persona has that phone number or email.")
        return redirect("personas:list")
    messages.info(
        request,
        format_html(
            "{} was merged into this persona{}.",
            found.display_name,
            "" if found.merged_into_id == survivor.pk else " (through a chain of merges)",
        ),
    )
    if partial:
        return client_redirect(survivor.get_absolute_url())
    return redirect("personas:detail", pk=survivor.pk)


@require_cap(Cap.MERGE)
@require_http_methods(["GET", "POST"])
def persona_merge(request: HttpRequest, pk: int) -> HttpResponse:
    persona = selectors.persona_for_staff(user=request.user, pk=pk)
    form = MergeForm(
        request.POST if request.method == "POST" else request.GET,
        persona=persona,
        user=request.user,
    )
    form.is_valid()  # always valid: what is not understood is left out
    pick = form.cleaned_data
    survivor, merged, other = pick["survivor"], pick["merged"], pick["other"]
    if request.method == "POST" and other is not None and pick["confirm"]:
        try:
            merge_service.merge(
                survivor.pk, merged.pk, actor=Actor.staff(request.user), choices=pick["choices"]
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                f"Merged {merged.display_name} into {survivor.display_name}. "
                "You can undo it from the Activity tab.",
            )
            url = reverse("personas:detail", args=[survivor.pk])
            return client_redirect(url) if is_partial(request) else redirect(url)
    context = {"persona": persona, "other": other, "q": pick["q"], "candidates": form.candidates()}
    if other is None and not pick["q"]:
        context["suggested"] = merge_service.duplicate_hint(persona)
    if other is not None:
        context["preview"] = merge_service.preview(survivor, merged, pick["choices"])
        context["survivor"] = survivor
        context["merged"] = merged
    return drawer(
        request,
        title="Merge personas",
        body="personas/merge/_merge.html",
        context=context,
        close_url=persona.get_absolute_url(),
    )


@require_cap(Cap.MERGE)
@require_POST
def merge_undo(request: HttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(MergeRecord, pk=pk)
    selectors.persona_for_staff(user=request.user, pk=record.survivor_id)
    try:
        merge_service.unmerge(record.pk, actor=Actor.staff(request.user))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"Unmerged: {record.merged.display_name} is back as it was before the merge.",
        )
    return redirect("personas:detail_tab", pk=record.survivor_id, tab="activity")


@require_cap(Cap.MERGE)
@require_http_methods(["GET"])
def duplicates(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "personas/merge/duplicates.html",
        {"candidates": merge_service.duplicate_candidates()},
    )


@require_cap(Cap.MERGE)
@require_POST
def not_duplicate(request: HttpRequest) -> HttpResponse:
    a, b = request.POST.get("a", ""), request.POST.get("b", "")
    if a.isdigit() and b.isdigit() and a != b:
        for pid in (int(a), int(b)):
            selectors.persona_for_staff(user=request.user, pk=pid)
        try:
            merge_service.not_duplicate(int(a), int(b), user=request.user)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            messages.success(request, "Noted: these two are different customers.")
    else:
        messages.error(request, "That pair was not understood; nothing changed.")
    return redirect(back_to(request, reverse("personas:duplicates")))
