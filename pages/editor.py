"""Editor de funil: the draft on a streamlit-flow canvas, a form for the selected node, and a test chat.

Layout only. The draft lives in session state while it is edited (``editor_def_<id>``) and reaches the
database through ``workbench.services.funnels`` ("Salvar rascunho", "Publicar", "Descartar rascunho"); the
conversion between the draft and the canvas is ``workbench.editor.canvas``; the test chat is
``engine.core.preview`` (pure: nothing is sent or stored).


How the canvas and Python stay in step (streamlit-flow 1.6.1, docs/libraries.md):

- the browser reports every change (drag, click, new edge, delete) as the component's value, kept by Streamlit
  under the canvas key; each run turns a value it has not seen yet into the draft (``canvas.from_flow``);
- the browser only takes what Python sends when the state's ``timestamp`` is newer than its own, and taking it
  replaces every node it holds, so the timestamp is bumped only when what the nodes *show* changed (content,
  style, edges), never for positions, which the browser owns while someone drags (``canvas.canvas_signature``);
- the canvas opens at zoom 1 on the flow's origin, where the layout puts the trigger, and keeps the user's pan
  and zoom; "Ver o funil inteiro" turns ``fit_view`` on for one render, with a push (it only fits then);
- node configuration rides in ``data`` and outputs on edge labels; node content is escaped by ``canvas``.

The node form is generated from the node type's ``NodeSpec``: ``workbench.editor.node_forms`` lists its fields and
their kinds, ``pages.ui.fields`` draws and reads each kind (scalars get one widget each; a condition's rule rows, a
delay's business hours and a message's media-library picker are typed editors). It is not an ``st.form``, so those
editors can react at once (a rule's value box goes away for "está vazio", the picker lists the chosen media kind);
nothing reaches the draft until "Aplicar" (or adding/removing a rule, which applies the form first). JSON is left
only as an "avançado" editor for values the typed editors cannot show.

Node ids, texts typed into nodes and everything the test contact says are shown with literal elements.
"""

from __future__ import annotations

import functools
import json
import time
import types
from collections.abc import Callable
from typing import Any

import streamlit as st
from streamlit_flow import StreamlitFlowEdge, StreamlitFlowNode, StreamlitFlowState, streamlit_flow

from engine.core import preview
from engine.core.nodes import REGISTRY
from pages.ui import fields as form_fields
from pages.ui.feedback import attempt, flash, show_flash
from workbench.base.i18n import t
from workbench.editor import canvas, node_forms
from workbench.services import contact_fields, funnels, outside_calls

actor = st.session_state["auth_actor"]

# Set by the Funis page's "Editar" button; the id also goes to the URL (?funil=) so a reload keeps it.
# (Comments, not docstrings: Streamlit's "magic" would print a bare string on the page.)
FUNNEL_KEY = "editor_funnel_id"
FLASH_KEY = "editor_flash"
CONFIRM_KEY = "editor_confirm_discard"
# About three quarters of a laptop's 900 px window: the canvas is the page's main element.
CANVAS_HEIGHT = 680
# Low enough for "Ver o funil inteiro" (fit view) to show a long funnel whole.
MIN_ZOOM = 0.25
# Set by "Ver o funil inteiro": the next canvas render fits the view once, then the canvas keeps the user's view.
FIT_KEY = "editor_fit_view"


def _funnel_id() -> int | None:
    raw = st.session_state.get(FUNNEL_KEY) or st.query_params.get("funil")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def _keys(funnel_id: int) -> types.SimpleNamespace:
    """Session keys of one funnel's editor (several funnels may be open in one session, one at a time)."""
    return types.SimpleNamespace(**{name: f"editor_{name}_{funnel_id}" for name in (
        "draft", "saved", "name", "ts", "sig", "seen", "sel", "nonce", "chat", "canvas", "pick", "ab")})


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- state ------------------------------------------------------------------------------------------------------

def _load(funnel_id: int, k: types.SimpleNamespace) -> None:
    """(Re)load the stored draft into the editor and make the canvas take it."""
    funnel = funnels.get_funnel(actor, funnel_id)
    draft = funnel["draft"] if isinstance(funnel["draft"], dict) else dict(funnels.EMPTY)
    # A drawing whose trigger lies off the opening view is moved as a whole (only positions change, so it is
    # not an unsaved edit; a later save keeps the new positions).
    draft = canvas.trigger_in_view(draft)
    st.session_state[k.draft] = draft
    st.session_state[k.saved] = draft
    st.session_state[k.name] = funnel["name"]
    st.session_state[k.sig] = None
    st.session_state[k.nonce] = st.session_state.get(k.nonce, 0) + 1
    st.session_state.pop(k.chat, None)


def _edit(k: types.SimpleNamespace, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Apply a Python-side edit to the draft (from a callback).

    The browser may have reported something (a drag, or its own redraw) that this session has not folded in yet;
    it is folded in *first*, or the script run that follows would take that older canvas for news and undo the
    edit.
    """
    _take_browser_changes(k)
    st.session_state[k.draft] = change(st.session_state[k.draft])


def _take_browser_changes(k: types.SimpleNamespace) -> None:
    """Fold a canvas value the page has not seen yet (a drag, click, drawn edge or delete) into the draft."""
    value = st.session_state.get(k.canvas)
    if not isinstance(value, dict) or value.get("timestamp") == st.session_state.get(k.seen):
        return
    st.session_state[k.seen] = value.get("timestamp")
    nodes, edges = value.get("nodes"), value.get("edges")
    if isinstance(nodes, list) and isinstance(edges, list):
        st.session_state[k.draft] = canvas.from_flow(nodes, edges)
    selected = value.get("selectedId")
    definition = st.session_state[k.draft]
    if isinstance(selected, str):
        if canvas.find_node(definition, selected) is None:
            # A clicked edge selects the node it leaves, where its output can be changed.
            edge = next((e for e in definition["edges"] if e["id"] == selected), None)
            selected = edge["source"] if edge else None
        if selected is not None:
            st.session_state[k.sel] = selected


# -- callbacks ----------------------------------------------------------------------------------------------------

def _add_node(k: types.SimpleNamespace) -> None:
    kind = st.session_state.get("editor_palette_type")
    if kind not in REGISTRY:
        return
    added: list[str] = []

    def add(definition: dict[str, Any]) -> dict[str, Any]:
        definition, node_id = canvas.add_node(definition, kind, st.session_state.get(k.sel))
        added.append(node_id)
        return definition

    _edit(k, add)
    node_id = added[0]
    st.session_state[k.sel] = node_id
    flash(FLASH_KEY, "success", t("editor.palette.added", node_id=node_id))


def _layout(k: types.SimpleNamespace) -> None:
    _edit(k, canvas.auto_layout)
    st.session_state[k.sig] = None  # positions changed on purpose: push them even though the signature did not


def _fit_view(k: types.SimpleNamespace) -> None:
    """"Ver o funil inteiro": fit the view on the next render, with a push (the canvas fits only after one)."""
    st.session_state[FIT_KEY] = True
    st.session_state[k.sig] = None


def _save(funnel_id: int, k: types.SimpleNamespace) -> None:
    _take_browser_changes(k)  # a drag just before the click is part of what the user sees, so it is saved
    definition = st.session_state[k.draft]
    with attempt(FLASH_KEY):
        report = funnels.save_draft(actor, funnel_id, definition)
        st.session_state[k.saved] = definition
        if report.is_valid:
            flash(FLASH_KEY, "success", t("editor.saved"))
        else:
            flash(FLASH_KEY, "warning", t("editor.saved_with_problems", count=len(report.errors)))


def _publish(funnel_id: int, k: types.SimpleNamespace) -> None:
    """Publishing freezes the *stored* draft, so what the editor holds is saved first."""
    _take_browser_changes(k)
    definition = st.session_state[k.draft]
    with attempt(FLASH_KEY):
        funnels.save_draft(actor, funnel_id, definition)
        st.session_state[k.saved] = definition
        version = funnels.publish(actor, funnel_id)
        flash(FLASH_KEY, "success", t("editor.published", version=version))


def _discard(funnel_id: int, k: types.SimpleNamespace) -> None:
    st.session_state.pop(CONFIRM_KEY, None)
    with attempt(FLASH_KEY, t("editor.discarded")):
        funnels.discard_draft(actor, funnel_id)
        _load(funnel_id, k)
        st.session_state.pop(k.sel, None)


def _delete_node(k: types.SimpleNamespace, node_id: str) -> None:
    _edit(k, lambda definition: canvas.delete_node(definition, node_id))
    st.session_state.pop(k.sel, None)
    flash(FLASH_KEY, "success", t("editor.panel.deleted", node_id=node_id))


def _delete_edge(k: types.SimpleNamespace, edge_id: str) -> None:
    _edit(k, lambda definition: canvas.delete_edge(definition, edge_id))
    flash(FLASH_KEY, "success", t("editor.outputs.deleted"))


def _relabel(k: types.SimpleNamespace, edge_id: str, widget_key: str) -> None:
    _edit(k, lambda definition: canvas.set_edge_label(definition, edge_id, st.session_state[widget_key]))


def _connect(k: types.SimpleNamespace, node_id: str) -> None:
    output = st.session_state.get(f"editor_connect_output_{node_id}")
    target = st.session_state.get(f"editor_connect_target_{node_id}")
    if not output or not target:
        return
    _edit(k, lambda definition: canvas.connect(definition, node_id, output, target))
    flash(FLASH_KEY, "success", t("editor.outputs.connected", output=output, target=target))


def _pick(k: types.SimpleNamespace) -> None:
    st.session_state[k.sel] = st.session_state.get(k.pick)


# -- the node form: generated from the node type's spec ----------------------------------------------------------

def _form_data(k: types.SimpleNamespace, node_id: str, prefix: str,
               fields: list[node_forms.FormField]) -> dict[str, Any] | None:
    """The node's configuration with every field's widgets read back (None if the node is gone).

    Raises ``node_forms.FormError``.
    """
    node = canvas.find_node(st.session_state[k.draft], node_id)
    if node is None:
        return None
    values = {field.name: form_fields.read(field, f"{prefix}_{field.name}") for field in fields}
    return node_forms.apply_form(canvas.node_data(node), fields, values)


def _read_form(k: types.SimpleNamespace, node_id: str, prefix: str,
               fields: list[node_forms.FormField]) -> dict[str, Any] | None:
    """The node's configuration as the form's widgets hold it; None (with a message) when a field is invalid."""
    _take_browser_changes(k)
    try:
        return _form_data(k, node_id, prefix, fields)
    except node_forms.FormError as exc:
        flash(FLASH_KEY, "error", str(exc))
        return None


def _apply_form(k: types.SimpleNamespace, node_id: str, prefix: str, fields: list[node_forms.FormField]) -> None:
    """"Aplicar": read every field widget back into the node's configuration (the draft, not the database)."""
    data = _read_form(k, node_id, prefix, fields)
    if data is None:
        return
    _edit(k, lambda definition: canvas.update_node_data(definition, node_id, data))
    flash(FLASH_KEY, "success", t("editor.panel.applied"))


def _change_field(k: types.SimpleNamespace, node_id: str, prefix: str, fields: list[node_forms.FormField], name: str,
                  change: Callable[[list[Any]], list[Any]]) -> None:
    """Restructure a field's value (add or remove a rule or group): the form is applied first, so nothing typed is
    lost."""
    data = _read_form(k, node_id, prefix, fields)
    if data is None:
        return
    data[name] = change(data.get(name) if isinstance(data.get(name), list) else [])
    _edit(k, lambda definition: canvas.update_node_data(definition, node_id, data))
    # The rows moved: new widget keys make every widget start again from the draft.
    st.session_state[k.nonce] += 1


def _node_form(funnel_id: int, k: types.SimpleNamespace, node: dict[str, Any]) -> None:
    node_id, kind = node["id"], canvas.node_type_of(node)
    st.caption(t("editor.panel.id"))
    st.text(node_id)
    st.caption(t("editor.panel.type"))
    st.text(canvas.type_label(kind))
    spec = REGISTRY.get(kind)
    if spec is None:
        st.warning(t("editor.panel.unknown"))
        st.code(json.dumps(node, ensure_ascii=False, indent=2), language="json")
    else:
        st.caption(spec.description)
        fields = node_forms.form_fields(spec, canvas.node_data(node))
        prefix = f"editor_w_{funnel_id}_{st.session_state[k.nonce]}_{node_id}"
        form_args = (k, node_id, prefix, fields)
        context = form_fields.FormContext(actor, functools.partial(_change_field, *form_args))
        if any(field.template for field in fields):
            st.caption(t("editor.panel.variables"))
        for field in fields:
            form_fields.draw(field, f"{prefix}_{field.name}", context)
        st.button(t("editor.panel.apply"), key=f"editor_apply_{node_id}", type="primary", on_click=_apply_form,
                  args=form_args)
    _outputs(k, node)
    st.button(t("editor.panel.delete"), key=f"editor_delete_node_{node_id}", icon=":material/delete:",
              on_click=_delete_node, args=(k, node_id))


def _outputs(k: types.SimpleNamespace, node: dict[str, Any]) -> None:
    """Each outgoing edge (its output can be changed, or the edge deleted), then "connect output X to node Y"."""
    definition = st.session_state[k.draft]
    node_id = node["id"]
    outputs = canvas.outputs_for(node)
    st.markdown(f"**{t('editor.outputs')}**")
    if not outputs:
        st.caption(t("editor.outputs.none"))
    edges = canvas.outgoing(definition, node_id)
    used = {e.get("label") for e in edges}
    # Literal: outputs are option keys and node ids typed by people.
    targets_by_output = {e.get("label"): e.get("target") for e in edges}
    if outputs:
        st.text("\n".join(f"{o} → {targets_by_output.get(o) or t('editor.outputs.free')}" for o in outputs))
    for edge in edges:
        with st.container(horizontal=True, vertical_alignment="bottom"):
            options = list(dict.fromkeys([*outputs, edge.get("label") or ""]))
            widget_key = f"editor_edge_label_{edge['id']}"
            st.session_state[widget_key] = edge.get("label") or ""
            st.selectbox(t("editor.outputs.edge", edge_id=edge["target"]), options, key=widget_key,
                         on_change=_relabel, args=(k, edge["id"], widget_key))
            st.button(t("editor.outputs.delete"), key=f"editor_delete_edge_{edge['id']}", icon=":material/link_off:",
                      on_click=_delete_edge, args=(k, edge["id"]))
    if outputs:
        targets = [n["id"] for n in definition["nodes"] if isinstance(n, dict) and n.get("id") != node_id
                   and not (REGISTRY.get(canvas.node_type_of(n)) and REGISTRY[canvas.node_type_of(n)].is_start)]
        free = [o for o in outputs if o not in used] or outputs
        with st.container(horizontal=True, vertical_alignment="bottom"):
            st.selectbox(t("editor.outputs.connect_output"), free, key=f"editor_connect_output_{node_id}")
            st.selectbox(t("editor.outputs.connect_target"), targets, key=f"editor_connect_target_{node_id}")
            st.button(t("editor.outputs.connect"), key=f"editor_connect_{node_id}", icon=":material/link:",
                      on_click=_connect, args=(k, node_id), disabled=not targets)


def _type_of(definition: dict[str, Any], node_id: str) -> str:
    return canvas.type_label(canvas.node_type_of(canvas.find_node(definition, node_id) or {}))


def _side_panel(funnel_id: int, k: types.SimpleNamespace) -> None:
    definition = st.session_state[k.draft]
    st.subheader(t("editor.panel"))
    ids = [n["id"] for n in definition["nodes"] if isinstance(n, dict) and isinstance(n.get("id"), str)]
    selected = st.session_state.get(k.sel)
    if selected not in ids:
        selected = None
    st.session_state[k.pick] = selected
    st.selectbox(t("editor.panel.pick"), ids, key=k.pick, on_change=_pick, args=(k,), index=None,
                 placeholder=t("editor.panel.pick_placeholder"),
                 format_func=lambda node_id: f"{node_id} · {_type_of(definition, node_id)}")
    node = canvas.find_node(definition, selected)
    if node is None:
        st.caption(t("editor.panel.none"))
        return
    _node_form(funnel_id, k, node)


# -- canvas, toolbar, problems --------------------------------------------------------------------------------

def _canvas(k: types.SimpleNamespace, report) -> None:
    definition = st.session_state[k.draft]
    flow = canvas.to_flow(definition, report)
    signature = canvas.canvas_signature(flow)
    if signature != st.session_state.get(k.sig) or k.ts not in st.session_state:
        # Newer than anything the browser has sent, so it takes this state (and resets its view: only on changes).
        seen = st.session_state.get(k.seen)
        st.session_state[k.ts] = max(_now_ms(), (seen if isinstance(seen, int) else 0) + 1)
        st.session_state[k.sig] = signature
    state = StreamlitFlowState(nodes=[StreamlitFlowNode(**n) for n in flow["nodes"]],
                               edges=[StreamlitFlowEdge(**e) for e in flow["edges"]],
                               selected_id=st.session_state.get(k.sel), timestamp=st.session_state[k.ts])
    st.caption(t("editor.canvas_help"))
    # Without fit_view the canvas opens at zoom 1 on the flow's origin, where the layout puts the trigger, so the
    # boxes are drawn at their normal size; fitting a long funnel would shrink them below reading size.
    streamlit_flow(k.canvas, state, height=CANVAS_HEIGHT, fit_view=st.session_state.pop(FIT_KEY, False),
                   allow_new_edges=True, get_node_on_click=True, get_edge_on_click=True, show_minimap=False,
                   hide_watermark=True, min_zoom=MIN_ZOOM)


def _toolbar(funnel_id: int, k: types.SimpleNamespace) -> None:
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.selectbox(t("editor.palette.type"), list(REGISTRY), key="editor_palette_type",
                     format_func=canvas.type_label)
        st.button(t("editor.palette.add"), key="editor_add", icon=":material/add:", on_click=_add_node, args=(k,))
        st.button(t("editor.layout"), key="editor_layout", icon=":material/account_tree:", on_click=_layout,
                  args=(k,), help=t("editor.layout_help"))
        st.button(t("editor.fit"), key="editor_fit", icon=":material/fit_screen:", on_click=_fit_view, args=(k,),
                  help=t("editor.fit_help"))
    if st.session_state.get(CONFIRM_KEY) == funnel_id:
        st.warning(t("editor.confirm_discard"), icon=":material/warning:")
        with st.container(horizontal=True):
            st.button(t("editor.confirm"), key="editor_discard_yes", type="primary", on_click=_discard,
                      args=(funnel_id, k))
            st.button(t("editor.cancel"), key="editor_discard_no",
                      on_click=lambda: st.session_state.pop(CONFIRM_KEY, None))
        return
    with st.container(horizontal=True):
        st.button(t("editor.save"), key="editor_save", icon=":material/save:", type="primary", on_click=_save,
                  args=(funnel_id, k))
        st.button(t("editor.publish"), key="editor_publish", icon=":material/publish:", on_click=_publish,
                  args=(funnel_id, k))
        st.button(t("editor.discard"), key="editor_discard", icon=":material/undo:",
                  on_click=lambda: st.session_state.__setitem__(CONFIRM_KEY, funnel_id))


def _problems(report) -> None:
    if report.is_valid:
        st.success(t("editor.no_problems"))
        return
    with st.expander(t("editor.problems", count=len(report.errors)), expanded=True, icon=":material/warning:"):
        lines = []
        for problem in report.errors:
            where = problem.node_id or problem.edge_id
            lines.append(f"• {where}: {problem.message}" if where else f"• {problem.message}")
        st.text("\n".join(lines))  # literal: messages quote node ids, keywords and labels typed by people


# -- test chat ------------------------------------------------------------------------------------------------------

def _field_types() -> dict[str, str]:
    """The workspace's contact field types, so the test chat's conditions compare like real runs (none, with the
    error shown, when the database cannot be read)."""
    found: dict[str, str] = {}
    with attempt():
        found = contact_fields.list_field_types(actor)
    return found


MAX_CHAT_CALLS = 5
"""Outside calls one message of the test chat may run in a row (a step that asks again at once)."""


def _chat_send(k: types.SimpleNamespace, input_key: str) -> None:
    text = st.session_state.get(input_key)
    if not text:
        return
    state = st.session_state.get(k.chat) or preview.PreviewState()
    types_ = _field_types()
    picks = {node_id: st.session_state.get(f"{k.ab}_{node_id}") or ""
             for node_id, _ in preview.ab_split_steps(st.session_state[k.draft])}
    state = preview.send(st.session_state[k.draft], state, text, funnel_name=st.session_state.get(k.name, ""),
                         field_types=types_, ab_picks=picks)
    # A step that calls outside (Perguntar à IA) makes a REAL call here, against the configured provider; the
    # chat marks it as such and shows its tool calls, rejected values and tokens.
    for _ in range(MAX_CHAT_CALLS):
        if state.pending_call is None:
            break
        result = None
        with attempt():
            result = outside_calls.preview_call(actor, str(state.pending_call.get("service")),
                                                state.pending_call.get("request") or {}, state.history())
        if result is None:
            break
        state = preview.deliver(st.session_state[k.draft], state, result,
                                funnel_name=st.session_state.get(k.name, ""), field_types=types_)
    st.session_state[k.chat] = state


def _chat_timeout(k: types.SimpleNamespace) -> None:
    state = st.session_state.get(k.chat) or preview.PreviewState()
    st.session_state[k.chat] = preview.time_out(st.session_state[k.draft], state,
                                                funnel_name=st.session_state.get(k.name, ""),
                                                field_types=_field_types())


def _chat_entry(entry: preview.PreviewEntry) -> None:
    if entry.role == "contact":
        with st.chat_message("user"):
            st.text(entry.text)
    elif entry.role == "bot":
        with st.chat_message("assistant"):
            if entry.kind == "media":
                st.caption(t("editor.chat.media", media_kind=entry.params.get("media_kind", "")))
            if entry.text:
                st.text(entry.text)
    elif entry.kind == "call":
        _chat_call(entry)
    else:
        st.caption(t(f"editor.chat.note.{entry.kind}"))
        field = entry.params.get("field")
        if entry.text or field:
            st.text(f"{field} = {entry.text}" if field else entry.text)


def _chat_call(entry: preview.PreviewEntry) -> None:
    """A real outside call of the test chat: marked as such, with its figures, tool calls and rejected values."""
    p = entry.params
    st.caption(t("editor.chat.note.call", service=entry.text))
    if p.get("ok"):
        st.text(t("editor.chat.call.figures", model=p.get("model") or "—", total=p.get("total_tokens") or 0,
                  prompt=p.get("prompt_tokens") or 0, completion=p.get("completion_tokens") or 0))
    else:
        st.text(t("editor.chat.call.failed", kind=p.get("kind") or "", error=p.get("error") or ""))
    lines = [t("editor.chat.call.tool", name=c.get("name"), arguments=c.get("arguments")) for c in p.get("tools") or ()]
    lines += [t("editor.chat.call.accepted", field=a.get("key"), value=a.get("value")) for a in p.get("accepted") or ()]
    lines += [t("editor.chat.call.rejected", field=r.get("key"), value=r.get("value"), reason=r.get("reason"))
              for r in p.get("rejected") or ()]
    if lines:
        st.text("\n".join(lines))  # model output and contact text: literal


def _test_chat(funnel_id: int, k: types.SimpleNamespace) -> None:
    st.subheader(t("editor.chat"))
    st.caption(t("editor.chat.help"))
    state = st.session_state.get(k.chat) or preview.PreviewState()
    chat_col, info_col = st.columns([3, 2])
    with chat_col:
        with st.container(height=420, border=True):
            for entry in state.entries:
                _chat_entry(entry)
        if state.status == "waiting" and state.wait_kind == "call":
            st.text(t("editor.chat.status.waiting_call", node_id=state.node_id))
        elif state.status == "waiting" and state.wait_kind == "timer":
            st.text(t("editor.chat.status.waiting_timer", node_id=state.node_id))
        else:
            st.text(t(f"editor.chat.status.{state.status}", node_id=state.node_id))
        input_key = f"editor_chat_input_{funnel_id}"
        st.chat_input(t("editor.chat.placeholder"), key=input_key, on_submit=_chat_send, args=(k, input_key),
                      max_chars=1000)
        with st.container(horizontal=True):
            st.button(t("editor.chat.timeout"), key="editor_chat_timeout", icon=":material/timer_off:",
                      disabled=not (state.status == "waiting" and state.can_time_out), on_click=_chat_timeout,
                      args=(k,))
            st.button(t("editor.chat.reset"), key="editor_chat_reset", icon=":material/restart_alt:",
                      on_click=lambda: st.session_state.pop(k.chat, None))
        # Teste A/B: the author may choose the simulated contact's branch (applies from the next start).
        for node_id, branches in preview.ab_split_steps(st.session_state[k.draft]):
            label = t("editor.chat.ab_pick", node_id=node_id)
            st.text(label)  # node ids may come from an imported definition: literal, and the widget's label hidden
            st.selectbox(label, ["", *branches], key=f"{k.ab}_{node_id}", label_visibility="collapsed",
                         format_func=lambda v: v.upper() if v else t("editor.chat.ab_random"))
    with info_col:
        st.markdown(f"**{t('editor.chat.path')}**")
        lines = []
        for number, step in enumerate(state.steps, start=1):
            outcome = t(f"editor.chat.step.{step.outcome}", output=step.output)
            lines.append(f"{number}. {step.node_id} ({canvas.type_label(step.node_type)}) → {outcome}")
            lines.extend(f"     {line}" for line in step.log)
        st.text("\n".join(lines) or "—")
        st.markdown(f"**{t('editor.chat.variables')}**")
        st.json({"vars": dict(state.variables), "contact": dict(state.contact)}, expanded=True)


# -- page -----------------------------------------------------------------------------------------------------------

def main() -> None:
    """Draw the editor for the funnel chosen on the Funis page."""
    st.title(t("editor.title"))
    if not actor.is_manager:
        # app.py leaves this page out of an agent's navigation; this guards a direct load all the same.
        st.error(t("editor.manager_only"))
        st.stop()
    st.page_link("pages/funnels.py", label=t("editor.back"), icon=":material/arrow_back:")
    funnel_id = _funnel_id()
    if funnel_id is None:
        st.info(t("editor.no_funnel"))
        st.stop()
    k = _keys(funnel_id)
    if k.draft not in st.session_state:
        with attempt() as loaded:
            _load(funnel_id, k)
        if not loaded.ok:
            st.stop()
    st.session_state[FUNNEL_KEY] = funnel_id
    st.query_params["funil"] = str(funnel_id)
    _take_browser_changes(k)
    st.text(st.session_state[k.name])  # typed by a user: literal
    if st.session_state[k.draft] != st.session_state[k.saved]:
        st.caption(t("editor.unsaved"))
    report = funnels.validate(actor, st.session_state[k.draft])
    # The canvas takes the page's width; the node's panel goes below it rather than beside it, so it never
    # narrows the drawing.
    _canvas(k, report)
    _toolbar(funnel_id, k)
    show_flash(FLASH_KEY)
    _problems(report)
    with st.container(border=True):
        _side_panel(funnel_id, k)
    st.divider()
    _test_chat(funnel_id, k)


main()
