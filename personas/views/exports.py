"""The CSV exports: a persona's consent history, and the persona list with its consents and
custom attributes."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_http_methods

from .. import search_memo, selectors
from ..forms import ListFilterForm
from ..models import Persona
from ..roles import Cap, require_cap
from ..spreadsheet import escape_cell


def _cell(value: object) -> str:
    """A value as the text of its CSV cell, the way it is stored: numbers as numbers, true and
    false, dates in ISO form, nothing for null; then made safe for spreadsheets."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dt.date):
        text = value.isoformat()
    elif isinstance(value, list | dict):  # kept in an attribute before values were typed
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    return escape_cell(text)


def _csv_stream(header: list[str], rows: Iterator[list]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([_cell(h) for h in header])
    yield "\ufeff" + buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate(0)
        writer.writerow([_cell(v) for v in row])
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


# The persona export's own columns; then one "attr:<key>" column per custom attribute.
EXPORT_COLUMNS = [
    ("id", "pk"),
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("email", "email"),
    ("phone", "phone"),
    ("phone_extension", "phone_ext"),
    ("customer_id", "customer_id"),
    ("birthday", "birthday"),
    ("loyalty_enrolled", "loyalty_enrolled"),
    ("points", "points_balance"),
    ("entry_source", "entry_source"),
    ("created_at", "created_at"),
    ("text_consent", "text_consent"),
    ("email_consent", "email_consent"),
    ("voice_consent", "voice_consent"),
    ("push_consent", "push_consent"),
    ("browser_consent", "browser_consent"),
]
ATTRIBUTE_PREFIX = "attr:"


@require_cap(Cap.EXPORT)
@require_http_methods(["GET"])
def personas_export(request: HttpRequest) -> HttpResponse:
    """The current list (filters and search applied): its consent columns, then its custom
    attributes, one column each, streamed a chunk of personas at a time."""
    lq = ListFilterForm(search_memo.resolve(request).data).to_query()
    qs = selectors.filtered_personas(user=request.user, lq=lq)
    # As many attribute columns as an import reads back (IMPORTS_MAX_COLUMNS in all).
    keys = selectors.attribute_keys(qs, limit=settings.IMPORTS_MAX_COLUMNS - len(EXPORT_COLUMNS))
    header = [name for name, _ in EXPORT_COLUMNS] + [ATTRIBUTE_PREFIX + key for key in keys]
    return _download(_csv_stream(header, _persona_rows(qs, keys)), "personas.csv")


def _persona_rows(qs: QuerySet[Persona], keys: list[str]) -> Iterator[list]:
    for persona in qs.order_by("-id").iterator(chunk_size=2000):
        attributes = persona.attributes if isinstance(persona.attributes, dict) else {}
        yield [getattr(persona, field) for _, field in EXPORT_COLUMNS] + [
            attributes.get(key) for key in keys
        ]
