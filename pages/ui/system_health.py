"""Configurações › *Saúde do sistema* (admins): the checks of ``python -m workbench doctor``, run on demand.

Layout only: ``workbench.services.health.system_health`` checks the role and runs the checks. Details hold
versions, paths and number names (typed by people): they are shown in a ``st.dataframe``, never as Markdown.
"""

from __future__ import annotations

import streamlit as st

from pages.ui.feedback import attempt, show_flash
from workbench.base.i18n import has_key, t
from workbench.services import health
from workbench.services.auth import Actor

RESULT_KEY = "system_health_result"
FLASH_KEY = "system_health_flash"


def _label(check: health.Check) -> str:
    key = f"health.check.{check.name.replace(' ', '_')}"
    name = t(key) if has_key(key) else check.name
    return f"{name} {check.subject}" if check.subject else name


def _run(actor: Actor) -> None:
    """Button callback: run the checks (a few seconds at most: each server is given 3 s)."""
    with attempt(FLASH_KEY):
        st.session_state[RESULT_KEY] = health.system_health(actor)


def render(actor: Actor) -> None:
    """The section: a button that runs the checks, a summary and one row per check."""
    st.subheader(t("health.title"))
    st.caption(t("health.caption"))
    st.button(t("health.run"), key="system_health_run", on_click=_run, args=(actor,))
    show_flash(FLASH_KEY)
    checks = st.session_state.get(RESULT_KEY)
    if checks is None:
        return
    if health.failed(checks):
        st.error(t("health.summary.fail"))
    elif any(c.status == "warn" for c in checks):
        st.warning(t("health.summary.warn"))
    else:
        st.success(t("health.summary.ok"))
    st.dataframe({t("health.col.status"): [t(f"health.status.{c.status}") for c in checks],
                  t("health.col.check"): [_label(c) for c in checks],
                  t("health.col.detail"): [c.detail for c in checks]}, hide_index=True)
