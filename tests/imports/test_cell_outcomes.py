"""Cell-level outcomes: "no value" markers, unusable secondary cells, mail-program addresses,
and erasure of values stored as typed in the file."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from imports import pipeline, services
from imports.mapping import parse_row
from imports.models import ImportIssue, ImportJob
from personas.models import Persona
from personas.services import privacy
from personas.services.changes import Actor
from tests.conftest import make_user
from tests.imports.test_imports import _issues, _job, _run

pytestmark = pytest.mark.django_db


def _report(job: ImportJob) -> str:
    return "".join(services.error_report(job))


# ---------------------------------------------------------------------------------------------
# Example 8: "no value" cells and one bad secondary cell


@pytest.mark.parametrize("marker", ["N/A", "n/a", " NULL ", "#N/A", "none", "-", "(blank)", "nil"])
def test_example_8_no_value_marker_in_the_phone_cell_is_blank(marker):
    job = _run(f"First Name,Mobile,E-mail\nAna,{marker},ana@example.com\n")
    assert (job.created, job.errors, job.warnings) == (1, 0, 0)
    assert _issues(job) == {}
    persona = Persona.objects.get(email="ana@example.com")
    assert persona.phone in (None, "") and persona.first_name == "Ana"


def test_example_8_na_birthday_is_blank():
    job = _run("Mobile,DOB,Shoe Size\n2025550111,#N/A,N/A\n")
    assert (job.created, job.errors, job.warnings) == (1, 0, 0)
    persona = Persona.objects.get(phone="+12025550111")
    assert persona.birthday is None
    assert "shoe_size" not in (persona.attributes or {})


def test_example_8_empty_markers_follow_the_setting(settings):
    settings.IMPORTS_EMPTY_MARKERS = ["unknown"]
    row = parse_row(2, ["UNKNOWN ", "N/A"], [(0, "birthday", "DOB"), (1, "phone", "Mobile")])
    assert "birthday" not in row.fields and not any("DOB" in w for w in row.warnings)
    assert any(w.startswith("Mobile:") for w in row.warnings)  # N/A no longer a marker


def test_example_8_invalid_phone_beside_valid_email_is_created_without_the_phone():
    text = "First Name,Mobile,E-mail,DOB\nBo,not-a-phone,bo@example.com,31/31/1990\n"
    job = _run(text)
    assert (job.created, job.errors, job.skipped, job.warnings) == (1, 0, 0, 1)
    persona = Persona.objects.get(email="bo@example.com")
    assert persona.phone in (None, "") and persona.birthday is None
    issue = ImportIssue.objects.get(job=job)
    assert issue.outcome == "warning" and issue.line == 2
    assert "Mobile: Enter a valid phone number" in issue.reason
    assert "not-a-phone" in issue.reason
    assert "DOB: “31/31/1990” is not a date" in issue.reason
    assert issue.persona_id == persona.pk
    report = _report(job)
    assert "warning" in report and "not-a-phone" in report and "Mobile" in report


def test_example_8_row_is_an_error_only_when_no_identifier_remains():
    job = _run("First Name,Mobile,E-mail\nCy,not-a-phone,cy@@example\nDi,N/A,N/A\n")
    assert (job.created, job.errors, job.warnings) == (0, 2, 0)
    issues = _issues(job)
    assert issues[2].startswith("No phone, email or customer ID to identify the customer")
    assert "Mobile: Enter a valid phone number (“not-a-phone”)" in issues[2]
    assert "E-mail: Enter a valid email address (“cy@@example”)" in issues[2]
    assert issues[3] == "No phone, email or customer ID to identify the customer."


def test_example_8_preview_counts_warnings_like_the_run():
    job = _job("Mobile,E-mail\nnope,ed@example.com\n2025550112,fe@example.com\n")
    preview = pipeline.preview(job)
    assert preview["counts"]["created"] == 2 and preview["counts"]["error"] == 0
    assert preview["warnings"] == 1
    assert preview["examples"]["warning"][0]["line"] == 2
    job = pipeline.run(job.pk)
    assert (job.created, job.warnings) == (2, 1)


def test_example_8_counts_are_shown_with_warnings(client):
    user = make_user("Marketing")
    client.force_login(user)
    job = _run("Mobile,E-mail\nnope,gi@example.com\n", user=user)
    page = client.get(reverse("imports:detail", args=[job.pk])).content.decode()
    assert "1 created, 1 row was taken with warnings" in page
    history = client.get(reverse("imports:history")).content.decode()
    assert "1 with warnings" in history


# ---------------------------------------------------------------------------------------------
# Example 9: addresses as mail programs export them


@pytest.mark.parametrize(
    "cell",
    [
        "mailto:cal.pry@example.com",
        "MAILTO:Cal.Pry@example.com",
        "<cal.pry@example.com>",
        "Cal Pry <cal.pry@example.com>",
        '"Pry, Cal" <Cal.Pry@Example.com>',
    ],
)
def test_example_9_mail_program_addresses_read_as_the_address(cell):
    quoted = cell.replace('"', '""')
    text = f'First Name,E-mail\nCal,"{quoted}"\n'
    job = _run(text)
    assert (job.created, job.errors, job.warnings) == (1, 0, 0), _issues(job)
    assert Persona.objects.filter(email="cal.pry@example.com").count() == 1


def test_example_9_a_mailto_that_is_not_an_address_is_still_refused():
    job = _run("Mobile,E-mail\n2025550113,mailto:nobody\n")
    assert job.created == 1 and job.warnings == 1
    assert "E-mail: Enter a valid email address" in _issues(job)[2]


# ---------------------------------------------------------------------------------------------
# Example 6: erasure scrubs the cells as typed


def _stored_text(job: ImportJob) -> str:
    job.refresh_from_db()
    rows = list(ImportIssue.objects.filter(job=job).values_list("raw", flat=True))
    return json.dumps([rows, job.sample, job.preview], ensure_ascii=False)


def test_example_6_erasure_scrubs_phone_and_email_as_typed_in_the_file():
    text = (
        "First Name,Mobile,E-mail\n"
        "Cal,(202) 555-0301,Cal.Pry@Example.com\n"
        "Cal,202.555.0301,\n"  # same customer: kept as a skipped issue, phone as typed
        "Other,(202) 555-0302,other@example.com\n"
    )
    job = _job(text)
    job.preview = pipeline.preview(job)
    job.save()
    job = pipeline.run(job.pk)
    assert job.created == 2 and job.skipped == 1
    before = _stored_text(job)
    assert "(202) 555-0301" in before and "202.555.0301" in before

    persona = Persona.objects.get(phone="+12025550301")
    privacy.erase(persona, actor=Actor.system(), via="staff")

    after = _stored_text(job)
    for typed in ("(202) 555-0301", "202.555.0301", "Cal.Pry@Example.com"):
        assert typed not in after, typed
    assert "[erased]" in after
    # Another customer's values stay.
    assert "(202) 555-0302" in after and "other@example.com" in after
