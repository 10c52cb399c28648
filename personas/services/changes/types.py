"""The shapes of the mutation path: who changes a persona (``Actor``), what to change
(``Changeset`` and its ops), why it was refused (``ChangeError`` and kinds), what planning
found (``Cleaned``, ``Plan``) and what callers get back (``ChangeResult``, ``BulkOutcome``,
``CreateOutcome``, ``ChangeNotice``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from ...models import AuditEvent, ConsentChange, Persona, PointsEntry
from ..consent import AddressWrite


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


@dataclass
class Cleaned:
    fields: dict[str, Any]
    add: list[tuple[str, Any]]
    set: list[tuple[str, Any]]
    remove: list[str]
    # Identifiers left out because they identify nobody (placeholders), with why.
    warnings: list[str] = field(default_factory=list)


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


@dataclass
class ChangeResult:
    persona: Persona
    changed: bool
    event: AuditEvent | None
    attribute_ops: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


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


@dataclass
class BulkOutcome:
    persona_id: int
    changed: bool
    error: ChangeError | None = None
    attribute_ops: list[dict[str, Any]] = field(default_factory=list)
    deferred_messages: bool = False  # a double opt-in text waits to be sent
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass
class CreateOutcome:
    persona: Persona | None
    error: ChangeError | None = None
    deferred_messages: bool = False
    persona_id: int | None = None
