"""Funis: the workspace's funnels as cards (trigger, active switch, version, run counts) and their actions.

Layout only: every read and write goes through ``workbench.services.funnels``, which also enforces that only admins and
supervisors edit. Funnel names, node ids, keywords and imported definitions were typed by people, so they are
shown with literal elements (``st.text``, ``st.code``), never as Markdown.

Each card's "Editar" opens the canvas editor (``pages/editor.py``). The card also shows its draft as JSON next to
the draft's validation report, and an edited export can be loaded back into the same funnel's draft
("Substituir rascunho").
"""

from __future__ import annotations

import functools
import re
from pathlib import PurePath
from typing import Any

import streamlit as st

from engine.core.definition import MAX_DEFINITION_BYTES, ValidationReport, export_json
from engine.core.examples import EXAMPLES, ODOO_SPLICES, example_definition
from pages.ui.feedback import attempt, flash, show_flash
from workbench.base.i18n import t, trigger_label
from workbench.services import funnel_goals, funnels

actor = st.session_state["auth_actor"]

# Messages after an action, shown once on the funnel's card (scope: its id) or (None) above the list.
FLASH_KEY = "funnels_flash"
# Id of the funnel whose deletion waits for a second click.
CONFIRM_KEY = "funnels_confirm_delete"
# Id of the funnel whose publish was just refused: its card lists every problem once, next to the error.
PROBLEMS_KEY = "funnels_publish_problems"
# Part of the uploaders' keys: a file uploader cannot be cleared through session state, so a successful import
# moves on to fresh uploaders instead.
UPLOAD_NONCE_KEY = "funnels_upload_nonce"
START_OPTIONS = ("empty", *EXAMPLES)
MAX_UPLOAD_MB = max(1, MAX_DEFINITION_BYTES // (1024 * 1024))


def _start_label(option: str) -> str:
    return t("funnels.create.start.empty") if option == "empty" else t(f"funnels.example.{option}")


def _file_name(name: str) -> str:
    """A safe download file name from a user-typed funnel name ("Funil de Vendas" -> "Funil-de-Vendas.json")."""
    stem = re.sub(r"[^\w-]+", "-", name).strip("-")[:80]
    return f"{stem or 'funil'}.json"


# -- callbacks: they run before the page redraws, so the cards show their effect ---------------------------------


def _create() -> None:
    """Form callback for "Criar funil": empty, or a fresh copy of an example (named after it if left blank)."""
    choice = st.session_state.get("funnels_new_start") or "empty"
    name = (st.session_state.get("funnels_new_name") or "").strip()
    definition = None
    if choice in EXAMPLES:
        name = name or EXAMPLES[choice][0]
        definition = example_definition(choice, odoo=bool(st.session_state.get("funnels_new_odoo")))
    with attempt(FLASH_KEY, t("funnels.create.done")):
        funnels.create_funnel(actor, name, definition)
        st.session_state["funnels_new_name"] = ""


def _import() -> None:
    """Form callback for "Importar JSON": the file becomes a new draft, even one with problems to fix."""
    nonce = st.session_state.get(UPLOAD_NONCE_KEY, 0)
    upload = st.session_state.get(f"funnels_import_file_{nonce}")
    if upload is None:
        flash(FLASH_KEY, "error", t("funnels.import.missing"))
        return
    name = (st.session_state.get("funnels_import_name") or "").strip() or PurePath(upload.name).stem[:120]
    with attempt(FLASH_KEY):
        funnel_id = funnels.import_funnel(actor, name, upload.getvalue())
        problems = len(funnels.validate(actor, funnels.get_funnel(actor, funnel_id)["draft"]).errors)
        st.session_state[UPLOAD_NONCE_KEY] = nonce + 1
        st.session_state["funnels_import_name"] = ""
        if problems:
            flash(FLASH_KEY, "warning", t("funnels.import.done_with_problems", count=problems))
        else:
            flash(FLASH_KEY, "success", t("funnels.import.done"))


def _replace(funnel_id: int) -> None:
    """Form callback for "Substituir rascunho": an edited export goes back into the same funnel's draft."""
    nonce = st.session_state.get(UPLOAD_NONCE_KEY, 0)
    upload = st.session_state.get(f"funnels_replace_file_{funnel_id}_{nonce}")
    if upload is None:
        flash(FLASH_KEY, "error", t("funnels.import.missing"), funnel_id)
        return
    with attempt(FLASH_KEY, scope=funnel_id):
        report = funnels.import_draft(actor, funnel_id, upload.getvalue())
        st.session_state[UPLOAD_NONCE_KEY] = nonce + 1
        if report.is_valid:
            flash(FLASH_KEY, "success", t("funnels.replace.done"), funnel_id)
        else:
            flash(FLASH_KEY, "warning", t("funnels.replace.done_with_problems", count=len(report.errors)), funnel_id)


def _toggle(funnel_id: int) -> None:
    """Active switch: the service refuses to switch on a funnel that was never published."""
    wanted = bool(st.session_state.get(f"funnels_active_{funnel_id}"))
    # On a refusal the next run puts the switch back to the stored value.
    with attempt(FLASH_KEY, t("funnels.activated") if wanted else t("funnels.deactivated"), scope=funnel_id):
        funnels.set_active(actor, funnel_id, wanted)


def _publish(funnel_id: int, is_active: bool) -> None:
    st.session_state.pop(PROBLEMS_KEY, None)
    with attempt(FLASH_KEY, scope=funnel_id) as outcome:
        version = funnels.publish(actor, funnel_id)
        text = t("funnels.published", version=version) if is_active else t("funnels.published_inactive",
                                                                             version=version)
        flash(FLASH_KEY, "success", text, funnel_id)
    # Refused for the draft's problems: the card lists them. (An outage is refused too, but carries no key.)
    if getattr(outcome.error, "key", None) == "error.funnel_invalid":
        st.session_state[PROBLEMS_KEY] = funnel_id


def _duplicate(funnel_id: int) -> None:
    with attempt(FLASH_KEY, scope=funnel_id):
        funnels.duplicate(actor, funnel_id)
        flash(FLASH_KEY, "success", t("funnels.duplicated"))  # above the list, where the copy appears


def _ask_delete(funnel_id: int) -> None:
    st.session_state[CONFIRM_KEY] = funnel_id


def _cancel_delete() -> None:
    st.session_state.pop(CONFIRM_KEY, None)


def _delete(funnel_id: int) -> None:
    st.session_state.pop(CONFIRM_KEY, None)
    with attempt(FLASH_KEY, t("funnels.deleted")):
        funnels.delete_funnel(actor, funnel_id)


# -- drawing -------------------------------------------------------------------------------------------------------


def _create_form() -> None:
    with st.expander(t("funnels.create"), icon=":material/add:"):
        with st.form("funnels_create_form", border=False):
            st.selectbox(t("funnels.create.start"), START_OPTIONS, key="funnels_new_start", format_func=_start_label)
            st.text_input(t("funnels.create.name"), key="funnels_new_name", max_chars=120,
                          help=t("funnels.create.name_help"))
            st.checkbox(t("funnels.create.odoo"), key="funnels_new_odoo",
                        help=t("funnels.create.odoo_help", examples=", ".join(
                            t(f"funnels.example.{key}") for key in ODOO_SPLICES)))
            st.form_submit_button(t("funnels.create.submit"), key="funnels_create", type="primary", on_click=_create)


def _import_form() -> None:
    nonce = st.session_state.get(UPLOAD_NONCE_KEY, 0)
    with st.expander(t("funnels.import"), icon=":material/upload_file:"):
        st.caption(t("funnels.import.help"))
        with st.form("funnels_import_form", border=False):
            st.file_uploader(t("funnels.import.file"), type=["json"], key=f"funnels_import_file_{nonce}",
                             max_upload_size=MAX_UPLOAD_MB)
            st.text_input(t("funnels.import.name"), key="funnels_import_name", max_chars=120,
                          help=t("funnels.import.name_help"))
            st.form_submit_button(t("funnels.import.submit"), key="funnels_import", type="primary", on_click=_import)


def _problem_groups(report: ValidationReport) -> list[tuple[str, list[str]]]:
    """Problems grouped under "Funil inteiro", "Nó <id>" or "Conexão <id>", in the order they were found."""
    groups: dict[str, list[str]] = {}
    for problem in report.errors:
        line = problem.message
        if problem.node_id is not None:
            heading = f"{t('funnels.problems.node')} {problem.node_id}"
            if problem.edge_id is not None:  # an edge problem is listed under the node it leaves
                line = f"{line} ({t('funnels.problems.edge')} {problem.edge_id})"
        elif problem.edge_id is not None:
            heading = f"{t('funnels.problems.edge')} {problem.edge_id}"
        else:
            heading = t("funnels.problems.general")
        groups.setdefault(heading, []).append(line)
    return list(groups.items())


def _problems(report: ValidationReport) -> None:
    # Literal: node ids and messages quoting labels or keywords were typed by people.
    for heading, lines in _problem_groups(report):
        st.text("\n".join([f"{heading}:", *(f"  • {line}" for line in lines)]))


def _counts(funnel: dict[str, Any]) -> None:
    for column, key in zip(st.columns(3), ("entered", "completed", "waiting"), strict=True):
        with column:
            st.metric(t(f"funnels.count.{key}"), funnel[key])


def _actions(funnel: dict[str, Any]) -> None:
    funnel_id = funnel["id"]
    if st.session_state.get(CONFIRM_KEY) == funnel_id:
        st.warning(t("funnels.confirm_delete"), icon=":material/warning:")
        with st.container(horizontal=True):
            st.button(t("funnels.confirm"), key=f"funnels_yes_delete_{funnel_id}", type="primary",
                      on_click=_delete, args=(funnel_id,))
            st.button(t("funnels.cancel"), key=f"funnels_no_delete_{funnel_id}", on_click=_cancel_delete)
        return
    published, changed = funnel["published_version"], funnel["has_draft_changes"]
    with st.container(horizontal=True):
        if st.button(t("funnels.edit"), key=f"funnels_edit_{funnel_id}", icon=":material/edit:"):
            # Not a callback: st.switch_page does nothing inside one.
            st.session_state["editor_funnel_id"] = funnel_id
            st.switch_page("pages/editor.py")
        # Re-publishing an unchanged draft would only add an identical version.
        st.button(t("funnels.publish"), key=f"funnels_publish_{funnel_id}", icon=":material/publish:",
                  type="primary" if changed else "secondary", disabled=bool(published) and not changed,
                  on_click=_publish, args=(funnel_id, funnel["is_active"]))
        st.button(t("funnels.duplicate"), key=f"funnels_duplicate_{funnel_id}", icon=":material/content_copy:",
                  on_click=_duplicate, args=(funnel_id,))
        # Deferred: the JSON is read from the database only when someone actually downloads it.
        st.download_button(t("funnels.export"), data=functools.partial(funnels.export_funnel, actor, funnel_id),
                           file_name=_file_name(funnel["name"]), mime="application/json",
                           key=f"funnels_export_{funnel_id}", icon=":material/download:", on_click="ignore")
        st.button(t("funnels.delete"), key=f"funnels_delete_{funnel_id}", icon=":material/delete:",
                  on_click=_ask_delete, args=(funnel_id,))


def _definition(funnel: dict[str, Any], report: ValidationReport) -> None:
    """The draft as JSON (literal), its problems, and the form that loads an edited export back into it."""
    funnel_id = funnel["id"]
    with st.expander(t("funnels.definition"), icon=":material/data_object:"):
        st.caption(t("funnels.definition_help"))
        st.code(export_json(funnel["draft"]), language="json")
        if report.is_valid:
            st.success(t("funnels.draft_ok"))
        else:
            st.warning(t("funnels.draft_problems", count=len(report.errors)))
            _problems(report)
        nonce = st.session_state.get(UPLOAD_NONCE_KEY, 0)
        with st.form(f"funnels_replace_form_{funnel_id}", border=False):
            st.markdown(f"**{t('funnels.replace')}**")
            st.caption(t("funnels.replace.help"))
            st.file_uploader(t("funnels.replace.file"), type=["json"],
                             key=f"funnels_replace_file_{funnel_id}_{nonce}", max_upload_size=MAX_UPLOAD_MB)
            st.form_submit_button(t("funnels.replace.submit"), key=f"funnels_replace_{funnel_id}",
                                  icon=":material/upload:", on_click=_replace, args=(funnel_id,))


def _save_goal(funnel_id: int) -> None:
    kind = st.session_state.get(f"funnels_goal_kind_{funnel_id}") or ""
    goal = {"kind": kind, "node_id": st.session_state.get(f"funnels_goal_node_{funnel_id}"),
            "tag": st.session_state.get(f"funnels_goal_tag_{funnel_id}") or "",
            "days": st.session_state.get(f"funnels_goal_days_{funnel_id}")}
    with attempt(FLASH_KEY, t("funnels.goal.saved"), scope=funnel_id):
        funnel_goals.set_goal(actor, funnel_id, goal if kind else None)


def _groups_table(title: str, found: list[funnel_goals.Group], verdict: funnel_goals.Verdict) -> None:
    """One split (A/B branches or entry links) as a table of plain values, and what may be concluded."""
    if not found:
        return
    st.caption(title)
    st.dataframe([{t("funnels.goal.col.group"): g.label, t("funnels.goal.col.contacts"): g.contacts,
                   t("funnels.goal.col.converted"): g.converted,
                   t("funnels.goal.col.rate"): f"{100 * g.rate:.1f}%".replace(".", ",")} for g in found],
                 hide_index=True)
    if verdict.conclusive:
        st.text(t("funnels.goal.conclusive", best=verdict.best, other=verdict.runner_up,
                  p=f"{verdict.p_value:.3f}".replace(".", ",")))
    else:  # one group only, too few contacts, or a difference within chance
        st.text(t("funnels.goal.inconclusive", min=funnel_goals.MIN_GROUP_CONTACTS))


def _goal(funnel: dict[str, Any]) -> None:
    """The funnel's goal (a form) and its conversion, per A/B branch and per entry link."""
    funnel_id = funnel["id"]
    report = None
    with attempt():
        report = funnel_goals.goal_report(actor, funnel_id)
    goal = report.goal if report else {}
    if report is not None:
        overall = report.overall
        st.text(t("funnels.goal.overall", rate=f"{100 * overall.rate:.1f}".replace(".", ","),
                  converted=overall.converted, contacts=overall.contacts))
    with st.expander(t("funnels.goal"), icon=":material/flag:"):
        st.caption(t("funnels.goal.help"))
        nodes = [n.get("id") for n in (funnel["draft"] or {}).get("nodes", []) if isinstance(n, dict)]
        with st.form(f"funnels_goal_form_{funnel_id}", border=False):
            kinds = ["", *funnel_goals.GOAL_KINDS]
            st.selectbox(t("funnels.goal.kind"), kinds, index=kinds.index(goal.get("kind", "")),
                         key=f"funnels_goal_kind_{funnel_id}",
                         format_func=lambda k: t(f"funnels.goal.kind.{k or 'none'}"))
            node_ids = [n for n in nodes if isinstance(n, str)]
            st.selectbox(t("funnels.goal.node"), node_ids, key=f"funnels_goal_node_{funnel_id}",
                         index=node_ids.index(goal["node_id"]) if goal.get("node_id") in node_ids else None)
            st.text_input(t("funnels.goal.tag"), value=goal.get("tag", ""), key=f"funnels_goal_tag_{funnel_id}")
            st.number_input(t("funnels.goal.days"), min_value=1, max_value=funnel_goals.MAX_DAYS,
                            value=int(goal.get("days", 7)), key=f"funnels_goal_days_{funnel_id}")
            st.form_submit_button(t("funnels.goal.save"), key=f"funnels_goal_save_{funnel_id}",
                                  on_click=_save_goal, args=(funnel_id,))
        if report is not None:
            _groups_table(t("funnels.goal.by_branch"), report.branches, report.branch_verdict)
            _groups_table(t("funnels.goal.by_link"), report.links, report.link_verdict)


def _card(funnel: dict[str, Any]) -> None:
    funnel_id = funnel["id"]
    report = funnels.validate(actor, funnel["draft"])
    with st.container(border=True):
        with st.container(horizontal=True, vertical_alignment="center"):
            st.text(funnel["name"])
            version = funnel["published_version"]
            if version:
                st.badge(t("funnels.version", version=version), color="blue", icon=":material/verified:")
                if funnel["has_draft_changes"]:
                    st.badge(t("funnels.draft_changes"), color="orange", icon=":material/edit_note:")
            else:
                st.badge(t("funnels.unpublished"), color="gray")
        st.caption(t("funnels.trigger"))
        st.text(trigger_label(funnel["trigger"]))
        _counts(funnel)
        _goal(funnel)
        # The stored value wins on every run, so a refused switch springs back (no value= with a key).
        st.session_state[f"funnels_active_{funnel_id}"] = funnel["is_active"]
        st.toggle(t("funnels.active"), key=f"funnels_active_{funnel_id}", on_change=_toggle, args=(funnel_id,),
                  help=t("funnels.active_help"))
        show_flash(FLASH_KEY, funnel_id)
        if st.session_state.get(PROBLEMS_KEY) == funnel_id:
            del st.session_state[PROBLEMS_KEY]
            _problems(report)
        _actions(funnel)
        _definition(funnel, report)


st.title(t("funnels.title"))
if not actor.is_manager:
    # app.py leaves this page out of an agent's navigation; this guards a direct load all the same.
    st.error(t("funnels.manager_only"))
    st.stop()
st.caption(t("funnels.intro"))
create_col, import_col = st.columns(2)
with create_col:
    _create_form()
with import_col:
    _import_form()
show_flash(FLASH_KEY)
cards = funnels.list_funnels(actor)
if not cards:
    st.info(t("funnels.empty"), icon=":material/account_tree:")
for card in cards:
    _card(card)
