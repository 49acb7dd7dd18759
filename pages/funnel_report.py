"""Desempenho dos funis: one funnel (and version) — entered, completed, in progress, and per step reached, left,
still there, errors and the median time from the previous step; a Plotly funnel and the table, with the
conversations behind a step.

Layout only: ``workbench.analytics.reports.funnel`` computes it (admins and supervisors).
"""

from __future__ import annotations

import html

import plotly.graph_objects as go
import streamlit as st

from pages.ui.analytics import downloads, drill_down, filter_bar, freshness, table
from workbench.analytics import reports
from workbench.base.i18n import t

actor = st.session_state["auth_actor"]

st.title(t("funnel_report.title"))
funnels = dict(reports.options(actor)["funnels"])
if not funnels:
    st.info(t("funnel_report.none"))
    st.stop()
left, right = st.columns([3, 2])
with left:
    funnel_id = st.selectbox(t("funnel_report.funnel"), list(funnels), format_func=funnels.get, key="fr_funnel")
with right:
    versions = reports.funnel_versions(actor, funnel_id)
    version_id = st.selectbox(t("funnel_report.version"), [None, *(v for v, _ in versions)], key="fr_version",
                              format_func=lambda v, n=dict(versions): t("funnel_report.all_versions") if v is None
                              else t("funnel_report.version_n", n=n[v]))
filters = filter_bar(actor, "fr")
freshness("fr")
if filters is not None:
    report = reports.funnel(actor, funnel_id, filters, version_id)
    columns = st.columns(4)
    for column, key in zip(columns, ("entered", "completed", "in_progress", "left"), strict=True):
        with column:
            st.metric(t(f"funnel_report.{key}"), f"{report[key]:,}".replace(",", "."))
    steps = report["steps"]
    if steps.is_empty():
        st.caption(t("funnel_report.no_runs"))
        st.stop()
    # Plotly reads a little HTML in labels (<b>, <a>): a step's id was typed by a person, so it is escaped
    figure = go.Figure(go.Funnel(y=[html.escape(step) for step in steps["step"].to_list()],
                                 x=steps["reached"].to_list(),
                                 textinfo="value+percent initial"))
    figure.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, height=max(260, 48 * steps.height))
    st.plotly_chart(figure, width="stretch", key="fr_chart")
    st.caption(t("funnel_report.pick_step"))
    shown = steps.select("step", "reached", "left", "in_progress", "errors", "median_from_previous_s")
    picked = table(shown, "fr_steps", durations=("median_from_previous_s",), select=True)
    downloads(shown, t("analytics.file.funnel"), "fr_steps_dl")
    if report["ai"]:
        st.subheader(t("funnel_report.ai"))
        table(report["ai"].drop("node_id"), "fr_ai")
        downloads(report["ai"].drop("node_id"), t("analytics.file.ai"), "fr_ai_dl")
    if report["ab"] is not None:
        st.subheader(t("funnel_report.ab"))
        table(report["ab"].drop("node_id"), "fr_ab")
        downloads(report["ab"].drop("node_id"), t("analytics.file.ab"), "fr_ab_dl")
    if picked is not None:
        node = steps["node_id"][picked]
        outcome = st.radio(t("funnel_report.which"), ("step_reached", "step_left"), horizontal=True,
                           key="fr_which", format_func=lambda k: t(f"funnel_report.{k}"))
        drill_down(actor, t(f"funnel_report.drill_{outcome}"), steps["step"][picked],
                   reports.drill(actor, filters, outcome, node, funnel_id=funnel_id, version_id=version_id),
                   "fr_drill")
