"""Configurações › IA in the panel (AppTest): add a provider, the key never drawn again, Testar conexão, rules."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.factories import make_actor, make_workspace
from tests.test_pages_app import signed_in_app
from workbench.services import ai_providers

KEY = "sk-page-secret-key-QRST"


def open_page(actor) -> AppTest:
    at = signed_in_app(actor)
    at.run()
    return at.switch_page("pages/settings.py").run()


def _everything_drawn(at: AppTest) -> str:
    """Every value on the page, widgets included (password fields hold what was typed until cleared)."""
    parts = []
    for kind in ("markdown", "caption", "text", "code", "success", "error", "info", "warning", "dataframe",
                 "text_input", "text_area", "selectbox", "metric", "number_input"):
        for element in getattr(at, kind, []):
            parts.append(repr(getattr(element, "value", "")))
            parts.append(repr(getattr(element, "options", "")))
    return "\n".join(parts)


def _providers_table(at: AppTest):
    return next(df.value for df in at.dataframe if "Chave" in df.value.columns)


def test_admin_adds_a_provider_tests_it_and_the_key_is_never_shown_again(engine, r, fake_llm):
    admin = make_actor(make_workspace())
    at = open_page(admin)
    assert not at.exception
    assert [tab.label for tab in at.tabs] == ["Geral", "Campos", "Respostas rápidas", "Relatórios", "Integrações",
                                              "E-mail", "IA"]
    assert "Nenhum provedor ainda. Adicione um para usar a IA." in [i.value for i in at.info]

    at.selectbox(key="ai_new_preset").set_value("custom").run()
    at.text_input(key="ai_new_name").input("Servidor local")
    at.text_input(key="ai_new_base_url").input(fake_llm.url)
    at.text_input(key="ai_new_api_key").input(KEY)
    at.text_input(key="ai_new_model").input("fake-model")
    at = at.button(key="ai_create").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Provedor adicionado. Teste a conexão para confirmar que ele responde."]
    [view] = ai_providers.list_providers(admin)
    assert (view.name, view.base_url, view.key_last4, view.is_default) == ("Servidor local", fake_llm.url, "QRST",
                                                                           True)
    assert at.text_input(key="ai_new_api_key").value == ""  # the typed key is cleared from the form
    assert KEY not in _everything_drawn(at)
    table = _providers_table(at)
    assert list(table["Chave"]) == ["…QRST"] and list(table["Ferramentas"]) == ["não testado"]

    fake_llm.script([{"tool_calls": [{"name": "confirmar_teste", "arguments": {"ok": True}}], "model": "fm-9"}])
    at = at.button(key="ai_check").click().run()
    assert not at.exception
    [ok] = at.success
    assert ok.value.startswith("Conectado em ") and ok.value.endswith("Chamada de ferramentas: sim.")
    assert "fm-9" in [x.value for x in at.text]
    assert list(_providers_table(at)["Ferramentas"]) == ["sim"]
    usage = next(df.value for df in at.dataframe if "Uso" in df.value.columns)
    assert list(usage["Uso"]) == ["Testes de conexão"] and list(usage["Chamadas"]) == [1]
    assert KEY not in _everything_drawn(at)

    # editing without typing a key keeps it
    at.text_input(key="ai_edit_model").input("fake-model-mini")
    at = at.button(key="ai_save").click().run()
    assert [s.value for s in at.success] == ["Provedor salvo."]
    assert ai_providers.get_provider(admin, view.id).key_last4 == "QRST"
    assert "…QRST" in [x.value for x in at.text]
    assert ai_providers.get_provider(admin, view.id).model == "fake-model-mini"


def test_a_refused_provider_shows_the_reason_and_keeps_what_was_typed(engine, r, fake_llm):
    admin = make_actor(make_workspace())
    at = open_page(admin)
    at.selectbox(key="ai_new_preset").set_value("custom").run()
    at.text_input(key="ai_new_name").input("Local")
    at.text_input(key="ai_new_base_url").input("localhost:11434")
    at = at.button(key="ai_create").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Endereço inválido: use a URL base da API, começando com http:// ou https://, por exemplo "
        "http://localhost:11434/v1."]
    assert at.text_input(key="ai_new_name").value == "Local"
    assert ai_providers.list_providers(admin) == []


def test_a_failed_connection_test_says_why(engine, r, fake_llm):
    admin = make_actor(make_workspace())
    ai_providers.create_provider(admin, {"name": "Local", "preset": "custom", "base_url": fake_llm.url,
                                         "model": "m", "api_key": KEY})
    at = open_page(admin)
    fake_llm.script([{"status": 401}])
    at = at.button(key="ai_check").click().run()
    assert [e.value for e in at.error] == [
        "O teste falhou: O provedor de IA recusou a chave de API. Confira a chave em Configurações › IA."]


def test_rules_are_saved_and_usage_is_shown(engine, r, fake_llm):
    admin = make_actor(make_workspace())
    at = open_page(admin)
    at.text_area(key="ai_rules_prompt").input("Você é a Bia. **Nunca** prometa descontos.")
    at.number_input(key="ai_rules_budget").set_value(500_000)
    at.number_input(key="ai_rules_concurrency").set_value(3)
    at = at.button(key="ai_rules_save").click().run()
    assert not at.exception
    assert "Regras da IA salvas." in [s.value for s in at.success]
    saved = ai_providers.get_ai_settings(admin)
    assert (saved.master_prompt, saved.monthly_token_budget, saved.max_concurrent_calls) == (
        "Você é a Bia. **Nunca** prometa descontos.", 500_000, 3)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Chamadas"] == "0" and metrics["Tokens restantes"] == "500.000"


def test_supervisors_do_not_get_the_ai_tab(engine, r):
    supervisor = make_actor(make_workspace(), "supervisor")
    at = open_page(supervisor)
    assert not at.exception
    assert [tab.label for tab in at.tabs] == ["Geral", "Campos", "Respostas rápidas", "Relatórios", "Integrações",
                                              "E-mail"]


def test_saving_the_price_table_unchanged_keeps_every_row(engine, r):
    admin = make_actor(make_workspace())
    ai_providers.save_ai_settings(admin, {"prices": {"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6},
                                                     "llama3.2": {}}})
    at = open_page(admin)
    at = at.button(key="ai_prices_save").click().run()
    assert not at.exception
    assert "Preços salvos." in [s.value for s in at.success]
    prices = ai_providers.get_ai_settings(admin).prices
    assert {k: (v.input_per_1m, v.output_per_1m) for k, v in prices.items()} == {"gpt-4o-mini": (0.15, 0.6),
                                                                                "llama3.2": (0.0, 0.0)}
