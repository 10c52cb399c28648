"""The SMS webhook: a signed post from the provider, with a message id. (What a text does
once accepted: tests/personas/test_messaging.py.)"""

from __future__ import annotations

import pytest
from django.urls import reverse
from twilio.request_validator import RequestValidator

from personas.models import InboundMessage
from tests.personas.test_messaging import PHONE, _pending_persona, _post

pytestmark = pytest.mark.django_db


def test_twilio_signature_is_required_when_twilio_is_on(client, settings):
    settings.SMS_BACKEND = "personas.messaging.backends.TwilioBackend"
    settings.SMS_VERIFY_SIGNATURES = True
    settings.TWILIO_AUTH_TOKEN = "test-token-123"
    persona = _pending_persona()
    assert _post(client, "STOP", "SM8").status_code == 403
    assert _post(client, "STOP", "SM8", HTTP_X_TWILIO_SIGNATURE="bad").status_code == 403
    persona.refresh_from_db()
    assert persona.text_consent == "pending" and not InboundMessage.objects.exists()
    params = {"From": PHONE, "To": "+12025550000", "Body": "STOP", "MessageSid": "SM8"}
    url = "http://testserver" + reverse("customers:sms_inbound")
    signature = RequestValidator("test-token-123").compute_signature(url, params)
    response = _post(client, "STOP", "SM8", HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 200
    persona.refresh_from_db()
    assert persona.text_consent == "opted_out"


def test_webhook_refuses_a_post_without_a_message_id(client):
    response = client.post(reverse("customers:sms_inbound"), {"From": PHONE, "Body": "YES"})
    assert response.status_code == 400
