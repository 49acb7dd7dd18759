"""Equipe: per person and per team — assigned, resolved, open now, median/p90 first response, median resolution,
messages sent, share within the SLA — and the first-response distribution; optionally in business hours.
Agents see only their own row.

Layout only: ``workbench.analytics.reports.team`` computes it and applies who sees what.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from pages.ui.analytics import downloads, drill_down, filter_bar, freshness, table
from workbench.analytics import reports
from workbench.base.i18n import t

actor = st.session_state["auth_actor"]
DURATIONS = ("frt_median_s", "frt_p90_s", "resolution_median_s")

st.title(t("team_report.title"))
filters = filter_bar(actor, "team", narrow=actor.is_manager)
business = st.toggle(t("team_report.business_hours"), key="team_business", help=t("team_report.business_help"))
freshness("team")
if filters is not None:
    report = reports.team(actor, filters, business_hours=business)
    st.caption(t("team_report.sla", minutes=report["sla_minutes"]))
    st.subheader(t("team_report.people"))
    people = report["people"]
    st.caption(t("team_report.pick_person"))
    picked = table(people.drop("user_id"), "team_people", durations=DURATIONS, select=True)
    downloads(people.drop("user_id"), t("analytics.file.people"), "team_people_dl")
    if actor.is_manager and not report["teams"].is_empty():
        st.subheader(t("team_report.teams"))
        table(report["teams"].drop("team_id"), "team_teams", durations=DURATIONS)
        downloads(report["teams"].drop("team_id"), t("analytics.file.teams"), "team_teams_dl")
    st.subheader(t("team_report.distribution"))
    dist = report["distribution"]
    figure = go.Figure(go.Bar(x=dist["bucket"].to_list(), y=dist["responses"].to_list()))
    figure.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, height=260, clickmode="event+select")
    event = st.plotly_chart(figure, width="stretch", key="team_dist", on_select="rerun",
                            selection_mode="points")
    clicked = event.selection.points if event and event.selection else []
    if picked is not None:
        person = people.row(picked, named=True)
        drill_down(actor, t("team_report.drill_person"), person["name"],
                   reports.drill(actor, filters, "person", person["user_id"]), "team_drill")
    elif clicked:
        bucket = str(clicked[0]["x"])
        drill_down(actor, t("team_report.drill_bucket"), bucket,
                   reports.drill(actor, filters, "frt_bucket", bucket, business_hours=business), "team_drill_b")
