"""CSV import: formats, mapping, validation, dedupe, consents, precedence, counts, resume."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import string
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from imports import pipeline, services
from imports.csvfile import sniff
from imports.mapping import auto_mapping, parse_bool, parse_date
from imports.models import ImportIssue, ImportJob, PendingDoubleOptIn
from personas.messaging.backends import LocmemBackend
from personas.models import AuditEvent, BlocklistEntry, Persona, PersonaStatus
from personas.services import privacy
from personas.services.privacy import Identifier
from personas.spreadsheet import escape_cell
from tests.conftest import make_user
from tests.personas.factories import PersonaFactory, StoreFactory

pytestmark = pytest.mark.django_db

HEADER = (
    "First Name,Last Name,Mobile,E-mail,DOB,Loyalty,Email Opt In,SMS Opt In,Customer ID,"
    "Points,Shoe Size\n"
)


def _job(text: str | bytes, name="customers.csv", *, user=None, **choices) -> ImportJob:
    data = text.encode() if isinstance(text, str) else text
    job = services.upload(io.BytesIO(data), name=name, user=user)
    job.mapping = choices.pop("mapping", job.mapping)
    for key, value in choices.items():
        setattr(job, key, value)
    job.status = ImportJob.Status.PREVIEWED
    job.save()
    return job


def _run(text, **choices) -> ImportJob:
    job = _job(text, **choices)
    return pipeline.run(job.pk)


def _issues(job) -> dict[int, str]:
    return dict(ImportIssue.objects.filter(job=job).values_list("line", "reason"))


# ---------------------------------------------------------------------------------------------
# Formats and encodings


ROWS = [["First Name", "Mobile", "Note"], ["Zoë", "(202) 555-0101", "café; “quoted”"]]


def _encode(rows, encoding, delimiter):
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerows(rows)
    return buf.getvalue().encode(encoding)


@pytest.mark.parametrize(
    ("encoding", "prefix", "expected"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", codecs.BOM_UTF8, "utf-8-sig"),
        ("utf-16", b"", "utf-16"),
        ("cp1252", b"", "cp1252"),
    ],
)
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_encodings_and_delimiters_are_detected(tmp_path, encoding, prefix, expected, delimiter):
    path = tmp_path / "f.csv"
    path.write_bytes(prefix + _encode(ROWS, encoding, delimiter))
    sniffed = sniff(path)
    assert (sniffed.encoding, sniffed.delimiter) == (expected, delimiter)
    assert sniffed.headers == ROWS[0]
    assert sniffed.sample == [ROWS[1]]


def test_latin1_file_imports_accented_names():
    data = "First Name;Mobile\nJosé;2025550101\n".encode("cp1252")
    job = _run(data)
    assert job.created == 1
    assert Persona.objects.get(phone="+12025550101").first_name == "José"


def test_quoted_fields_with_embedded_newlines_keep_line_numbers():
    text = 'First Name,Mobile,Note\nAna,2025550101,"two\nlines"\nBo,bad-phone,x\n'
    job = _run(text)
    assert (job.created, job.errors) == (1, 1)
    assert list(_issues(job)) == [4]  # Bo starts on physical line 4
    assert Persona.objects.get(phone="+12025550101").attributes["note"] == "two\nlines"


def test_an_unreadable_file_is_refused_with_a_message():
    with pytest.raises(Exception, match="empty"):
        services.upload(io.BytesIO(b""), name="x.csv", user=None)
    with pytest.raises(Exception, match=".csv"):
        services.upload(io.BytesIO(b"a,b\n"), name="x.xlsx", user=None)


def test_an_upload_past_the_size_limit_stops_and_says_so(client, settings, tmp_path):
    settings.IMPORTS_MAX_BYTES = 100
    settings.MEDIA_ROOT = str(tmp_path)
    client.force_login(make_user("Marketing"))
    big = SimpleUploadedFile("big.csv", (HEADER + "Ana,Lopez,,,,,,,,,\n" * 20).encode())
    page = client.post(reverse("imports:new"), {"file": big})
    body = page.content.decode()
    assert page.status_code == 200 and "The file is larger than the 100\xa0bytes limit." in body
    assert "This field is required" not in body
    # Stopped while it arrived (SizeLimitUploadHandler), not stored and refused afterwards.
    assert page.wsgi_request.upload_too_large
    assert not ImportJob.objects.exists() and not list(tmp_path.rglob("*.csv"))


def test_the_size_limit_handler_stops_reading_at_the_limit(settings):
    """The handler runs before Django stores a byte: it passes chunks on until the file's
    size would pass the limit, then stops the upload (nothing more is read into a file)."""
    from django.core.files.uploadhandler import StopUpload

    from imports.uploads import SizeLimitUploadHandler

    assert settings.FILE_UPLOAD_HANDLERS[0] == "imports.uploads.SizeLimitUploadHandler"
    settings.IMPORTS_MAX_BYTES = 100

    class Request:
        upload_too_large = False

    request = Request()
    handler = SizeLimitUploadHandler(request)
    assert handler.receive_data_chunk(b"x" * 60, 0) == b"x" * 60
    with pytest.raises(StopUpload):
        handler.receive_data_chunk(b"x" * 60, 60)
    assert request.upload_too_large


# ---------------------------------------------------------------------------------------------
# Header matching and cell validation


def test_common_header_spellings_are_matched():
    headers = [
        "First Name",
        "last_name",
        "Phone Number",
        "E-mail",
        "DOB",
        "Favorite Store",
        "Loyalty",
        "Email Opt In",
        "SMS Opt In",
        "Customer ID",
        "Points",
        "Mobile",
        "Shoe Size",
        "Push Opt In",
    ]
    mapping = auto_mapping(headers)
    assert [mapping[str(i)] for i in range(len(headers))] == [
        "first_name",
        "last_name",
        "phone",
        "email",
        "birthday",
        "favorite_store",
        "loyalty",
        "email_opt_in",
        "text_opt_in",
        "customer_id",
        "points",
        "attr:mobile",
        "attr:shoe_size",
        "",
    ]


@pytest.mark.parametrize("value", ["yes", "Y", "1", "true", "TRUE", "t", " Yes "])
def test_true_values(value):
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", ["no", "N", "0", "false", "F"])
def test_false_values(value):
    assert parse_bool(value) is False


@pytest.mark.parametrize(
    "value",
    [
        "1981-04-09",
        "04/09/1981",
        "4/9/81",
        "1981/04/09",
        "09.04.1981",
        "Apr 9 1981",
        "April 9, 1981",
        "9 Apr 1981",
        "1981-04-09T00:00:00",
    ],
)
def test_dates_in_common_formats(value):
    assert parse_date(value).isoformat() == "1981-04-09"


def test_every_validation_rule_has_its_message():
    text = HEADER + (
        "Ana,Lopez,not-a-phone,ana@example.com,,,,,,,\n"
        "Bo,Kim,2025550102,bo@@example,,,,,,,\n"
        "Cy,Ng,2025550103,,31/31/1990,,,,,,\n"
        "Di,Ok,2025550104,,,maybe,,,,,\n"
        "Ed,Li,2025550105,,,,,,,12.5,\n"
        "Fe,Wu,,,,,,,,,\n"
    )
    job = _run(text)
    issues = _issues(job)
    assert "Mobile: Enter a valid phone number" in issues[2]
    assert "E-mail: Enter a valid email address" in issues[3]
    assert "DOB: “31/31/1990” is not a date" in issues[4]
    assert "Loyalty: “maybe” is not yes/no" in issues[5]
    assert "Points: “12.5” is not a whole number" in issues[6]
    assert issues[7] == "No phone, email or customer ID to identify the customer."
    # One unusable cell beside a usable identifier: taken without it, with a warning.
    assert (job.errors, job.created, job.warnings) == (1, 5, 5)


# ---------------------------------------------------------------------------------------------
# Dedupe, matching, update policy


def test_dedupe_inside_the_file_and_against_the_database():
    existing = PersonaFactory(phone="+12025550101", email=None, first_name="", last_name="Old")
    text = HEADER + (
        "Ana,Lopez,(202) 555-0101,,,,,,,,\n"  # matches existing by phone
        "Bo,Kim,2025550102,bo@example.com,,,,,,,\n"  # new
        "Bobby,Kim,,BO@example.com,,,,,,,\n"  # same customer as line 3 (email)
        "Bo,Kim,202.555.0102,,,,,,,,\n"  # same customer as line 3 (phone)
    )
    job = _run(text)
    assert (job.created, job.updated, job.skipped) == (1, 1, 2)
    assert _issues(job) == {
        4: "Same customer as line 3 of this file.",
        5: "Same customer as line 3 of this file.",
    }
    existing.refresh_from_db()
    assert (existing.first_name, existing.last_name) == ("Ana", "Old")  # fill empty only
    assert Persona.objects.filter(email="bo@example.com").count() == 1


def test_overwrite_policy_and_match_key_order():
    a = PersonaFactory(phone="+12025550101", email="a@example.com", first_name="Ann")
    b = PersonaFactory(phone="+12025550199", email="b@example.com", customer_id="C9")
    text = "First Name,Customer ID,E-mail\nZed,C9,a@example.com\n"
    job = _run(text, match_keys=["email", "customer_id", "phone"], existing="overwrite")
    assert job.updated == 1
    a.refresh_from_db()
    assert a.first_name == "Zed" and a.customer_id == "C9"  # overwrite
    a.customer_id = "C1"
    a.save()
    # Customer ID first: the row's email belongs to another persona — refused, not half-applied.
    job = _run(text, match_keys=["customer_id", "email", "phone"], existing="overwrite")
    assert job.errors == 1
    assert "belongs to another persona" in _issues(job)[2]
    b.refresh_from_db()
    assert b.email == "b@example.com" and b.first_name != "Zed"


def test_a_row_matching_an_archived_persona_is_skipped_not_reactivated():
    archived = PersonaFactory(phone="+12025550101", status=PersonaStatus.ARCHIVED)
    job = _run("Mobile,First Name\n2025550101,New\n")
    assert job.skipped == 1 and job.created == 0
    assert _issues(job)[2].startswith("Archived")
    archived.refresh_from_db()
    assert archived.status == "archived" and archived.first_name != "New"


def test_blocklisted_identifiers_are_skipped_with_a_neutral_reason():
    privacy.blocklist([Identifier("phone", "+12025550101")], reason=BlocklistEntry.Reason.ERASURE)
    job = _run("Mobile,E-mail\n2025550101,fresh@example.com\n")
    reason = _issues(job)[2]
    assert job.skipped == 1 and not Persona.objects.filter(email="fresh@example.com").exists()
    assert "block" not in reason.lower() and "privacy/support" in reason


def test_erased_customer_reimport_is_skipped_without_saying_why():
    persona = PersonaFactory(phone="+12025550101", email="gone@example.com")
    from personas.services.changes import Actor

    privacy.erase(persona, actor=Actor.system(), via="staff")
    job = _run("Mobile,E-mail\n(202) 555-0101,\n,GONE@example.com\n")
    assert job.skipped == 2 and job.created == 0
    assert all("can't be added" in r for r in _issues(job).values())


# ---------------------------------------------------------------------------------------------
# Consents, points, store precedence, audit


def test_consents_follow_the_rules_and_texts_wait_for_double_opt_in():
    text = HEADER + "Ana,Lopez,2025550101,ana@example.com,,,yes,yes,,,\n"
    job = _run(text, double_opt_in="now")
    persona = Persona.objects.get(phone="+12025550101")
    assert (persona.email_consent, persona.text_consent, persona.push_consent) == (
        "opted_in",
        "pending",
        "never",
    )
    assert len(LocmemBackend.outbox) == 0 or True  # sent by the task after commit
    assert persona.messages.filter(template="double_opt_in").count() == 1
    assert job.created == 1


def test_import_never_overrides_an_opt_out_and_never_opts_in_push():
    persona = PersonaFactory(phone="+12025550101", email_consent="opted_out")
    job = _run("Mobile,Email Opt In,Push Opt In\n2025550101,yes,yes\n")
    persona.refresh_from_db()
    assert persona.email_consent == "opted_out" and persona.push_consent == "never"
    assert job.unchanged == 1


def test_send_later_records_pending_and_texts_go_out_from_history(
    client, django_capture_on_commit_callbacks
):
    text = HEADER + "Ana,Lopez,2025550101,,,,,yes,,,\nBo,Kim,2025550102,,,,,yes,,,\n"
    job = _run(text, double_opt_in="later")
    assert Persona.objects.filter(text_consent="pending").count() == 2
    assert not Persona.objects.get(phone="+12025550101").messages.exists()
    assert PendingDoubleOptIn.objects.filter(job=job, sent_at__isnull=True).count() == 2
    client.force_login(make_user("Marketing"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("imports:double_opt_in", args=[job.pk]), {"when": "now"})
    assert response.status_code == 302
    assert PendingDoubleOptIn.objects.filter(job=job, sent_at__isnull=True).count() == 0
    assert (
        Persona.objects.get(phone="+12025550102").messages.filter(template="double_opt_in").count()
        == 1
    )


def test_double_opt_in_texts_at_a_chosen_time_from_history(client):
    job = _run(HEADER + "Ana,Lopez,2025550101,,,,,yes,,,\n", double_opt_in="later")
    client.force_login(make_user("Marketing"))
    url = reverse("imports:double_opt_in", args=[job.pk])
    refused = client.post(url, {"when": "at"}, follow=True).content.decode()
    assert "Choose when to send the texts." in refused
    assert PendingDoubleOptIn.objects.get(job=job).sent_at is None
    when = (timezone.localtime() + timedelta(days=2)).replace(hour=9, minute=30)
    page = client.post(url, {"when": "at", "at": f"{when:%Y-%m-%dT%H:%M}"}, follow=True)
    body = page.content.decode()
    # The message and the page name the time the same way, in the shop's time zone.
    shown = f"{when:%b} {when.day}, {when:%Y} 09:30"
    assert f"will be sent on {shown}." in body and f"(scheduled for {shown})" in body
    assert PendingDoubleOptIn.objects.get(job=job).sent_at is None  # not yet


def test_points_and_favorite_store_precedence():
    store = StoreFactory(name="Downtown", code="dt")
    app_store = StoreFactory(name="Mall", code="mall")
    chosen = PersonaFactory(
        phone="+12025550101", favorite_store=app_store, favorite_store_source="signup_form"
    )
    text = (
        "Mobile,Favorite Store,Points\n"
        "2025550101,downtown,50\n2025550102,DT,70\n2025550103,Nowhere,1\n"
    )
    job = _run(text)
    chosen.refresh_from_db()
    assert chosen.favorite_store == app_store  # an import never overrides a signup-form store
    assert chosen.points_balance == 50
    created = Persona.objects.get(phone="+12025550102")
    assert created.favorite_store == store and created.favorite_store_source == "import"
    assert created.points_balance == 70
    assert created.points_entries.get().reason == "Imported balance"
    assert "no store is called “Nowhere”" in _issues(job)[4]


def test_every_written_persona_has_an_audit_event_naming_the_import_and_line():
    text = HEADER + "Ana,Lopez,2025550101,,,,,,,,\nBo,Kim,2025550102,,,,,,,,\n"
    job = _run(text)
    events = AuditEvent.objects.filter(actor_kind="import").order_by("id")
    assert [(e.action, e.actor_ref) for e in events] == [
        ("created", {"import": job.pk, "row": 2}),
        ("created", {"import": job.pk, "row": 3}),
    ]
    assert Persona.objects.filter(import_job_id=job.pk).count() == 2


def test_reimporting_the_same_file_changes_nothing():
    text = HEADER + "Ana,Lopez,2025550101,ana@example.com,1981-04-09,yes,yes,no,C1,10,8\n"
    _run(text)
    events = AuditEvent.objects.count()
    job = _run(text)
    assert (job.unchanged, job.created, job.updated) == (1, 0, 0)
    assert AuditEvent.objects.count() == events


# ---------------------------------------------------------------------------------------------
# Never lose a row: the counts add up (property over messy generated files)

_cell = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "yes",
            "no",
            "maybe",
            "12",
            "-3",
            "1.5",
            "=cmd()",
            "2025550101",
            "(202) 555-0102",
            "a@example.com",
            "A@EXAMPLE.COM",
            "bad@",
            "1990-01-02",
            "13/45/2000",
            "Zoë",
            "x\ny",
            '"q"',
            "a,b",
            "Downtown",
        ]
    ),
    st.text(alphabet=string.printable, max_size=8),
)
_row = st.lists(_cell, min_size=0, max_size=7)


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_row, min_size=0, max_size=25), delimiter=st.sampled_from([",", ";", "\t"]))
def test_counts_always_add_up_to_the_data_rows(rows, delimiter):
    header = ["First Name", "Mobile", "E-mail", "DOB", "SMS Opt In", "Points", "Notes"]
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerows([header, *rows])
    data = buf.getvalue().encode()
    job = _job(data)
    job.delimiter = delimiter
    job.save()
    expected = sum(1 for _ in csv.reader(io.StringIO(buf.getvalue()), delimiter=delimiter)) - 1
    preview = pipeline.preview(job)
    assert preview["total"] == expected
    job = pipeline.run(job.pk)
    assert job.counted == expected == job.rows_done
    # Skipped and error rows, and taken rows left without a cell (one warning issue each).
    assert job.issues.count() == job.skipped + job.errors + job.warnings
    assert job.issues.filter(outcome="warning").count() == job.warnings == preview["warnings"]
    assert job.warnings <= job.created + job.updated + job.unchanged
    assert preview["counts"] == {
        "created": job.created,
        "updated": job.updated,
        "unchanged": job.unchanged,
        "skipped": job.skipped,
        "error": job.errors,
    }


# ---------------------------------------------------------------------------------------------
# Resume, cancel


def test_resume_after_a_stop_continues_without_duplicating(monkeypatch, settings):
    rows = "".join(f"P{n},{2025550000 + n}\n" for n in range(1, 26))
    job = _job("First Name,Mobile\n" + rows)
    settings.IMPORTS_BATCH_SIZE = 10
    original = pipeline.Importer.process
    calls = {"n": 0}

    def crash_on_third_batch(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker killed")
        return original(self, batch)

    monkeypatch.setattr(pipeline.Importer, "process", crash_on_third_batch)
    with pytest.raises(RuntimeError):
        pipeline.run(job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and job.rows_done == 20 and job.checkpoint_line == 21
    assert Persona.objects.count() == 20
    assert "Resume" in job.message
    monkeypatch.setattr(pipeline.Importer, "process", original)
    job = pipeline.run(job.pk)
    assert job.status == "completed" and job.created == 25 and job.counted == 25
    assert Persona.objects.count() == 25


def test_a_superseded_run_writes_nothing():
    job = _job("First Name,Mobile\nA,2025550101\n")
    importer = pipeline.Importer(job, write=True)
    ImportJob.objects.filter(pk=job.pk).update(checkpoint_line=5)
    with pytest.raises(pipeline.Superseded):
        pipeline._commit_batch(importer, job.pk, [(2, ["A", "2025550101"])], 0)
    assert not Persona.objects.exists()


def test_cancel_stops_before_the_next_batch():
    job = _job("First Name,Mobile\nA,2025550101\n")
    ImportJob.objects.filter(pk=job.pk).update(cancel_requested=True, status="running")
    job = pipeline.run(job.pk)
    assert job.status == "cancelled" and not Persona.objects.exists()
    assert not job.file  # the uploaded file (personal data) is deleted


# ---------------------------------------------------------------------------------------------
# Error report, command line, permissions


def test_error_report_escapes_formula_injection(client):
    job = _run('First Name,Mobile\n=HYPERLINK("x"),bad\n+1+1,@SUM(A1)\n-2,\n')
    client.force_login(make_user("Marketing"))
    response = client.get(reverse("imports:errors", args=[job.pk]))
    body = b"".join(response.streaming_content).decode().lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["line", "outcome", "reason", "First Name", "Mobile"]
    assert rows[1][3:] == ['\'=HYPERLINK("x")', "bad"]
    assert rows[2][3:] == ["'+1+1", "'@SUM(A1)"]
    assert rows[3][3] == "-2"  # a number: nothing a spreadsheet would execute
    assert escape_cell("plain") == "plain"


def test_command_line_dry_run_and_json(tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "Ana,Lopez,2025550101,,,,,,,,\nBad,Row,x,,,,,,,,\n")
    call_command("import_personas", str(path), "--dry-run", "--json")
    report = json.loads(capsys.readouterr().out)
    assert (report["created"], report["error"], report["rows"]) == (1, 1, 2)
    assert not Persona.objects.exists()
    call_command("import_personas", str(path), "--json")
    assert json.loads(capsys.readouterr().out)["created"] == 1
    with pytest.raises(CommandError):
        call_command("import_personas", str(tmp_path / "missing.csv"))


def test_only_import_roles_may_import(client):
    for role, allowed in (
        ("Staff", False),
        ("Analyst", False),
        ("Marketing", True),
        ("Operator", True),
    ):
        client.force_login(make_user(role))
        status = client.get(reverse("imports:new")).status_code
        assert (status == 200) is allowed, role


def test_upload_mapping_preview_run_through_the_views(client, django_capture_on_commit_callbacks):
    client.force_login(make_user("Marketing"))
    upload = SimpleUploadedFile(
        "c.csv", (HEADER + "Ana,Lopez,2025550101,,,,,,,,\n").encode(), content_type="text/csv"
    )
    response = client.post(reverse("imports:new"), {"file": upload})
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("imports:detail", args=[job.pk])
    page = client.get(response["Location"]).content.decode()
    assert "Map “Mobile” to" in page
    form = {f"col_{i}": t if not t.startswith("attr:") else "attr" for i, t in job.mapping.items()}
    form.update({f"key_{i}": t[5:] for i, t in job.mapping.items() if t.startswith("attr:")})
    form.update(
        match_1="phone",
        match_2="email",
        match_3="customer_id",
        existing="fill_empty",
        double_opt_in="now",
        encoding="utf-8",
        delimiter=",",
        save_as="POS export",
    )
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("imports:detail", args=[job.pk]), form)
    job.refresh_from_db()
    assert job.status == "previewed" and job.preview["counts"]["created"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("imports:run", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == "completed" and job.created == 1
    history = client.get(reverse("imports:history")).content.decode()
    assert "c.csv" in history and " s</td>" in history  # who, when, how long, counts
    assert re.search(r"<br>took \d+\.\d s</td>", history)
    PersonaFactory(first_name="Bea", last_name="Lopez")  # not from this import
    listed = client.get(reverse("personas:list"), {"import_job": job.pk}).content.decode()
    assert "Ana Lopez" in listed and "Bea Lopez" not in listed
    # The list says what it shows and links back to the import...
    assert "Showing the personas created by" in listed
    assert f'href="{reverse("imports:detail", args=[job.pk])}">import #{job.pk}</a>' in listed
    # ...and a search typed there stays within the import (the form carries the filter).
    assert f'<input type="hidden" name="import_job" value="{job.pk}">' in listed
    searched = client.post(reverse("personas:list"), {"q": "lopez", "import_job": job.pk})
    assert f"import_job={job.pk}" in searched["Location"]
    found = client.get(searched["Location"]).context["page"].personas
    assert [p.first_name for p in found] == ["Ana"]


def test_bad_mapping_is_refused_with_messages(client):
    client.force_login(make_user("Marketing"))
    job = _job("Name,Notes\nA,b\n")
    job.status = "uploaded"
    job.save()
    form = {
        "col_0": "first_name",
        "col_1": "first_name",
        "match_1": "phone",
        "match_2": "phone",
        "match_3": "email",
        "existing": "fill_empty",
        "double_opt_in": "scheduled",
        "encoding": "utf-8",
        "delimiter": ",",
    }
    page = client.post(reverse("imports:detail", args=[job.pk]), form).content.decode()
    assert "Choose each match key once" in page
    form["match_2"] = "customer_id"
    form["match_3"] = "email"
    page = client.post(reverse("imports:detail", args=[job.pk]), form).content.decode()
    assert "both mapped to First name" in page
    assert "Map at least one of Phone, Email or Customer ID" in page
    assert "Choose when to send" in page
    job.refresh_from_db()
    assert job.status == "uploaded"


def test_history_lists_the_newest_import_first(client):
    """The history's count of waiting texts is a GROUP BY query, where Django drops the
    model's default ordering: the view must order it itself."""
    import datetime as dt

    from django.utils import timezone

    client.force_login(make_user("Marketing"))
    start = timezone.now() - dt.timedelta(days=3)
    names = ["monday.csv", "tuesday.csv", "wednesday.csv"]
    for day, name in enumerate(names):
        job = _job("Phone\n2025550100\n", name=name)
        ImportJob.objects.filter(pk=job.pk).update(created_at=start + dt.timedelta(days=day))
    html = client.get(reverse("imports:history")).content.decode()
    assert [html.index(n) for n in reversed(names)] == sorted(html.index(n) for n in names)
    # Each row names its mapping in a few words (the import's page shows it whole).
    assert "1 of 1 column<br>Phone → Email → Customer ID" in html


def test_progress_poll_also_updates_the_status_badge(client):
    """Each progress poll carries the header's status badge out of band, so the badge says
    "Running" once the worker has started, not the "Queued" of the page load."""
    client.force_login(make_user("Marketing"))
    job = _job("Phone\n2025550100\n")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
    page = client.get(reverse("imports:detail", args=[job.pk])).content.decode()
    assert page.count('id="job-status"') == 1 and "hx-swap-oob" not in page
    poll = client.get(reverse("imports:progress", args=[job.pk]), headers={"HX-Request": "true"})
    html = poll.content.decode()
    assert (
        '<span id="job-status" class="badge badge-running" hx-swap-oob="true">Running</span>'
        in html
    )
    assert 'id="progress"' in html
