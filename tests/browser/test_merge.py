"""The merge slide-out in a real browser: find the duplicate, compare, choose, merge, look up
the merged one with merge:<phone>, then unmerge from Activity."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from personas.models import Persona
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.browser


def test_manager_merges_two_duplicates_and_unmerges(page, live_server, login, shot):
    keep = PersonaFactory(
        first_name="Lena",
        last_name="Ortiz",
        phone="+12025550161",
        email=None,
        attributes={"size": "8"},
    )
    dupe = PersonaFactory(
        first_name="Lena",
        last_name="Ortis",
        phone="+12025550162",
        email="lena@example.com",
        attributes={"size": "9", "pet": "cat"},
    )
    login(page, "Manager")
    page.goto(f"{live_server.url}/personas/{keep.pk}/")
    page.get_by_label("More actions for this persona").click()
    page.get_by_role("link", name="Merge with another persona…").click()
    dialog = page.get_by_role("dialog", name="Merge personas")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Search by phone, email, name or customer ID").fill("lena@example.com")
    dialog.get_by_role("button", name="Search").click()
    dialog.get_by_role("link", name="Compare").click()
    expect(dialog.get_by_text("Which profile survives?")).to_be_visible()
    dialog.get_by_role("radio", name="Ortis", exact=True).check()  # the other last name
    expect(dialog.locator("tr", has_text="Last name").locator("strong")).to_have_text("Ortis")
    shot(page, "merge-compare")
    dialog.get_by_role("button", name=f"Merge into #{keep.pk}").click()
    expect(page.get_by_text("Merged Lena Ortis into")).to_be_visible()
    keep.refresh_from_db()
    assert keep.last_name == "Ortis" and keep.email == "lena@example.com"
    assert keep.attributes == {"size": "8", "pet": "cat"}
    assert Persona.objects.get(pk=dupe.pk).status == "merged"

    page.goto(f"{live_server.url}/personas/")
    page.get_by_role("searchbox").first.fill("merge:(202) 555-0162")
    page.keyboard.press("Enter")
    expect(page.get_by_text("was merged into this persona")).to_be_visible()
    assert page.url.endswith(f"/personas/{keep.pk}/")

    page.goto(f"{live_server.url}/personas/{keep.pk}/activity/")
    expect(page.get_by_role("heading", name="Merge history")).to_be_visible()
    shot(page, "merge-activity")
    page.get_by_role("button", name="Unmerge").click()
    expect(page.get_by_text("is back as it was before the merge")).to_be_visible()
    keep.refresh_from_db()
    dupe.refresh_from_db()
    assert (keep.last_name, keep.email, keep.attributes) == ("Ortiz", None, {"size": "8"})
    assert dupe.status == "active" and dupe.attributes == {"size": "9", "pet": "cat"}
