"""The Replies page and a persona's Activity tab in a real browser, on a phone's width."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from personas.services import changes
from personas.services.changes import Actor, Changeset, ConsentAction, ConsentOp
from personas.services.inbound import handle
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.browser

PHONE_WIDTH = 390
SCROLL_WIDTH = "() => document.documentElement.scrollWidth"


def test_replies_and_activity_fit_a_phone(page, live_server, login, shot):
    ada = PersonaFactory(first_name="Adaora", last_name="Nwankwo-Fitzgerald", phone="+12025550123")
    changes.apply(
        ada,
        Changeset(
            consents=[ConsentOp("text", ConsentAction.OPT_IN)],
            evidence="Paper signup card, Riverside store",
        ),
        Actor.import_row(3, 7),
    )
    handle(message_sid="SM1", from_="+12025550123", body="Stop.")
    PersonaFactory(first_name="Ben", last_name="Ito", phone="+12025550124")
    handle(
        message_sid="SM2",
        from_="+12025550124",
        body="Hi, what are these texts about? I do not remember signing up for anything",
    )
    login(page, "Owner")  # the role with the most top-bar links
    page.get_by_role("link", name="Replies").click()
    expect(page.get_by_role("heading", name="Replies", exact=True)).to_be_visible()
    shot(page, "replies")

    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    page.reload()
    expect(page.locator("#reply-results tbody tr")).to_have_count(2)
    assert page.evaluate(SCROLL_WIDTH) <= PHONE_WIDTH
    shot(page, f"replies-{PHONE_WIDTH}")

    # The outcome filter swaps the results in place and keeps the choice in the address.
    page.get_by_label("What it did").select_option(label="No action")
    expect(page.locator("#reply-results tbody tr")).to_have_count(1)
    expect(page.locator("#reply-results")).to_contain_text("Ben Ito")
    expect(page).to_have_url(re.compile(r"/replies/\?outcome=ignored$"))
    assert page.evaluate(SCROLL_WIDTH) <= PHONE_WIDTH

    page.get_by_label("What it did").select_option(label="Opted out of texts")
    expect(page.locator("#reply-results")).to_contain_text("Adaora Nwankwo-Fitzgerald")
    page.get_by_role("link", name="Adaora Nwankwo-Fitzgerald").click()
    expect(page.get_by_role("heading", name="Activity")).to_be_visible()
    activity = page.locator("ol.activity")
    expect(activity).to_contain_text("Replied “Stop.” — Opted out of texts")
    expect(activity).to_contain_text("Text (SMS): Never asked → Pending double opt-in")
    expect(activity).to_contain_text("Evidence: Paper signup card, Riverside store")
    expect(activity).not_to_contain_text("opted_out")
    assert page.evaluate(SCROLL_WIDTH) <= PHONE_WIDTH
    shot(page, f"persona-activity-{PHONE_WIDTH}")


def test_replies_empty_state(page, live_server, login, shot):
    login(page, "Staff")
    page.goto(f"{live_server.url}/replies/")
    expect(
        page.get_by_text("No replies yet. Replies customers text to your number")
    ).to_be_visible()
    expect(page.get_by_role("link", name="Replies")).to_have_attribute("aria-current", "page")
    shot(page, "replies-empty")
