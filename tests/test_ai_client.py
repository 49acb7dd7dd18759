"""ai_client.chat against a real local OpenAI-compatible server (tests/fake_llm.py) and real PostgreSQL."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from sqlalchemy import select

from tests.factories import make_actor, make_ai_provider, make_workspace
from workbench.base.errors import NotFound
from workbench.services import ai_client
from workbench.services.ai_client import AIError, ToolCall
from workbench.services.workspace_settings import DEFAULT_PRICES, ModelPrice
from workbench.store.db import session_scope
from workbench.store.models import AIUsage, Setting

KEY = "sk-test-secret-1234"
SAVE_TOOL = {"type": "function", "function": {
    "name": "salvar_dados", "description": "Guarda dados do contato",
    "parameters": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"],
                   "additionalProperties": False}}}


def _chat(ws, provider=None, **kw):
    kw.setdefault("tools", None)
    kw.setdefault("json_schema", None)
    kw.setdefault("temperature", None)
    kw.setdefault("max_tokens", 100)
    messages = kw.pop("messages", [{"role": "system", "content": "Seja breve."},
                                   {"role": "user", "content": "Meu e-mail é ana@example.com"}])
    with session_scope() as s:
        return ai_client.chat(s, ws, provider, messages, **kw)


def _usage(ws):
    with session_scope() as s:
        return s.scalars(select(AIUsage).where(AIUsage.workspace_id == ws).order_by(AIUsage.id)).all()


def test_plain_text_answer_records_usage_and_sends_the_key_only_in_the_header(engine, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url, model="gpt-4o-mini")
    fake_llm.script([{"text": "Olá, Ana!", "usage": (1000, 500)}])
    answer = _chat(ws)
    assert answer.text == "Olá, Ana!" and answer.tool_calls == ()
    assert (answer.prompt_tokens, answer.completion_tokens, answer.total_tokens) == (1000, 500, 1500)
    assert answer.model == "gpt-4o-mini"
    assert answer.cost_estimate == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    [request] = fake_llm.requests
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert KEY not in json.dumps(request["body"])
    assert request["body"]["max_tokens"] == 100 and request["body"]["temperature"] == 0.3
    [usage] = _usage(ws)
    assert (usage.outcome, usage.total_tokens, usage.purpose, usage.model) == ("ok", 1500, "step", "gpt-4o-mini")


def test_tool_calls_are_typed_and_malformed_arguments_are_kept_raw(engine, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url)
    fake_llm.script([{"tool_calls": [{"name": "salvar_dados", "arguments": {"email": "ana@example.com"}},
                                     {"name": "salvar_dados", "arguments": "{\"email\": "}]}])
    answer = _chat(ws, tools=[SAVE_TOOL])
    assert answer.text is None
    good, bad = answer.tool_calls
    assert good == ToolCall("call_0", "salvar_dados", {"email": "ana@example.com"}, '{"email": "ana@example.com"}')
    assert (bad.name, bad.arguments, bad.raw_arguments) == ("salvar_dados", None, '{"email": ')
    body = fake_llm.chat_requests()[0]
    assert body["tools"] == [SAVE_TOOL] and body["tool_choice"] == "auto" and "response_format" not in body


def test_a_provider_without_tool_calling_gets_a_strict_json_answer_turned_into_tool_calls(engine, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url, tool_mode="json")
    fake_llm.script([{"json": {"reply": "Anotado!", "tool_calls": [
        {"name": "salvar_dados", "arguments": {"email": "ana@example.com"}}]}},
        {"text": "isto não é JSON"}])
    answer = _chat(ws, tools=[SAVE_TOOL])
    assert answer.text == "Anotado!"
    assert answer.tool_calls == (ToolCall("json-0", "salvar_dados", {"email": "ana@example.com"},
                                          '{"email": "ana@example.com"}'),)
    body = fake_llm.chat_requests()[0]
    assert "tools" not in body
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    variants = fmt["json_schema"]["schema"]["properties"]["tool_calls"]["items"]["anyOf"]
    assert variants[0]["properties"]["arguments"] == SAVE_TOOL["function"]["parameters"]
    # our instruction is a system message placed after the caller's; the lead's text stays in the user message
    assert [m["role"] for m in body["messages"]] == ["system", "system", "user"]
    assert "ana@example.com" not in body["messages"][1]["content"]
    garbled = _chat(ws, tools=[SAVE_TOOL])
    assert (garbled.text, garbled.tool_calls, garbled.raw_text) == (None, (), "isto não é JSON")


def test_a_json_schema_answer_is_requested_and_returned_as_text(engine, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    fake_llm.script([{"json": {"ok": True}}])
    answer = _chat(ws, json_schema=schema)
    assert json.loads(answer.text) == {"ok": True}
    fmt = fake_llm.chat_requests()[0]["response_format"]
    assert fmt["json_schema"]["schema"] == schema and fmt["json_schema"]["strict"] is False


@pytest.mark.parametrize(("answer", "kind", "retryable"), [
    ({"status": 429}, "rate_limited", True),
    ({"status": 500}, "server", True),
    ({"status": 503}, "server", True),
    ({"status": 401}, "auth", False),
    ({"status": 400}, "bad_request", False),
    ({"status": 404}, "bad_request", False),
])
def test_http_errors_map_to_kinds_with_one_attempt(engine, fake_llm, answer, kind, retryable):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url)
    fake_llm.script([answer])
    with pytest.raises(AIError) as caught:
        _chat(ws)
    assert (caught.value.kind, caught.value.retryable) == (kind, retryable)
    assert len(fake_llm.chat_requests()) == 1  # the SDK did not retry: the caller's mechanism does
    assert caught.value.key == f"error.ai_{kind}"
    [usage] = _usage(ws)
    assert (usage.outcome, usage.total_tokens) == (kind, 0)


def test_a_slow_answer_past_the_timeout_is_a_retryable_timeout(engine, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url, timeout_s=0.3)
    fake_llm.script([{"text": "tarde demais", "delay": 5}])
    with pytest.raises(AIError) as caught:
        _chat(ws)
    assert (caught.value.kind, caught.value.retryable) == ("timeout", True)
    assert _usage(ws)[0].outcome == "timeout"


def test_a_server_that_is_down_is_a_retryable_server_error(engine, fake_llm):
    ws = make_workspace()
    url = fake_llm.url
    fake_llm.stop()
    make_ai_provider(ws, url)
    with pytest.raises(AIError) as caught:
        _chat(ws)
    assert (caught.value.kind, caught.value.retryable) == ("server", True)


def test_the_key_never_reaches_logs_errors_or_usage(engine, fake_llm, caplog):
    caplog.set_level(logging.DEBUG)
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url)
    fake_llm.script([{"text": "oi"}, {"status": 401, "body": {"error": {"message": f"bad key {KEY}"}}}])
    _chat(ws)
    with pytest.raises(AIError) as caught:
        _chat(ws)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value.context)
    assert KEY not in caplog.text
    assert caplog.records  # the calls were logged, without the key
    with session_scope() as s:
        provider = ai_client.load_provider(s, ws, None)
        assert KEY not in repr(provider)
        dump = json.dumps([[str(v) for v in row] for row in s.execute(select(AIUsage.__table__)).all()])
    assert KEY not in dump


def test_budget_exhausted_refuses_the_call_without_reaching_the_provider(engine, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url)
    with session_scope() as s:
        s.add(Setting(workspace_id=ws, key="ai", value={"monthly_token_budget": 30}))
    fake_llm.script([{"text": "um", "usage": (20, 10)}, {"text": "dois"}])
    _chat(ws)
    with session_scope() as s:
        assert ai_client.budget_left(s, ws) == 0
    with pytest.raises(AIError) as caught:
        _chat(ws)
    assert (caught.value.kind, caught.value.retryable) == ("budget", False)
    assert len(fake_llm.chat_requests()) == 1
    assert [u.outcome for u in _usage(ws)] == ["ok", "budget"]


def test_providers_of_another_workspace_are_not_found(engine, fake_llm):
    ws, other = make_workspace(), make_workspace("Outra")
    theirs = make_ai_provider(other, fake_llm.url)
    with pytest.raises(NotFound) as caught:
        _chat(ws, theirs)
    assert isinstance(caught.value, AIError) and (caught.value.kind, caught.value.retryable) == ("config", False)
    assert caught.value.key == "error.ai_provider_not_found"
    with pytest.raises(AIError) as caught:  # and this workspace has no default of its own
        _chat(ws)
    assert caught.value.kind == "config"
    for bad in ("1", 2**70, -1, True):
        with pytest.raises(NotFound):
            _chat(ws, bad)
    assert fake_llm.requests == []


def test_named_provider_and_temperature_override(engine, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url, name="Padrão", model="a")
    second = make_ai_provider(ws, fake_llm.url, name="Outro", model="b", default=False)
    _chat(ws, second, temperature=0.9, purpose="summary")
    body = fake_llm.chat_requests()[0]
    assert (body["model"], body["temperature"]) == ("b", 0.9)
    assert _usage(ws)[0].purpose == "summary"


def test_max_tokens_is_bounded(engine, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url)
    with pytest.raises(AIError) as caught:
        _chat(ws, max_tokens=10**9)
    assert caught.value.kind == "config"


def test_prices_match_dated_versions_and_unknown_models_have_no_estimate():
    prices = dict(DEFAULT_PRICES)
    assert ai_client.price_for(prices, "gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert ai_client.price_for(prices, "gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert ai_client.price_for(prices, "models/gemini-2.5-flash") == DEFAULT_PRICES["gemini-2.5-flash"]
    assert ai_client.estimate_cost(prices, "llama3.2:3b", 100, 100) is None
    prices["llama3.2"] = ModelPrice()
    assert ai_client.estimate_cost(prices, "llama3.2:3b", 100, 100) == 0


def test_the_workspace_concurrency_limit_holds_across_threads(engine, r, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url, timeout_s=10)
    with session_scope() as s:
        s.add(Setting(workspace_id=ws, key="ai", value={"max_concurrent_calls": 2}))
    fake_llm.default = {"text": "ok", "delay": 0.3}
    errors = []

    def one_call():
        try:
            _chat(ws)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one_call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(fake_llm.chat_requests()) == 6 and fake_llm.max_in_flight == 2
    assert r.zcard(ai_client.SLOTS_KEY.format(ws)) == 0  # every slot given back


def test_no_free_slot_within_the_timeout_is_a_retryable_rate_limit_without_a_call(engine, r, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url, timeout_s=0.2)
    with session_scope() as s:
        s.add(Setting(workspace_id=ws, key="ai", value={"max_concurrent_calls": 1}))
    with ai_client.call_slot(ws, 1, 60, 0):  # another process holds the only slot
        with pytest.raises(AIError) as caught:
            _chat(ws)
    assert (caught.value.kind, caught.value.retryable) == ("rate_limited", True)
    assert fake_llm.requests == []
    assert _usage(ws)[0].outcome == "rate_limited"
    _chat(ws)  # released: the next call goes through


def test_an_answer_past_the_size_cap_is_refused_and_compression_is_not_asked_for(engine, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url)
    fake_llm.script([{"text": "x" * (ai_client.MAX_ANSWER_BYTES + 10)}, {"text": "pequena"}])
    with pytest.raises(AIError) as caught:
        _chat(ws)
    assert caught.value.kind == "server" and "larger than" in caught.value.detail
    assert _chat(ws).text == "pequena"  # the client still works
    assert fake_llm.requests[-1]["headers"]["accept-encoding"] == "identity"


def test_with_tools_and_a_json_schema_a_provider_without_tool_calling_gets_the_callers_schema(engine, fake_llm):
    ws = make_workspace()
    with session_scope() as s:
        ai_client.save_provider(s, ws, "Local", base_url=fake_llm.url, model="m", api_key=None, tool_calling=False)
    schema = {"type": "object", "properties": {"resposta": {"type": "string"}}, "required": ["resposta"],
              "additionalProperties": False}
    fake_llm.script([{"json": {"resposta": "Anotado!"}}])
    answer = _chat(ws, tools=[SAVE_TOOL], json_schema=schema)
    assert json.loads(answer.text) == {"resposta": "Anotado!"} and answer.tool_calls == ()
    body = fake_llm.chat_requests()[0]
    assert "tools" not in body and body["response_format"]["json_schema"] == {
        "name": "answer", "schema": schema, "strict": True}
    # with tool calling the tools go as tools, and the schema is not used
    with session_scope() as s:
        tools_id = ai_client.save_provider(s, ws, "Tools", base_url=fake_llm.url, model="m", api_key="sk-x-0001")
    _chat(ws, tools_id, tools=[SAVE_TOOL], json_schema=schema)
    body = fake_llm.chat_requests()[1]
    assert body["tools"] == [SAVE_TOOL] and "response_format" not in body


def test_an_answer_in_another_json_shape_is_left_to_the_caller(engine, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url, tool_mode="json")
    fake_llm.script([{"json": {"resposta": "Oi"}}])
    answer = _chat(ws, tools=[SAVE_TOOL])
    assert json.loads(answer.text) == {"resposta": "Oi"} and answer.tool_calls == () and answer.raw_text is None


def test_helpers_for_the_ai_step(engine, fake_llm):
    ws, other = make_workspace(), make_workspace("Outra")
    with session_scope() as s:
        first = ai_client.save_provider(s, ws, "A", base_url=fake_llm.url, model="m", api_key=KEY)
        second = ai_client.save_provider(s, ws, "B", base_url=fake_llm.url, model="m", api_key=None,
                                         tool_calling=False, is_default=True, timeout_s=5)
        ai_client.save_provider(s, other, "C", base_url=fake_llm.url, model="m", api_key=None)
        s.add(Setting(workspace_id=ws, key="ai", value={"master_prompt": "Você é a Bia."}))
    with session_scope() as s:
        assert ai_client.master_prompt(s, ws) == "Você é a Bia." and ai_client.master_prompt(s, other) == ""
        default = ai_client.load_provider(s, ws, None)
        assert (default.id, default.use_tools, default.timeout_s) == (second, False, 5.0)
        assert ai_client.load_provider(s, ws, first).api_key == KEY
    actor = make_actor(ws, "supervisor")
    assert ai_client.list_providers(actor) == [{"id": second, "name": "B", "is_default": True},
                                               {"id": first, "name": "A", "is_default": False}]


def test_a_slot_left_by_a_dead_process_lapses(engine, r, fake_llm):
    ws = make_workspace()
    make_ai_provider(ws, fake_llm.url, timeout_s=0.2)
    with session_scope() as s:
        s.add(Setting(workspace_id=ws, key="ai", value={"max_concurrent_calls": 1}))
    key = ai_client.SLOTS_KEY.format(ws)
    r.zadd(key, {"dead-process": 1})  # its slot lapsed long ago (scores are when a slot lapses, in ms)
    assert _chat(ws).text == "ok"
    assert r.zcard(key) == 0


def test_a_key_the_server_cannot_decrypt_is_a_config_error(engine, fake_llm):
    from cryptography.fernet import Fernet

    from workbench.base.i18n import error_text
    from workbench.store.models import AIProvider

    ws = make_workspace()
    provider_id = make_ai_provider(ws, fake_llm.url)
    with session_scope() as s:  # encrypted under another server's key
        s.get(AIProvider, provider_id).api_key = Fernet(Fernet.generate_key()).encrypt(b"sk-elsewhere")
    with pytest.raises(AIError) as caught:
        _chat(ws)
    assert (caught.value.kind, caught.value.retryable) == ("config", False)
    assert error_text(caught.value) == "A chave de criptografia do servidor é inválida. Fale com o administrador."
    assert fake_llm.requests == []
