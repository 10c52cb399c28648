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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.db.models import Count as Counted
from django.db.models import Q, QuerySet, Sum
from django.db.models.fields.json import KeyTransform
from django.http import Http404

from .models import (
    AuditEvent,
    ConsentChange,
    ConsentState,
    InboundMessage,
    OutboundMessage,
    Persona,
    PersonaStatus,
    PointsEntry,
    Purchase,
    SignupForm,
)
from .models.persona import visible_q
from .normalize import (
    PHONE_FRAGMENT_MIN,
    name_key,
    normalize_email,
    prefix_range,
    strip_format_characters,
    try_phone,
)
from .services.identity import customer_for

CANDIDATE_CAP = 500
_PHONEISH = re.compile(r"^[\d\s()+.\-]+$")


def visible_personas(user: Any) -> QuerySet[Persona]:
    """Every persona staff may look at, in any status (blocklisted ones are never visible)."""
    return Persona.objects.visible()


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


def _phone_fragment_ids(base: QuerySet, digits: str) -> list[int]:
    """Personas whose phone holds ``digits`` anywhere: a prefix range over the tails of every
    number (``PhoneFragment``'s key), then the same narrowing as every search. No DISTINCT:
    the LIMIT then stops the scan early; a number holding the digits twice is kept once."""
    return list(dict.fromkeys(_ids(_range(base, "phone_fragments__digits", digits))))


def search_candidates(*, user: Any, query: str, base: QuerySet | None = None) -> SearchResult:
    """Find personas by any identifier a person might type.

    email (exact or prefix) · phone in any format, or 4+ of its digits anywhere · receipt id ·
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
        try:
            email = normalize_email(q) or ""
        except ValidationError:  # a partial address: prefix search only
            email = strip_format_characters(q).lower()
        collect(_ids(base.filter(email=email)), "email", True)
        if not found:
            _merged_survivor(collect, base, "email", email=email)
        collect(_ids(_range(base, "email", email)), "email")
    else:
        digits = re.sub(r"\D", "", q)
        if _PHONEISH.match(q) and len(digits) >= 3:
            phone = try_phone(q) if len(digits) >= 7 else None
            if phone:
                collect(_ids(base.filter(phone=phone)), "phone", True)
                if not found:
                    _merged_survivor(collect, base, "phone", phone=phone)
            if len(digits) >= PHONE_FRAGMENT_MIN:
                collect(_phone_fragment_ids(base, digits), "phone")
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


def _merged_survivor(collect: Any, base: Any, kind: str, **identifier: str) -> None:
    """An identifier only a merged-away persona holds finds the profile staff kept."""
    survivor = customer_for(**identifier)
    if survivor is not None:
        collect(_ids(base.filter(pk=survivor.pk)), f"{kind} of a merged persona", True)


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
    by_kind = {
        row["kind"]: row["total"]
        for row in PointsEntry.objects.filter(persona=persona)
        .values("kind")
        .annotate(total=Sum("points"))
    }
    purchases = Purchase.objects.filter(persona=persona).aggregate(
        spent=Sum("total"), count=Counted("id"), earned=Sum("points_earned")
    )
    unearned = Purchase.objects.filter(persona=persona, points_earned=0).aggregate(
        spent=Sum("total"), count=Counted("id")
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


@dataclass(frozen=True)
class PurchaseSummary:
    """A persona's purchases at a glance: lifetime spend (their currency's units), last
    purchase time and store, and the number of visits (purchases)."""

    spend: Any
    visits: int
    last_at: dt.datetime | None
    last_store: str


def purchase_summary(persona: Persona) -> PurchaseSummary:
    """One aggregate query and one indexed row (``purchase_persona_idx``)."""
    totals = Purchase.objects.filter(persona=persona).aggregate(
        spend=Sum("total"), visits=Counted("id")
    )
    last = (
        Purchase.objects.filter(persona=persona)
        .select_related("store")
        .order_by("-purchased_at", "-id")
        .first()
    )
    return PurchaseSummary(
        spend=totals["spend"] or 0,
        visits=totals["visits"],
        last_at=last.purchased_at if last else None,
        last_store=(last.store.name if last and last.store else ""),
    )


# Per database: the keys of each row's attributes (none when they are not an object), and
# their code point order (the order Python sorts them in).
_KEYS_OF = {
    "postgresql": (
        "CROSS JOIN LATERAL jsonb_object_keys(CASE WHEN jsonb_typeof(p.attributes) = 'object' "
        "THEN p.attributes ELSE '{}'::jsonb END) AS k(key)",
        'k.key COLLATE "C"',
    ),
    "sqlite": (
        ", json_each(CASE WHEN json_type(p.attributes) = 'object' "
        "THEN p.attributes ELSE '{}' END) AS k",
        "k.key",
    ),
}


def attribute_keys(qs: QuerySet[Persona], *, limit: int) -> list[str]:
    """The custom attribute keys the personas of ``qs`` hold, sorted, at most ``limit``: one
    query over the selected rows' keys, with the list's search and filters applied."""
    sql, params = qs.order_by().values("attributes").query.sql_with_params()
    keys_of, order = _KEYS_OF[connection.vendor]
    # Only the queryset's own SQL (its values stay parameters) and fixed text are joined here.
    query = f"SELECT k.key FROM ({sql}) AS p {keys_of} GROUP BY k.key ORDER BY {order} LIMIT %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(query, [*params, limit])
        return [row[0] for row in cursor.fetchall()]


# ---------------------------------------------------------------------------------------------
# Counts: "2,920 personas", exact when counting is cheap, an estimate when it is not

COUNT_CAP = 10_000  # rows counted exactly at most; above, an estimate


@dataclass(frozen=True)
class Count:
    """How many rows a list shows. ``n``: the number (exact, or the estimate); ``exact``:
    False when ``n`` is the planner's estimate ("about") or a floor ("more than")."""

    n: int
    exact: bool = True
    floor: bool = False

    def label(self, noun: str = "persona", plural: str = "") -> str:
        plural = plural or f"{noun}s"
        word = noun if self.n == 1 and self.exact else plural
        if self.floor:
            return f"More than {self.n:,} {plural}"
        return f"{'About ' if not self.exact else ''}{self.n:,} {word}"


def count_rows(qs: QuerySet) -> Count:
    """Count ``qs`` without scanning a large table: exactly up to ``COUNT_CAP`` rows (one
    ``COUNT`` over a ``LIMIT`` subquery); above, PostgreSQL's planner estimate of the same
    query ("about N"), or on SQLite "more than 10,000"."""
    capped = qs.order_by()[: COUNT_CAP + 1].count()
    if capped <= COUNT_CAP:
        return Count(capped)
    estimate = _planner_estimate(qs)
    if estimate is None:
        return Count(COUNT_CAP, exact=False, floor=True)
    return Count(max(estimate, COUNT_CAP + 1), exact=False)


def _planner_estimate(qs: QuerySet) -> int | None:
    connection = connections[qs.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = qs.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def count_personas(*, user: Any, lq: ListQuery) -> Count:
    """How many personas the list's search and filters select (the list's own rule)."""
    return count_rows(filtered_personas(user=user, lq=lq))


def count_archived(*, user: Any, q: str) -> Count:
    """How many archived personas the archived list's search selects."""
    base = archived_personas(user)
    search = search_candidates(user=user, query=q, base=base)
    return count_rows(base if search.ids is None else base.filter(pk__in=search.ids))


# ---------------------------------------------------------------------------------------------
# Activity: one timeline of audit events, consent history and text replies

ACTIVITY_LIMIT = 200

# What an address is called on screen, by the channel whose consent it holds.
_ADDRESS_NOUN = {"text": "phone number", "voice": "phone number", "email": "email address"}
_ALREADY = {
    ConsentState.OPTED_IN: "had already opted in",
    ConsentState.OPTED_OUT: "had already opted out",
    ConsentState.PENDING: "was already waiting for the customer to confirm (double opt-in)",
    ConsentState.NEVER: "had never been asked",
}


@dataclass
class ActivityItem:
    """One row of a persona's Activity tab. ``kind``: "event" (an audit event), "consent"
    (a consent change of one channel) or "reply" (a text the customer sent us)."""

    kind: str
    at: dt.datetime
    obj: Any
    who: str = ""
    note: str = ""  # consent: why the state came from the address's own record
    evidence: str = ""  # consent: what proves the change, when it says more than ``who``
    # event: its (key, change) lines still to show; consent: the note of the event it made
    lines: list[tuple[str, Any]] = field(default_factory=list)
    event_note: str = ""
    claimed: bool = False  # consent: told instead of a line of its audit event


def _consent_item(change: ConsentChange) -> ActivityItem:
    """A consent change in words staff understand; the address's digest is never shown."""
    who = change.actor_label or dict(AuditEvent.ActorKind.choices).get(change.actor_kind, "System")
    noun = _ADDRESS_NOUN.get(change.channel, "device")
    evidence = change.evidence
    note = ""
    if evidence.endswith("'s own consent"):
        # The persona took on an address (new phone/email, unarchive, unmerge) that already
        # had a record of its own: consent belongs to the address, not to the profile.
        already = _ALREADY.get(change.after, "had its own consent")
        note = f"This {noun} {already}: consent belongs to the {noun}, not to the profile."
        evidence = ""
    elif evidence.startswith("No ") and evidence.endswith(" any more"):
        note = f"This persona no longer has a {noun}, so there is nothing to send to."
        evidence = ""
    elif evidence.startswith("Same address: "):
        # Mirrored from the address's record when another profile (or nobody) holding the same
        # address changed it: an archived or merged copy follows the number it shares.
        note = f"The same {noun} was changed on another profile; this profile shares it."
        evidence = evidence.removeprefix("Same address: ")
    if evidence == change.actor_label:
        evidence = ""  # the default evidence is the actor: saying it twice adds nothing
    return ActivityItem("consent", change.created_at, change, who, note, evidence)


# An audit event and the consent rows it wrote are saved in one transaction, a moment apart.
_SAME_MOMENT = dt.timedelta(seconds=2)


def _event_item(event: AuditEvent, consents: dict[tuple, list[ActivityItem]]) -> ActivityItem:
    """An audit event, less the consent lines that its own consent rows tell in full.

    When every line it had is told by a consent row, ``lines`` is empty (the event is not
    shown) and its note moves onto those rows."""
    lines, told = [], []
    for key, change in (event.changes or {}).items():
        if key.startswith("consent:") and isinstance(change, dict) and not change.get("resent"):
            same = (key[8:], change.get("before"), change.get("after"), event.actor_label)
            row = next(
                (
                    r
                    for r in consents.get(same, [])
                    if not r.claimed and abs(r.at - event.created_at) <= _SAME_MOMENT
                ),
                None,
            )
            if row is not None:
                row.claimed = True
                told.append(row)
                continue
        lines.append((key, change))
    if not lines:
        for row in told:
            row.event_note = event.note
    return ActivityItem("event", event.created_at, event, lines=lines)


# What the Activity tab can be narrowed to, in words.
ACTIVITY_KINDS = {
    "traits": "Traits",
    "consent": "Consent",
    "points": "Points",
    "merges": "Merges",
    "messages": "Messages",
    "flows": "Flows",
}


def activity_kind(item: ActivityItem) -> str:
    """Which of ``ACTIVITY_KINDS`` an Activity entry belongs to."""
    if item.kind in ("reply", "message"):
        return "messages"
    if item.kind == "consent":
        return "consent"
    event = item.obj
    keys = [key for key, _change in item.lines]
    if event.actor_kind == "flow":
        return "flows"
    if "merg" in (event.action or "").lower():
        return "merges"
    if "points_balance" in keys:
        return "points"
    if keys and all(k.startswith("consent:") for k in keys):
        return "consent"
    return "traits"


def _activity_events(persona: Persona, kind: str) -> QuerySet[AuditEvent]:
    """The audit events that can be of ``kind`` (all of them for no kind): a kind filter
    reaches back past the newest entries of other kinds. ``activity_kind`` still decides
    each entry; this only narrows what is read."""
    events = AuditEvent.objects.filter(persona=persona)
    merge = Q(action__icontains="merg")
    if kind == "messages":
        return events.none()
    if kind == "flows":
        return events.filter(actor_kind="flow")
    if kind == "merges":
        return events.filter(merge).exclude(actor_kind="flow")
    if kind == "points":
        return (
            events.filter(changes__has_key="points_balance")
            .exclude(merge)
            .exclude(actor_kind="flow")
        )
    if kind in ("traits", "consent"):
        return events.exclude(merge).exclude(actor_kind="flow")
    return events


def _name_signup_forms(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """The events, with a recorded signup form shown by its name instead of its id (one query
    for all of them; a deleted form keeps its id)."""
    events = list(events)
    ids = {
        side
        for e in events
        for side in (
            (e.changes or {}).get("signup_form_id", {}).get("before"),
            (e.changes or {}).get("signup_form_id", {}).get("after"),
        )
        if isinstance(side, int)
    }
    if not ids:
        return events
    names = dict(SignupForm.objects.filter(pk__in=ids).values_list("pk", "name"))
    for e in events:
        change = (e.changes or {}).get("signup_form_id")
        if isinstance(change, dict):
            for side in ("before", "after"):
                if change.get(side) in names:
                    change[side] = f"“{names[change[side]]}”"
    return events


def persona_activity(
    persona: Persona, *, limit: int = ACTIVITY_LIMIT, kind: str = ""
) -> list[ActivityItem]:
    """The persona's latest ``limit`` entries, newest first (of one of ``ACTIVITY_KINDS``
    when ``kind`` names one: then only the rows that can be of that kind are read, so the
    newest ``limit`` of that kind show however many newer entries of other kinds there are),
    in at most four queries whatever the number of rows: the newest ``limit`` of the union
    lie within the newest ``limit`` of each.

    A consent change is one row (channel, states, who, when, evidence); the audit event that
    made it keeps only its other lines, and disappears when it had none (a STOP reply reads as
    the reply and its consent row, not three times)."""
    kind = kind if kind in ACTIVITY_KINDS else ""
    events = _name_signup_forms(
        _activity_events(persona, kind).select_related("actor_user")[:limit]
    )
    consents = [
        _consent_item(c)
        for c in ConsentChange.objects.filter(persona=persona)[: limit if kind != "messages" else 0]
    ]
    replies = InboundMessage.objects.filter(persona=persona)[
        : limit if kind in ("", "messages") else 0
    ]
    by_change: dict[tuple, list[ActivityItem]] = {}
    for row in consents:
        c = row.obj
        by_change.setdefault((c.channel, c.before, c.after, c.actor_label), []).append(row)
    items = [i for i in (_event_item(e, by_change) for e in events) if i.lines or not i.obj.changes]
    items += consents
    items += [ActivityItem("reply", r.received_at, r) for r in replies]
    sent = OutboundMessage.objects.filter(persona=persona).only(
        "channel", "template", "status", "created_at", "sent_at", "error", "persona_id"
    )[: limit if kind in ("", "messages") else 0]
    items += [ActivityItem("message", m.created_at, m) for m in sent]
    if kind:
        items = [i for i in items if activity_kind(i) == kind]
    # Within one moment a reply came first, then the change it made, then its consent rows
    # and the messages it sent: newest first shows them the other way round.
    order = {"reply": 3, "event": 0, "consent": 1, "message": -1}
    items.sort(key=lambda i: (i.at, order[i.kind], i.obj.pk), reverse=True)
    return items[:limit]


# ---------------------------------------------------------------------------------------------
# Replies: texts customers sent us, for staff

# "Unknown number" replies never have a persona, so they are never listed.
REPLY_OUTCOMES = [
    (value, label)
    for value, label in InboundMessage.Outcome.choices
    if value != InboundMessage.Outcome.UNKNOWN
]


@dataclass
class ReplyPage:
    replies: list[InboundMessage]
    next_cursor: str | None


def visible_replies(user: Any) -> QuerySet[InboundMessage]:
    """Replies from known addresses whose persona staff may see (never hidden or erased ones:
    an erased persona's replies keep neither number nor text)."""
    return (
        InboundMessage.objects.filter(visible_q("persona__"), persona__isnull=False)
        .exclude(persona__status=PersonaStatus.ERASED)
        .select_related("persona")
    )


def reply_page(*, user: Any, outcome: str, cursor: str, page_size: int) -> ReplyPage:
    """One page of replies, newest first. Keyset on the id (never OFFSET, never a COUNT)."""
    qs = visible_replies(user).order_by("-id")
    if outcome:
        qs = qs.filter(outcome=outcome)
    after = _decode(cursor) if cursor else None
    if after:
        qs = qs.filter(id__lt=after)
    rows = list(qs[: page_size + 1])
    next_cursor = str(rows[page_size - 1].pk) if len(rows) > page_size else None
    return ReplyPage(rows[:page_size], next_cursor)
