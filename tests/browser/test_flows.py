"""Flows in a real browser: build a two-step flow triggered by a signup form, test it on a
persona, publish it, see a new signup go through it and read the run log."""

from __future__ import annotations

import pytest
from django.test import Client
from playwright.sync_api import expect

from flows.models import Flow, FlowRun
from personas.models import Persona
from tests.personas.factories import PersonaFactory, SignupFormFactory

pytestmark = pytest.mark.browser


def test_marketing_builds_tests_publishes_and_reads_a_run(page, live_server, login, shot):
    form = SignupFormFactory(name="Harbor tablet", slug="harbor-tablet")
    tester = PersonaFactory(
        first_name="Tess",
        phone="+12025550171",
        attributes={"temp_flag": "1"},
        voice_consent="opted_in",
    )
    login(page, "Marketing")
    page.get_by_role("link", name="Flows").first.click()
    page.get_by_role("link", name="New flow").first.click()
    page.get_by_label("Name").fill("Welcome VIP")
    page.get_by_label("Starts when").select_option(label="Persona created")
    page.get_by_label("Signup form (persona created)").select_option(label="Harbor tablet")
    page.get_by_role("button", name="Create flow").click()
    expect(page.get_by_role("heading", name="Welcome VIP")).to_be_visible()

    # Step 1: a Persona Update node.
    page.get_by_role("link", name="Add a step…").click()
    drawer = page.get_by_role("dialog")
    drawer.get_by_label("Step type").select_option(label="Persona Update")
    drawer.get_by_label("Step name").fill("mark_vip")
    drawer.get_by_role("button", name="Add step").click()
    page.wait_for_url("**/steps/mark_vip/")
    expect(page.get_by_text("Beta", exact=True)).to_be_visible()
    page.get_by_label("Set custom attributes").fill("vip_status = true")
    page.get_by_label("Delete custom attributes").fill("temp_flag")
    page.get_by_label("Voice").check()
    page.get_by_role("button", name="Save step").click()
    page.wait_for_url(f"**/flows/{Flow.objects.get().pk}/")

    # Step 2: Update Profile Traits, connected after the first.
    flow = Flow.objects.get()
    page.goto(f"{live_server.url}/flows/{flow.pk}/")
    page.get_by_role("link", name="Add a step…").click()
    drawer = page.get_by_role("dialog")
    drawer.get_by_label("Step type").select_option(label="Update Profile Traits")
    drawer.get_by_label("Step name").fill("update_traits")
    drawer.get_by_role("button", name="Add step").click()
    page.wait_for_url("**/steps/update_traits/")
    # A broken template is not saved: the field says what is wrong, where, in plain words.
    page.get_by_label("Traits").fill("welcome_sent = {{ persona.first_name | date: '%Y'")
    page.get_by_role("button", name="Save step").click()
    drawer = page.get_by_role("dialog")
    expect(
        drawer.get_by_text("welcome_sent: line 1, column 1: expected “}}”, found end of file")
    ).to_be_visible()
    expect(drawer.get_by_text("^^^")).to_have_count(0)
    shot(page, "flows-step-template-error")
    assert "date:" not in str(Flow.objects.get().definition)  # nothing saved
    drawer.locator("#id_traits").fill("welcome_sent = {{persona.first_name}}")
    drawer.get_by_role("button", name="Save step").click()
    page.wait_for_url(f"**/flows/{flow.pk}/")
    page.goto(f"{live_server.url}/flows/{flow.pk}/steps/mark_vip/")
    page.get_by_label("On “next” go to").select_option("update_traits")
    page.get_by_role("button", name="Save step").click()
    page.wait_for_url(f"**/flows/{flow.pk}/")
    expect(page.locator("svg.flow-diagram")).to_be_visible()
    expect(page.locator("svg .edge-label", has_text="next")).to_be_visible()
    shot(page, "flows-diagram")

    # Test run on a persona: nothing is written.
    page.get_by_role("link", name="Test run…").click()
    drawer = page.get_by_role("dialog")
    drawer.get_by_label("Persona (phone, email, name…)").fill("Tess")
    drawer.get_by_role("button", name="Find").click()
    drawer.get_by_role("link", name="Test with this persona").click()
    # The test run reads as words: what each step read, decided and changed.
    expect(drawer.get_by_text("vip_status: absent → true (set true)")).to_be_visible()
    expect(drawer.get_by_text("temp_flag: 1 → absent (removed)")).to_be_visible()
    expect(drawer.get_by_text("Profile updated → the run ends")).to_be_visible()
    expect(drawer.get_by_text("[{")).to_have_count(0)
    shot(page, "flows-test-run")
    tester.refresh_from_db()
    assert tester.attributes == {"temp_flag": "1"} and not FlowRun.objects.exists()

    page.goto(f"{live_server.url}/flows/{flow.pk}/")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published version 1")).to_be_visible()

    # A new signup goes through the flow.
    Client().post(f"/signup/{form.slug}/", {"first_name": "Nova", "phone": "(202) 555-0172"})
    nova = Persona.objects.get(phone="+12025550172")
    assert nova.attributes == {"vip_status": "true", "welcome_sent": "Nova"}
    run = FlowRun.objects.get(persona=nova)
    assert run.status == "completed"
    page.goto(f"{live_server.url}/personas/{nova.pk}/flows/")
    page.get_by_role("link", name="Step log").click()
    expect(page.get_by_role("heading", name=f"Run #{run.pk}")).to_be_visible()
    expect(page.get_by_text("Profile updated → the run ends")).to_be_visible()
    expect(page.get_by_text("welcome_sent: absent → Nova (set Nova)")).to_be_visible()
    shot(page, "flows-run-log")


def test_deleting_a_step_asks_first(page, live_server, login, shot):
    from tests.flows.test_engine import DESIGN_EXAMPLE

    flow = Flow.objects.create(
        name="Tidy up", definition=DESIGN_EXAMPLE, trigger={"type": "manual"}
    )
    login(page, "Marketing")
    page.goto(f"{live_server.url}/flows/{flow.pk}/")
    page.get_by_role("link", name="Look Up Profile step look_up_profile_1").click()
    drawer = page.get_by_role("dialog")
    asked = []

    def answer(dialog, accept):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, accept=False))
    drawer.get_by_role("button", name="Delete step").click()
    expect(drawer.get_by_role("button", name="Delete step")).to_be_visible()
    flow.refresh_from_db()
    assert "Delete the step “look_up_profile_1”?" in asked[0]
    assert len(flow.definition["states"]) == 3  # dismissed: nothing deleted

    page.once("dialog", lambda d: answer(d, accept=True))
    drawer.get_by_role("button", name="Delete step").click()
    expect(page.get_by_text("Step “look_up_profile_1” deleted.")).to_be_visible()
    flow.refresh_from_db()
    assert [s["name"] for s in flow.definition["states"]] == ["mark_vip", "update_traits"]
    shot(page, "flows-step-deleted")


def test_bulk_enrolment_counts_then_confirms(page, live_server, login, shot, settings):
    from flows import services
    from flows.models import FlowEnrolment
    from tests.flows.test_enrolment import VIP

    settings.FLOWS_ENROL_TYPE_COUNT_ABOVE = 10  # so twelve personas ask for the typed number
    everyone = PersonaFactory.create_batch(12)
    hidden = PersonaFactory(hidden=True)  # blocklisted: never counted, never enrolled
    flow = Flow.objects.create(name="VIP lifecycle", definition=VIP, trigger={"type": "manual"})
    services.publish(flow, user=None)
    login(page, "Marketing")
    page.goto(f"{live_server.url}/flows/{flow.pk}/")
    page.get_by_label("Search").fill("")
    page.get_by_role("button", name="Enrol matching personas").click()

    heading = page.get_by_role("heading", name="Enrol 12 personas into ‘VIP lifecycle’?")
    expect(heading).to_be_visible()
    expect(page.get_by_text("All personas: 12 active personas.")).to_be_visible()
    assert not FlowRun.objects.exists() and not FlowEnrolment.objects.exists()
    shot(page, "flows-enrol-confirm")
    size = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0
    page.set_viewport_size(size)

    page.get_by_label("Type 12 to confirm").fill("13")
    page.get_by_role("button", name="Enrol 12 personas").click()
    expect(page.locator(".form-error")).to_contain_text("You typed 13, but 12 personas")
    assert not FlowEnrolment.objects.exists() and not FlowRun.objects.exists()

    page.get_by_label("Type 12 to confirm").fill("12")
    page.get_by_role("button", name="Enrol 12 personas").click()
    page.wait_for_url(f"**/flows/{flow.pk}/#enrolments")
    expect(page.get_by_text("Enrolling 12 personas into “VIP lifecycle”")).to_be_visible()
    listed = page.locator("#enrolments")
    expect(listed).to_contain_text("12 personas · all personas")
    expect(listed).to_contain_text("12 enrolled")
    expect(listed.get_by_text("Done", exact=True)).to_be_visible()
    enrolled = set(FlowRun.objects.filter(flow=flow).values_list("persona_id", flat=True))
    assert enrolled == {p.pk for p in everyone} and hidden.pk not in enrolled
