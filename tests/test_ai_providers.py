"""Configurações › IA service: providers (CRUD, encryption, isolation, roles), Testar conexão, models, settings."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select, text

from tests.factories import make_actor, make_workspace
from workbench.base.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from workbench.base.i18n import error_text
from workbench.services import ai_client, ai_providers
from workbench.services.ai_client import AIError
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, AIProvider, AIUsage

KEY = "sk-live-abcdefghijklmnop-WXYZ"


def _custom(fake_llm, **kw):
    return {"name": "Local", "preset": "custom", "base_url": fake_llm.url, "model": "fake-model", "api_key": KEY,
            **kw}


def test_a_provider_is_stored_with_its_key_encrypted_and_shown_only_by_its_last_4(engine, fake_llm):
    admin = make_actor(make_workspace())
    view = ai_providers.create_provider(admin, _custom(fake_llm))
    assert (view.key_last4, view.is_default, view.base_url, view.model) == ("WXYZ", True, fake_llm.url, "fake-model")
    assert KEY not in repr(view) and not hasattr(view, "api_key")
    assert KEY not in repr(ai_providers.list_providers(admin))
    # a dump of the row's bytes holds no trace of the key
    with session_scope() as s:
        dump = s.execute(text("SELECT row_to_json(p)::text, encode(api_key, 'escape') FROM ai_providers p")).one()
    assert KEY not in dump[0] and KEY not in dump[1] and "abcdefghijklmnop" not in dump[0] + dump[1]
    # the key is still usable for calls
    with session_scope() as s:
        assert ai_client.load_provider(s, admin.workspace_id, view.id).api_key == KEY


def test_presets_build_their_urls_and_hosted_ones_need_a_key(engine):
    admin = make_actor(make_workspace())
    gemini = ai_providers.create_provider(admin, {"name": "Gemini", "preset": "gemini", "api_key": "AIza-1234"})
    assert (gemini.base_url, gemini.model) == ("https://generativelanguage.googleapis.com/v1beta/openai/",
                                               "gemini-2.0-flash")
    cf = ai_providers.create_provider(admin, {"name": "CF", "preset": "cloudflare", "api_key": "tok-9876",
                                              "account_id": "0123456789abcdef0123456789abcdef"})
    assert cf.base_url == "https://api.cloudflare.com/client/v4/accounts/0123456789abcdef0123456789abcdef/ai/v1"
    assert cf.account_id == "0123456789abcdef0123456789abcdef" and not cf.is_default  # the first stays default
    openai_view = ai_providers.create_provider(admin, {"name": "OpenAI", "preset": "openai", "api_key": "sk-1"})
    assert openai_view.base_url == "https://api.openai.com/v1" and openai_view.model == "gpt-4o-mini"
    with pytest.raises(InvalidInput) as caught:
        ai_providers.create_provider(admin, {"name": "Sem chave", "preset": "openai"})
    assert error_text(caught.value) == "Este provedor precisa de uma chave de API."
    with pytest.raises(InvalidInput) as caught:
        ai_providers.create_provider(admin, {"name": "CF2", "preset": "cloudflare", "api_key": "t",
                                             "account_id": "../../x"})
    assert caught.value.key == "error.ai_account_id"
    # a local server needs no key
    local = ai_providers.create_provider(admin, {"name": "Ollama", "preset": "custom",
                                                 "base_url": "http://localhost:11434/v1", "model": "llama3.2"})
    assert local.key_last4 is None


@pytest.mark.parametrize(("values", "key"), [
    ({"name": ""}, "error.ai_name"),
    ({"name": "x" * 121}, "error.ai_name"),
    ({"base_url": "ftp://example.com"}, "error.ai_base_url"),
    ({"base_url": "localhost:11434"}, "error.ai_base_url"),
    ({"base_url": "http://" + "a" * 600}, "error.ai_base_url"),
    ({"model": "  "}, "error.ai_model"),
    ({"temperature": 3}, "error.ai_temperature"),
    ({"temperature": "nan"}, "error.ai_temperature"),
    ({"timeout_s": 0}, "error.ai_timeout_range"),
    ({"timeout_s": "abc"}, "error.ai_timeout_range"),
    ({"tool_mode": "magic"}, "error.ai_tool_mode"),
    ({"api_key": "sk with space"}, "error.ai_key"),
    ({"preset": "azure"}, "error.ai_preset"),
])
def test_bad_input_is_refused_with_a_message_and_nothing_is_stored(engine, fake_llm, values, key):
    admin = make_actor(make_workspace())
    with pytest.raises(InvalidInput) as caught:
        ai_providers.create_provider(admin, _custom(fake_llm, **values))
    assert caught.value.key == key
    assert not error_text(caught.value).startswith("Algo deu errado")
    assert ai_providers.list_providers(admin) == []


def test_update_keeps_the_key_unless_a_new_one_is_given_and_default_moves(engine, fake_llm):
    admin = make_actor(make_workspace())
    first = ai_providers.create_provider(admin, _custom(fake_llm))
    second = ai_providers.create_provider(admin, _custom(fake_llm, name="Outro", api_key="sk-other-5678"))
    assert not second.is_default
    updated = ai_providers.update_provider(admin, first.id, {"model": "fake-model-mini", "api_key": "",
                                                             "temperature": 0.7})
    assert (updated.key_last4, updated.model, updated.temperature) == ("WXYZ", "fake-model-mini", 0.7)
    ai_providers.set_default(admin, second.id)
    views = ai_providers.list_providers(admin)
    assert [(v.name, v.is_default) for v in views] == [("Outro", True), ("Local", False)]
    with pytest.raises(Conflict):
        ai_providers.update_provider(admin, first.id, {"name": "outro"[0].upper() + "utro"})
    ai_providers.delete_provider(admin, second.id)  # the default goes: the remaining one takes over
    assert [(v.name, v.is_default) for v in ai_providers.list_providers(admin)] == [("Local", True)]
    cleared = ai_providers.update_provider(admin, first.id, {"clear_key": True})
    assert cleared.key_last4 is None


def test_only_admins_manage_providers_and_supervisors_only_list_choices(engine, fake_llm):
    ws = make_workspace()
    admin, supervisor, agent = make_actor(ws), make_actor(ws, "supervisor"), make_actor(ws, "agent")
    view = ai_providers.create_provider(admin, _custom(fake_llm))
    for actor in (supervisor, agent):
        for call in (lambda a: ai_providers.list_providers(a), lambda a: ai_providers.create_provider(a, {}),
                     lambda a: ai_providers.update_provider(a, view.id, {"model": "x"}),
                     lambda a: ai_providers.delete_provider(a, view.id),
                     lambda a: ai_providers.check_connection(a, view.id),
                     lambda a: ai_providers.save_ai_settings(a, {"master_prompt": "x"})):
            with pytest.raises(PermissionDenied):
                call(actor)
    assert ai_providers.provider_choices(supervisor) == [(view.id, "Local", True)]
    with pytest.raises(PermissionDenied):
        ai_providers.provider_choices(agent)
    assert fake_llm.requests == []


def test_another_workspaces_provider_is_not_found(engine, fake_llm):
    mine, theirs = make_actor(make_workspace()), make_actor(make_workspace("Outra"))
    their_view = ai_providers.create_provider(theirs, _custom(fake_llm))
    for call in (ai_providers.get_provider, ai_providers.delete_provider, ai_providers.check_connection,
                 ai_providers.list_models, lambda a, i: ai_providers.update_provider(a, i, {"model": "x"})):
        with pytest.raises(NotFound):
            call(mine, their_view.id)
    for bad in (0, -5, "1", 2**64, None):
        with pytest.raises(NotFound):
            ai_providers.get_provider(mine, bad)
    assert ai_providers.list_providers(mine) == []
    assert ai_providers.provider_choices(mine) == []
    assert ai_providers.get_provider(theirs, their_view.id).model == "fake-model"  # untouched
    assert fake_llm.requests == []


def test_check_connection_finds_tool_calling(engine, fake_llm):
    admin = make_actor(make_workspace())
    view = ai_providers.create_provider(admin, _custom(fake_llm))
    fake_llm.script([{"tool_calls": [{"name": "confirmar_teste", "arguments": {"ok": True}}], "model": "fm-1"}])
    result = ai_providers.check_connection(admin, view.id)
    assert (result.ok, result.model, result.supports_tools, result.error_key) == (True, "fm-1", True, None)
    assert result.latency_ms >= 0
    stored = ai_providers.get_provider(admin, view.id)
    assert stored.supports_tools is True and stored.tested_at is not None and stored.uses_tools
    body = fake_llm.chat_requests()[0]
    assert body["tools"][0]["function"]["name"] == "confirmar_teste" and body["max_tokens"] == 64
    with session_scope() as s:
        assert s.scalars(select(AIUsage.purpose)).all() == ["test"]


def test_check_connection_without_tool_calling_falls_back_to_json(engine, fake_llm):
    admin = make_actor(make_workspace())
    view = ai_providers.create_provider(admin, _custom(fake_llm))
    # a server that ignores the tool and answers in text
    fake_llm.script([{"text": "ok, testado"}])
    result = ai_providers.check_connection(admin, view.id)
    assert (result.ok, result.supports_tools) == (True, False)
    assert not ai_providers.get_provider(admin, view.id).uses_tools
    # a server that refuses tools with a 400 gets one plain call
    fake_llm.no_tools = True
    result = ai_providers.check_connection(admin, view.id)
    assert (result.ok, result.supports_tools) == (True, False)
    assert ["tools" in b for b in fake_llm.chat_requests()] == [True, True, False]
    # the admin may force tool calling anyway
    forced = ai_providers.update_provider(admin, view.id, {"tool_mode": "tools"})
    assert forced.uses_tools


def test_check_connection_reports_failures_without_changing_the_capability(engine, fake_llm):
    admin = make_actor(make_workspace())
    view = ai_providers.create_provider(admin, _custom(fake_llm, timeout_s=1))
    fake_llm.script([{"tool_calls": [{"name": "confirmar_teste", "arguments": {"ok": True}}]}])
    ai_providers.check_connection(admin, view.id)
    fake_llm.script([{"status": 401}])
    failed = ai_providers.check_connection(admin, view.id)
    assert (failed.ok, failed.error_key) == (False, "error.ai_auth")
    fake_llm.script([{"text": "lento", "delay": 5}])
    slow = ai_providers.check_connection(admin, view.id)
    assert (slow.ok, slow.error_key) == (False, "error.ai_timeout")
    assert ai_providers.get_provider(admin, view.id).supports_tools is True


def test_models_are_listed_from_the_provider(engine, fake_llm):
    admin = make_actor(make_workspace())
    view = ai_providers.create_provider(admin, _custom(fake_llm))
    fake_llm.models = ["zeta", "models/alpha", "beta"]
    assert ai_providers.list_models(admin, view.id) == ["alpha", "beta", "zeta"]
    assert fake_llm.requests[-1]["path"] == "/v1/models"
    assert fake_llm.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"
    url = fake_llm.url
    fake_llm.stop()
    ai_providers.update_provider(admin, view.id, {"base_url": url})
    with pytest.raises(AIError) as caught:
        ai_providers.list_models(admin, view.id)
    assert caught.value.kind == "server"


def test_the_key_is_not_logged_by_any_provider_operation(engine, fake_llm, caplog):
    caplog.set_level(logging.DEBUG)
    admin = make_actor(make_workspace())
    view = ai_providers.create_provider(admin, _custom(fake_llm))
    fake_llm.script([{"tool_calls": [{"name": "confirmar_teste", "arguments": {"ok": True}}]}])
    ai_providers.check_connection(admin, view.id)
    ai_providers.list_models(admin, view.id)
    ai_providers.update_provider(admin, view.id, {"api_key": KEY + "2"})
    assert KEY not in caplog.text


def test_ai_settings_and_monthly_usage(engine, fake_llm):
    ws = make_workspace()
    admin, supervisor = make_actor(ws), make_actor(ws, "supervisor")
    view = ai_providers.create_provider(admin, _custom(fake_llm, model="gpt-4o-mini"))
    saved = ai_providers.save_ai_settings(admin, {"master_prompt": "Você é a Bia, da Loja.",
                                                  "monthly_token_budget": 1000, "max_concurrent_calls": 2})
    assert saved.master_prompt == "Você é a Bia, da Loja." and saved.prices  # defaults kept
    assert ai_providers.get_ai_settings(supervisor).monthly_token_budget == 1000
    with pytest.raises(InvalidInput):
        ai_providers.save_ai_settings(admin, {"max_concurrent_calls": 0})
    with pytest.raises(InvalidInput):
        ai_providers.save_ai_settings(admin, {"master_prompt": "x" * 9000})
    with pytest.raises(PermissionDenied):  # the generic settings service keeps the AI settings for admins too
        ai_providers.workspace_settings.save_setting(supervisor, "ai", {})
    fake_llm.script([{"text": "a", "usage": (300, 100)}, {"status": 500}])
    with session_scope() as s:
        ai_client.chat(s, ws, None, [{"role": "user", "content": "oi"}], tools=None, json_schema=None,
                       temperature=None, max_tokens=10)
        with pytest.raises(AIError):
            ai_client.chat(s, ws, view.id, [{"role": "user", "content": "oi"}], tools=None, json_schema=None,
                           temperature=None, max_tokens=10)
    usage = ai_providers.usage_this_month(admin)
    assert (usage.calls, usage.failed, usage.total_tokens, usage.budget, usage.budget_left) == (2, 1, 400, 1000, 600)
    assert usage.cost_estimate == pytest.approx((300 * 0.15 + 100 * 0.6) / 1e6)
    [line] = usage.by_purpose
    assert (line.purpose, line.calls, line.failed, line.total_tokens) == ("step", 2, 1, 400)
    ai_providers.delete_provider(admin, view.id)
    with session_scope() as s:  # usage outlives the provider, still counted
        assert s.scalar(select(AIUsage.provider_id).limit(1)) is None
        assert s.scalar(select(AIProvider.id)) is None
    assert ai_providers.usage_this_month(admin).total_tokens == 400


def test_the_price_table_is_editable_and_bounded(engine, fake_llm):
    admin = make_actor(make_workspace())
    ai_providers.create_provider(admin, _custom(fake_llm, model="meu-modelo"))
    ai_providers.save_ai_settings(admin, {"prices": {"meu-modelo": {"input_per_1m": 1.0, "output_per_1m": 2.0}}})
    assert list(ai_providers.get_ai_settings(admin).prices) == ["meu-modelo"]
    fake_llm.script([{"text": "oi", "usage": (1_000_000, 500_000)}])
    with session_scope() as s:
        answer = ai_client.chat(s, admin.workspace_id, None, [{"role": "user", "content": "oi"}], tools=None,
                                json_schema=None, temperature=None, max_tokens=10)
    assert answer.cost_estimate == pytest.approx(2.0)
    for bad in ({"x": {"input_per_1m": -1}}, {"x": {"output_per_1m": float("inf")}},
                {f"m{i}": {} for i in range(101)}):
        with pytest.raises(InvalidInput):
            ai_providers.save_ai_settings(admin, {"prices": bad})
    assert list(ai_providers.get_ai_settings(admin).prices) == ["meu-modelo"]


def test_provider_changes_are_audited_without_the_key(engine, fake_llm):
    admin = make_actor(make_workspace())
    view = ai_providers.create_provider(admin, _custom(fake_llm))
    ai_providers.update_provider(admin, view.id, {"api_key": "sk-new-key-0000", "model": "fake-model"})
    ai_providers.update_provider(admin, view.id, {"model": "fake-model"})  # nothing changed: nothing recorded
    ai_providers.delete_provider(admin, view.id)
    with session_scope() as s:
        rows = s.execute(select(ActivityEvent.kind, ActivityEvent.actor_user_id, ActivityEvent.data)
                         .where(ActivityEvent.subject_type == "ai_provider").order_by(ActivityEvent.id)).all()
    assert [(kind, user) for kind, user, _ in rows] == [("ai_provider_added", admin.user_id),
                                                        ("ai_provider_changed", admin.user_id),
                                                        ("ai_provider_removed", admin.user_id)]
    assert rows[1].data == {"name": "Local", "changed": ["api_key"]}
    assert KEY not in repr(rows) and "sk-new-key-0000" not in repr(rows)


def test_every_purpose_has_a_label():
    from workbench.base.i18n import has_key

    assert [p for p in ai_client.PURPOSES if not has_key(f"ai.purpose.{p}")] == []
