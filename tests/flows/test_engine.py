"""The flow engine: every step type and transition, templating, waits, triggers, test runs."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from flows import engine, services
from flows.definition import validate
from flows.models import Flow, FlowRun, FlowStepLog
from personas.models import AuditEvent, OutboundMessage, Persona
from personas.services import changes, privacy
from personas.services.changes import Actor, Changeset, ConsentAction, ConsentOp
from tests.conftest import make_user
from tests.flows.factories import DESIGN_EXAMPLE, published_flow
from tests.personas.factories import PersonaFactory, SignupFormFactory

pytestmark = pytest.mark.django_db


def _flow(definition, trigger=None, reentry="each") -> Flow:
    return published_flow(
        definition, name=f"F{Flow.objects.count()}", trigger=trigger, reentry=reentry
    )


def _run(flow, persona) -> FlowRun:
    [run_id] = engine.enroll(flow, [persona.pk], run_now=True)
    return FlowRun.objects.get(pk=run_id)


def _one(step_type, properties, events):
    return {
        "initial_state": "s",
        "states": [
            {
                "name": "s",
                "type": step_type,
                "properties": properties,
                "transitions": [{"event": e} for e in events],
            }
        ],
    }


def test_the_design_example_imports_as_is_and_runs():
    assert validate(DESIGN_EXAMPLE) == []
    persona = PersonaFactory(
        phone="+12025550101", attributes={"temp_flag": "x"}, voice_consent="opted_in"
    )
    run = _run(_flow(DESIGN_EXAMPLE), persona)
    persona.refresh_from_db()
    assert run.status == "completed"
    assert persona.attributes == {
        "vip_status": "true",
        "current_flow_step": "post purchase",
        "callback_number": "+12025550101",
    }
    assert persona.voice_consent == "opted_out"
    logs = list(FlowStepLog.objects.filter(run=run).values_list("step", "event"))
    assert logs == [
        ("mark_vip", "next"),
        ("look_up_profile_1", "profileFound"),
        ("update_traits", "profileUpdated"),
    ]
    events = AuditEvent.objects.filter(actor_kind="flow", persona=persona)
    assert events.count() == 2 and all(e.actor_ref["run"] == run.pk for e in events)


def test_seed_node_example_add_set_remove_ends_with_vip_removed():
    definition = _one(
        "persona-update",
        {
            "remove": [{"key": "vip"}],
            "set": [{"key": "vip", "value": "true"}],
            "add": [{"key": "vip", "value": "false"}],
        },
        ["next"],
    )
    persona = PersonaFactory(attributes={})
    run = _run(_flow(definition), persona)
    persona.refresh_from_db()
    assert "vip" not in persona.attributes and run.status == "completed"
    ops = FlowStepLog.objects.get(run=run).outputs["operations"]
    assert [(o["op"], o["result"]) for o in ops] == [
        ("add", "created"),
        ("set", "replaced"),
        ("remove", "removed"),
    ]


@pytest.mark.parametrize(
    ("sid", "setup", "event"),
    [
        ("{{trigger.persona.id}}", None, "profileUpdated"),
        ("999999", None, "profileNotFound"),
        ("{{ trigger.nothing }}", None, "profileNotFound"),
        ("{{trigger.nothing.here}}", None, "profileNotFound"),
        ("HIDDEN", "hidden", "profileNotFound"),
    ],
)
def test_update_profile_traits_transitions(sid, setup, event):
    persona = PersonaFactory()
    if setup == "hidden":
        other = PersonaFactory(hidden=True)
        sid = str(other.pk)
    definition = _one(
        "update-profile-traits",
        {"profile_connect_sid": sid, "traits": [{"key": "tier", "value": "gold"}]},
        ["profileUpdated", "profileNotFound", "failed"],
    )
    run = _run(_flow(definition), persona)
    assert FlowStepLog.objects.get(run=run).event == event


def test_update_profile_traits_fails_on_an_invalid_email_and_records_why():
    persona = PersonaFactory()
    definition = _one(
        "update-profile-traits",
        {
            "profile_connect_sid": "{{trigger.persona.id}}",
            "traits": [
                {"key": "email", "value": "not-an-email"},
                {"key": "first_name", "value": "Zed"},
            ],
        },
        ["profileUpdated", "profileNotFound", "failed"],
    )
    run = _run(_flow(definition), persona)
    log = FlowStepLog.objects.get(run=run)
    assert log.event == "failed" and "valid email" in log.error
    persona.refresh_from_db()
    assert persona.first_name != "Zed"  # nothing half-applied
    assert run.status == "completed"  # the failed transition was followed, no crash


def test_standard_trait_updates_the_field_with_validation():
    persona = PersonaFactory(phone=None)
    definition = _one(
        "update-profile-traits",
        {
            "profile_connect_sid": "{{trigger.persona.id}}",
            "traits": [{"key": "phone", "value": "(202) 555-0188"}],
        },
        ["profileUpdated", "profileNotFound", "failed"],
    )
    _run(_flow(definition), persona)
    persona.refresh_from_db()
    assert persona.phone == "+12025550188"


def test_look_up_profile_by_email_customer_id_and_not_found():
    target = PersonaFactory(email="t@example.com", customer_id="POS-9")
    persona = PersonaFactory()
    for identifier, event in (
        ("T@example.com", "profileFound"),
        ("POS-9", "profileFound"),
        ("nobody@example.com", "profileNotFound"),
        ("{{ trigger.nothing }}", "profileNotFound"),
        ("bad@", "failed"),
    ):
        definition = _one(
            "look-up-profile",
            {"identifier": identifier},
            ["profileFound", "profileNotFound", "failed"],
        )
        run = _run(_flow(definition), persona)
        log = FlowStepLog.objects.get(run=run)
        assert log.event == event, identifier
        if event == "profileFound":
            assert log.outputs["ProfileData"]["profileConnectSid"] == str(target.pk)


@pytest.mark.parametrize(
    ("operator", "value", "attr", "event"),
    [
        ("equal_to", "Gold", "gold", "match_1"),
        ("not_equal_to", "gold", "gold", "noMatch"),
        ("contains", "ol", "gold", "match_1"),
        ("is_empty", "", "", "match_1"),
        ("is_not_empty", "", "x", "match_1"),
        ("greater_than", "10", "11", "match_1"),
        ("less_than", "10", "11", "noMatch"),
        ("in_list", "silver, gold", "gold", "match_1"),
    ],
)
def test_split_based_on_each_operator(operator, value, attr, event):
    persona = PersonaFactory(attributes={"tier": attr})
    definition = _one(
        "split-based-on",
        {
            "input": "{{persona.attributes.tier}}",
            "conditions": [{"operator": operator, "value": value}],
        },
        ["noMatch", "match_1"],
    )
    run = _run(_flow(definition), persona)
    assert FlowStepLog.objects.get(run=run).event == event


def test_send_message_is_suppressed_after_a_force_opt_out():
    persona = PersonaFactory(phone="+12025550101", text_consent="opted_in")
    definition = {
        "initial_state": "out",
        "states": [
            {
                "name": "out",
                "type": "persona-update",
                "properties": {"force_opt_out": ["text"]},
                "transitions": [{"event": "next", "next": "say"}],
            },
            {
                "name": "say",
                "type": "send-message",
                "properties": {"channel": "text", "body": "Hi {{persona.first_name}}"},
                "transitions": [{"event": "sent"}, {"event": "suppressed"}, {"event": "failed"}],
            },
        ],
    }
    run = _run(_flow(definition), persona)
    assert FlowStepLog.objects.filter(run=run).last().event == "suppressed"
    assert not OutboundMessage.objects.filter(persona=persona).exists()


def test_send_message_sends_a_rendered_text_when_opted_in():
    persona = PersonaFactory(phone="+12025550101", text_consent="opted_in", first_name="Ana")
    definition = _one(
        "send-message",
        {"channel": "text", "body": "Hi {{persona.first_name}}!"},
        ["sent", "suppressed", "failed"],
    )
    run = _run(_flow(definition), persona)
    assert FlowStepLog.objects.get(run=run).event == "sent"
    assert OutboundMessage.objects.get(persona=persona).body == "Hi Ana!"


def test_wait_sleeps_as_a_scheduled_run_and_wakes_with_the_clock():
    persona = PersonaFactory()
    definition = {
        "initial_state": "pause",
        "states": [
            {
                "name": "pause",
                "type": "wait",
                "properties": {"amount": 2, "unit": "hours"},
                "transitions": [{"event": "next", "next": "tag"}],
            },
            {
                "name": "tag",
                "type": "persona-update",
                "properties": {"set": [{"key": "woke", "value": "yes"}]},
                "transitions": [{"event": "next"}],
            },
        ],
    }
    run = _run(_flow(definition), persona)
    assert run.status == "waiting" and run.wake_at is not None
    now = dt.datetime.now(dt.UTC)
    assert engine.resume_due(now=now + dt.timedelta(hours=1)) == 0
    assert engine.resume_due(now=now + dt.timedelta(hours=3)) == 1
    run.refresh_from_db()
    persona.refresh_from_db()
    assert run.status == "completed" and persona.attributes["woke"] == "yes"


def test_a_loop_ends_with_a_clear_failure():
    definition = {
        "initial_state": "a",
        "states": [
            {
                "name": "a",
                "type": "split-based-on",
                "properties": {
                    "input": "x",
                    "conditions": [{"operator": "equal_to", "value": "x"}],
                },
                "transitions": [{"event": "noMatch"}, {"event": "match_1", "next": "a"}],
            }
        ],
    }
    run = _run(_flow(definition), PersonaFactory())
    assert run.status == "failed" and "loops" in run.error


def test_a_template_error_fails_the_step_with_a_readable_message():
    definition = _one(
        "split-based-on",
        {
            # passes the check when saved; fails only when it runs (text against a number)
            "input": "{% if persona.first_name > 5 %}big{% endif %}",
            "conditions": [{"operator": "is_empty"}],
        },
        ["noMatch", "match_1"],
    )
    run = _run(_flow(definition), PersonaFactory())
    log = FlowStepLog.objects.get(run=run)
    assert log.event == "failed" and "not supported between" in log.error
    assert "^" not in log.error and "\n" not in log.error  # plain words, not a parser dump
    assert run.status == "failed"


def test_templates_cannot_loop_forever_or_reach_settings():
    huge = "{% for i in (1..1000) %}{% for j in (1..1000) %}x{% endfor %}{% endfor %}"
    with pytest.raises(engine.TemplateError):
        engine.render(huge, {})
    assert engine.render("{{ settings.SECRET_KEY }}{{ persona.__class__ }}", {}) == ""
    for attack in ("{% include '/etc/passwd' %}", "{% render 'config/settings.py' %}"):
        with pytest.raises(engine.TemplateError):
            engine.render(attack, {})
    with pytest.raises(engine.TemplateError):
        engine.render("{{ 'x' | append: 'y' | nosuch }}", {})


def test_hidden_erased_and_merged_personas_are_never_enrolled_and_a_run_stops():
    flow = _flow(_one("wait", {"amount": 1, "unit": "minutes"}, ["next"]))
    hidden, merged = PersonaFactory(hidden=True), PersonaFactory(status="merged")
    assert engine.enroll(flow, [hidden.pk, merged.pk]) == []
    persona = PersonaFactory(phone="+12025550109")
    run = _run(flow, persona)
    assert run.status == "waiting"
    privacy.erase(persona, actor=Actor.system(), via="staff")
    run.refresh_from_db()
    assert run.status == "stopped"


def test_signup_form_trigger_enrols_new_signups_once(django_capture_on_commit_callbacks):
    form = SignupFormFactory()
    definition = _one("persona-update", {"set": [{"key": "vip_status", "value": "true"}]}, ["next"])
    _flow(
        definition,
        trigger={"type": "persona_created", "source": "signup_form", "signup_form_id": form.pk},
        reentry="once",
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = changes.create(
            Changeset(fields={"first_name": "New", "signup_form_id": form.pk}),
            Actor.customer("signup"),
            entry_source="signup_form",
        )
    persona = Persona.objects.get(pk=result.persona.pk)
    assert persona.attributes.get("vip_status") == "true"
    with django_capture_on_commit_callbacks(execute=True):
        changes.create(Changeset(fields={"first_name": "Staff-made"}), Actor.system())
    assert FlowRun.objects.count() == 1


def test_consent_and_attribute_triggers(django_capture_on_commit_callbacks):
    definition = _one("persona-update", {"set": [{"key": "seen", "value": "yes"}]}, ["next"])
    _flow(definition, trigger={"type": "consent_changed", "channel": "email", "state": "opted_out"})
    _flow(
        _one("persona-update", {"set": [{"key": "tier_seen", "value": "1"}]}, ["next"]),
        trigger={"type": "attribute_changed", "key": "tier", "value": "gold"},
    )
    persona = PersonaFactory(email_consent="opted_in")
    with django_capture_on_commit_callbacks(execute=True):
        changes.apply(
            persona, Changeset(consents=[ConsentOp("email", ConsentAction.OPT_OUT)]), Actor.system()
        )
    with django_capture_on_commit_callbacks(execute=True):
        changes.apply(persona, Changeset(set=[changes.AttributeOp("tier", "gold")]), Actor.system())
    persona.refresh_from_db()
    assert persona.attributes["seen"] == "yes" and persona.attributes["tier_seen"] == "1"


def test_runs_keep_the_version_they_started_on():
    flow = _flow(_one("wait", {"amount": 1, "unit": "minutes"}, ["next"]))
    run = _run(flow, PersonaFactory())
    flow.definition["states"][0]["properties"]["amount"] = 5
    flow.save()
    services.publish(flow, user=None)
    run.refresh_from_db()
    assert run.version.number == 1 and flow.versions.count() == 2


def test_test_run_shows_steps_and_changes_and_writes_nothing():
    persona = PersonaFactory(phone="+12025550101", attributes={"temp_flag": "x"})
    flow = Flow.objects.create(name="Draft", definition=DESIGN_EXAMPLE, trigger={"type": "manual"})
    audit_before = AuditEvent.objects.count()
    steps, outcome = engine.test_run(flow, persona)
    assert [s.event for s in steps] == ["next", "profileFound", "profileUpdated"]
    assert steps[0].changes["attr:vip_status"]["after"] == "true"
    assert steps[0].changes["consent:voice"]["after"] == "opted_out"
    assert "attr:temp_flag" in steps[0].changes
    assert outcome == "completed"
    persona.refresh_from_db()
    assert persona.attributes == {"temp_flag": "x"}
    assert AuditEvent.objects.count() == audit_before and not FlowRun.objects.exists()


def test_the_test_run_drawer_lists_a_steps_inputs_by_name(client):
    persona = PersonaFactory(phone="+12025550101")
    flow = Flow.objects.create(name="Draft", definition=DESIGN_EXAMPLE, trigger={"type": "manual"})
    client.force_login(make_user("Marketing"))
    url = reverse("flows:test", args=[flow.pk])
    body = client.get(url, {"persona": persona.pk}).content.decode()
    assert "Looked for: “+12025550101”" in body
    assert "{&#x27;" not in body and "&quot;" not in body  # never Python's or JSON text


def test_validation_messages_name_the_step():
    bad = {
        "initial_state": "a",
        "states": [
            {
                "name": "a",
                "type": "persona-update",
                "properties": {"force_opt_out": ["fax"]},
                "transitions": [{"event": "next", "next": "ghost"}],
            },
            {"name": "a", "type": "wait", "properties": {}, "transitions": []},
            {"name": "b", "type": "teleport", "properties": {}, "transitions": []},
            {"name": "c", "type": "wait", "properties": {"amount": 0}, "transitions": []},
        ],
    }
    problems = validate(bad)
    assert "Step “a”: unknown opt-out channel “fax”." in problems
    assert "Step “a”: two steps have this name." in problems
    assert "Step “b”: unknown type “teleport”." in problems
    assert "Step “a”: “next” goes to a missing step “ghost”." in problems
    assert any("Step “c”" in p for p in problems)
    unreachable = copy.deepcopy(DESIGN_EXAMPLE)
    unreachable["states"][0]["transitions"] = [{"event": "next"}]
    assert validate(unreachable) == [
        "Step “look_up_profile_1”: no transition leads to it (unreachable).",
        "Step “update_traits”: no transition leads to it (unreachable).",
    ]


def test_json_export_import_round_trip_and_commands(tmp_path, capsys):
    flow = _flow(DESIGN_EXAMPLE)
    text = services.export_json(flow)
    copy_flow = services.import_json(text, user=None)
    assert copy_flow.definition == flow.definition and copy_flow.trigger == flow.trigger
    assert services.export_json(copy_flow).replace(copy_flow.name, flow.name) == text
    path = tmp_path / "f.json"
    call_command("flow_export", str(flow.pk), "--output", str(path))
    call_command("flow_import", str(path))
    assert Flow.objects.filter(definition=DESIGN_EXAMPLE).count() == 3
    path.write_text(json.dumps(DESIGN_EXAMPLE))  # a bare Studio definition imports too
    call_command("flow_import", str(path))


_names = st.lists(
    st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=5, unique=True
)


@hsettings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=_names, data=st.data())
def test_generated_valid_definitions_round_trip_through_json(names, data):
    states = []
    for i, name in enumerate(names):
        target = names[i + 1] if i + 1 < len(names) else None
        states.append(
            {
                "name": name,
                "type": "persona-update",
                "properties": {
                    "set": [
                        {
                            "key": data.draw(st.sampled_from(["a", "b"])),
                            "value": data.draw(
                                # NUL and lone surrogates are refused in definitions
                                # (see the test below): valid text is everything else.
                                st.text(
                                    st.characters(
                                        exclude_characters="\x00", exclude_categories=["Cs"]
                                    ),
                                    max_size=5,
                                )
                            ),
                        }
                    ]
                },
                "transitions": [{"event": "next", **({"next": target} if target else {})}],
            }
        )
    definition = {"description": "", "initial_state": names[0], "states": states}
    assert validate(definition) == []
    Flow.objects.all().delete()
    flow = Flow.objects.create(name="G", definition=definition, trigger={"type": "manual"})
    again = services.import_json(services.export_json(flow), user=None)
    assert again.definition == definition


@pytest.mark.parametrize(
    "bad, message",
    [("\\u0000", "NUL character"), ("\\ud800", "unpaired surrogate"), ("\\udc00x", "surrogate")],
)
def test_imported_text_that_cannot_be_stored_is_refused_with_a_message(bad, message):
    """json.loads turns these escapes into text PostgreSQL cannot store (NUL) or that is not
    Unicode at all (a lone surrogate): the import says so instead of failing on save."""
    for where in ("steps", "name", "trigger"):
        definition = copy.deepcopy(DESIGN_EXAMPLE)
        data = {"name": "Imported", "definition": definition, "trigger": {"type": "manual"}}
        text = json.dumps(data)
        marker = {"steps": '"post purchase"', "name": '"Imported"', "trigger": '"manual"'}[where]
        assert marker in text
        text = text.replace(marker, f'"x{bad}"', 1)
        with pytest.raises(ValidationError, match=message):
            services.import_json(text, user=None)
    assert not Flow.objects.exists()


def test_flow_permissions(client):
    flow = _flow(DESIGN_EXAMPLE)
    from django.urls import reverse

    client.force_login(make_user("Staff"))
    assert client.get(reverse("flows:list")).status_code == 403
    client.force_login(make_user("Analyst"))
    page = client.get(reverse("flows:detail", args=[flow.pk]))
    assert page.status_code == 200
    # A viewer sees the diagram's steps but gets no links: none to edit, none to nowhere.
    html = page.content.decode()
    assert 'class="node-name"' in html
    assert "/steps/" not in html and 'href="#step-' not in html
    assert client.post(reverse("flows:publish", args=[flow.pk])).status_code == 403
    client.force_login(make_user("Marketing"))
    assert client.post(reverse("flows:pause", args=[flow.pk])).status_code == 302
    flow.refresh_from_db()
    assert flow.status == "paused"


def test_runs_of_a_blocklisted_persona_are_not_listed_to_staff(client):
    from django.urls import reverse

    flow = _flow(_one("wait", {"amount": 1, "unit": "days"}, ["next"]))
    hidden = PersonaFactory(first_name="Hiddenname")
    _run(flow, hidden)
    Persona.objects.filter(pk=hidden.pk).update(hidden=True)
    client.force_login(make_user("Owner"))
    for url in (reverse("flows:detail", args=[flow.pk]), reverse("flows:runs", args=[flow.pk])):
        assert "Hiddenname" not in client.get(url).content.decode()
    run = FlowRun.objects.get(persona=hidden)
    assert client.get(reverse("flows:run", args=[run.pk])).status_code == 404


def test_the_step_log_shows_each_step_in_words_and_how_long_it_took(client):
    flow = _flow(DESIGN_EXAMPLE)
    run = _run(flow, PersonaFactory(phone="+12025550101"))
    client.force_login(make_user("Marketing"))
    body = client.get(reverse("flows:run", args=[run.pk])).content.decode()
    assert "Force voice opt-out" in body and "Voice consent: Never asked → Opted out" in body
    assert "vip_status: absent → true (added false, then set true)" in body
    assert "None" not in body and "&#x27;" not in body and "&quot;" not in body
    assert re.search(r"took \d+ ms", body)


def test_flow_list_is_in_name_order(client):
    """The run counts make the list a GROUP BY query, where Django drops the model's default
    ordering: the view orders it itself."""
    from django.urls import reverse

    for name in ("Winback", "Birthday treat", "Welcome series"):
        Flow.objects.create(name=name, definition=DESIGN_EXAMPLE, trigger={"type": "manual"})
    client.force_login(make_user("Marketing"))
    html = client.get(reverse("flows:list")).content.decode()
    names = ["Birthday treat", "Welcome series", "Winback"]
    assert [html.index(n) for n in names] == sorted(html.index(n) for n in names)


def test_diagram_fits_its_steps_without_a_blank_band_below():
    from flows.diagram import BOX_H, MARGIN, layout

    drawn = layout(DESIGN_EXAMPLE)
    lowest = max(node.y for node in drawn["nodes"]) + BOX_H
    assert drawn["height"] == lowest + MARGIN
    assert layout({"states": []})["height"] == MARGIN * 2


def test_step_drawer_deletes_a_step_and_moves_the_start(client):
    from django.urls import reverse

    flow = _flow(copy.deepcopy(DESIGN_EXAMPLE))
    client.force_login(make_user("Marketing"))
    first = reverse("flows:step_edit", args=[flow.pk, "mark_vip"])
    assert "Make it the first step" not in client.get(first).content.decode()  # it already is
    other = reverse("flows:step_edit", args=[flow.pk, "look_up_profile_1"])
    assert "Make it the first step" in client.get(other).content.decode()
    client.post(reverse("flows:step_first", args=[flow.pk, "look_up_profile_1"]), {"first": "1"})
    flow.refresh_from_db()
    assert flow.definition["initial_state"] == "look_up_profile_1"
    # Without JavaScript the button asks first (htmx's confirm dialog sends "confirmed").
    delete = reverse("flows:step_delete", args=[flow.pk, "look_up_profile_1"])
    asked = client.post(delete, {"delete": "1"}).content.decode()
    assert "Yes, delete the step" in asked and 'name="confirmed"' in asked
    flow.refresh_from_db()
    assert len(flow.definition["states"]) == 3
    client.post(delete, {"delete": "1", "confirmed": "1"})
    flow.refresh_from_db()
    assert [s["name"] for s in flow.definition["states"]] == ["mark_vip", "update_traits"]
    assert flow.definition["states"][0]["transitions"] == [{"event": "next"}]  # now ends there
    assert flow.definition["initial_state"] == "mark_vip"


def test_steps_of_an_archived_flow_are_read_only_with_a_message_not_an_error(client):
    from django.urls import reverse

    flow = _flow(copy.deepcopy(DESIGN_EXAMPLE))
    Flow.objects.filter(pk=flow.pk).update(status="archived")
    client.force_login(make_user("Marketing"))
    url = reverse("flows:step_edit", args=[flow.pk, "mark_vip"])
    page = client.get(url).content.decode()
    assert "can be read but not changed" in page and "Delete step" not in page
    for target, data in (
        (
            reverse("flows:step_delete", args=[flow.pk, "mark_vip"]),
            {"delete": "1", "confirmed": "1"},
        ),
        (reverse("flows:step_first", args=[flow.pk, "mark_vip"]), {"first": "1"}),
        (url, {"name": "renamed", "set": "a = b"}),
    ):
        response = client.post(target, data)
        assert response.status_code == 200
        assert "An archived flow cannot be edited." in response.content.decode(), data
    flow.refresh_from_db()
    assert flow.definition == DESIGN_EXAMPLE
