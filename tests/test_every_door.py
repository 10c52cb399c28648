"""Every URL the product serves, knocked on with nonsense: wrong ids, unknown names, junk query
strings and junk form posts, as a visitor, as Staff and as Owner, plain and through htmx.

The rule from the design: bad input gets a clear answer (a message, a 400, 403, 404 or 405, or a
redirect) and never a 500. Unlike the targeted tests elsewhere, this one enumerates the URL
patterns, so a view added later is knocked on too without anyone remembering to."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from personas.services import merge as merge_service
from personas.services.changes import Actor
from tests.conftest import make_user
from tests.flows.factories import published_flow_with_run, uploaded_import
from tests.personas.factories import PersonaFactory, SignupFormFactory

pytestmark = pytest.mark.django_db

MIXED = ["-1", "99999999999999999999", "2024-02-30", "", "x" * 5000, "1e309", "on"]
# Every parameter name the views read (request.GET/POST and form fields), plus a few they don't.
FIELDS = (
    "a after at attr_key attr_value b birthday channel confirm consent created_from created_to "
    "cursor customer_id definition delimiter double_opt_in double_opt_in_at email encoding "
    "entry_source event existing favorite_store fields_asked first_name flow identifier "
    "import_job key last_name loyalty name next page persona phone points q reason reentry "
    "save_as saved_mapping seen send_double_opt_in signup_form sort source status step "
    "step_type store tab trigger_type value website when delta kind survivor other choice_phone"
).split()


def _patterns(resolver: URLResolver, prefix: str = "", namespace: str = ""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # Django's own admin, not ours
            yield from _patterns(entry, prefix + str(entry.pattern), entry.namespace or namespace)
        elif isinstance(entry, URLPattern):
            yield f"{namespace}:{entry.name}", entry, prefix


@pytest.fixture
def world():
    """One of everything a URL can name."""
    owner = make_user("Owner")
    persona = PersonaFactory(phone="+12025550140", email="door@example.com")
    other = PersonaFactory(phone="+12025550141")
    spare = PersonaFactory(phone="+12025550144")
    form = SignupFormFactory()
    flow, run_id = published_flow_with_run(persona)
    job = uploaded_import(owner)
    merged = PersonaFactory(phone="+12025550143")
    record = merge_service.merge(other.pk, merged.pk, actor=Actor.staff(owner))
    return {
        "persona": persona.pk,
        "other": spare.pk,
        "form": form.pk,
        "slug": form.slug,
        "flow": flow.pk,
        "run": run_id,
        "job": job.pk,
        "merge": record.pk,
        "step": "mark_vip",
    }


def _kwarg_values(name: str, pattern: URLPattern, key: str, world: dict) -> list:
    converters = pattern.pattern.converters
    kind = type(converters.get(key)).__name__ if key in converters else "str"
    if kind == "IntConverter":
        real = {
            "imports": world["job"],
            "flows:run": world["run"],
            "personas:unmerge": world["merge"],
            "personas:signup_form_edit": world["form"],
        }
        namespace = name.split(":")[0]
        value = real.get(name, real.get(namespace))
        if key == "persona_pk" or value is None and namespace == "personas":
            value = world["persona"]
        if value is None and namespace == "flows":
            value = world["flow"]
        return [value, 999999]
    if kind == "SlugConverter":
        return [world["slug"], "no-such-form"]
    if key == "name":
        return [world["step"], "no_such_step"]
    return ["email", "carrier-pigeon"]


def _urls(world: dict):
    for name, pattern, prefix in _patterns(get_resolver()):
        keys = list(pattern.pattern.converters) or []
        if not keys:
            from django.urls.resolvers import RegexPattern

            if isinstance(pattern.pattern, RegexPattern):
                keys = list(pattern.pattern.regex.groupindex)
        route = prefix + str(pattern.pattern)
        if not keys:
            yield name, "/" + route.lstrip("^").rstrip("$")
            continue
        choices = [_kwarg_values(name, pattern, key, world) for key in keys]
        for i in range(2):
            kwargs = {key: values[i] for key, values in zip(keys, choices, strict=True)}
            try:
                yield name, reverse(name, kwargs=kwargs)
            except Exception:  # noqa: BLE001  (a regex route that refuses the junk value)
                continue


ID_FIELDS = {"a": "persona", "b": "other", "persona": "persona", "other": "other", "flow": "flow"}


def _junk(world: dict) -> list[dict[str, str]]:
    """Four bodies: every field a NUL; every field markup; a mix of out-of-range numbers,
    impossible dates, empty and huge values; and the same mix with the id fields naming
    real objects (so a view gets past its lookups into its parsing)."""
    mixed = {f: MIXED[i % len(MIXED)] for i, f in enumerate(FIELDS)}
    real = {**mixed, **{f: str(world[k]) for f, k in ID_FIELDS.items()}}
    return [dict.fromkeys(FIELDS, "\x00"), dict.fromkeys(FIELDS, "'\"<b>"), mixed, real]


def _customer_session(client: Client, world: dict) -> None:
    """A customer half way through both code checks and signed in to the wallet."""
    from personas.services import otp
    from personas.services.privacy import parse_identifier

    ident = parse_identifier("door@example.com")
    session = client.session
    session["wallet_challenge"] = otp.start([ident], purpose="wallet", purpose_label="x").pk
    session["privacy_challenge"] = otp.start([ident], purpose="erase", purpose_label="x").pk
    session["wallet_persona"] = world["persona"]
    session.save()


@pytest.mark.parametrize("role", [None, "customer", "Staff", "Owner"])
def test_no_url_answers_nonsense_with_a_server_error(role, world):
    client = Client(raise_request_exception=True)
    if role == "customer":
        _customer_session(client, world)
        for door in (
            "customers:wallet",
            "customers:wallet_verify",
            "customers:data_controls_verify",
        ):
            assert client.get(reverse(door)).status_code == 200  # really inside each door
    elif role:
        client.force_login(make_user(role))
    failures = []
    urls = list(_urls(world))
    bodies = _junk(world)
    assert len(urls) > 60  # the sweep really walked the URL table
    for name, url in urls:
        if name == ":logout":
            continue  # it signs the client out, which is what it is for
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            for n, body in enumerate(bodies):
                for method in ("get", "post"):
                    where = f"{method.upper()} {name} {url} body {n}"
                    try:
                        response = getattr(client, method)(url, body, **headers)
                    except Exception as exc:  # noqa: BLE001
                        failures.append(f"{where}: {repr(exc)[:200]}")
                        continue
                    if response.status_code >= 500:
                        failures.append(f"{where}: {response.status_code}")
    assert not failures, "\n".join(failures[:40])
