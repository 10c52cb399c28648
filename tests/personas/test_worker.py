"""A real worker process picks up a queued task from the database and runs it."""

from __future__ import annotations

import pytest

from personas.models import OutboundMessage
from personas.tasks import send_outbound_message
from tests.personas.factories import OutboundMessageFactory, PersonaFactory
from tests.worker import run_worker_batch

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_process_sends_a_queued_message_once():
    # A double opt-in request goes out while the number's request is pending.
    persona = PersonaFactory(phone="+12025550199", text_consent="pending")
    message = OutboundMessageFactory(persona=persona, to=persona.phone, transactional=True)
    result = send_outbound_message.using(backend="database").enqueue(message.pk)
    assert OutboundMessage.objects.get(pk=message.pk).status == "queued"

    proc = run_worker_batch()
    assert proc.returncode == 0, proc.stderr[-2000:]

    message.refresh_from_db()
    assert message.status == "sent"
    assert message.provider_id.startswith("locmem-")
    result.refresh()
    assert result.status == "SUCCESSFUL"
    assert result.return_value == "sent"

    # A second delivery of the same message (a retry) sends nothing.
    send_outbound_message.using(backend="database").enqueue(message.pk)
    run_worker_batch()
    message.refresh_from_db()
    assert message.status == "sent"
