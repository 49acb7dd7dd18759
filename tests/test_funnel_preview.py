"""engine.core.preview: the editor's test chat walks a draft with a simulated contact, purely."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.core import preview
from engine.core.examples import scheduling_funnel, welcome_funnel

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def bot(state: preview.PreviewState) -> list[str]:
    return [e.text for e in state.entries if e.role == "bot"]


def path(state: preview.PreviewState) -> list[tuple[str, str, str | None]]:
    return [(s.node_id, s.outcome, s.output) for s in state.steps]


def test_scheduling_example_end_to_end():
    draft = scheduling_funnel()
    state = preview.send(draft, preview.PreviewState(), "quero falar com vendas", now=NOW)
    assert (state.status, state.node_id, state.wait_kind) == ("waiting", "espera_nome", "reply")
    assert bot(state) == ["Olá! Sou o assistente virtual do time de vendas. Para começar, qual é o seu nome?"]
    assert state.can_time_out  # the name wait has a 24 h timeout
    state = preview.send(draft, state, "Carla", now=NOW)
    assert bot(state)[-1] == "Obrigado, Carla! Qual é o seu melhor e-mail?"
    assert state.contact["name"] == "Carla" and not state.can_time_out
    state = preview.send(draft, state, "carla@exemplo.com", now=NOW)
    state = preview.send(draft, state, "Amanhã às 10h", now=NOW)
    assert state.status == "completed"
    assert state.contact == {"name": "Carla", "phone": "5511999999999", "tags": ["agendamento"],
                             "custom_data": {"email": "carla@exemplo.com", "horario": "Amanhã às 10h"}}
    assert path(state) == [
        ("inicio", "next", "next"), ("pede_nome", "next", "next"), ("espera_nome", "wait", None),
        ("espera_nome", "next", "next"), ("pede_email", "next", "next"), ("espera_email", "wait", None),
        ("espera_email", "next", "next"), ("pede_horario", "next", "next"), ("espera_horario", "wait", None),
        ("espera_horario", "next", "next"), ("tag_agendamento", "next", "next"), ("rota_vendas", "next", "next"),
        ("confirmacao", "next", "next"), ("fim", "end", None)]
    notes = [(e.kind, e.text) for e in state.entries if e.role == "note"]
    assert ("add_tag", "agendamento") in notes and ("route", "Vendas") in notes and notes[-1] == ("completed", "")
    assert [e.text for e in state.entries if e.role == "contact"] == [
        "quero falar com vendas", "Carla", "carla@exemplo.com", "Amanhã às 10h"]


def test_invalid_email_is_retried_then_takes_the_invalid_branch():
    draft = scheduling_funnel()
    state = preview.send(draft, preview.PreviewState(), "vendas", now=NOW)
    state = preview.send(draft, state, "Ana", now=NOW)
    state = preview.send(draft, state, "ana-arroba", now=NOW)
    assert (state.status, state.node_id, state.attempts) == ("waiting", "espera_email", 1)
    assert bot(state)[-1] == "Hmm, esse e-mail não parece válido. Pode conferir e enviar de novo?"
    state = preview.send(draft, state, "ainda errado", now=NOW)
    assert state.attempts == 2
    state = preview.send(draft, state, "nada", now=NOW)  # third strike: the invalid branch
    assert bot(state)[-2:] == ["Tudo bem, seguimos sem o e-mail; o especialista confirma com você depois.",
                               "Perfeito! Qual o melhor dia e horário para conversarmos?"]
    assert ("espera_email", "next", "invalid") in path(state)
    assert "email" not in state.contact["custom_data"]


def test_timeout_is_simulated_only_where_a_wait_has_one():
    draft = scheduling_funnel()
    state = preview.send(draft, preview.PreviewState(), "vendas", now=NOW)
    state = preview.time_out(draft, state, now=NOW)
    assert state.status == "completed"
    assert bot(state)[-1] == "Sem problemas! Quando quiser falar com vendas, é só mandar \"vendas\"."
    assert ("espera_nome", "next", "timeout") in path(state)
    assert [e.kind for e in state.entries if e.role == "note"] == ["timeout", "completed"]
    waiting_forever = preview.send(draft, preview.send(draft, preview.PreviewState(), "vendas", now=NOW), "Bia",
                                   now=NOW)
    assert preview.time_out(draft, waiting_forever, now=NOW) is waiting_forever  # the e-mail wait has no timeout


def test_choices_and_delays():
    draft = welcome_funnel()
    draft["nodes"].insert(2, {"id": "pausa", "type": "delay", "position": {"x": 0, "y": 0}, "data": {"seconds": 30}})
    draft["edges"][1] = {"id": "a", "source": "boas_vindas", "target": "pausa", "label": "next"}
    draft["edges"].append({"id": "b", "source": "pausa", "target": "menu", "label": "next"})
    state = preview.send(draft, preview.PreviewState(), "oi", now=NOW)
    assert (state.status, state.wait_kind, state.can_time_out) == ("waiting", "timer", True)
    state = preview.send(draft, state, "alô?", now=NOW)  # a message during a delay changes nothing
    assert state.entries[-1].kind == "ignored" and state.node_id == "pausa"
    state = preview.time_out(draft, state, now=NOW)
    assert bot(state)[-1] == "Como podemos ajudar?\n\n1. Vendas\n2. Suporte"
    state = preview.send(draft, state, "2", now=NOW)
    assert state.variables == {"assunto": "Suporte"}
    assert ("menu", "next", "suporte") in path(state) and state.status == "completed"


def test_a_finished_run_restarts_keeping_the_contact():
    draft = scheduling_funnel()
    state = preview.time_out(draft, preview.send(draft, preview.PreviewState(), "vendas", now=NOW), now=NOW)
    state = preview.send(draft, state, "vendas de novo", now=NOW)
    assert state.status == "waiting" and state.steps[0].node_id == "inicio" and len(state.steps) == 3


def test_drafts_that_cannot_run_fail_with_a_reason():
    no_trigger = {"nodes": [{"id": "m", "type": "send_message", "data": {"text": "oi"}}], "edges": []}
    state = preview.send(no_trigger, preview.PreviewState(), "oi", now=NOW)
    assert state.status == "failed" and "gatilho" in state.error
    broken = scheduling_funnel()
    broken["nodes"][1]["data"] = {}
    state = preview.send(broken, preview.PreviewState(), "oi", now=NOW)
    assert state.status == "failed" and "corrija os nós" in state.error
    assert state.entries[-1].kind == "failed"
    # An unfinished draft (an output without an edge) still runs: the run just ends there.
    unfinished = scheduling_funnel()
    unfinished["edges"] = [e for e in unfinished["edges"] if e["source"] != "pede_email"]
    state = preview.send(unfinished, preview.PreviewState(), "vendas", now=NOW)
    state = preview.send(unfinished, state, "Rui", now=NOW)
    assert state.status == "completed" and state.node_id == "pede_email"


def test_an_ai_step_waits_for_the_page_to_run_its_call_and_shows_it():
    from engine.core.examples import ai_qualification_funnel

    state = preview.start(ai_qualification_funnel(), "orçamento", now=NOW)
    assert (state.status, state.wait_kind, state.pending_call["service"]) == ("waiting", "call", "ai")
    assert state.history()[0] == {"direction": "in", "text": "orçamento"}
    result = {"ok": True, "reply": "Qual seu nome?", "accepted": [], "meta": {"model": "m", "total_tokens": 30},
              "rejected": [{"key": "email", "value": "x@y.com", "reason": "não aparece nas mensagens do contato"}],
              "tools": [{"name": "registrar_dados", "arguments": {"email": "x@y.com"}}]}
    state = preview.deliver(ai_qualification_funnel(), state, result, now=NOW)
    note = next(e for e in state.entries if e.kind == "call")
    assert note.params["total_tokens"] == 30 and note.params["rejected"][0]["key"] == "email"
    assert bot(state)[-1] == "Qual seu nome?" and state.pending_call is None and state.wait_kind == "reply"
    state = preview.send(ai_qualification_funnel(), state, "Ana", now=NOW)
    assert state.pending_call is not None and state.pending_call["request"]["turn"] == 2
    failed = preview.deliver(ai_qualification_funnel(), state, {"ok": False, "kind": "auth", "error": "HTTP 401"},
                             now=NOW)
    assert bot(failed)[-1].startswith("Como podemos ajudar?"), "erro falls back to the plain menu"
