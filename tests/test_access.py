"""Access control, proven for every URL: the whole URLconf is walked (not a hand-kept list).

Every view outside Django admin either declares the capability it needs (``require_cap``)
or is listed below as public / sign-in-only with a reason, so a new endpoint cannot escape.
Each URL is requested with GET and POST as anonymous, as a user without a role and as each of
the seven roles, and the answer is checked against the role table.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from personas.roles import ROLES
from tests.conftest import make_user
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.django_db

# Public pages: no staff sign-in by design.
PUBLIC = {
    "login": "the sign-in page",
    "password_reset_confirm": "a team member sets a password from an emailed one-time link",
    "health": "load balancer health check; reports no data",
    "data_controls": "customers ask for their data to be deleted (proved by one-time codes)",
    "data_controls_verify": "customers enter the one-time codes",
    "data_controls_done": "confirmation page; says nothing about any customer",
    "sms_inbound": "the SMS provider's webhook; its signature is verified in production",
    "email_confirm": "the customer's email confirmation link (a signed token proves the address)",
    "signup": "a store's public signup form (rate limited, honeypot, CSRF)",
    "signup_done": "the signup form's thank-you page",
    "wallet": "the customer's own wallet, after a one-time code",
    "wallet_start": "wallet sign-in: asks for a phone or email",
    "wallet_verify": "wallet sign-in: the one-time code",
    "wallet_store": "the signed-in customer picks a favorite store",
    "wallet_consent": "the signed-in customer manages their own opt-ins",
    "wallet_signout": "the customer signs out of the wallet",
}
# Sign-in needed, no role needed.
SIGNED_IN_ONLY = {
    "logout": "anyone signed in may sign out",
    "password_change": "anyone signed in may change their own password",
    "password_change_done": "confirmation page of the above",
}
SKIP_NAMESPACES = {"admin"}  # Django admin: is_staff + model permissions (tests/test_admin*)


def walk(patterns, prefix="", namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = p.namespace or namespace
            if ns in SKIP_NAMESPACES:
                continue
            yield from walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p, namespace


def required_cap(callback):
    cap = getattr(callback, "required_cap", None)
    if cap is None and hasattr(callback, "view_class"):
        cap = getattr(callback.view_class, "required_cap", None)
    return cap


def concrete(route: str, pk: int) -> str | None:
    """Turn a route (path converters or a regex) into a URL with sample arguments."""
    route = route.lstrip("^").rstrip("$")

    def conv(m):
        kind, name = m.group(1) or "str", m.group(2)
        if kind == "int":
            return str(pk)
        if name == "channel":
            return "email"
        if kind == "uuid":
            return "00000000-0000-0000-0000-000000000000"
        return "sample"

    def regex_group(m):
        body = m.group(2)
        if "0-9" in body or "\\d" in body:
            return str(pk)
        return body.split("|")[0]

    url = re.sub(r"\(\?P<(\w+)>([^()]*)\)", regex_group, route)
    url = re.sub(r"<(?:(\w+):)?(\w+)>", conv, url)
    return "/" + url


def all_routes():
    out = []
    for route, pattern, ns in walk(get_resolver().url_patterns):
        name = pattern.name or ""
        if getattr(pattern.callback, "view_class", None).__class__.__name__ == "RedirectView":
            continue
        out.append((route, pattern, ns, name))
    return out


ROUTES = all_routes()


def test_every_view_declares_its_capability_or_why_it_is_open():
    undeclared = []
    for route, pattern, _ns, name in ROUTES:
        if name in PUBLIC or name in SIGNED_IN_ONLY or route == "":
            continue
        if required_cap(pattern.callback) is None:
            undeclared.append(route)
    assert undeclared == [], f"views without require_cap or a listed reason: {undeclared}"


CAPPED = [
    (route, pattern) for route, pattern, _ns, _name in ROUTES if required_cap(pattern.callback)
]


@pytest.mark.parametrize(("route", "pattern"), CAPPED, ids=[r for r, _ in CAPPED])
def test_each_url_answers_each_role_by_the_table(client, route, pattern):
    cap = required_cap(pattern.callback)
    persona = PersonaFactory()
    url = concrete(route, persona.pk)
    for method in ("get", "post"):
        client.logout()
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], (
            method,
            url,
            "anonymous",
        )
        client.force_login(make_user(None))
        assert getattr(client, method)(url).status_code == 403, (method, url, "no role")
        for role, caps in ROLES.items():
            client.force_login(make_user(role))
            status = getattr(client, method)(url).status_code
            if cap in caps:
                assert status not in (401, 403) and status < 500, (method, url, role, status)
            else:
                assert status == 403, (method, url, role, status)


def test_hidden_and_erased_personas_answer_404_on_every_persona_url(client):
    client.force_login(make_user("Owner"))
    for persona in (PersonaFactory(hidden=True), PersonaFactory(status="erased")):
        for route, pattern in CAPPED:
            if "<int:pk>" not in route and "(?P<pk>" not in route:
                continue
            if not route.startswith("personas/"):
                continue
            url = concrete(route, persona.pk)
            status = client.get(url).status_code
            if status == 405:
                status = client.post(url).status_code
            assert status == 404, url
