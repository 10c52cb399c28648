"""One-time codes that prove a customer owns a phone number or an email address.

Used by the public data-controls page (and the wallet sign-in). A challenge sends one code per
identifier (text to the phone, email to the address); every code must be entered. Codes are
stored as keyed hashes, expire, and allow a bounded number of attempts; requests are rate
limited per client and per identifier through the cache: shared Redis, required in production
(personas.E002); the client is ``personas.client.client_address`` under the trusted proxies.
Nothing here says whether an identifier belongs to a known persona.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from ..messaging import get_sms_backend
from ..models import VerificationChallenge
from .privacy import Identifier

logger = logging.getLogger(__name__)


class RateLimited(ValidationError):
    pass


def _hit(key: str, limit: int, window: int) -> bool:
    """Count one hit; True when the limit is exceeded."""
    cache.add(key, 0, window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window)
        count = 1
    return count > limit


def check_rate(*, client: str, identifiers: list[Identifier], purpose: str) -> None:
    limit, window = settings.PERSONAS_CODE_RATE_PER_CLIENT
    too_many = _hit(f"otp:{purpose}:client:{client}", limit, window)
    limit, window = settings.PERSONAS_CODE_RATE_PER_IDENTIFIER
    for ident in identifiers:
        too_many = _hit(f"otp:{purpose}:id:{ident.digest}", limit, window) or too_many
    if too_many:
        raise RateLimited("Too many requests. Please wait an hour and try again.")


def _hash(salt: str, kind: str, code: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"{salt}:{kind}:{code}".encode(), hashlib.sha256).hexdigest()


def _send(ident: Identifier, code: str, purpose_label: str) -> None:
    minutes = settings.PERSONAS_CODE_TTL_MINUTES
    brand = settings.PERSONAS_BRAND_NAME
    body = f"{brand}: your code to {purpose_label} is {code}. It expires in {minutes} minutes."
    try:
        if ident.kind == "phone":
            get_sms_backend().send(to=ident.value, body=body)
        else:
            send_mail(f"{brand}: your code", body, None, [ident.value])
    except Exception as exc:  # noqa: BLE001 - a provider failure must not reveal anything either
        logger.warning("one-time code not sent: %s", type(exc).__name__)


def sweep_expired() -> int:
    deleted, _ = VerificationChallenge.objects.filter(expires_at__lt=timezone.now()).delete()
    return deleted


def start(
    identifiers: list[Identifier], *, purpose: str, purpose_label: str
) -> VerificationChallenge:
    """Create a challenge and send its codes (whether or not anyone is known by them)."""
    sweep_expired()
    salt = secrets.token_hex(16)
    codes = {ident.kind: f"{secrets.randbelow(1_000_000):06d}" for ident in identifiers}
    challenge = VerificationChallenge.objects.create(
        purpose=purpose,
        identifiers=[{"kind": i.kind, "value": i.value} for i in identifiers],
        code_hashes={kind: _hash(salt, kind, code) for kind, code in codes.items()},
        salt=salt,
        expires_at=timezone.now() + dt.timedelta(minutes=settings.PERSONAS_CODE_TTL_MINUTES),
    )
    for ident in identifiers:
        _send(ident, codes[ident.kind], purpose_label)
    return challenge


def verify(challenge_id: int | None, purpose: str, codes: dict[str, str]) -> VerificationChallenge:
    """Check the codes; raises ValidationError with a plain message when they do not match."""
    error = ""
    with transaction.atomic():
        challenge = (
            VerificationChallenge.objects.select_for_update()
            .filter(pk=challenge_id, purpose=purpose, verified_at__isnull=True)
            .first()
        )
        if challenge is None or challenge.expires_at < timezone.now():
            raise ValidationError("This code has expired. Start again to get a new one.")
        if challenge.attempts >= settings.PERSONAS_CODE_MAX_ATTEMPTS:
            raise ValidationError("Too many wrong codes. Start again to get a new one.")
        challenge.attempts += 1
        ok = True
        for kind, expected in challenge.code_hashes.items():
            given = "".join(ch for ch in (codes.get(kind) or "") if ch.isdigit())
            ok = hmac.compare_digest(expected, _hash(challenge.salt, kind, given)) and ok
        if ok:
            challenge.verified_at = timezone.now()
        else:
            left = settings.PERSONAS_CODE_MAX_ATTEMPTS - challenge.attempts
            error = (
                f"That code is not right. {left} attempt{'s' if left != 1 else ''} left."
                if left
                else "Too many wrong codes. Start again to get a new one."
            )
        challenge.save(update_fields=["attempts", "verified_at"])
    if error:  # raised after the commit so the attempt is counted
        raise ValidationError(error)
    return challenge


def identifiers_of(challenge: VerificationChallenge) -> list[Identifier]:
    return [Identifier(i["kind"], i["value"]) for i in challenge.identifiers]
