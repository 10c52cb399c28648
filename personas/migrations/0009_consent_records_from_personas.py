"""Today's consents become per-address records (``ContactConsent``), with their history linked.

For each address (text/voice: the E.164 phone; email: the address) the record takes the state
of the personas holding it: an opt-out on any of them wins (an opt-out is never lost), then the
active persona's state, then the most recently updated one's. History rows of those channels
get the digest of the address their persona holds, and each record keeps the customer's own
latest choice from the history. Every persona then mirrors its addresses' records (so two
holders of one number agree). Reversing deletes the records and the links and leaves the
persona columns as the forward step left them (the mirrored, stricter states).
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.db import migrations

CHANNELS = {"text": "phone", "voice": "phone", "email": "email"}
RANK = {"opted_out": 3, "opted_in": 2, "pending": 1, "never": 0}


def _digest(kind: str, value: str) -> str:
    key = settings.BLOCKLIST_HMAC_KEY.encode()
    return hmac.digest(key, f"{kind}:{value}".encode(), hashlib.sha256).hex()


def forwards(apps, schema_editor):
    Persona = apps.get_model("personas", "Persona")
    ContactConsent = apps.get_model("personas", "ContactConsent")
    ConsentChange = apps.get_model("personas", "ConsentChange")
    from django.utils import timezone

    now = timezone.now()
    best: dict[tuple[str, str], tuple[tuple[int, int, object], str, bool]] = {}
    rows = Persona.objects.exclude(status="erased").values_list(
        "id", "phone", "email", "status", "updated_at", "text_consent", "voice_consent",
        "email_consent",
    )
    digests: dict[int, dict[str, str]] = {}
    for pid, phone, email, status, updated, text, voice, mail in rows.iterator(chunk_size=2000):
        states = {"text": text, "voice": voice, "email": mail}
        for channel, kind in CHANNELS.items():
            value = phone if kind == "phone" else email
            if not value:
                continue
            digest = _digest(kind, value)
            digests.setdefault(pid, {})[channel] = digest
            state = states[channel]
            if state == "never":
                continue
            # opted out first, then the active persona, then the latest update
            rank = (3 if state == "opted_out" else 0, status == "active", updated)
            key = (channel, digest)
            if key not in best or rank > best[key][0]:
                best[key] = (rank, state, False)
    # The latest choice the customer made themselves (a STOP or YES reply, the wallet…), per
    # address, from the history: a customer's own opt-out stays theirs to undo.
    choices: dict[tuple[str, str], str] = {}
    history = (
        ConsentChange.objects.filter(
            actor_kind="customer", after__in=["opted_in", "opted_out"], channel__in=list(CHANNELS)
        )
        .order_by("created_at", "id")
        .values_list("persona_id", "channel", "after")
    )
    for pid, channel, after in history.iterator(chunk_size=2000):
        digest = digests.get(pid, {}).get(channel)
        if digest:
            choices[(channel, digest)] = after
    keys = set(best) | set(choices)
    batch = [
        ContactConsent(
            channel=c,
            digest=d,
            state=best[(c, d)][1] if (c, d) in best else "never",
            hard=False,
            customer_choice=choices.get((c, d), ""),
            updated_at=now,
        )
        for (c, d) in keys
    ]
    ContactConsent.objects.bulk_create(batch, batch_size=500)
    for pid, by_channel in digests.items():
        for channel, digest in by_channel.items():
            ConsentChange.objects.filter(persona_id=pid, channel=channel, address="").update(
                address=digest
            )
    # Mirror: every persona shows its address's record.
    states = {(r.channel, r.digest): r.state for r in ContactConsent.objects.all()}
    for pid, by_channel in digests.items():
        update = {
            f"{channel}_consent": states.get((channel, digest), "never")
            for channel, digest in by_channel.items()
        }
        Persona.objects.filter(pk=pid).update(**update)


def backwards(apps, schema_editor):
    apps.get_model("personas", "ContactConsent").objects.all().delete()
    apps.get_model("personas", "ConsentChange").objects.update(address="", evidence="")


class Migration(migrations.Migration):
    dependencies = [("personas", "0008_consent_per_address")]

    operations = [migrations.RunPython(forwards, backwards)]
