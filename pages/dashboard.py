"""Painel: the landing page of admins and supervisors — KPI cards against the previous period, the conversion
funnel, new conversations per day and inbound messages by weekday x hour, with drill-down to the conversations.

Layout only: ``workbench.analytics.reports.overview`` computes everything (and refuses agents).
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from pages.ui.analytics import downloads, drill_down, filter_bar, freshness, short_duration, table
from workbench.analytics import reports
from workbench.base.i18n import t

actor = st.session_state["auth_actor"]
WEEKDAYS = tuple(t(f"analytics.weekday.{d}") for d in range(7))

st.title(t("dashboard.title"))
filters = filter_bar(actor, "dash")
freshness("dash")
if filters is not None:
    data = reports.overview(actor, filters)

    def _value(kpi: dict) -> str:
        if kpi["value"] is None:
            return "—"
        return short_duration(kpi["value"]) if kpi["kind"] == "duration" else f"{int(kpi['value']):,}".replace(
            ",", ".")

    def _delta(kpi: dict) -> str | None:
        if kpi["previous"] is None or kpi["value"] is None:
            return None
        change = kpi["value"] - kpi["previous"]
        if kpi["kind"] == "duration":
            return ("+" if change >= 0 else "-") + short_duration(abs(change))
        return f"{change:+,.0f}".replace(",", ".")

    columns = st.columns(len(data["kpis"]))
    for column, kpi in zip(columns, data["kpis"], strict=True):
        with column:
            # shorter is better for times: a rise is shown in red
            st.metric(t(f"dashboard.kpi.{kpi['metric']}"), _value(kpi), _delta(kpi),
                      delta_color="inverse" if kpi["kind"] == "duration" else "normal",
                      help=t("dashboard.previous_help"))

    left, right = st.columns(2)
    with left:
        st.subheader(t("dashboard.funnel"))
        stages = data["funnel"]
        figure = go.Figure(go.Funnel(y=[t(f"dashboard.stage.{name}") for name, _ in stages],
                                     x=[value for _, value in stages], textinfo="value+percent initial"))
        figure.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, height=300)
        st.plotly_chart(figure, width="stretch", key="dash_funnel")
    with right:
        st.subheader(t("dashboard.per_day"))
        per_day = data["per_day"]
        figure = go.Figure(go.Bar(x=per_day["day"].to_list(), y=per_day["conversations"].to_list()))
        figure.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, height=300, clickmode="event+select")
        figure.update_xaxes(tickformat="%d/%m")
        event = st.plotly_chart(figure, width="stretch", key="dash_per_day", on_select="rerun",
                                selection_mode="points")
        clicked = event.selection.points if event and event.selection else []
    st.subheader(t("dashboard.sources"))
    sources = reports.by_source(actor, filters)
    table(sources, "dash_sources")
    downloads(sources, t("analytics.file.sources"), "dash_sources_dl")
    st.subheader(t("dashboard.heatmap"))
    heat = data["heatmap"]
    grid = [[0] * 24 for _ in range(7)]
    for weekday, hour, count in heat.iter_rows():
        grid[weekday][hour] = count
    figure = go.Figure(go.Heatmap(z=grid, x=list(range(24)), y=list(WEEKDAYS), colorscale="Blues"))
    figure.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, height=280,
                         xaxis_title=t("dashboard.hour"))
    st.plotly_chart(figure, width="stretch", key="dash_heatmap")
    downloads(per_day, t("analytics.file.per_day"), "dash_per_day_dl")

    if clicked:
        day = str(clicked[0]["x"])[:10]
        drill_down(actor, t("dashboard.drill_day"), day, reports.drill(actor, filters, "day", day), "dash_day")
    else:
        # a funnel chart reports no clicks: its stages are picked here
        shown = [name for name, _ in stages]
        stage = st.pills(t("dashboard.list_stage"), shown, key="dash_stage",
                         format_func=lambda name: t(f"dashboard.stage.{name}"))
        if stage:
            kind = "new" if stage == "new_conversations" else stage
            drill_down(actor, t("dashboard.drill_stage"), t(f"dashboard.stage.{stage}"),
                       reports.drill(actor, filters, kind), "dash_stage_list")
