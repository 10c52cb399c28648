"""Reads. Every queryset here is already narrowed to what staff may see.

Hidden (blocklisted) personas never leave this module for staff; archived, merged and erased
personas never appear in normal search. Search is a set of index range scans: each identifier
kind has its own normalised, indexed column (see ``Persona``), and the candidates are capped so
a search never scans the table.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTransform
from django.http import Http404

from .models import Persona, PersonaStatus, Purchase
from .normalize import name_key, prefix_range, try_phone

CANDIDATE_CAP = 500
_PHONEISH = re.compile(r"^[\d\s()+.\-]+$")


def visible_personas(user: Any) -> QuerySet[Persona]:
    """Every persona staff may look at, in any status (blocklisted ones are never visible)."""
    return Persona.objects.filter(hidden=False)


def active_personas(user: Any) -> QuerySet[Persona]:
    return visible_personas(user).filter(status=PersonaStatus.ACTIVE)


def persona_for_staff(*, user: Any, pk: int) -> Persona:
    """A persona staff may open: 404 for hidden or erased ones (their existence stays secret)."""
    persona = (
        visible_personas(user)
        .exclude(status=PersonaStatus.ERASED)
        .select_related("favorite_store", "signup_form", "merged_into")
        .filter(pk=pk)
        .first()
    )
    if persona is None:
        raise Http404("No such persona.")
    return persona


def archived_personas(user: Any) -> QuerySet[Persona]:
    return visible_personas(user).filter(status=PersonaStatus.ARCHIVED)


# ---------------------------------------------------------------------------------------------
# Search


@dataclass
class SearchResult:
    ids: list[int] | None  # None: no search, the whole list
    kind: str = ""
    exact_id: int | None = None  # one exact identifier hit
    capped: bool = False


def _range(qs: QuerySet, column: str, prefix: str) -> QuerySet:
    lo, hi = prefix_range(prefix)
    return qs.filter(**{f"{column}__gte": lo, f"{column}__lt": hi})


def _ids(qs: QuerySet) -> list[int]:
    # No ORDER BY: with the model's "-id" ordering the planner would walk the primary key
    # instead of the identifier's index.
    return list(qs.order_by().values_list("id", flat=True)[:CANDIDATE_CAP])


def search_candidates(*, user: Any, query: str, base: QuerySet | None = None) -> SearchResult:
    """Find personas by any identifier a person might type.

    email (exact or prefix) · phone in any format or its last digits · receipt id ·
    customer id · first + last name (either order, prefixes, accents ignored).
    """
    # No stored value holds a NUL (forms refuse it; PostgreSQL cannot store it and errors on
    # a query that contains one), so it can only be noise.
    q = query.replace("\x00", "").strip()
    if not q:
        return SearchResult(ids=None)
    base = active_personas(user) if base is None else base
    found: dict[int, None] = {}
    exact: set[int] = set()
    kinds: list[str] = []

    def collect(ids: list[int], kind: str, is_exact: bool = False) -> None:
        if ids:
            kinds.append(kind)
        for pid in ids:
            found.setdefault(pid, None)
        if is_exact:
            exact.update(ids)

    if "@" in q:
        email = q.lower()
        collect(_ids(base.filter(email=email)), "email", True)
        collect(_ids(_range(base, "email", email)), "email")
    else:
        digits = re.sub(r"\D", "", q)
        if _PHONEISH.match(q) and len(digits) >= 3:
            phone = try_phone(q) if len(digits) >= 7 else None
            if phone:
                collect(_ids(base.filter(phone=phone)), "phone", True)
            if len(digits) >= 4:
                collect(_ids(_range(base, "phone_rev", digits[::-1])), "phone")
        token = q[:64]
        receipt_owner_ids = list(
            Purchase.objects.filter(receipt_id=token, persona__isnull=False)
            .order_by()
            .values_list("persona_id", flat=True)[:CANDIDATE_CAP]
        )
        if receipt_owner_ids:
            collect(_ids(base.filter(pk__in=receipt_owner_ids)), "receipt", True)
        collect(_ids(base.filter(customer_id=token)), "customer id", True)
        if not _PHONEISH.match(q):
            for first, last in _name_splits(name_key(q)):
                qs = _range(base, "first_key", first) if first else base
                if last:
                    qs = _range(qs, "last_key", last)
                collect(_ids(qs), "name")

    ids = list(found)
    return SearchResult(
        ids=ids,
        kind=", ".join(dict.fromkeys(kinds)),
        exact_id=next(iter(exact)) if len(exact) == 1 else None,
        capped=len(ids) >= CANDIDATE_CAP,
    )


def _name_splits(key: str) -> list[tuple[str, str]]:
    """("jo smi") → [(first "jo", last "smi"), (first "smi", last "jo")]; one word: either."""
    tokens = key.split(" ")
    if not key:
        return []
    if len(tokens) == 1:
        return [(key, ""), ("", key)]
    splits = []
    for i in range(1, len(tokens)):
        a, b = " ".join(tokens[:i]), " ".join(tokens[i:])
        splits += [(a, b), (b, a)]
    return splits


# ---------------------------------------------------------------------------------------------
# The list: filters, sorting and keyset pagination

SORTS = {
    "-created": "Newest first",
    "created": "Oldest first",
    "name": "Last name A–Z",
    "-points": "Most points",
}


@dataclass
class ListQuery:
    q: str = ""
    entry_source: str = ""
    loyalty: str = ""  # "yes" / "no"
    channel: str = ""
    consent: str = ""
    store: int | None = None
    attr_key: str = ""
    attr_value: str = ""
    created_from: dt.date | None = None
    created_to: dt.date | None = None
    import_job: int | None = None  # personas created by this import
    sort: str = "-created"
    cursor: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def filtered(self) -> bool:
        return any(
            [
                self.q,
                self.entry_source,
                self.loyalty,
                self.consent,
                self.store,
                self.attr_key,
                self.created_from,
                self.import_job,
                self.created_to,
            ]
        )


@dataclass
class Page:
    personas: list[Persona]
    next_cursor: str | None
    search: SearchResult


def _decode(cursor: str) -> int | None:
    """A page cursor is the id of the last persona on the page before: nothing else, so no
    name or balance ever rides in a URL (the sort values are looked up again by id)."""
    return int(cursor) if cursor.isdigit() and len(cursor) < 19 else None


def _apply_filters(qs: QuerySet, lq: ListQuery) -> QuerySet:
    if lq.entry_source:
        qs = qs.filter(entry_source=lq.entry_source)
    if lq.loyalty in ("yes", "no"):
        qs = qs.filter(loyalty_enrolled=lq.loyalty == "yes")
    if lq.channel and lq.consent:
        qs = qs.filter(**{f"{lq.channel}_consent": lq.consent})
    if lq.store:
        qs = qs.filter(favorite_store_id=lq.store)
    if lq.attr_key:
        if lq.attr_value:
            qs = qs.alias(_attr=KeyTransform(lq.attr_key, "attributes")).filter(
                Q(_attr=lq.attr_value) | Q(_attr=_typed(lq.attr_value))
            )
        else:
            qs = qs.filter(attributes__has_key=lq.attr_key)
    if lq.import_job:
        qs = qs.filter(import_job_id=lq.import_job)
    if lq.created_from:
        qs = qs.filter(created_at__date__gte=lq.created_from)
    if lq.created_to:
        qs = qs.filter(created_at__date__lte=lq.created_to)
    return qs


def _typed(raw: str) -> Any:
    """ "true" → True, "5" → 5: attribute values are typed, the filter box is text."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, bool | int | float) else raw


def _keyset(qs: QuerySet, sort: str, after: int | None) -> QuerySet:
    """Order by ``sort`` and start after persona ``after`` (keyset paging, never OFFSET)."""
    if sort == "created":
        qs = qs.order_by("id")
        return qs.filter(id__gt=after) if after else qs
    if sort == "name":
        qs = qs.order_by("last_key", "first_key", "id")
        keys = Persona.objects.filter(pk=after).values_list("last_key", "first_key")
        last = keys.first() if after else None
        if last is None:
            return qs
        last_key, first_key = last
        return qs.filter(
            Q(last_key__gt=last_key)
            | Q(last_key=last_key, first_key__gt=first_key)
            | Q(last_key=last_key, first_key=first_key, id__gt=after)
        )
    if sort == "-points":
        qs = qs.order_by("-points_balance", "-id")
        balance = Persona.objects.filter(pk=after).values_list("points_balance", flat=True)
        points = balance.first() if after else None
        if points is None:
            return qs
        return qs.filter(Q(points_balance__lt=points) | Q(points_balance=points, id__lt=after))
    qs = qs.order_by("-id")
    return qs.filter(id__lt=after) if after else qs


def persona_page(*, user: Any, lq: ListQuery, page_size: int) -> Page:
    """One page of the personas list. Never counts the table; never uses OFFSET."""
    search = search_candidates(user=user, query=lq.q)
    qs = active_personas(user).select_related("favorite_store")
    if search.ids is not None:
        qs = qs.filter(pk__in=search.ids)
    qs = _apply_filters(qs, lq)
    sort = lq.sort if lq.sort in SORTS else "-created"
    qs = _keyset(qs, sort, _decode(lq.cursor) if lq.cursor else None)
    rows = list(qs[: page_size + 1])
    next_cursor = str(rows[page_size - 1].pk) if len(rows) > page_size else None
    return Page(rows[:page_size], next_cursor, search)


def points_summary(persona: Persona) -> dict[str, Any]:
    """Why points differ from dollars spent: totals per ledger kind beside purchases."""
    from django.db.models import Count, Sum

    from .models import PointsEntry

    by_kind = {
        row["kind"]: row["total"]
        for row in PointsEntry.objects.filter(persona=persona)
        .values("kind")
        .annotate(total=Sum("points"))
    }
    purchases = Purchase.objects.filter(persona=persona).aggregate(
        spent=Sum("total"), count=Count("id"), earned=Sum("points_earned")
    )
    unearned = Purchase.objects.filter(persona=persona, points_earned=0).aggregate(
        spent=Sum("total"), count=Count("id")
    )
    return {
        "by_kind": by_kind,
        "spent": purchases["spent"] or 0,
        "purchase_count": purchases["count"],
        "earned": by_kind.get("earn", 0),
        "redeemed": -(by_kind.get("redeem", 0)),
        "adjusted": by_kind.get("adjust", 0),
        "returned": -(by_kind.get("return", 0)),
        "unearned_spent": unearned["spent"] or 0,
        "unearned_count": unearned["count"],
    }


def filtered_personas(*, user: Any, lq: ListQuery) -> QuerySet[Persona]:
    """Every active, visible persona the list's search and filters select (for exports)."""
    search = search_candidates(user=user, query=lq.q)
    qs = active_personas(user)
    if search.ids is not None:
        qs = qs.filter(pk__in=search.ids)
    return _apply_filters(qs, lq)
