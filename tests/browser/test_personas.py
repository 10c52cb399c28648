"""The personas screens in a real browser: slide-outs, htmx search, toggles, archive."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from personas.models import Persona
from tests.personas.factories import PersonaFactory, SignupFormFactory

pytestmark = pytest.mark.browser


def test_create_slide_out_invalid_then_valid_then_opens_the_profile(page, live_server, login, shot):
    SignupFormFactory(name="In-store tablet")
    PersonaFactory(first_name="Existing", last_name="Customer")
    login(page, "Staff")
    shot(page, "personas-list")
    page.get_by_role("link", name="Add persona").click()
    dialog = page.get_by_role("dialog", name="New persona")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("First name")).to_be_focused()
    page.get_by_label("Phone").fill("12")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_role("button", name="Create persona").click()
    expect(dialog.get_by_text("This phone number is too short: add the area code.")).to_be_visible()
    expect(dialog.get_by_text("Enter a valid email address.")).to_be_visible()
    shot(page, "personas-create-errors")
    assert Persona.objects.count() == 1

    page.get_by_label("First name").fill("Quinn")
    page.get_by_label("Last name").fill("Harper")
    page.get_by_label("Phone").fill("(202) 555-0147")
    page.get_by_label("Email").fill("Quinn.Harper@Example.com")
    page.get_by_label("Signup Form").select_option(label="In-store tablet")
    dialog.get_by_role("checkbox", name="Loyalty").check()
    dialog.get_by_role("checkbox", name="Send Double Opt-in Text").check()
    shot(page, "personas-create-filled")
    page.get_by_role("button", name="Create persona").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    persona = Persona.objects.get(email="quinn.harper@example.com")
    page.wait_for_url(f"**/personas/{persona.pk}/")
    expect(page.get_by_role("heading", name="Quinn Harper")).to_be_visible()
    created = page.get_by_role("status").filter(has_text="Persona Quinn Harper created")
    expect(created).to_be_visible()
    shot(page, "personas-created")
    assert persona.phone == "+12025550147" and persona.text_consent == "pending"


def test_search_as_you_type_by_each_identifier(page, live_server, login):
    PersonaFactory(
        first_name="Renée", last_name="Dubois", phone="+12025550180", customer_id="POS-9"
    )
    PersonaFactory(first_name="Other", last_name="Person")
    login(page, "Staff")
    for query in ["renee dub", "dubois ren", "(202) 555-0180", "0180", "POS-9"]:
        page.get_by_label("Search").fill(query)
        expect(page.locator(".search-note")).to_contain_text(f"for “{query}”")
        expect(page.locator("#results tbody tr")).to_have_count(1)
        expect(page.locator("#results")).to_contain_text("Renée Dubois")
    # The address keeps the search as a token only: no phone, name or ID in a URL (history on a
    # shared counter screen, access logs, Referer). Reload and Back still bring it back.
    expect(page).to_have_url(re.compile(r"/personas/\?(sort=-created&)?s=[\w-]+$"))
    page.get_by_label("Search").fill("(202) 555-0180")
    expect(page.locator(".search-note")).to_contain_text("for “(202) 555-0180”")
    page.get_by_role("link", name="Renée Dubois").click()
    expect(page.get_by_role("heading", name="Renée Dubois")).to_be_visible()
    page.go_back()
    expect(page.get_by_label("Search")).to_have_value("(202) 555-0180")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    page.reload()
    expect(page.get_by_label("Search")).to_have_value("(202) 555-0180")
    expect(page.locator("#results")).to_contain_text("Renée Dubois")
    assert "0180" not in page.url and "202" not in page.url and "s=" in page.url


def test_back_and_forward_through_pages_of_results_keep_the_whole_screen(
    page, live_server, login, settings
):
    settings.PERSONAS_PAGE_SIZE = 2
    for i in range(5):
        PersonaFactory(first_name="Marlowe", last_name=f"Quist{i}", phone=f"+1202555016{i}")
    login(page, "Staff")
    page.get_by_label("Search").fill("marlowe")
    expect(page.locator(".search-note")).to_contain_text("for “marlowe”")
    page.get_by_label("Search").fill("marlowe quist")
    expect(page.locator(".search-note")).to_contain_text("for “marlowe quist”")
    first = page.locator("#results tbody tr").first.inner_text()
    page.get_by_role("link", name="Next page »").click()
    expect(page.get_by_role("link", name="« First page")).to_be_visible()
    second = page.locator("#results tbody tr").first.inner_text()
    assert second != first
    page.go_back()  # htmx asks the server for the page (no history cache): all of it
    expect(page.get_by_role("heading", name="Personas", exact=True)).to_be_visible()
    expect(page.get_by_label("Search")).to_have_value("marlowe quist")
    expect(page.locator("#results tbody tr").first).to_have_text(first)
    page.go_forward()
    expect(page.get_by_role("link", name="« First page")).to_be_visible()
    expect(page.get_by_label("Search")).to_have_value("marlowe quist")
    expect(page.locator("#results tbody tr").first).to_have_text(second)
    # Typing is not a step of its own: Back from the first page of results leaves the list
    # for the page before it (here the sign-in page), not for half-typed searches.
    page.go_back()
    expect(page.get_by_label("Search")).to_have_value("marlowe quist")
    page.go_back()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_edit_traits_and_see_it_in_activity(page, live_server, login, shot):
    persona = PersonaFactory(first_name="Sage", attributes={"temp_flag": True, "tier": "silver"})
    login(page, "Staff")
    page.goto(f"{live_server.url}/personas/{persona.pk}/")
    shot(page, "persona-detail")
    page.get_by_role("link", name="Edit Traits").click()
    dialog = page.get_by_role("dialog", name="Edit Traits")
    expect(dialog).to_be_visible()
    rows = dialog.locator("#attr-rows .attr-row")
    tier = rows.filter(has=page.locator("input[value=tier]"))
    tier.get_by_label("Attribute value").fill("gold")
    rows.filter(has=page.locator("input[value=temp_flag]")).get_by_role("button").click()
    dialog.get_by_role("button", name="+ Add attribute").click()
    new = dialog.locator("#attr-rows .attr-row").last
    new.get_by_label("Attribute key").fill("vip_status")
    new.get_by_label("Attribute type").select_option("boolean")
    new.get_by_label("Attribute value").fill("true")
    shot(page, "persona-edit-traits")
    dialog.get_by_role("button", name="Save traits").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    attrs = page.locator("#custom-attributes")
    expect(attrs).to_contain_text("gold")
    expect(attrs).to_contain_text("vip_status")
    expect(attrs).not_to_contain_text("temp_flag")
    page.get_by_role("link", name="Activity").click()
    activity = page.locator(".activity")
    expect(activity).to_contain_text("Traits edited")
    expect(activity).to_contain_text("tier")
    expect(activity).to_contain_text("temp_flag")
    shot(page, "persona-activity")


def test_escape_closes_the_slide_out_and_focus_returns(page, live_server, login):
    persona = PersonaFactory()
    login(page, "Staff")
    page.goto(f"{live_server.url}/personas/{persona.pk}/")
    opener = page.get_by_role("link", name="Edit Traits")
    opener.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(opener).to_be_focused()


def test_opt_in_toggles_persist_after_reload(page, live_server, login, shot):
    persona = PersonaFactory(email_consent="never", text_consent="opted_in")
    login(page, "Staff")
    page.goto(f"{live_server.url}/personas/{persona.pk}/")
    email = page.get_by_role("switch", name="Email opted in")
    expect(email).to_have_attribute("aria-checked", "false")
    email.click()
    expect(page.get_by_role("switch", name="Email opted in")).to_have_attribute(
        "aria-checked", "true"
    )
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("switch", name="Text opted in").click()
    expect(page.get_by_role("switch", name="Text opted in")).to_have_attribute(
        "aria-checked", "false"
    )
    shot(page, "persona-toggles")
    page.reload()
    expect(page.get_by_role("switch", name="Email opted in")).to_have_attribute(
        "aria-checked", "true"
    )
    expect(page.get_by_role("switch", name="Text opted in")).to_have_attribute(
        "aria-checked", "false"
    )
    expect(
        page.get_by_text("Only the customer can opt in to push, from their app.")
    ).to_be_visible()
    persona.refresh_from_db()
    assert (persona.email_consent, persona.text_consent) == ("opted_in", "opted_out")


def test_archive_and_unarchive(page, live_server, login, shot):
    persona = PersonaFactory(first_name="Wren", last_name="Archer", phone="+12025550111")
    login(page, "Staff")
    page.goto(f"{live_server.url}/personas/{persona.pk}/")
    page.get_by_label("More actions for this persona").click()
    page.get_by_role("link", name="Archive…").click()
    page.get_by_label("Reason").fill("Duplicate profile")
    shot(page, "persona-archive")
    page.get_by_role("button", name="Archive persona").click()
    expect(page.locator("h1 .badge")).to_have_text("Archived")
    page.goto(f"{live_server.url}/personas/archived/")
    expect(page.get_by_role("link", name="(202) 555-0111")).to_be_visible()
    shot(page, "personas-archived")
    page.get_by_role("button", name="Unarchive").click()
    expect(page).to_have_url(re.compile(rf"/personas/{persona.pk}/$"))
    expect(page.locator("h1 .badge")).to_have_text("Active")
    persona.refresh_from_db()
    assert persona.status == "active"


def _text_lines(locator) -> int:
    """How many lines the element's text takes on screen."""
    return locator.evaluate(
        "e => { const r = document.createRange(); r.selectNodeContents(e); "
        "return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }"
    )


def test_list_and_profile_fit_a_phone_and_a_tablet(page, live_server, login, shot):
    """On a phone the profile page never scrolls sideways (its tabs scroll in their own bar);
    a list row keeps its phone number, and the top bar each link, on one line."""
    persona = PersonaFactory(first_name="Sage", phone="+12025550123", email="sage@example.com")
    login(page, "Owner")  # the role with the most top-bar links
    for width, height in ((390, 844), (820, 1180)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{live_server.url}/personas/{persona.pk}/")
        expect(page.get_by_role("link", name="Activity")).to_be_attached()
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the profile scrolls sideways by {overflow}px at {width}px"
        page.goto(f"{live_server.url}/personas/")
        lines = _text_lines(page.get_by_role("cell", name="(202) 555-0123"))
        assert lines == 1, f"the phone number wraps onto {lines} lines at {width}px"
        top_bar = page.locator(".topbar")
        for item in (
            top_bar.locator(".mainnav a").first,
            top_bar.get_by_role("button", name="Sign out"),
        ):
            assert _text_lines(item) == 1, f"{item} in the top bar wraps at {width}px"
        shot(page, f"personas-list-{width}")


def test_more_actions_menus_close_like_menus(page, live_server, login):
    """A click outside or Escape closes a "…" menu; choosing an item closes it too, and when
    the item's slide-out closes the focus is back on the menu's button."""
    persona = PersonaFactory(first_name="Sage")
    login(page, "Staff")
    page.goto(f"{live_server.url}/personas/")
    menu = page.locator("details.menu")
    more = page.get_by_label("More actions")
    more.click()
    expect(page.get_by_role("link", name="View Archived Personas")).to_be_visible()
    page.get_by_role("heading", name="Personas").click()
    expect(menu).not_to_have_attribute("open", "")
    more.click()
    expect(menu).to_have_attribute("open", "")
    page.keyboard.press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    expect(more).to_be_focused()

    page.goto(f"{live_server.url}/personas/{persona.pk}/")
    more = page.get_by_label("More actions for this persona")
    more.click()
    page.get_by_role("link", name="Archive…").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.locator("details.menu")).not_to_have_attribute("open", "")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(more).to_be_focused()
