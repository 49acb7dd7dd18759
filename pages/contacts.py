"""Contatos: every contact the actor may see, searched, filtered, sorted and paged on the server; saved filters
(segments); bulk actions on the selection or on the whole filter; export to CSV or XLSX.

Layout only: ``workbench.services.contact_list`` (filters, pages, segments), ``contact_bulk`` (bulk actions and
their jobs) and ``contact_export`` (files) decide scope and roles. Names, tags, fields and segment names were typed
by people: the table is an ``st.dataframe`` and names go to ``st.text`` or widget options — literal, never
Markdown.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from pages.ui.feedback import attempt, flash, show_flash
from pages.ui.panel import live_fragment
from workbench.base.i18n import error_text, format_moment, t
from workbench.services import contact_bulk, contact_export, contact_jobs, contact_list
from workbench.store.outages import PAGE_ERRORS

actor = st.session_state["auth_actor"]

FILTER_KEY = "contacts_filter"  # the applied filter (a dict; widgets only edit it)
CURSORS_KEY = "contacts_cursors"  # cursors of the pages before this one ([] on the first page)
SEGMENT_KEY = "contacts_segment"  # the segment last loaded (id), for rename / overwrite / delete
FIELDS_NONCE_KEY = "contacts_fields_nonce"  # a new key for the conditions editor whenever the filter is replaced
JOB_KEY = "contacts_job"  # (job id, action) of the bulk job this session follows
CONFIRM_KEY = "contacts_confirm_delete"  # (count, ids or None) of a deletion waiting for confirmation
FLASH_KEY = "contacts_flash"
ACTIONS = ("add_tags", "remove_tags", "assign", "unassign", "delete")
EXPORTS = ("csv", "csv_semicolon", "xlsx")
CONTACT_PAGE = Path(__file__).with_name("contact.py")


def number(n: int) -> str:
    """A count the Brazilian way ("1.240")."""
    return f"{n:,}".replace(",", ".")


def contact_link(contact_id: int) -> str | None:
    """Where a row opens the contact's Visão 360 (``pages/contact.py``), or None while that page is not part of
    the panel. The one place that knows its address."""
    return f"contato?contact={contact_id}" if CONTACT_PAGE.exists() else None


# -- filter state -----------------------------------------------------------------------------------------------


def _filter() -> dict[str, Any]:
    return st.session_state.setdefault(FILTER_KEY, {})


def _set_filter(flt: dict[str, Any]) -> None:
    """Apply a filter: back to the first page, and the form's widgets show it."""
    st.session_state[FILTER_KEY] = flt
    st.session_state[CURSORS_KEY] = []
    st.session_state[FIELDS_NONCE_KEY] = st.session_state.get(FIELDS_NONCE_KEY, 0) + 1
    for key, value in _widget_values(flt).items():
        st.session_state[key] = value


def _widget_values(flt: dict[str, Any]) -> dict[str, Any]:
    responsible = ("none" if flt.get("unassigned") else f"agent:{flt['agent_id']}" if flt.get("agent_id")
                   else f"team:{flt['team_id']}" if flt.get("team_id") else "")
    return {
        "contacts_f_search": flt.get("search", ""), "contacts_f_tags_any": flt.get("tags_any", []),
        "contacts_f_tags_all": flt.get("tags_all", []), "contacts_f_tags_none": flt.get("tags_none", []),
        "contacts_f_responsible": responsible, "contacts_f_instance": flt.get("instance_id"),
        "contacts_f_created_from": _day(flt.get("created_from")), "contacts_f_created_to": _day(flt.get("created_to")),
        "contacts_f_last_from": _day(flt.get("last_message_from")),
        "contacts_f_last_to": _day(flt.get("last_message_to")),
        "contacts_f_funnel": flt.get("funnel_id"), "contacts_f_funnel_state": flt.get("funnel_state", "in_now"),
    }


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _from_widgets(fields: pd.DataFrame) -> dict[str, Any]:
    """The filter the form describes (validated by the service when it is used)."""
    state = st.session_state
    responsible = state.get("contacts_f_responsible") or ""
    conditions = []
    for row in fields.to_dict("records"):
        key, op = _text(row.get("key")), _text(row.get("op"))
        if key or op:
            conditions.append({"key": key, "op": op or "eq", "value": _text(row.get("value")) or None})
    flt = {
        "search": state.get("contacts_f_search") or "", "tags_any": state.get("contacts_f_tags_any") or [],
        "tags_all": state.get("contacts_f_tags_all") or [], "tags_none": state.get("contacts_f_tags_none") or [],
        "fields": conditions, "unassigned": responsible == "none",
        "agent_id": int(responsible[6:]) if responsible.startswith("agent:") else None,
        "team_id": int(responsible[5:]) if responsible.startswith("team:") else None,
        "instance_id": state.get("contacts_f_instance"),
        "created_from": state.get("contacts_f_created_from"), "created_to": state.get("contacts_f_created_to"),
        "last_message_from": state.get("contacts_f_last_from"), "last_message_to": state.get("contacts_f_last_to"),
        "funnel_id": state.get("contacts_f_funnel"), "funnel_state": state.get("contacts_f_funnel_state") or "in_now",
    }
    return contact_list.parse_filter(flt).model_dump(mode="json", exclude_defaults=True)


def _text(value: Any) -> str:
    """A data_editor cell as text (new rows hold NA where nothing was typed)."""
    return "" if value is None or pd.isna(value) else str(value).strip()


def _operator_of(label: str) -> str:
    return next((op for op in contact_list.OPERATORS if t(f"contacts.op.{op}") == label), label)


# -- segments ---------------------------------------------------------------------------------------------------


def _load_segment() -> None:
    segment_id = st.session_state.get("contacts_segment_pick")
    if segment_id is None:
        st.session_state.pop(SEGMENT_KEY, None)
        _set_filter({})
        return
    with attempt(FLASH_KEY):
        flt = contact_list.load_segment(actor, segment_id)
        st.session_state[SEGMENT_KEY] = segment_id
        _set_filter(flt.model_dump(mode="json", exclude_defaults=True))


def _save_segment() -> None:
    with attempt(FLASH_KEY, t("contacts.segment.saved")):
        segment_id = contact_list.save_segment(actor, st.session_state.get("contacts_segment_name") or "", _filter())
        st.session_state[SEGMENT_KEY] = segment_id
        st.session_state["contacts_segment_pick"] = segment_id
        st.session_state["contacts_segment_name"] = ""


def _overwrite_segment(segment_id: int) -> None:
    with attempt(FLASH_KEY, t("contacts.segment.updated")):
        contact_list.update_segment(actor, segment_id, _filter())


def _rename_segment(segment_id: int) -> None:
    with attempt(FLASH_KEY, t("contacts.segment.renamed")):
        contact_list.rename_segment(actor, segment_id, st.session_state.get("contacts_segment_rename") or "")


def _delete_segment(segment_id: int) -> None:
    with attempt(FLASH_KEY, t("contacts.segment.deleted")):
        contact_list.delete_segment(actor, segment_id)
        st.session_state.pop(SEGMENT_KEY, None)
        st.session_state["contacts_segment_pick"] = None


def _segments() -> None:
    segments = contact_list.list_segments(actor)
    names = {s["id"]: s["name"] for s in segments}
    if st.session_state.get("contacts_segment_pick") not in names:
        st.session_state["contacts_segment_pick"] = None
    st.selectbox(t("contacts.segment.pick"), [None, *names], key="contacts_segment_pick", on_change=_load_segment,
                 format_func=lambda sid: t("contacts.segment.none") if sid is None else names[sid])
    if not actor.is_manager:
        return
    current = st.session_state.get(SEGMENT_KEY)
    with st.popover(t("contacts.segment.manage"), icon=":material/bookmark:"):
        st.text_input(t("contacts.segment.name"), key="contacts_segment_name", max_chars=contact_list.MAX_SEGMENT_NAME)
        st.button(t("contacts.segment.save"), key="contacts_segment_save", on_click=_save_segment)
        if current in names:
            st.divider()
            st.text(names[current])  # typed by a user: literal
            st.button(t("contacts.segment.overwrite"), key="contacts_segment_overwrite", on_click=_overwrite_segment,
                      args=(current,))
            st.text_input(t("contacts.segment.new_name"), key="contacts_segment_rename",
                          max_chars=contact_list.MAX_SEGMENT_NAME)
            st.button(t("contacts.segment.rename"), key="contacts_segment_rename_button", on_click=_rename_segment,
                      args=(current,))
            st.button(t("contacts.segment.delete"), key="contacts_segment_delete", on_click=_delete_segment,
                      args=(current,))


# -- the filter form --------------------------------------------------------------------------------------------


def _filter_form(choices: dict[str, list[dict[str, Any]]]) -> None:
    for key, value in _widget_values(_filter()).items():
        st.session_state.setdefault(key, value)
    tags = sorted({tag["name"] for tag in choices["tags"]} | {n for k in ("tags_any", "tags_all", "tags_none")
                                                             for n in _filter().get(k, [])}, key=str.lower)
    agents = {f"agent:{a['id']}": a["name"] for a in choices["agents"]}
    teams = {f"team:{team['id']}": team["name"] for team in choices["teams"]}
    responsible = {"": t("contacts.filter.anyone"), "none": t("contacts.filter.nobody"), **agents, **teams}
    instances = {i["id"]: i["name"] for i in choices["instances"]}
    funnels = {f["id"]: f["name"] for f in choices["funnels"]}
    fields = pd.DataFrame([{"key": c["key"], "op": t(f"contacts.op.{c['op']}"), "value": c.get("value") or ""}
                           for c in _filter().get("fields", [])], columns=["key", "op", "value"])
    with st.form("contacts_filter_form", border=False):
        st.text_input(t("contacts.search"), key="contacts_f_search", placeholder=t("contacts.search.placeholder"),
                      max_chars=contact_list.MAX_SEARCH_CHARS)
        with st.expander(t("contacts.filters"), icon=":material/filter_list:"):
            left, middle, right = st.columns(3)
            left.multiselect(t("contacts.filter.tags_any"), tags, key="contacts_f_tags_any")
            middle.multiselect(t("contacts.filter.tags_all"), tags, key="contacts_f_tags_all")
            right.multiselect(t("contacts.filter.tags_none"), tags, key="contacts_f_tags_none")
            left.selectbox(t("contacts.filter.responsible"), list(responsible), key="contacts_f_responsible",
                           format_func=responsible.get)
            middle.selectbox(t("contacts.filter.instance"), [None, *instances], key="contacts_f_instance",
                             format_func=lambda i: t("contacts.filter.any_instance") if i is None else instances[i])
            right.selectbox(t("contacts.filter.funnel"), [None, *funnels], key="contacts_f_funnel",
                            format_func=lambda f: t("contacts.filter.any_funnel") if f is None else funnels[f])
            right.radio(t("contacts.filter.funnel_state"), contact_list.FUNNEL_STATES, key="contacts_f_funnel_state",
                        format_func=lambda s: t(f"contacts.filter.funnel_state.{s}"), horizontal=True)
            left.date_input(t("contacts.filter.created_from"), key="contacts_f_created_from", format="DD/MM/YYYY")
            left.date_input(t("contacts.filter.created_to"), key="contacts_f_created_to", format="DD/MM/YYYY")
            middle.date_input(t("contacts.filter.last_from"), key="contacts_f_last_from", format="DD/MM/YYYY")
            middle.date_input(t("contacts.filter.last_to"), key="contacts_f_last_to", format="DD/MM/YYYY")
            st.caption(t("contacts.filter.fields_help", fields=", ".join(f["key"] for f in choices["fields"])
                         or t("contacts.filter.no_fields")))
            edited = st.data_editor(
                fields, key=f"contacts_f_fields_{st.session_state.get(FIELDS_NONCE_KEY, 0)}", num_rows="dynamic",
                hide_index=True, use_container_width=True, column_config={
                    "key": st.column_config.TextColumn(t("contacts.filter.field"), max_chars=64),
                    "op": st.column_config.SelectboxColumn(t("contacts.filter.operator"), options=[
                        t(f"contacts.op.{op}") for op in contact_list.OPERATORS]),
                    "value": st.column_config.TextColumn(t("contacts.filter.value"), max_chars=1000)})
        applied = st.form_submit_button(t("contacts.filter.apply"), type="primary", icon=":material/search:")
    clear = st.button(t("contacts.filter.clear"), key="contacts_filter_clear")
    if clear:
        st.session_state["contacts_segment_pick"] = None
        st.session_state.pop(SEGMENT_KEY, None)
        _set_filter({})
        st.rerun()
    if applied:
        edited = edited.assign(op=edited["op"].map(lambda label: _operator_of(_text(label)) if _text(label) else ""))
        with attempt():
            flt = _from_widgets(edited)
            st.session_state[FILTER_KEY] = flt
            st.session_state[CURSORS_KEY] = []


# -- the table --------------------------------------------------------------------------------------------------


def _next_page(cursor: Any) -> None:
    st.session_state.setdefault(CURSORS_KEY, []).append(cursor)


def _previous_page() -> None:
    cursors = st.session_state.get(CURSORS_KEY) or []
    if cursors:
        cursors.pop()


def _reset_pages() -> None:
    st.session_state[CURSORS_KEY] = []


def _table(page: dict[str, Any], view: str) -> list[int]:
    """The page's rows with selection; returns the selected ids. ``view`` names what the rows are (filter, sort,
    page): a new view is a new table, so a selection never carries over to other rows."""
    rows = page["rows"]
    linked = CONTACT_PAGE.exists()
    table = pd.DataFrame([{
        t("contacts.col.name"): row["display_name"], t("contacts.col.phone"): row["phone"],
        t("contacts.col.tags"): ", ".join(row["tags"]), t("contacts.col.responsible"): row["responsible"] or "",
        t("contacts.col.instance"): row["instance"],
        t("contacts.col.last_message"): format_moment(row["last_message_at"]),
        t("contacts.col.funnel"): row["funnel"] or "",
        **({t("contacts.col.open"): contact_link(row["id"])} if linked else {}),
    } for row in rows])
    config = {t("contacts.col.open"): st.column_config.LinkColumn(display_text=t("contacts.open"))} if linked else None
    event = st.dataframe(table, hide_index=True, use_container_width=True, on_select="rerun",
                         selection_mode="multi-row", key=f"contacts_table_{view}", column_config=config)
    chosen = event.selection.rows if event is not None else []
    return [rows[i]["id"] for i in chosen if i < len(rows)]


def _pager(page: dict[str, Any]) -> None:
    cursors = st.session_state.get(CURSORS_KEY) or []
    first = len(cursors) * contact_list.PAGE_SIZE + 1
    shown = len(page["rows"])
    total = number(page["count"]) + ("+" if page["count_capped"] else "")
    left, middle, right = st.columns([1, 3, 1])
    left.button(t("contacts.previous"), key="contacts_previous", on_click=_previous_page, disabled=not cursors,
                icon=":material/chevron_left:")
    middle.caption(t("contacts.showing", first=number(first if shown else 0), last=number(first + shown - 1),
                     total=total))
    right.button(t("contacts.next"), key="contacts_next", on_click=_next_page, args=(page["next"],),
                 disabled=page["next"] is None, icon=":material/chevron_right:")


# -- bulk actions -----------------------------------------------------------------------------------------------


def _bulk_kwargs(selected: list[int]) -> dict[str, Any]:
    if st.session_state.get("contacts_bulk_scope") == "selection":
        return {"ids": selected}
    return {"flt": _filter()}


def _run_bulk(selected: list[int], confirmed: int | None = None) -> None:
    action = st.session_state.get("contacts_bulk_action")
    kwargs = _bulk_kwargs(selected)
    if action == "delete" and confirmed is None:
        with attempt(FLASH_KEY):
            st.session_state[CONFIRM_KEY] = contact_bulk.count_targets(actor, **kwargs)
        return
    st.session_state.pop(CONFIRM_KEY, None)
    responsible = st.session_state.get("contacts_bulk_responsible") or ""
    params: dict[str, Any] = {}
    if action in ("add_tags", "remove_tags"):
        params["tags"] = st.session_state.get("contacts_bulk_tags") or []
    elif action == "assign":
        params["agent_id"] = int(responsible[6:]) if responsible.startswith("agent:") else None
        params["team_id"] = int(responsible[5:]) if responsible.startswith("team:") else None
    with attempt(FLASH_KEY):
        result = contact_bulk.run_bulk(actor, "assign" if action == "unassign" else action, **kwargs, **params,
                                       confirmed_count=confirmed)
        if "job_id" in result:
            st.session_state[JOB_KEY] = (result["job_id"], action)
            flash(FLASH_KEY, "info", t("contacts.bulk.queued", n=number(result["total"])))
        else:
            flash(FLASH_KEY, "success", _result_line(action, result))


def _result_line(action: str, result: dict[str, Any]) -> str:
    line = t(f"contacts.bulk.done.{action}", n=number(result.get("updated", 0)))
    if result.get("skipped"):
        line += " " + t("contacts.bulk.skipped", n=number(result["skipped"]))
    return line


def _cancel_delete() -> None:
    st.session_state.pop(CONFIRM_KEY, None)


def _bulk_bar(selected: list[int], choices: dict[str, list[dict[str, Any]]], total: str) -> None:
    actions = [a for a in ACTIONS if a != "delete" or actor.role == "admin"]
    scopes = {"selection": t("contacts.bulk.scope.selection", n=number(len(selected))),
              "filter": t("contacts.bulk.scope.filter", n=total)}
    with st.expander(t("contacts.bulk.title"), icon=":material/checklist:"):
        st.caption(t("contacts.bulk.receptive"))
        st.radio(t("contacts.bulk.scope"), list(scopes), key="contacts_bulk_scope", format_func=scopes.get,
                 horizontal=True)
        action = st.selectbox(t("contacts.bulk.action"), actions, key="contacts_bulk_action",
                              format_func=lambda a: t(f"contacts.bulk.action.{a}"), on_change=_cancel_delete)
        if action in ("add_tags", "remove_tags"):
            st.multiselect(t("contacts.bulk.tags"), [tag["name"] for tag in choices["tags"]], key="contacts_bulk_tags",
                           accept_new_options=action == "add_tags", max_selections=contact_bulk.MAX_TAGS)
        elif action == "assign":
            people = {f"agent:{a['id']}": a["name"] for a in choices["agents"]
                      if actor.is_manager or a["id"] == actor.user_id}
            teams = {f"team:{team['id']}": team["name"] for team in choices["teams"]}
            options = {**people, **teams}
            st.selectbox(t("contacts.bulk.responsible"), list(options), key="contacts_bulk_responsible",
                         format_func=options.get)
        disabled = st.session_state.get("contacts_bulk_scope") == "selection" and not selected
        st.button(t("contacts.bulk.apply"), key="contacts_bulk_apply", on_click=_run_bulk, args=(selected,),
                  disabled=disabled, type="primary")
        pending = st.session_state.get(CONFIRM_KEY)
        if pending is not None and action == "delete":
            st.warning(t("contacts.bulk.confirm_delete", n=number(pending)))
            yes, no = st.columns(2)
            yes.button(t("contacts.bulk.confirm"), key="contacts_bulk_confirm", on_click=_run_bulk,
                       args=(selected, pending), type="primary")
            no.button(t("contacts.bulk.cancel"), key="contacts_bulk_cancel", on_click=_cancel_delete)


@live_fragment(run_every=1.0)
def _job_progress() -> None:
    """The followed job's progress bar; once it ended, its result line replaces the bar (and the ticks stop)."""
    job_id, action = st.session_state[JOB_KEY]
    try:
        job = contact_jobs.job_status(actor, job_id)
    except PAGE_ERRORS as exc:
        st.error(error_text(exc))
        return
    if job["status"] in ("queued", "running"):
        share = job["done"] / job["total"] if job["total"] else 0.0
        st.progress(min(share, 1.0), text=t("contacts.bulk.progress", done=number(job["done"]),
                                             total=number(job["total"])))
        return
    del st.session_state[JOB_KEY]
    if job["status"] == "done":
        flash(FLASH_KEY, "success", _result_line(action, job["result"]))
    else:
        flash(FLASH_KEY, "error", job["error"] or t("error.generic"))
    st.rerun()


# -- export -----------------------------------------------------------------------------------------------------


def _export_file(kind: str, flt: dict[str, Any], ids: list[int] | None) -> bytes:
    """The whole file, built only when the download button is clicked (the service streams it in chunks)."""
    if kind == "xlsx":
        chunks = contact_export.export_xlsx(actor, flt, ids=ids)
    else:
        chunks = contact_export.export_csv(actor, flt, ids=ids, delimiter=";" if kind == "csv_semicolon" else ",")
    return b"".join(chunks)


def _export(selected: list[int]) -> None:
    with st.expander(t("contacts.export.title"), icon=":material/download:"):
        st.caption(t("contacts.export.help"))
        kind = st.radio(t("contacts.export.format"), EXPORTS, key="contacts_export_format", horizontal=True,
                        format_func=lambda k: t(f"contacts.export.format.{k}"))
        ids = selected or None
        flt = dict(_filter())  # read now: the file is made later, outside this run
        name = "contatos.xlsx" if kind == "xlsx" else "contatos.csv"
        st.download_button(t("contacts.export.download_selection" if ids else "contacts.export.download_filter",
                             n=number(len(selected))), data=lambda: _export_file(kind, flt, ids), file_name=name,
                           mime="application/octet-stream", key="contacts_export_download",
                           icon=":material/download:")


# -- page -------------------------------------------------------------------------------------------------------


st.title(t("contacts.title"))
show_flash(FLASH_KEY)
choices = contact_list.filter_choices(actor)
_segments()
_filter_form(choices)
sort_left, sort_right = st.columns([3, 1])
sort = sort_left.selectbox(t("contacts.sort"), contact_list.SORTS, key="contacts_sort", on_change=_reset_pages,
                           format_func=lambda s: t(f"contacts.sort.{s}"))
descending = sort_right.toggle(t("contacts.sort.descending"), key="contacts_descending", on_change=_reset_pages)
cursors = st.session_state.get(CURSORS_KEY) or []
try:
    page = contact_list.list_contacts(actor, _filter(), sort=sort, descending=descending,
                                      after=cursors[-1] if cursors else None, limit=contact_list.PAGE_SIZE,
                                      with_count=True)
except PAGE_ERRORS as exc:
    st.error(error_text(exc))
    page = {"rows": [], "next": None, "count": 0, "count_capped": False}
if page["rows"]:
    view = hashlib.sha256(json.dumps([_filter(), sort, descending, len(cursors)], default=str).encode()).hexdigest()
    selected = _table(page, view[:16])
else:
    st.info(t("contacts.empty"))
    selected = []
_pager(page)
if JOB_KEY in st.session_state:
    _job_progress()
_bulk_bar(selected, choices, number(page["count"]) + ("+" if page["count_capped"] else ""))
_export(selected)
