from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django_tasks import task

from .messaging import deliver
from .models import ErasureRequest, VerificationChallenge
from .services import housekeeping as work
from .services import otp, privacy


@task()
def send_outbound_message(message_id: int) -> str:
    return deliver(message_id)


@task()
def erase_verified_request(challenge_id: int) -> str:
    """The customer's verified data-deletion request (public page). Deletes the challenge too."""
    challenge = VerificationChallenge.objects.filter(
        pk=challenge_id, verified_at__isnull=False
    ).first()
    if challenge is None:
        return "gone"
    privacy.erase_by_identifiers(otp.identifiers_of(challenge), via=ErasureRequest.Via.PUBLIC_PAGE)
    challenge.delete()
    return "erased"


@task()
def housekeeping(reschedule_minutes: int = 60) -> dict:
    """Expire unanswered double opt-ins and old codes; re-enqueues itself (a periodic task)."""
    result = work.run()
    if reschedule_minutes:
        housekeeping.using(
            run_after=timezone.now() + dt.timedelta(minutes=reschedule_minutes)
        ).enqueue(reschedule_minutes)
    return result
