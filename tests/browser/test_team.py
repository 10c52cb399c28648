"""Settings › Team in a real browser: the Owner adds a member, changes their role and
deactivates them, each through a confirmation that says what will happen; the pages pass axe
and fit a phone."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from playwright.sync_api import expect

from personas.models import TeamChange
from personas.services import team as team_service

pytestmark = pytest.mark.browser


def _sideways(page) -> int:
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def test_owner_adds_a_member_changes_their_role_and_deactivates_them(
    page, live_server, login, shot
):
    owner = login(page, "Owner")
    page.goto(f"{live_server.url}/settings/")
    page.get_by_role("link", name="Manage team").click()
    expect(page.get_by_role("heading", name="1 team member")).to_be_visible()
    expect(page.get_by_text("It's just you so far")).to_be_visible()

    page.get_by_label("Email").fill("bo@example.com")
    page.get_by_label("Role", exact=True).select_option("Staff")
    page.get_by_role("button", name="Add team member").click()
    expect(page.get_by_text("bo@example.com added as Staff")).to_be_visible()
    expect(page.get_by_role("heading", name="2 team members")).to_be_visible()
    assert [m.to for m in mail.outbox] == [["bo@example.com"]]

    page.get_by_role("link", name="bo@example.com").click()
    page.get_by_label("Role", exact=True).select_option("Manager")
    page.get_by_role("button", name="Change role…").click()
    dialog = page.get_by_role("dialog", name="Change bo@example.com to Manager?")
    expect(dialog.get_by_text("The new role applies from their next page")).to_be_visible()
    shot(page, "settings-team-role-confirm")
    dialog.get_by_role("button", name="Make them Manager").click()
    expect(page.get_by_text("bo@example.com is now Manager")).to_be_visible()

    page.get_by_role("link", name="Deactivate…").click()
    dialog = page.get_by_role("dialog", name="Deactivate bo@example.com?")
    expect(
        dialog.get_by_text("They are signed out now and can't sign in until reactivated.")
    ).to_be_visible()
    page.keyboard.press("Escape")  # the slide-out closes and nothing changes
    expect(dialog).to_have_count(0)
    bo = get_user_model().objects.get(email="bo@example.com")
    assert bo.is_active
    page.get_by_role("link", name="Deactivate…").click()
    dialog = page.get_by_role("dialog", name="Deactivate bo@example.com?")
    dialog.get_by_role("button", name="Deactivate", exact=True).click()
    expect(page.get_by_text("bo@example.com is deactivated and signed out")).to_be_visible()
    expect(page.get_by_role("link", name="Reactivate…")).to_be_visible()
    bo.refresh_from_db()
    assert not bo.is_active and [g.name for g in bo.groups.all()] == ["Manager"]
    assert list(TeamChange.objects.values_list("kind", flat=True)) == [  # newest first
        "deactivated",
        "role",
        "invited",
    ]

    page.goto(f"{live_server.url}/settings/team/")
    history = page.get_by_role("heading", name="Recent changes").locator("..")
    expect(
        history.get_by_text(f"Owner {owner.username} changed bo@example.com from Staff to Manager")
    ).to_be_visible()
    expect(page.get_by_role("cell", name="Deactivated")).to_be_visible()
    shot(page, "settings-team")

    # A long address with nothing to break at wraps rather than widening the page on a phone.
    long = team_service.invite(
        email="alexandra.montgomerysmythe@northwindtraders.example.com", role="Staff", actor=owner
    )
    team_service.change_role(user=long, role="Operator", actor=owner)
    page.set_viewport_size({"width": 390, "height": 844})
    for path in (
        "/settings/team/",
        f"/settings/team/{bo.pk}/",
        f"/settings/team/{long.pk}/",
        f"/settings/team/{long.pk}/deactivate/",
        f"/settings/team/{long.pk}/password-link/",
    ):
        page.goto(f"{live_server.url}{path}")
        assert _sideways(page) <= 0, f"{path} scrolls sideways by {_sideways(page)}px at 390px"
    shot(page, "settings-team-member-390")
    page.goto(f"{live_server.url}/settings/team/")
    shot(page, "settings-team-390")


def test_the_last_owner_is_told_why_they_cannot_deactivate_themself(page, live_server, login):
    owner = login(page, "Owner")
    page.goto(f"{live_server.url}/settings/team/{owner.pk}/")
    page.get_by_role("link", name="Deactivate…").click()
    expect(page.get_by_role("status").get_by_text("You are the only active Owner.")).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert page.url == f"{live_server.url}/settings/team/{owner.pk}/"
    owner.refresh_from_db()
    assert owner.is_active
