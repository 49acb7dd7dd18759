"""Every node type's execute / resume / on_timeout, and walking the example funnels. Pure: no database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.core.definition import load_definition, validate_definition, walk
from engine.core.examples import scheduling_funnel, welcome_funnel
from engine.core.matching import TriggerEvent, pick_trigger
from engine.core.nodes import execute_node, parse_node, resume_node, timeout_node
from engine.core.nodes.base import (
    AddTag,
    ExecutionContext,
    NodeResult,
    Notify,
    RemoveTag,
    Route,
    SendMedia,
    SendPoll,
    SendText,
    SetContactField,
    SetVariable,
    StartFunnel,
    Wait,
)
from engine.core.nodes.delay import BusinessHours, next_business_instant
from engine.core.nodes.wait_reply import parse_date, parse_number

SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2025, 5, 5, 15, 0, tzinfo=UTC)  # Monday 12:00 in São Paulo


def make_ctx(**overrides: Any) -> ExecutionContext:
    values: dict[str, Any] = {
        "now": NOW,
        "variables": {"produto": "Plano Pro", "idade": 30},
        "contact": {"name": "Ana", "phone": "5541999998888", "custom_data": {"cidade": "Curitiba"}, "tags": ["lead"]},
        "trigger_message": "quero vendas",
        "last_reply": "sim",
        "funnel_name": "Teste",
        "rng": random.Random(7),
    }
    values.update(overrides)
    return ExecutionContext(**values)


def n(node_type: str, **data: Any) -> Any:
    return parse_node({"id": "n1", "type": node_type, "position": {"x": 0, "y": 0}, "data": data})


# -- context and results ---------------------------------------------------------------------------------------------

def test_context_requires_aware_now() -> None:
    with pytest.raises(ValueError):
        ExecutionContext(now=datetime(2025, 1, 1))


def test_result_outcomes_and_variables() -> None:
    assert NodeResult(output="next").outcome == "next"
    assert NodeResult().outcome == "end"
    assert NodeResult(wait=Wait("reply")).outcome == "wait"
    assert NodeResult(error="x", output="next").outcome == "error"
    result = NodeResult(actions=(SetVariable("a", 1), SendText("x"), SetVariable("a", 2), SetVariable("b", 3)))
    assert result.variables == {"a": 2, "b": 3}


def test_wait_deadlines() -> None:
    assert Wait("reply", timeout_s=60).deadline(NOW) == NOW + timedelta(seconds=60)
    assert Wait("reply").deadline(NOW) is None
    assert Wait("timer", resume_at=NOW + timedelta(hours=1)).deadline(NOW) == NOW + timedelta(hours=1)


def test_with_result_applies_state_changes() -> None:
    ctx = make_ctx()
    result = NodeResult(actions=(SetVariable("x", 1), AddTag("vip"), RemoveTag("lead"), SetContactField("name", "Bia"),
                                 SetContactField("custom_data.email", "b@x.com")))
    after = ctx.with_result(result)
    assert after.variables["x"] == 1 and "x" not in ctx.variables
    assert after.contact.tags == ("vip",)
    assert after.contact.name == "Bia" and after.contact.custom_data["email"] == "b@x.com"
    assert ctx.contact.name == "Ana"  # the original is untouched


# -- trigger ---------------------------------------------------------------------------------------------------------

def test_trigger_moves_on() -> None:
    result = execute_node(n("trigger", kind="any_message"), make_ctx())
    assert (result.output, result.actions, result.wait) == ("next", (), None)


def test_trigger_strips_blank_keywords() -> None:
    assert n("trigger", kind="keyword", words=[" vendas ", "  "]).data.words == ["vendas"]


# -- send_message ----------------------------------------------------------------------------------------------------

def test_send_text_renders_template() -> None:
    result = execute_node(n("send_message", text="Olá {{contact.name}}, sobre o {{vars.produto}}"), make_ctx())
    assert result.output == "next"
    assert result.actions == (SendText("Olá Ana, sobre o Plano Pro", typing=True),)
    assert result.log == ()


def test_send_media_with_caption_and_typing_off() -> None:
    node = n("send_message", text="Veja:", typing=False,
             media={"kind": "image", "media_id": 42, "caption": "Para {{contact.name}}"})
    result = execute_node(node, make_ctx())
    assert result.actions == (SendText("Veja:", typing=False), SendMedia(42, "image", "Para Ana", typing=False))


def test_send_message_missing_value_logged_and_empty_text_skipped() -> None:
    result = execute_node(n("send_message", text="{{vars.nada}}"), make_ctx())
    assert result.actions == ()
    assert result.output == "next"
    assert any("vars.nada" in line for line in result.log)
    assert any("vazio" in line for line in result.log)


def test_send_message_render_error_fails_the_node() -> None:
    result = execute_node(n("send_message", text="{{ vars.idade / 0 }}"), make_ctx())
    assert result.error and result.actions == () and result.output is None


# -- send_choices ----------------------------------------------------------------------------------------------------

CHOICES = {"prompt": "Como podemos ajudar, {{contact.name}}?",
           "options": [{"key": "vendas", "label": "Vendas"}, {"key": "suporte", "label": "Suporte"}]}


def test_choices_numbered_text_then_wait() -> None:
    result = execute_node(n("send_choices", **CHOICES, timeout_s=300), make_ctx())
    assert result.actions == (SendText("Como podemos ajudar, Ana?\n\n1. Vendas\n2. Suporte"),)
    assert result.wait == Wait("reply", timeout_s=300, attempts=0)
    assert result.output is None


def test_choices_poll_has_numbered_fallback() -> None:
    result = execute_node(n("send_choices", **CHOICES, mode="poll"), make_ctx())
    (poll,) = result.actions
    assert isinstance(poll, SendPoll)
    assert poll.options == ("Vendas", "Suporte")
    assert poll.fallback_text.endswith("1. Vendas\n2. Suporte")


@pytest.mark.parametrize(("reply", "output"), [("1", "vendas"), ("2", "suporte"), ("SUPORTE", "suporte"),
                                               ("quero vendas", "vendas"), ("2️⃣", "suporte")])
def test_choices_resume_matches(reply: str, output: str) -> None:
    node = n("send_choices", **CHOICES, save_to="vars.assunto")
    result = resume_node(node, make_ctx(), reply)
    assert result is not None and result.output == output
    assert result.variables == {"assunto": output.capitalize()}


def test_choices_retry_then_no_match() -> None:
    node = n("send_choices", **CHOICES, max_retries=1, retry_prompt="Responda 1 ou 2, por favor.")
    first = resume_node(node, make_ctx(attempts=0), "talvez")
    assert first is not None and first.wait == Wait("reply", attempts=1)
    assert first.actions == (SendText("Responda 1 ou 2, por favor.\n\n1. Vendas\n2. Suporte"),)
    connected = frozenset({"vendas", "suporte", "no_match"})
    second = resume_node(node, make_ctx(attempts=1, connected_outputs=connected), "talvez")
    assert second is not None and second.output == "no_match" and second.wait is None
    unconnected = resume_node(node, make_ctx(attempts=1, connected_outputs=frozenset({"vendas"})), "talvez")
    assert unconnected is not None and unconnected.error and unconnected.output is None


def test_choices_timeout() -> None:
    result = timeout_node(n("send_choices", **CHOICES, timeout_s=60), make_ctx())
    assert result.output == "timeout"


# -- wait_reply ------------------------------------------------------------------------------------------------------

def test_wait_reply_waits() -> None:
    assert execute_node(n("wait_reply", timeout_s=120), make_ctx()).wait == Wait("reply", timeout_s=120)
    assert execute_node(n("wait_reply"), make_ctx()).wait == Wait("reply")


@pytest.mark.parametrize(("validation", "reply", "stored"), [
    ("any", "  Ana Souza ", "Ana Souza"),
    ("number", "1.234,50", 1234.5),
    ("number", "42", 42),
    ("email", " Ana@Example.COM ", "ana@example.com"),
    ("phone", "+55 (41) 99999-8888", "5541999998888"),
    ("date", "25/12/2025", "2025-12-25"),
    ("date", "2025-12-25", "2025-12-25"),
    ("date", "amanhã", "2025-05-06"),
])
def test_wait_reply_accepts_and_stores(validation: str, reply: str, stored: Any) -> None:
    node = n("wait_reply", save_to="contact.custom_data.resposta", validation=validation)
    result = resume_node(node, make_ctx(), reply)
    assert result is not None and result.output == "next"
    assert result.actions == (SetContactField("custom_data.resposta", stored),)


@pytest.mark.parametrize(("validation", "reply"), [
    ("number", "muitos"), ("email", "ana@"), ("email", "ana@x"), ("phone", "123"), ("phone", "abc 99999-9999"),
    ("date", "31/02/2025"), ("date", "ontem à noite"), ("any", "   "), ("options", "azul"),
])
def test_wait_reply_rejects(validation: str, reply: str) -> None:
    node = n("wait_reply", save_to="vars.x", validation=validation, options=["Manhã", "Tarde"])
    result = resume_node(node, make_ctx(), reply)
    assert result is not None and result.wait == Wait("reply", attempts=1) and result.output is None
    (prompt,) = result.actions
    assert isinstance(prompt, SendText) and prompt.text


def test_wait_reply_options_by_text_or_number() -> None:
    node = n("wait_reply", save_to="vars.periodo", validation="options", options=["Manhã", "Tarde"])
    assert resume_node(node, make_ctx(), "manha").variables == {"periodo": "Manhã"}  # type: ignore[union-attr]
    assert resume_node(node, make_ctx(), "2").variables == {"periodo": "Tarde"}  # type: ignore[union-attr]


def test_wait_reply_save_to_plain_name_means_variable() -> None:
    node = n("wait_reply", save_to="nome")
    assert node.data.save_to == "vars.nome"
    assert resume_node(node, make_ctx(), "Ana").actions == (SetVariable("nome", "Ana"),)  # type: ignore[union-attr]


def test_wait_reply_custom_retry_prompt_and_exhaustion() -> None:
    node = n("wait_reply", validation="email", retry_prompt="E-mail inválido, {{contact.name}}.", max_retries=2,
             timeout_s=60)
    first = resume_node(node, make_ctx(attempts=1), "x")
    assert first is not None
    assert first.actions == (SendText("E-mail inválido, Ana."),)
    assert first.wait == Wait("reply", timeout_s=60, attempts=2)
    with_edge = resume_node(node, make_ctx(attempts=2, connected_outputs=frozenset({"next", "invalid"})), "x")
    assert with_edge is not None and with_edge.output == "invalid"
    without = resume_node(node, make_ctx(attempts=2, connected_outputs=frozenset({"next"})), "x")
    assert without is not None and without.error and without.output is None


def test_wait_reply_timeout() -> None:
    assert timeout_node(n("wait_reply", timeout_s=60), make_ctx()).output == "timeout"


@pytest.mark.parametrize(("text", "value"), [("1.234.567", 1234567), ("1,5", 1.5), ("R$ 10,00", 10.0), ("-3", -3),
                                             ("1,2,3", None), ("", None), ("12a", None)])
def test_parse_number(text: str, value: Any) -> None:
    assert parse_number(text) == value


def test_parse_date_short_forms() -> None:
    today = datetime(2025, 5, 5).date()
    assert parse_date("5/6", today).isoformat() == "2025-06-05"  # type: ignore[union-attr]
    assert parse_date("05-06-25", today).isoformat() == "2025-06-05"  # type: ignore[union-attr]
    assert parse_date("hoje", today) == today


# -- condition -------------------------------------------------------------------------------------------------------

def cond(*groups: list[dict[str, Any]]) -> Any:
    return n("condition", groups=[{"rules": rules} for rules in groups])


@pytest.mark.parametrize(("rule", "expected"), [
    ({"field": "last_reply", "operator": "equals", "value": "SIM"}, True),
    ({"field": "last_reply", "operator": "not_equals", "value": "sim"}, False),
    ({"field": "trigger.message", "operator": "contains", "value": "VENDAS"}, True),
    ({"field": "contact.name", "operator": "equals", "value": "ána"}, True),
    ({"field": "contact.phone", "operator": "regex", "value": r"^55\d{11}$"}, True),
    ({"field": "contact.custom_data.cidade", "operator": "equals", "value": "{{ 'curitiba' }}"}, True),
    ({"field": "contact.custom_data.estado", "operator": "is_empty"}, True),
    ({"field": "contact.custom_data.cidade", "operator": "not_empty"}, True),
    ({"field": "vars.idade", "operator": "greater", "value": "18"}, True),
    ({"field": "vars.idade", "operator": "less", "value": "18,5"}, False),
    ({"field": "vars.idade", "operator": "equals", "value": "30,0"}, True),
    ({"field": "vars.produto", "operator": "greater", "value": "10"}, False),  # not a number: false
    ({"field": "vars.nada", "operator": "greater", "value": "10"}, False),
    ({"field": "tags", "operator": "has_tag", "value": "LEAD"}, True),
    ({"field": "tags", "operator": "not_has_tag", "value": "lead"}, False),
    ({"field": "tags", "operator": "contains", "value": "lead"}, True),
    ({"field": "tags", "operator": "is_empty"}, False),
    ({"field": "vars.data", "operator": "greater", "value": "2025-01-01"}, True),
])
def test_condition_operators(rule: dict[str, Any], expected: bool) -> None:
    ctx = make_ctx(variables={"idade": 30, "produto": "Plano Pro", "data": "2025-06-01"})
    assert execute_node(cond([rule]), ctx).output == ("true" if expected else "false")


def test_condition_groups_or_and() -> None:
    yes = {"field": "last_reply", "operator": "equals", "value": "sim"}
    no = {"field": "last_reply", "operator": "equals", "value": "não"}
    assert execute_node(cond([yes, no]), make_ctx()).output == "false"  # AND inside a group
    result = execute_node(cond([no], [yes, yes]), make_ctx())  # OR across groups
    assert result.output == "true" and result.data == {"group": 1}


def test_condition_value_template_missing_is_logged() -> None:
    result = execute_node(cond([{"field": "last_reply", "operator": "equals", "value": "{{vars.nada}}"}]), make_ctx())
    assert result.output == "false"
    assert any("vars.nada" in line for line in result.log)


# -- delay -----------------------------------------------------------------------------------------------------------

def test_delay_with_jitter_is_reproducible_and_bounded() -> None:
    node = n("delay", seconds=30, jitter_s=10)
    first = execute_node(node, make_ctx(rng=random.Random(1)))
    again = execute_node(node, make_ctx(rng=random.Random(1)))
    assert first.wait is not None and first.wait == again.wait and first.wait.kind == "timer"
    assert NOW + timedelta(seconds=30) <= first.wait.resume_at <= NOW + timedelta(seconds=40)  # type: ignore[operator]
    assert timeout_node(node, make_ctx()).output == "next"


def test_zero_delay_continues_at_once() -> None:
    result = execute_node(n("delay", seconds=0), make_ctx())
    assert result.output == "next" and result.wait is None


def test_delay_inside_business_hours_is_unchanged() -> None:
    node = n("delay", seconds=60, business_hours={"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00"})
    result = execute_node(node, make_ctx())  # Monday 12:00 local
    assert result.wait is not None and result.wait.resume_at == NOW + timedelta(seconds=60)


def test_delay_after_hours_moves_to_next_opening() -> None:
    friday_evening = datetime(2025, 5, 9, 20, 30, tzinfo=SP)
    node = n("delay", seconds=60, business_hours={"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00"})
    result = execute_node(node, make_ctx(now=friday_evening))
    assert result.wait is not None
    assert result.wait.resume_at == datetime(2025, 5, 12, 9, 0, tzinfo=SP)  # Monday


def test_business_hours_explicit_zone_and_early_morning() -> None:
    hours = BusinessHours(timezone="Europe/Lisbon", days=[5], start="10:00", end="12:00")
    instant = datetime(2025, 5, 10, 7, 0, tzinfo=UTC)  # Saturday 08:00 in Lisbon
    assert next_business_instant(instant, hours, "America/Sao_Paulo") == datetime(2025, 5, 10, 10, 0,
                                                                                   tzinfo=ZoneInfo("Europe/Lisbon"))
    late = datetime(2025, 5, 10, 11, 59, tzinfo=ZoneInfo("Europe/Lisbon"))
    assert next_business_instant(late, hours, "UTC") == late


# -- tags, fields, notify, route, go to funnel, end ------------------------------------------------------------------

def test_add_and_remove_tag() -> None:
    assert execute_node(n("add_tag", tag="interesse {{vars.produto}}"), make_ctx()).actions == (
        AddTag("interesse Plano Pro"),)
    assert execute_node(n("remove_tag", tag="lead"), make_ctx()).actions == (RemoveTag("lead"),)
    empty = execute_node(n("add_tag", tag="{{vars.nada}}"), make_ctx())
    assert empty.error and empty.actions == ()


@pytest.mark.parametrize(("target", "action"), [
    ("contact.name", SetContactField("name", "Ana Plano Pro")),
    ("contact.custom_data.plano", SetContactField("custom_data.plano", "Ana Plano Pro")),
    ("vars.resumo", SetVariable("resumo", "Ana Plano Pro")),
])
def test_set_field(target: str, action: Any) -> None:
    result = execute_node(n("set_field", target=target, value="{{contact.name}} {{vars.produto}}"), make_ctx())
    assert result.output == "next" and result.actions == (action,)


def test_notify_human() -> None:
    result = execute_node(n("notify_human", team_id=3, message="Lead {{contact.name}} quer {{vars.produto}}"),
                          make_ctx())
    assert result.actions == (Notify("Lead Ana quer Plano Pro", team_id=3),)
    by_user = execute_node(n("notify_human", user_id=9, message="oi"), make_ctx())
    assert by_user.actions == (Notify("oi", user_id=9),)


def test_route() -> None:
    result = execute_node(n("route", team_id=2, agent_id=5, pause_bot=True, pause_minutes=120), make_ctx())
    assert result.output == "next"
    assert result.actions == (Route(team_id=2, agent_id=5, pause_bot=True, pause_minutes=120),)
    by_name = execute_node(n("route", team_name="Vendas", pause_bot=False), make_ctx())
    assert by_name.actions == (Route(team_name="Vendas", pause_bot=False),)


def test_go_to_funnel_ends_and_starts_other() -> None:
    result = execute_node(n("go_to_funnel", funnel_id=12), make_ctx())
    assert result.output is None and result.actions == (StartFunnel(12),) and result.outcome == "end"


def test_end() -> None:
    result = execute_node(n("end"), make_ctx())
    assert result.outcome == "end" and result.actions == ()


def test_nodes_without_waits_ignore_replies_and_end_on_timeout() -> None:
    assert resume_node(n("send_message", text="x"), make_ctx(), "oi") is None
    assert resume_node(n("delay", seconds=5), make_ctx(), "oi") is None
    assert timeout_node(n("send_message", text="x"), make_ctx()).outcome == "end"


def test_actions_serialise_with_their_kind() -> None:
    from dataclasses import asdict
    assert asdict(SendText("oi")) == {"text": "oi", "typing": True, "kind": "send_text"}
    assert asdict(Route(team_id=1))["kind"] == "route"


# -- walking the examples --------------------------------------------------------------------------------------------

def test_walk_scheduling_funnel_end_to_end() -> None:
    defn = load_definition(scheduling_funnel())
    ctx = make_ctx(contact={"phone": "5541999998888"}, variables={}, trigger_message="quero falar com vendas")
    step = walk(defn, ctx, defn.start_node().id)  # type: ignore[union-attr]
    assert (step.status, step.node_id) == ("waiting", "espera_nome")
    assert step.wait == Wait("reply", timeout_s=86400)
    assert [type(a) for a in step.actions] == [SendText]

    step = walk(defn, step.context, step.node_id, reply="Ana Souza")  # type: ignore[arg-type]
    assert step.node_id == "espera_email"
    assert step.actions == [SetContactField("name", "Ana Souza"),
                            SendText("Obrigado, Ana Souza! Qual é o seu melhor e-mail?")]

    step = walk(defn, step.context, step.node_id, reply="ana-arroba-exemplo")  # type: ignore[arg-type]
    assert (step.status, step.node_id, step.context.attempts) == ("waiting", "espera_email", 1)
    assert "não parece válido" in step.actions[0].text  # type: ignore[union-attr]

    step = walk(defn, step.context, step.node_id, reply="Ana@Exemplo.com.br")  # type: ignore[arg-type]
    assert step.node_id == "espera_horario"
    assert step.context.contact.custom_data["email"] == "ana@exemplo.com.br"

    step = walk(defn, step.context, step.node_id, reply="Quinta às 15h")  # type: ignore[arg-type]
    assert (step.status, step.node_id) == ("completed", "fim")
    assert step.actions[1:] == [AddTag("agendamento"), Route(team_name="Vendas", pause_bot=True),
                                SendText("Tudo certo! Um de nossos especialistas já vai te chamar para confirmar "
                                         "o agendamento.")]
    assert step.context.contact.tags == ("agendamento",)
    assert [s.node_id for s in step.steps] == ["espera_horario", "tag_agendamento", "rota_vendas", "confirmacao",
                                               "fim"]


def test_walk_scheduling_funnel_invalid_email_branch_and_timeout() -> None:
    defn = load_definition(scheduling_funnel())
    ctx = make_ctx(attempts=2)
    step = walk(defn, ctx, "espera_email", reply="sem email")
    assert step.node_id == "espera_horario"
    assert [s.node_id for s in step.steps] == ["espera_email", "email_invalido", "pede_horario", "espera_horario"]
    timed_out = walk(defn, make_ctx(), "espera_nome", timed_out=True)
    assert timed_out.status == "completed" and timed_out.node_id == "sem_nome"


def test_walk_welcome_funnel_each_branch() -> None:
    defn = load_definition(welcome_funnel())
    first = walk(defn, make_ctx(contact={"name": None}), "inicio")
    assert first.status == "waiting" and first.node_id == "menu"
    assert first.actions[0] == SendText("Olá! 👋 Seja bem-vindo(a) à nossa empresa.")
    assert first.actions[1] == SendText("Como podemos ajudar?\n\n1. Vendas\n2. Suporte")

    sales = walk(defn, first.context, "menu", reply="1")
    assert sales.status == "completed"
    assert sales.actions[:2] == [SetVariable("assunto", "Vendas"), Route(team_name="Vendas", pause_bot=True)]
    support = walk(defn, first.context, "menu", reply="suporte")
    assert Route(team_name="Suporte", pause_bot=True) in support.actions

    retry = walk(defn, first.context, "menu", reply="hein?")
    assert retry.status == "waiting" and retry.wait is not None and retry.wait.attempts == 1
    lost = walk(defn, retry.context, "menu", reply="hein?")
    lost = walk(defn, lost.context, "menu", reply="???")
    assert lost.status == "completed" and lost.node_id == "rota_atendimento"

    quiet = walk(defn, first.context, "menu", timed_out=True)
    assert quiet.status == "completed" and quiet.node_id == "sem_resposta"


def test_walk_edge_cases() -> None:
    defn = load_definition(welcome_funnel())
    assert walk(defn, make_ctx(), "nao_existe").status == "failed"
    loop = load_definition({
        "nodes": [{"id": "t", "type": "trigger", "data": {"kind": "any_message"}},
                  {"id": "d", "type": "delay", "data": {"seconds": 5}}],
        "edges": [{"id": "e1", "source": "t", "target": "d", "label": "next"},
                  {"id": "e2", "source": "d", "target": "d", "label": "next"}],
    })
    delayed = walk(loop, make_ctx(), "t")
    assert delayed.status == "waiting" and delayed.wait is not None and delayed.wait.kind == "timer"
    assert walk(loop, make_ctx(), "d", reply="oi").status == "ignored"
    assert walk(loop, make_ctx(), "d", timed_out=True).status == "waiting"  # loops back through the delay


def test_walk_stops_a_loop_that_never_waits() -> None:
    from engine.core.definition import FunnelDefinition
    # Validation refuses this; the walker must still not spin forever on an unvalidated definition.
    defn = FunnelDefinition.model_validate({
        "nodes": [{"id": "t", "type": "trigger", "data": {"kind": "any_message"}},
                  {"id": "s", "type": "set_field", "data": {"target": "vars.x", "value": "1"}}],
        "edges": [{"id": "e1", "source": "t", "target": "s"}, {"id": "e2", "source": "s", "target": "s"}],
    })
    result = walk(defn, make_ctx(), "t", max_steps=20)
    assert result.status == "failed" and len(result.steps) == 20 and "limite" in (result.error or "")


def test_published_patterns_the_engine_cannot_run_load_never_match_and_say_why() -> None:
    # A version published while patterns ran on Python's re may hold a backreference: RE2 cannot run it.
    raw = {
        "nodes": [
            {"id": "t", "type": "trigger", "data": {"kind": "keyword", "mode": "regex", "words": [r"(a)\1", "^oi"]}},
            {"id": "c", "type": "condition", "data": {"groups": [{"rules": [
                {"field": "last_reply", "operator": "regex", "value": r"(s)\1"}]}]}},
            {"id": "yes", "type": "end", "data": {}},
            {"id": "no", "type": "end", "data": {}},
        ],
        "edges": [{"id": "e1", "source": "t", "target": "c", "label": "next"},
                  {"id": "e2", "source": "c", "target": "yes", "label": "true"},
                  {"id": "e3", "source": "c", "target": "no", "label": "false"}],
    }
    draft = validate_definition(raw)  # the editor and publishing say why
    assert {(p.code, p.node_id) for p in draft.errors} == {("invalid_regex", "t"), ("invalid_regex", "c")}
    assert all("retrovisor" in p.message for p in draft.errors)
    defn = load_definition(raw)  # the published version still runs
    candidates = defn.trigger_candidates(1)
    assert pick_trigger(candidates, TriggerEvent("message", text="aa")) is None
    assert pick_trigger(candidates, TriggerEvent("message", text="oi")).keyword == "^oi"  # type: ignore[union-attr]
    result = walk(defn, make_ctx(last_reply="ss"), "c")
    assert result.status == "completed" and [s.node_id for s in result.steps] == ["c", "no"]
    assert any("retrovisor" in line and "falsa" in line for line in result.steps[0].result.log)


# -- Perguntar à IA (the turn's call itself: tests/test_ai_step.py) ---------------------------------------------

def _ai(**data: Any):
    base = {"prompt": "Qualifique. {{history}}", "fields": [
        {"key": "nome", "type": "text", "save_to": "contact.name"},
        {"key": "email", "type": "email", "required": False}], "max_turns": 2}
    return parse_node({"id": "ia", "type": "ai_reply", "data": {**base, **data}})


def _ai_ctx(variables: dict | None = None) -> ExecutionContext:
    return ExecutionContext(now=datetime(2026, 3, 2, 14, 0, tzinfo=UTC), variables=variables or {})


def test_ai_reply_turns_are_outside_calls_and_replies_meanwhile_are_folded():
    from engine.core.nodes import result_node
    from engine.core.nodes.base import CallOutside, SendText, SetContactField, SetVariable

    node = _ai()
    first = execute_node(node, _ai_ctx())
    call = next(a for a in first.actions if isinstance(a, CallOutside))
    assert first.wait.kind == "call" and call.service == "ai" and call.request["turn"] == 1
    assert "{{history}}" not in call.request["prompt"] and "mensagens a seguir" in call.request["prompt"]
    assert [f["save_to"] for f in call.request["fields"]] == ["contact.name", "vars.email"]
    state = first.variables
    folded = resume_node(node, _ai_ctx(state), "sou o Rui")
    assert folded.wait.kind == "call" and not any(isinstance(a, CallOutside) for a in folded.actions)
    state = folded.variables
    answer = {"ok": True, "reply": "Oi, Rui!", "accepted": [
        {"key": "nome", "value": "Rui", "message_id": 9, "message_at": "2026-03-02T14:00:00+00:00"}],
        "rejected": [], "meta": {"model": "m"}}
    done = result_node(node, _ai_ctx(state), answer)
    assert done.output == "qualificado", "email is optional"
    stored = next(a for a in done.actions if isinstance(a, SetContactField))
    assert (stored.field, stored.value, stored.source["message_id"], stored.source["model"]) == ("name", "Rui", 9, "m")
    assert any(isinstance(a, SendText) and a.text == "Oi, Rui!" for a in done.actions)
    assert SetVariable("__ai", None) in done.actions


def test_ai_reply_outputs():
    from engine.core.nodes import result_node

    node = _ai()
    state = execute_node(node, _ai_ctx()).variables
    assert result_node(node, _ai_ctx(state), {"ok": False, "kind": "budget", "error": "x"}).output == "erro"
    assert result_node(node, _ai_ctx(state), {"ok": True, "handoff": True, "reply": ""}).output == "humano"
    waiting = result_node(node, _ai_ctx(state), {"ok": True, "reply": "Seu nome?"})
    assert waiting.wait.kind == "reply" and waiting.output is None
    assert timeout_node(node, _ai_ctx(waiting.variables)).output == "incompleto"
    assert timeout_node(node, _ai_ctx(state)).output == "erro", "a turn longer than the step's limit"
    second = resume_node(node, _ai_ctx(waiting.variables), "não sei")
    assert second.wait.kind == "call"
    last = result_node(node, _ai_ctx(second.variables), {"ok": True, "reply": "E o nome?"})
    assert last.output == "incompleto" and not last.wait, "max_turns reached"
    pending = resume_node(node, _ai_ctx(state), "oi de novo")
    folded_turn = result_node(node, _ai_ctx(pending.variables), {"ok": True, "reply": "Oi!"})
    assert folded_turn.wait.kind == "call", "a message that came during the call starts the next turn at once"
