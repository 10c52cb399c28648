"""Every screen, as the roles that see it, checked with axe-core (WCAG 2.1 A/AA and best
practices) in a real Chromium: names and labels, contrast, landmarks, nesting, focusable
scroll regions. The walk-through tests check their own screens the same way (``shot``)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from flows.models import Flow
from imports.models import ImportJob
from personas.management.commands.seed_demo import DEMO_PASSWORD
from personas.models import Persona, SignupForm
from tests.browser.conftest import accessibility_violations

pytestmark = pytest.mark.browser


def _sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/personas/**")


ERROR_PAGES = {"/imports/": 403, "/personas/999999999/": 404}  # as the Staff user


def _check(page, base: str, paths: list[str], errors: dict | None = None) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        response = page.goto(f"{base}{path}")
        page.wait_for_load_state("networkidle")
        assert response.status == (errors or {}).get(path, 200), path
        assert "/accounts/login/" not in page.url or path == "/accounts/login/", path
        if violations := accessibility_violations(page):
            found[path] = violations
        # Table cells stay table cells: a flex or block cell breaks its row's borders and
        # heights (the duplicates page once had one).
        broken = page.evaluate(
            "[...document.querySelectorAll('main td, main th')]"
            ".filter(c => !['table-cell', 'none'].includes(getComputedStyle(c).display))"
            ".length"
        )
        assert broken == 0, f"{path}: {broken} table cells laid out as something else"
        if page.viewport_size["width"] <= 400:
            # On a phone the page never scrolls sideways (wide tables scroll in their own
            # box), and every button of the main content is within the screen.
            wide = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if wide > 0:
                found.setdefault(path, []).append(f"the page is {wide}px wider than the screen")
            cut = page.evaluate(
                "[...document.querySelectorAll('main button, main .button')]"
                ".filter(b => b.offsetParent && !b.closest('.table-wrap, [data-scroll]'))"
                ".filter(b => b.getBoundingClientRect().right > window.innerWidth + 1)"
                ".map(b => b.textContent.trim()).slice(0, 3)"
            )
            if cut:
                found.setdefault(path, []).append(f"buttons off the screen: {cut}")
            narrow = page.evaluate(
                "[...document.querySelectorAll('main input:not([type=checkbox]):not([type=radio])"
                ":not([type=hidden]), main select, main textarea')]"
                ".filter(i => i.offsetParent && !i.closest('.table-wrap'))"
                ".filter(i => i.getBoundingClientRect().width < 100)"
                ".map(i => i.name || i.id).slice(0, 3)"
            )
            if narrow:
                found.setdefault(path, []).append(f"fields too narrow to type in: {narrow}")
    return found


def test_every_screen_passes_axe_for_each_role(page, live_server, transactional_db):
    call_command("seed_demo", personas=120, quiet_users=True, stdout=io.StringIO())
    persona = Persona.objects.filter(status="active").order_by("pk").first()
    archived = Persona.objects.filter(pk__gt=persona.pk).order_by("pk").first()
    Persona.objects.filter(pk=archived.pk).update(status="archived")
    form = SignupForm.objects.first()
    flow = Flow.objects.get(name="VIP tagging (example)")  # ids differ on PostgreSQL
    now = timezone.now()
    jobs = [
        ImportJob.objects.create(
            original_name=f"{status}.csv",
            status=status,
            headers=["Phone", "First Name"],
            mapping={"0": "phone", "1": "first_name"},
            match_keys=["phone", "email", "customer_id"],
            total_rows=10,
            rows_done=10 if status == "completed" else 4,
            created=6,
            skipped=2,
            errors=2 if status == "completed" else 0,
            started_at=now,
            finished_at=None if status == "running" else now,
            heartbeat_at=now,
        )
        for status in ("completed", "failed", "cancelled", "running", "uploaded")
    ]
    base = live_server.url

    staff_screens = [
        "/personas/",
        "/personas/?q=a",
        "/personas/?q=nobody-matches-this",
        "/personas/new/",
        f"/personas/{persona.pk}/",
        f"/personas/{persona.pk}/points/",
        f"/personas/{persona.pk}/purchases/",
        f"/personas/{persona.pk}/activity/",
        f"/personas/{persona.pk}/flows/",
        f"/personas/{persona.pk}/edit/traits/",
        "/accounts/password/",
        "/imports/",  # not allowed: the 403 page
        "/personas/999999999/",  # the 404 page
    ]
    owner_screens = [
        "/personas/archived/",
        f"/personas/{archived.pk}/",
        "/personas/duplicates/",
        f"/personas/{persona.pk}/do/merge/",
        f"/personas/{persona.pk}/do/erase/",
        f"/personas/{persona.pk}/do/adjust-points/",
        "/settings/",
        "/settings/team/",
        "/settings/privacy/",
        "/settings/signup-forms/",
        "/settings/signup-forms/new/",
        f"/settings/signup-forms/{form.pk}/",
        "/imports/",
        "/imports/new/",
        *(f"/imports/{job.pk}/" for job in jobs),  # results, progress and the mapping form
        f"/personas/?import_job={jobs[0].pk}",  # the personas an import created
        "/flows/",
        "/flows/new/",
        "/flows/import/",
        f"/flows/{flow.pk}/",
        f"/flows/{flow.pk}/steps/add/",
        f"/flows/{flow.pk}/runs/",
        f"/flows/{flow.pk}/test/?q=a",
    ]
    public_screens = [
        "/accounts/login/",
        f"/signup/{form.slug}/",
        f"/signup/{form.slug}/thanks/",
        "/wallet/sign-in/",
        "/privacy/",
    ]

    found = {}
    _sign_in(page, base, "staff")
    found |= _check(page, base, staff_screens, ERROR_PAGES)
    _sign_in(page, base, "analyst")  # flows, read only
    found |= {f"{p} (analyst)": v for p, v in _check(page, base, [f"/flows/{flow.pk}/"]).items()}
    _sign_in(page, base, "owner")
    found |= _check(page, base, owner_screens)
    # Every screen again on a phone (390 px): tables scroll in their own regions, the page
    # never scrolls sideways and every button is on the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    found |= {f"{p} (390px)": v for p, v in _check(page, base, owner_screens).items()}
    _sign_in(page, base, "staff")
    found |= {f"{p} (390px)": v for p, v in _check(page, base, staff_screens, ERROR_PAGES).items()}
    page.context.clear_cookies()
    found |= {f"{p} (390px)": v for p, v in _check(page, base, public_screens).items()}
    page.set_viewport_size({"width": 1360, "height": 900})
    found |= _check(page, base, public_screens)

    assert not found, "Accessibility violations:\n" + "\n".join(
        f"{path}: {line}" for path, lines in found.items() for line in lines
    )
