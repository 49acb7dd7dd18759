"""Teste A/B: weighted draw, one assignment per run, stickiness within a version, the test chat's pick."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from engine.core import preview
from engine.core.definition import load_definition, validate_definition, walk
from engine.core.nodes import execute_node, parse_node
from engine.core.nodes.ab_split import ASSIGNMENTS_VAR, summary
from engine.core.nodes.base import ExecutionContext
from tests.test_funnel_runtime import bot_texts, say, setup_workspace
from workbench.services import funnels, runs
from workbench.store.db import session_scope
from workbench.store.models import FunnelEvent

NOW = datetime(2026, 5, 5, tzinfo=UTC)


def split_funnel(weights: list[int] | None = None, keyword: str = "promo") -> dict[str, Any]:
    """promo -> Teste A/B -> one message per branch."""
    weights = weights or [50, 50]
    keys = "abcde"[:len(weights)]
    nodes = [{"id": "inicio", "type": "trigger", "position": {"x": 0, "y": 0},
              "data": {"kind": "keyword", "mode": "contains", "words": [keyword], "restart_running": True}},
             {"id": "teste", "type": "ab_split", "position": {"x": 200, "y": 0}, "data": {"weights": weights}}]
    edges = [{"id": "e0", "source": "inicio", "target": "teste", "label": "next"}]
    for i, key in enumerate(keys):
        nodes.append({"id": f"msg_{key}", "type": "send_message", "position": {"x": 400, "y": 100 * i},
                      "data": {"text": f"Oferta {key.upper()}"}})
        edges.append({"id": f"e_{key}", "source": "teste", "target": f"msg_{key}", "label": key})
    return {"nodes": nodes, "edges": edges}


def test_distribution_follows_the_weights_with_a_fixed_seed():
    node = parse_node({"id": "t", "type": "ab_split", "data": {"weights": [60, 30, 10]}})
    rng = random.Random(1234)
    drawn = Counter(execute_node(node, ExecutionContext(now=NOW, rng=rng)).output for _ in range(10_000))
    assert set(drawn) == {"a", "b", "c"}
    for key, share in (("a", 0.6), ("b", 0.3), ("c", 0.1)):
        assert abs(drawn[key] / 10_000 - share) < 0.02, drawn
    zero = parse_node({"id": "t", "type": "ab_split", "data": {"weights": [0, 1]}})
    assert {execute_node(zero, ExecutionContext(now=NOW, rng=rng)).output for _ in range(200)} == {"b"}


def test_a_held_assignment_is_kept_and_recorded():
    node = parse_node({"id": "t", "type": "ab_split", "data": {"weights": [99, 1], "save_to": "vars.grupo"}})
    result = execute_node(node, ExecutionContext(now=NOW, variables={ASSIGNMENTS_VAR: {"t": "b"}}))
    assert (result.output, dict(result.data)) == ("b", {"branch": "b", "assigned": "kept"})
    assert result.variables == {ASSIGNMENTS_VAR: {"t": "b"}, "grupo": "B"}
    # A branch the step no longer has (weights shrank) is drawn again.
    result = execute_node(node, ExecutionContext(now=NOW, variables={ASSIGNMENTS_VAR: {"t": "e"}},
                                                 rng=random.Random(0)))
    assert result.data["assigned"] == "drawn"


def test_validation_and_summary():
    assert validate_definition(split_funnel([70, 20, 10])).is_valid
    assert summary({"weights": [70, 20, 10]}) == "A 70% · B 20% · C 10%"
    assert summary({"weights": "x"}) == ""
    for weights, message in (([100], "informe de 2 a 5 pesos"), ([1] * 6, "informe de 2 a 5 pesos"),
                             ([0, 0], "pelo menos um peso"), ([5, 1001], "no máximo 1000")):
        report = validate_definition(split_funnel([1, 1]) | {"nodes": [
            *split_funnel([1, 1])["nodes"][:1],
            {"id": "teste", "type": "ab_split", "position": {"x": 0, "y": 0}, "data": {"weights": weights}},
            *split_funnel([1, 1])["nodes"][2:]]})
        assert any(p.node_id == "teste" and message in p.message for p in report.errors), (weights, report.errors)
    missing = split_funnel([1, 1, 1])
    missing["edges"] = [e for e in missing["edges"] if e["label"] != "c"]
    assert ("missing_output", "teste") in {(p.code, p.node_id) for p in validate_definition(missing).errors}


def test_one_assignment_per_run_even_in_a_loop():
    definition = split_funnel([50, 50])
    definition["nodes"] = definition["nodes"][:2]
    definition["nodes"].append({"id": "espera", "type": "wait_reply", "position": {"x": 600, "y": 0},
                                "data": {"text": "Mais?", "save_to": "vars.x"}})
    definition["edges"] = [e for e in definition["edges"] if e["source"] != "teste"] + [
        {"id": "ea", "source": "teste", "target": "espera", "label": "a"},
        {"id": "eb", "source": "teste", "target": "espera", "label": "b"},
        {"id": "back", "source": "espera", "target": "teste", "label": "next"}]
    defn = load_definition(definition)
    ctx = ExecutionContext(now=NOW, rng=random.Random(7))
    first = walk(defn, ctx, "inicio")
    branch = first.context.variables[ASSIGNMENTS_VAR]["teste"]
    for seed in range(20):  # whatever the rng says, the loop comes back to the same branch
        again = walk(defn, replace(first.context, rng=random.Random(seed)), "espera", reply="sim")
        assert [s.result.output for s in again.steps if s.node_id == "teste"] == [branch]


def test_the_test_chat_takes_the_authors_pick():
    definition = split_funnel([1, 1000])
    assert preview.ab_split_steps(definition) == [("teste", ["a", "b"])]
    state = preview.send(definition, preview.PreviewState(), "promo", now=NOW, ab_picks={"teste": "a"})
    assert [e.text for e in state.entries if e.role == "bot"] == ["Oferta A"]
    state = preview.send(definition, preview.PreviewState(), "promo", now=NOW, ab_picks={"teste": ""})
    assert [e.text for e in state.entries if e.role == "bot"] == ["Oferta B"]  # drawn: weight 1000 of 1001
    assert preview.ab_split_steps({"nodes": "bad"}) == []


def branches(version_id: int | None = None) -> list[tuple[str, str]]:
    with session_scope() as s:
        q = select(FunnelEvent.output, FunnelEvent.data["assigned"].astext).where(FunnelEvent.node_type == "ab_split")
        if version_id is not None:
            q = q.where(FunnelEvent.version_id == version_id)
        return list(s.execute(q.order_by(FunnelEvent.id)).all())


def test_a_contact_stays_on_its_branch_when_the_funnel_restarts_in_the_same_version(engine, r):
    ws, inst, admin, (fid,) = setup_workspace(("Promo", split_funnel))
    say(inst, "promo")
    (first, how), = branches()
    assert how == "drawn"
    for _ in range(6):
        say(inst, "promo de novo")
    assert branches()[1:] == [(first, "kept")] * 6
    assert set(bot_texts()) == {f"Oferta {first.upper()}"}
    # Many contacts: both branches get some (weights 50/50), each recorded once per run.
    for i in range(30):
        say(inst, "promo", phone=f"55119000{i:04d}")
    assert {b for b, _ in branches()} == {"a", "b"}
    # A new version draws again.
    funnels.save_draft(admin, fid, split_funnel([50, 50], keyword="promo"))
    funnels.publish(admin, fid)
    runs.clear_cache()
    say(inst, "promo")
    assert branches()[-1][1] == "drawn"


def test_the_editors_test_chat_lets_the_author_pick_the_branch(engine, r):
    from tests.factories import make_actor, make_workspace
    from tests.test_pages_editor import open_editor, texts

    admin = make_actor(make_workspace())
    fid = funnels.create_funnel(admin, "Promo", split_funnel([1000, 1]))
    at = open_editor(admin, fid)
    assert "Caminho do Teste A/B 'teste' no chat de teste" in texts(at)
    picker = at.selectbox(key=f"editor_ab_{fid}_teste")
    assert picker.options == ["Sortear (como nas conversas reais)", "A", "B"]
    at = picker.set_value("b").run()
    at = at.chat_input(key=f"editor_chat_input_{fid}").set_value("promo").run()
    assert not at.exception
    assert "Oferta B" in texts(at) and "Oferta A" not in texts(at)
