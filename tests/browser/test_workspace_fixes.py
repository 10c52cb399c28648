"""The staff workspace on a phone-sized screen (390 px): a new persona opens on its own page,
and each consent action asks about what it does."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from personas.models import OutboundMessage, Persona
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.browser
PHONE_WIDTH = {"width": 390, "height": 844}


def _fits(page) -> None:
    """Nothing wider than the screen: no sideways scrolling."""
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH["width"]


def test_a_new_persona_opens_on_its_own_page_with_the_message(page, live_server, login, shot):
    page.set_viewport_size(PHONE_WIDTH)
    login(page, "Staff")
    page.get_by_role("link", name="Add persona").click()
    dialog = page.get_by_role("dialog", name="New persona")
    expect(dialog).to_be_visible()
    page.get_by_label("First name").fill("Quinn")
    page.get_by_label("Last name").fill("Harper")
    page.get_by_label("Phone").fill("(202) 555-0147")
    dialog.get_by_role("checkbox", name="Send Double Opt-in Text").check()
    page.get_by_role("button", name="Create persona").click()
    expect(page).to_have_url(re.compile(r"/personas/\d+/$"))
    persona = Persona.objects.get(first_name="Quinn")
    assert page.url.endswith(f"/personas/{persona.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Quinn Harper")
    expect(
        page.get_by_role("status").filter(has_text="Persona Quinn Harper created.")
    ).to_be_visible()
    expect(page.get_by_role("button", name="Resend double opt-in text")).to_be_visible()
    _fits(page)
    shot(page, "workspace-created-390")


def test_each_consent_action_asks_about_what_it_does(page, live_server, login, shot):
    persona = PersonaFactory(
        first_name="Ana",
        last_name="Lopez",
        phone="+12025550101",
        email="ana@example.com",
        text_consent="pending",
        voice_consent="opted_in",
    )
    asked: list[str] = []

    def answer(accept: bool):
        def _answer(dialog):
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return _answer

    page.set_viewport_size(PHONE_WIDTH)
    login(page, "Staff")
    page.goto(f"{live_server.url}/personas/{persona.pk}/")
    consents = page.locator("#consents")
    expect(consents.get_by_text("Pending double opt-in")).to_be_visible()
    _fits(page)
    shot(page, "workspace-consents-390")

    page.once("dialog", answer(accept=False))
    consents.get_by_role("button", name="Resend double opt-in text").click()
    page.once("dialog", answer(accept=False))
    consents.get_by_role("button", name="Cancel request").click()
    page.once("dialog", answer(accept=True))
    consents.get_by_role("switch", name="Voice opted in").click()
    expect(consents.get_by_role("switch", name="Voice opted in")).to_have_attribute(
        "aria-checked", "false"
    )
    assert asked == [
        "Send the double opt-in text again to (202) 555-0101? "
        "Texts stay off until the customer replies YES.",
        "Cancel the double opt-in request? Text will be opted out until the customer opts in "
        "again.",
        "Opt this customer out of calls to (202) 555-0101? "
        "No more marketing calls until they opt in again.",
    ]
    persona.refresh_from_db()
    assert (persona.text_consent, persona.voice_consent) == ("pending", "opted_out")
    assert not OutboundMessage.objects.filter(persona=persona).exists()  # both answered "no"
