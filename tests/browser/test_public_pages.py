"""The customer's own pages in a real browser: a signup form, the wallet, the data controls."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from personas.messaging.backends import LocmemBackend
from personas.models import Persona
from tests.personas.factories import PurchaseFactory, SignupFormFactory, StoreFactory

pytestmark = pytest.mark.browser


def _code() -> str:
    return re.search(r"\b(\d{6})\b", LocmemBackend.outbox[-1]["body"]).group(1)


def test_customer_signs_up_then_picks_a_store_in_the_wallet(
    page, live_server, shot, transactional_db
):
    LocmemBackend.outbox.clear()
    harbor = StoreFactory(name="Harbor")
    riverside = StoreFactory(name="Riverside")
    SignupFormFactory(
        slug="harbor",
        name="Harbor tablet",
        store=harbor,
        fields_asked=["first_name", "last_name", "email", "favorite_store"],
    )
    page.goto(f"{live_server.url}/signup/harbor/")
    expect(page.get_by_role("heading", name="Join Harbor")).to_be_visible()
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text("This field is required.").first).to_be_visible()
    page.get_by_label("First name").fill("Mara")
    page.get_by_label("Last name").fill("Vale")
    page.get_by_label("Mobile phone").fill("(202) 555-0142")
    page.get_by_label("Email", exact=True).fill("mara@example.com")
    page.get_by_label("Text me offers and rewards news").check()
    shot(page, "public-signup")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    persona = Persona.objects.get(phone="+12025550142")
    assert persona.favorite_store == harbor and persona.text_consent == "pending"
    PurchaseFactory(persona=persona, store=harbor)
    # Content as wide as real wallets hold: a long store name, four-digit totals and points.
    outlet = StoreFactory(name="Northgate Outlet Mall")
    PurchaseFactory(persona=persona, store=outlet, total=Decimal("1234.56"), points_earned=1234)

    page.get_by_role("link", name="Open your wallet").click()
    page.get_by_label("Mobile phone or email").fill("202-555-0142")
    page.get_by_role("button", name="Send my code").click()
    page.get_by_label("Code sent by text").fill(_code())
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Hi Mara!")).to_be_visible()
    page.get_by_label("Favorite store").select_option(label="Riverside")
    page.get_by_role("button", name="Save store").click()
    expect(page.get_by_text("Your favorite store is now Riverside.")).to_be_visible()
    page.locator("form[action$='/wallet/opt-in/push/']").get_by_role(
        "button", name="Turn on"
    ).click()
    expect(page.get_by_text("App notifications on this device: on.")).to_be_visible()
    shot(page, "public-wallet")
    # On a phone the wallet card fits the screen (it once was 401 px on a 390 px screen).
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0
    widest = page.evaluate(
        "Math.max(...[...document.querySelectorAll('main *')]"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= 390, f"something in the wallet reaches {widest}px"
    shot(page, "public-wallet-phone")
    persona.refresh_from_db()
    assert persona.favorite_store == riverside and persona.favorite_store_source == "wallet"
    assert persona.push_consent == "opted_in"


def test_customer_deletes_their_data_on_the_public_page(page, live_server, shot, transactional_db):
    from tests.personas.factories import PersonaFactory

    LocmemBackend.outbox.clear()
    persona = PersonaFactory(phone="+12025550177", first_name="Ines")
    page.goto(f"{live_server.url}/privacy/")
    expect(page.get_by_role("heading", name="Delete my data")).to_be_visible()
    shot(page, "public-privacy")
    page.get_by_label("Mobile phone number").fill("(202) 555-0177")
    page.get_by_role("button", name="Send my codes").click()
    page.get_by_label("Code sent by text").fill("000000")
    page.get_by_role("button", name="Delete my data").click()
    expect(page.get_by_text("That code is not right.")).to_be_visible()
    page.get_by_label("Code sent by text").fill(_code())
    page.get_by_role("button", name="Delete my data").click()
    expect(page.get_by_role("heading", name="Your request is confirmed")).to_be_visible()
    persona.refresh_from_db()
    assert persona.status == "erased" and persona.first_name == ""
