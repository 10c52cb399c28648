"""The flows editor, runs and logs. Views parse, call a service, render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from personas import selectors
from personas.forms import ListFilterForm
from personas.htmx import client_redirect, drawer, is_partial
from personas.models.persona import visible_q
from personas.roles import Cap, has_cap, require_cap

from . import engine, enrolment, services, story
from .definition import STEP_TYPES, validate, warnings
from .diagram import layout
from .forms import AddStepForm, FlowForm, ImportForm, StepForm
from .models import Flow, FlowEnrolment, FlowRun

# How a test run ended, in words.
OUTCOME_WORDS = {
    "completed": "the run would complete",
    "failed": "the run would fail",
    "stopped": "the run would stop",
    "waiting": "the run would wait",
    "running": "the run would go on past the step limit",
}


def _flow(pk: int) -> Flow:
    return get_object_or_404(Flow.objects.select_related("current_version"), pk=pk)


def _close_and_reload(request: HttpRequest, url: str) -> HttpResponse:
    if is_partial(request):
        return client_redirect(url)
    return redirect(url)


@require_cap(Cap.VIEW_FLOWS)
@require_http_methods(["GET"])
def flow_list(request: HttpRequest) -> HttpResponse:
    # The model's ordering, restated: Django leaves it out of a GROUP BY query.
    flows = (
        Flow.objects.select_related("current_version")
        .annotate(
            run_count=Count("runs", filter=Q(runs__dry_run=False)),
            active_runs=Count("runs", filter=Q(runs__status__in=["running", "waiting"])),
        )
        .order_by(*Flow._meta.ordering)
    )
    return render(request, "flows/flow_list.html", {"flows": flows, "section": "flows"})


@require_cap(Cap.EDIT_FLOWS)
@require_http_methods(["GET", "POST"])
def flow_new(request: HttpRequest) -> HttpResponse:
    form = FlowForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            flow = services.create_flow(
                name=form.cleaned_data["name"],
                trigger=form.trigger(),
                reentry=form.cleaned_data["reentry"],
                user=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
        else:
            messages.success(request, f"Flow “{flow.name}” created. Add its first step.")
            return redirect(flow)
    return render(request, "flows/flow_new.html", {"form": form, "section": "flows"})


@require_cap(Cap.VIEW_FLOWS)
@require_http_methods(["GET"])
def flow_detail(request: HttpRequest, pk: int) -> HttpResponse:
    flow = _flow(pk)
    problems = validate(flow.definition)
    states = flow.definition.get("states", [])
    context = {
        "flow": flow,
        "section": "flows",
        "problems": problems if states else [],
        "diagram": layout(flow.definition, problems),
        "states": states,
        "step_types": STEP_TYPES,
        "can_edit": has_cap(request.user, Cap.EDIT_FLOWS),
        "versions": flow.versions.all()[:10],
        "runs": flow.runs.filter(visible_q("persona__"), dry_run=False).select_related("persona")[
            :20
        ],
        "trigger_label": services.TRIGGER_TYPES.get(flow.trigger.get("type"), "?"),
        "draft_differs": bool(
            flow.current_version and flow.current_version.definition != flow.definition
        ),
    }
    return render(request, "flows/flow_detail.html", context)


@require_cap(Cap.EDIT_FLOWS)
@require_http_methods(["GET", "POST"])
def step_add(request: HttpRequest, pk: int) -> HttpResponse:
    flow = _flow(pk)
    form = AddStepForm(request.POST if request.method == "POST" else request.GET or None)
    if request.method == "POST" and form.is_valid():
        try:
            state = services.add_step(
                flow,
                step_type=form.cleaned_data["step_type"],
                name=form.cleaned_data["name"],
                after=request.POST.get("after", ""),
                event=request.POST.get("event", ""),
            )
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
        else:
            messages.success(request, f"Step “{state['name']}” added: set it up.")
            return _close_and_reload(
                request, reverse("flows:step_edit", args=[flow.pk, state["name"]])
            )
    return drawer(
        request,
        title="Add a step",
        body="flows/_add_step.html",
        context={"form": form, "flow": flow},
        close_url=flow.get_absolute_url(),
    )


def _step(pk: int, name: str) -> tuple[Flow, dict | None]:
    """The flow and its step called ``name`` (None when there is no such step any more)."""
    flow = _flow(pk)
    return flow, next((s for s in flow.definition.get("states", []) if s["name"] == name), None)


def _step_gone(request: HttpRequest, flow: Flow) -> HttpResponse:
    messages.error(request, "That step no longer exists.")
    return redirect(flow)


def _step_form(flow: Flow, state: dict, data: Any = None) -> StepForm:
    names = [s["name"] for s in flow.definition.get("states", [])]
    return StepForm(data, state=state, step_names=names)


def _step_problems(flow: Flow, name: str) -> list[str]:
    return [p for p in validate(flow.definition) if f"“{name}”" in p]


def _step_drawer(
    request: HttpRequest,
    flow: Flow,
    state: dict,
    form: StepForm | None = None,
    *,
    action_error: str = "",
    confirm_delete: bool = False,
) -> HttpResponse:
    """The step's drawer: its form (``form``, or a fresh one), and what the delete and
    make-first actions have to say."""
    if form is None:
        form = _step_form(flow, state)
    meta = STEP_TYPES.get(state["type"], {})
    return drawer(
        request,
        title=f"{meta.get('label', state['type'])}: {state['name']}",
        body="flows/_step_form.html",
        context={
            "form": form,
            "action_error": action_error,
            "confirm_delete": confirm_delete,
            "flow": flow,
            "state": state,
            "meta": meta,
            "warnings": warnings(state),
            "problems": _step_problems(flow, state["name"]),
        },
        close_url=flow.get_absolute_url(),
    )


@require_cap(Cap.EDIT_FLOWS)
@require_http_methods(["GET", "POST"])
def step_edit(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    flow, state = _step(pk, name)
    if state is None:
        return _step_gone(request, flow)
    form = _step_form(flow, state, request.POST if request.method == "POST" else None)
    if not (form.is_bound and form.is_valid()):
        return _step_drawer(request, flow, state, form)
    new_name = form.cleaned_data["name"].strip()
    try:
        services.update_step(
            flow,
            name,
            properties=form.properties(),
            transitions=form.transitions(),
            new_name=new_name,
        )
    except ValidationError as exc:
        form.add_error(None, exc.messages[0])
        return _step_drawer(request, flow, state, form)
    flow.refresh_from_db()
    problems = _step_problems(flow, new_name)
    if problems:
        messages.warning(request, "Saved, with problems to fix: " + " ".join(problems))
    else:
        messages.success(request, f"Step “{form.cleaned_data['name']}” saved.")
    return _close_and_reload(request, flow.get_absolute_url())


def _step_action(
    request: HttpRequest, flow: Flow, state: dict, act: Callable[[], None], done: str
) -> HttpResponse:
    """Run a step action (``act``, a service call): say ``done`` and close the drawer, or show
    the drawer again with the service's reason."""
    try:
        act()
    except ValidationError as exc:
        return _step_drawer(request, flow, state, action_error=exc.messages[0])
    messages.success(request, done)
    return _close_and_reload(request, flow.get_absolute_url())


@require_cap(Cap.EDIT_FLOWS)
@require_POST
def step_delete(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    """Deletes the step once confirmed (htmx's confirm dialog sends ``confirmed``); without
    JavaScript the drawer's button lands here unconfirmed, and the drawer asks first."""
    flow, state = _step(pk, name)
    if state is None:
        return _step_gone(request, flow)
    if "confirmed" not in request.POST:
        return _step_drawer(request, flow, state, confirm_delete=True)
    return _step_action(
        request, flow, state, lambda: services.delete_step(flow, name), f"Step “{name}” deleted."
    )


@require_cap(Cap.EDIT_FLOWS)
@require_POST
def step_first(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    flow, state = _step(pk, name)
    if state is None:
        return _step_gone(request, flow)
    return _step_action(
        request,
        flow,
        state,
        lambda: services.set_first_step(flow, name),
        f"The flow now starts at “{name}”.",
    )


def _status_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    flow = _flow(pk)
    try:
        if action == "publish":
            version = services.publish(flow, user=request.user)
            messages.success(
                request,
                f"Published version {version.number}. New runs use it; "
                "running ones keep their version.",
            )
        else:
            target = {
                "pause": Flow.Status.PAUSED,
                "resume": Flow.Status.ACTIVE,
                "archive": Flow.Status.ARCHIVED,
            }[action]
            services.set_status(flow, target)
            messages.success(request, f"Flow {flow.get_status_display().lower()}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(flow)


@require_cap(Cap.EDIT_FLOWS)
@require_POST
def flow_publish(request: HttpRequest, pk: int) -> HttpResponse:
    return _status_action(request, pk, "publish")


@require_cap(Cap.EDIT_FLOWS)
@require_POST
def flow_pause(request: HttpRequest, pk: int) -> HttpResponse:
    return _status_action(request, pk, "pause")


@require_cap(Cap.EDIT_FLOWS)
@require_POST
def flow_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _status_action(request, pk, "resume")


@require_cap(Cap.EDIT_FLOWS)
@require_POST
def flow_archive(request: HttpRequest, pk: int) -> HttpResponse:
    return _status_action(request, pk, "archive")


@require_cap(Cap.EDIT_FLOWS)
@require_http_methods(["GET", "POST"])
def flow_test(request: HttpRequest, pk: int) -> HttpResponse:
    """The test-run drawer. Its persona search posts (search text never rides in a URL; a
    GET ``q`` typed by hand still works); choosing a persona is a GET by id."""
    flow = _flow(pk)
    q = (request.POST.get("q") or request.GET.get("q") or "").strip()[:200]
    persona_id = request.GET.get("persona", "")
    candidates, steps, outcome, persona = [], [], "", None
    if persona_id.isdigit():
        persona = selectors.active_personas(request.user).filter(pk=int(persona_id)).first()
    if persona is not None:
        problems = validate(flow.definition)
        if problems:
            messages.error(request, "Fix the flow first: " + " ".join(problems))
        else:
            steps, outcome = engine.test_run(flow, persona)
    elif q:
        search = selectors.search_candidates(user=request.user, query=q)
        ids = (search.ids or [])[:10]
        candidates = list(selectors.active_personas(request.user).filter(pk__in=ids))
    return drawer(
        request,
        title="Test run",
        body="flows/_test_run.html",
        context={
            "flow": flow,
            "q": q,
            "candidates": candidates,
            "steps": [(s, story.for_log(s)) for s in steps],
            "outcome_label": OUTCOME_WORDS.get(outcome, "no steps ran"),
            "persona": persona,
        },
        close_url=flow.get_absolute_url(),
    )


@require_cap(Cap.VIEW_FLOWS)
@require_http_methods(["GET"])
def flow_runs(request: HttpRequest, pk: int) -> HttpResponse:
    flow = _flow(pk)
    runs = flow.runs.filter(visible_q("persona__"), dry_run=False).select_related(
        "persona", "version"
    )[:200]
    return render(request, "flows/flow_runs.html", {"flow": flow, "runs": runs, "section": "flows"})


@require_cap(Cap.VIEW_FLOWS)
@require_http_methods(["GET"])
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(FlowRun.objects.select_related("flow", "version", "persona"), pk=pk)
    selectors.persona_for_staff(user=request.user, pk=run.persona_id)  # hidden → 404
    steps = [(log, story.for_log(log)) for log in run.steps.all()]
    return render(
        request, "flows/run_detail.html", {"run": run, "steps": steps, "section": "flows"}
    )


@require_cap(Cap.VIEW_FLOWS)
@require_http_methods(["GET"])
def flow_export(request: HttpRequest, pk: int) -> HttpResponse:
    flow = _flow(pk)
    response = HttpResponse(services.export_json(flow), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="flow-{flow.pk}.json"'
    return response


@require_cap(Cap.EDIT_FLOWS)
@require_http_methods(["GET", "POST"])
def flow_import(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            flow, notes = services.import_studio(form.cleaned_data["definition"], user=request.user)
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error("definition", message)
        else:
            messages.success(request, f"Imported “{flow.name}” as a draft.")
            for note in notes:
                messages.info(request, note)
            return redirect(flow)
    return render(request, "flows/flow_import.html", {"form": form, "section": "flows"})


@require_cap(Cap.EDIT_FLOWS)
@require_POST
def enroll_persona(request: HttpRequest, persona_pk: int) -> HttpResponse:
    persona = selectors.persona_for_staff(user=request.user, pk=persona_pk)
    flow_id = request.POST.get("flow", "")
    flow = Flow.objects.filter(pk=int(flow_id)).first() if flow_id.isdigit() else None
    if flow is None:
        messages.error(request, "Choose a flow.")
    else:
        try:
            services.enroll_persona(flow, persona)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"{persona.display_name} enrolled in “{flow.name}”.")
    return redirect("personas:detail_tab", pk=persona.pk, tab="flows")


# The personas-list filters the confirmation page offers to change, with their labels here.
_REFINE_LABELS = {
    "q": "Search (phone, email, name…)",
    "entry_source": "Source",
    "loyalty": "Loyalty",
    "channel": "Consent channel",
    "consent": "Consent state",
    "store": "Favorite store",
    "attr_key": "Custom attribute",
    "attr_value": "Attribute value",
    "created_from": "Created from",
    "created_to": "Created until",
}


def _refine_fields(form: ListFilterForm) -> list[tuple[Any, str]]:
    for name in ("created_from", "created_to"):
        form.fields[name].widget.input_type = "date"
    return [(form[name], label) for name, label in _REFINE_LABELS.items()]


@require_cap(Cap.EDIT_FLOWS)
@require_POST
def enroll_list(request: HttpRequest, pk: int) -> HttpResponse:
    """Bulk enrolment, counted then confirmed (``flows.enrolment``). A personas-list search and
    its filters post here and get a page saying how many personas would be enrolled, and who;
    that page posts back with ``confirm`` and the number it showed (and, above
    ``FLOWS_ENROL_TYPE_COUNT_ABOVE``, the number typed). Search text rides in POST bodies only."""
    flow = _flow(pk)
    form = ListFilterForm(request.POST, auto_id="refine-%s")
    error = ""
    try:
        if form.is_valid() and "confirm" in request.POST:
            try:
                job = services.request_enrolment(
                    flow=flow,
                    user=request.user,
                    lq=form.to_query(),
                    confirmed_count=request.POST.get("count"),
                    typed=request.POST.get("typed"),
                )
            except enrolment.EnrolmentError as exc:
                if exc.code == "inactive":
                    raise
                error = str(exc)
            else:
                messages.success(
                    request,
                    f"Enrolling {job.confirmed_count:,} personas into “{flow.name}” in the "
                    "background: follow it under “Bulk enrolments”.",
                )
                return redirect(f"{flow.get_absolute_url()}#enrolments")
        preview = (
            enrolment.count_matching(flow=flow, user=request.user, lq=form.to_query())
            if form.is_valid()
            else None
        )
    except enrolment.EnrolmentError as exc:
        messages.error(request, str(exc))
        return redirect(flow)
    context = {
        "flow": flow,
        "form": form,
        "refine": _refine_fields(form),
        "preview": preview,
        "error": error,
        "threshold": enrolment.type_count_above(),
        "batch_size": enrolment.BATCH_SIZE,
        "max_personas": enrolment.MAX_PERSONAS,
        "section": "flows",
    }
    return render(request, "flows/enrolment_confirm.html", context)


@require_cap(Cap.VIEW_FLOWS)
@require_http_methods(["GET"])
def flow_enrolments(request: HttpRequest, pk: int) -> HttpResponse:
    """The flow page's "Bulk enrolments" panel, refreshed by htmx while a job waits or runs."""
    flow = _flow(pk)
    if not is_partial(request):
        return redirect(f"{flow.get_absolute_url()}#enrolments")
    context = {
        "flow": flow,
        "enrolments": flow.recent_enrolments(),
        "can_edit": has_cap(request.user, Cap.EDIT_FLOWS),
    }
    return render(request, "flows/_enrolments.html", context)


@require_cap(Cap.EDIT_FLOWS)
@require_POST
def enrolment_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a bulk enrolment that has not started. The flow page's button lands on a page
    asking first; its answer posts ``confirmed``."""
    job = get_object_or_404(
        FlowEnrolment.objects.select_related("flow", "created_by").defer("persona_ids"), pk=pk
    )
    if "confirmed" not in request.POST and job.status == FlowEnrolment.Status.QUEUED:
        context = {"job": job, "flow": job.flow, "section": "flows"}
        return render(request, "flows/enrolment_cancel.html", context)
    try:
        enrolment.cancel(enrolment=job, user=request.user)
    except enrolment.EnrolmentError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Enrolment of {job.confirmed_count:,} personas into “{job.flow.name}” cancelled: "
            "nobody was enrolled.",
        )
    return redirect(f"{job.flow.get_absolute_url()}#enrolments")
