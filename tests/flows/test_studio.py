"""Studio flow definitions in and out (flows/studio.py): pure conversions, no database."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows import definition as flow_definition
from flows import examples
from flows.definition import CHANNELS, SPLIT_OPERATORS, STEP_TYPES, events_for, validate
from flows.studio import (
    CONTACT_ADDRESS,
    DEFAULT_FLAGS,
    NEW_OPERATORS,
    NEW_STEP_TYPES,
    StudioError,
    from_studio,
    new_features,
    to_studio,
)

FIXTURES = Path(__file__).parent / "studio"
IMPORTABLE = ["studio_vip_reply", "studio_offer_then_tag", "design_example"]

# What flows.definition does not know yet; a converted flow may use it. The only problems
# validate() may report for a converted flow are these, until they are wired in.
KNOWN_GAPS = {"step_types": set(NEW_STEP_TYPES), "operators": set(NEW_OPERATORS)}


def load(name: str) -> dict:
    if name == "design_example":  # the app's own example, kept once in flows/examples
        return examples.load(name)
    return json.loads((FIXTURES / f"{name}.json").read_text())


def gap_problems(definition: dict) -> set[str]:
    """The exact messages validate() gives for the known gaps in this definition (those that
    flows.definition has not closed yet)."""
    expected = set()
    for state in definition["states"]:
        kind = state["type"]
        if kind in KNOWN_GAPS["step_types"] and kind not in flow_definition.STEP_TYPES:
            expected.add(f"Step “{state['name']}”: unknown type “{kind}”.")
        if kind == "split-based-on":
            for i, cond in enumerate(state["properties"]["conditions"], start=1):
                op = cond["operator"]
                if op in KNOWN_GAPS["operators"] and op not in flow_definition.SPLIT_OPERATORS:
                    expected.add(f"Step “{state['name']}”: condition {i} has an unknown operator.")
    return expected


@pytest.fixture
def gaps_wired(monkeypatch):
    """flows.definition as it will be once the new step type and operators are added."""
    for kind, spec in NEW_STEP_TYPES.items():
        monkeypatch.setitem(flow_definition.STEP_TYPES, kind, spec)
    for op, label in NEW_OPERATORS.items():
        monkeypatch.setitem(flow_definition.SPLIT_OPERATORS, op, label)


def refusal(document: dict) -> list[str]:
    with pytest.raises(StudioError) as exc:
        from_studio(document)
    return exc.value.messages


def vip_reply_state(definition: dict, name: str) -> dict:
    return next(s for s in definition["states"] if s["name"] == name)


# ---------------------------------------------------------------------------------------------
# Fixtures: round trips and validation


@pytest.mark.parametrize("name", IMPORTABLE)
def test_every_importable_fixture_is_written_back_exactly_as_it_came(name):
    document = load(name)
    result = from_studio(document)
    assert to_studio(**result.as_export_args()) == document


@pytest.mark.parametrize("name", IMPORTABLE)
def test_importing_never_changes_the_document_it_reads(name):
    document = load(name)
    before = copy.deepcopy(document)
    from_studio(document)
    assert document == before


@pytest.mark.parametrize("name", IMPORTABLE)
def test_a_converted_fixture_has_no_problems_but_the_known_gaps(name):
    result = from_studio(load(name))
    assert set(validate(result.definition)) == gap_problems(result.definition)


@pytest.mark.parametrize("name", IMPORTABLE)
def test_a_converted_fixture_is_valid_once_the_gaps_are_wired(name, gaps_wired):
    assert validate(from_studio(load(name)).definition) == []


def test_the_studio_fixture_uses_exactly_the_expected_new_features():
    result = from_studio(load("studio_vip_reply"))
    assert new_features(result.definition) == ["not_in_list", "set-variables", "starts_with"]


def test_the_design_example_imports_unchanged_and_says_nothing_about_a_trigger():
    document = load("design_example")
    result = from_studio(document)
    assert result.definition == document
    assert (result.trigger, result.studio_trigger, result.flags) == (None, None, None)
    assert result.notes == []


def test_the_design_example_goes_to_studio_and_back_unchanged():
    document = load("design_example")
    studio = to_studio(definition=document, trigger={"type": "manual"}, flags=DEFAULT_FLAGS)
    start = studio["states"][0]
    assert (start["type"], studio["initial_state"]) == ("trigger", start["name"])
    assert {"event": "incomingRequest", "next": "mark_vip"} in start["transitions"]
    assert studio["flags"] == {"allow_concurrent_calls": True}
    back = from_studio(studio)
    assert back.definition == document
    assert back.trigger == {"type": "manual"}


def test_an_http_request_widget_is_refused_by_name_with_every_other_unsupported_widget():
    messages = refusal(load("studio_http_request"))
    assert messages == [
        "Step “http_1” (Make HTTP Request) can't run here: it calls another web service, and "
        "flows here only update personas and send messages.",
        "Step “format_status” (Run Function) can't run here: it runs code on Twilio "
        "Functions, which is not available.",
    ]


# ---------------------------------------------------------------------------------------------
# Issue example 8: a real Studio export is accepted


def test_the_studio_trigger_state_becomes_our_trigger_and_first_step():
    result = from_studio(load("studio_vip_reply"))
    assert result.trigger == {"type": "inbound_text"}
    assert result.definition["initial_state"] == "save_reply"
    assert all(s["type"] != "trigger" for s in result.definition["states"])
    assert result.studio_trigger == load("studio_vip_reply")["states"][0]
    assert not any("trigger" in p for p in validate(result.definition))


def test_an_api_request_start_becomes_a_manual_trigger():
    result = from_studio(load("studio_offer_then_tag"))
    assert result.trigger == {"type": "manual"}
    assert result.definition["initial_state"] == "send_offer"


def test_conditions_inside_match_transitions_become_our_numbered_conditions():
    split = vip_reply_state(from_studio(load("studio_vip_reply")).definition, "check_reply")
    assert split["properties"]["conditions"] == [
        {"operator": "in_list", "value": "yes,y,ok"},
        {"operator": "starts_with", "value": "vip", "studio": {"friendly_name": "Asked for VIP"}},
        {"operator": "is_empty", "value": "Is Blank"},
    ]
    assert split["transitions"] == [
        {"next": "send_help", "event": "noMatch"},
        {"next": "check_points", "event": "match_1"},
        {"next": "send_vip", "event": "match_2"},
        {"event": "match_3"},
    ]
    assert [t["event"] for t in split["transitions"]] == events_for(split)


def test_a_send_message_with_studio_to_from_and_body_becomes_a_text():
    result = from_studio(load("studio_vip_reply"))
    send = vip_reply_state(result.definition, "send_thanks")
    assert send["properties"] == {
        "channel": "text",
        "offset": {"x": -300, "y": 960},
        "body": "Thanks {{trigger.persona.first_name}}! You're on the list.",
        "studio": {
            "service": "{{trigger.message.InstanceSid}}",
            "channel": "{{trigger.message.ChannelSid}}",
        },
    }
    assert send["transitions"] == [{"event": "sent"}, {"event": "suppressed"}, {"event": "failed"}]
    vip = vip_reply_state(result.definition, "send_vip")
    assert vip["properties"]["studio"]["from"] == "+15005550006"
    assert any("send_vip" in n and "media is not sent" in n for n in result.notes)


def test_studio_values_a_run_does_not_provide_are_named_in_a_note():
    assert not any("not provided here" in n for n in from_studio(load("studio_vip_reply")).notes)
    document = studio_flow(send(body="Code {{flow.data.code}} for {{contact.channel.address}}"))
    assert from_studio(document).notes[-1] == (
        "These Studio values are not provided here and render empty: "
        "contact.channel.address (in step_1); flow.data.code (in step_1)."
    )


def test_set_variables_keeps_studios_own_shape():
    result = from_studio(load("studio_vip_reply"))
    state = vip_reply_state(result.definition, "save_reply")
    assert state == load("studio_vip_reply")["states"][1]


# ---------------------------------------------------------------------------------------------
# Decisions, one case each


def studio_flow(*states: dict, start: str = "step_1", event: str = "incomingRequest") -> dict:
    trigger = {
        "name": "Trigger",
        "type": "trigger",
        "transitions": [{"event": event, "next": start}],
        "properties": {"offset": {"x": 0, "y": 0}},
    }
    return {"description": "t", "states": [trigger, *states], "initial_state": "Trigger"}


def split(*matches: list[dict], input_: str = "{{persona.attributes.tier}}") -> dict:
    return {
        "name": "step_1",
        "type": "split-based-on",
        "transitions": [
            {"event": "noMatch"},
            *[{"event": "match", "conditions": conds} for conds in matches],
        ],
        "properties": {"input": input_, "offset": {"x": 0, "y": 200}},
    }


def condition(kind: str, value: str = "x", *, arguments: list | None = None) -> dict:
    return {
        "friendly_name": f"If value {kind} {value}",
        "arguments": arguments or ["{{persona.attributes.tier}}"],
        "type": kind,
        "value": value,
    }


def send(**props) -> dict:
    return {
        "name": "step_1",
        "type": "send-message",
        "transitions": props.pop("transitions", [{"event": "sent"}, {"event": "failed"}]),
        "properties": {"body": "Hi", **props},
    }


def test_a_match_transition_with_two_conditions_is_refused_naming_the_step():
    document = studio_flow(split([condition("equal_to", "a"), condition("contains", "b")]))
    assert refusal(document) == [
        "Step “step_1” (Split Based On…): a “match” transition has 2 conditions; here each "
        "branch tests exactly one: split it into one Split step per condition."
    ]


def test_date_and_time_conditions_are_refused_naming_the_step_and_the_type():
    document = studio_flow(split([condition("is_before_date", "2025-01-01")]))
    (message,) = refusal(document)
    assert message.startswith("Step “step_1”: the condition “If value is_before_date")
    assert "(is_before_date) can't be tested here" in message


def test_an_unknown_condition_type_is_refused():
    (message,) = refusal(studio_flow(split([condition("is_between", "1")])))
    assert "unknown type “is_between”" in message


@pytest.mark.parametrize(
    ("kind", "operator"),
    [
        ("equal_to", "equal_to"),
        ("not_equal_to", "not_equal_to"),
        ("matches_any_of", "in_list"),
        ("does_not_match_any_of", "not_in_list"),
        ("is_blank", "is_empty"),
        ("is_not_blank", "is_not_empty"),
        ("contains", "contains"),
        ("does_not_contain", "not_contains"),
        ("starts_with", "starts_with"),
        ("does_not_start_with", "not_starts_with"),
        ("regex", "regex"),
        ("less_than", "less_than"),
        ("greater_than", "greater_than"),
    ],
)
def test_each_studio_condition_type_maps_to_one_operator_and_back(kind, operator):
    document = studio_flow(split([condition(kind, "y")]))
    result = from_studio(document)
    (cond,) = result.definition["states"][0]["properties"]["conditions"]
    assert cond == {"operator": operator, "value": "y"}
    assert operator in SPLIT_OPERATORS or operator in NEW_OPERATORS
    assert to_studio(**result.as_export_args()) == document


def test_a_list_of_values_is_joined_for_in_list_and_split_again_on_export():
    document = studio_flow(split([{**condition("matches_any_of"), "value": ["gold", "silver"]}]))
    result = from_studio(document)
    (cond,) = result.definition["states"][0]["properties"]["conditions"]
    assert (cond["operator"], cond["value"]) == ("in_list", "gold,silver")
    assert to_studio(**result.as_export_args()) == document


def test_arguments_other_than_the_input_are_kept_and_noted():
    document = studio_flow(split([condition("equal_to", arguments=["{{widgets.x.y}}"])]))
    result = from_studio(document)
    assert any("condition 1 names other arguments" in n for n in result.notes)
    assert to_studio(**result.as_export_args()) == document


def test_a_condition_without_friendly_name_stays_without_one():
    cond = condition("equal_to")
    del cond["friendly_name"]
    document = studio_flow(split([cond]))
    assert to_studio(**from_studio(document).as_export_args()) == document


def test_another_to_is_kept_as_our_to_and_noted():
    document = studio_flow(send(to="+15005550009", **{"from": "{{flow.channel.address}}"}))
    result = from_studio(document)
    props = result.definition["states"][0]["properties"]
    assert props["to"] == "+15005550009"
    assert "from" not in props and "studio" not in props
    assert any("kept as the step's “to”" in n for n in result.notes)
    assert to_studio(**result.as_export_args()) == document


def test_a_send_without_to_or_from_is_written_back_without_them():
    document = studio_flow(send())
    result = from_studio(document)
    props = result.definition["states"][0]["properties"]
    assert props == {"channel": "text", "body": "Hi", "studio": {"absent": ["to", "from"]}}
    assert to_studio(**result.as_export_args()) == document


def test_an_unconnected_delivered_transition_is_kept_aside_and_put_back_in_place():
    transitions = [{"event": "sent"}, {"event": "delivered"}, {"event": "failed"}]
    document = studio_flow(send(to=CONTACT_ADDRESS, transitions=transitions))
    result = from_studio(document)
    state = result.definition["states"][0]
    assert [t["event"] for t in state["transitions"]] == ["sent", "suppressed", "failed"]
    assert state["properties"]["studio"]["transitions"] == [[1, {"event": "delivered"}]]
    assert to_studio(**result.as_export_args()) == document


def test_a_connected_delivered_transition_is_refused():
    transitions = [{"event": "sent"}, {"event": "delivered", "next": "step_1"}]
    (message,) = refusal(studio_flow(send(transitions=transitions)))
    assert message.startswith("Step “step_1”: the “delivered” transition to “step_1”")
    assert "delivery receipts are not followed here" in message


def test_a_suppressed_transition_that_leads_somewhere_is_exported_as_it_is():
    definition = {
        "description": "d",
        "initial_state": "hello",
        "states": [
            {
                "name": "hello",
                "type": "send-message",
                "properties": {"channel": "text", "body": "Hi"},
                "transitions": [
                    {"event": "sent"},
                    {"event": "suppressed", "next": "mail"},
                    {"event": "failed"},
                ],
            },
            {
                "name": "mail",
                "type": "send-message",
                "properties": {"channel": "email", "body": "Hi"},
                "transitions": [{"event": "sent"}, {"event": "suppressed"}, {"event": "failed"}],
            },
        ],
    }
    studio = to_studio(definition=definition, trigger={"type": "manual"})
    assert studio["states"][1]["transitions"][1] == {"event": "suppressed", "next": "mail"}
    assert studio["states"][2] == definition["states"][1]  # email has no Studio form
    assert from_studio(studio).definition == definition


@pytest.mark.parametrize("kind", ["say-play", "send-and-wait-for-reply", "run-subflow"])
def test_widgets_we_do_not_run_are_refused_with_studios_own_name(kind):
    widget = {"name": "step_1", "type": kind, "transitions": [], "properties": {}}
    (message,) = refusal(studio_flow(widget))
    assert message.startswith("Step “step_1” (") and "can't run here" in message


def test_two_starts_leading_to_different_steps_are_refused():
    document = studio_flow(send(), {**send(), "name": "step_2"})
    document["states"][0]["transitions"].append({"event": "incomingMessage", "next": "step_2"})
    (message,) = refusal(document)
    assert "“step_1”" in message and "“step_2”" in message and "one start" in message


def test_two_starts_leading_to_the_same_step_prefer_the_api_request_and_say_so():
    document = studio_flow(send())
    document["states"][0]["transitions"].append({"event": "incomingMessage", "next": "step_1"})
    result = from_studio(document)
    assert result.trigger == {"type": "manual"}
    assert any("incoming messages also start this flow" in n for n in result.notes)
    assert to_studio(**result.as_export_args()) == document


def test_a_connected_incoming_call_is_kept_but_inert():
    document = studio_flow(send())
    document["states"][0]["transitions"].append({"event": "incomingCall", "next": "step_1"})
    result = from_studio(document)
    assert any("“incomingCall” start" in n and "never starts a run" in n for n in result.notes)
    assert to_studio(**result.as_export_args()) == document


def test_a_trigger_with_nothing_connected_starts_at_the_first_step_and_stays_unconnected():
    document = studio_flow(send())
    document["states"][0]["transitions"] = [{"event": "incomingRequest"}]
    result = from_studio(document)
    assert (result.trigger, result.definition["initial_state"]) == ({"type": "manual"}, "step_1")
    assert to_studio(**result.as_export_args()) == document


def test_export_points_the_kept_trigger_at_a_new_first_step():
    document = studio_flow(send(), {**send(), "name": "step_2"})
    args = from_studio(document).as_export_args()
    args["definition"]["initial_state"] = "step_2"
    args["trigger"] = {"type": "inbound_text"}
    start = to_studio(**args)["states"][0]
    assert start["transitions"] == [
        {"event": "incomingRequest"},
        {"event": "incomingMessage", "next": "step_2"},
    ]
    again = from_studio(to_studio(**args))
    assert (again.trigger, again.definition["initial_state"]) == (args["trigger"], "step_2")


def test_a_built_trigger_does_not_take_the_name_of_an_existing_step():
    definition = {
        "initial_state": "Trigger",
        "states": [{"name": "Trigger", "type": "wait", "properties": {}, "transitions": []}],
    }
    studio = to_studio(definition=definition, trigger={"type": "inbound_text"})
    assert studio["initial_state"] == "Trigger_2"
    assert from_studio(studio).definition == definition


def test_something_that_is_not_a_flow_definition_is_refused():
    assert refusal(["not", "a", "flow"]) == [
        "Expected a Studio flow definition: a JSON object with “states”."
    ]


# ---------------------------------------------------------------------------------------------
# Property: internal -> Studio -> internal is the identity for every supported step type

ALL_STEP_TYPES = {**STEP_TYPES, **NEW_STEP_TYPES}
ALL_OPERATORS = [*SPLIT_OPERATORS, *NEW_OPERATORS]
texts = st.text(max_size=12)
templates = st.one_of(texts, st.sampled_from(["{{persona.first_name}}", "{{widgets.a.b}}"]))
keys = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
kv_lists = st.lists(st.fixed_dictionaries({"key": keys, "value": templates}), max_size=3)
offsets = st.fixed_dictionaries({"x": st.integers(-900, 900), "y": st.integers(0, 3000)})


@st.composite
def conditions(draw):
    cond = {"operator": draw(st.sampled_from(ALL_OPERATORS))}
    if draw(st.booleans()):
        cond["value"] = draw(texts)
    studio = {}
    if draw(st.booleans()):
        studio["friendly_name"] = "Label " + draw(texts)
    if draw(st.booleans()):
        studio["arguments"] = draw(st.lists(templates, min_size=2, max_size=2))
    absent = [k for k in ("friendly_name", "arguments") if k not in studio and draw(st.booleans())]
    if absent:
        studio["absent"] = absent
    if cond["operator"] in ("in_list", "not_in_list") and "value" in cond and draw(st.booleans()):
        studio["value_list"] = True
    if studio:
        cond["studio"] = studio
    return cond


@st.composite
def send_properties(draw):
    props = {"channel": draw(st.sampled_from(["text", "email"])), "body": draw(templates)}
    if props["channel"] == "email":
        return props
    studio = {}
    absent = [k for k in ("to", "from") if draw(st.booleans())]
    if "to" not in absent and draw(st.booleans()):
        props["to"] = draw(st.sampled_from(["+15005550009", "{{persona.attributes.manager}}"]))
    if "from" not in absent and draw(st.booleans()):
        studio["from"] = "+1500555" + draw(st.from_regex(r"[0-9]{4}", fullmatch=True))
    for key, value in (
        ("service", "MG" + "0" * 32),
        ("channel", "{{trigger.message.ChannelSid}}"),
        ("media_url", "https://example.com/a.png"),
        ("attributes", '{"campaign": "spring"}'),
    ):
        if draw(st.booleans()):
            studio[key] = value
    if absent:
        studio["absent"] = absent
    if studio:
        props["studio"] = studio
    return props


def properties_for(kind: str):
    return {
        "persona-update": st.fixed_dictionaries(
            {
                "add": kv_lists,
                "set": kv_lists,
                "remove": st.lists(st.fixed_dictionaries({"key": keys}), max_size=2),
                "force_opt_out": st.lists(st.sampled_from(CHANNELS), unique=True),
            }
        ),
        "update-profile-traits": st.fixed_dictionaries(
            {"profile_connect_sid": templates, "traits": kv_lists}
        ),
        "look-up-profile": st.fixed_dictionaries({"identifier": templates}),
        "wait": st.one_of(
            st.fixed_dictionaries(
                {"amount": st.integers(1, 60), "unit": st.sampled_from(["minutes", "days"])}
            ),
            st.fixed_dictionaries({"until_time": st.sampled_from(["09:30", "18:00"])}),
        ),
        "split-based-on": st.fixed_dictionaries(
            {"input": templates, "conditions": st.lists(conditions(), max_size=4)}
        ),
        "send-message": send_properties(),
        "set-variables": st.fixed_dictionaries({"variables": kv_lists}),
    }[kind]


@st.composite
def internal_definitions(draw):
    names = draw(st.lists(keys, min_size=1, max_size=6, unique=True))
    states = []
    for name in names:
        kind = draw(st.sampled_from(sorted(ALL_STEP_TYPES)))
        props = draw(properties_for(kind))
        if draw(st.booleans()):
            props["offset"] = draw(offsets)
        state = {"name": name, "type": kind, "properties": props}
        # One transition per event, in events_for order, as the editor writes them.
        events = list(ALL_STEP_TYPES[kind]["events"])
        if kind == "split-based-on":
            events = events_for(state)
        state["transitions"] = [
            {"event": e, **({"next": n} if (n := draw(st.sampled_from(["", *names]))) else {})}
            for e in events
        ]
        states.append(state)
    return {
        "description": draw(texts),
        "initial_state": draw(st.sampled_from(names)),
        "states": states,
    }


@given(
    definition=internal_definitions(),
    trigger=st.sampled_from([{"type": "manual"}, {"type": "inbound_text"}]),
    flags=st.sampled_from([None, DEFAULT_FLAGS]),
)
def test_internal_to_studio_and_back_is_the_identity(definition, trigger, flags):
    studio = to_studio(definition=definition, trigger=trigger, flags=flags)
    back = from_studio(json.loads(json.dumps(studio)))
    assert back.definition == definition
    assert (back.trigger, back.flags) == (trigger, flags)
    # …and that Studio document goes back to Studio unchanged.
    assert to_studio(**back.as_export_args()) == studio
