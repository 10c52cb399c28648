import pytest

pytestmark = pytest.mark.browser


def test_owner_signs_in_and_sees_the_personas_page(page, live_server, login, shot):
    page.goto(f"{live_server.url}/accounts/login/")
    shot(page, "login")
    login(page, "Owner")
    assert page.get_by_role("heading", name="Personas", exact=True).is_visible()
    assert page.get_by_role("link", name="Settings").is_visible()
    shot(page, "personas-owner")
