"""The import pipeline: parse → dedupe → match → plan → write in checkpointed batches.

Every data row ends as exactly one of created, updated, unchanged, skipped or error. Writes go
through the bulk forms of the one mutation path (``create_many`` / ``apply_many``), so every
created or changed persona has its audit event (actor: this import, line number), consents
follow the consent rules and the favorite store follows the precedence rule.

A batch's persona writes, its skipped/error rows, the job's counters and its checkpoint commit
in one transaction: a worker killed mid-import leaves whole batches only, and a resumed run
starts after the last committed line. A run that finds the checkpoint moved under it (another
worker took the job over) stops without writing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from personas import messaging
from personas.models import ADDRESS_CHANNELS, Channel, Persona, PersonaStatus, PointsEntry, Store
from personas.models.persona import EntrySource, FavoriteStoreSource, is_visible
from personas.normalize import name_key
from personas.services import changes
from personas.services import consent as consent_rules
from personas.services.bulkdb import select_in
from personas.services.changes import (
    Actor,
    AttributeOp,
    Changeset,
    ConsentAction,
    ConsentOp,
    PointsOp,
)
from personas.services.privacy import blocked_digests, identifier_digest

from .csvfile import iter_rows, storable
from .dedupe import SeenIdentifiers, fingerprint
from .formats import Hints
from .mapping import TARGETS, ParsedRow, column_format, parse_row, profile_rows
from .models import ImportIssue, ImportJob, PendingDoubleOptIn
from .uploads import drop_file

BATCH_SIZE = 1000
PREVIEW_EXAMPLES = 5
NEUTRAL_REFUSAL = "Not imported: this contact can't be added. A privacy/support user can explain."
OUTCOMES = ("created", "updated", "unchanged", "skipped", "error")


@dataclass
class RowResult:
    line: int
    outcome: str
    reason: str = ""
    raw: list[str] = field(default_factory=list)
    persona_id: int | None = None
    warning: str = ""  # taken, without a cell that identifies nobody


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    error: int = 0
    warnings: int = 0  # taken rows (created/updated/unchanged) left without a cell

    def add(self, outcome: str, warning: str = "") -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        if warning:
            self.warnings += 1

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + self.skipped + self.error

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in OUTCOMES}


# What the matcher reads of an existing persona: one tuple per row, no model instance.
_EXISTING_COLUMNS = (
    "id",
    "status",
    "hidden",
    "import_job_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "phone_ext",
    "birthday",
    "customer_id",
    "loyalty_enrolled",
    "points_balance",
    "attributes",
    "favorite_store_id",
    "favorite_store_source",
    "text_consent",
    "email_consent",
    "voice_consent",
    "push_consent",
    "browser_consent",
)


def _existing_rows(key: str, values: list[str]) -> list[tuple]:
    """Active and archived personas whose ``key`` (phone, email or customer ID) is one of
    ``values``, as ``_EXISTING_COLUMNS`` tuples in Python form: one plain indexed query (the
    ORM would compile the same statement anew for every batch)."""
    if not values:
        return []
    meta = Persona._meta
    rows = select_in(
        meta.db_table,
        [meta.get_field(name).column for name in _EXISTING_COLUMNS],
        meta.get_field(key).column,
        values,
        where="status IN (%s, %s)",
        params=[PersonaStatus.ACTIVE.value, PersonaStatus.ARCHIVED.value],
    )
    out = []
    birthday = _EXISTING_COLUMNS.index("birthday")
    attributes = _EXISTING_COLUMNS.index("attributes")
    booleans = [_EXISTING_COLUMNS.index(n) for n in ("hidden", "loyalty_enrolled")]
    for row in rows:
        row = list(row)
        if isinstance(row[birthday], str):
            row[birthday] = dt.date.fromisoformat(row[birthday])
        if isinstance(row[attributes], str):
            row[attributes] = json.loads(row[attributes])
        for index in booleans:
            row[index] = bool(row[index])
        out.append(tuple(row))
    return out


def _person(row: ParsedRow) -> int:
    """Who a row names, for telling strangers apart in one file: its last name (a nickname,
    "Bo" for "Bobby", is still the same customer); 0 without one (nothing to compare)."""
    name = name_key(row.fields.get("last_name") or "")
    return fingerprint("last", name) if name else 0


def _ident(key: str, get: Any) -> str:
    """The matching form of an identifier: a phone with an extension is its own identifier
    (an office line's extensions are different people); ``get`` reads a field."""
    value = str(get(key) or "")
    if key == "phone" and value:
        ext = get("phone_ext") or ""
        return f"{value};ext={ext}" if ext else value
    return value


def _survivors(key: str, values: list[str]) -> dict[str, Existing]:
    """``value → surviving active persona`` for values held only by merged-away personas
    (chains followed; a few queries per batch, none when no value is missing)."""
    if not values:
        return {}
    meta = Persona._meta
    column = meta.get_field(key).column
    merged = select_in(
        meta.db_table,
        [column, "merged_into_id"],
        column,
        values,
        where="status = %s",
        params=[PersonaStatus.MERGED.value],
    )
    target = {value: into for value, into in merged if into}
    for _ in range(10):  # follow chains of merges
        chain = dict(
            select_in(
                meta.db_table,
                ["id", "merged_into_id"],
                "id",
                sorted(set(target.values())),
                where="status = %s",
                params=[PersonaStatus.MERGED.value],
            )
        )
        if not chain:
            break
        target = {v: chain.get(t, t) or t for v, t in target.items()}
    rows = {
        row[0]: Existing(row)
        for row in _existing_rows("id", sorted(set(target.values())))
        if row[1] == PersonaStatus.ACTIVE
    }
    return {v: rows[t] for v, t in target.items() if t in rows}


class Existing:
    """An existing persona as read for matching (the attributes ``Persona`` has)."""

    __slots__ = _EXISTING_COLUMNS

    def __init__(self, row: tuple) -> None:
        for name, value in zip(_EXISTING_COLUMNS, row, strict=True):
            setattr(self, name, value)

    @property
    def pk(self) -> int:
        return self.id

    def consent(self, channel: str) -> str:
        return getattr(self, f"{channel}_consent")


def _unchanged(cs: Changeset, persona: Existing) -> bool:
    """True only when the mutation path would certainly change nothing (no lock, no write).

    Conservative: whenever in doubt it answers False and ``apply_many`` decides exactly.
    """
    if cs.consents or cs.points or cs.remove or cs.status is not None:
        return False
    for name, value in cs.fields.items():
        if getattr(persona, name) != value:
            return False
    attrs = persona.attributes or {}
    for op in cs.add:
        if op.key not in attrs:
            return False
    for op in cs.set:
        if (
            op.key not in attrs
            or attrs[op.key] != op.value
            or type(attrs[op.key]) is not type(op.value)
        ):
            return False
    if cs.favorite_store is not None:
        store_id, source = cs.favorite_store
        if changes.store_may_replace(
            persona.favorite_store_id, persona.favorite_store_source, source
        ) and (persona.favorite_store_id != store_id or persona.favorite_store_source != source):
            return False
    return True


class Importer:
    """Processes one job's rows. ``write=False`` is the dry run: it plans, writes nothing."""

    def __init__(self, job: ImportJob, *, write: bool) -> None:
        self.job = job
        self.write = write
        headers = job.headers
        hints = Hints(delimiter=job.delimiter)
        profiles, choices = job.profile or {}, job.formats or {}
        self.columns = []
        self.resolved = {}  # column index → formats.Resolved (how the column is read)
        for index, target in sorted(job.mapping.items(), key=lambda kv: int(kv[0])):
            if not target:
                continue
            resolved = column_format(target, profiles.get(index), choices.get(index), hints)
            self.resolved[int(index)] = resolved
            header = headers[int(index)] if int(index) < len(headers) else index
            self.columns.append((int(index), target, header, resolved.format))
        self.match_keys = [k for k in job.match_keys if k in ("phone", "email", "customer_id")]
        self.match_keys += [
            k for k in ("phone", "email", "customer_id") if k not in self.match_keys
        ]
        self.overwrite = job.existing == ImportJob.Existing.OVERWRITE
        self.send_now = job.double_opt_in == ImportJob.DoubleOptIn.NOW
        stores: dict[str, int] = {}
        for store in Store.objects.all():
            stores[store.name.strip().lower()] = store.pk
            stores[store.code.strip().lower()] = store.pk
        self.stores = stores
        # Identifiers of the rows taken so far → their line (on disk: memory stays flat).
        self.seen = SeenIdentifiers()
        self.created = job.created  # the job's created count as of the last committed batch

    def close(self) -> None:
        self.seen.close()

    # -- parsing and in-file dedupe -------------------------------------------------------------

    def _parse(self, line: int, cells: list[str]) -> tuple[ParsedRow, RowResult | None]:
        """Parse and validate one row; its identifier fingerprints go to ``row.prints``."""
        row = parse_row(line, cells, self.columns)
        if row.empty:
            return row, RowResult(line, "skipped", "Empty row.", cells)
        if row.store:
            store_id = self.stores.get(row.store.lower())
            if store_id is None:
                row.warnings.append(f"Favorite store: no store is called “{row.store[:60]}”")
            else:
                row.fields["_store"] = store_id
        if row.errors:
            return row, RowResult(line, "error", "; ".join(row.errors) + ".", cells)
        if not any(row.fields.get(k) for k in ("phone", "email", "customer_id")):
            # Only now do the unusable cells refuse the row: nothing else identifies it.
            why = "No phone, email or customer ID to identify the customer"
            return row, RowResult(line, "error", "; ".join([why, *row.warnings]) + ".", cells)
        row.prints = [
            fingerprint(k, _ident(k, row.fields.get))
            for k in ("phone", "email", "customer_id")
            if row.fields.get(k)
        ]
        return row, None

    # -- matching -------------------------------------------------------------------------------

    def _lookup(self, rows: list[ParsedRow]) -> dict[tuple[str, str], list[Existing]]:
        values: dict[str, set[str]] = {"phone": set(), "email": set(), "customer_id": set()}
        for row in rows:
            fields = row.fields
            for key, wanted in values.items():
                value = fields.get(key)
                if value:
                    wanted.add(str(value))
        found: dict[tuple[str, str], list[Existing]] = {}
        seen: set[int] = set()
        hits: list[Existing] = []
        for key, vals in values.items():
            for row in _existing_rows(key, list(vals)):
                if row[0] not in seen:
                    seen.add(row[0])
                    hits.append(Existing(row))
        hits.sort(key=lambda p: p.id)
        for persona in hits:
            for key, wanted in values.items():
                value = getattr(persona, key)
                if value and value in wanted:
                    found.setdefault((key, _ident(key, persona.__getattribute__)), []).append(
                        persona
                    )
        # Identifiers nobody active or archived holds may belong to a merged-away persona:
        # they resolve to its survivor (the profile staff kept), never to a new duplicate.
        for key in ("phone", "email"):
            missing = [v for v in values[key] if (key, v) not in found]
            for value, survivor in _survivors(key, missing).items():
                found[(key, value)] = [survivor]
        return found

    def _match(
        self, row: ParsedRow, found: dict[tuple[str, str], list[Existing]]
    ) -> tuple[Existing | None, str]:
        """The persona this row updates (or None: create), or a refusal reason."""
        match: Existing | None = None
        for key in self.match_keys:
            value = row.fields.get(key)
            if not value:
                continue
            candidates = found.get((key, _ident(key, row.fields.get)), [])
            if candidates:
                active = [p for p in candidates if p.status == PersonaStatus.ACTIVE]
                match = (active or candidates)[0]
                break
        # Another identifier of the row may belong to a different active persona.
        for key in ("phone", "email"):
            value = row.fields.get(key)
            if not value:
                continue
            for other in found.get((key, _ident(key, row.fields.get)), []):
                if not is_visible(other):
                    return None, NEUTRAL_REFUSAL
                if match is None or other.pk == match.pk or other.status != PersonaStatus.ACTIVE:
                    continue
                label = "phone number" if key == "phone" else "email"
                if match.status == PersonaStatus.ACTIVE:
                    return None, (
                        f"Its {label} belongs to another persona (#{other.pk}) than the one "
                        f"matched (#{match.pk}): merge them first."
                    )
        if match is not None and not is_visible(match):
            return None, NEUTRAL_REFUSAL
        if match is not None and match.status == PersonaStatus.ARCHIVED:
            return (
                None,
                "Archived: matches an archived persona, which an import does not reactivate.",
            )
        if match is None:
            for key in ("phone", "email"):
                if row.fields.get(key) and found.get((key, _ident(key, row.fields.get))):
                    other = found[(key, _ident(key, row.fields.get))][0]
                    if other.status == PersonaStatus.ARCHIVED:
                        return None, (
                            "Archived: matches an archived persona, which an import does not "
                            "reactivate."
                        )
        return match, ""

    # -- changesets -----------------------------------------------------------------------------

    def _consent_ops(
        self, row: ParsedRow, persona: Existing | None, fields: dict[str, Any] | None = None
    ) -> list[ConsentOp]:
        ops = []
        for channel, yes in row.consents.items():
            if persona is not None and channel in ADDRESS_CHANNELS:
                # Consent belongs to the address: only to the one the row names, and only when
                # the persona holds it after this row (a row matched by email whose phone is
                # not applied says nothing about the persona's own number).
                kind = ADDRESS_CHANNELS[channel]
                named = row.fields.get(kind)
                holds = (fields or {}).get(kind) or getattr(persona, kind)
                if not named or named != holds:
                    continue
            if persona is not None:
                state = persona.consent(channel)
            else:  # a new persona starts from its address's own record
                address = consent_rules.address_of(
                    channel, phone=row.fields.get("phone"), email=row.fields.get("email")
                )
                state = consent_rules.record_for(channel, address).state
            if yes:
                # An import never overrides an opt-out; push is never mapped.
                if state in ("opted_in", "opted_out", "pending"):
                    continue
                if channel == Channel.TEXT:
                    ops.append(ConsentOp(channel, ConsentAction.REQUEST_DOUBLE_OPT_IN))
                else:
                    ops.append(ConsentOp(channel, ConsentAction.OPT_IN))
            elif state == "never":
                ops.append(ConsentOp(channel, ConsentAction.OPT_OUT))
        return ops

    def _changeset(self, row: ParsedRow, persona: Existing | None) -> Changeset:
        fields = {k: v for k, v in row.fields.items() if not k.startswith("_")}
        store_id = row.fields.get("_store")
        points: list[PointsOp] = []
        if persona is None:
            cs = Changeset(fields={**fields, "import_job_id": self.job.pk})
            cs.set = [AttributeOp(k, v) for k, v in row.attrs.items()]
            if row.points:
                points.append(PointsOp(PointsEntry.Kind.ADJUST, row.points, "Imported balance"))
        else:
            if not self.overwrite:
                fields = {
                    k: v
                    for k, v in fields.items()
                    if k == "loyalty_enrolled" or getattr(persona, k) in (None, "")
                }
                if persona.loyalty_enrolled:
                    fields.pop("loyalty_enrolled", None)
                if "phone" not in fields:  # the extension belongs to the phone it came with
                    fields.pop("phone_ext", None)
            cs = Changeset(fields=fields)
            ops = [AttributeOp(k, v) for k, v in row.attrs.items()]
            if self.overwrite:
                cs.set = ops
            else:
                cs.add = ops
            if row.points is not None and row.points != persona.points_balance:
                if self.overwrite or persona.points_balance == 0:
                    points.append(
                        PointsOp(
                            PointsEntry.Kind.ADJUST,
                            row.points - persona.points_balance,
                            "Imported balance",
                        )
                    )
        cs.points = points
        cs.consents = self._consent_ops(row, persona, fields)
        if store_id:
            cs.favorite_store = (store_id, FavoriteStoreSource.IMPORT)
        cs.prechecked = True
        cs.send_messages = self.send_now
        cs.note = f"Import #{self.job.pk}"
        return cs

    def _identifier_conflict(
        self, cs: Changeset, persona: Existing, found: dict[tuple[str, str], list[Existing]]
    ) -> str:
        for key in ("phone", "email"):
            value = cs.fields.get(key)
            if value and any(
                p.pk != persona.pk and p.status == PersonaStatus.ACTIVE
                for p in found.get((key, _ident(key, cs.fields.get)), [])
            ):
                label = "phone number" if key == "phone" else "email"
                return f"Another active persona already has this {label}."
        return ""

    # -- one batch ------------------------------------------------------------------------------

    def process(self, batch: list[tuple[int, list[str]]]) -> list[RowResult]:
        with consent_rules.batch():
            return self._process(batch)

    def _process(self, batch: list[tuple[int, list[str]]]) -> list[RowResult]:
        results: dict[int, RowResult] = {}
        candidates: list[ParsedRow] = []
        for line, cells in batch:
            row, refused = self._parse(line, cells)
            if refused:
                results[line] = refused
            else:
                candidates.append(row)
        repeats = self.seen.match([(row.line, row.prints, _person(row)) for row in candidates])
        parsed: list[ParsedRow] = []
        for row in candidates:
            first, stranger = repeats.get(row.line, (None, False))
            if first is None:
                parsed.append(row)
            elif stranger:
                # One phone or email with different people: a placeholder (a shop's number,
                # "none@…"), not one customer. Folding them would merge strangers.
                results[row.line] = RowResult(
                    row.line,
                    "error",
                    f"Its phone, email or customer ID also came with a different person on "
                    f"line {first}: a placeholder? Correct it or leave that cell empty.",
                    row.raw,
                )
            else:
                results[row.line] = RowResult(
                    row.line, "skipped", f"Same customer as line {first} of this file.", row.raw
                )
        found = self._lookup(parsed)
        consent_rules.preload(
            phones=[row.fields.get("phone") for row in parsed],
            emails=[row.fields.get("email") for row in parsed],
        )
        digests: dict[int, list[str]] = {}
        for row in parsed:
            digests[row.line] = [
                identifier_digest(k, str(row.fields[k]))
                for k in ("phone", "email")
                if row.fields.get(k)
            ]
        blocked = blocked_digests(d for ds in digests.values() for d in ds)

        creates: list[tuple[ParsedRow, Changeset]] = []
        updates: list[tuple[ParsedRow, Existing, Changeset]] = []
        for row in parsed:
            if any(d in blocked for d in digests[row.line]):
                results[row.line] = RowResult(row.line, "skipped", NEUTRAL_REFUSAL, row.raw)
                continue
            persona, refusal = self._match(row, found)
            if refusal:
                outcome = "skipped" if refusal.startswith(("Archived", "Not imported")) else "error"
                results[row.line] = RowResult(row.line, outcome, refusal, row.raw)
                continue
            if persona is not None and persona.import_job_id == self.job.pk and self.write:
                # Created by an earlier line of this file before a resume: the same customer.
                results[row.line] = RowResult(
                    row.line, "skipped", "Same customer as an earlier line of this file.", row.raw
                )
                continue
            cs = self._changeset(row, persona)
            if persona is not None:
                conflict = self._identifier_conflict(cs, persona, found)
                if conflict:
                    results[row.line] = RowResult(row.line, "error", conflict, row.raw)
                    continue
                if _unchanged(cs, persona):
                    results[row.line] = RowResult(row.line, "unchanged", persona_id=persona.pk)
                    continue
                updates.append((row, persona, cs))
            else:
                creates.append((row, cs))

        if self.write:
            self._write(creates, updates, results)
        else:
            self._plan_only(creates, updates, results)
        for row in parsed:
            taken = results[row.line]
            if row.warnings and taken.outcome in ("created", "updated", "unchanged"):
                taken.warning = "; ".join(row.warnings) + "."
                taken.raw = taken.raw or row.raw
        return [results[line] for line, _ in batch]

    def _actor(self, line: int) -> Actor:
        return Actor.import_row(self.job.pk, line)

    def _plan_only(self, creates, updates, results) -> None:
        now = timezone.now()
        for row, cs in creates:
            try:
                changes.plan_create(cs, self._actor(row.line), entry_source=EntrySource.IMPORT)
            except changes.ChangeError as exc:
                results[row.line] = RowResult(row.line, "error", _message(exc), row.raw)
            else:
                results[row.line] = RowResult(row.line, "created")
        models = {
            p.pk: p
            for p in Persona.objects.filter(pk__in=[persona.pk for _, persona, _ in updates])
        }
        for row, persona, cs in updates:
            model = models.get(persona.pk)
            if model is None:
                results[row.line] = RowResult(row.line, "error", "Persona not found.", row.raw)
                continue
            try:
                plan = changes.plan_changes(model, cs, self._actor(row.line), now=now)
            except changes.ChangeError as exc:
                results[row.line] = RowResult(row.line, "error", _message(exc), row.raw)
            else:
                outcome = "updated" if plan.changed else "unchanged"
                results[row.line] = RowResult(row.line, outcome, persona_id=persona.pk)

    def _write(self, creates, updates, results) -> None:
        pending: list[int] = []
        if creates:
            outs = changes.create_many(
                [(cs, self._actor(row.line)) for row, cs in creates],
                entry_source=EntrySource.IMPORT,
            )
            for (row, _cs), out in zip(creates, outs, strict=True):
                if out.error is not None:
                    results[row.line] = RowResult(row.line, "error", _message(out.error), row.raw)
                else:
                    results[row.line] = RowResult(row.line, "created", persona_id=out.persona_id)
                    if out.deferred_messages:
                        pending.append(out.persona_id)
        if updates:
            items = [(p.pk, cs, self._actor(row.line)) for row, p, cs in updates]
            try:
                with transaction.atomic():
                    outs = changes.apply_many(items)
            except IntegrityError:
                outs = [_apply_one(*item) for item in items]
            for (row, persona, _cs), out in zip(updates, outs, strict=True):
                if out.error is not None:
                    results[row.line] = RowResult(row.line, "error", _message(out.error), row.raw)
                else:
                    outcome = "updated" if out.changed else "unchanged"
                    results[row.line] = RowResult(row.line, outcome, persona_id=persona.pk)
                    if out.deferred_messages:
                        pending.append(persona.pk)
        if pending:
            PendingDoubleOptIn.objects.bulk_create(
                [PendingDoubleOptIn(job=self.job, persona_id=pid) for pid in pending],
                ignore_conflicts=True,
            )


def _apply_one(pid: int, cs: Changeset, actor: Actor) -> changes.BulkOutcome:
    try:
        with transaction.atomic():
            result = changes.apply(pid, cs, actor)
    except changes.ChangeError as exc:
        return changes.BulkOutcome(pid, False, exc)
    return changes.BulkOutcome(pid, result.changed, None, result.attribute_ops, False)


def _message(exc: Exception) -> str:
    messages = getattr(exc, "messages", None) or [str(exc)]
    return " ".join(str(m) for m in messages)[:300]


def batches(rows: Iterable[tuple[int, list[str]]], size: int) -> Iterator[list]:
    batch: list = []
    for item in rows:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------------------------------
# Dry run and run


def profile_whole_file(job: ImportJob) -> None:
    """Profile the mapped columns whose format matters (numbers, dates, custom attributes)
    over the whole file: a column's format is what all its values show, not its first rows."""
    columns = [
        int(index)
        for index, target in job.mapping.items()
        if target
        and (target.startswith("attr:") or TARGETS.get(target, ("", ""))[1] in ("int", "date"))
    ]
    if not columns:
        return
    rows = iter_rows(job.file.path, encoding=job.encoding, delimiter=job.delimiter)
    profile = dict(job.profile or {})
    profile.update(profile_rows(rows, columns=columns))
    job.profile = profile
    ImportJob.objects.filter(pk=job.pk).update(profile=profile)


def column_summaries(importer: Importer) -> list[dict[str, Any]]:
    """For the preview: per column read as a number, date or typed attribute, its format,
    whether the file left it ambiguous, and a few values before → after."""
    out = []
    profiles = importer.job.profile or {}
    for index, target, header, fmt in importer.columns:
        if fmt.kind == "text" or (fmt.kind == "bool" and not target.startswith("attr:")):
            continue
        resolved = importer.resolved[index]
        profile = profiles.get(str(index)) or {}
        values = list(
            dict.fromkeys([*(profile.get("proofs") or {}).values(), *profile.get("examples", [])])
        )
        examples = []
        for value in values[:4]:
            try:
                after = _shown(fmt.read(value))
            except ValidationError as exc:
                after = f"not read: {exc.messages[0]}"
            examples.append([value, after])
        out.append(
            {
                "index": index,
                "header": header,
                "target": target_label(target),
                "format": fmt.label,
                "detected": resolved.detected,
                "ambiguous": resolved.ambiguous,
                "chosen": bool((importer.job.formats or {}).get(str(index))),
                "examples": examples,
            }
        )
    return out


def _shown(value: Any) -> str:
    """A read value as the product shows it (never an ISO date or a raw float)."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, dt.date):
        return f"{value.day} {value:%b %Y}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.10g}" if abs(value) < 1e15 else str(value)
    return str(value)


def preview(job: ImportJob) -> dict[str, Any]:
    """Count what the import would do over the whole file, with the first rows of each kind."""
    profile_whole_file(job)
    importer = Importer(job, write=False)
    counts = Counts()
    examples: dict[str, list[dict[str, Any]]] = {name: [] for name in (*OUTCOMES, "warning")}
    rows = iter_rows(job.file.path, encoding=job.encoding, delimiter=job.delimiter)
    done = 0
    try:
        for batch in batches(rows, BATCH_SIZE):
            for result in importer.process(batch):
                counts.add(result.outcome, result.warning)
                if len(examples[result.outcome]) < PREVIEW_EXAMPLES:
                    examples[result.outcome].append(
                        {
                            "line": result.line,
                            "reason": result.reason,
                            "cells": _cells(batch, result),
                        }
                    )
                if result.warning and len(examples["warning"]) < PREVIEW_EXAMPLES:
                    examples["warning"].append(
                        {
                            "line": result.line,
                            "reason": result.warning,
                            "cells": _cells(batch, result),
                        }
                    )
            done += len(batch)
            ImportJob.objects.filter(pk=job.pk).update(rows_done=done, heartbeat_at=timezone.now())
    finally:
        importer.close()
    return {
        "counts": counts.as_dict(),
        "columns": column_summaries(importer),
        "warnings": counts.warnings,
        "examples": examples,
        "total": counts.total,
    }


def _cells(batch: list[tuple[int, list[str]]], result: RowResult) -> list[str]:
    for line, cells in batch:
        if line == result.line:
            return storable([c[:80] for c in cells[:12]])
    return []


class Superseded(Exception):
    """Another run of the same job committed first; this one stops without writing."""


def run(job_id: int, *, on_completed: Callable[[ImportJob], None] | None = None) -> ImportJob:
    """Run (or resume) an import from its checkpoint, committing one batch at a time.

    ``on_completed`` is called with the job when this call completes it: the ``run_import``
    task schedules the deferred double opt-in texts there (the pipeline queues no task)."""
    job = ImportJob.objects.get(pk=job_id)
    if job.status in (ImportJob.Status.COMPLETED, ImportJob.Status.CANCELLED):
        return job
    now = timezone.now()
    if job.checkpoint_line == 0:  # a fresh run: nothing counted yet
        ImportJob.objects.filter(pk=job.pk).update(
            rows_done=0, created=0, updated=0, unchanged=0, skipped=0, errors=0, warnings=0
        )
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.RUNNING,
        started_at=job.started_at or now,
        heartbeat_at=now,
        message="",
    )
    job.refresh_from_db()
    importer = Importer(job, write=True)
    try:
        return _run_batches(importer, job, on_completed)
    finally:
        importer.close()


def _run_batches(
    importer: Importer, job: ImportJob, on_completed: Callable[[ImportJob], None] | None
) -> ImportJob:
    rows = iter_rows(
        job.file.path,
        encoding=job.encoding,
        delimiter=job.delimiter,
        start_after_line=job.checkpoint_line,
    )
    checkpoint = job.checkpoint_line
    try:
        size = getattr(settings, "IMPORTS_BATCH_SIZE", BATCH_SIZE) or BATCH_SIZE
        analyzed_at = importer.created = job.created
        for batch in batches(rows, size):
            checkpoint = _commit_batch(importer, job.pk, batch, checkpoint)
            if checkpoint is not None and importer.created - analyzed_at >= ANALYZE_EVERY:
                _refresh_statistics()
                analyzed_at = importer.created
            if checkpoint is None:  # cancelled
                job = ImportJob.objects.get(pk=job.pk)
                drop_file(job)
                return job
    except Superseded:
        return ImportJob.objects.get(pk=job.pk)
    except Exception as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.FAILED,
            message=f"Stopped: {_message(exc)[:200]} Resume to continue from line {checkpoint}.",
            heartbeat_at=timezone.now(),
        )
        raise
    if importer.created > analyzed_at:
        _refresh_statistics()
    finished = timezone.now()
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.COMPLETED, finished_at=finished, heartbeat_at=finished
    )
    job.refresh_from_db()
    drop_file(job)
    if on_completed is not None:
        on_completed(job)
    return job


# PostgreSQL plans the batch lookups (``phone IN (…1,000 values…)``) from table statistics;
# a table an import grew from empty has none until autovacuum analyzes it (never, where it is
# off), and the planner then scans the whole table per lookup (250 ms at a million rows
# against 5 ms). An import that created this many rows refreshes them itself.
ANALYZE_EVERY = 50_000


def _refresh_statistics() -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Persona._meta.db_table)}")


def _commit_batch(
    importer: Importer, job_id: int, batch: list[tuple[int, list[str]]], checkpoint: int
) -> int | None:
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.checkpoint_line != checkpoint:
            raise Superseded
        if job.cancel_requested:
            job.status = ImportJob.Status.CANCELLED
            job.finished_at = timezone.now()
            job.message = f"Cancelled after line {checkpoint}."
            job.save(update_fields=["status", "finished_at", "message"])
            return None
        importer.job = job
        results = importer.process(batch)
        counts = Counts()
        issues = []
        for result in results:
            counts.add(result.outcome, result.warning)
            if result.outcome in ("skipped", "error") or result.warning:
                issues.append(
                    ImportIssue(
                        job_id=job_id,
                        line=result.line,
                        outcome="warning" if result.warning else result.outcome,
                        reason=(result.warning or result.reason)[:300],
                        raw=storable(result.raw),
                        persona_id=result.persona_id,
                    )
                )
        ImportIssue.objects.bulk_create(issues, batch_size=500)
        job.created += counts.created
        importer.created = job.created  # committed with this batch (read for ANALYZE)
        job.updated += counts.updated
        job.unchanged += counts.unchanged
        job.skipped += counts.skipped
        job.errors += counts.error
        job.warnings += counts.warnings
        job.rows_done += len(batch)
        job.checkpoint_line = batch[-1][0]
        job.heartbeat_at = timezone.now()
        job.save(
            update_fields=[
                "created",
                "updated",
                "unchanged",
                "skipped",
                "errors",
                "warnings",
                "rows_done",
                "checkpoint_line",
                "heartbeat_at",
            ]
        )
        return job.checkpoint_line


def send_pending_double_opt_in(job_id: int) -> int:
    """Queue the double opt-in texts an import left pending (still pending personas only)."""
    sent = 0
    while True:
        with transaction.atomic():
            rows = list(
                PendingDoubleOptIn.objects.select_for_update(skip_locked=True)
                .filter(job_id=job_id, sent_at__isnull=True)
                .select_related("persona")[:500]
            )
            if not rows:
                break
            now = timezone.now()
            for row in rows:
                persona = row.persona
                if (
                    persona.text_consent == "pending"
                    and persona.status == PersonaStatus.ACTIVE
                    and is_visible(persona)
                ):
                    messaging.queue(
                        persona, channel="text", template="double_opt_in", transactional=True
                    )
                    sent += 1
                row.sent_at = now
            PendingDoubleOptIn.objects.bulk_update(rows, ["sent_at"])
    ImportJob.objects.filter(pk=job_id).update(doi_sent_at=timezone.now())
    return sent


def target_label(target: str) -> str:
    if target.startswith("attr:"):
        return f"Custom attribute “{target[5:]}”"
    return TARGETS.get(target, ("Ignored",))[0]
