"""Consent rules, in one place: what a consent action does, and the consent of addresses.

Text and voice consent belong to an E.164 number and email consent to a normalised address
(``ADDRESS_CHANNELS``); push and browser stay per persona. ``ContactConsent`` holds each
address's record, keyed by an HMAC of the address; ``Persona.<channel>_consent`` mirrors the
record of the address the persona holds now. So:

* a persona that gets a new or changed phone or email starts from *that* address's record
  ("never asked" when there is none): consent never travels from one address to another;
* a change of consent on a persona is a change of its address's record, mirrored onto every
  other persona holding the same address (archived, merged away…);
* an opt-out from an address nobody holds is kept as the record alone (a suppression entry):
  whoever gets the address later starts opted out;
* a customer's own opt-out (a STOP reply, the wallet, the data-controls page) can only be
  undone by the customer: staff, imports and flows cannot opt that address back in.

``transition`` is the pure rule every planner (single and bulk) calls; the record functions
below read and write the records in batches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from django.db.models import Q

from ..models import ADDRESS_CHANNELS, Channel, ConsentChange, ConsentState, ContactConsent, Persona
from ..normalize import identifier_digest

# ---------------------------------------------------------------------------------------------
# Actions and the pure transition rule


class ConsentAction:
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    FORCE_OPT_OUT = "force_opt_out"
    REQUEST_DOUBLE_OPT_IN = "request_double_opt_in"
    CONFIRM = "confirm"  # the customer's YES to a pending double opt-in
    EXPIRE = "expire"  # a pending double opt-in nobody answered goes back to "never asked"
    # Merge / unmerge: take over a push or browser state the same customer gave (no message).
    # Address channels ignore it: their state is their address's record.
    ADOPT = "adopt"
    ALL = (OPT_IN, OPT_OUT, FORCE_OPT_OUT, REQUEST_DOUBLE_OPT_IN, CONFIRM, EXPIRE, ADOPT)


# The confirmation a double opt-in sends, per channel (personas.messaging renders them).
DOUBLE_OPT_IN_TEMPLATES = {Channel.TEXT: "double_opt_in", Channel.EMAIL: "email_double_opt_in"}


@dataclass(frozen=True)
class Transition:
    """What one consent action does. ``error`` = (field, message) when it is refused."""

    after: str
    hard: bool = False
    double_opt_in: bool = False  # queue a confirmation text to the number
    resend: bool = False  # the request is pending already: send its text again
    error: tuple[str, str] | None = None


_NO_ADDRESS = {
    Channel.TEXT: "Add a phone number before texting opt-in.",
    Channel.VOICE: "Add a phone number before opting in to calls.",
    Channel.EMAIL: "Add an email address before opting in to email.",
}
CUSTOMER_OPTED_OUT = (
    "The customer opted out from this address themselves (for example by texting STOP). Only "
    "the customer can opt back in: by texting START, or on their wallet."
)


def transition(
    *,
    channel: str,
    action: str,
    before: str,
    actor_kind: str,
    proven: frozenset[str] = frozenset(),
    has_address: bool = True,
    customer_opted_out: bool = False,
    text_double_opt_in: bool = True,
    email_double_opt_in: bool = False,
    adopt_state: str = "",
) -> Transition:
    """The consent rule (pure). ``before`` is the current state of the channel.

    ``proven``: the identifier kinds ("phone", "email") the customer proved in this session;
    ``customer_opted_out``: the address's latest customer-made choice is an opt-out;
    ``text_double_opt_in``: the PERSONAS_TEXT_DOUBLE_OPT_IN setting;
    ``email_double_opt_in``: an email opt-in must be confirmed by a link sent to the address
    (a customer who has not proved the address, unless their signup form turned it off).
    """
    keep = Transition(before)
    if action in (ConsentAction.OPT_OUT, ConsentAction.FORCE_OPT_OUT):
        return Transition(ConsentState.OPTED_OUT, hard=action == ConsentAction.FORCE_OPT_OUT)
    if action in (ConsentAction.OPT_IN, ConsentAction.REQUEST_DOUBLE_OPT_IN):
        customer = actor_kind == "customer"
        if channel == Channel.PUSH and not customer:
            return Transition(
                before,
                error=("push_consent", "Only the customer can opt in to push, from their own app."),
            )
        if channel in ADDRESS_CHANNELS and not has_address:
            return Transition(before, error=(f"{channel}_consent", _NO_ADDRESS[channel]))
        if channel in ADDRESS_CHANNELS and customer_opted_out and not customer:
            return Transition(before, error=(f"{channel}_consent", CUSTOMER_OPTED_OUT))
        explicit = action == ConsentAction.REQUEST_DOUBLE_OPT_IN
        if channel == Channel.TEXT:
            if customer:
                # A customer who proved the phone (a code sent to it) opts in at once; from an
                # unproven channel (a public form, signed in by email) the number must say YES.
                wants_doi = explicit or "phone" not in proven
            else:
                wants_doi = explicit or text_double_opt_in
            if wants_doi:
                if before == ConsentState.PENDING and explicit:
                    return Transition(before, resend=True)
                if before in (ConsentState.OPTED_IN, ConsentState.PENDING):
                    return keep  # asked already: only an explicit resend sends it again
                return Transition(ConsentState.PENDING, double_opt_in=True)
        if channel == Channel.EMAIL and (explicit or email_double_opt_in):
            if before == ConsentState.PENDING and explicit:
                return Transition(before, resend=True)
            if before in (ConsentState.OPTED_IN, ConsentState.PENDING):
                return keep
            return Transition(ConsentState.PENDING, double_opt_in=True)
        return Transition(ConsentState.OPTED_IN)
    if action == ConsentAction.ADOPT:
        if actor_kind not in ("merge", "user", "system") or adopt_state not in ConsentState.values:
            return Transition(
                before, error=("consent", "Only a merge or unmerge can adopt a consent state.")
            )
        if channel in ADDRESS_CHANNELS:
            return keep
        return Transition(adopt_state)
    if action == ConsentAction.EXPIRE:
        return Transition(ConsentState.NEVER) if before == ConsentState.PENDING else keep
    if action == ConsentAction.CONFIRM:
        if actor_kind != "customer":
            return Transition(
                before, error=("consent", "Only the customer can confirm a double opt-in.")
            )
        return Transition(ConsentState.OPTED_IN) if before == ConsentState.PENDING else keep
    return keep


def customer_choice_after(actor_kind: str, after: str) -> str | None:
    """The address's new "latest customer-made choice", or None when it does not change."""
    if actor_kind == "customer" and after in (ConsentState.OPTED_IN, ConsentState.OPTED_OUT):
        return after
    return None


# ---------------------------------------------------------------------------------------------
# Addresses and their records


def address_of(channel: str, *, phone: str | None, email: str | None) -> str | None:
    """The address a channel's consent belongs to, for a persona holding ``phone``/``email``."""
    kind = ADDRESS_CHANNELS.get(channel)
    if kind == "phone":
        return phone or None
    if kind == "email":
        return email or None
    return None


def address_digest(channel: str, address: str) -> str:
    return identifier_digest(ADDRESS_CHANNELS[channel], address)


@dataclass(frozen=True)
class Record:
    state: str = ConsentState.NEVER
    customer_choice: str = ""
    reminded: bool = False

    @property
    def customer_opted_out(self) -> bool:
        return self.customer_choice == ConsentState.OPTED_OUT


NO_RECORD = Record()

# Bulk callers preload the records of a batch's addresses here (``preload``).
_RECORDS: ContextVar[dict[tuple[str, str], Record] | None] = ContextVar(
    "consent_records", default=None
)


def _fetch(keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Record]:
    out: dict[tuple[str, str], Record] = {}
    by_channel: dict[str, list[str]] = {}
    for channel, digest in keys:
        by_channel.setdefault(channel, []).append(digest)
    for channel, digests in by_channel.items():
        for start in range(0, len(digests), 500):
            rows = ContactConsent.objects.filter(
                channel=channel, digest__in=digests[start : start + 500]
            ).values_list("digest", "state", "customer_choice", "reminded")
            for digest, state, choice, reminded in rows:
                out[(channel, digest)] = Record(state, choice, reminded)
    return out


def record_for(channel: str, address: str | None) -> Record:
    """The record of one address for one channel (``NO_RECORD`` when there is none)."""
    if not address or channel not in ADDRESS_CHANNELS:
        return NO_RECORD
    key = (channel, address_digest(channel, address))
    cache = _RECORDS.get()
    if cache is not None and key in cache:
        return cache[key]
    record = _fetch([key]).get(key, NO_RECORD)
    if cache is not None:
        cache[key] = record
    return record


def preload(*, phones: Iterable[str | None] = (), emails: Iterable[str | None] = ()) -> None:
    """Fetch, in a few queries, the records a bulk planner is about to read.

    Only useful inside ``batch()``; records not preloaded are fetched one by one.
    """
    cache = _RECORDS.get()
    if cache is None:
        return
    keys = []
    for channel, values in (("text", phones), ("voice", phones), ("email", emails)):
        for value in set(values):
            if value:
                key = (channel, address_digest(channel, value))
                if key not in cache:
                    keys.append(key)
    found = _fetch(keys)
    for key in keys:
        cache[key] = found.get(key, NO_RECORD)


class batch:
    """Context manager: records read inside it are cached (and updated as they are written)."""

    def __enter__(self) -> batch:
        self._token = _RECORDS.set({}) if _RECORDS.get() is None else None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _RECORDS.reset(self._token)


@dataclass(frozen=True)
class Derived:
    """A channel whose shown state changes because the persona holds another address."""

    channel: str
    before: str
    after: str
    digest: str  # the address's HMAC ("" when the persona holds no address any more)
    why: str


def derive_from_addresses(
    *, phone: str | None, email: str | None, current: dict[str, str]
) -> list[Derived]:
    """The one rule for a persona that holds a new address, or becomes active again: each
    address channel shows that address's own record ("never asked" without one). Consent
    never travels from one phone number or email address to another. ``current``: channel →
    the state the persona shows now. Used by the single and the bulk planners."""
    out = []
    for channel, kind in ADDRESS_CHANNELS.items():
        address = address_of(channel, phone=phone, email=email)
        after = record_for(channel, address).state
        before = current[channel]
        if after == before:
            continue
        noun = "phone number" if kind == "phone" else "email address"
        why = f"This {noun}'s own consent" if address else f"No {noun} any more"
        digest = address_digest(channel, address) if address else ""
        out.append(Derived(channel, before, after, digest, why))
    return out


@dataclass(frozen=True)
class AddressWrite:
    """A new state for an address's record, planned by the mutation path."""

    channel: str
    address: str  # readable, only in memory: used to mirror the change onto other holders
    state: str
    hard: bool
    customer_choice: str | None
    actor_kind: str
    actor_label: str
    evidence: str

    @property
    def digest(self) -> str:
        return address_digest(self.channel, self.address)


def write_records(
    writes: Sequence[AddressWrite], *, holders: Iterable[int], now: dt.datetime
) -> None:
    """Store the new states of addresses and mirror them onto every other persona holding them.

    ``holders``: the personas whose rows the caller writes itself (left alone here). Each other
    holder whose mirror changes gets its column updated and a consent history row saying why.
    """
    if not writes:
        return

    latest: dict[tuple[str, str], AddressWrite] = {}
    for w in writes:
        latest[(w.channel, w.digest)] = w
    existing = _fetch(list(latest))
    rows = []
    for (channel, digest), w in latest.items():
        old = existing.get((channel, digest), NO_RECORD)
        choice = w.customer_choice if w.customer_choice is not None else old.customer_choice
        reminded = old.reminded and old.state == w.state
        rows.append(
            ContactConsent(
                channel=channel,
                digest=digest,
                state=w.state,
                hard=w.hard,
                customer_choice=choice,
                reminded=reminded,
                updated_at=now,
            )
        )
    ContactConsent.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["channel", "digest"],
        update_fields=["state", "hard", "customer_choice", "reminded", "updated_at"],
    )
    cache = _RECORDS.get()
    if cache is not None:
        for row in rows:
            cache[(row.channel, row.digest)] = Record(row.state, row.customer_choice, row.reminded)

    # Mirror onto other holders of the same addresses (rare: an archived or merged copy).
    phones = {w.address for w in latest.values() if ADDRESS_CHANNELS[w.channel] == "phone"}
    emails = {w.address for w in latest.values() if ADDRESS_CHANNELS[w.channel] == "email"}
    q = Q()
    if phones:
        q |= Q(phone__in=phones)
    if emails:
        q |= Q(email__in=emails)
    skip = set(holders)
    others = [
        p
        for p in Persona.objects.filter(q).only(
            "id", "phone", "email", "text_consent", "voice_consent", "email_consent"
        )
        if p.pk not in skip
    ]
    history = []
    for p in others:
        dirty = []
        for w in latest.values():
            if address_of(w.channel, phone=p.phone, email=p.email) != w.address:
                continue
            name = f"{w.channel}_consent"
            before = getattr(p, name)
            if before == w.state:
                continue
            setattr(p, name, w.state)
            dirty.append(name)
            history.append(
                ConsentChange(
                    persona_id=p.pk,
                    channel=w.channel,
                    before=before,
                    after=w.state,
                    hard=w.hard,
                    actor_kind=w.actor_kind,
                    actor_label=w.actor_label[:200],
                    address=w.digest,
                    evidence=f"Same address: {w.evidence}"[:200],
                    created_at=now,
                )
            )
        if dirty:
            Persona.objects.filter(pk=p.pk).update(**{n: getattr(p, n) for n in dirty})
    if history:
        ConsentChange.objects.bulk_create(history)


def state_for_sending(channel: str, address: str | None) -> str:
    """The consent an outbound message checks *when it is sent*.

    Address channels read the address's record; the caller checks push and browser on the
    persona.
    """
    return record_for(channel, address).state


def mark_reminded(address: str) -> bool:
    """Note that a pending text request got its one reminder; False when it already had one."""
    digest = address_digest("text", address)
    return bool(
        ContactConsent.objects.filter(channel="text", digest=digest, reminded=False).update(
            reminded=True
        )
    )
