"""A node type is one module plus its catalog strings: a type registered at run time, here in the test only, gets a
palette entry, a form, a summary, a canvas box and validation, and runs in the test chat; nothing else changes.

The type is docs/nodes.md's worked example ("Divisão simples"): its module and its strings are read from there, so the
guide cannot drift from what is tested.
"""

from __future__ import annotations

import ast
import random
import re
import sys
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.core.definition import load_definition, validate_definition, walk
from engine.core.nodes import register, unregister
from engine.core.nodes.base import ExecutionContext
from tests.factories import make_actor, make_workspace
from tests.test_pages_editor import canvas_args, click, open_editor, texts, widget
from workbench.base import i18n
from workbench.editor import canvas
from workbench.services import funnels

GUIDE = (Path(__file__).resolve().parent.parent / "docs" / "nodes.md").read_text()


def worked_example() -> tuple[types.ModuleType, dict[str, str]]:
    """The guide's ``engine/core/nodes/percent_split.py`` as a module, and its catalog lines as a dict."""
    code = re.search(r"`engine/core/nodes/percent_split.py`:\n\n```python\n(.*?)```", GUIDE, re.S)[1]
    strings = re.search(r"In `workbench/base/i18n.py`.*?```python\n(.*?)```", GUIDE, re.S)[1]
    module = types.ModuleType("percent_split_example")
    sys.modules[module.__name__] = module  # pydantic resolves the schema's annotations through it
    exec(compile(code, "docs/nodes.md", "exec"), module.__dict__)
    return module, ast.literal_eval("{" + strings + "}")


EXAMPLE, STRINGS = worked_example()
SPEC = EXAMPLE.SPEC


@pytest.fixture
def percent_split(monkeypatch):
    """The type registered with its strings for one test, and gone afterwards."""
    for key, text in STRINGS.items():
        monkeypatch.setitem(i18n.CATALOG[i18n.DEFAULT_LOCALE], key, text)
    register(SPEC)
    yield SPEC
    unregister(SPEC.type)


def draft(**split: Any) -> dict[str, Any]:
    nodes = [{"id": "inicio", "type": "trigger", "position": {"x": 0, "y": 0}, "data": {"kind": "any_message"}},
             {"id": "msg_a", "type": "send_message", "position": {"x": 600, "y": 0}, "data": {"text": "Caminho A"}},
             {"id": "msg_b", "type": "send_message", "position": {"x": 600, "y": 150}, "data": {"text": "Caminho B"}}]
    if split:
        nodes.append({"id": "split", "type": "percent_split", "position": {"x": 300, "y": 0}, "data": split})
    edges = [{"id": "e1", "source": "inicio", "target": "split", "label": "next"},
             {"id": "e2", "source": "split", "target": "msg_a", "label": "a"},
             {"id": "e3", "source": "split", "target": "msg_b", "label": "b"}] if split else []
    return {"nodes": nodes, "edges": edges}


def test_a_registered_type_validates_and_runs(percent_split):
    definition = draft(percent_a=30, save_to="vars.caminho")
    assert validate_definition(definition).is_valid
    ctx = ExecutionContext(now=datetime(2025, 5, 5, tzinfo=UTC), rng=random.Random(0))  # first draw: 84.4
    run = walk(load_definition(definition), ctx, "inicio")
    assert [(s.node_id, s.result.output) for s in run.steps] == [("inicio", "next"), ("split", "b"), ("msg_b", "next")]
    assert run.context.variables == {"caminho": "b"}
    definition["edges"].pop()
    assert {(p.code, p.node_id, p.field) for p in validate_definition(definition).errors} == {
        ("missing_output", "split", "b"), ("unreachable_node", "msg_b", None)}
    bad = validate_definition(draft(percent_a=101))
    assert {(p.code, p.node_id, p.message) for p in bad.errors} == {
        ("invalid_field", "split", "data.percent_a: deve ser no máximo 100")}


def test_the_editor_reads_the_spec(percent_split):
    node = {"id": "s", "type": "percent_split", "data": canvas.default_data("percent_split")}
    assert canvas.type_label("percent_split") == "Divisão simples"
    assert canvas.summary(node) == "A 50% · B 50%"
    assert canvas.outputs_for({"id": "s", "type": "percent_split", "data": {"percent_a": "muito"}}) == ["a", "b"]
    assert canvas.node_content(node) == "**Divisão simples**\n\nA 50\\% · B 50\\%"


def test_unregistered_types_are_unknown_again(percent_split):
    with pytest.raises(ValueError, match="already registered"):
        register(SPEC)
    unregister("percent_split")
    try:
        assert "unknown_node_type" in validate_definition(draft(percent_a=30)).codes()
    finally:
        register(SPEC)  # for the fixture to take away


def test_a_node_type_is_one_module(engine, r, percent_split):
    """Palette entry, form, summary, canvas box and a run in the test chat, for a type this test registered."""
    admin = make_actor(make_workspace())
    fid = funnels.create_funnel(admin, "Divisão", draft())
    at = click(open_editor(admin, fid), fid, "inicio")
    palette = at.selectbox(key="editor_palette_type")
    assert "Divisão simples" in palette.options
    at = palette.set_value("percent_split").run()
    at = at.button(key="editor_add").click().run()
    assert not at.exception
    box = next(n for n in canvas_args(at)["nodes"] if n["id"] == "percent_split_1")
    assert (box["type"], box["data"]["node_type"]) == ("default", "percent_split")
    # Its summary, and a ⚠ for each output still to connect.
    assert box["data"]["content"].startswith("**Divisão simples**\n\nA 50\\% · B 50\\%\n\n⚠ a saída \\'a\\' precisa")

    # The form: generated from the schema, labelled from the catalog; the description is shown with it.
    assert "Divide os contatos entre dois caminhos, A e B." in [c.value for c in at.caption]
    percent = widget(at.number_input, "_percent_split_1_percent_a")
    assert (percent.label, percent.value, percent.help) == (
        "Porcentagem no caminho A", 50, "De 0 a 100; o resto segue pelo caminho B.")
    assert widget(at.text_input, "_percent_split_1_save_to").label == "Salvar o caminho em (opcional)"
    percent.set_value(100)
    at = at.button(key="editor_apply_percent_split_1").click().run()
    box = next(n for n in canvas_args(at)["nodes"] if n["id"] == "percent_split_1")
    assert box["data"]["content"].startswith("**Divisão simples**\n\nA 100\\% · B 0\\%")

    # Its outputs are offered for connecting; the trigger then leads to it.
    for output, target in (("a", "msg_a"), ("b", "msg_b")):
        assert at.selectbox(key="editor_connect_output_percent_split_1").value == output
        at.selectbox(key="editor_connect_target_percent_split_1").set_value(target)
        at = at.button(key="editor_connect_percent_split_1").click().run()
    at = at.selectbox(key=f"editor_pick_{fid}").set_value("inicio").run()
    at.selectbox(key="editor_connect_target_inicio").set_value("percent_split_1")
    at = at.button(key="editor_connect_inicio").click().run()
    assert at.success[-1].value == "Nenhum problema: o rascunho pode ser publicado."

    # The test chat runs it.
    at = at.chat_input(key=f"editor_chat_input_{fid}").set_value("oi").run()
    assert not at.exception
    assert "Caminho A" in texts(at) and "Caminho B" not in texts(at)
    path = next(v for v in texts(at) if v.startswith("1. inicio"))
    assert "2. percent_split_1 (Divisão simples) → saída a" in path
