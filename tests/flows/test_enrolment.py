"""Bulk enrolment: counted first, confirmed (typed above a threshold), recorded as one job that
can be cancelled while it waits, and never touching a persona staff may not see."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from flows import engine, enrolment, services
from flows.models import Flow, FlowEnrolment, FlowRun
from flows.tasks import run_enrolment
from personas.models import Persona
from personas.selectors import ListQuery
from tests.conftest import make_user
from tests.flows.factories import published_flow
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.django_db

VIP = {
    "description": "VIP tagging",
    "initial_state": "mark_vip",
    "states": [
        {
            "name": "mark_vip",
            "type": "persona-update",
            "properties": {"set": [{"key": "vip_status", "value": "true"}]},
            "transitions": [{"event": "next"}],
        }
    ],
}
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _flow(name: str = "VIP lifecycle", reentry: str = "once") -> Flow:
    return published_flow(VIP, name=name, reentry=reentry)


@pytest.fixture
def flow():
    return _flow()


@pytest.fixture
def marketing(client_for):
    return client_for("Marketing")


def _ask(client, flow, **fields):
    """The flow page's "Enrol matching personas" form: the confirmation page."""
    return client.post(reverse("flows:enroll_list", args=[flow.pk]), {"q": "", **fields})


def _confirm(client, flow, count, **fields):
    data = {"q": "", "confirm": "1", "count": str(count), **fields}
    return client.post(reverse("flows:enroll_list", args=[flow.pk]), data)


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def _enrolled_ids(flow) -> set[int]:
    return set(FlowRun.objects.filter(flow=flow).values_list("persona_id", flat=True))


# ---------------------------------------------------------------------------------------------
# Counting first


def test_the_confirmation_page_states_the_count_and_the_flow_and_enrols_nobody(marketing, flow):
    PersonaFactory.create_batch(7)
    response = _ask(marketing, flow)
    assert response.status_code == 200
    page = _text(response)
    assert "Enrol 7 personas into ‘VIP lifecycle’?" in page
    assert "All personas: 7 active personas." in page
    assert 'name="count" value="7"' in page
    assert not FlowRun.objects.exists() and not FlowEnrolment.objects.exists()


def test_the_confirmation_page_describes_the_search_in_words(marketing, flow):
    kims = [PersonaFactory(first_name="Kim"), PersonaFactory(first_name="Kimberly")]
    PersonaFactory.create_batch(3, first_name="Lee")
    response = _ask(marketing, flow, q="kim", loyalty="no")
    page = _text(response)
    assert "Enrol 2 personas into ‘VIP lifecycle’?" in page
    assert "Personas matching “kim”, not enrolled in loyalty: 2 active personas." in page
    assert not FlowRun.objects.exists()
    assert len(kims) == 2


def test_filters_that_cannot_be_read_never_fall_back_to_everyone(marketing, flow):
    PersonaFactory.create_batch(3)
    for junk in ({"q": "kim\x00"}, {"created_from": "2024-02-30"}, {"loyalty": "maybe"}):
        response = _ask(marketing, flow, **junk)
        assert response.status_code == 200
        assert "Check the filters" in _text(response)
        assert "Enrol 3 personas" not in _text(response)
        response = _confirm(marketing, flow, 3, **junk)
        assert "Check the filters" in _text(response)
    assert not FlowRun.objects.exists() and not FlowEnrolment.objects.exists()


def test_a_once_per_persona_flow_counts_only_personas_not_in_it_yet(marketing, flow):
    personas = PersonaFactory.create_batch(5)
    engine.enroll(flow, [p.pk for p in personas[:2]])
    page = _text(_ask(marketing, flow))
    assert "Enrol 3 personas into ‘VIP lifecycle’?" in page
    assert "2 matching personas are already in this flow, which runs once per persona." in page


def test_nobody_to_enrol_offers_no_confirmation(marketing, flow):
    PersonaFactory(first_name="Lee")
    page = _text(_ask(marketing, flow, q="zzzz"))
    assert "Nobody to enrol into ‘VIP lifecycle’" in page
    assert 'name="confirm"' not in page
    assert "nobody to enrol" in _text(_confirm(marketing, flow, 0, q="zzzz"))
    assert not FlowEnrolment.objects.exists()


def test_the_confirmation_page_takes_a_bounded_number_of_queries(
    marketing, flow, django_assert_max_num_queries
):
    PersonaFactory.create_batch(60)
    engine.enroll(flow, list(Persona.objects.values_list("pk", flat=True)[:10]))
    _ask(marketing, flow)  # the session and the user's groups, loaded once
    with django_assert_max_num_queries(8):
        response = _ask(marketing, flow, loyalty="no")
    assert "Enrol 50 personas" in _text(response)
    with django_assert_max_num_queries(16):  # plus the search's index scans
        response = _ask(marketing, flow, q="customer")
    assert response.status_code == 200


# ---------------------------------------------------------------------------------------------
# Confirming


def test_confirming_enrols_exactly_the_personas_counted(
    marketing, flow, django_capture_on_commit_callbacks
):
    kims = [PersonaFactory(first_name="Kim") for _ in range(3)]
    others = PersonaFactory.create_batch(4, first_name="Lee")
    assert "Enrol 3 personas" in _text(_ask(marketing, flow, q="kim"))
    with django_capture_on_commit_callbacks(execute=True):
        response = _confirm(marketing, flow, 3, q="kim")
    assert response.status_code == 302
    assert "kim" not in response["Location"]  # the search never rides in a URL
    job = FlowEnrolment.objects.get()
    assert job.status == FlowEnrolment.Status.DONE
    assert (job.confirmed_count, job.enrolled, job.skipped) == (3, 3, 0)
    assert job.filters == {"q": "kim"} and job.description == "personas matching “kim”"
    assert job.created_by == marketing.user and job.finished_at is not None
    assert job.persona_ids == []  # a work list, emptied once done; the runs are the record
    assert _enrolled_ids(flow) == {p.pk for p in kims}
    assert not FlowRun.objects.filter(persona__in=others).exists()
    run = FlowRun.objects.filter(flow=flow).first()
    assert run.context["trigger"] == {"type": "manual", "enrolment": job.pk}


def test_the_flow_page_lists_the_enrolment_in_words(
    marketing, flow, django_capture_on_commit_callbacks
):
    PersonaFactory.create_batch(4)
    with django_capture_on_commit_callbacks(execute=True):
        response = _confirm(marketing, flow, 4)
    response = marketing.get(response["Location"])
    page = _text(response)
    assert "Enrolling 4 personas into “VIP lifecycle” in the background" in page
    assert "<strong>4 personas</strong> · all personas" in page
    assert ">Done</span>" in page and ">done<" not in page
    assert f"Asked by {marketing.user.username} on " in page
    assert "4 enrolled" in page
    assert not ISO_TIME.search(page)


def test_above_the_threshold_the_number_must_be_typed(
    marketing, flow, settings, django_capture_on_commit_callbacks
):
    settings.FLOWS_ENROL_TYPE_COUNT_ABOVE = 3
    PersonaFactory.create_batch(5)
    page = _text(_ask(marketing, flow))
    assert "Type 5 to confirm" in page

    missing = _text(_confirm(marketing, flow, 5))
    assert "Type the number of personas, 5, to confirm" in missing
    assert "Nobody was enrolled" in missing
    wrong = _text(_confirm(marketing, flow, 5, typed="4"))
    assert "You typed 4, but 5 personas would be enrolled. Nobody was enrolled" in wrong
    assert 'role="alert"' in wrong and "Enrol 5 personas into ‘VIP lifecycle’?" in wrong
    assert not FlowEnrolment.objects.exists() and not FlowRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = _confirm(marketing, flow, 5, typed=" 5 ")
    assert response.status_code == 302
    assert FlowEnrolment.objects.get().enrolled == 5 == FlowRun.objects.count()


def test_at_the_threshold_a_click_is_enough(marketing, flow, settings):
    settings.FLOWS_ENROL_TYPE_COUNT_ABOVE = 5
    PersonaFactory.create_batch(5)
    assert "to confirm" not in _text(_ask(marketing, flow))
    assert _confirm(marketing, flow, 5).status_code == 302
    assert FlowEnrolment.objects.get().confirmed_count == 5


def test_a_count_that_changed_since_the_confirmation_page_is_refused(marketing, flow):
    PersonaFactory.create_batch(5)
    assert "Enrol 5 personas" in _text(_ask(marketing, flow))
    PersonaFactory()  # a signup meanwhile
    response = _confirm(marketing, flow, 5)
    page = _text(response)
    assert response.status_code == 200
    assert "changed since you looked: 5 then, 6 now. Nobody was enrolled" in page
    assert "Enrol 6 personas into ‘VIP lifecycle’?" in page  # asked again, with the new number
    assert not FlowEnrolment.objects.exists() and not FlowRun.objects.exists()


def test_a_confirmation_without_its_number_is_refused(marketing, flow):
    PersonaFactory.create_batch(2)
    for count in ("", "lots", "-2", "1e309"):
        assert "Nobody was enrolled" in _text(_confirm(marketing, flow, count)) or (
            "nothing was enrolled" in _text(_confirm(marketing, flow, count)).lower()
        )
    assert not FlowEnrolment.objects.exists()


def test_the_same_enrolment_twice_is_refused_while_the_first_waits(
    marketing, flow, django_capture_on_commit_callbacks
):
    PersonaFactory.create_batch(2)
    with django_capture_on_commit_callbacks():  # the task is not run: the job stays queued
        assert _confirm(marketing, flow, 2).status_code == 302
        assert "already waiting or running" in _text(_confirm(marketing, flow, 2))
    assert FlowEnrolment.objects.count() == 1


def test_only_an_active_flow_can_enrol(marketing, flow):
    PersonaFactory.create_batch(2)
    services.set_status(flow, Flow.Status.PAUSED)
    for post in (_ask, lambda client, flow: _confirm(client, flow, 2)):
        response = post(marketing, flow)
        assert response.status_code == 302
        page = _text(marketing.get(response["Location"]))
        assert "Only an active flow can enrol personas" in page
    draft = Flow.objects.create(name="Draft", definition=VIP, trigger={"type": "manual"})
    assert _confirm(marketing, draft, 2).status_code == 302
    assert not FlowEnrolment.objects.exists() and not FlowRun.objects.exists()


# ---------------------------------------------------------------------------------------------
# Visibility


def test_hidden_and_inactive_personas_are_never_counted_nor_enrolled(
    marketing, flow, django_capture_on_commit_callbacks
):
    visible = PersonaFactory.create_batch(3, first_name="Kim")
    hidden = PersonaFactory.create_batch(2, first_name="Kim", hidden=True)  # blocklisted
    PersonaFactory(first_name="Kim", status="archived")
    for fields in ({}, {"q": "kim"}):
        assert "Enrol 3 personas" in _text(_ask(marketing, flow, **fields))
        assert "changed since you looked" in _text(_confirm(marketing, flow, 5, **fields))
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(marketing, flow, 3)
    assert _enrolled_ids(flow) == {p.pk for p in visible}
    assert not FlowRun.objects.filter(persona__in=hidden).exists()


def test_a_persona_blocklisted_after_confirmation_is_skipped(
    marketing, flow, django_capture_on_commit_callbacks
):
    personas = PersonaFactory.create_batch(3)
    with django_capture_on_commit_callbacks() as queued:
        _confirm(marketing, flow, 3)
    Persona.objects.filter(pk=personas[0].pk).update(hidden=True)
    for callback in queued:
        callback()
    job = FlowEnrolment.objects.get()
    assert (job.status, job.enrolled, job.skipped) == ("done", 2, 1)
    assert _enrolled_ids(flow) == {p.pk for p in personas[1:]}


# ---------------------------------------------------------------------------------------------
# Cancelling


def test_cancelled_while_queued_the_task_does_nothing(
    marketing, flow, django_capture_on_commit_callbacks
):
    PersonaFactory.create_batch(5)
    with django_capture_on_commit_callbacks() as queued:
        _confirm(marketing, flow, 5)
    job = FlowEnrolment.objects.get()
    assert job.status == FlowEnrolment.Status.QUEUED
    page = _text(marketing.get(flow.get_absolute_url()))
    assert "Waiting to start" in page and "Nobody enrolled yet." in page
    url = reverse("flows:enrolment_cancel", args=[job.pk])

    asked = _text(marketing.post(url))  # the button asks first
    assert "Cancel the enrolment of 5 personas into ‘VIP lifecycle’?" in asked
    assert "Yes, cancel the enrolment" in asked
    job.refresh_from_db()
    assert job.status == FlowEnrolment.Status.QUEUED

    response = marketing.post(url, {"confirmed": "1"})
    assert response.status_code == 302
    assert "cancelled: nobody was enrolled" in _text(marketing.get(response["Location"]))
    for callback in queued:  # the queued task runs after all
        callback()
    assert run_enrolment.call(job.pk) == 0
    job.refresh_from_db()
    assert job.status == FlowEnrolment.Status.CANCELLED and job.cancelled_by == marketing.user
    assert job.enrolled == 0 and not FlowRun.objects.exists()
    page = _text(marketing.get(flow.get_absolute_url()))
    assert f"Cancelled by {marketing.user.username} before it started" in page


def test_cancelling_after_it_started_or_finished_is_refused(
    marketing, flow, django_capture_on_commit_callbacks
):
    PersonaFactory.create_batch(3)
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(marketing, flow, 3)
    job = FlowEnrolment.objects.get()
    url = reverse("flows:enrolment_cancel", args=[job.pk])
    for body in ({}, {"confirmed": "1"}):
        response = marketing.post(url, body, follow=True)
        assert "This enrolment has finished (3 enrolled): there is nothing left to cancel." in (
            _text(response)
        )
    FlowEnrolment.objects.filter(pk=job.pk).update(status="running", position=1)
    response = marketing.post(url, {"confirmed": "1"}, follow=True)
    assert "has already started (1 of 3 handled), so it can no longer be cancelled" in (
        _text(response)
    )
    job.refresh_from_db()
    assert job.status == FlowEnrolment.Status.RUNNING and FlowRun.objects.count() == 3


# ---------------------------------------------------------------------------------------------
# The job


def test_the_job_enrols_in_batches_and_records_its_progress(marketing, flow):
    personas = PersonaFactory.create_batch(5)
    lq = ListQuery()
    job = enrolment.request_enrolment(
        flow=flow, user=marketing.user, lq=lq, confirmed_count=5, typed=None
    )
    assert enrolment.run(enrolment_id=job.pk, batch_size=2) == 5
    job.refresh_from_db()
    assert (job.status, job.position, job.enrolled) == ("done", 5, 5)
    assert _enrolled_ids(flow) == {p.pk for p in personas}
    assert enrolment.run(enrolment_id=job.pk) == 0  # a second delivery does nothing


def test_a_job_whose_flow_was_paused_stops_and_says_so(marketing):
    flow = _flow("Each time", reentry="each")
    PersonaFactory.create_batch(3)
    job = enrolment.request_enrolment(
        flow=flow, user=marketing.user, lq=ListQuery(), confirmed_count="3"
    )
    services.set_status(flow, Flow.Status.PAUSED)
    assert enrolment.run(enrolment_id=job.pk) == 0
    job.refresh_from_db()
    assert job.status == "done" and job.note == "Stopped after 0 of 3: the flow is paused."


def test_an_erased_customers_search_text_is_forgotten(marketing, flow):
    PersonaFactory(phone="+12025550199")
    job = enrolment.request_enrolment(
        flow=flow, user=marketing.user, lq=ListQuery(q="(202) 555-0199"), confirmed_count=1
    )
    other = FlowEnrolment.objects.create(
        flow=flow, filters={"q": "kim"}, description="personas matching “kim”", confirmed_count=1
    )
    from personas.models import Persona
    from personas.services import privacy
    from personas.services.changes import Actor

    privacy.erase(Persona.objects.get(phone="+12025550199"), actor=Actor.system(), via="staff")
    job.refresh_from_db()
    other.refresh_from_db()
    assert "555" not in str(job.filters) and "555" not in job.description
    assert other.filters == {"q": "kim"}


# ---------------------------------------------------------------------------------------------
# Who may


@pytest.mark.parametrize(
    "role, allowed",
    [
        (None, False),
        ("Staff", False),
        ("Analyst", False),
        ("Operator", False),
        ("Marketing Analyst", True),
        ("Marketing", True),
        ("Manager", True),
        ("Owner", True),
    ],
)
def test_only_flow_editors_count_confirm_or_cancel(client_for, flow, role, allowed):
    PersonaFactory.create_batch(2)
    queued = FlowEnrolment.objects.create(
        flow=flow, created_by=make_user("Marketing"), description="all personas", confirmed_count=2
    )
    client = client_for(role)
    asked = _ask(client, flow)
    confirmed = _confirm(client, flow, 2, q="x")
    cancelled = client.post(reverse("flows:enrolment_cancel", args=[queued.pk]), {"confirmed": "1"})
    queued.refresh_from_db()
    if allowed:
        assert asked.status_code == 200 and cancelled.status_code == 302
        assert queued.status == FlowEnrolment.Status.CANCELLED
    else:
        assert {asked.status_code, confirmed.status_code, cancelled.status_code} == {403}
        assert queued.status == FlowEnrolment.Status.QUEUED
        assert FlowEnrolment.objects.count() == 1 and not FlowRun.objects.exists()


def test_a_visitor_is_sent_to_sign_in(client, flow):
    response = client.post(reverse("flows:enroll_list", args=[flow.pk]), {"q": ""})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not FlowEnrolment.objects.exists()


def test_the_enrolments_panel_refreshes_only_for_htmx(marketing, client_for, flow):
    FlowEnrolment.objects.create(flow=flow, description="all personas", confirmed_count=2)
    url = reverse("flows:enrolments", args=[flow.pk])
    assert marketing.get(url).status_code == 302
    panel = _text(marketing.get(url, HTTP_HX_REQUEST="true"))
    assert 'hx-trigger="every 2s"' in panel and "Waiting to start" in panel
    viewer = client_for("Analyst")
    panel = _text(viewer.get(url, HTTP_HX_REQUEST="true"))
    assert "Waiting to start" in panel and "Cancel" not in panel


def test_more_than_one_job_takes_is_refused_with_the_limit(marketing, flow, monkeypatch):
    monkeypatch.setattr(enrolment, "MAX_PERSONAS", 3)  # a setting of the module, not a mock
    PersonaFactory.create_batch(4)
    page = _text(_ask(marketing, flow))
    assert "One enrolment takes at most 3 personas" in page and 'name="confirm"' not in page
    assert "more than 3 personas" in _text(_confirm(marketing, flow, 4))
    assert not FlowEnrolment.objects.exists()
