"""The editor's typed-form conversions (workbench/node_forms.py): value -> form -> value is the identity, and what
an edited form gives back is what the node schemas accept."""

from __future__ import annotations

from datetime import time

import pytest

from engine.core.nodes import REGISTRY
from engine.core.nodes.condition import ConditionData
from engine.core.nodes.delay import BusinessHours
from engine.core.nodes.send_message import Media
from pages.ui import fields
from workbench.editor import canvas, node_forms
from workbench.editor.node_forms import HoursForm, MediaForm, RuleRow

GROUPS = [
    {"rules": [{"operator": "contains", "value": "sim"},
               {"field": "vars.plano", "operator": "is_empty", "value": None},
               {"field": "contact.custom_data.cidade", "operator": "equals", "value": "{{vars.cidade}}", "x": 1}]},
    {"rules": [{"field": "tags", "operator": "has_tag", "value": "vip"}], "label": "clientes"},
]


# -- condition rules ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, parts", [
    ("last_reply", ("last_reply", "")), ("trigger.message", ("trigger.message", "")), ("tags", ("tags", "")),
    ("contact.name", ("contact.name", "")), ("contact.phone", ("contact.phone", "")),
    ("vars.email", ("vars", "email")), ("contact.custom_data.cidade", ("custom_data", "cidade")),
    ("contact.email", None), ("vars", None), ("", None),
])
def test_split_and_join_field(field, parts):
    assert node_forms.split_field(field) == parts
    if parts is not None:
        assert node_forms.join_field(*parts) == field


def test_join_field_trims_the_name():
    assert node_forms.join_field("vars", " idade ") == "vars.idade"
    assert node_forms.join_field("last_reply", "ignored") == "last_reply"


def test_operators_and_values():
    assert set(node_forms.OPERATORS) >= {"equals", "contains", "regex", "greater", "less", "is_empty", "has_tag"}
    assert [op for op in node_forms.OPERATORS if not node_forms.operator_needs_value(op)] == ["is_empty", "not_empty"]


def test_rule_form_reads_rows_and_gives_back_identical_groups():
    rows = node_forms.rule_form(GROUPS)
    assert rows == [
        [RuleRow("last_reply", "", "contains", "sim"), RuleRow("vars", "plano", "is_empty", ""),
         RuleRow("custom_data", "cidade", "equals", "{{vars.cidade}}")],
        [RuleRow("tags", "", "has_tag", "vip")],
    ]
    assert node_forms.groups_from_rows(rows, GROUPS) == GROUPS


def test_edited_rows_change_only_what_changed_and_validate():
    rows = node_forms.rule_form(GROUPS)
    rows[0][0] = RuleRow("vars", " idade ", "greater", "17")
    rows[0][1] = RuleRow("vars", "plano", "equals", "ouro")
    rows[1][0] = RuleRow("tags", "", "has_tag", "  ")
    groups = node_forms.groups_from_rows(rows, GROUPS)
    assert groups[0]["rules"][:2] == [{"operator": "greater", "value": "17", "field": "vars.idade"},
                                      {"field": "vars.plano", "operator": "equals", "value": "ouro"}]
    assert groups[0]["rules"][2] == GROUPS[0]["rules"][2]  # extra keys the schema ignores stay
    assert groups[1] == {"rules": [{"field": "tags", "operator": "has_tag"}], "label": "clientes"}  # blank: removed
    ConditionData.model_validate({"groups": groups[:1]})


def test_new_rows_are_written_out_in_full():
    assert node_forms.groups_from_rows([[RuleRow("contact.phone", "", "not_empty", "")]], None) == [
        {"rules": [{"field": "contact.phone", "operator": "not_empty"}]}]
    assert node_forms.groups_from_rows([], None) is None


@pytest.mark.parametrize("groups", [
    "x", [1], [{"rules": "x"}], [{"rules": [1]}], [{"rules": [{"field": "contact.email"}]}],
    [{"rules": [{"operator": "starts_with"}]}], [{"rules": [{"value": 3}]}], [{}],
])
def test_shapes_the_rule_form_cannot_show(groups):
    assert node_forms.rule_form(groups) is None


def test_missing_groups_show_as_none():
    assert node_forms.rule_form(None) == []


def test_structural_edits_copy_and_keep_groups_valid():
    groups = [{"rules": [{"field": "last_reply", "operator": "equals", "value": "a"}]}]
    added = node_forms.add_rule(groups, 0)
    assert added[0]["rules"][1] == node_forms.new_rule() and len(groups[0]["rules"]) == 1
    assert node_forms.remove_rule(added, 0, 0) == [{"rules": [node_forms.new_rule()]}]
    assert node_forms.remove_rule(groups, 0, 0) == []  # a group with no rule left goes too
    assert node_forms.add_group(groups) == [*groups, {"rules": [node_forms.new_rule()]}]
    assert node_forms.add_group(None) == [{"rules": [node_forms.new_rule()]}]
    assert canvas.default_data("condition") == {"groups": node_forms.add_group(None)}


# -- business hours -----------------------------------------------------------------------------------------------

def test_hours_form_round_trip_keeps_order_and_absent_keys():
    value = {"days": [4, 0], "end": "17:00", "timezone": "America/Manaus"}
    form = node_forms.hours_form(value)
    assert form == HoursForm(True, [0, 4], time(9, 0), time(17, 0), "America/Manaus")
    assert node_forms.hours_from_form(form, value) == value


def test_hours_form_off_and_on():
    off = node_forms.hours_form(None)
    assert off == HoursForm(False, [0, 1, 2, 3, 4], time(9, 0), time(18, 0))
    assert node_forms.hours_from_form(off, None) is None
    on = HoursForm(True, [5, 1, 1], time(8, 30), time(12, 0))
    value = node_forms.hours_from_form(on, None)
    assert value == {"days": [1, 5], "start": "08:30", "end": "12:00"}
    BusinessHours.model_validate(value)
    assert node_forms.hours_from_form(HoursForm(False, [1], time(8), time(9)), value) is None


def test_hours_edit_and_empty_clock():
    value = {"days": [0], "start": "09:00", "end": "18:00"}
    form = HoursForm(True, [0, 6], time(10, 15), None, None)
    assert node_forms.hours_from_form(form, value) == {"days": [0, 6], "start": "10:15", "end": ""}


@pytest.mark.parametrize("value", ["x", {"days": "seg"}, {"days": [7]}, {"days": [True]}, {"start": "9h"},
                                   {"end": "24:00"}, {"timezone": 3}])
def test_hours_the_form_cannot_show(value):
    assert node_forms.hours_form(value) is None


# -- media --------------------------------------------------------------------------------------------------------

def test_media_round_trip_and_edits():
    value = {"kind": "image", "media_id": "12", "caption": ""}
    form = node_forms.media_form(value)
    assert form == MediaForm("image", "12", "")
    assert node_forms.media_from_form(form, value) == value
    edited = node_forms.media_from_form(MediaForm("document", 7, "Veja {{contact.name}}"), value)
    assert edited == {"kind": "document", "media_id": 7, "caption": "Veja {{contact.name}}"}
    Media.model_validate(edited)
    assert node_forms.media_from_form(MediaForm("image", 3, " "), {"kind": "image", "media_id": 3, "caption": "a"}) \
        == {"kind": "image", "media_id": 3}
    assert node_forms.media_from_form(MediaForm("", 3, "a"), value) is None


def test_media_new_and_none():
    assert node_forms.media_form(None) == MediaForm("", None, "")
    assert node_forms.media_from_form(MediaForm("", None, ""), None) is None
    assert node_forms.media_from_form(MediaForm("audio", 4, ""), None) == {"kind": "audio", "media_id": 4}
    assert node_forms.media_from_form(MediaForm("audio", None, ""), None) == {"kind": "audio"}  # shows "missing"


@pytest.mark.parametrize("value", ["x", {"kind": "sticker", "media_id": 1}, {"kind": "image", "media_id": True},
                                   {"kind": "image", "media_id": 1.5}, {"kind": "image", "caption": 3}])
def test_media_the_form_cannot_show(value):
    assert node_forms.media_form(value) is None


def test_media_options_keep_the_current_id():
    library = [{"id": 5, "name": "b.png"}, {"id": 12, "name": "a.png"}]
    assert node_forms.media_options(library, None) == ([5, 12], {"5": "b.png", "12": "a.png"})
    assert node_forms.media_options(library, "12")[0] == [5, "12"]  # the stored id keeps its type
    assert node_forms.media_options(library, 99)[0] == [99, 5, 12]  # no longer in the library: still offered
    assert node_forms.media_options([], 99) == ([99], {})


# -- new nodes --------------------------------------------------------------------------------------------------

def test_typed_fields_of_new_nodes_round_trip():
    readers = {"groups": (node_forms.rule_form, node_forms.groups_from_rows),
               "business_hours": (node_forms.hours_form, node_forms.hours_from_form),
               "media": (node_forms.media_form, node_forms.media_from_form)}
    checked = 0
    for data in map(canvas.default_data, REGISTRY):
        for name, (read, write) in readers.items():
            if name in data:
                assert write(read(data[name]), data[name]) == data[name]
                checked += 1
    assert checked


# -- fields of a node type's form ---------------------------------------------------------------------------------

def kinds(node_type: str, data: dict | None = None) -> dict[str, str]:
    return {f.name: f.kind for f in node_forms.form_fields(REGISTRY[node_type], data or {})}


def test_field_kinds_come_from_the_schema_and_the_hints():
    assert kinds("send_message") == {"text": "long_text", "media": "media", "typing": "bool"}
    assert kinds("trigger") == {"kind": "literal", "mode": "literal", "words": "list_str", "tag": "text",
                                "priority": "int", "restart_running": "bool", "instance_ids": "pick_many",
                                "entry_link_ids": "pick_many"}
    assert kinds("send_choices")["options"] == "options" and kinds("wait_reply")["timeout_s"] == "float"
    assert kinds("route")["team_id"] == "pick_one" and kinds("go_to_funnel") == {"funnel_id": "pick_one"}
    assert kinds("condition") == {"groups": "rule_groups"} and kinds("delay")["business_hours"] == "business_hours"
    # a value the typed editor cannot show is edited as JSON
    assert kinds("condition", {"groups": [{"rules": [{"field": "contact.email"}]}]}) == {"groups": "json"}


def test_form_fields_carry_labels_values_and_choices():
    [kind, mode, *_] = node_forms.form_fields(REGISTRY["trigger"], {"kind": "tag_added"})
    assert (kind.label, kind.value, kind.optional, kind.template) == ("Quando começa", "tag_added", False, False)
    assert kind.choices == ("first_message", "keyword", "any_message", "tag_added", "manual", "entry_link")
    assert kind.choice_labels["manual"] == "Início manual"
    assert mode.value == "contains"  # the schema's default when the draft leaves it out
    text = node_forms.form_fields(REGISTRY["send_message"], {})[0]
    assert (text.template, text.optional, text.value) == (True, True, None)
    assert node_forms.form_fields(REGISTRY["route"], {})[0].source == "teams"


def test_every_kind_is_drawn_and_every_hint_is_known():
    assert set(fields.KINDS) == set(node_forms.FIELD_KINDS)
    for spec in REGISTRY.values():
        assert {f.kind for f in node_forms.form_fields(spec, spec.default_data())} <= set(node_forms.FIELD_KINDS)
        for hint in spec.hints.values():
            assert hint.kind in (None, *node_forms.FIELD_KINDS) and hint.source in (None, *fields.SOURCES)


def test_an_untouched_form_applies_to_identical_data():
    data = {"prompt": "Oi?", "options": [{"key": "a", "label": "A"}], "extra": 1}
    form = node_forms.form_fields(REGISTRY["send_choices"], data)
    values = {f.name: f.value for f in form}
    assert node_forms.apply_form(data, form, values) == data
    values.update(prompt=None, retry_prompt="De novo?", max_retries=2)
    assert node_forms.apply_form(data, form, values) == {**data, "prompt": "", "retry_prompt": "De novo?"}


def test_text_conversions():
    options = [{"key": "a", "label": "A"}]
    assert node_forms.options_value(node_forms.options_text(options)) == options
    assert node_forms.str_lines_value(" a \n\n b") == ["a", "b"] and node_forms.int_lines_value("", "x") is None
    assert node_forms.json_value(node_forms.json_text({"a": [1]}), "x") == {"a": [1]}
    assert node_forms.pick_options({1: "Vendas"}, [1, 7]) == ([1, 7], [1, 7])  # 7 left the workspace: kept


@pytest.mark.parametrize("convert", [lambda: node_forms.options_value("sem barra"),
                                     lambda: node_forms.int_lines_value("1 dois", "Ids"),
                                     lambda: node_forms.json_value("{", "Regras")])
def test_conversions_refuse_what_cannot_be_configuration(convert):
    with pytest.raises(node_forms.FormError):
        convert()


def test_collect_fields_as_lines_round_trip_and_refuse_bad_lines():
    from engine.core.examples import ai_qualification_funnel

    spec = REGISTRY["ai_reply"]
    data = next(n for n in ai_qualification_funnel()["nodes"] if n["id"] == "ia")["data"]
    field = next(f for f in node_forms.form_fields(spec, data) if f.name == "fields")
    assert field.kind == "collect_fields"
    text = node_forms.collect_text(field.value)
    assert text.splitlines()[1] == "email | e-mail | obrigatório | contact.custom_data.email | o e-mail do contato"
    assert node_forms.collect_value(text, field.value) is field.value, "untouched: identical"
    edited = node_forms.collect_value(text + "\nplano | lista: Básico, Pro | opcional | | o plano desejado",
                                      field.value)
    assert edited[-1] == {"key": "plano", "type": "choice", "required": False, "description": "o plano desejado",
                          "options": ["Básico", "Pro"]}
    assert node_forms.collect_value("cidade", None) == [{"key": "cidade", "type": "text", "required": True}]
    with pytest.raises(node_forms.FormError, match="linha 2"):
        node_forms.collect_value("nome | texto\ncpf | documento", None)
    odd = [{"key": "x", "type": "text", "description": "a | b"}]
    assert next(f for f in node_forms.form_fields(spec, {**data, "fields": odd}) if f.name == "fields").kind == "json"
