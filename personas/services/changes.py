"""The one mutation path: every change to a persona goes through ``apply`` (or ``apply_many``).

Invariants, whatever the caller (staff UI, import, flow, customer, merge, erasure):

* the changeset is validated first; an invalid changeset changes nothing;
* custom attribute operations run in the fixed order add → set → remove, whatever their
  order inside each list (add keeps an existing value, set writes, remove deletes);
* consent follows the rules: opt-outs are immediate (a forced one is recorded as hard), push
  opt-in only from the customer, a text opt-in by staff/import/flow becomes a pending double
  opt-in and queues a confirmation text;
* favorite store follows the precedence wallet > signup form > staff > import > purchase;
* one audit event (actor, before → after per key) is written in the same transaction, and
  nothing is written when nothing changed;
* the persona row is locked while it changes, and a caller that says what it saw
  (``Changeset.expected``) is refused when another change got there first.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from ..models import (
    ADDRESS_CHANNELS,
    AuditEvent,
    Channel,
    ConsentChange,
    EntrySource,
    FavoriteStoreSource,
    Persona,
    PersonaStatus,
    PointsEntry,
    SignupForm,
    Store,
)
from ..normalize import (
    PlaceholderIdentifier,
    clean_text,
    name_key,
    normalize_email,
    normalize_phone,
    phone_extension,
    unstorable,
)
from . import consent as consent_rules
from .consent import AddressWrite, ConsentAction
from .phone_index import index_phones

# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class Actor:
    """Who makes a change. ``kind`` is one of AuditEvent.ActorKind."""

    kind: str
    user: Any = None
    label: str = ""
    ref: dict[str, Any] = field(default_factory=dict)
    # For a customer: the identifier kinds ("phone", "email") they proved in this session
    # with a one-time code (a text reply proves its phone). Decides double opt-in.
    proven: frozenset[str] = frozenset()

    @classmethod
    def staff(cls, user: Any) -> Actor:
        return cls("user", user, user.get_username(), {"user_id": user.pk})

    @classmethod
    def import_row(cls, job_id: int, row: int) -> Actor:
        return cls("import", None, f"Import #{job_id}, row {row}", {"import": job_id, "row": row})

    @classmethod
    def flow_step(cls, flow: str, run_id: int, step: str) -> Actor:
        return cls(
            "flow",
            None,
            f"Flow “{flow}”, run #{run_id}, step {step}",
            {"run": run_id, "step": step},
        )

    @classmethod
    def customer(
        cls, via: str = "", *, proven: Iterable[str] = (), confirm_email: bool = True
    ) -> Actor:
        """``proven``: identifier kinds proved with a code; ``confirm_email``: an email opt-in
        from an unproven address is confirmed by a link (a signup form may turn it off)."""
        label = f"Customer ({via})" if via else "Customer"
        ref = {"via": via, "confirm_email": confirm_email}
        return cls("customer", None, label, ref, frozenset(proven))

    @classmethod
    def system(cls, label: str = "System") -> Actor:
        return cls("system", None, label)


@dataclass(frozen=True)
class AttributeOp:
    key: str
    value: Any = None


@dataclass(frozen=True)
class ConsentOp:
    channel: str
    action: str
    state: str = ""  # for ADOPT: the state to take over (merge / unmerge only)


@dataclass(frozen=True)
class PointsOp:
    kind: str
    points: int
    reason: str = ""
    purchase_id: int | None = None


@dataclass
class Changeset:
    """What to change. Every part is optional; ``fields`` holds standard traits as typed."""

    fields: dict[str, Any] = field(default_factory=dict)
    add: list[AttributeOp] = field(default_factory=list)
    set: list[AttributeOp] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    consents: list[ConsentOp] = field(default_factory=list)
    favorite_store: tuple[int | None, str] | None = None
    points: list[PointsOp] = field(default_factory=list)
    # status change: ("archived", reason) or ("active", "")
    status: tuple[str, str] | None = None
    # With status "merged": the surviving persona's id.
    merged_into: int | None = None
    # What the caller saw, by audit key ("email", "attr:vip"): a stale edit is refused.
    expected: dict[str, Any] = field(default_factory=dict)
    action: str = "update"
    note: str = ""
    # What proves a consent change (a message id, a signup form, a one-time code…); the
    # actor's label when empty.
    evidence: str = ""
    # The caller already checked, in bulk, the blocklist, active duplicates and store ids
    # (imports); the database constraints stay the backstop.
    prechecked: bool = False
    # False: a double opt-in request is recorded as pending but its text is not queued yet
    # (an import's "send later"); the caller sends it afterwards.
    send_messages: bool = True

    def is_empty(self) -> bool:
        return not (
            self.fields
            or self.add
            or self.set
            or self.remove
            or self.consents
            or self.favorite_store
            or self.points
            or self.status
        )


# ---------------------------------------------------------------------------------------------
# Errors


class ChangeError(ValidationError):
    """The changeset was refused; nothing was written."""


class DuplicatePersonaError(ChangeError):
    def __init__(self, field_name: str, existing: Persona) -> None:
        label = "phone number" if field_name == "phone" else "email"
        super().__init__({field_name: [f"Another active persona already has this {label}."]})
        self.field_name = field_name
        self.existing = existing


class BlockedIdentifierError(ChangeError):
    """An identifier may not be used (privacy). The message never says why."""

    def __init__(self) -> None:
        super().__init__(
            "This phone number or email can't be used for a persona. "
            "A privacy/support user can help."
        )


class StaleEditError(ChangeError):
    def __init__(self, keys: list[str]) -> None:
        names = ", ".join(k.removeprefix("attr:") for k in keys)
        super().__init__(
            f"Someone else changed {names} while you were editing. "
            "Reload the persona to see the new value, then try again."
        )
        self.keys = keys


# ---------------------------------------------------------------------------------------------
# Validation

STANDARD_FIELDS = ("first_name", "last_name", "email", "phone", "birthday", "customer_id")
EDITABLE_FIELDS = (*STANDARD_FIELDS, "phone_ext", "loyalty_enrolled")
CREATE_ONLY_FIELDS = ("entry_source", "signup_form_id", "import_job_id")
CHANNELS = tuple(c.value for c in Channel)
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
MISSING = object()

_POINTS_KINDS = frozenset(PointsEntry.Kind.values)
_STORE_SOURCES = frozenset(FavoriteStoreSource.values)
_STATUSES = frozenset(PersonaStatus.values)
_ENTRY_SOURCES = frozenset(EntrySource.values)
_TODAY: list[Any] = [None, None]  # (minute, time zone) → local date


def _local_today() -> dt.date:
    """``timezone.localdate()``, worked out at most once a minute per time zone (bulk paths
    validate a birthday on every row)."""
    key = (int(timezone.now().timestamp()) // 60, timezone.get_current_timezone_name())
    if _TODAY[0] != key:
        _TODAY[0], _TODAY[1] = key, timezone.localdate()
    return _TODAY[1]


def _utc_yesterday() -> dt.date:
    """A date before this one is in the past in every time zone (UTC−12 … UTC+14), so only
    dates from here on need the active time zone's ``_local_today``."""
    return (timezone.now().astimezone(dt.UTC) - dt.timedelta(days=1)).date()


def birthday_in_past(day: dt.date) -> bool:
    """The birthday rule: from 1900 on, and not after today in the active time zone."""
    return day.year >= 1900 and (day < _utc_yesterday() or day <= _local_today())


FAVORITE_STORE_RANK = {
    FavoriteStoreSource.WALLET: 5,
    FavoriteStoreSource.SIGNUP_FORM: 4,
    FavoriteStoreSource.STAFF: 3,
    FavoriteStoreSource.IMPORT: 2,
    FavoriteStoreSource.PURCHASE: 1,
}


def store_may_replace(current_id: int | None, current_source: str, source: str) -> bool:
    """The favorite store precedence rule: a store from ``source`` may replace the current
    one when there is none or ``source`` ranks at least as high as where it came from."""
    return current_id is None or FAVORITE_STORE_RANK[source] >= FAVORITE_STORE_RANK.get(
        current_source, 0
    )


def validate_attribute_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ValidationError("An attribute key cannot be empty.")
    key = key.strip()
    limit = settings.PERSONAS_ATTRIBUTE_KEY_MAX
    if len(key) > limit:
        raise ValidationError(f"Attribute key “{key[:20]}…” is longer than {limit} characters.")
    if not _KEY_RE.match(key):
        raise ValidationError(
            f"Attribute key “{key}” may use letters, digits, “_”, “-” and “.”, "
            "and must start with a letter or “_”."
        )
    return key


def validate_attribute_value(key: str, value: Any) -> Any:
    """Values are typed: string, number, boolean, date (stored as ISO text) or null."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise ValidationError(f"The number for “{key}” is too large.")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"The number for “{key}” must be finite.")
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        limit = settings.PERSONAS_ATTRIBUTE_VALUE_MAX
        if len(value) > limit:
            raise ValidationError(f"The value for “{key}” is longer than {limit} characters.")
        problem = unstorable(value)
        if problem == "NUL character":
            raise ValidationError(f"The value for “{key}” contains a NUL character.")
        if problem:
            raise ValidationError(f"The value for “{key}” is not valid text.")
        return value
    raise ValidationError(
        f"The value for “{key}” must be text, a number, true/false, a date or empty."
    )


def _validate_field(name: str, value: Any) -> Any:
    if name in ("first_name", "last_name"):
        label = "First name" if name == "first_name" else "Last name"
        return clean_text(value, max_length=150, label=label)
    if name == "email":
        return normalize_email(value)
    if name == "phone":
        return normalize_phone(value)
    if name == "phone_ext":
        text = "" if value is None else str(value).strip()
        if text and not (text.isascii() and text.isdigit() and len(text) <= 10):
            raise ValidationError("An extension is up to 10 digits.")
        return text
    if name == "customer_id":
        return clean_text(value, max_length=64, label="Customer ID") or None
    if name == "birthday":
        if value in (None, ""):
            return None
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value.strip())
            except ValueError as exc:
                raise ValidationError("Enter the birthday as a date (YYYY-MM-DD).") from exc
        if isinstance(value, dt.datetime):
            value = value.date()
        if not isinstance(value, dt.date):
            raise ValidationError("Enter the birthday as a date.")
        if not birthday_in_past(value):
            raise ValidationError("The birthday must be a real date in the past.")
        return value
    if name == "loyalty_enrolled":
        if not isinstance(value, bool):
            raise ValidationError("Loyalty must be on or off.")
        return value
    if name == "entry_source":
        if value not in _ENTRY_SOURCES:
            raise ValidationError("Unknown entry source.")
        return value
    if name == "import_job_id":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValidationError("Unknown import.")
        return value
    if name == "signup_form_id":
        if value is None:
            return None
        if not SignupForm.objects.filter(pk=value).exists():
            raise ValidationError("Unknown signup form.")
        return int(value)
    raise ValidationError(f"“{name}” is not a persona trait.")


@dataclass
class _Clean:
    fields: dict[str, Any]
    add: list[tuple[str, Any]]
    set: list[tuple[str, Any]]
    remove: list[str]
    # Identifiers left out because they identify nobody (placeholders), with why.
    warnings: list[str] = field(default_factory=list)


def validate(changeset: Changeset, *, creating: bool) -> _Clean:
    """Check and normalise a changeset; raise ChangeError with every problem found."""
    errors: dict[str, list[str]] = {}

    def err(key: str, exc: ValidationError) -> None:
        errors.setdefault(key, []).extend(exc.messages)

    fields: dict[str, Any] = {}
    warnings: list[str] = []
    allowed = EDITABLE_FIELDS + (CREATE_ONLY_FIELDS if creating else ())
    for name, value in changeset.fields.items():
        if name not in allowed:
            errors.setdefault("__all__", []).append(f"“{name}” cannot be changed here.")
            continue
        try:
            fields[name] = _validate_field(name, value)
        except PlaceholderIdentifier as exc:
            warnings.extend(exc.messages)  # the customer is kept without it
        except ValidationError as exc:
            err(name, exc)
    if "phone" in changeset.fields and "phone_ext" not in changeset.fields:
        # A phone written without its extension has none ("(202) 555-0100 ext. 12" keeps 12).
        fields["phone_ext"] = (
            phone_extension(changeset.fields["phone"]) if fields.get("phone") else ""
        )
    elif "phone" in fields and not fields["phone"]:
        fields["phone_ext"] = ""

    def clean_ops(ops: Iterable[AttributeOp], section: str) -> list[tuple[str, Any]]:
        out = []
        for op in ops:
            try:
                key = validate_attribute_key(op.key)
                out.append((key, validate_attribute_value(key, op.value)))
            except ValidationError as exc:
                err(f"attributes_{section}", exc)
        return out

    add = clean_ops(changeset.add, "add")
    set_ = clean_ops(changeset.set, "set")
    remove = []
    for key in changeset.remove:
        try:
            remove.append(validate_attribute_key(key))
        except ValidationError as exc:
            err("attributes_remove", exc)

    for op in changeset.consents:
        if op.channel not in CHANNELS:
            errors.setdefault("consent", []).append(f"Unknown channel “{op.channel}”.")
        if op.action not in ConsentAction.ALL:
            errors.setdefault("consent", []).append(f"Unknown consent action “{op.action}”.")
    if changeset.favorite_store is not None:
        store_id, source = changeset.favorite_store
        if source not in _STORE_SOURCES:
            errors.setdefault("favorite_store", []).append("Unknown favorite store source.")
        elif (
            store_id is not None
            and not changeset.prechecked
            and not Store.objects.filter(pk=store_id).exists()
        ):
            errors.setdefault("favorite_store", []).append("Unknown store.")
    for op in changeset.points:
        if op.kind not in _POINTS_KINDS:
            errors.setdefault("points", []).append("Unknown kind of points entry.")
        if not isinstance(op.points, int) or isinstance(op.points, bool):
            errors.setdefault("points", []).append("Points must be a whole number.")
        elif abs(op.points) > 10_000_000:
            errors.setdefault("points", []).append("That is too many points for one entry.")
    if changeset.status is not None and changeset.status[0] not in _STATUSES:
        errors.setdefault("status", []).append("Unknown status.")
    if errors:
        raise ChangeError(errors)
    return _Clean(fields, add, set_, remove, warnings)


# ---------------------------------------------------------------------------------------------
# Planning (pure: works on an in-memory persona, writes nothing)


@dataclass
class Plan:
    persona: Persona
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    consent_changes: list[ConsentChange] = field(default_factory=list)
    points_entries: list[PointsEntry] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)  # (channel, template)
    attribute_ops: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dirty_fields: set[str] = field(default_factory=set)
    deferred_messages: list[tuple[str, str]] = field(default_factory=list)
    address_writes: list[AddressWrite] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _json(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _set_field(plan: Plan, name: str, value: Any, key: str | None = None) -> None:
    persona = plan.persona
    before = getattr(persona, name)
    if before == value:
        return
    setattr(persona, name, value)
    plan.dirty_fields.add(name)
    plan.changes[key or name] = {"before": _json(before), "after": _json(value)}


def apply_attribute_ops(
    attributes: dict[str, Any],
    add: Sequence[tuple[str, Any]],
    set_: Sequence[tuple[str, Any]],
    remove: Sequence[str],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pure add → set → remove over a dict. Returns the new dict and what each op did."""
    attrs = dict(attributes)
    outcomes: list[dict[str, Any]] = []
    for key, value in add:
        if key in attrs:
            outcomes.append({"op": "add", "key": key, "result": "kept"})
        else:
            attrs[key] = value
            outcomes.append({"op": "add", "key": key, "result": "created"})
    for key, value in set_:
        result = "created" if key not in attrs else ("kept" if attrs[key] == value else "replaced")
        attrs[key] = value
        outcomes.append({"op": "set", "key": key, "result": result})
    for key in remove:
        if key in attrs:
            del attrs[key]
            outcomes.append({"op": "remove", "key": key, "result": "removed"})
        else:
            outcomes.append({"op": "remove", "key": key, "result": "absent"})
    return attrs, outcomes


def _plan_attributes(
    before_attrs: dict[str, Any], clean: _Clean, changes: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """add → set → remove over ``before_attrs``; records each changed key in ``changes``."""
    after_attrs, outcomes = apply_attribute_ops(before_attrs, clean.add, clean.set, clean.remove)
    touched = {o["key"] for o in outcomes}
    for key in sorted(touched):
        b = before_attrs.get(key, MISSING)
        a = after_attrs.get(key, MISSING)
        if b is MISSING and a is MISSING:
            continue  # e.g. created then removed inside one node: nothing changed
        if b is not MISSING and a is not MISSING and a == b and type(a) is type(b):
            continue
        changes[f"attr:{key}"] = {
            "before": None if b is MISSING else b,
            "after": None if a is MISSING else a,
            "op": "created" if b is MISSING else ("removed" if a is MISSING else "replaced"),
            "ops": [f"{o['op']}:{o['result']}" for o in outcomes if o["key"] == key],
        }
    return after_attrs, outcomes


def _consent_change(
    plan: Plan,
    channel: str,
    before: str,
    after: str,
    hard: bool,
    actor: Actor,
    evidence: str,
    now: dt.datetime,
) -> None:
    """Record one consent change of the plan's persona (and of its address's record)."""
    persona = plan.persona
    setattr(persona, f"{channel}_consent", after)
    plan.dirty_fields.add(f"{channel}_consent")
    address = consent_rules.address_of(channel, phone=persona.phone, email=persona.email)
    digest = consent_rules.address_digest(channel, address) if address else ""
    plan.consent_changes.append(
        ConsentChange(
            channel=channel,
            before=before,
            after=after,
            hard=hard,
            actor_kind=actor.kind,
            actor_label=actor.label[:200],
            actor_user=actor.user,
            address=digest,
            evidence=evidence[:200],
            created_at=now,
        )
    )


def _derive_address_consents(plan: Plan, actor: Actor, now: dt.datetime) -> None:
    """A persona that holds a new address (or becomes active again) shows that address's own
    record: consent never travels from one phone number or email address to another."""
    persona = plan.persona
    for d in consent_rules.derive_from_addresses(
        phone=persona.phone,
        email=persona.email,
        current={c: persona.consent(c) for c in ADDRESS_CHANNELS},
    ):
        plan.changes[f"consent:{d.channel}"] = {
            "before": d.before,
            "after": d.after,
            "address": d.why,
        }
        _consent_change(plan, d.channel, d.before, d.after, False, actor, d.why, now)


def _consent_step(
    op: ConsentOp, before: str, actor: Actor, address: str | None
) -> tuple[consent_rules.Transition, consent_rules.Record]:
    """The consent rule for one op, given the address it belongs to (both planners)."""
    record = consent_rules.record_for(op.channel, address)
    step = consent_rules.transition(
        channel=op.channel,
        action=op.action,
        before=before,
        actor_kind=actor.kind,
        proven=actor.proven,
        has_address=address is not None,
        customer_opted_out=record.customer_opted_out,
        text_double_opt_in=settings.PERSONAS_TEXT_DOUBLE_OPT_IN,
        email_double_opt_in=actor.kind == "customer"
        and "email" not in actor.proven
        and actor.ref.get("confirm_email", True),
        adopt_state=op.state,
    )
    return step, record


def _address_write(
    op: ConsentOp,
    step: consent_rules.Transition,
    before: str,
    record: consent_rules.Record,
    address: str | None,
    actor: Actor,
    evidence: str,
) -> AddressWrite | None:
    """What the address's record must become after one op (both planners), or None: a new
    state, or the same state now chosen by the customer themselves (a STOP on an address
    staff had opted out keeps it theirs to undo)."""
    choice = consent_rules.customer_choice_after(actor.kind, step.after)
    if address is None or (
        step.after == before and (choice is None or choice == record.customer_choice)
    ):
        return None
    return AddressWrite(
        op.channel, address, step.after, step.hard, choice, actor.kind, actor.label, evidence
    )


def _plan_consent(plan: Plan, op: ConsentOp, actor: Actor, now: dt.datetime, evidence: str) -> None:
    persona = plan.persona
    field_name = f"{op.channel}_consent"
    before = getattr(persona, field_name)
    address = consent_rules.address_of(op.channel, phone=persona.phone, email=persona.email)
    step, record = _consent_step(op, before, actor, address)
    if step.error:
        raise ChangeError({step.error[0]: [step.error[1]]})
    template = consent_rules.DOUBLE_OPT_IN_TEMPLATES.get(op.channel, "")
    if step.resend:
        if persona.pk:
            _refuse_fast_resend(persona, now, op.channel, template)
            plan.messages.append((op.channel, template))
            plan.changes[f"consent:{op.channel}"] = {
                "before": before,
                "after": before,
                "resent": True,
            }
        return
    if step.double_opt_in:
        plan.messages.append((op.channel, template))
    write = _address_write(op, step, before, record, address, actor, evidence)
    if write is not None:
        plan.address_writes.append(write)
    if step.after == before:
        return
    entry = {"before": before, "after": step.after}
    if step.hard:
        entry["hard"] = True
    plan.changes[f"consent:{op.channel}"] = entry
    _consent_change(plan, op.channel, before, step.after, step.hard, actor, evidence, now)


def _refuse_fast_resend(persona: Persona, now: dt.datetime, channel: str, template: str) -> None:
    from ..models import OutboundMessage

    wait = settings.PERSONAS_DOI_RESEND_MINUTES
    recent = OutboundMessage.objects.filter(
        persona=persona,
        template=template,
        created_at__gte=now - dt.timedelta(minutes=wait),
    ).exists()
    if recent:
        what = "text" if channel == Channel.TEXT else "email"
        raise ChangeError(
            {
                f"{channel}_consent": [
                    f"A double opt-in {what} was sent less than {wait} minutes ago. "
                    "Give the customer time to reply before sending another."
                ]
            }
        )


def _plan_status(plan: Plan, status: str, reason: str, now: dt.datetime) -> None:
    persona = plan.persona
    current = persona.status
    if status == current:
        return
    allowed = {
        (PersonaStatus.ACTIVE, PersonaStatus.ARCHIVED),
        (PersonaStatus.ARCHIVED, PersonaStatus.ACTIVE),
        (PersonaStatus.ACTIVE, PersonaStatus.MERGED),
        (PersonaStatus.ARCHIVED, PersonaStatus.MERGED),
        (PersonaStatus.MERGED, PersonaStatus.ACTIVE),
        (PersonaStatus.MERGED, PersonaStatus.ARCHIVED),
        (PersonaStatus.ACTIVE, PersonaStatus.ERASED),
        (PersonaStatus.ARCHIVED, PersonaStatus.ERASED),
        (PersonaStatus.MERGED, PersonaStatus.ERASED),
    }
    if (current, status) not in allowed:
        raise ChangeError({"status": [f"A {current} persona cannot become {status}."]})
    if status == PersonaStatus.ACTIVE:
        _refuse_duplicates(persona, exclude_self=True, unarchive=True)
    _set_field(plan, "status", status)
    if status == PersonaStatus.ARCHIVED:
        _set_field(plan, "archived_reason", reason[:200])
        _set_field(plan, "archived_at", now)
    elif status == PersonaStatus.ACTIVE:
        _set_field(plan, "archived_reason", "")
        _set_field(plan, "archived_at", None)


def _refuse_duplicates(persona: Persona, *, exclude_self: bool, unarchive: bool = False) -> None:
    for name in ("phone", "email"):
        value = getattr(persona, name)
        if not value:
            continue
        qs = Persona.objects.filter(status=PersonaStatus.ACTIVE, **{name: value})
        if name == "phone":
            qs = qs.filter(phone_ext=persona.phone_ext)
        if exclude_self and persona.pk:
            qs = qs.exclude(pk=persona.pk)
        existing = qs.only("id", "first_name", "last_name", "email", "phone").first()
        if existing is not None:
            error = DuplicatePersonaError(name, existing)
            if unarchive:
                label = "phone number" if name == "phone" else "email"
                error.error_dict = {
                    name: [
                        ValidationError(
                            f"An active persona already has this {label}: merge the two "
                            "personas instead of unarchiving."
                        )
                    ]
                }
            raise error


def plan_changes(
    persona: Persona, changeset: Changeset, actor: Actor, *, now: dt.datetime | None = None
) -> Plan:
    """Apply a changeset to an in-memory persona and describe the difference.

    Shared by ``apply``, ``create`` and ``apply_many`` so every path has the same semantics.
    """
    now = now or timezone.now()
    creating = persona.pk is None
    clean = validate(changeset, creating=creating)
    plan = Plan(persona, warnings=clean.warnings)

    if not creating and changeset.expected:
        stale = [k for k, v in changeset.expected.items() if _current(persona, k) != v]
        if stale:
            raise StaleEditError(stale)

    if persona.status in (PersonaStatus.ERASED,) and not creating:
        raise ChangeError("This persona's data was deleted; it cannot be changed.")
    if (
        persona.status == PersonaStatus.MERGED
        and not creating
        and changeset.status is None
        and actor.kind not in ("customer", "system")
    ):
        # Only merge/unmerge (a status change) touch a merged-away profile; a customer's own
        # reply (STOP, YES) and the system's expiry still reach its number's consent.
        raise ChangeError(
            f"This persona was merged into persona #{persona.merged_into_id}: "
            "change the surviving profile instead (or undo the merge first)."
        )

    for name, value in clean.fields.items():
        _set_field(plan, name, value)
    if "first_name" in plan.dirty_fields:
        persona.first_key = name_key(persona.first_name)
        plan.dirty_fields.add("first_key")
    if "last_name" in plan.dirty_fields:
        persona.last_key = name_key(persona.last_name)
        plan.dirty_fields.add("last_key")
    if "loyalty_enrolled" in plan.dirty_fields:
        persona.loyalty_enrolled_at = now if persona.loyalty_enrolled else None
        plan.dirty_fields.add("loyalty_enrolled_at")

    if clean.add or clean.set or clean.remove:
        before_attrs = dict(persona.attributes or {})
        after_attrs, outcomes = _plan_attributes(before_attrs, clean, plan.changes)
        plan.attribute_ops = outcomes
        if after_attrs != before_attrs:
            persona.attributes = after_attrs
            plan.dirty_fields.add("attributes")

    if changeset.favorite_store is not None:
        store_id, source = changeset.favorite_store
        if store_may_replace(persona.favorite_store_id, persona.favorite_store_source, source):
            before = persona.favorite_store_id
            if before != store_id or persona.favorite_store_source != source:
                persona.favorite_store_id = store_id
                persona.favorite_store_source = source if store_id else ""
                plan.dirty_fields.update({"favorite_store", "favorite_store_source"})
                if before != store_id:
                    plan.changes["favorite_store"] = {
                        "before": _store_label(before),
                        "after": _store_label(store_id),
                        "source": source,
                    }

    if changeset.status is not None:
        _plan_status(plan, changeset.status[0], changeset.status[1], now)
        if persona.status == PersonaStatus.MERGED and changeset.merged_into:
            if persona.merged_into_id != changeset.merged_into:
                plan.changes["merged_into"] = {
                    "before": persona.merged_into_id,
                    "after": changeset.merged_into,
                }
                persona.merged_into_id = changeset.merged_into
                plan.dirty_fields.add("merged_into")
        elif persona.status != PersonaStatus.MERGED and persona.merged_into_id:
            plan.changes["merged_into"] = {"before": persona.merged_into_id, "after": None}
            persona.merged_into_id = None
            plan.dirty_fields.add("merged_into")

    if (
        creating
        or {"phone", "email"} & plan.dirty_fields
        or ("status" in plan.dirty_fields and persona.status == PersonaStatus.ACTIVE)
    ):
        _derive_address_consents(plan, actor, now)
    evidence = changeset.evidence or actor.label
    for op in changeset.consents:
        _plan_consent(plan, op, actor, now, evidence)

    if changeset.points:
        if persona.status != PersonaStatus.ACTIVE and any(
            op.kind == PointsEntry.Kind.EARN for op in changeset.points
        ):
            raise ChangeError({"points": ["An archived persona earns no points."]})
        before = persona.points_balance
        for op in changeset.points:
            persona.points_balance += op.points
            plan.points_entries.append(
                PointsEntry(
                    kind=op.kind,
                    points=op.points,
                    reason=op.reason[:200],
                    purchase_id=op.purchase_id,
                    actor_user=actor.user,
                    actor_label=actor.label[:200],
                    created_at=now,
                )
            )
        if persona.points_balance != before:
            plan.dirty_fields.add("points_balance")
            plan.changes["points_balance"] = {"before": before, "after": persona.points_balance}

    if (creating or {"phone", "email"} & plan.dirty_fields) and not changeset.prechecked:
        from .privacy import is_blocked

        if persona.status != PersonaStatus.ERASED and is_blocked(
            phone=persona.phone if (creating or "phone" in plan.dirty_fields) else None,
            email=persona.email if (creating or "email" in plan.dirty_fields) else None,
        ):
            raise BlockedIdentifierError()
    if changeset.prechecked:
        pass
    elif creating:
        _refuse_duplicates(persona, exclude_self=False)
    elif {
        "phone",
        "phone_ext",
        "email",
    } & plan.dirty_fields and persona.status == PersonaStatus.ACTIVE:
        _refuse_duplicates(persona, exclude_self=True)
    if not changeset.send_messages:
        plan.deferred_messages = plan.messages
        plan.messages = []
    return plan


def _current(persona: Persona, key: str) -> Any:
    if key.startswith("attr:"):
        return (persona.attributes or {}).get(key[5:])
    if key.startswith("consent:"):
        return persona.consent(key[8:])
    return _json(getattr(persona, key, None))


_STORE_LABELS: ContextVar[dict[int, str] | None] = ContextVar("store_labels", default=None)


def _store_label(store_id: int | None) -> str | None:
    if store_id is None:
        return None
    cache = _STORE_LABELS.get()
    if cache is not None and store_id in cache:
        return cache[store_id]
    name = Store.objects.filter(pk=store_id).values_list("name", flat=True).first()
    label = name or f"Store #{store_id}"
    if cache is not None:
        cache[store_id] = label
    return label


# ---------------------------------------------------------------------------------------------
# Writing


@dataclass
class ChangeResult:
    persona: Persona
    changed: bool
    event: AuditEvent | None
    attribute_ops: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def _audit(plan: Plan, actor: Actor, action: str, note: str, now: dt.datetime) -> AuditEvent:
    return AuditEvent(
        persona=plan.persona,
        action=action,
        actor_kind=actor.kind,
        actor_user=actor.user,
        actor_label=actor.label[:200],
        actor_ref=actor.ref,
        changes=plan.changes,
        note=note[:300],
        created_at=now,
    )


@dataclass(frozen=True)
class ChangeNotice:
    """What other apps hear after a change commits (flows use it for their triggers)."""

    persona_id: int
    created: bool
    changes: dict[str, Any]
    actor_kind: str
    entry_source: str
    signup_form_id: int | None
    import_job_id: int | None


ChangeHook = Any  # Callable[[list[ChangeNotice]], None]
CHANGE_HOOKS: list[ChangeHook] = []


def register_change_hook(hook: ChangeHook) -> None:
    """personas imports no other app: they register here (from their AppConfig.ready)."""
    if hook not in CHANGE_HOOKS:
        CHANGE_HOOKS.append(hook)


def _notify(plans: Sequence[Plan], actors: Sequence[Actor], *, created: bool) -> None:
    if not CHANGE_HOOKS or not plans:
        return
    notices = [
        ChangeNotice(
            persona_id=plan.persona.pk,
            created=created,
            changes=plan.changes,
            actor_kind=actor.kind,
            entry_source=plan.persona.entry_source,
            signup_form_id=plan.persona.signup_form_id,
            import_job_id=plan.persona.import_job_id,
        )
        for plan, actor in zip(plans, actors, strict=True)
    ]

    def run() -> None:
        for hook in CHANGE_HOOKS:
            hook(notices)

    transaction.on_commit(run)


def _queue_messages(plans: Iterable[Plan]) -> None:
    from .. import messaging

    for plan in plans:
        for channel, template in plan.messages:
            messaging.queue(plan.persona, channel=channel, template=template, transactional=True)


def _write_records(plans: Sequence[Plan], now: dt.datetime) -> None:
    """The address records the plans changed, mirrored onto other holders of the addresses."""
    writes = [w for plan in plans for w in plan.address_writes]
    if writes:
        consent_rules.write_records(writes, holders=[p.persona.pk for p in plans], now=now)


def _index_phones(plans: Sequence[Plan], *, created: bool) -> None:
    """The fragment rows of every phone the plans set or changed (``phone_index``)."""
    index_phones(
        ((p.persona.pk, p.persona.phone) for p in plans if "phone" in p.dirty_fields),
        replace=not created,
    )


def _write_related(
    plans: Sequence[Plan], events: list[AuditEvent], *, created: bool, bulk: bool = False
) -> None:
    _index_phones(plans, created=created)
    if events:
        _write_records(plans, events[0].created_at)
    consent_rows, points_rows = [], []
    for plan in plans:
        for row in plan.consent_changes:
            row.persona = plan.persona
            consent_rows.append(row)
        for row in plan.points_entries:
            row.persona = plan.persona
            points_rows.append(row)
    if bulk:  # bulk paths never read the new rows' keys back: plain executemany
        from .bulkdb import insert_rows

        insert_rows(events)
        insert_rows(consent_rows)
        insert_rows(points_rows)
        return
    AuditEvent.objects.bulk_create(events, batch_size=500)
    if consent_rows:
        ConsentChange.objects.bulk_create(consent_rows, batch_size=500)
    if points_rows:
        PointsEntry.objects.bulk_create(points_rows, batch_size=500)


def _integrity_to_duplicate(persona: Persona, exc: IntegrityError) -> ChangeError:
    text = str(exc).lower()
    for name in ("phone", "email"):
        if name in text and getattr(persona, name):
            existing = (
                Persona.objects.filter(
                    status=PersonaStatus.ACTIVE, **{name: getattr(persona, name)}
                )
                .exclude(pk=persona.pk)
                .first()
            )
            if existing:
                return DuplicatePersonaError(name, existing)
    return ChangeError("This change conflicts with another persona; nothing was saved.")


def create(
    changeset: Changeset,
    actor: Actor,
    *,
    entry_source: str = EntrySource.MANUAL,
) -> ChangeResult:
    """Create a persona through the same rules as any change; writes a "created" audit event."""
    persona = Persona(entry_source=entry_source)
    now = timezone.now()
    try:
        with transaction.atomic():
            plan = plan_changes(persona, changeset, actor, now=now)
            persona.save()
            event = _audit(plan, actor, "created", changeset.note, now)
            _write_related([plan], [event], created=True)
            _queue_messages([plan])
            _notify([plan], [actor], created=True)
    except IntegrityError as exc:
        raise _integrity_to_duplicate(persona, exc) from exc
    return ChangeResult(persona, True, event, plan.attribute_ops, plan.warnings)


def apply(persona: Persona | int, changeset: Changeset, actor: Actor) -> ChangeResult:
    """Apply one changeset to one persona (locked for the duration), atomically."""
    persona_id = persona if isinstance(persona, int) else persona.pk
    now = timezone.now()
    try:
        with transaction.atomic():
            locked = Persona.objects.select_for_update().get(pk=persona_id)
            plan = plan_changes(locked, changeset, actor, now=now)
            if not plan.changed:
                _write_records([plan], now)  # e.g. a customer's STOP on an opted-out number
                return ChangeResult(locked, False, None, plan.attribute_ops)
            locked.version += 1
            locked.save(update_fields=[*plan.dirty_fields, "version", "updated_at"])
            event = _audit(plan, actor, changeset.action, changeset.note, now)
            _write_related([plan], [event], created=False)
            _queue_messages([plan])
            _notify([plan], [actor], created=False)
    except IntegrityError as exc:
        target = persona if isinstance(persona, Persona) else Persona(pk=persona_id)
        raise _integrity_to_duplicate(target, exc) from exc
    if isinstance(persona, Persona):
        persona.refresh_from_db()
    return ChangeResult(locked, True, event, plan.attribute_ops, plan.warnings)


@dataclass
class BulkOutcome:
    persona_id: int
    changed: bool
    error: ChangeError | None = None
    attribute_ops: list[dict[str, Any]] = field(default_factory=list)
    deferred_messages: bool = False  # a double opt-in text waits to be sent
    changes: dict[str, Any] = field(default_factory=dict)


def apply_many(
    items: Sequence[tuple[int, Changeset, Actor]],
    *,
    locked: dict[int, Persona] | None = None,
) -> list[BulkOutcome]:
    """The bulk form of ``apply``: same rules, same audit trail, batched writes.

    Every persona is locked and planned with ``plan_changes``; a refused changeset is reported
    in its outcome and does not stop the others. Writes are one UPDATE batch per changed field
    set plus one INSERT batch per related table.

    ``locked``: personas the caller already loaded with ``select_for_update`` inside its own
    open transaction (the flow engine locks a round's personas once); they are planned in
    place (their attributes change in memory as they would on a fresh copy) and only the
    others are locked here.
    """
    if not items:
        return []
    now = timezone.now()
    outcomes: list[BulkOutcome] = []
    token = _STORE_LABELS.set({})
    try:
        with consent_rules.batch():
            return _apply_many(items, now, outcomes, locked)
    finally:
        _STORE_LABELS.reset(token)


def _apply_many(
    items: Sequence[tuple[int, Changeset, Actor]],
    now: dt.datetime,
    outcomes: list[BulkOutcome],
    locked: dict[int, Persona] | None = None,
) -> list[BulkOutcome]:
    if locked is not None and not transaction.get_connection().in_atomic_block:
        raise RuntimeError("apply_many(locked=…) needs the caller's open transaction.")
    with transaction.atomic():
        personas: dict[int, Persona] = dict(locked or {})
        missing = [pid for pid in dict.fromkeys(pid for pid, _, _ in items) if pid not in personas]
        if missing:
            # Ordered by id: two bulk writers lock shared personas in the same order.
            personas.update((p.pk, p) for p in _lock_personas(missing))
        consent_rules.preload(
            phones=[p.phone for p in personas.values()],
            emails=[p.email for p in personas.values()],
        )
        plans: list[Plan] = []
        plan_actors: list[Actor] = []
        plan_changesets: list[Changeset] = []
        dirty: set[str] = set()
        changed_personas: dict[int, Persona] = {}
        for pid, changeset, actor in items:
            persona = personas.get(pid)
            if persona is None:
                outcomes.append(BulkOutcome(pid, False, ChangeError("Persona not found.")))
                continue
            # Field values live in the instance's __dict__ (attnames); planning replaces
            # values, never mutates them in place, except that attributes is copied anyway.
            snapshot = persona.__dict__.copy()
            snapshot["attributes"] = dict(persona.attributes or {})
            try:
                plan = plan_changes(persona, changeset, actor, now=now)
            except ChangeError as exc:
                persona.__dict__.update(snapshot)
                outcomes.append(BulkOutcome(pid, False, exc))
                continue
            outcomes.append(
                BulkOutcome(
                    pid,
                    plan.changed,
                    None,
                    plan.attribute_ops,
                    bool(plan.deferred_messages),
                    dict(plan.changes),
                )
            )
            if plan.changed:
                persona.version += 1
                dirty |= plan.dirty_fields
                plans.append(plan)
                plan_actors.append(actor)
                plan_changesets.append(changeset)
                changed_personas[pid] = persona
        if changed_personas:
            for persona in changed_personas.values():
                persona.updated_at = now
            from .bulkdb import update_objects

            update_objects(
                list(changed_personas.values()), sorted(dirty | {"version", "updated_at"})
            )
            _write_bulk_audit(plans, plan_actors, plan_changesets, now)
            _queue_messages(plans)
            _notify(plans, plan_actors, created=False)
    return outcomes


def _lock_personas(ids: Sequence[int]) -> Iterable[Persona]:
    """``select_for_update`` of these personas in id order. On PostgreSQL one array
    parameter (``id = ANY(%s)``): a thousand ``IN`` placeholders cost psycopg more to prepare
    than the server to run."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return Persona.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    table = connection.ops.quote_name(Persona._meta.db_table)
    return Persona.objects.raw(
        f"SELECT * FROM {table} WHERE id = ANY(%s) ORDER BY id FOR UPDATE",  # noqa: S608
        [list(ids)],
    )


_AUDIT_COLUMNS = (
    "persona_id",
    "action",
    "actor_kind",
    "actor_user_id",
    "actor_label",
    "actor_ref",
    "changes",
    "note",
    "created_at",
)


def _audit_row(
    persona_id: int, action: str, actor: Actor, changes: dict, note: str, when: Any
) -> tuple:
    """One audit event in ``_AUDIT_COLUMNS`` order, as ``_audit`` would save it."""
    from .bulkdb import json_text

    return (
        persona_id,
        action,
        actor.kind,
        actor.user.pk if actor.user is not None else None,
        actor.label[:200],
        json_text(actor.ref),
        json_text(changes),
        note[:300],
        when,
    )


_CONSENT_COLUMNS = (
    "persona_id",
    "channel",
    "before",
    "after",
    "hard",
    "actor_kind",
    "actor_label",
    "actor_user_id",
    "address",
    "evidence",
    "created_at",
)
_POINTS_COLUMNS = (
    "persona_id",
    "kind",
    "points",
    "reason",
    "purchase_id",
    "actor_user_id",
    "actor_label",
    "created_at",
)


def _write_bulk_audit(
    plans: Sequence[Plan],
    actors: Sequence[Actor],
    changesets: Sequence[Changeset],
    now: dt.datetime,
) -> None:
    """``apply_many``'s audit, consent and ledger rows: the same values ``_audit`` and
    ``_write_related`` give, written as plain tuples (executemany / COPY)."""
    from django.db import connection

    from .bulkdb import insert_tuples

    when = connection.ops.adapt_datetimefield_value(now) if connection.vendor == "sqlite" else now
    rows = []
    consent_rows, points_rows = [], []
    for plan, actor, changeset in zip(plans, actors, changesets, strict=True):
        persona = plan.persona
        rows.append(
            _audit_row(persona.pk, changeset.action, actor, plan.changes, changeset.note, when)
        )
        for c in plan.consent_changes:
            consent_rows.append(
                (
                    persona.pk,
                    c.channel,
                    c.before,
                    c.after,
                    c.hard,
                    c.actor_kind,
                    c.actor_label[:200],
                    c.actor_user_id,
                    c.address,
                    c.evidence,
                    when,
                )
            )
        for p in plan.points_entries:
            points_rows.append(
                (
                    persona.pk,
                    p.kind,
                    p.points,
                    p.reason[:200],
                    p.purchase_id,
                    p.actor_user_id,
                    p.actor_label[:200],
                    when,
                )
            )
    insert_tuples(AuditEvent._meta.db_table, _AUDIT_COLUMNS, rows)
    _index_phones(plans, created=False)
    _write_records(plans, now)
    insert_tuples(ConsentChange._meta.db_table, _CONSENT_COLUMNS, consent_rows)
    insert_tuples(PointsEntry._meta.db_table, _POINTS_COLUMNS, points_rows)


@dataclass
class CreateOutcome:
    persona: Persona | None
    error: ChangeError | None = None
    deferred_messages: bool = False
    persona_id: int | None = None


def create_many(
    items: Sequence[tuple[Changeset, Actor]], *, entry_source: str
) -> list[CreateOutcome]:
    """The bulk form of ``create``: same planning and audit trail, batched inserts.

    A refused changeset is reported in its outcome and does not stop the others. Changesets a
    bulk caller has prechecked (blocklist, duplicates, store ids) and that need no message sent
    now are planned on plain values and written as tuples (``_create_rows``): the same
    validation, the same audit event, consent history and ledger rows as ``plan_changes``
    gives (tests compare the two). Anything else, and any batch whose insert hits a
    uniqueness conflict (another writer got there first), takes the model path below, one
    insert per persona in its own savepoint, so only the conflicting rows fail.
    Outcomes carry ``persona_id``; ``persona`` is only set on the model path.
    """
    now = timezone.now()
    outcomes: list[CreateOutcome | None] = [None] * len(items)
    token = _STORE_LABELS.set({})
    records = consent_rules.batch()
    records.__enter__()
    try:
        consent_rules.preload(
            phones=[c.fields.get("phone") for c, _ in items],
            emails=[c.fields.get("email") for c, _ in items],
        )
        fast: list[tuple[int, _RowPlan]] = []
        slow: list[int] = []
        defaults = _fresh_values(entry_source)
        for index, (changeset, actor) in enumerate(items):
            if not _fast_create_eligible(changeset):
                slow.append(index)
                continue
            try:
                row = _plan_row(changeset, actor, defaults, now)
            except ChangeError as exc:
                outcomes[index] = CreateOutcome(None, exc)
            except _NotFast:
                slow.append(index)
            else:
                fast.append((index, row))
        with transaction.atomic():
            if fast and not _create_rows(fast, entry_source, now):
                slow = sorted(slow + [index for index, _ in fast])
            if slow:
                _create_models([(i, *items[i]) for i in slow], entry_source, now, outcomes)
        for index, row in fast:
            if outcomes[index] is None:
                outcomes[index] = CreateOutcome(None, None, row.deferred, row.values["id"])
    finally:
        records.__exit__()
        _STORE_LABELS.reset(token)
    return outcomes  # type: ignore[return-value]


def _create_models(
    items: Sequence[tuple[int, Changeset, Actor]],
    entry_source: str,
    now: dt.datetime,
    outcomes: list[CreateOutcome | None],
) -> None:
    """The model path of ``create_many`` (runs inside its transaction)."""
    ready: list[tuple[int, Plan, Actor, Changeset]] = []
    for index, changeset, actor in items:
        persona = Persona(entry_source=entry_source, created_at=now, updated_at=now)
        try:
            plan = plan_changes(persona, changeset, actor, now=now)
        except ChangeError as exc:
            outcomes[index] = CreateOutcome(None, exc)
            continue
        outcomes[index] = CreateOutcome(persona, None, bool(plan.deferred_messages))
        ready.append((index, plan, actor, changeset))
    if not ready:
        return
    written = ready
    try:
        with transaction.atomic():
            Persona.objects.bulk_create([plan.persona for _, plan, _, _ in ready])
    except IntegrityError:
        written = []
        for index, plan, actor, changeset in ready:
            plan.persona.pk = None
            try:
                with transaction.atomic():
                    plan.persona.save(force_insert=True)
            except IntegrityError as exc:
                outcomes[index] = CreateOutcome(None, _integrity_to_duplicate(plan.persona, exc))
                continue
            written.append((index, plan, actor, changeset))
    for index, plan, _, _ in written:
        outcomes[index].persona_id = plan.persona.pk  # type: ignore[union-attr]
    events = [
        _audit(plan, actor, "created", changeset.note, now) for _, plan, actor, changeset in written
    ]
    plans = [plan for _, plan, _, _ in written]
    _write_related(plans, events, created=True, bulk=True)
    _queue_messages(plans)
    _notify(plans, [actor for _, _, actor, _ in written], created=True)


# ---------------------------------------------------------------------------------------------
# Creation on plain values (the bulk import path)
#
# A new persona starts from known defaults, so planning its creation needs no model instance:
# ``_plan_row`` follows ``plan_changes`` step by step for the changesets
# ``_fast_create_eligible`` admits, and raises ``_NotFast`` where that path would do something
# it does not (a refused push opt-in, a text opt-in without a phone, a message to send now).


class _NotFast(Exception):
    pass


_FAST_CONSENT_ACTIONS = (
    ConsentAction.OPT_IN,
    ConsentAction.OPT_OUT,
    ConsentAction.REQUEST_DOUBLE_OPT_IN,
)


def _fast_create_eligible(changeset: Changeset) -> bool:
    return (
        changeset.prechecked
        and not changeset.remove
        and changeset.status is None
        and not changeset.merged_into
        and not changeset.expected
        and all(op.action in _FAST_CONSENT_ACTIONS for op in changeset.consents)
    )


@dataclass
class _RowPlan:
    values: dict[str, Any]
    changes: dict[str, dict[str, Any]]
    # channel, before, after, hard, address digest, evidence
    consents: list[tuple[str, str, str, bool, str, str]]
    points: list[PointsOp]
    actor: Actor
    note: str
    deferred: bool
    address_writes: list[AddressWrite] = field(default_factory=list)


def _fresh_values(entry_source: str) -> dict[str, Any]:
    persona = Persona(entry_source=entry_source)
    return {f.attname: getattr(persona, f.attname) for f in Persona._meta.concrete_fields}


def _plan_row(
    changeset: Changeset, actor: Actor, defaults: dict[str, Any], now: dt.datetime
) -> _RowPlan:
    clean = validate(changeset, creating=True)
    values = dict(defaults)
    changes: dict[str, dict[str, Any]] = {}
    for name, value in clean.fields.items():
        before = values[name]
        if before == value:
            continue
        values[name] = value
        changes[name] = {"before": _json(before), "after": _json(value)}
    values["first_key"] = name_key(values["first_name"])
    values["last_key"] = name_key(values["last_name"])
    if values["loyalty_enrolled"]:
        values["loyalty_enrolled_at"] = now
    attributes: dict[str, Any] = {}
    if clean.add or clean.set:
        attributes, _ = _plan_attributes({}, clean, changes)
    values["attributes"] = attributes
    if changeset.favorite_store is not None:
        store_id, source = changeset.favorite_store
        values["favorite_store_id"] = store_id
        values["favorite_store_source"] = source if store_id else ""
        if store_id is not None:
            changes["favorite_store"] = {
                "before": None,
                "after": _store_label(store_id),
                "source": source,
            }
    consents: list[tuple[str, str, str, bool, str, str]] = []
    writes: list[AddressWrite] = []
    messages = False
    for d in consent_rules.derive_from_addresses(
        phone=values["phone"],
        email=values["email"],
        current={c: values[f"{c}_consent"] for c in ADDRESS_CHANNELS},
    ):
        values[f"{d.channel}_consent"] = d.after
        changes[f"consent:{d.channel}"] = {"before": d.before, "after": d.after, "address": d.why}
        consents.append((d.channel, d.before, d.after, False, d.digest, d.why))
    evidence = (changeset.evidence or actor.label)[:200]
    for op in changeset.consents:
        field_name = f"{op.channel}_consent"
        before = values[field_name]
        address = consent_rules.address_of(op.channel, phone=values["phone"], email=values["email"])
        step, record = _consent_step(op, before, actor, address)
        if step.error:
            raise _NotFast  # refused: the model path says why
        if step.resend:
            continue
        messages = messages or step.double_opt_in
        write = _address_write(op, step, before, record, address, actor, evidence)
        if write is not None:
            writes.append(write)
        if step.after == before:
            continue
        values[field_name] = step.after
        changes[f"consent:{op.channel}"] = {"before": before, "after": step.after}
        digest = consent_rules.address_digest(op.channel, address) if address else ""
        consents.append((op.channel, before, step.after, step.hard, digest, evidence))
    if messages and changeset.send_messages:
        raise _NotFast  # a text to queue now: the model path queues it
    if changeset.points:
        balance = sum(op.points for op in changeset.points)
        values["points_balance"] = balance
        if balance != 0:
            changes["points_balance"] = {"before": 0, "after": balance}
    return _RowPlan(
        values, changes, consents, changeset.points, actor, changeset.note, messages, writes
    )


def _create_rows(rows: Sequence[tuple[int, _RowPlan]], entry_source: str, now: dt.datetime) -> bool:
    """Insert planned rows and their audit, consent and ledger rows as tuples.

    Returns False, having written nothing, when the persona insert conflicts with a row
    another writer added (the caller then takes the model path).
    """
    from django.db import connection

    from .bulkdb import insert_tuples, json_text, reserve_ids

    sqlite = connection.vendor == "sqlite"
    ids = reserve_ids(Persona._meta.db_table, len(rows))
    when = connection.ops.adapt_datetimefield_value(now) if sqlite else now
    fields = Persona._meta.concrete_fields
    columns = [f.column for f in fields]
    dates = {f.attname for f in fields if isinstance(f, models.DateField)}
    persona_rows = []
    for (_, row), pk in zip(rows, ids, strict=True):
        values = row.values
        values["id"] = pk
        values["created_at"] = values["updated_at"] = now
        out = []
        for f in fields:
            value = values[f.attname]
            if f.attname == "attributes":
                value = json_text(value)
            elif sqlite and value is not None and f.attname in dates:
                value = when if value is now else value.isoformat()
            out.append(value)
        persona_rows.append(out)
    try:
        with transaction.atomic():
            insert_tuples(Persona._meta.db_table, columns, persona_rows)
    except IntegrityError:
        return False
    audit_rows, consent_rows, points_rows = [], [], []
    for (_, row), pk in zip(rows, ids, strict=True):
        actor = row.actor
        user_id = actor.user.pk if actor.user is not None else None
        label = actor.label[:200]
        audit_rows.append(_audit_row(pk, "created", actor, row.changes, row.note, when))
        for channel, before, after, hard, digest, evidence in row.consents:
            consent_rows.append(
                (
                    pk,
                    channel,
                    before,
                    after,
                    hard,
                    actor.kind,
                    label,
                    user_id,
                    digest,
                    evidence,
                    when,
                )
            )
        for op in row.points:
            points_rows.append(
                (pk, op.kind, op.points, op.reason[:200], op.purchase_id, user_id, label, when)
            )
    insert_tuples(AuditEvent._meta.db_table, _AUDIT_COLUMNS, audit_rows)
    index_phones(
        ((pk, row.values["phone"]) for (_, row), pk in zip(rows, ids, strict=True)), replace=False
    )
    consent_rules.write_records(
        [w for _, row in rows for w in row.address_writes], holders=ids, now=now
    )
    insert_tuples(ConsentChange._meta.db_table, _CONSENT_COLUMNS, consent_rows)
    insert_tuples(PointsEntry._meta.db_table, _POINTS_COLUMNS, points_rows)
    if CHANGE_HOOKS:
        notices = [
            ChangeNotice(
                persona_id=row.values["id"],
                created=True,
                changes=row.changes,
                actor_kind=row.actor.kind,
                entry_source=entry_source,
                signup_form_id=row.values["signup_form_id"],
                import_job_id=row.values["import_job_id"],
            )
            for _, row in rows
        ]

        def run() -> None:
            for hook in CHANGE_HOOKS:
                hook(notices)

        transaction.on_commit(run)
    return True


def plan_create(changeset: Changeset, actor: Actor, *, entry_source: str) -> dict[str, Any]:
    """What creating a persona from ``changeset`` would record (a dry run: nothing written).

    Raises ChangeError exactly as ``create_many`` would report it.
    """
    now = timezone.now()
    token = _STORE_LABELS.set({})
    try:
        if _fast_create_eligible(changeset):
            try:
                return _plan_row(changeset, actor, _fresh_values(entry_source), now).changes
            except _NotFast:
                pass
        persona = Persona(entry_source=entry_source, created_at=now, updated_at=now)
        return plan_changes(persona, changeset, actor, now=now).changes
    finally:
        _STORE_LABELS.reset(token)
