"""Pieces the report pages (Painel, Desempenho dos funis, Equipe) share: the filter bar, how fresh the numbers are,
downloads, and the drill-down list that opens a conversation in the inbox.

Layout only: every number comes from ``workbench.analytics.reports``, which checks workspace and role. Contact,
team and people names were typed by people: tables are ``st.dataframe`` (literal cells), never Markdown.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
import streamlit as st

from pages.ui.feedback import attempt
from workbench.analytics import reports, store
from workbench.base.i18n import format_duration, t
from workbench.services.auth import Actor

INBOX_SELECTED_KEY = "inbox_selected"  # the conversation the inbox opens (pages/inbox.py SELECTED_KEY)
INBOX_PAGE = "pages/inbox.py"
PRESET_LABELS = ("today", "7d", "30d", "90d", "custom")


def filter_bar(actor: Actor, prefix: str, narrow: bool = True) -> reports.Filters | None:
    """Period (presets and custom) and, with ``narrow``, number, team and tag; None while a custom period is
    incomplete or wrong (the reason is shown)."""
    if store.refreshed_at() is None:  # a fresh install whose workers have not copied anything yet
        with st.spinner(t("analytics.refreshing")):
            store.refresh(wait=True)
    choices = reports.options(actor)
    columns = st.columns([2, 2, 2, 2, 2] if narrow else [2, 3])
    with columns[0]:
        picked = st.selectbox(t("analytics.period"), PRESET_LABELS, index=2, key=f"{prefix}_preset",
                              format_func=lambda p: t(f"analytics.preset.{p}"))
    narrowing: dict[str, Any] = {}
    if narrow:
        for column, (field, options, label) in zip(columns[2:], (
                ("instance_id", choices["instances"], "analytics.number"),
                ("team_id", choices["teams"], "analytics.team"),
                ("tag_id", choices["tags"], "analytics.tag")), strict=True):
            with column:
                names = dict(options)
                narrowing[field] = st.selectbox(t(label), [None, *names], key=f"{prefix}_{field}",
                                                format_func=lambda i, n=names: t("analytics.all") if i is None
                                                else n[i])
    if picked != "custom":
        return reports.preset(actor, picked, **narrowing)
    today = reports.preset(actor, "today").end  # the workspace's today, not the server's
    with columns[1]:
        span = st.date_input(t("analytics.custom"), (today - timedelta(days=29), today), key=f"{prefix}_custom",
                             format="DD/MM/YYYY")
    if not isinstance(span, tuple) or len(span) != 2:
        st.caption(t("analytics.pick_end"))
        return None
    filters = reports.Filters(span[0], span[1], **narrowing)
    with attempt() as outcome:
        reports.check(filters)
    return filters if outcome.ok else None


def freshness(prefix: str) -> None:
    """"Dados de 40 s atrás" and a button that refreshes the copy now."""
    ago = reports.freshness()
    left, right = st.columns([4, 1])
    with left:
        st.caption(t("analytics.fresh", ago=format_duration(ago)) if ago is not None else t("analytics.never"))
    with right:
        if st.button(t("analytics.refresh"), key=f"{prefix}_refresh", icon=":material/refresh:"):
            with st.spinner(t("analytics.refreshing")):
                store.refresh(wait=True)
            st.rerun()


def downloads(frame: pl.DataFrame, name: str, key: str) -> None:
    """CSV and XLSX buttons for one table (pt-BR headers)."""
    left, right, _ = st.columns([1, 1, 4])
    with left:
        st.download_button(t("analytics.download_csv"), reports.to_csv(frame), f"{name}.csv", "text/csv",
                           key=f"{key}_csv", icon=":material/download:")
    with right:
        st.download_button(t("analytics.download_xlsx"), reports.to_xlsx(frame), f"{name}.xlsx",
                           "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key=f"{key}_xlsx",
                           icon=":material/download:")


def short_duration(seconds: float | None) -> str | None:
    """A duration for a card or a cell: seconds only under 10 minutes ("59 min", not "59 min 33 s")."""
    if seconds is None:
        return None
    return format_duration(round(seconds / 60) * 60 if seconds >= 600 else seconds)


def table(frame: pl.DataFrame, key: str, durations: tuple[str, ...] = (), select: bool = False) -> int | None:
    """A report table with pt-BR headers and durations written out; with ``select``, the picked row's index."""
    shown = frame.with_columns([pl.col(c).map_elements(short_duration, return_dtype=pl.String).fill_null("—")
                                for c in durations if c in frame.columns])
    for column in ("sla_share", "complete_share", "qualified_share"):
        if column in shown.columns:
            shown = shown.with_columns((pl.col(column) * 100).round(0).cast(pl.Int64).cast(pl.String)
                                       .fill_null("—"))
    shown = reports.labelled(shown)
    if not select:
        st.dataframe(shown.to_pandas(), hide_index=True, width="stretch", key=key)
        return None
    event = st.dataframe(shown.to_pandas(), hide_index=True, width="stretch", key=key,
                         on_select="rerun", selection_mode="single-row")
    rows = event.selection.rows if event else []
    return rows[0] if rows else None


def drill_down(actor: Actor, title: str, detail: str | None, conversation_ids: list[int], key: str) -> None:
    """The conversations behind a number: one row each, downloads, and "Abrir na caixa de entrada".

    ``detail`` (a person's, a step's name, a day) may have been typed by people: it is shown literally.
    """
    st.subheader(title)
    if detail:
        st.text(detail)
    frame = reports.conversation_rows(actor, conversation_ids)
    if frame.is_empty():
        st.caption(t("analytics.no_conversations"))
        return
    if len(conversation_ids) >= reports.DRILL_LIMIT:
        st.caption(t("analytics.drill_limited", n=reports.DRILL_LIMIT))
    picked = table(frame, f"{key}_rows", select=True)
    downloads(frame, t("analytics.file.conversations"), f"{key}_dl")
    if picked is not None:
        conversation_id = frame["conversation_id"][picked]
        if st.button(t("analytics.open_inbox"), key=f"{key}_open", icon=":material/forum:", type="primary"):
            st.session_state[INBOX_SELECTED_KEY] = int(conversation_id)
            st.switch_page(INBOX_PAGE)
