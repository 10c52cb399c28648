"""The staff workspace: consent confirmations and switches, the persona export (formula
escaping, custom attributes), landing on a new persona, and no-store on private pages."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

import pytest
from django.core import mail
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse
from hypothesis import example, given
from hypothesis import strategies as st

from imports import pipeline
from imports import services as import_services
from imports.models import ImportJob
from personas.middleware import NoStoreMiddleware
from personas.models import Persona
from personas.selectors import attribute_keys
from personas.spreadsheet import escape_cell
from personas.views.exports import EXPORT_COLUMNS
from tests.conftest import make_user
from tests.flows.factories import published_flow_with_run, uploaded_import
from tests.personas.factories import PersonaFactory, SignupFormFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
PHONE = "+12025550101"
PHONE_SHOWN = "(202) 555-0101"
EMAIL = "ana@example.com"
CHANNELS = ["email", "text", "voice", "browser", "push"]
STATES = ["never", "pending", "opted_in", "opted_out"]


# ---------------------------------------------------------------------------------------------
# The Opt-ins card, read as a person (or a screen reader) would


class _ConsentCard(HTMLParser):
    """Per channel of the Opt-ins card: its state badge, its switch (or read-only checkbox)
    and each action it offers, with the question asked before that action is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.badges: dict[str, str] = {}
        self.switches: dict[str, str] = {}  # channel → aria-checked / "checked" / ""
        self.actions: dict[str, dict[str, str | None]] = {}  # channel → value → question
        self.buttons: dict[str, dict[str, str]] = {}  # channel → value → button text
        self._form: dict[str, str | None] | None = None
        self._badge: str | None = None
        self._button: tuple[str, str] | None = None
        self._channel = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "span" and a.get("data-state"):
            self._badge = a["data-state"]
            self.badges[self._badge] = ""
        elif tag == "form" and "/consent/" in (a.get("action") or ""):
            self._form = a
            self._channel = (a.get("action") or "").rstrip("/").rsplit("/", 1)[-1]
        elif tag == "button" and self._form is not None and a.get("name") == "value":
            value = a.get("value") or ""
            self.actions.setdefault(self._channel, {})[value] = self._form.get("hx-confirm")
            if a.get("role") == "switch":
                self.switches[self._channel] = a.get("aria-checked") or ""
            self._button = (self._channel, value)
            self.buttons.setdefault(self._channel, {})[value] = ""
        elif tag == "input" and "(read-only)" in (a.get("aria-label") or ""):
            channel = (a.get("aria-label") or "").split()[0].lower()
            self.switches[channel] = "checked" if "checked" in a else ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "span":
            self._badge = None
        elif tag == "button":
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._badge:
            self.badges[self._badge] += data
        if self._button:
            channel, value = self._button
            self.buttons[channel][value] += data


def _card(client: Client, persona: Persona) -> _ConsentCard:
    card = _ConsentCard()
    card.feed(client.get(reverse("personas:detail", args=[persona.pk])).content.decode())
    return card


def _persona(**consents: str) -> Persona:
    return PersonaFactory(first_name="Ana", last_name="Lopez", phone=PHONE, email=EMAIL, **consents)


OPT_OUT = "Opt this customer out of {} to {}? No more marketing {} until they opt in again."
ASK_YES = (
    "Send a double opt-in text to (202) 555-0101? Texts stay off until the customer replies YES."
)


@pytest.mark.parametrize(
    ("channel", "state", "value", "question"),
    [
        # Waiting for the customer: ask again, or stop asking.
        (
            "text",
            "pending",
            "resend",
            "Send the double opt-in text again to (202) 555-0101? "
            "Texts stay off until the customer replies YES.",
        ),
        (
            "email",
            "pending",
            "resend",
            "Send the double opt-in email again to ana@example.com? "
            "Emails stay off until the customer confirms.",
        ),
        (
            "text",
            "pending",
            "off",
            "Cancel the double opt-in request? Text will be opted out until the customer opts "
            "in again.",
        ),
        (
            "email",
            "pending",
            "off",
            "Cancel the double opt-in request? Email will be opted out until the customer opts "
            "in again.",
        ),
        # Opting out names what stops, and where.
        ("text", "opted_in", "off", OPT_OUT.format("texts", PHONE_SHOWN, "texts")),
        ("voice", "opted_in", "off", OPT_OUT.format("calls", PHONE_SHOWN, "calls")),
        ("email", "opted_in", "off", OPT_OUT.format("emails", EMAIL, "emails")),
        (
            "browser",
            "opted_in",
            "off",
            "Opt this customer out of browser notifications? "
            "No more marketing browser notifications until they opt in again.",
        ),
        # A text opt-in sends a text: it says so. Other opt-ins send nothing and ask nothing.
        ("text", "never", "on", ASK_YES),
        ("text", "opted_out", "on", ASK_YES),
        ("email", "never", "on", None),
        ("email", "opted_out", "on", None),
        ("voice", "never", "on", None),
        ("browser", "opted_out", "on", None),
        # A pending state on a channel without double opt-in is off: switching on opts in.
        ("voice", "pending", "on", None),
        ("browser", "pending", "on", None),
    ],
)
def test_each_consent_action_asks_what_it_does(staff_client, channel, state, value, question):
    card = _card(staff_client, _persona(**{f"{channel}_consent": state}))
    assert card.actions[channel][value] == question


def test_a_text_opt_in_without_double_opt_in_asks_nothing(staff_client, settings):
    settings.PERSONAS_TEXT_DOUBLE_OPT_IN = False
    card = _card(staff_client, _persona(text_consent="never"))
    assert card.actions["text"] == {"on": None}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_the_switch_is_on_only_when_opted_in_and_pending_says_so(staff_client, channel, state):
    card = _card(staff_client, _persona(**{f"{channel}_consent": state}))
    assert ("Pending" in card.badges[channel]) is (state == "pending")
    awaiting = state == "pending" and channel in ("text", "email")
    if channel == "push":  # read-only: only the customer's app opts in
        assert card.switches["push"] == ("checked" if state == "opted_in" else "")
        assert "push" not in card.actions
    elif awaiting:  # no switch: ask again or stop asking
        assert channel not in card.switches
        noun = "email" if channel == "email" else "text"
        assert card.buttons[channel] == {
            "resend": f"Resend double opt-in {noun}",
            "off": "Cancel request",
        }
    else:
        assert card.switches[channel] == ("true" if state == "opted_in" else "false")
        assert set(card.actions[channel]) == {"off" if state == "opted_in" else "on"}


def test_every_switch_on_the_card_is_on_only_when_opted_in(staff_client):
    persona = _persona(
        email_consent="opted_in",
        text_consent="pending",
        voice_consent="opted_out",
        browser_consent="pending",
        push_consent="opted_in",
    )
    card = _card(staff_client, persona)
    assert card.switches == {
        "email": "true",
        "voice": "false",
        "browser": "false",
        "push": "checked",
    }


# ---------------------------------------------------------------------------------------------
# Formula escaping: one rule for the exports and the import error report


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("+12025550101", "+12025550101"),  # a phone in E.164: a number
        ("-5", "-5"),
        ("-3.5", "-3.5"),
        ("+.5", "+.5"),
        ("-1e-05", "-1e-05"),
        ("42", "42"),
        ("plain", "plain"),
        ("", ""),
        ("=cmd()", "'=cmd()"),
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),  # a spreadsheet computes it: 1
        ("+1 202-555-0101", "'+1 202-555-0101"),
        ("-", "'-"),
        ("-1,000", "'-1,000"),
        ("- 5", "'- 5"),
        ("-٣", "'-٣"),  # not ASCII digits: not a number a spreadsheet reads
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
    ],
)
def test_only_cells_a_spreadsheet_would_run_are_escaped(cell, written):
    assert escape_cell(cell) == written


def _plain_numbers():
    numbers = st.one_of(
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.decimals(allow_nan=False, allow_infinity=False),
    )
    return st.tuples(numbers, st.sampled_from(["", "+"])).map(
        lambda pair: pair[1] + str(pair[0]) if not str(pair[0]).startswith("-") else str(pair[0])
    )


@given(_plain_numbers())
@example("-0")
@example("+12025550101")
def test_a_number_is_never_escaped(text):
    assert escape_cell(text) == text


@given(st.sampled_from(["=", "@", "\t", "\r"]), st.text())
def test_what_starts_with_a_formula_sign_is_always_escaped(sign, rest):
    assert escape_cell(sign + rest) == "'" + sign + rest


@given(st.text())
@example("-2+3")
@example("+")
def test_escaping_only_ever_adds_one_apostrophe_and_leaves_nothing_runnable(text):
    written = escape_cell(text)
    assert written in (text, "'" + text)  # unescaped cells are unchanged; escaped ones round-trip
    assert escape_cell(written) == written
    if written == text and text:
        assert text[0] not in "=@\t\r"
        if text[0] in "+-":
            float(text)  # what is left starting with a sign is a number


def test_the_import_error_report_and_the_export_escape_alike(client):
    job = import_services.upload(
        io.BytesIO(b"First Name,Mobile\n=cmd(),bad\n-5,bad\n"), name="c.csv", user=None
    )
    job.status = ImportJob.Status.PREVIEWED
    job.save()
    pipeline.run(job.pk)
    client.force_login(make_user("Owner"))
    report = _csv(client.get(reverse("imports:errors", args=[job.pk])))
    assert [row[3] for row in report[1:]] == ["'=cmd()", "-5"]
    PersonaFactory(first_name="=cmd()", last_name="-5")
    exported = _csv(client.get(reverse("personas:export")))
    assert exported[1][1:3] == ["'=cmd()", "-5"]


# ---------------------------------------------------------------------------------------------
# The persona export: custom attributes, one column each


def _csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(body)))


def test_the_export_has_one_column_per_attribute_with_values_as_stored(client):
    older = PersonaFactory(
        first_name="Bo",
        phone=PHONE,
        points_balance=-5,
        loyalty_enrolled=True,
        attributes={"shoe_size": 42, "vip": True, "tier": "gold", "ratio": -3.5},
    )
    newer = PersonaFactory(
        first_name="Cy",
        phone="+12025550102",
        attributes={"shoe_size": 9.5, "note": "=cmd()", "allergy": None, "vip": False},
    )
    PersonaFactory(first_name="Di", attributes={})
    client.force_login(make_user("Analyst"))
    response = client.get(reverse("personas:export"))
    assert response.streaming
    rows = _csv(response)
    fixed = [name for name, _ in EXPORT_COLUMNS]
    attrs = ["allergy", "note", "ratio", "shoe_size", "tier", "vip"]
    assert rows[0] == fixed + [f"attr:{key}" for key in attrs]
    by_name = {row[1]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    expected = {
        "Bo": {
            "attr:allergy": "",
            "attr:note": "",
            "attr:ratio": "-3.5",
            "attr:shoe_size": "42",
            "attr:tier": "gold",
            "attr:vip": "true",
            "phone": PHONE,
            "points": "-5",
            "loyalty_enrolled": "true",
        },
        "Cy": {
            "attr:allergy": "",
            "attr:note": "'=cmd()",
            "attr:ratio": "",
            "attr:shoe_size": "9.5",
            "attr:tier": "",
            "attr:vip": "false",
            "phone": "+12025550102",
            "points": "0",
            "loyalty_enrolled": "false",
        },
        "Di": {f"attr:{key}": "" for key in attrs},
    }
    for name, cells in expected.items():
        assert {k: by_name[name][k] for k in cells} == cells, name
    assert by_name["Bo"]["id"] == str(older.pk) and by_name["Cy"]["id"] == str(newer.pk)


def test_the_export_without_attributes_keeps_its_columns(client):
    PersonaFactory(attributes={})
    client.force_login(make_user("Owner"))
    assert _csv(client.get(reverse("personas:export")))[0] == [n for n, _ in EXPORT_COLUMNS]


def test_only_the_exported_personas_attributes_become_columns(client):
    PersonaFactory(first_name="Shown", attributes={"shown_key": 1})
    PersonaFactory(first_name="Gone", status="archived", attributes={"archived_key": 1})
    PersonaFactory(first_name="Secret", hidden=True, attributes={"hidden_key": 1})
    PersonaFactory(first_name="Other", attributes={"other_key": 1})
    client.force_login(make_user("Owner"))
    header = _csv(client.get(reverse("personas:export"), {"attr_key": "shown_key"}))[0]
    assert [h for h in header if h.startswith("attr:")] == ["attr:shown_key"]
    header = _csv(client.get(reverse("personas:export")))[0]
    assert [h for h in header if h.startswith("attr:")] == ["attr:other_key", "attr:shown_key"]


def test_attribute_keys_are_read_in_one_bounded_query(django_assert_num_queries):
    for i in range(5):
        PersonaFactory(attributes={f"key_{i}": i, "common": True})
    PersonaFactory(attributes=[])  # not an object: no keys, no error
    owner = make_user("Owner")
    from personas.forms import ListFilterForm
    from personas.selectors import filtered_personas

    qs = filtered_personas(user=owner, lq=ListFilterForm({}).to_query())
    with django_assert_num_queries(1):
        assert attribute_keys(qs, limit=3) == ["common", "key_0", "key_1"]
    assert len(attribute_keys(qs, limit=100)) == 6


# ---------------------------------------------------------------------------------------------
# Creating a persona lands on its page


CREATE = {"first_name": "Dana", "last_name": "Reyes", "phone": "(415) 555-0176"}


def test_creating_from_the_slide_out_takes_the_page_to_the_new_persona(staff_client):
    response = staff_client.post(reverse("personas:create"), CREATE, **HTMX)
    persona = Persona.objects.get(first_name="Dana")
    assert response.status_code == 200
    assert response["HX-Redirect"] == persona.get_absolute_url()
    page = staff_client.get(response["HX-Redirect"]).content.decode()
    assert "Persona Dana Reyes created." in page and "<h1>Dana Reyes" in page


def test_creating_without_javascript_lands_on_the_new_persona(staff_client):
    response = staff_client.post(reverse("personas:create"), CREATE, follow=True)
    persona = Persona.objects.get(first_name="Dana")
    assert response.redirect_chain == [(persona.get_absolute_url(), 302)]
    assert "Persona Dana Reyes created." in response.content.decode()


def test_a_refused_creation_stays_in_the_slide_out(staff_client):
    response = staff_client.post(reverse("personas:create"), {"phone": "12"}, **HTMX)
    assert "HX-Redirect" not in response and 'role="dialog"' in response.content.decode()


# ---------------------------------------------------------------------------------------------
# Cache-Control: no-store on every private page


@pytest.fixture
def world():
    owner = make_user("Owner")
    persona = PersonaFactory(phone=PHONE, email="door@example.com", attributes={"vip": True})
    form = SignupFormFactory()
    flow, run_id = published_flow_with_run(persona)
    job = uploaded_import(owner)
    return {
        "owner": owner,
        "persona": persona,
        "form": form,
        "flow": flow,
        "run": run_id,
        "job": job,
    }


STAFF_PAGES = [
    ("personas:list", []),
    ("personas:create", []),
    ("personas:archived", []),
    ("personas:replies", []),
    ("personas:duplicates", []),
    ("personas:settings", []),
    ("personas:privacy_settings", []),
    ("personas:signup_forms", []),
    ("personas:export", []),
    ("personas:detail", ["persona"]),
    ("personas:detail_tab", ["persona", "points"]),
    ("personas:detail_tab", ["persona", "purchases"]),
    ("personas:detail_tab", ["persona", "activity"]),
    ("personas:detail_tab", ["persona", "flows"]),
    ("personas:traits", ["persona"]),
    ("personas:archive", ["persona"]),
    ("personas:consent_export", ["persona"]),
    ("imports:history", []),
    ("imports:new", []),
    ("imports:detail", ["job"]),
    ("imports:progress", ["job"]),
    ("imports:errors", ["job"]),
    ("flows:list", []),
    ("flows:new", []),
    ("flows:import", []),
    ("flows:detail", ["flow"]),
    ("flows:runs", ["flow"]),
    ("flows:export", ["flow"]),
    ("flows:enrolments", ["flow"]),
    ("flows:run", ["run"]),
]


def _args(world, names):
    values = {"persona": world["persona"].pk, "job": world["job"].pk, "flow": world["flow"].pk}
    values["run"] = world["run"]
    return [values.get(name, name) for name in names]


@pytest.mark.parametrize(("name", "args"), STAFF_PAGES)
def test_every_signed_in_page_and_export_is_never_stored(client, world, name, args):
    client.force_login(world["owner"])
    url = reverse(name, args=_args(world, args))
    for headers in ({}, HTMX):
        response = client.get(url, **headers)
        assert response.status_code < 400, url  # a page, an export, or a redirect to one
        assert "no-store" in response["Cache-Control"], url


def test_a_signed_in_users_redirects_and_refusals_are_never_stored(client, world):
    client.force_login(make_user("Staff"))
    for url in [reverse("personas:export"), reverse("imports:history"), "/personas/999999/"]:
        assert "no-store" in client.get(url)["Cache-Control"], url
    client.force_login(world["owner"])
    response = client.post(reverse("personas:list"), {"q": "door@example.com"})
    assert response.status_code == 302 and "no-store" in response["Cache-Control"]


def test_the_customers_own_pages_are_never_stored(world):
    customer = Client()
    form = world["form"]
    for url in [
        reverse("customers:wallet"),  # not signed in: off to the sign-in
        reverse("customers:wallet_start"),
        reverse("customers:data_controls"),
        reverse("customers:signup", args=[form.slug]),
        reverse("customers:signup_done", args=[form.slug]),
    ]:
        assert "no-store" in customer.get(url)["Cache-Control"], url
    customer.post(reverse("customers:wallet_start"), {"identifier": "door@example.com"})
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    customer.post(reverse("customers:wallet_verify"), {"email": code})
    response = customer.get(reverse("customers:wallet"))
    assert f"Hi {world['persona'].first_name}!" in response.content.decode()
    assert "no-store" in response["Cache-Control"]


def test_a_response_that_says_how_to_cache_it_keeps_its_own_header(client, world):
    assert client.get("/healthz")["Cache-Control"] == (
        "max-age=0, no-cache, no-store, must-revalidate, private"
    )
    request = RequestFactory().get("/static/css/base.css")
    request.user = world["owner"]

    def static_file(_request):
        response = HttpResponse("body {}")
        response["Cache-Control"] = "max-age=60, public"
        return response

    assert NoStoreMiddleware(static_file)(request)["Cache-Control"] == "max-age=60, public"
    assert "no-store" in NoStoreMiddleware(lambda _r: HttpResponse())(request)["Cache-Control"]


def test_the_opt_ins_panel_names_each_channel_once_beside_its_state(staff_client):
    """Found trying the product: "Email opted in  Opted out" read as a contradiction. The
    row names the channel; the switch keeps its full name for screen readers."""
    persona = PersonaFactory(email_consent="opted_out", text_consent="opted_in")
    body = staff_client.get(reverse("personas:detail", args=[persona.pk])).content.decode()
    assert '<strong>Email</strong> <span class="badge badge-opted_out"' in body
    assert '<strong>Text</strong> <span class="badge badge-opted_in"' in body
    assert "<strong>Email opted in</strong>" not in body
    assert 'aria-label="Email opted in"' in body
