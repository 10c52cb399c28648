"""Hostile input on every other door: CSV cells, the SMS webhook, signup and wallet forms,
the data-controls page and flow templates. Stored exactly or refused with a message, escaped
when shown, never executed, never a 500."""

from __future__ import annotations

import io

import pytest
from django.test import Client
from django.urls import reverse

from flows import engine
from imports import pipeline, services
from imports.models import ImportJob
from personas.models import InboundMessage, Persona
from tests.conftest import make_user
from tests.personas.factories import PersonaFactory, SignupFormFactory
from tests.test_security import HOSTILE

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror"


def _clean(html: str) -> bool:
    return SCRIPT not in html and IMG not in html


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:20]))
def test_hostile_csv_cells_are_stored_exactly_or_reported_and_pages_stay_escaped(value):
    cell = value.replace('"', '""')
    text = f'First Name,Mobile,Note\n"{cell}",2025550111,"{cell}"\n'
    job = services.upload(io.BytesIO(text.encode()), name="h.csv", user=None)
    job.status = ImportJob.Status.PREVIEWED
    job.save()
    job = pipeline.run(job.pk)
    assert job.counted == 1
    persona = Persona.objects.filter(phone="+12025550111").first()
    if job.created and "note" in (persona.attributes or {}):
        assert persona.attributes["note"] == value
    elif job.created:  # taken without the cell, reported as a warning
        assert job.warnings == 1 and "Note" in job.issues.get(outcome="warning").reason
    else:
        assert job.errors == 1 and job.issues.get().reason
    client = Client()
    client.force_login(make_user("Marketing"))
    for url in (reverse("imports:detail", args=[job.pk]), reverse("imports:history")):
        response = client.get(url)
        assert response.status_code == 200 and _clean(response.content.decode())
    body = b"".join(client.get(reverse("imports:errors", args=[job.pk])).streaming_content)
    assert b"\n=" not in body and b",=" not in body


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:20]))
def test_hostile_webhook_bodies_change_nothing_and_never_fail(client, value):
    persona = PersonaFactory(phone="+12025550112", text_consent="pending")
    response = client.post(
        reverse("customers:sms_inbound"),
        {"From": "+12025550112", "To": "+1", "Body": value, "MessageSid": f"SM{hash(value)}"},
    )
    assert response.status_code == 200
    assert SCRIPT not in response.content.decode()
    persona.refresh_from_db()
    assert persona.text_consent == "pending"
    # Any other reply to a pending request gets its one "Reply YES to confirm or STOP".
    assert InboundMessage.objects.get().outcome == "reminded"


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:20]))
def test_hostile_signup_and_wallet_and_privacy_forms(value):
    SignupFormFactory(slug="web", fields_asked=["first_name", "last_name", "email"])
    c = Client()
    response = c.post(
        reverse("customers:signup", args=["web"]),
        {"first_name": value, "last_name": value, "phone": "2025550113", "email": value},
    )
    assert response.status_code in (200, 302)
    assert _clean(response.content.decode())
    persona = Persona.objects.filter(phone="+12025550113").first()
    if persona is not None:
        assert persona.first_name == value
    for url, data in (
        (reverse("customers:wallet_start"), {"identifier": value}),
        (reverse("customers:data_controls"), {"phone": value, "email": value}),
    ):
        response = c.post(url, data)
        assert response.status_code in (200, 302, 429)
        assert _clean(response.content.decode())


@pytest.mark.parametrize(
    "template",
    [
        "{{ persona.__class__.__mro__ }}",
        "{{ settings.SECRET_KEY }}",
        "{% include 'config/settings.py' %}",
        "{% render '/etc/passwd' %}",
        "{% for i in (1..1024) %}{% for j in (1..1024) %}{{ i }}{% endfor %}{% endfor %}",
        "{{ 'x' | append: 'y' * 99999999 }}",
        "{% assign a = 'x' %}" * 3000,
        "{{ flow.name | evil_filter }}",
        "{% comment %} unclosed",
    ],
)
def test_flow_templates_cannot_reach_python_files_or_run_forever(template):
    context = {
        "persona": engine.persona_data(PersonaFactory()),
        "trigger": {},
        "widgets": {},
        "flow": {"name": "x"},
    }
    try:
        out = engine.render(template, context)
    except engine.TemplateError:
        return
    assert "SECRET" not in out and "class" not in out and len(out) <= 10_000


def test_a_flow_definition_with_a_nul_character_is_refused_not_a_500(client):
    client.force_login(make_user("Marketing"))
    text = '{"initial_state": "a", "states": [{"name": "a", "type": "wait", "properties": {"amount": 1, "unit": "days"}, "transitions": [{"event": "next"}]}], "description": "x\\u0000y"}'  # noqa: E501
    response = client.post(reverse("flows:import"), {"definition": text})
    assert response.status_code == 200 and "NUL character" in response.content.decode()
