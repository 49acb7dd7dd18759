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

The node form is generated from the node's schema: scalars get one widget each, and the structured fields get a
typed editor (a condition's rule rows, a delay's business hours, a message's media-library picker;
``workbench.editor.node_forms`` converts both ways). It is not an ``st.form``, so those editors can react at once (a
rule's value box goes away for "está vazio", the picker lists the chosen media kind); nothing reaches the draft
until "Aplicar" (or adding/removing a rule, which applies the form first). JSON is left only as an "avançado"
editor for values the typed editors cannot show.

Node ids, texts typed into nodes and everything the test contact says are shown with literal elements.
"""

from __future__ import annotations

import functools
import json
import time
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin

import streamlit as st
from pydantic import AfterValidator, BaseModel
from streamlit_flow import StreamlitFlowEdge, StreamlitFlowNode, StreamlitFlowState, streamlit_flow

from engine.core import preview
from engine.core.definition import validate_definition
from engine.core.nodes import REGISTRY, condition, delay, send_message
from engine.core.nodes import base as node_base
from workbench.base.errors import PAGE_ERRORS
from workbench.base.i18n import error_text, has_key, t
from workbench.editor import canvas, node_forms
from workbench.services import funnels, instances, media_library, workspaces

actor = st.session_state["auth_actor"]

# Set by the Funis page's "Editar" button; the id also goes to the URL (?funil=) so a reload keeps it.
# (Comments, not docstrings: Streamlit's "magic" would print a bare string on the page.)
FUNNEL_KEY = "editor_funnel_id"
FLASH_KEY = "editor_flash"
CONFIRM_KEY = "editor_confirm_discard"
TEXT_AREA_FIELDS = ("text", "prompt", "message", "retry_prompt")
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
        "draft", "saved", "name", "ts", "sig", "seen", "sel", "nonce", "chat", "canvas", "pick")})


def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH_KEY] = (kind, text)


def _show_flash() -> None:
    pending = st.session_state.pop(FLASH_KEY, None)
    if pending:
        getattr(st, pending[0])(pending[1])


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- state ------------------------------------------------------------------------------------------------------

def _load(funnel_id: int, k: types.SimpleNamespace) -> None:
    """(Re)load the stored draft into the editor and make the canvas take it."""
    funnel = funnels.get_funnel(actor, funnel_id)
    draft = funnel["draft"] if isinstance(funnel["draft"], dict) else dict(funnels.EMPTY)
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
    _flash("success", t("editor.palette.added", node_id=node_id))


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
    try:
        report = funnels.save_draft(actor, funnel_id, definition)
    except PAGE_ERRORS as exc:
        _flash("error", error_text(exc))
        return
    st.session_state[k.saved] = definition
    if report.is_valid:
        _flash("success", t("editor.saved"))
    else:
        _flash("warning", t("editor.saved_with_problems", count=len(report.errors)))


def _publish(funnel_id: int, k: types.SimpleNamespace) -> None:
    """Publishing freezes the *stored* draft, so what the editor holds is saved first."""
    _take_browser_changes(k)
    definition = st.session_state[k.draft]
    try:
        funnels.save_draft(actor, funnel_id, definition)
        st.session_state[k.saved] = definition
        version = funnels.publish(actor, funnel_id)
    except PAGE_ERRORS as exc:
        _flash("error", error_text(exc))
        return
    _flash("success", t("editor.published", version=version))


def _discard(funnel_id: int, k: types.SimpleNamespace) -> None:
    st.session_state.pop(CONFIRM_KEY, None)
    try:
        funnels.discard_draft(actor, funnel_id)
    except PAGE_ERRORS as exc:
        _flash("error", error_text(exc))
        return
    _load(funnel_id, k)
    st.session_state.pop(k.sel, None)
    _flash("success", t("editor.discarded"))


def _delete_node(k: types.SimpleNamespace, node_id: str) -> None:
    _edit(k, lambda definition: canvas.delete_node(definition, node_id))
    st.session_state.pop(k.sel, None)
    _flash("success", t("editor.panel.deleted", node_id=node_id))


def _delete_edge(k: types.SimpleNamespace, edge_id: str) -> None:
    _edit(k, lambda definition: canvas.delete_edge(definition, edge_id))
    _flash("success", t("editor.outputs.deleted"))


def _relabel(k: types.SimpleNamespace, edge_id: str, widget_key: str) -> None:
    _edit(k, lambda definition: canvas.set_edge_label(definition, edge_id, st.session_state[widget_key]))


def _connect(k: types.SimpleNamespace, node_id: str) -> None:
    output = st.session_state.get(f"editor_connect_output_{node_id}")
    target = st.session_state.get(f"editor_connect_target_{node_id}")
    if not output or not target:
        return
    _edit(k, lambda definition: canvas.connect(definition, node_id, output, target))
    _flash("success", t("editor.outputs.connected", output=output, target=target))


def _pick(k: types.SimpleNamespace) -> None:
    st.session_state[k.sel] = st.session_state.get(k.pick)


# -- the node form: generated from the node's pydantic schema ----------------------------------------------------

FieldKind = Literal["text", "template", "int", "float", "bool", "literal", "list_str", "list_int", "options",
                    "rule_groups", "business_hours", "media", "pick_one", "pick_many", "json"]
# Fields holding ids of the workspace's rows: picked by name from a list, never typed as numbers.
PICKED_FIELDS: dict[str, tuple[FieldKind, str]] = {"team_id": ("pick_one", "teams"), "user_id": ("pick_one", "members"),
                                                   "agent_id": ("pick_one", "members"),
                                                   "instance_ids": ("pick_many", "numbers")}
# (name, widget kind, optional, literal choices, the value the widget was drawn from)
FormField = tuple[str, FieldKind, bool, tuple[Any, ...], Any]
# The typed editors and the reader that says whether a value fits one (None: show it as advanced JSON).
TYPED_FORMS: dict[str, Callable[[Any], Any]] = {"rule_groups": node_forms.rule_form,
                                                "business_hours": node_forms.hours_form,
                                                "media": node_forms.media_form}


def _is_template(metadata: list[Any]) -> bool:
    return any(isinstance(m, AfterValidator) and m.func is node_base._check_template for m in metadata)


def _classify(annotation: Any, metadata: list[Any]) -> tuple[FieldKind, bool, tuple[Any, ...]]:
    """(widget kind, optional, literal choices) for one data field."""
    optional = False
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
        origin = get_origin(annotation)
    if origin is typing.Annotated:
        annotation, *extra = get_args(annotation)
        metadata = [*metadata, *extra]
        origin = get_origin(annotation)
    if origin is Literal:
        return "literal", optional, get_args(annotation)
    if annotation is bool:
        return "bool", optional, ()
    if annotation is int:
        return "int", optional, ()
    if annotation is float:
        return "float", optional, ()
    if annotation is str:
        return ("template" if _is_template(metadata) else "text"), optional, ()
    if annotation is delay.BusinessHours:
        return "business_hours", optional, ()
    if annotation is send_message.Media:
        return "media", optional, ()
    if origin is list:
        item = get_args(annotation)[0]
        if get_origin(item) is typing.Annotated:
            item = get_args(item)[0]
        if item is str:
            return "list_str", optional, ()
        if item is int:
            return "list_int", optional, ()
        if item is condition.RuleGroup:
            return "rule_groups", optional, ()
        if isinstance(item, type) and issubclass(item, BaseModel) and set(item.model_fields) == {"key", "label"}:
            return "options", optional, ()
    return "json", optional, ()


def _data_fields(kind: str) -> list[tuple[str, FieldKind, bool, tuple[Any, ...], Any]]:
    """(name, widget kind, optional, choices, default) for each configuration field of a node type."""
    data_model = REGISTRY[kind].schema.model_fields["data"].annotation
    fields = []
    for name, info in data_model.model_fields.items():
        widget, optional, choices = _classify(info.annotation, list(info.metadata))
        if name in PICKED_FIELDS and widget in ("int", "list_int"):
            widget = PICKED_FIELDS[name][0]
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        fields.append((name, widget, optional, choices, default))
    return fields


def _form_fields(kind: str, data: dict[str, Any]) -> list[FormField]:
    """The node's fields with the values the form shows; a value a typed editor cannot show goes to JSON."""
    fields: list[FormField] = []
    for name, widget, optional, choices, default in _data_fields(kind):
        shown = data.get(name, default)
        if widget in TYPED_FORMS and TYPED_FORMS[widget](shown) is None:
            widget = "json"
        fields.append((name, widget, optional, choices, shown))
    return fields


def _label(name: str) -> str:
    return t(f"editor.field.{name}") if has_key(f"editor.field.{name}") else name


def _choice_label(value: Any) -> str:
    return t(f"editor.value.{value}") if has_key(f"editor.value.{value}") else str(value)


def _field_widget(field: FormField, key: str, form_args: tuple[Any, ...]) -> None:
    name, widget, optional, choices, value = field
    label = _label(name)
    if widget == "rule_groups":
        _rules_widget(label, key, value, (*form_args, name))
    elif widget == "business_hours":
        _hours_widget(label, key, value)
    elif widget == "media":
        _media_widget(label, key, value)
    elif widget in ("pick_one", "pick_many"):
        _pick_widget(name, label, widget, key, value)
    elif widget == "bool":
        st.checkbox(label, value=bool(value), key=key)
    elif widget == "literal":
        index = choices.index(value) if value in choices else 0
        st.selectbox(label, choices, index=index, key=key, format_func=_choice_label)
    elif widget in ("int", "float"):
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if widget == "int":
            st.number_input(label, value=int(number) if number is not None else (None if optional else 0), step=1,
                            key=key)
        else:
            st.number_input(label, value=float(number) if number is not None else (None if optional else 0.0),
                            step=1.0, format="%g", key=key)
    elif widget in ("text", "template"):
        text = "" if value is None else str(value)
        if widget == "template" and name in TEXT_AREA_FIELDS:
            st.text_area(label, value=text, key=key, height=110)
        else:
            st.text_input(label, value=text, key=key)
    elif widget in ("list_str", "list_int"):
        items = value if isinstance(value, list) else []
        st.text_area(label, value="\n".join(map(str, items)), key=key, help=t("editor.panel.one_per_line"))
    elif widget == "options":
        items = value if isinstance(value, list) else []
        lines = [f"{o.get('key', '')} | {o.get('label', '')}" for o in items if isinstance(o, dict)]
        st.text_area(label, value="\n".join(lines), key=key, help=t("editor.panel.options_help"))
    else:
        text = "" if value is None else json.dumps(value, ensure_ascii=False, indent=2)
        st.text_area(t("editor.panel.advanced", field=label), value=text, key=key, help=t("editor.panel.json_help"))


def _choices_of(source: str) -> dict[int, str]:
    """id -> name of the workspace's teams, members or numbers."""
    if source == "teams":
        return {row["id"]: row["name"] for row in workspaces.list_teams(actor)}
    if source == "members":
        return {row["id"]: row["name"] for row in workspaces.list_members(actor)}
    return {row["id"]: row["name"] for row in instances.list_instances(actor)}


def _pick_widget(name: str, label: str, widget: FieldKind, key: str, value: Any) -> None:
    """A team, person or numbers picked by name; an id no longer in the workspace stays, shown as "#id"."""
    names = _choices_of(PICKED_FIELDS[name][1])
    current = [value] if isinstance(value, int) else [v for v in value or [] if isinstance(v, int)]
    options = [*names, *(v for v in current if v not in names)]

    def show(option: int | None) -> str:  # names typed by people: plain option text
        return t("editor.pick.none") if option is None else names.get(option, f"#{option}")

    if widget == "pick_one":
        choices = [None, *options]
        st.selectbox(label, choices, index=choices.index(current[0]) if current else 0, key=key, format_func=show)
    else:
        st.multiselect(label, options, default=current, key=key, format_func=show,
                       placeholder=t("editor.pick.all_numbers"))


def _rules_widget(label: str, key: str, groups: Any, change_args: tuple[Any, ...]) -> None:
    """A condition's groups: bordered boxes of rule rows (AND inside a box, OR between boxes).

    ``change_args`` are ``_change_rules``' arguments but the change itself.
    """
    st.markdown(f"**{label}**")
    st.caption(t("editor.rules.help"))
    for g, rows in enumerate(node_forms.rule_form(groups) or []):
        if g:
            st.caption(t("editor.rules.or"))
        with st.container(border=True):
            st.caption(t("editor.rules.group", n=g + 1))
            for r, row in enumerate(rows):
                if r:
                    st.caption(t("editor.rules.and"))
                _rule_row(f"{key}_{g}_{r}", row)
                st.button(t("editor.rules.remove"), key=f"{key}_remove_{g}_{r}", icon=":material/close:",
                          on_click=_change_rules,
                          args=(*change_args, functools.partial(node_forms.remove_rule, group=g, rule=r)))
            st.button(t("editor.rules.add_rule"), key=f"{key}_add_{g}", icon=":material/add:",
                      on_click=_change_rules, args=(*change_args, functools.partial(node_forms.add_rule, group=g)))
    st.button(t("editor.rules.add_group"), key=f"{key}_add_group", icon=":material/add:", on_click=_change_rules,
              args=(*change_args, node_forms.add_group))


def _rule_row(key: str, row: node_forms.RuleRow) -> None:
    """Subject (and its name), operator, value. What the chosen operator does not use is not shown."""
    # Widget values already hold this run's choices, so the row can hide what they make irrelevant.
    operator = st.session_state.get(f"{key}_op", row.operator)
    subject = st.session_state.get(f"{key}_subject", row.subject)
    if operator not in node_forms.TAG_OPERATORS:
        with st.container(horizontal=True, vertical_alignment="bottom"):
            st.selectbox(t("editor.rules.subject"), node_forms.SUBJECTS, index=node_forms.SUBJECTS.index(row.subject),
                         key=f"{key}_subject", format_func=lambda s: t(f"editor.subject.{s}"))
            if subject in node_forms.NAMED_SUBJECTS:
                st.text_input(t(f"editor.rules.name.{subject}"), value=row.name, key=f"{key}_name")
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.selectbox(t("editor.rules.operator"), node_forms.OPERATORS, index=node_forms.OPERATORS.index(row.operator),
                     key=f"{key}_op", format_func=lambda o: t(f"editor.operator.{o}"))
        if node_forms.operator_needs_value(operator):
            if operator in node_forms.TAG_OPERATORS:
                st.text_input(t("editor.rules.tag"), value=row.value, key=f"{key}_value")
            else:
                st.text_input(t("editor.rules.value"), value=row.value, key=f"{key}_value",
                              help=t("editor.rules.value_help"))


def _rule_rows_read(key: str, groups: Any) -> list[list[node_forms.RuleRow]]:
    """The rule rows as the widgets hold them (a hidden widget keeps the row's drawn value)."""
    state = st.session_state
    return [[node_forms.RuleRow(state.get(f"{key}_{g}_{r}_subject", row.subject),
                                state.get(f"{key}_{g}_{r}_name", row.name),
                                state.get(f"{key}_{g}_{r}_op", row.operator),
                                state.get(f"{key}_{g}_{r}_value", row.value))
             for r, row in enumerate(rows)]
            for g, rows in enumerate(node_forms.rule_form(groups) or [])]


def _hours_widget(label: str, key: str, value: Any) -> None:
    """A delay's business hours: a switch, then the days and the opening and closing times."""
    form = node_forms.hours_form(value)
    if not st.toggle(label, value=form.enabled, key=f"{key}_on"):
        return
    if form.timezone:
        st.caption(t("editor.hours.zone_node"))
        st.text(form.timezone)
    else:
        st.caption(t("editor.hours.zone_workspace"))
    st.multiselect(t("editor.hours.days"), node_forms.WEEKDAYS, default=form.days, key=f"{key}_days",
                   format_func=lambda day: t(f"editor.weekday.{day}"))
    with st.container(horizontal=True):
        st.time_input(t("editor.hours.start"), value=form.start, key=f"{key}_start")
        st.time_input(t("editor.hours.end"), value=form.end, key=f"{key}_end")


def _hours_read(key: str, value: Any) -> node_forms.HoursForm:
    form = node_forms.hours_form(value)
    state = st.session_state
    return node_forms.HoursForm(state.get(f"{key}_on", form.enabled), state.get(f"{key}_days", form.days),
                                state.get(f"{key}_start", form.start), state.get(f"{key}_end", form.end),
                                form.timezone)


def _media_widget(label: str, key: str, value: Any) -> None:
    """A message's media: the kind, then a file of that kind from the workspace's library, and a caption."""
    form = node_forms.media_form(value)
    kinds = ("", *node_forms.MEDIA_KINDS)
    kind = st.selectbox(label, kinds, index=kinds.index(form.kind), key=f"{key}_kind",
                        format_func=lambda k: t(f"media.kind.{k}") if k else t("editor.media.none"))
    if not kind:
        return
    try:
        library = media_library.list_media(actor, kind)
    except PAGE_ERRORS as exc:
        st.error(error_text(exc))
        library = []
    kept = form.media_id if kind == form.kind else None
    ids, names = node_forms.media_options(library, kept)
    if ids:
        # File names are typed by people: plain option text, never Markdown.
        st.selectbox(t("editor.media.file"), ids, index=ids.index(kept) if kept is not None else 0, key=f"{key}_id",
                     format_func=lambda media_id: names.get(str(media_id)) or t("editor.media.missing",
                                                                                media_id=media_id))
    else:
        st.caption(t("editor.media.empty"))
    st.text_input(t("editor.media.caption"), value=form.caption, key=f"{key}_caption")


def _media_read(key: str, value: Any) -> node_forms.MediaForm:
    form = node_forms.media_form(value)
    state = st.session_state
    kind = state.get(f"{key}_kind", form.kind)
    # No picker was drawn (an empty library) means no file, unless the kind is the one the node already has.
    media_id = state.get(f"{key}_id", form.media_id if kind == form.kind else None)
    return node_forms.MediaForm(kind, media_id, state.get(f"{key}_caption", form.caption))


class _FormError(ValueError):
    # A widget value that cannot become configuration; str(exc) is the pt-BR message.
    pass


def _field_value(field: FormField, key: str) -> Any:
    """The configuration value for a field's widgets; ``None`` means "leave the key out"."""
    name, widget, _optional, _choices, shown = field
    if widget == "rule_groups":
        return node_forms.groups_from_rows(_rule_rows_read(key, shown), shown)
    if widget == "business_hours":
        return node_forms.hours_from_form(_hours_read(key, shown), shown)
    if widget == "media":
        return node_forms.media_from_form(_media_read(key, shown), shown)
    raw = st.session_state.get(key)
    if widget in ("bool", "literal", "pick_one"):
        return raw
    if widget == "pick_many":
        return list(raw) or None
    if widget in ("int", "float"):
        return None if raw is None else (int(raw) if widget == "int" else float(raw))
    if widget in ("text", "template"):
        return raw if (raw or "").strip() else None
    if widget == "list_str":
        return [line.strip() for line in (raw or "").splitlines() if line.strip()]
    if widget == "list_int":
        try:
            return [int(line) for line in (raw or "").split() if line.strip()] or None
        except ValueError:
            raise _FormError(t("editor.panel.json_error", field=_label(name), reason=raw)) from None
    if widget == "options":
        options = []
        for line in (raw or "").splitlines():
            if not line.strip():
                continue
            key, sep, text = line.partition("|")
            if not sep:
                raise _FormError(t("editor.panel.options_error"))
            options.append({"key": key.strip(), "label": text.strip()})
        return options
    if not (raw or "").strip():
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _FormError(t("editor.panel.json_error", field=_label(name), reason=exc.msg)) from None


def _form_data(k: types.SimpleNamespace, node_id: str, prefix: str, fields: list[FormField]) -> dict[str, Any] | None:
    """The node's configuration with every field's widgets read back (None if the node is gone).

    A field whose value did not change keeps the key as the definition has it (absent, or written out), so
    applying an untouched form leaves the node identical. Raises ``_FormError``.
    """
    node = canvas.find_node(st.session_state[k.draft], node_id)
    if node is None:
        return None
    data = canvas.node_data(node)
    for field in fields:
        name, widget, optional, _choices, shown = field
        value = _field_value(field, f"{prefix}_{name}")
        if value is None and widget in ("text", "template") and not optional:
            value = ""  # a required text left empty stays visible as a problem on the node
        if value == shown:
            continue
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def _read_form(k: types.SimpleNamespace, node_id: str, prefix: str,
               fields: list[FormField]) -> dict[str, Any] | None:
    """The node's configuration as the form's widgets hold it; None (with a message) when a field is invalid."""
    _take_browser_changes(k)
    try:
        return _form_data(k, node_id, prefix, fields)
    except _FormError as exc:
        _flash("error", str(exc))
        return None


def _apply_form(k: types.SimpleNamespace, node_id: str, prefix: str, fields: list[FormField]) -> None:
    """"Aplicar": read every field widget back into the node's configuration (the draft, not the database)."""
    data = _read_form(k, node_id, prefix, fields)
    if data is None:
        return
    _edit(k, lambda definition: canvas.update_node_data(definition, node_id, data))
    _flash("success", t("editor.panel.applied"))


def _change_rules(k: types.SimpleNamespace, node_id: str, prefix: str, fields: list[FormField], name: str,
                  change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """Add or remove a rule or group: the form is applied first, so nothing typed is lost."""
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
    if kind not in REGISTRY:
        st.warning(t("editor.panel.unknown"))
        st.code(json.dumps(node, ensure_ascii=False, indent=2), language="json")
    else:
        fields = _form_fields(kind, canvas.node_data(node))
        prefix = f"editor_w_{funnel_id}_{st.session_state[k.nonce]}_{node_id}"
        form_args = (k, node_id, prefix, fields)
        if any(widget == "template" for _, widget, *_ in fields):
            st.caption(t("editor.panel.variables"))
        for field in fields:
            _field_widget(field, f"{prefix}_{field[0]}", form_args)
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

def _chat_send(k: types.SimpleNamespace, input_key: str) -> None:
    text = st.session_state.get(input_key)
    if not text:
        return
    state = st.session_state.get(k.chat) or preview.PreviewState()
    st.session_state[k.chat] = preview.send(st.session_state[k.draft], state, text,
                                            funnel_name=st.session_state.get(k.name, ""))


def _chat_timeout(k: types.SimpleNamespace) -> None:
    state = st.session_state.get(k.chat) or preview.PreviewState()
    st.session_state[k.chat] = preview.time_out(st.session_state[k.draft], state,
                                                funnel_name=st.session_state.get(k.name, ""))


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
    else:
        st.caption(t(f"editor.chat.note.{entry.kind}"))
        field = entry.params.get("field")
        if entry.text or field:
            st.text(f"{field} = {entry.text}" if field else entry.text)


def _test_chat(funnel_id: int, k: types.SimpleNamespace) -> None:
    st.subheader(t("editor.chat"))
    st.caption(t("editor.chat.help"))
    state = st.session_state.get(k.chat) or preview.PreviewState()
    chat_col, info_col = st.columns([3, 2])
    with chat_col:
        with st.container(height=420, border=True):
            for entry in state.entries:
                _chat_entry(entry)
        if state.status == "waiting" and state.wait_kind == "timer":
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
        try:
            _load(funnel_id, k)
        except PAGE_ERRORS as exc:
            st.error(error_text(exc))
            st.stop()
    st.session_state[FUNNEL_KEY] = funnel_id
    st.query_params["funil"] = str(funnel_id)
    _take_browser_changes(k)
    st.text(st.session_state[k.name])  # typed by a user: literal
    if st.session_state[k.draft] != st.session_state[k.saved]:
        st.caption(t("editor.unsaved"))
    report = validate_definition(st.session_state[k.draft])
    # The canvas takes the page's width; the node's panel goes below it rather than beside it, so it never
    # narrows the drawing.
    _canvas(k, report)
    _toolbar(funnel_id, k)
    _show_flash()
    _problems(report)
    with st.container(border=True):
        _side_panel(funnel_id, k)
    st.divider()
    _test_chat(funnel_id, k)


main()
