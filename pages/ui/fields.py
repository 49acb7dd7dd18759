"""The node form's field kinds as Streamlit widgets: one (draw, read) pair per kind, and the choice sources.

``workbench.editor.node_forms`` says which fields a node's form has and of which kind (``FIELD_KINDS``); this
module draws each kind (``draw``) and reads its widgets back into a configuration value (``read``: None means
"leave the key out"; ``node_forms.FormError`` for a value that cannot be one). Choices of the workspace's rows
(teams, people, numbers, funnels, tags, the media library) come from one table, ``SOURCES``, through the
services. Names typed by people (teams, files, funnels) are only ever option text, never Markdown.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from pages.ui.feedback import attempt
from workbench.base.i18n import has_key, t
from workbench.editor import node_forms
from workbench.editor.node_forms import FormField
from workbench.services import (
    ai_client,
    contact_fields,
    contacts,
    entry_links,
    funnels,
    instances,
    media_library,
    secrets,
    workspaces,
)

SOURCES: dict[str, Callable[[Any], list[dict[str, Any]]]] = {
    "teams": workspaces.list_teams,
    "people": workspaces.list_members,
    "numbers": instances.list_instances,
    "funnels": funnels.list_funnels,
    "tags": lambda actor: [{"id": tag["name"], "name": tag["name"]} for tag in contacts.list_tags(actor)],
    "media": lambda actor: [{**item, "name": item["filename"]} for item in media_library.list_media(actor)],
    "contact_fields": lambda actor: [{"id": f.key, "name": f.label, "type": f.type}
                                     for f in contact_fields.list_fields(actor)],
    "secrets": lambda actor: [{"id": name, "name": name} for name in secrets.secret_names(actor)],
    "ai_providers": ai_client.list_providers,
    "entry_links": entry_links.link_choices,
}
"""Choice source -> the rows an actor may pick from, each with ``id`` (what the node stores) and ``name``."""


@dataclass(frozen=True)
class FormContext:
    """What drawing a node form needs from the page.

    Attributes:
        actor: who is editing; choice sources are read as them.
        change: the callback of a button that restructures a field's value (add or remove a rule), called as
            ``change(field_name, edit)`` with ``edit(value) -> value``; the page applies the form first.
    """

    actor: Any
    change: Callable[[str, Callable[[Any], Any]], None]


def draw(field: FormField, key: str, ctx: FormContext) -> None:
    """Draw the widgets of one field; their keys start with ``key``."""
    KINDS[field.kind][0](field, key, ctx)


def read(field: FormField, key: str) -> Any:
    """The configuration value the field's widgets hold (None: leave the key out); may raise ``FormError``."""
    return KINDS[field.kind][1](field, key)


def source_rows(ctx: FormContext, source: str | None) -> list[dict[str, Any]]:
    """The rows of a choice source (none, with the error shown, when the database cannot be read)."""
    rows: list[dict[str, Any]] = []
    with attempt():
        rows = SOURCES[source](ctx.actor) if source else []
    return rows


def _raw(field: FormField, key: str) -> Any:
    return st.session_state.get(key)


# -- scalars ------------------------------------------------------------------------------------------------------

def _draw_text(field: FormField, key: str, ctx: FormContext) -> None:
    st.text_input(field.label, value="" if field.value is None else str(field.value), key=key, help=field.help)


def _draw_long_text(field: FormField, key: str, ctx: FormContext) -> None:
    st.text_area(field.label, value="" if field.value is None else str(field.value), key=key, height=110,
                 help=field.help)


def _read_text(field: FormField, key: str) -> str | None:
    return node_forms.text_value(st.session_state.get(key))


def _draw_number(field: FormField, key: str, ctx: FormContext) -> None:
    number = field.value if isinstance(field.value, int | float) and not isinstance(field.value, bool) else None
    if field.kind == "int":
        st.number_input(field.label, value=int(number) if number is not None else (None if field.optional else 0),
                        step=1, key=key, help=field.help)
    else:
        st.number_input(field.label, value=float(number) if number is not None else (None if field.optional else 0.0),
                        step=1.0, format="%g", key=key, help=field.help)


def _read_number(field: FormField, key: str) -> int | float | None:
    return node_forms.number_value(st.session_state.get(key), field.kind)


def _draw_bool(field: FormField, key: str, ctx: FormContext) -> None:
    st.checkbox(field.label, value=bool(field.value), key=key, help=field.help)


def _draw_literal(field: FormField, key: str, ctx: FormContext) -> None:
    index = field.choices.index(field.value) if field.value in field.choices else 0
    st.selectbox(field.label, field.choices, index=index, key=key, help=field.help,
                 format_func=lambda choice: field.choice_labels.get(choice, str(choice)))


# -- lists and JSON -----------------------------------------------------------------------------------------------

def _draw_lines(field: FormField, key: str, ctx: FormContext) -> None:
    st.text_area(field.label, value=node_forms.lines_text(field.value), key=key,
                 help=field.help or t("editor.panel.one_per_line"))


def _read_str_lines(field: FormField, key: str) -> list[str]:
    return node_forms.str_lines_value(st.session_state.get(key))


def _read_int_lines(field: FormField, key: str) -> list[int] | None:
    return node_forms.int_lines_value(st.session_state.get(key), field.label)


def _draw_options(field: FormField, key: str, ctx: FormContext) -> None:
    st.text_area(field.label, value=node_forms.options_text(field.value), key=key,
                 help=field.help or t("editor.panel.options_help"))


def _read_options(field: FormField, key: str) -> list[dict[str, str]]:
    return node_forms.options_value(st.session_state.get(key))


def _draw_collect(field: FormField, key: str, ctx: FormContext) -> None:
    st.text_area(field.label, value=node_forms.collect_text(field.value), key=key, height=140,
                 help=field.help or t("editor.collect.help"))


def _read_collect(field: FormField, key: str) -> list[dict[str, Any]]:
    return node_forms.collect_value(st.session_state.get(key), field.value)


def _draw_json(field: FormField, key: str, ctx: FormContext) -> None:
    st.text_area(t("editor.panel.advanced", field=field.label), value=node_forms.json_text(field.value), key=key,
                 help=t("editor.panel.json_help"))


def _read_json(field: FormField, key: str) -> Any:
    return node_forms.json_value(st.session_state.get(key), field.label)


# -- choices of the workspace's rows -----------------------------------------------------------------------------

def _draw_pick(field: FormField, key: str, ctx: FormContext) -> None:
    """A team, person, number... picked by name; an id no longer in the workspace stays, shown as "#id"."""
    names = {row["id"]: row["name"] for row in source_rows(ctx, field.source)}
    options, chosen = node_forms.pick_options(names, field.value)

    def show(option: Any) -> str:  # names typed by people: plain option text
        return t("editor.pick.none") if option is None else names.get(option, f"#{option}")

    if field.kind == "pick_one":
        choices = [None, *options]
        st.selectbox(field.label, choices, index=choices.index(chosen[0]) if chosen else 0, key=key,
                     format_func=show, help=field.help)
    else:
        placeholder = f"editor.pick.placeholder.{field.source}"
        st.multiselect(field.label, options, default=chosen, key=key, format_func=show, help=field.help,
                       placeholder=t(placeholder) if has_key(placeholder) else t("editor.pick.placeholder"))


def _read_pick_many(field: FormField, key: str) -> list[Any] | None:
    return list(st.session_state.get(key) or []) or None


# -- contact field pickers: the workspace's defined fields, or a path typed by hand --------------------------------

def _draw_target(field: FormField, key: str, ctx: FormContext) -> None:
    """Where a value is saved: the contact's name or a defined field picked by label, or a path typed by hand."""
    # a path typed in this form is offered too, so it stays chosen when the form redraws
    value = st.session_state.get(key) or (field.value if isinstance(field.value, str) else None)
    options, labels = node_forms.target_choices(source_rows(ctx, field.source), value)
    st.selectbox(field.label, options, index=options.index(value) if value in options else None, key=key,
                 accept_new_options=True, format_func=lambda option: labels.get(option, option),
                 placeholder=t("editor.target.placeholder"), help=field.help or t("editor.target.help"))


# -- typed editors: condition rules, business hours, library media -----------------------------------------------

def _draw_rules(field: FormField, key: str, ctx: FormContext) -> None:
    """A condition's groups: bordered boxes of rule rows (AND inside a box, OR between boxes)."""
    st.markdown(f"**{field.label}**")
    st.caption(t("editor.rules.help"))
    defined = source_rows(ctx, "contact_fields")
    for g, rows in enumerate(node_forms.rule_form(field.value) or []):
        if g:
            st.caption(t("editor.rules.or"))
        with st.container(border=True):
            st.caption(t("editor.rules.group", n=g + 1))
            for r, row in enumerate(rows):
                if r:
                    st.caption(t("editor.rules.and"))
                _rule_row(f"{key}_{g}_{r}", row, defined)
                st.button(t("editor.rules.remove"), key=f"{key}_remove_{g}_{r}", icon=":material/close:",
                          on_click=ctx.change,
                          args=(field.name, functools.partial(node_forms.remove_rule, group=g, rule=r)))
            st.button(t("editor.rules.add_rule"), key=f"{key}_add_{g}", icon=":material/add:", on_click=ctx.change,
                      args=(field.name, functools.partial(node_forms.add_rule, group=g)))
    st.button(t("editor.rules.add_group"), key=f"{key}_add_group", icon=":material/add:", on_click=ctx.change,
              args=(field.name, node_forms.add_group))


def _rule_row(key: str, row: node_forms.RuleRow, defined: list[dict[str, Any]]) -> None:
    """Subject (and its name), operator, value. What the chosen operator does not use is not shown.

    A contact field is picked among the workspace's defined fields (``defined``), or typed by hand.
    """
    # Widget values already hold this run's choices, so the row can hide what they make irrelevant.
    operator = st.session_state.get(f"{key}_op", row.operator)
    subject = st.session_state.get(f"{key}_subject", row.subject)
    if operator not in node_forms.TAG_OPERATORS:
        with st.container(horizontal=True, vertical_alignment="bottom"):
            st.selectbox(t("editor.rules.subject"), node_forms.SUBJECTS, index=node_forms.SUBJECTS.index(row.subject),
                         key=f"{key}_subject", format_func=lambda s: t(f"editor.subject.{s}"))
            if subject == "custom_data":
                # a key typed in this form is offered too, so it stays chosen when the form redraws
                current = st.session_state.get(f"{key}_field") or row.name
                options, labels = node_forms.field_key_choices(defined, current)
                st.selectbox(t("editor.rules.name.custom_data"), options, key=f"{key}_field",
                             index=options.index(current) if current in options else None, accept_new_options=True,
                             format_func=lambda option: labels.get(option, option),
                             placeholder=t("editor.rules.field_placeholder"))
            elif subject in node_forms.NAMED_SUBJECTS:
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


def _read_rules(field: FormField, key: str) -> list[dict[str, Any]] | None:
    """The groups as the rule rows hold them (a hidden widget keeps the row's drawn value)."""
    state = st.session_state
    rows = []
    for g, group in enumerate(node_forms.rule_form(field.value) or []):
        rows.append([])
        for r, row in enumerate(group):
            subject = state.get(f"{key}_{g}_{r}_subject", row.subject)
            # a contact field has its own picker; variables a text box
            name = state.get(f"{key}_{g}_{r}_{'field' if subject == 'custom_data' else 'name'}", row.name)
            rows[-1].append(node_forms.RuleRow(subject, name or "", state.get(f"{key}_{g}_{r}_op", row.operator),
                                               state.get(f"{key}_{g}_{r}_value", row.value)))
    return node_forms.groups_from_rows(rows, field.value)


def _draw_hours(field: FormField, key: str, ctx: FormContext) -> None:
    """A delay's business hours: a switch, then the days and the opening and closing times."""
    form = node_forms.hours_form(field.value)
    if not st.toggle(field.label, value=form.enabled, key=f"{key}_on", help=field.help):
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


def _read_hours(field: FormField, key: str) -> dict[str, Any] | None:
    form = node_forms.hours_form(field.value)
    state = st.session_state
    shown = node_forms.HoursForm(state.get(f"{key}_on", form.enabled), state.get(f"{key}_days", form.days),
                                 state.get(f"{key}_start", form.start), state.get(f"{key}_end", form.end),
                                 form.timezone)
    return node_forms.hours_from_form(shown, field.value)


def _draw_media(field: FormField, key: str, ctx: FormContext) -> None:
    """A message's media: the kind, then a file of that kind from the workspace's library, and a caption."""
    form = node_forms.media_form(field.value)
    kinds = ("", *node_forms.MEDIA_KINDS)
    kind = st.selectbox(field.label, kinds, index=kinds.index(form.kind), key=f"{key}_kind", help=field.help,
                        format_func=lambda k: t(f"media.kind.{k}") if k else t("editor.media.none"))
    if not kind:
        return
    library = [row for row in source_rows(ctx, field.source) if row.get("kind") == kind]
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


def _read_media(field: FormField, key: str) -> dict[str, Any] | None:
    form = node_forms.media_form(field.value)
    state = st.session_state
    kind = state.get(f"{key}_kind", form.kind)
    # No picker was drawn (an empty library) means no file, unless the kind is the one the node already has.
    media_id = state.get(f"{key}_id", form.media_id if kind == form.kind else None)
    return node_forms.media_from_form(node_forms.MediaForm(kind, media_id, state.get(f"{key}_caption", form.caption)),
                                      field.value)


KINDS: dict[str, tuple[Callable[[FormField, str, FormContext], None], Callable[[FormField, str], Any]]] = {
    "text": (_draw_text, _read_text),
    "long_text": (_draw_long_text, _read_text),
    "int": (_draw_number, _read_number),
    "float": (_draw_number, _read_number),
    "bool": (_draw_bool, _raw),
    "literal": (_draw_literal, _raw),
    "list_str": (_draw_lines, _read_str_lines),
    "list_int": (_draw_lines, _read_int_lines),
    "options": (_draw_options, _read_options),
    "collect_fields": (_draw_collect, _read_collect),
    "pick_one": (_draw_pick, _raw),
    "pick_many": (_draw_pick, _read_pick_many),
    "field_target": (_draw_target, _read_text),
    "rule_groups": (_draw_rules, _read_rules),
    "business_hours": (_draw_hours, _read_hours),
    "media": (_draw_media, _read_media),
    "json": (_draw_json, _read_json),
}
"""Field kind (``node_forms.FIELD_KINDS``) -> (draw, read)."""
