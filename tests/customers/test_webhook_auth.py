"""Who may post to /sms/inbound/: the SMS backend verifies the provider's proof, and a backend
that cannot verify refuses every post once verification is on (the production default)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.urls import reverse
from twilio.request_validator import RequestValidator

from personas.messaging.backends import ConsoleBackend, LocmemBackend, TwilioBackend
from personas.models import InboundMessage

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
CONSOLE = "personas.messaging.backends.ConsoleBackend"
LOCMEM = "personas.messaging.backends.LocmemBackend"
TWILIO = "personas.messaging.backends.TwilioBackend"
TOKEN = "test-token-123"
PARAMS = {"MessageSid": "SM100", "From": "+12025550142", "To": "+12025550000", "Body": "STOP"}


def _post(client, **headers):
    return client.post(reverse("customers:sms_inbound"), PARAMS, **headers)


def _signature(url: str, token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, PARAMS)


@pytest.fixture
def twilio(settings, monkeypatch):
    settings.SMS_BACKEND = TWILIO
    settings.SMS_VERIFY_SIGNATURES = True
    settings.TWILIO_AUTH_TOKEN = TOKEN

    def no_client(self):
        raise AssertionError("verifying a webhook must not build a Twilio REST client")

    monkeypatch.setattr(TwilioBackend, "__init__", no_client)
    return settings


def test_example_6_unsigned_inbound_post_is_refused_in_production_with_a_non_twilio_backend(
    client, settings
):
    settings.SMS_VERIFY_SIGNATURES = True
    settings.SMS_BACKEND = CONSOLE
    response = client.post(
        reverse("customers:sms_inbound"),
        {"MessageSid": "SM1", "From": "+12025550142", "Body": "YES"},
    )
    assert response.status_code == 403
    assert not InboundMessage.objects.exists()


@pytest.mark.parametrize("backend", [CONSOLE, LOCMEM])
def test_a_backend_that_cannot_verify_refuses_even_a_twilio_signed_post(client, settings, backend):
    settings.SMS_VERIFY_SIGNATURES = True
    settings.SMS_BACKEND = backend
    settings.TWILIO_AUTH_TOKEN = TOKEN
    signature = _signature("http://testserver" + reverse("customers:sms_inbound"))
    assert _post(client, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403
    assert not InboundMessage.objects.exists()


def test_twilio_accepts_a_correct_signature_and_refuses_a_wrong_or_missing_one(client, twilio):
    url = "http://testserver" + reverse("customers:sms_inbound")
    assert _post(client).status_code == 403
    assert _post(client, HTTP_X_TWILIO_SIGNATURE="bad").status_code == 403
    other_token = _signature(url, token="someone-elses-token")
    assert _post(client, HTTP_X_TWILIO_SIGNATURE=other_token).status_code == 403
    assert not InboundMessage.objects.exists()
    assert _post(client, HTTP_X_TWILIO_SIGNATURE=_signature(url)).status_code == 200
    assert InboundMessage.objects.filter(message_sid="SM100").exists()


def test_twilio_signs_the_public_url_when_the_app_sits_behind_a_proxy(client, twilio):
    twilio.PERSONAS_PUBLIC_BASE_URL = "https://sms.example.com/"
    public = "https://sms.example.com" + reverse("customers:sms_inbound")
    internal = "http://testserver" + reverse("customers:sms_inbound")
    assert _post(client, HTTP_X_TWILIO_SIGNATURE=_signature(internal)).status_code == 403
    assert _post(client, HTTP_X_TWILIO_SIGNATURE=_signature(public)).status_code == 200


def test_twilio_without_an_auth_token_refuses_every_post(client, twilio):
    url = "http://testserver" + reverse("customers:sms_inbound")
    signature = _signature(url)
    twilio.TWILIO_AUTH_TOKEN = ""
    assert _post(client, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403


def test_the_risky_setting_lets_a_backend_that_cannot_verify_accept_posts(client, settings):
    settings.SMS_VERIFY_SIGNATURES = True
    settings.SMS_BACKEND = CONSOLE
    settings.SMS_INBOUND_ALLOW_UNVERIFIED_RISKY = True
    assert _post(client).status_code == 200
    assert InboundMessage.objects.filter(message_sid="SM100").exists()


def test_the_risky_setting_never_lets_a_bad_twilio_signature_through(client, twilio):
    twilio.SMS_INBOUND_ALLOW_UNVERIFIED_RISKY = True
    assert _post(client, HTTP_X_TWILIO_SIGNATURE="bad").status_code == 403


def test_with_verification_off_outside_production_every_post_is_accepted(client, settings):
    settings.SMS_VERIFY_SIGNATURES = False
    settings.SMS_BACKEND = CONSOLE
    assert _post(client).status_code == 200


def test_each_backend_says_how_it_verifies_inbound_webhooks():
    assert "X-Twilio-Signature" in TwilioBackend.inbound_verification
    assert ConsoleBackend.inbound_verification == LocmemBackend.inbound_verification == ""


# ---------------------------------------------------------------------------------------------
# check --deploy


def _e001() -> list:
    return [m for m in run_checks(include_deployment_checks=True) if m.id == "personas.E001"]


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"SMS_VERIFY_SIGNATURES": False, "SMS_BACKEND": TWILIO}, "SMS_VERIFY_SIGNATURES is off"),
        ({"SMS_VERIFY_SIGNATURES": False, "SMS_BACKEND": CONSOLE}, "SMS_VERIFY_SIGNATURES is off"),
        ({"SMS_BACKEND": CONSOLE, "SMS_INBOUND_ALLOW_UNVERIFIED_RISKY": True}, "cannot verify"),
        ({"SMS_BACKEND": LOCMEM, "SMS_INBOUND_ALLOW_UNVERIFIED_RISKY": True}, "cannot verify"),
        ({"SMS_BACKEND": TWILIO, "TWILIO_AUTH_TOKEN": ""}, "TWILIO_AUTH_TOKEN is empty"),
    ],
)
def test_check_deploy_reports_unverified_inbound_webhooks(settings, overrides, says):
    settings.SMS_VERIFY_SIGNATURES = True
    settings.SMS_INBOUND_ALLOW_UNVERIFIED_RISKY = False
    settings.TWILIO_AUTH_TOKEN = TOKEN
    for name, value in overrides.items():
        setattr(settings, name, value)
    errors = _e001()
    assert errors and any(says in e.msg for e in errors), errors
    assert all(e.is_serious() and "SMS_INBOUND_ALLOW_UNVERIFIED_RISKY" in e.hint for e in errors)


@pytest.mark.parametrize("backend", [TWILIO, CONSOLE])
def test_check_deploy_is_quiet_when_inbound_webhooks_are_verified_or_refused(settings, backend):
    settings.SMS_BACKEND = backend  # console: every inbound post is refused, which is safe
    settings.SMS_VERIFY_SIGNATURES = True
    settings.SMS_INBOUND_ALLOW_UNVERIFIED_RISKY = False
    settings.TWILIO_AUTH_TOKEN = TOKEN
    assert _e001() == []


def test_production_verifies_inbound_webhooks_by_default_and_check_deploy_fails_when_risky():
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SMS_", "TWILIO_", "DJANGO_")) and k not in {"SECRET_KEY", "DEBUG"}
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ENV": "production",
        "SECRET_KEY": "x" * 50,
        "ALLOWED_HOSTS": "personas.example.com",
    }

    def manage(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    shown = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; print(s.SMS_BACKEND, s.SMS_VERIFY_SIGNATURES)",
    )
    assert shown.stdout.splitlines()[-1].split() == [CONSOLE, "True"], shown.stderr
    risky = manage("check", "--deploy", SMS_INBOUND_ALLOW_UNVERIFIED_RISKY="1")
    assert risky.returncode != 0
    assert "personas.E001" in risky.stderr + risky.stdout
