"""Painel, Desempenho dos funis and Equipe pages (AppTest): who lands where, figures on screen, downloads, the
business-hours switch, agents' own row, names typed by people shown literally, and the Relatórios settings."""

from __future__ import annotations

import shutil
from datetime import time

import pytest
from sqlalchemy import text

from tests.analytics_history import History
from tests.test_pages_app import signed_in_app
from workbench.analytics import store
from workbench.base.clock import now
from workbench.services import workspace_settings
from workbench.store.db import session_scope

HOSTILE = "**x** <b>y</b> [l](http://e.vil)"


@pytest.fixture
def history(engine, r):
    store.close()
    shutil.rmtree(store.directory(), ignore_errors=True)
    h = History()
    with session_scope() as s:
        s.execute(text("UPDATE users SET name = :n WHERE id = :u"), {"n": HOSTILE, "u": h.a.user_id})
    day = now().astimezone(h.zone).strftime("%Y-%m-%d")
    conv = h.conversation(f"{day} 00:01")
    h.assign(conv, f"{day} 00:02", h.a)
    h.reply(conv, f"{day} 00:12", h.a)
    funnel = h.funnel()
    h.run(funnel, f"{day} 00:03", "waiting", [("inicio", f"{day} 00:03", "ok"), ("nome", f"{day} 00:04", "waiting")])
    store.refresh(full=True)
    yield h
    store.close()


def open_page(actor, path: str):
    at = signed_in_app(actor)
    at.run()
    return at.switch_page(path).run()


def test_admins_land_on_the_painel_and_agents_on_the_inbox(history):
    at = signed_in_app(history.admin)
    at.run()
    assert not at.exception
    assert [t.value for t in at.title][0] == "Painel"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Novas conversas"] == "2" and labels["1ª resposta (mediana)"] == "10 min"
    assert any("Dados de" in c.value for c in at.caption)
    assert "Leads por origem" in [h.value for h in at.subheader]
    sources = next(frame.value for frame in at.dataframe if "Origem" in frame.value.columns)
    assert sources["Leads"].sum() == 2 and list(sources.columns) == ["Origem", "Leads", "Qualificados",
                                                                      "Qualificados (%)"]
    at.button_group(key="dash_stage").set_value("new_conversations").run()  # the funnel's first stage
    assert not at.exception
    listed = at.dataframe[-1].value
    assert len(listed) == 2 and "Contato" in listed.columns
    assert len(at.get("download_button")) >= 4  # per day, and the listed conversations
    agent = signed_in_app(history.a)
    agent.run()
    assert not agent.exception and "Painel" not in [t.value for t in agent.title]


def test_funnel_report_shows_steps_and_in_progress(history):
    at = open_page(history.admin, "pages/funnel_report.py")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Entraram"] == "1" and metrics["Em andamento"] == "1" and metrics["Saíram sem concluir"] == "0"
    assert len(at.get("download_button")) >= 2


def test_team_report_for_admin_and_agent(history):
    at = open_page(history.admin, "pages/team_report.py")
    assert not at.exception
    people = at.dataframe[0].value
    assert HOSTILE in people["Nome"].tolist()  # literal cell, never Markdown
    assert not any(HOSTILE in m.value for m in at.markdown)
    at.toggle(key="team_business").set_value(True).run()
    assert not at.exception
    agent = open_page(history.b, "pages/team_report.py")
    assert not agent.exception
    assert agent.dataframe[0].value["Nome"].tolist() == [history.b.name]


def test_reports_settings_are_saved_and_refused_in_portuguese(history):
    at = open_page(history.admin, "pages/settings.py")
    at.text_input(key="settings_reports_tag").input("quente")
    at.number_input(key="settings_reports_sla").set_value(30)
    at.button(key="settings_reports_save").click().run()
    assert not at.exception
    saved = workspace_settings.get_setting(history.admin, "analytics")
    assert (saved.qualified_tag, saved.sla_minutes) == ("quente", 30)
    at.time_input(key="settings_reports_end").set_value(time(8, 0))  # closes before it opens
    at.button(key="settings_reports_save").click().run()
    assert any("inválido" in e.value for e in at.error)
    assert workspace_settings.get_setting(history.admin, "analytics").hours.end == "18:00"
