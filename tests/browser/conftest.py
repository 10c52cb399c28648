"""Browser tests: Playwright (Python) driving the system Chromium against pytest-django's
live server. Screenshots land in ``screenshots/`` (git-ignored) so screens can be looked at."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str:
    for candidate in (
        os.environ.get("CHROMIUM_PATH"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("Chromium not found: install the Debian package 'chromium' (make test does).")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    yield page
    context.close()
    assert not errors, f"JavaScript or CSP errors in the page: {errors}"


# WCAG 2.1 A and AA plus axe's best practices: labels, names, contrast, landmarks, nesting.
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    }
}


def accessibility_violations(page) -> list[str]:
    """The axe-core violations on the page as it is now, one readable line per element."""
    from axe_playwright_python.sync_playwright import Axe

    found = []
    for violation in Axe().run(page, options=AXE_OPTIONS).response["violations"]:
        for node in violation["nodes"]:
            html = " ".join(node["html"].split())[:160]
            found.append(f"{violation['id']} ({violation['help']}) at {node['target']}: {html}")
    return found


@pytest.fixture
def shot():
    """shot(page, name) saves a screenshot of the screen a person would look at, and checks
    that screen with axe-core: any accessibility violation fails the test."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def _shot(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.wait_for_timeout(200)  # let the slide-out's short animation finish
        page.screenshot(path=str(path), full_page=True)
        violations = accessibility_violations(page)
        assert not violations, f"Accessibility violations on {name}:\n" + "\n".join(violations)
        return path

    return _shot


@pytest.fixture
def login(live_server, transactional_db):
    """login(page, role) signs a new user with that role in through the real login form."""
    from tests.conftest import make_user

    def _login(page, role: str = "Staff"):
        user = make_user(role)
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill("a-Strong-pass-123")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/personas/**")
        return user

    return _login
