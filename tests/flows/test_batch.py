"""Batched flow execution: rounds sharing a transaction, the plain-template fast path."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from liquid.exceptions import LiquidError

from flows import engine, templating
from flows.models import FlowRun, FlowStepLog
from personas.models import AuditEvent, Persona
from personas.services import privacy
from tests.bench import load_bench
from tests.flows.factories import published_flow
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.django_db

BENCH_SHAPE = load_bench("flows").DEFINITION  # the flow bench/flows.py measures


_flow = published_flow


def _enroll(flow, personas) -> list[int]:
    with transaction.atomic():
        return engine.enroll(flow, [p.pk for p in personas])


def test_every_step_of_a_batch_is_logged_applied_and_audited_once():
    personas = [
        PersonaFactory(attributes={"temp_flag": "x"}, points_balance=50 + 100 * (i % 2))
        for i in range(12)
    ]
    versions = {p.pk: p.version for p in personas}
    flow = _flow(BENCH_SHAPE)
    run_ids = _enroll(flow, personas)
    before = timezone.now()
    assert engine.advance_batch(run_ids) == 3 * len(personas)
    for persona, run_id in zip(personas, run_ids, strict=True):
        persona.refresh_from_db()
        run = FlowRun.objects.get(pk=run_id)
        assert run.status == "completed" and run.steps_taken == 3
        assert run.updated_at >= before  # stall detection reads it
        assert persona.attributes == {"vip_status": "true", "segment": f"bench-{run_id}"}
        assert persona.version == versions[persona.pk] + 2  # one per changing step
        logs = list(FlowStepLog.objects.filter(run=run))
        assert [(log.step, log.event, log.next_step) for log in logs] == [
            ("mark_vip", "next", "by_points"),
            (
                "by_points",
                "match_1" if persona.points_balance > 100 else "noMatch",
                "update_traits",
            ),
            ("update_traits", "profileUpdated", ""),
        ]
        assert logs[1].inputs == {"input": persona.points_balance}  # read typed
        assert logs[2].inputs == {
            "profile_connect_sid": str(persona.pk),
            "traits": [{"key": "segment", "value": f"bench-{run_id}"}],
        }
        assert all(log.started_at <= log.finished_at for log in logs)
        assert logs[0].outputs["changes"]["attr:temp_flag"]["after"] is None
        assert run.context["widgets"]["update_traits"] == {"profileConnectSid": str(persona.pk)}
        events = list(AuditEvent.objects.filter(persona=persona, actor_kind="flow").order_by("id"))
        assert [(e.action, e.actor_ref) for e in events] == [
            ("flow: persona update", {"run": run_id, "step": "mark_vip"}),
            ("flow: update profile traits", {"run": run_id, "step": "update_traits"}),
        ]
        assert events[1].changes["attr:segment"]["after"] == f"bench-{run_id}"


def test_a_batch_costs_the_same_queries_whatever_its_size(django_assert_max_num_queries):
    flow = _flow(BENCH_SHAPE)
    small = _enroll(flow, [PersonaFactory(attributes={}) for _ in range(3)])
    large = _enroll(flow, [PersonaFactory(attributes={}) for _ in range(40)])
    with CaptureQueriesContext(connection) as few:
        engine.advance_batch(small)
    with django_assert_max_num_queries(len(few.captured_queries)):
        engine.advance_batch(large)


def test_a_step_sees_the_changes_of_the_steps_before_it_in_the_same_transaction():
    definition = {
        "initial_state": "a",
        "states": [
            {
                "name": "a",
                "type": "persona-update",
                "properties": {"set": [{"key": "colour", "value": "red"}]},
                "transitions": [{"event": "next", "next": "b"}],
            },
            {
                "name": "b",
                "type": "persona-update",
                "properties": {"set": [{"key": "seen", "value": "{{persona.attributes.colour}}"}]},
                "transitions": [{"event": "next", "next": "c"}],
            },
            {
                "name": "c",
                "type": "split-based-on",
                "properties": {
                    "input": "{{persona.attributes.seen}}",
                    "conditions": [{"operator": "equal_to", "value": "red"}],
                },
                "transitions": [{"event": "noMatch"}, {"event": "match_1"}],
            },
        ],
    }
    persona = PersonaFactory(attributes={})
    [run_id] = _enroll(_flow(definition), [persona])
    engine.advance_batch([run_id])
    persona.refresh_from_db()
    assert persona.attributes == {"colour": "red", "seen": "red"}
    assert FlowStepLog.objects.get(run_id=run_id, step="c").event == "match_1"


def test_runs_of_one_batch_updating_the_same_profile_apply_in_turn():
    target = PersonaFactory(attributes={})
    others = [PersonaFactory(attributes={}) for _ in range(3)]
    definition = {
        "initial_state": "mark",
        "states": [
            {
                "name": "mark",
                "type": "persona-update",
                "properties": {"set": [{"key": "marked", "value": "{{flow.run_id}}"}]},
                "transitions": [{"event": "next", "next": "shared"}],
            },
            {
                "name": "shared",
                "type": "update-profile-traits",
                "properties": {
                    "profile_connect_sid": f"PER{target.pk}",
                    "traits": [{"key": "last_run", "value": "{{flow.run_id}}"}],
                },
                "transitions": [{"event": "profileUpdated"}, {"event": "profileNotFound"}],
            },
        ],
    }
    version = target.version
    run_ids = _enroll(_flow(definition), [target, *others])
    engine.advance_batch(run_ids)
    target.refresh_from_db()
    # The target's own run marked it; every run's traits step changed it, one after another:
    # each audit event starts from the value the one before it left.
    events = list(
        AuditEvent.objects.filter(persona=target, actor_ref__step="shared").order_by("id")
    )
    afters = [e.changes["attr:last_run"]["after"] for e in events]
    befores = [e.changes["attr:last_run"]["before"] for e in events]
    assert sorted(afters) == sorted(str(r) for r in run_ids)
    assert befores == [None, *afters[:-1]]
    assert target.attributes == {"marked": str(run_ids[0]), "last_run": afters[-1]}
    assert target.version == version + 1 + len(run_ids)


def test_a_run_that_waits_after_a_step_keeps_that_steps_output_and_resumes():
    definition = {
        "initial_state": "a",
        "states": [
            {
                "name": "a",
                "type": "persona-update",
                "properties": {"set": [{"key": "a", "value": "1"}]},
                "transitions": [{"event": "next", "next": "pause"}],
            },
            {
                "name": "pause",
                "type": "wait",
                "properties": {"amount": 1, "unit": "hours"},
                "transitions": [{"event": "next", "next": "b"}],
            },
            {
                "name": "b",
                "type": "split-based-on",
                "properties": {
                    "input": "{{widgets.a.operations.size}}",
                    "conditions": [{"operator": "equal_to", "value": "1"}],
                },
                "transitions": [{"event": "noMatch"}, {"event": "match_1"}],
            },
        ],
    }
    persona = PersonaFactory(attributes={})
    [run_id] = _enroll(_flow(definition), [persona])
    engine.advance_batch([run_id])
    run = FlowRun.objects.get(pk=run_id)
    assert run.status == "waiting" and run.steps_taken == 1
    assert run.context["_waiting"]["step"] == "pause"
    assert run.context["widgets"]["a"]["operations"][0]["key"] == "a"
    engine.resume_due(now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
    run.refresh_from_db()
    assert run.status == "completed" and "_waiting" not in run.context
    steps = list(FlowStepLog.objects.filter(run=run).values_list("step", "event"))
    assert steps == [("a", "next"), ("pause", "waiting"), ("pause", "next"), ("b", "match_1")]


def test_a_persona_blocklisted_before_its_batch_runs_is_stopped_and_untouched():
    kept, blocked = (
        PersonaFactory(attributes={}),
        PersonaFactory(attributes={}, phone="+12025550188"),
    )
    flow = _flow(BENCH_SHAPE)
    run_ids = _enroll(flow, [kept, blocked])
    privacy.blocklist([privacy.parse_identifier("+12025550188")], reason="test")
    engine.advance_batch(run_ids)
    blocked = Persona.objects.get(pk=blocked.pk)
    assert blocked.attributes == {}
    assert FlowRun.objects.get(pk=run_ids[1]).status == "stopped"
    assert FlowRun.objects.get(pk=run_ids[0]).status == "completed"
    assert not AuditEvent.objects.filter(persona=blocked, actor_kind="flow").exists()


def test_a_batch_longer_than_one_transaction_commits_in_parts(monkeypatch):
    monkeypatch.setattr(engine, "TRANSACTION_STEPS", 4)
    personas = [PersonaFactory(attributes={}) for _ in range(3)]
    run_ids = _enroll(_flow(BENCH_SHAPE), personas)
    assert engine.advance_batch(run_ids) == 9
    assert FlowRun.objects.filter(pk__in=run_ids, status="completed").count() == 3
    assert FlowStepLog.objects.filter(run_id__in=run_ids).count() == 9


# ---------------------------------------------------------------------------------------------
# Plain templates rendered without Liquid give exactly Liquid's result

_names = st.sampled_from(
    ["a", "b", "size", "first", "last", "x_1", "B", "_u", "id"]
    + ["empty", "blank", "nil", "null", "true", "false", "and", "in", "with", "for", "if"]
    + ["not", "contains", "limit", "required", "by", "else", "as", "cols"]
)
_scalars = st.one_of(
    st.text(max_size=8),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.dictionaries(_names, inner, max_size=4), st.lists(inner, max_size=3)
    ),
    max_leaves=12,
)
_contexts = st.dictionaries(_names, _values, max_size=5)
_paths = st.lists(_names, min_size=1, max_size=3).map(".".join)
_spaces = st.sampled_from(["", " ", "  ", "\n", "\t"])
_literals = st.text(alphabet=st.characters(exclude_characters="{}%\x00"), max_size=6)


@st.composite
def _templates(draw):
    parts = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        parts.append(draw(_literals))
        parts.append("{{" + draw(_spaces) + draw(_paths) + draw(_spaces) + "}}")
    parts.append(draw(_literals))
    return "".join(parts)


@hsettings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(template=_templates(), context=_contexts)
def test_plain_templates_render_exactly_as_liquid_does(template, context):
    try:
        expected = templating._ENV.from_string(template).render(**context)
    except LiquidError:
        with pytest.raises(engine.TemplateError):
            engine.render(template, context)
        return
    except UnicodeEncodeError:  # a lone surrogate: Liquid cannot measure its output
        with pytest.raises(UnicodeEncodeError):
            engine.render(template, context)
        return
    assert engine.render(template, context) == expected


def test_the_fast_path_is_taken_for_the_common_shapes_and_not_for_others():
    ctx = {"persona": {"id": "7", "points": 120, "vip": True}, "flow": {"run_id": 3}}
    for text, expected in [
        ("{{persona.id}}", "7"),
        ("bench-{{ flow.run_id }}", "bench-3"),
        ("{{persona.points}} pts", "120 pts"),
    ]:
        parts = templating.simple_parts(text)
        assert parts is not None and templating._render_simple(parts, ctx) == expected
    # Booleans, missing names, filters, tags and literals are left to Liquid.
    assert templating._render_simple(templating.simple_parts("{{persona.vip}}"), ctx) is None
    # A missing value is nil, which renders as nothing (Liquid's rendering of nil).
    assert templating._render_simple(templating.simple_parts("{{persona.nope}}"), ctx) == ""
    for text in ("{{ persona.id | upcase }}", "{% if x %}y{% endif %}", "{{ true }}", "{{a[0]}}"):
        assert templating.simple_parts(text) is None
    assert engine.render("{{persona.vip}}", ctx) == "true"
    assert engine.render("{{persona.id}}\r", ctx) == "7\n"  # as the sandbox's output stream
    assert engine.render("{{ persona.id | prepend: 'PER' }}", ctx) == "PER7"
