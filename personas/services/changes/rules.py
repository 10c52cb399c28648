"""The domain rules every planner uses, as pure functions of their arguments: the birthday
rule, favorite-store precedence, the attribute order add → set → remove, the persona status
transitions, and the consent step of one op (which wraps ``consent.transition``, the consent
state machine, with what the op's address and actor say)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone

from ...models import FavoriteStoreSource, PersonaStatus
from .. import consent as consent_rules
from ..consent import AddressWrite
from .types import Actor, ConsentOp

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


def consent_step(
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


def address_write(
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


STATUS_TRANSITIONS = frozenset(
    {
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
)


def status_change_allowed(current: str, status: str) -> bool:
    """The status rule: which ``PersonaStatus`` may follow which (an erased persona stays
    erased; a merged one only comes back through unmerge, to active or archived)."""
    return (current, status) in STATUS_TRANSITIONS
