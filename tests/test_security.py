"""Browser-side protections and hostile input on the personas pages."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import make_user
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.django_db

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'; DROP TABLE personas_persona; --",
    "{{ settings.SECRET_KEY }}",
    "{% debug %}",
    "\u202egnp.exe",
    "😀🎉 emoji",
    "x" * 5000,
    "tab\tand\nnewline",
    "nul\x00byte",
    "\x07bell",
]


def test_csrf_token_is_required_for_state_changes_including_htmx():
    persona = PersonaFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("Owner"))
    url = reverse("personas:consent", args=[persona.pk, "email"])
    assert client.post(url, {"value": "on"}).status_code == 403
    assert client.post(url, {"value": "on"}, HTTP_HX_REQUEST="true").status_code == 403
    persona.refresh_from_db()
    assert persona.email_consent == "never"
    page = client.get(persona.get_absolute_url()).content.decode()
    token = re.search(r'"x-csrftoken": "([^"]+)"', page).group(1)
    response = client.post(url, {"value": "on"}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    persona.refresh_from_db()
    assert persona.email_consent == "opted_in"


def test_pages_send_a_strict_content_security_policy_and_no_inline_code(client):
    client.force_login(make_user("Owner"))
    persona = PersonaFactory(attributes={"k": "v"})
    for url in [
        reverse("personas:list"),
        persona.get_absolute_url(),
        reverse("personas:create"),
        reverse("personas:traits", args=[persona.pk]),
        reverse("personas:archived"),
        reverse("login"),
    ]:
        response = client.get(url)
        csp = response["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response["X-Frame-Options"] == "DENY"
        html = response.content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert not re.search(r"\son[a-z]+\s*=", html), url
        assert not re.search(r"\sstyle\s*=", html), url


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:20]))
def test_hostile_traits_are_stored_exactly_or_refused_and_always_escaped(client, value):
    client.force_login(make_user("Staff"))
    persona = PersonaFactory(first_name="Safe", attributes={})
    response = client.post(
        reverse("personas:traits", args=[persona.pk]),
        {
            "first_name": value,
            "last_name": persona.last_name,
            "phone": persona.phone,
            "email": persona.email,
            "attr_key": ["note"],
            "attr_type": ["text"],
            "attr_value": [value],
        },
    )
    assert response.status_code in (200, 302)
    persona.refresh_from_db()
    if response.status_code == 302:
        assert persona.attributes["note"] == value
        page = client.get(persona.get_absolute_url()).content.decode()
        assert "<script>alert(1)</script>" not in page
        assert "<img src=x onerror" not in page
    else:
        assert persona.first_name == "Safe" and persona.attributes == {}


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:20]))
def test_hostile_search_never_fails_and_is_escaped(client, value):
    client.force_login(make_user("Staff"))
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = client.get(reverse("personas:list"), {"q": value}, **headers)
        assert response.status_code == 200
        assert "<script>alert(1)</script>" not in response.content.decode()


@pytest.mark.parametrize("key", ["<b>x</b>", "a b", "__proto__x;", "k" * 200, "ключ"])
def test_hostile_attribute_keys_are_refused_with_a_message(client, key):
    client.force_login(make_user("Staff"))
    persona = PersonaFactory(attributes={})
    response = client.post(
        reverse("personas:traits", args=[persona.pk]),
        {"attr_key": [key], "attr_type": ["text"], "attr_value": ["v"]},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "may use letters" in body or "longer than 64" in body
    persona.refresh_from_db()
    assert persona.attributes == {}


def test_repeated_failed_sign_ins_lock_the_account(client, settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    user = make_user("Staff")
    for _ in range(3):
        client.post(reverse("login"), {"username": user.username, "password": "wrong"})
    response = client.post(
        reverse("login"), {"username": user.username, "password": "a-Strong-pass-123"}
    )
    assert response.status_code == 429
    assert b"Too many sign-in attempts" in response.content


def test_sessions_expire_and_weak_passwords_are_refused(client, settings):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    assert 0 < settings.SESSION_COOKIE_AGE <= 12 * 3600
    for weak in ("password", "12345678", "short"):
        with pytest.raises(ValidationError):
            validate_password(weak)
    user = make_user("Staff")
    client.force_login(user)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": "a-Strong-pass-123",
            "new_password1": "password",
            "new_password2": "password",
        },
    )
    assert response.status_code == 200 and b"too common" in response.content
