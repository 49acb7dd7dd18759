"""Configurações › IA (admins): the workspace's AI providers, *Testar conexão*, the AI rules, prices and usage.

Layout only: providers go through ``workbench.services.ai_providers``, which validates, encrypts the key and checks
the role. The key is typed into a password field and never drawn again (only its last 4 characters). Names,
models and URLs were typed by people or listed by a provider, so they are shown in tables, option text and
literal elements, never as Markdown.
"""

from __future__ import annotations

import streamlit as st

from pages.ui.feedback import attempt, flash, show_flash
from workbench.base.i18n import format_when, has_key, t
from workbench.services import ai_providers
from workbench.services.auth import Actor
from workbench.store.models import AI_PRESETS, AI_TOOL_MODES

FLASH_KEY = "ai_flash"
RULES_FLASH_KEY = "ai_rules_flash"
PRICES_FLASH_KEY = "ai_prices_flash"
PICK_KEY = "ai_pick"
DELETE_KEY = "ai_pending_delete"
SEEDED_KEY = "ai_edit_seeded"  # (provider id, version) the edit widgets were filled from
CHECK_KEY = "ai_check_result"  # (provider id, ConnectionCheck) of the last *Testar conexão*
MODELS_KEY = "ai_models"  # (provider id, [model ids]) from the provider's list
NEW_FIELDS = ("name", "base_url", "account_id", "api_key", "model", "temperature", "timeout_s", "is_default")
EDIT_FIELDS = ("name", "base_url", "account_id", "api_key", "model", "temperature", "timeout_s", "tool_mode")


def _actor() -> Actor:
    return st.session_state["auth_actor"]


def _preset_label(preset: str) -> str:
    return t(f"ai.preset.{preset}")


def _tools_label(view: ai_providers.ProviderView) -> str:
    if view.supports_tools is None:
        return t("ai.tools.untested")
    return t("ai.tools.yes") if view.supports_tools else t("ai.tools.no")


# -- new provider -----------------------------------------------------------------------------------------------


def _create() -> None:
    state = st.session_state
    preset = state.get("ai_new_preset") or "custom"
    values = {field: state.get(f"ai_new_{field}") for field in NEW_FIELDS}
    values["preset"] = preset
    with attempt(FLASH_KEY, t("ai.created")):
        view = ai_providers.create_provider(_actor(), values)
        for field in ("name", "base_url", "account_id", "api_key", "model"):
            state[f"ai_new_{field}"] = ""
        state[PICK_KEY] = view.id


def _new_provider_form() -> None:
    with st.expander(t("ai.add"), icon=":material/add:"):
        # outside the form: the fields below depend on it
        preset = st.selectbox(t("ai.preset"), AI_PRESETS, key="ai_new_preset", format_func=_preset_label)
        st.caption(t(f"ai.preset.{preset}.help"))
        with st.form("ai_new_form", border=False):
            st.text_input(t("ai.name"), key="ai_new_name", max_chars=ai_providers.MAX_NAME)
            if preset == "custom":
                st.text_input(t("ai.base_url"), key="ai_new_base_url", max_chars=ai_providers.MAX_URL,
                              placeholder="http://localhost:11434/v1", help=t("ai.base_url_help"))
            if preset == "cloudflare":
                st.text_input(t("ai.account_id"), key="ai_new_account_id", max_chars=64)
            st.text_input(t("ai.api_key"), key="ai_new_api_key", type="password", max_chars=ai_providers.MAX_KEY,
                          help=t("ai.api_key_help"))
            st.text_input(t("ai.model"), key="ai_new_model", max_chars=ai_providers.MAX_MODEL,
                          placeholder=ai_providers.PRESET_MODELS[preset], help=t("ai.model_help"))
            with st.container(horizontal=True):
                st.number_input(t("ai.temperature"), key="ai_new_temperature", min_value=0.0, max_value=2.0,
                                value=0.3, step=0.1, help=t("ai.temperature_help"))
                st.number_input(t("ai.timeout"), key="ai_new_timeout_s", min_value=1.0, max_value=300.0,
                                value=30.0, step=5.0, help=t("ai.timeout_help"))
            st.checkbox(t("ai.make_default"), key="ai_new_is_default")
            st.form_submit_button(t("ai.create"), key="ai_create", type="primary", on_click=_create)


# -- one provider -----------------------------------------------------------------------------------------------


def _seed_edit(view: ai_providers.ProviderView) -> None:
    """Fill the edit widgets from the stored provider when another one is picked or it changed."""
    version = (view.id, view.name, view.base_url, view.model, view.temperature, view.timeout_s, view.tool_mode,
               view.account_id, view.key_last4)
    if st.session_state.get(SEEDED_KEY) == version:
        return
    state = st.session_state
    state[SEEDED_KEY] = version
    state["ai_edit_name"] = view.name
    state["ai_edit_base_url"] = view.base_url
    state["ai_edit_account_id"] = view.account_id
    state["ai_edit_api_key"] = ""
    state["ai_edit_model"] = view.model
    state["ai_edit_temperature"] = float(view.temperature)
    state["ai_edit_timeout_s"] = float(view.timeout_s)
    state["ai_edit_tool_mode"] = view.tool_mode


def _save(view: ai_providers.ProviderView) -> None:
    state = st.session_state
    values = {field: state.get(f"ai_edit_{field}") for field in EDIT_FIELDS}
    if view.preset != "custom":
        values.pop("base_url")
    if view.preset != "cloudflare":
        values.pop("account_id")
    with attempt(FLASH_KEY, t("ai.saved")):
        ai_providers.update_provider(_actor(), view.id, values)
        st.session_state.pop(CHECK_KEY, None)  # a changed provider is tested again


def _check(provider_id: int) -> None:
    with attempt(FLASH_KEY):
        st.session_state[CHECK_KEY] = (provider_id, ai_providers.check_connection(_actor(), provider_id))


def _fetch_models(provider_id: int) -> None:
    with attempt(FLASH_KEY) as outcome:
        models = ai_providers.list_models(_actor(), provider_id)
    if outcome.ok:
        st.session_state[MODELS_KEY] = (provider_id, models)
        flash(FLASH_KEY, "success" if models else "info",
              t("ai.models_found", count=len(models)) if models else t("ai.models_none"))


def _pick_model() -> None:
    """The model list's choice goes into the (free-text) model field."""
    chosen = st.session_state.get("ai_models_pick")
    if chosen:
        st.session_state["ai_edit_model"] = chosen


def _make_default(provider_id: int) -> None:
    with attempt(FLASH_KEY, t("ai.default_set")):
        ai_providers.set_default(_actor(), provider_id)


def _ask_delete(provider_id: int) -> None:
    st.session_state[DELETE_KEY] = provider_id


def _delete(provider_id: int) -> None:
    st.session_state.pop(DELETE_KEY, None)
    with attempt(FLASH_KEY, t("ai.deleted")):
        ai_providers.delete_provider(_actor(), provider_id)
        st.session_state.pop(PICK_KEY, None)


def _cancel_delete() -> None:
    st.session_state.pop(DELETE_KEY, None)


def _show_check(view: ai_providers.ProviderView) -> None:
    held = st.session_state.get(CHECK_KEY)
    if not held or held[0] != view.id:
        return
    result = held[1]
    if not result.ok:
        st.error(t("ai.check.failed", reason=t(result.error_key or "error.ai_server")))
        return
    tools = t("ai.tools.yes") if result.supports_tools else t("ai.tools.no")
    st.success(t("ai.check.ok", latency=result.latency_ms, tools=tools))
    st.caption(t("ai.check.model"))
    st.text(result.model)  # as the provider named it: literal


def _edit_provider(views: list[ai_providers.ProviderView]) -> None:
    names = {v.id: v.name for v in views}  # typed by people: plain option text
    if st.session_state.get(PICK_KEY) not in names:
        st.session_state[PICK_KEY] = views[0].id
    provider_id = st.selectbox(t("ai.edit_pick"), list(names), key=PICK_KEY, format_func=names.get)
    view = next(v for v in views if v.id == provider_id)
    _seed_edit(view)
    with st.container(horizontal=True):
        st.button(t("ai.check"), key="ai_check", icon=":material/network_check:", type="primary", on_click=_check,
                  args=(view.id,), help=t("ai.check_help"))
        st.button(t("ai.fetch_models"), key="ai_fetch_models", icon=":material/list:", on_click=_fetch_models,
                  args=(view.id,))
        st.button(t("ai.make_default_button"), key="ai_make_default", icon=":material/star:",
                  on_click=_make_default, args=(view.id,), disabled=view.is_default)
        st.button(t("ai.delete"), key="ai_delete", icon=":material/delete:", on_click=_ask_delete, args=(view.id,))
    if st.session_state.get(DELETE_KEY) == view.id:
        st.warning(t("ai.delete_confirm"), icon=":material/delete:")
        with st.container(horizontal=True):
            st.button(t("ai.delete_yes"), key="ai_delete_yes", type="primary", on_click=_delete, args=(view.id,))
            st.button(t("ai.delete_no"), key="ai_delete_no", on_click=_cancel_delete)
    _show_check(view)
    models = st.session_state.get(MODELS_KEY)
    if models and models[0] == view.id and models[1]:
        st.selectbox(t("ai.models_pick"), [""] + models[1], key="ai_models_pick", on_change=_pick_model)
    with st.form("ai_edit_form", border=True):
        st.caption(t("ai.edit_preset", preset=_preset_label(view.preset)))
        st.text_input(t("ai.name"), key="ai_edit_name", max_chars=ai_providers.MAX_NAME)
        if view.preset == "custom":
            st.text_input(t("ai.base_url"), key="ai_edit_base_url", max_chars=ai_providers.MAX_URL,
                          help=t("ai.base_url_help"))
        if view.preset == "cloudflare":
            st.text_input(t("ai.account_id"), key="ai_edit_account_id", max_chars=64)
        if view.key_last4:
            st.caption(t("ai.api_key_current"))
            st.text(f"…{view.key_last4}")  # typed by an admin: literal
        st.text_input(t("ai.api_key_new"), key="ai_edit_api_key", type="password", max_chars=ai_providers.MAX_KEY,
                      help=t("ai.api_key_keep") if view.key_last4 else t("ai.api_key_none"))
        st.text_input(t("ai.model"), key="ai_edit_model", max_chars=ai_providers.MAX_MODEL, help=t("ai.model_help"))
        with st.container(horizontal=True):
            st.number_input(t("ai.temperature"), key="ai_edit_temperature", min_value=0.0, max_value=2.0, step=0.1,
                            help=t("ai.temperature_help"))
            st.number_input(t("ai.timeout"), key="ai_edit_timeout_s", min_value=1.0, max_value=300.0, step=5.0,
                            help=t("ai.timeout_help"))
        st.radio(t("ai.tool_mode"), AI_TOOL_MODES, key="ai_edit_tool_mode", horizontal=True,
                 format_func=lambda mode: t(f"ai.tool_mode.{mode}"), help=t("ai.tool_mode_help"))
        st.form_submit_button(t("ai.save"), key="ai_save", type="primary", on_click=_save, args=(view,))


def _providers_section() -> None:
    st.subheader(t("ai.providers.title"))
    st.caption(t("ai.providers.caption"))
    show_flash(FLASH_KEY)
    _new_provider_form()
    views = ai_providers.list_providers(_actor())
    if not views:
        st.info(t("ai.none"))
        return
    st.dataframe([{t("ai.col.name"): v.name, t("ai.col.preset"): _preset_label(v.preset), t("ai.col.model"): v.model,
                   t("ai.col.key"): f"…{v.key_last4}" if v.key_last4 else "—",
                   t("ai.col.default"): t("ai.yes") if v.is_default else "",
                   t("ai.col.tools"): _tools_label(v),
                   t("ai.col.tested"): format_when(v.tested_at) if v.tested_at else "—"}
                  for v in views], hide_index=True)
    _edit_provider(views)


# -- rules, prices, usage ---------------------------------------------------------------------------------------


def _save_rules() -> None:
    state = st.session_state
    with attempt(RULES_FLASH_KEY, t("ai.rules.saved")):
        current = ai_providers.get_ai_settings(_actor())
        ai_providers.save_ai_settings(_actor(), {
            **current.model_dump(), "master_prompt": state.get("ai_rules_prompt") or "",
            "monthly_token_budget": int(state.get("ai_rules_budget") or 0),
            "max_concurrent_calls": int(state.get("ai_rules_concurrency") or 1)})


def _rules_section() -> None:
    st.subheader(t("ai.rules.title"))
    settings = ai_providers.get_ai_settings(_actor())
    if "ai_rules_prompt" not in st.session_state:
        st.session_state["ai_rules_prompt"] = settings.master_prompt
        st.session_state["ai_rules_budget"] = settings.monthly_token_budget
        st.session_state["ai_rules_concurrency"] = settings.max_concurrent_calls
    with st.form("ai_rules_form", border=True):
        st.text_area(t("ai.rules.prompt"), key="ai_rules_prompt", height=160, help=t("ai.rules.prompt_help"),
                     max_chars=ai_providers.workspace_settings.MAX_MASTER_PROMPT)
        with st.container(horizontal=True):
            st.number_input(t("ai.rules.budget"), key="ai_rules_budget", min_value=0, max_value=10**12,
                            step=100_000, help=t("ai.rules.budget_help"))
            st.number_input(t("ai.rules.concurrency"), key="ai_rules_concurrency", min_value=1, max_value=64,
                            help=t("ai.rules.concurrency_help"))
        st.form_submit_button(t("ai.rules.save"), key="ai_rules_save", type="primary", on_click=_save_rules)
    show_flash(RULES_FLASH_KEY)


def _number(value: object) -> float:
    """A data_editor cell as a number (new rows hold NA where nothing was typed)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if number != number else number  # NaN


def _save_prices(edited: list[dict]) -> None:
    prices = {}
    for row in edited:
        model = row.get("model")
        model = model.strip() if isinstance(model, str) else ""
        if model:
            prices[model] = {"input_per_1m": _number(row.get("input")), "output_per_1m": _number(row.get("output"))}
    with attempt(PRICES_FLASH_KEY, t("ai.prices.saved")):
        current = ai_providers.get_ai_settings(_actor())
        ai_providers.save_ai_settings(_actor(), {**current.model_dump(), "prices": prices})


def _prices_section() -> None:
    st.subheader(t("ai.prices.title"))
    st.caption(t("ai.prices.caption"))
    settings = ai_providers.get_ai_settings(_actor())
    rows = [{"model": model, "input": price.input_per_1m, "output": price.output_per_1m}
            for model, price in settings.prices.items()]
    columns = {"model": st.column_config.TextColumn(t("ai.prices.model"), max_chars=ai_providers.MAX_MODEL),
               "input": st.column_config.NumberColumn(t("ai.prices.input"), min_value=0.0, max_value=10_000.0,
                                                      format="%.4f"),
               "output": st.column_config.NumberColumn(t("ai.prices.output"), min_value=0.0, max_value=10_000.0,
                                                       format="%.4f")}
    with st.form("ai_prices_form", border=True):
        edited = st.data_editor(rows, hide_index=True, column_config=columns, num_rows="dynamic",
                                key="ai_prices_editor")
        submitted = st.form_submit_button(t("ai.prices.save"), key="ai_prices_save")
    if submitted:
        _save_prices(edited.to_dict("records") if hasattr(edited, "to_dict") else list(edited))
        st.rerun()
    show_flash(PRICES_FLASH_KEY)


def _purpose_label(purpose: str) -> str:
    """A purpose's label; one the catalog does not know (a caller's own) is shown as recorded."""
    key = f"ai.purpose.{purpose}"
    return t(key) if has_key(key) else purpose


def _usage_section() -> None:
    st.subheader(t("ai.usage.title"))
    usage = ai_providers.usage_this_month(_actor())
    with st.container(horizontal=True):
        st.metric(t("ai.usage.calls"), f"{usage.calls}")
        st.metric(t("ai.usage.failed"), f"{usage.failed}")
        st.metric(t("ai.usage.tokens"), f"{usage.total_tokens:,}".replace(",", "."))
        st.metric(t("ai.usage.cost"), f"US$ {usage.cost_estimate:.4f}".replace(".", ","))
        left = t("ai.usage.no_budget") if usage.budget_left is None else f"{usage.budget_left:,}".replace(",", ".")
        st.metric(t("ai.usage.left"), left)
    if usage.by_purpose:
        st.dataframe([{t("ai.usage.purpose"): _purpose_label(line.purpose), t("ai.usage.calls"): line.calls,
                       t("ai.usage.failed"): line.failed, t("ai.usage.tokens"): line.total_tokens,
                       t("ai.usage.cost"): round(line.cost_estimate, 4)} for line in usage.by_purpose],
                     hide_index=True)


def render() -> None:
    """The IA tab's content (admins; others see why they cannot)."""
    if _actor().role != "admin":
        st.info(t("ai.admin_only"))
        return
    _providers_section()
    st.divider()
    _rules_section()
    st.divider()
    _usage_section()
    st.divider()
    _prices_section()
