"""Import pages: history, upload, mapping, preview, progress, error report, double opt-in."""

from __future__ import annotations

import time

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.http import require_http_methods, require_POST

from personas.roles import Cap, require_cap

from . import services
from .forms import MappingForm, SendDoubleOptInForm, UploadForm
from .models import ImportJob
from .pipeline import OUTCOMES, target_label
from .selectors import stale_jobs

OUTCOME_LABELS = {
    "created": "New",
    "updated": "Updated",
    "unchanged": "Unchanged",
    "skipped": "Skipped",
    "error": "Errors",
}


def _job(pk: int) -> ImportJob:
    return get_object_or_404(ImportJob.objects.select_related("created_by"), pk=pk)


@require_cap(Cap.RUN_IMPORTS)
@require_http_methods(["GET"])
def import_history(request: HttpRequest) -> HttpResponse:
    if services.resume_stale():
        messages.info(request, "An import whose worker stopped was queued to resume.")
    # The model's ordering, restated: Django leaves it out of a GROUP BY query.
    jobs = (
        ImportJob.objects.select_related("created_by")
        .annotate(
            texts_waiting=Count("pending_texts", filter=Q(pending_texts__sent_at__isnull=True))
        )
        .order_by(*ImportJob._meta.ordering)[:100]
    )
    return render(request, "imports/import_history.html", {"jobs": jobs, "section": "personas"})


@require_cap(Cap.RUN_IMPORTS)
@require_http_methods(["GET", "POST"])
def import_new(request: HttpRequest) -> HttpResponse:
    form = UploadForm(
        *((request.POST, request.FILES) if request.method == "POST" else ()),
        too_large=getattr(request, "upload_too_large", False),  # set by SizeLimitUploadHandler
    )
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = services.upload(
                upload,
                name=upload.name,
                user=request.user,
                encoding=form.cleaned_data["encoding"],
                delimiter=form.cleaned_data["delimiter"],
            )
        except ValidationError as exc:
            form.add_error("file", exc.messages[0])
        else:
            messages.success(
                request, f"“{job.original_name}” uploaded: check how its columns map to traits."
            )
            return redirect("imports:detail", pk=job.pk)
    return render(request, "imports/import_new.html", {"form": form, "section": "personas"})


@require_cap(Cap.RUN_IMPORTS)
@require_http_methods(["GET", "POST"])
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(pk)
    if job.status not in (ImportJob.Status.UPLOADED, ImportJob.Status.PREVIEWED):
        if request.method == "POST":
            return redirect("imports:detail", pk=job.pk)
        return _detail_page(request, job, form=None)
    form = MappingForm(request.POST if request.method == "POST" else None, job=job)
    if not (form.is_bound and form.is_valid()):
        return _detail_page(request, job, form=form)
    if "use_saved" in request.POST:
        saved = form.cleaned_data.get("saved_mapping")
        if saved:
            services.use_saved_mapping(job=job, saved=saved)
            messages.success(request, f"Mapping “{saved.name}” applied.")
        return redirect("imports:detail", pk=job.pk)
    try:
        services.configure(job, **form.choices(), user=request.user)
    except ValidationError as exc:
        for message in exc.messages:
            form.add_error(None, message)
        return _detail_page(request, job, form=form)
    messages.success(request, "Checking every row of the file…")
    return redirect("imports:detail", pk=job.pk)


def _detail_page(request: HttpRequest, job: ImportJob, *, form: MappingForm | None) -> HttpResponse:
    preview = job.preview or {}
    context = {
        "job": job,
        "form": form,
        "section": "personas",
        "outcomes": [
            {
                "key": key,
                "label": OUTCOME_LABELS[key],
                "count": (preview.get("counts") or {}).get(key, 0),
                "examples": (preview.get("examples") or {}).get(key, []),
            }
            for key in OUTCOMES
        ],
        "mapping_rows": [
            (header, target_label(job.mapping.get(str(i), "")))
            for i, header in enumerate(job.headers)
        ],
        "doi_form": SendDoubleOptInForm(),
        "pending_texts": job.pending_texts.filter(sent_at__isnull=True).count(),
    }
    context.update(_progress(job))
    return render(request, "imports/import_detail.html", context)


def _progress(job: ImportJob) -> dict:
    total = job.total_rows or 0
    done = job.rows_done
    rate = eta = None
    if job.status == ImportJob.Status.RUNNING and job.started_at and done:
        elapsed = max((timezone.now() - job.started_at).total_seconds(), 0.001)
        rate = done / elapsed
        eta = max(total - done, 0) / rate if rate else None
    return {
        "total": total,
        "done": done,
        "percent": int(done * 100 / total) if total else 0,
        "rate": rate,
        "eta": eta,
    }


@require_cap(Cap.RUN_IMPORTS)
@require_http_methods(["GET"])
def import_progress(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(pk)
    if job.status == ImportJob.Status.RUNNING and job.pk in stale_jobs():
        services.resume_stale()
    if not job.is_active and request.headers.get("HX-Request"):
        # Finished: reload the whole page to show the result.
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    # oob: the header's status badge follows along (Queued → Running) with each poll.
    context = {"job": job, "oob": True, **_progress(job)}
    return render(request, "imports/import_detail.html#progress", context)


@require_cap(Cap.RUN_IMPORTS)
@require_POST
def import_run(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(pk)
    try:
        services.start(job)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, "Import started. You can leave this page; it keeps running.")
    return redirect("imports:detail", pk=job.pk)


@require_cap(Cap.RUN_IMPORTS)
@require_POST
def import_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(pk)
    try:
        services.cancel(job)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, "Cancelling the import: rows already written stay written.")
    return redirect("imports:detail", pk=job.pk)


@require_cap(Cap.RUN_IMPORTS)
@require_POST
def import_resume(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(pk)
    try:
        services.resume(job)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"Resuming after line {job.checkpoint_line}.")
    return redirect("imports:detail", pk=job.pk)


@require_cap(Cap.RUN_IMPORTS)
@require_http_methods(["GET"])
def import_errors(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(pk)
    response = StreamingHttpResponse(services.error_report(job), content_type="text/csv")
    stamp = time.strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-issues-{stamp}.csv"'
    return response


@require_cap(Cap.RUN_IMPORTS)
@require_POST
def import_send_double_opt_in(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(pk)
    form = SendDoubleOptInForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
        return redirect("imports:detail", pk=job.pk)
    at = form.cleaned_data.get("at") if form.cleaned_data["when"] == "at" else None
    try:
        services.send_double_opt_in_texts(job, at=at)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        # The same wording and time zone as the "scheduled for …" line on the import's page.
        when = f"on {date_format(timezone.localtime(at), 'M j, Y H:i')}" if at else "now"
        messages.success(
            request,
            f"Double opt-in texts for this import's pending personas will be sent {when}.",
        )
    return redirect(reverse("imports:detail", args=[job.pk]))
