"""Import in a real browser with a real worker: upload → mapping → preview → run with a live
progress bar → history → error report → double opt-in texts sent later."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from imports.models import ImportJob, PendingDoubleOptIn
from personas.models import Persona
from tests.bench import load_bench
from tests.personas.factories import PersonaFactory
from tests.worker import ROOT, database_url

pytestmark = pytest.mark.browser

ROWS = 3000


def _messy_csv() -> bytes:
    bench = load_bench("imports")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*bench.HEADER, "SMS Opt In"])
    for i, row in enumerate(bench.messy_rows(ROWS)):
        writer.writerow([*row, "yes" if i % 5 == 0 else "no"])
    return buf.getvalue().encode()


@pytest.fixture
def worker(settings):
    database = {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}
    settings.TASKS = {"default": database, "database": database}
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.test_settings",
        DATABASE_URL=database_url(),
        TASK_BACKEND="database",
        IMPORTS_BATCH_SIZE="150",
    )
    env.pop("SQLITE_TEST_NAME", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "db_worker",
            "--backend",
            "default",
            "--no-startup-delay",
            "--no-reload",
            "--interval",
            "0.2",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(ROOT / "var" / "browser-worker.log", "w"),
        start_new_session=True,
    )
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(15)


def test_marketing_imports_a_messy_file_and_sends_double_opt_in_later(
    page, live_server, login, shot, worker, tmp_path
):
    path = tmp_path / "pos-export.csv"
    path.write_bytes(_messy_csv())
    login(page, "Marketing")
    page.goto(f"{live_server.url}/imports/")
    expect(page.get_by_role("heading", name="Import History")).to_be_visible()
    shot(page, "imports-history-empty")
    page.get_by_role("link", name="Import customers…").first.click()
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Upload and map columns").click()

    expect(page.get_by_text("Step 2 of 3")).to_be_visible()
    # The "uploaded" message must not sit on the form's primary button while it fades.
    preview_button = page.get_by_role("button", name="Preview the import")
    preview_button.scroll_into_view_if_needed()
    message = page.get_by_role("status").filter(has_text="uploaded").bounding_box()
    button = preview_button.bounding_box()
    assert message and button
    assert (
        message["x"] + message["width"] <= button["x"]
        or button["x"] + button["width"] <= message["x"]
        or message["y"] + message["height"] <= button["y"]
        or button["y"] + button["height"] <= message["y"]
    ), f"message {message} covers the button {button}"
    expect(page.get_by_label("Map “Mobile” to")).to_have_value("phone")
    expect(page.get_by_label("Map “E-mail” to")).to_have_value("email")
    expect(page.get_by_label("Map “Shoe Size” to")).to_have_value("attr")
    # An attribute key only where a column imports as a custom attribute.
    expect(page.get_by_label("Custom attribute key for “Shoe Size”")).to_be_visible()
    expect(page.get_by_label("Custom attribute key for “Mobile”")).to_be_hidden()
    page.get_by_label("Map “Mobile” to").select_option("attr")
    expect(page.get_by_label("Custom attribute key for “Mobile”")).to_be_visible()
    page.get_by_label("Map “Mobile” to").select_option("phone")
    # "Send at" only when sending at a chosen time.
    page.get_by_label("Send at a chosen time").check()
    expect(page.get_by_label("Send at", exact=True)).to_be_visible()
    page.get_by_label("Not yet (send later from Import History)").check()
    expect(page.get_by_label("Send at", exact=True)).to_be_hidden()
    page.get_by_label("Save this mapping as").fill("POS export")
    shot(page, "imports-mapping")
    # On a phone the mapping table scrolls inside its box; the page itself never widens.
    size = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0
    page.set_viewport_size(size)
    page.get_by_role("button", name="Preview the import").click()

    expect(page.get_by_role("heading", name="Preview: what this import would do")).to_be_visible(
        timeout=60_000
    )
    job = ImportJob.objects.get()
    counts = job.preview["counts"]
    assert sum(counts.values()) == ROWS and counts["error"] > 0 and counts["skipped"] > 0
    assert Persona.objects.count() == 0  # the preview wrote nothing
    expect(page.get_by_text("Errors: first rows")).to_be_visible()
    shot(page, "imports-preview")

    page.get_by_role("button", name=f"Run import of {ROWS:,} rows").click()
    progress = page.locator("progress")
    expect(progress).to_be_visible()
    shot(page, "imports-progress")
    page.reload()  # the progress survives a reload
    expect(page.get_by_role("heading", name="Import complete")).to_be_visible(timeout=90_000)
    shot(page, "imports-complete")

    job.refresh_from_db()
    assert job.counted == ROWS and job.created == counts["created"]
    assert job.errors == counts["error"] and job.skipped == counts["skipped"]

    with page.expect_download() as info:
        page.get_by_role("link", name="Download error report (CSV)").click()
    report = info.value.path().read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(report)))
    assert (
        len(rows) - 1 == job.errors + job.skipped + job.warnings
    )  # a line per row not taken as it was
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row)

    waiting = PendingDoubleOptIn.objects.filter(job=job, sent_at__isnull=True).count()
    assert waiting > 0 and not Persona.objects.filter(messages__isnull=False).exists()
    expect(page.get_by_text(f"{waiting:,} personas from this import are waiting")).to_be_visible()
    expect(page.get_by_label("Send at", exact=True)).to_be_hidden()
    page.get_by_label("At a chosen time").check()
    expect(page.get_by_label("Send at", exact=True)).to_be_visible()
    page.get_by_label("Now", exact=True).check()
    page.get_by_role("button", name="Send double opt-in texts").click()
    expect(page.get_by_text("will be sent now")).to_be_visible()
    page.wait_for_function("() => true")
    for _ in range(100):
        if not PendingDoubleOptIn.objects.filter(job=job, sent_at__isnull=True).exists():
            break
        page.wait_for_timeout(200)
    assert Persona.objects.filter(messages__template="double_opt_in").count() == waiting

    page.goto(f"{live_server.url}/imports/")
    expect(page.get_by_role("link", name=f"#{job.pk} pos-export.csv")).to_be_visible()
    shot(page, "imports-history")

    # The personas it created, as a list that says so; a search there stays within them.
    PersonaFactory(
        first_name="Outside", last_name="Kim", email="outside.kim@example.org", phone="+12025550999"
    )
    page.get_by_role("link", name=f"#{job.pk} pos-export.csv").click()
    page.get_by_role("link", name=f"View the {job.created:,} personas it created").click()
    expect(page.get_by_text("Showing the personas created by import")).to_be_visible()
    page.get_by_label("Search").fill("Kim")
    expect(page.locator(".search-note")).to_contain_text("Kim")
    expect(page.locator("#results tbody tr").first).to_contain_text("Kim")
    expect(page.get_by_text("Outside Kim")).to_have_count(0)
    assert "import_job=" in page.url
    shot(page, "imports-created-list")


def test_an_xlsx_upload_shows_each_columns_format_and_imports_by_it(
    page, live_server, login, shot, worker, tmp_path
):
    from tests.imports.test_excel_and_limits import make_xlsx

    path = tmp_path / "Store export.xlsx"
    path.write_bytes(
        make_xlsx(
            [
                ["Mobile", "DOB", "Points", "Spend"],
                ["202-555-0181", "05/04/1990", 1200, "1.250,50"],
                ["202-555-0182", "25/12/1985", 30, "99,00"],
                ["202-555-0183", "03/02/1979", 0, "12,50"],
            ]
        )
    )
    login(page, "Marketing")
    page.goto(f"{live_server.url}/imports/new/")
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Upload and map columns").click()
    expect(page.get_by_text("Step 2 of 3")).to_be_visible()

    # The mapping shows what the file's values say: a day-first date column (25/12 proves
    # it), a number column and a custom attribute stored as a number written 1.234,56.
    dates = page.get_by_label("Dates in “DOB” written")
    expect(dates.locator("option:checked")).to_have_text("Day first (31/12/1990) (detected)")
    expect(page.locator(".read-as[data-column='1']")).to_contain_text("05/04/1990 → 5 Apr 1990")
    expect(page.get_by_label("Numbers in “Points” written")).to_be_visible()
    spend = page.get_by_label("Store “Spend” as")
    expect(spend.locator("option:checked")).to_have_text("Number (detected)")
    numbers = page.get_by_label("Numbers in “Spend” written")
    expect(numbers.locator("option:checked")).to_have_text("1.234,56 (detected)")
    page.locator(".read-as[data-column='1']").scroll_into_view_if_needed()
    shot(page, "imports-xlsx-mapping")
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0
    shot(page, "imports-xlsx-mapping-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Preview the import").click()

    expect(page.get_by_role("heading", name="Preview: what this import would do")).to_be_visible(
        timeout=60_000
    )
    formats = page.locator("#column-formats")
    expect(formats.get_by_role("row", name="DOB")).to_contain_text("Day first (DD/MM/YYYY)")
    expect(formats.get_by_role("row", name="Spend")).to_contain_text("1.250,50 → 1,250.5")
    shot(page, "imports-xlsx-preview")
    page.get_by_role("button", name="Run import of 3 rows").click()
    expect(page.get_by_role("heading", name="Import complete")).to_be_visible(timeout=90_000)

    people = {p.phone: p for p in Persona.objects.all()}
    assert people["+12025550181"].birthday.isoformat() == "1990-04-05"
    assert people["+12025550182"].birthday.isoformat() == "1985-12-25"
    assert people["+12025550181"].attributes["spend"] == 1250.5
    assert people["+12025550181"].points_balance == 1200
