"""Importar contatos: a wizard over ``workbench.services.contact_import`` (admins and supervisors).

Steps, kept in session state: send a CSV or XLSX file → map its columns and pick the options (the file's first
rows shown beside) → every row checked, errors listed by line and column → the import runs as a worker job with
a live progress bar → the summary and the failed rows as a CSV. Layout only; the service reads, checks and writes.
Everything from the file (headers, cells, error columns) is shown through ``st.dataframe``, ``st.text`` or widget
values, never as Markdown.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages.ui.feedback import attempt, show_flash
from pages.ui.panel import live_fragment
from workbench.base.i18n import t
from workbench.services import contact_import, contact_jobs

actor = st.session_state["auth_actor"]

WIZARD_KEY = "import_wizard"
"""The wizard's state: ``step`` (upload, map, review, run), ``upload``, ``mapping``, ``options``, ``check``,
``job_id``."""
FLASH_KEY = "import_flash"
NONCE_KEY = "import_nonce"  # part of the uploader's key, so "Nova importação" starts from an empty one


def _wizard() -> dict[str, Any]:
    return st.session_state.setdefault(WIZARD_KEY, {"step": "upload"})


def _restart() -> None:
    st.session_state[WIZARD_KEY] = {"step": "upload"}
    st.session_state[NONCE_KEY] = st.session_state.get(NONCE_KEY, 0) + 1


def _read() -> None:
    upload = st.session_state.get(f"import_file_{st.session_state.get(NONCE_KEY, 0)}")
    if upload is None:
        st.session_state[FLASH_KEY] = (None, "error", t("import.upload.missing"))
        return
    with attempt(FLASH_KEY):
        read = contact_import.read_upload(actor, upload.name, upload.getvalue())
        st.session_state[WIZARD_KEY] = {"step": "map", "upload": read, "mapping": read.mapping, "options": None}


def _chosen(wizard: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The mapping and options as the widgets hold them now."""
    mapping = [st.session_state.get(f"import_map_{i}", target) for i, target in enumerate(wizard["mapping"])]
    tags = st.session_state.get("import_tags") or []
    options = {"instance_id": st.session_state.get("import_number"),
               "country": st.session_state.get("import_country", "55"),
               "on_existing": st.session_state.get("import_on_existing", "update"), "tags": list(tags)}
    wizard["mapping"], wizard["options"] = mapping, options
    return mapping, options


def _validate() -> None:
    wizard = _wizard()
    mapping, options = _chosen(wizard)
    with attempt(FLASH_KEY):
        wizard["check"] = contact_import.validate(actor, wizard["upload"].token, mapping, options)
        wizard["step"] = "review"


def _back() -> None:
    _wizard()["step"] = "map"


def _start() -> None:
    wizard = _wizard()
    with attempt(FLASH_KEY):
        wizard["job_id"] = contact_import.start_import(actor, wizard["upload"].token, wizard["mapping"],
                                                       wizard["options"])
        wizard["step"] = "run"


# -- steps ---------------------------------------------------------------------------------------------------------


def _upload_step() -> None:
    st.caption(t("import.upload.help", max_mb=contact_import.MAX_FILE_BYTES // (1024 * 1024),
                 max_rows=f"{contact_import.MAX_ROWS:,}".replace(",", ".")))
    st.file_uploader(t("import.upload.file"), type=["csv", "xlsx"],
                     key=f"import_file_{st.session_state.get(NONCE_KEY, 0)}")
    st.button(t("import.upload.submit"), key="import_read", type="primary", on_click=_read,
              icon=":material/upload_file:")


def _target_label(target: str, fields: dict[str, str]) -> str:
    if target.startswith("field:"):
        return t("import.target.field", label=fields.get(target.removeprefix("field:"), target))
    return t(f"import.target.{target}")


def _map_step(wizard: dict[str, Any]) -> None:
    upload: contact_import.Upload = wizard["upload"]
    choices = contact_import.import_choices(actor)
    st.text(upload.file_name)
    st.caption(t("import.map.preview", rows=upload.rows, n=len(upload.preview)))
    st.dataframe([dict(zip(upload.headers, row, strict=False)) for row in upload.preview], hide_index=True,
                 use_container_width=True)
    st.subheader(t("import.map.columns"))
    st.caption(t("import.map.columns_help"))
    fields = {f["key"]: f["label"] for f in choices["fields"]}
    targets = [*contact_import.TARGETS, *(f"field:{key}" for key in fields), "new"]
    grid = st.columns(3)
    for i, header in enumerate(upload.headers):
        current = wizard["mapping"][i] if wizard["mapping"][i] in targets else "ignore"
        with grid[i % 3]:
            st.text(header)  # the file's header, literal (a widget label would be Markdown)
            st.selectbox(t("import.map.target", n=i + 1), targets, index=targets.index(current),
                         key=f"import_map_{i}", label_visibility="collapsed",
                         format_func=lambda target: _target_label(target, fields))
    st.subheader(t("import.options"))
    options = wizard["options"] or {}
    numbers = {n["id"]: n["name"] for n in choices["numbers"]}
    if not numbers:
        st.warning(t("import.no_number"))
        return
    ids = list(numbers)
    chosen = options.get("instance_id") if options.get("instance_id") in numbers else ids[0]
    st.selectbox(t("import.options.number"), ids, index=ids.index(chosen), key="import_number",
                 format_func=numbers.get, help=t("import.options.number_help"))
    st.text_input(t("import.options.country"), value=options.get("country", "55"), key="import_country",
                  max_chars=4, help=t("import.options.country_help"))
    modes = list(contact_import.ON_EXISTING)
    st.radio(t("import.options.on_existing"), modes, index=modes.index(options.get("on_existing", "update")),
             key="import_on_existing", format_func=lambda mode: t(f"import.on_existing.{mode}"))
    st.multiselect(t("import.options.tags"), choices["tags"], default=[
        tag for tag in options.get("tags", []) if tag in choices["tags"]], key="import_tags",
        accept_new_options=True, help=t("import.options.tags_help"))
    left, right = st.columns(2)
    left.button(t("import.validate"), key="import_validate", type="primary", on_click=_validate,
                icon=":material/fact_check:")
    right.button(t("import.other_file"), key="import_other", on_click=_restart)


def _review_step(wizard: dict[str, Any]) -> None:
    check = wizard["check"]
    cols = st.columns(4)
    cols[0].metric(t("import.review.rows"), check["rows"])
    cols[1].metric(t("import.review.valid"), check["valid"])
    cols[2].metric(t("import.review.failed"), check["failed"])
    cols[3].metric(t("import.review.existing"), check["existing"])
    if check["errors"]:
        st.subheader(t("import.review.errors"))
        if check["error_count"] > len(check["errors"]):
            st.caption(t("import.review.errors_cut", shown=len(check["errors"]), total=check["error_count"]))
        st.dataframe([{t("import.review.line"): e["line"], t("import.review.column"): e["column"],
                       t("import.review.message"): e["message"]} for e in check["errors"]],
                     hide_index=True, use_container_width=True)
        st.info(t("import.review.failed_kept"))
    else:
        st.success(t("import.review.all_valid"))
    left, right = st.columns(2)
    left.button(t("import.start", n=check["valid"]), key="import_start", type="primary", on_click=_start,
                disabled=check["valid"] == 0, icon=":material/play_arrow:")
    right.button(t("import.back"), key="import_back", on_click=_back)


@live_fragment(run_every=1)
def _progress(job_id: int) -> None:
    """The live bar; once the job has ended, the whole page redraws with the summary."""
    status = contact_jobs.job_status(actor, job_id)
    if status["status"] in ("queued", "running"):
        st.progress(min(1.0, status["done"] / max(1, status["total"])),
                    text=t(f"import.run.{status['status']}", done=status["done"], total=status["total"]))
        return
    _wizard()["final"] = status
    st.rerun(scope="app")


def _summary(job_id: int, status: dict[str, Any]) -> None:
    result = status["result"]
    if status["status"] == "failed":
        st.error(t("import.run.failed", reason=status["error"] or ""))
    else:
        st.success(t("import.run.done"))
    cols = st.columns(4)
    for col, name in zip(cols, ("created", "updated", "skipped", "failed"), strict=True):
        col.metric(t(f"import.summary.{name}"), result.get(name, 0))
    if result.get("failed"):
        st.download_button(t("import.summary.download"), contact_import.failed_rows_csv(actor, job_id),
                           file_name=t("import.summary.file_name", job=job_id), mime="text/csv",
                           key="import_download", icon=":material/download:")
    st.button(t("import.new"), key="import_new", on_click=_restart, icon=":material/restart_alt:")


st.title(t("import.title"))
if not actor.is_manager:
    st.info(t("import.manager_only"))
    st.stop()
st.caption(t("import.intro"))
show_flash(FLASH_KEY)
wizard = _wizard()
if wizard["step"] == "map":
    _map_step(wizard)
elif wizard["step"] == "review":
    _review_step(wizard)
elif wizard["step"] == "run" and "final" in wizard:
    _summary(wizard["job_id"], wizard["final"])
elif wizard["step"] == "run":
    _progress(wizard["job_id"])
else:
    _upload_step()
