"""Fuzzing funnel definitions: the import file, the validator, the canvas round trip and the node forms (pure), then
importing, saving and publishing them in a real database, whose rows are checked afterwards.

Every refusal must be catalogued (``tests/fuzzing.py``): a pt-BR message the user can act on, never a raw error.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select

from engine.core.definition import (
    DefinitionImportError,
    export_json,
    import_json,
    load_definition,
    validate_definition,
)
from engine.core.examples import EXAMPLES
from engine.core.nodes import REGISTRY
from tests import fuzzing
from tests.factories import make_actor, make_instance, make_workspace
from workbench.base.errors import WorkbenchError
from workbench.editor import canvas, node_forms
from workbench.services import funnels
from workbench.store.db import session_scope
from workbench.store.models import Funnel


def every_type() -> dict:
    """One node of each registered type with its starting configuration, chained by each one's first output."""
    definition: dict = {"nodes": [], "edges": []}
    previous = None
    for kind in REGISTRY:
        definition, node_id = canvas.add_node(definition, kind, previous)
        if previous is not None and (output := canvas.first_free_output(definition, previous)):
            definition = canvas.connect(definition, previous, output, node_id)
        previous = node_id
    return definition


SEEDS = [build() for _, build in EXAMPLES.values()] + [every_type()]
definitions = st.one_of(
    st.sampled_from(SEEDS),
    st.sampled_from(SEEDS).flatmap(lambda seed: fuzzing.retexted(seed)),
    st.sampled_from(SEEDS).flatmap(lambda seed: fuzzing.retexted(seed, changes=1)),
    st.sampled_from(SEEDS).flatmap(lambda seed: fuzzing.mutated(seed)),
    st.sampled_from(SEEDS).flatmap(lambda seed: fuzzing.mutated(seed, changes=1)),
    st.fixed_dictionaries({"nodes": st.lists(fuzzing.json_values, max_size=4),
                           "edges": st.lists(fuzzing.json_values, max_size=4)}),
    fuzzing.json_values,
)
"""Definitions from well-formed ones slightly or badly broken, to random JSON."""

# What a file upload may hold: an exported definition (broken or not), JSON-like text, any bytes.
import_texts = st.one_of(
    definitions.map(lambda d: json.dumps(d, ensure_ascii=False)),
    definitions.map(lambda d: json.dumps(d)),
    st.text(alphabet=st.sampled_from('{}[]":,0123456789.eE+-truefalsnNaIiy \\u\n'), max_size=80),
    fuzzing.any_text,
    st.binary(max_size=200),
    st.sampled_from(['{"nodes": [], "edges": [], "x": 1e400}', '{"nodes": []}' + " " * 10, "\ufeff{}",
                     '{"nodes": [], "edges": ' + "[" * 5000 + "]" * 5000 + "}", '{"nodes": [1], "edges": null}']),
)


def _check_report(target: str, definition: object):
    """The definition's report, every problem checked as catalogued; the case is counted under its first."""
    report = validate_definition(definition)
    kinds = [fuzzing.problem_kind(problem) for problem in report.errors]
    fuzzing.count(target, kinds[0] if kinds else None)
    return report


@fuzzing.scaled(1.0)
@given(text=import_texts)
@example(text=b"\xff\xfe{")
@example(text='{"nodes": [], "edges": [], "x": NaN}')
@example(text='{"\ud800": null}')  # a lone surrogate in a str once failed measuring the file's size
def test_imported_files_are_read_or_refused_with_a_catalogued_reason(text):
    data, kind = fuzzing.refused("funnel import file", lambda: import_json(text), DefinitionImportError)
    if kind is not None:
        return
    assert isinstance(data, dict) and isinstance(data["nodes"], list) and isinstance(data["edges"], list)
    report = _check_report("funnel validation", data)
    if report.is_valid:
        # what the product exports, it reads back the same
        assert import_json(export_json(report.definition))["nodes"] == json.loads(
            export_json(report.definition))["nodes"]
        assert load_definition(data).model_dump() == report.definition.model_dump()


@fuzzing.scaled(1.0)
@given(definition=definitions)
@example(definition={"nodes": [], "edges": [{"id": "e", "source": [], "target": "x"}]})  # once broke auto_layout
@example(definition={"nodes": [{"id": "\ud800", "type": "end"}], "edges": []})  # pydantic's string_unicode had
# no pt-BR message
@example(definition={"nodes": [{"id": "a", "type": "set_field", "data": {"target": "\ud800", "value": "x"}}],
                     "edges": []})  # pydantic could not write the message quoting the value: the validator raised
def test_definitions_validate_and_survive_the_canvas_round_trip(definition):
    report = _check_report("funnel validation", definition)
    if not _draft_shaped(definition):
        return
    flow = canvas.to_flow(definition, report, selected_id="x")
    for node in flow["nodes"]:
        assert "<" not in node["data"]["content"]  # text from the definition never becomes markup
    # the browser sends back what it was given (positions and all): the definition that comes out is stable
    again = canvas.from_flow(flow["nodes"], flow["edges"])
    assert canvas.from_flow(*canvas.to_flow(again).values()) == again
    _check_report("canvas round trip", again)
    canvas.auto_layout(definition)
    canvas.trigger_in_view(definition)
    grown, node_id = canvas.add_node(definition, "send_message", next(iter(n["id"] for n in flow["nodes"]), None))
    assert canvas.find_node(grown, node_id) is not None
    for node in flow["nodes"][:3]:
        assert canvas.find_node(canvas.delete_node(definition, node["id"]), node["id"]) is None


def _draft_shaped(definition: object) -> bool:
    """What every stored draft is (the import and the editor guarantee it): ``{nodes: [...], edges: [...]}``."""
    return isinstance(definition, dict) and isinstance(definition.get("nodes"), list) \
        and isinstance(definition.get("edges", []), list)


@fuzzing.scaled(1.0)
@given(definition=st.one_of(st.sampled_from(SEEDS).flatmap(lambda seed: fuzzing.retexted(seed)),
                            st.sampled_from(SEEDS).flatmap(lambda seed: fuzzing.mutated(seed, changes=1))))
def test_an_untouched_node_form_gives_back_the_same_node(definition):
    if not _draft_shaped(definition):
        return
    for node in canvas._nodes(definition):
        spec = REGISTRY.get(canvas.node_type_of(node))
        if spec is None:
            continue
        data = canvas.node_data(node)
        fields = node_forms.form_fields(spec, data)
        assert {f.kind for f in fields} <= set(node_forms.FIELD_KINDS)
        # identical, but that a required text the node lacks is written out empty (so the node shows the problem)
        blank = {f.name: "" for f in fields if f.kind in node_forms.TEXT_KINDS and not f.optional and f.value is None}
        assert node_forms.apply_form(data, fields, {f.name: f.value for f in fields}) == {**data, **blank}
        fuzzing.count("node form")


# What the form widgets hand back: typed text in each kind of box.
_widget_text = st.one_of(fuzzing.any_text, st.lists(st.one_of(fuzzing.hostile_text, st.sampled_from(
    ["|", " | ", "texto", "email", "lista: a, b", "obrigatório", "opcional", "1", "-3", "x=1", "{", "[1, 2]"])),
    max_size=8).map("".join), st.lists(fuzzing.hostile_text, max_size=4).map("\n".join))


@fuzzing.scaled(1.0)
@given(raw=_widget_text, original=fuzzing.json_values)
def test_form_widget_values_become_configuration_or_a_catalogued_error(raw, original):
    # the fields-to-collect box is only drawn from a value its lines can show (else the JSON editor is)
    original = original if node_forms._collect_fits(original) else None
    for target, convert in (("form: options", lambda: node_forms.options_value(raw)),
                            ("form: fields to collect", lambda: node_forms.collect_value(raw, original)),
                            ("form: whole numbers", lambda: node_forms.int_lines_value(raw, "Campo")),
                            ("form: JSON", lambda: node_forms.json_value(raw, "Campo"))):
        fuzzing.refused(target, convert, node_forms.FormError)
    assert node_forms.str_lines_value(raw) == [line.strip() for line in raw.splitlines() if line.strip()]
    assert node_forms.collect_value(node_forms.collect_text(original), original) is not None


# -- in the database ---------------------------------------------------------------------------------------------


@pytest.fixture
def editor(engine, r):
    """An admin of a workspace with a number (funnels name numbers, teams and people)."""
    workspace = make_workspace()
    make_instance(workspace)
    return make_actor(workspace, "admin")


def test_imported_funnels_are_stored_whole_or_not_at_all(editor):
    """Import, save, publish and activate fuzzed files, then dump the database: nothing half-written."""

    @fuzzing.scaled(0.15)
    @given(name=st.one_of(fuzzing.any_text, st.just("Funil")), text=import_texts, publish=st.booleans())
    @example(name="Funil", text=json.dumps(SEEDS[0]), publish=True)
    def one_import(name, text, publish):
        with session_scope() as session:
            before = session.scalar(select(Funnel.id).order_by(Funnel.id.desc()).limit(1))
        funnel_id, kind = fuzzing.refused("funnel import (database)",
                                          lambda: funnels.import_funnel(editor, name, text), WorkbenchError)
        if kind is not None:
            with session_scope() as session:  # a refused import leaves no funnel behind
                assert session.scalar(select(Funnel.id).order_by(Funnel.id.desc()).limit(1)) == before
            return
        draft = funnels.get_funnel(editor, funnel_id)["draft"]
        funnels.save_draft(editor, funnel_id, copy.deepcopy(draft))
        if publish:
            fuzzing.refused("funnel publish", lambda: funnels.publish(editor, funnel_id), WorkbenchError)
            fuzzing.refused("funnel activation", lambda: funnels.set_active(editor, funnel_id, True), WorkbenchError)
        assert funnels.export_funnel(editor, funnel_id)

    one_import()
    with session_scope() as session:
        assert fuzzing.broken_invariants(session.connection()) == {}
