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


@pytest.fixture
def shot():
    SCREENSHOTS.mkdir(exist_ok=True)

    def _shot(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.wait_for_timeout(200)  # let the slide-out's short animation finish
        page.screenshot(path=str(path), full_page=True)
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
