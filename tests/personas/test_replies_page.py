"""The Replies page (texts customers sent us) and the Activity tab's consent history and
replies: who may see them, what they show, and that they read as words, never as codes."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from personas.models import ConsentChange, InboundMessage, Persona
from personas.services import changes
from personas.services.changes import Actor, Changeset, ConsentAction, ConsentOp
from personas.services.consent import address_digest
from personas.services.inbound import handle
from tests.conftest import ROLE_NAMES
from tests.personas.factories import AuditEventFactory, PersonaFactory

pytestmark = pytest.mark.django_db

REPLIES = "/replies/"


def activity_url(persona: Persona) -> str:
    return reverse("personas:detail_tab", args=[persona.pk, "activity"])


def activity_rows(html: str, kind: str) -> list[str]:
    """The Activity tab's rows of one kind ("event", "consent", "reply"), as HTML."""
    return re.findall(rf'<li data-kind="{kind}">(.*?)</li>\s*(?=<li data-kind|</ol>)', html, re.S)


def text(html: str) -> str:
    """A row's text as a person reads it: tags dropped, white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace(" :", ":")


# ---------------------------------------------------------------------------------------------
# Who may see the Replies page


def test_replies_url_is_named():
    assert reverse("personas:replies") == REPLIES


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(REPLIES)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_user_without_a_role_gets_the_no_role_page(client_for):
    response = client_for(None).get(REPLIES)
    assert response.status_code == 403
    assert "no_role.html" in [t.name for t in response.templates]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_role_that_manages_personas_sees_replies_and_the_nav_link(client_for, role):
    persona = PersonaFactory(first_name="Ada", last_name="Reyes", phone="+12025550123")
    handle(message_sid="SM1", from_="+12025550123", body="Stop.")
    response = client_for(role).get(REPLIES)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Ada Reyes" in body and "“Stop.”" in body and "Opted out of texts" in body
    assert f'href="{activity_url(persona)}"' in body
    assert re.search(r'<a href="/replies/" aria-current="page">Replies</a>', body)


def test_replies_page_only_answers_get(owner_client):
    assert owner_client.post(REPLIES).status_code == 405


# ---------------------------------------------------------------------------------------------
# What the Replies page lists


def test_empty_state_says_what_appears_here(staff_client):
    body = staff_client.get(REPLIES).content.decode()
    assert (
        "No replies yet. Replies customers text to your number appear here, "
        "with what each one did." in body
    )
    assert "<table" not in body


def test_a_hidden_personas_replies_are_not_shown(staff_client):
    PersonaFactory(first_name="Visible", last_name="Customer", phone="+12025550123")
    hidden = PersonaFactory(first_name="Blocked", last_name="Customer", phone="+12025550124")
    handle(message_sid="SM1", from_="+12025550123", body="Stop.")
    handle(message_sid="SM2", from_="+12025550124", body="stop texting me please")
    Persona.objects.filter(pk=hidden.pk).update(hidden=True)  # blocklisted
    assert InboundMessage.objects.filter(persona=hidden).exists()
    body = staff_client.get(REPLIES).content.decode()
    assert "Visible Customer" in body
    assert "Blocked" not in body and "stop texting me" not in body
    assert "(202) 555-0124" not in body and "+12025550124" not in body
    assert "1 reply on this page" in body


def test_replies_from_unknown_numbers_are_not_listed(staff_client):
    handle(message_sid="SM9", from_="+12025550999", body="STOP")  # nobody holds it
    assert InboundMessage.objects.filter(persona__isnull=True).count() == 1
    body = staff_client.get(REPLIES).content.decode()
    assert "No replies yet." in body


def test_filter_by_outcome(staff_client):
    PersonaFactory(first_name="Stopper", last_name="One", phone="+12025550123")
    PersonaFactory(first_name="Helper", last_name="Two", phone="+12025550124")
    handle(message_sid="SM1", from_="+12025550123", body="Stop.")
    handle(message_sid="SM2", from_="+12025550124", body="help?")
    every = staff_client.get(REPLIES).content.decode()
    assert "Stopper One" in every and "Helper Two" in every
    assert "2 replies on this page" in every

    helped = staff_client.get(REPLIES, {"outcome": "help"}).content.decode()
    assert "Helper Two" in helped and "Asked for help" in helped
    assert "Stopper One" not in helped
    assert '<option value="help" selected>Asked for help</option>' in helped
    assert '<label for="id_outcome">' in helped

    # An htmx change of the select swaps the results only.
    fragment = staff_client.get(
        REPLIES, {"outcome": "opted_out"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Stopper One" in fragment and "Helper Two" not in fragment
    assert "<html" not in fragment and 'id="reply-results"' in fragment

    confirmed = staff_client.get(REPLIES, {"outcome": "confirmed"}).content.decode()
    assert "No replies that did this" in confirmed and "Double opt-in confirmed" in confirmed
    assert "Show every reply" in confirmed

    # An outcome the page does not know is ignored: every reply.
    odd = staff_client.get(REPLIES, {"outcome": "nonsense"}).content.decode()
    assert "Stopper One" in odd and "Helper Two" in odd


def test_replies_are_newest_first_and_paged_by_keyset(staff_client, settings):
    settings.PERSONAS_PAGE_SIZE = 2
    for i in range(3):
        PersonaFactory(first_name=f"Customer{i}", last_name="Paged", phone=f"+1202555012{i}")
        handle(message_sid=f"SM{i}", from_=f"+1202555012{i}", body=f"help {i}")
    first = staff_client.get(REPLIES).content.decode()
    assert first.index("Customer2") < first.index("Customer1")
    assert "Customer0" not in first and "Older »" in first
    next_href = re.search(r'href="\?(cursor=\d+)"', first).group(1)
    second = staff_client.get(f"{REPLIES}?{next_href}").content.decode()
    assert "Customer0" in second and "Customer1" not in second
    assert "Older »" not in second and "« Newest" in second


def test_replies_page_query_count_does_not_grow_with_rows(staff_client):
    def queries() -> list[str]:
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get(REPLIES).status_code == 200
        return [q["sql"].upper() for q in ctx.captured_queries]

    PersonaFactory(phone="+12025550100")
    handle(message_sid="SM100", from_="+12025550100", body="help")
    few = len(queries())
    for i in range(1, 8):
        PersonaFactory(phone=f"+120255501{i:02d}")
        handle(message_sid=f"SM1{i:02d}", from_=f"+120255501{i:02d}", body="STOP")
    many = queries()
    assert len(many) == few
    assert not any("COUNT(" in sql for sql in many)  # no count of a big table


# ---------------------------------------------------------------------------------------------
# The Activity tab: consent history with its evidence, and replies


def test_activity_shows_a_stop_reply_and_its_consent_change_in_words(staff_client):
    persona = PersonaFactory(phone="+12025550123", text_consent="opted_in")
    handle(message_sid="SM1", from_="+12025550123", body="Stop.")
    body = staff_client.get(activity_url(persona)).content.decode()

    (reply,) = activity_rows(body, "reply")
    assert "Replied “Stop.” — Opted out of texts" in text(reply)
    assert re.search(r"[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d\d:\d\d [ap]\.m\.", text(reply))

    (row,) = activity_rows(body, "consent")
    words = text(row)
    assert "Text (SMS): Opted in → Opted out" in words
    assert "Hard opt-out" in words
    assert "by Customer (SMS reply)" in words
    assert "Evidence: Text reply SM1" in words
    assert "opted_out" not in row and "opted_in" not in row
    assert not re.search(r"\d{4}-\d\d-\d\dT", re.sub(r'datetime="[^"]*"', "", row))
    change = ConsentChange.objects.get(persona=persona)
    assert change.address and change.address not in body  # the digest is never shown

    # The reply's audit event told nothing the consent row does not: it is not shown twice,
    # and its note ("Texted STOP") moves onto the consent row.
    assert activity_rows(body, "event") == []
    assert "Texted STOP" in words


def test_activity_shows_an_imports_consent_change_with_its_evidence(staff_client):
    persona = PersonaFactory(phone="+12025550123")
    changes.apply(
        persona,
        Changeset(
            consents=[ConsentOp("text", ConsentAction.OPT_IN)],
            evidence="Paper signup card, store 12",
        ),
        Actor.import_row(3, 7),
    )
    body = staff_client.get(activity_url(persona)).content.decode()
    (row,) = activity_rows(body, "consent")
    words = text(row)
    assert "Text (SMS): Never asked → Pending double opt-in" in words
    assert "by Import #3, row 7" in words
    assert "Evidence: Paper signup card, store 12" in words
    assert "Hard opt-out" not in words
    assert "pending" not in row.replace("Pending", "")


def test_a_change_taken_from_the_numbers_own_record_is_explained(staff_client, staff_user):
    handle(message_sid="SM1", from_="+12025550123", body="STOP")  # nobody holds it yet
    persona = PersonaFactory(phone="+12025550199", text_consent="opted_in")
    changes.apply(persona, Changeset(fields={"phone": "+12025550123"}), Actor.staff(staff_user))
    change = ConsentChange.objects.get(persona=persona, channel="text")
    assert change.evidence == "This phone number's own consent"
    body = staff_client.get(activity_url(persona)).content.decode()
    (row,) = activity_rows(body, "consent")
    words = text(row)
    assert "Text (SMS): Opted in → Opted out" in words
    assert "This phone number had already opted out" in words
    assert f"by {staff_user.username}" in words
    assert "own consent" not in words and "opted_out" not in row
    assert address_digest("text", "+12025550123") not in body
    # The edit's audit event keeps its phone line; its consent line is the row above.
    (event,) = activity_rows(body, "event")
    assert "Phone" in text(event) and "SMS consent" not in text(event)


def test_a_change_mirrored_from_the_same_number_on_another_profile_is_explained(staff_client):
    archived = PersonaFactory(
        first_name="Old", phone="+12025550123", status="archived", text_consent="opted_in"
    )
    PersonaFactory(first_name="New", phone="+12025550123", text_consent="opted_in")
    handle(message_sid="SM7", from_="+12025550123", body="stop")
    change = ConsentChange.objects.get(persona=archived)
    assert change.evidence.startswith("Same address: ")
    body = staff_client.get(activity_url(archived)).content.decode()
    (row,) = activity_rows(body, "consent")
    words = text(row)
    assert "The same phone number was changed on another profile" in words
    assert "Evidence: Text reply SM7" in words
    assert "Same address" not in words and change.address not in body


def test_an_audit_events_consent_line_without_a_consent_row_reads_as_words(staff_client):
    persona = PersonaFactory()
    AuditEventFactory(
        persona=persona,
        action="erased",
        changes={"consent:email": {"before": "opted_in", "after": "opted_out", "hard": True}},
    )
    body = staff_client.get(activity_url(persona)).content.decode()
    (event,) = activity_rows(body, "event")
    assert "Email consent: Opted in → Opted out Hard opt-out" in text(event)
    assert "opted_out" not in event and "opted_in" not in event


def test_activity_lists_every_reply_with_its_outcome(staff_client):
    persona = PersonaFactory(phone="+12025550123")
    handle(message_sid="SM1", from_="+12025550123", body="help")
    handle(message_sid="SM2", from_="+12025550123", body="Stop.")
    body = staff_client.get(activity_url(persona)).content.decode()
    replies = [text(r) for r in activity_rows(body, "reply")]
    assert len(replies) == 2
    assert "Replied “Stop.” — Opted out of texts" in replies[0]  # newest first
    assert "Replied “help” — Asked for help" in replies[1]


def test_activity_empty_state_says_what_will_appear(staff_client):
    persona = PersonaFactory()
    body = staff_client.get(activity_url(persona)).content.decode()
    assert "No activity yet." in body


def test_activity_query_count_does_not_grow_with_history(staff_client):
    persona = PersonaFactory(phone="+12025550123", text_consent="opted_in")

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get(activity_url(persona)).status_code == 200
        return len(ctx.captured_queries)

    handle(message_sid="SM0", from_="+12025550123", body="Stop.")
    few = count()
    for i in range(1, 6):
        handle(message_sid=f"SM{i}", from_="+12025550123", body="START")
        handle(message_sid=f"SM{i}y", from_="+12025550123", body="yes")
        handle(message_sid=f"SM{i}s", from_="+12025550123", body="stop")
    assert ConsentChange.objects.filter(persona=persona).count() > 5
    assert count() == few
