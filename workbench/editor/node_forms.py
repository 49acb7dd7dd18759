"""The editor's node forms as pure logic (no Streamlit here): the fields of a node type's form, the kind of each
field, and the conversions between configuration values and what the widgets hold.

A field's kind (``FIELD_KINDS``) is read from its schema annotation, unless the node's ``NodeSpec.hints`` say
otherwise (a text area, a typed editor, a choice source); ``pages/ui/fields.py`` holds one (draw, read) pair per
kind. Three kinds are typed editors for structured values: a condition's rule ``groups`` (``rule_groups``), a
delay's ``business_hours`` and a message's ``media`` (a media-library picker); this module says what those
widgets start from and turns their values back into configuration.

Turning a form back into configuration starts from the value the form was drawn from and changes only what
the widgets changed: keys the definition left out stay out, keys the schema ignores stay in, so opening a form
and applying it unchanged gives back identical data. A value a typed editor cannot show (an import with a field
path the subjects do not cover, a clock that is not HH:MM) makes the field a ``json`` field: the advanced JSON
editor.
"""

from __future__ import annotations

import copy
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel

from engine.core.nodes import condition, delay, send_message
from engine.core.nodes.base import FieldHint, NodeSpec, check_template
from engine.core.nodes.condition import new_rule
from workbench.base.i18n import t

FIELD_KINDS = ("text", "long_text", "int", "float", "bool", "literal", "list_str", "list_int", "options", "pick_one",
               "pick_many", "field_target", "rule_groups", "business_hours", "media", "collect_fields", "json")
"""Every kind of form field; ``pages/ui/fields.py`` draws and reads each."""
TEXT_KINDS = ("text", "long_text", "field_target")
_PICKED = {"int": "pick_one", "text": "pick_one", "list_int": "pick_many", "list_str": "pick_many"}
"""A field with a choice source is picked by name from a list, never typed."""


class FormError(ValueError):
    """A widget value that cannot become configuration; ``str(exc)`` is the pt-BR message."""


@dataclass(frozen=True)
class FormField:
    """One configuration field as the form shows it.

    Attributes:
        name: the key in the node's ``data``.
        kind: one of ``FIELD_KINDS``: how the field is drawn and read back.
        label: the pt-BR label.
        help: pt-BR help text, or None.
        optional: None is a valid value (an empty widget leaves the key out).
        template: the text is rendered with ``{{...}}`` (the form then lists the variables).
        choices: what a ``literal`` field offers, with their labels in ``choice_labels``.
        source: where a ``pick_one`` / ``pick_many`` / ``media`` field's choices come from (``FieldHint.source``).
        value: what the widgets are drawn from: the configuration's value, or the schema's default.
    """

    name: str
    kind: str
    label: str
    help: str | None = None
    optional: bool = False
    template: bool = False
    choices: tuple[Any, ...] = ()
    choice_labels: Mapping[Any, str] = field(default_factory=dict)
    source: str | None = None
    value: Any = None


def form_fields(spec: NodeSpec, data: Mapping[str, Any]) -> list[FormField]:
    """The form of a node of type ``spec`` whose configuration is ``data``: one field per schema field."""
    fields = []
    for name, info in spec.data_schema.model_fields.items():
        hint = spec.hints.get(name) or FieldHint()
        kind, optional, choices, template = classify(info.annotation, list(info.metadata), hint)
        value = data.get(name, None if info.is_required() else info.get_default(call_default_factory=True))
        if kind in _FITS and not _FITS[kind](value):
            kind = "json"
        fields.append(FormField(name, kind, spec.field_label(name), spec.field_help(name), optional, template, choices,
                                {choice: spec.choice_label(name, choice) for choice in choices}, hint.source, value))
    return fields


def classify(annotation: Any, metadata: list[Any], hint: FieldHint) -> tuple[str, bool, tuple[Any, ...], bool]:
    """(kind, optional, literal choices, is a template) of one configuration field."""
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
    template = annotation is str and any(isinstance(m, AfterValidator) and m.func is check_template for m in metadata)
    kind = hint.kind or _kind_of(annotation, origin)
    if hint.source and kind in _PICKED:
        kind = _PICKED[kind]
    return kind, optional, get_args(annotation) if origin is Literal else (), template


def _kind_of(annotation: Any, origin: Any) -> str:
    if origin is Literal:
        return "literal"
    scalars = {bool: "bool", int: "int", float: "float", str: "text"}
    if annotation in scalars:
        return scalars[annotation]
    if origin is list:
        item = get_args(annotation)[0]
        if get_origin(item) is typing.Annotated:
            item = get_args(item)[0]
        if item in (str, int):
            return f"list_{item.__name__}"
        if isinstance(item, type) and issubclass(item, BaseModel) and set(item.model_fields) == {"key", "label"}:
            return "options"
    return "json"


def apply_form(data: Mapping[str, Any], fields: list[FormField], values: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with every field set to what its widgets hold (``values``: field name -> value, None = no value).

    A field whose value did not change keeps the key as the definition has it (absent, or written out), so
    applying an untouched form leaves the node identical. A required text left empty becomes "", so the node
    shows the problem.
    """
    result = dict(data)
    for form_field in fields:
        value = values[form_field.name]
        if value is None and form_field.kind in TEXT_KINDS and not form_field.optional:
            value = ""
        if value == form_field.value:
            continue
        if value is None:
            result.pop(form_field.name, None)
        else:
            result[form_field.name] = value
    return result


# -- scalar and list fields ---------------------------------------------------------------------------------------

def text_value(raw: str | None) -> str | None:
    """A text box's value: None when blank."""
    return raw if (raw or "").strip() else None


def number_value(raw: float | None, kind: str) -> int | float | None:
    """A number box's value as the field's type (``int`` or ``float``)."""
    return None if raw is None else int(raw) if kind == "int" else float(raw)


def lines_text(value: Any) -> str:
    """A list shown one item per line."""
    return "\n".join(map(str, value)) if isinstance(value, list) else ""


def str_lines_value(raw: str | None) -> list[str]:
    """The non-blank lines, trimmed."""
    return [line.strip() for line in (raw or "").splitlines() if line.strip()]


def int_lines_value(raw: str | None, label: str) -> list[int] | None:
    """Whole numbers, one per line (None when there are none); ``FormError`` for anything else."""
    try:
        return [int(line) for line in (raw or "").split() if line.strip()] or None
    except ValueError:
        raise FormError(t("editor.panel.json_error", field=label, reason=raw)) from None


def options_text(value: Any) -> str:
    """Menu options as ``key | label`` lines."""
    items = value if isinstance(value, list) else []
    return "\n".join(f"{o.get('key', '')} | {o.get('label', '')}" for o in items if isinstance(o, dict))


def options_value(raw: str | None) -> list[dict[str, str]]:
    """``key | label`` lines back into options; ``FormError`` for a line without ``|``."""
    options = []
    for line in (raw or "").splitlines():
        if not line.strip():
            continue
        key, sep, text = line.partition("|")
        if not sep:
            raise FormError(t("editor.panel.options_error"))
        options.append({"key": key.strip(), "label": text.strip()})
    return options


COLLECT_TYPES = ("text", "email", "phone", "number", "datetime", "choice")
_COLLECT_KEYS = {"key", "type", "description", "required", "options", "save_to"}


def collect_text(value: Any) -> str:
    """An AI step's fields to collect as ``chave | tipo | obrigatório | salvar em | descrição`` lines; a list of
    options is written in the type (``lista: Básico, Pro``)."""
    lines = []
    for item in value if isinstance(value, list) else []:
        kind = str(item.get("type") or "text")
        shown = t(f"editor.collect.type.{kind}")
        if kind == "choice":
            shown = f"{shown}: {', '.join(item.get('options') or [])}"
        required = t("editor.collect.required" if item.get("required", True) else "editor.collect.optional")
        lines.append(" | ".join([str(item.get("key") or ""), shown, required, str(item.get("save_to") or ""),
                                 str(item.get("description") or "")]))
    return "\n".join(lines)


def collect_value(raw: str | None, original: Any) -> list[dict[str, Any]]:
    """The lines of ``collect_text`` back into fields (``original`` when the text is unchanged); ``FormError``
    naming the line for a line without at least a key and a known type."""
    if (raw or "") == collect_text(original):
        return original if isinstance(original, list) else []
    types = {t(f"editor.collect.type.{kind}").casefold(): kind for kind in COLLECT_TYPES}
    words = {t("editor.collect.required").casefold(): True, t("editor.collect.optional").casefold(): False}
    fields = []
    for number, line in enumerate((raw or "").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("|")]
        parts += [""] * (5 - len(parts))
        key, kind_text, required_text, save_to, description = parts[:4] + [" | ".join(parts[4:]).strip(" |")]
        kind_name, _, options = kind_text.partition(":")
        kind = types.get(kind_name.strip().casefold() or t("editor.collect.type.text").casefold())
        required = words.get(required_text.casefold(), None) if required_text else True
        if not key or kind is None or required is None:
            raise FormError(t("editor.collect.error", line=number))
        item: dict[str, Any] = {"key": key, "type": kind, "required": required}
        if description:
            item["description"] = description
        if save_to:
            item["save_to"] = save_to
        if kind == "choice":
            item["options"] = [o.strip() for o in options.split(",") if o.strip()]
        fields.append(item)
    return fields


def _collect_fits(value: Any) -> bool:
    """Lines can show the fields: known keys and types, and no ``|`` or line break inside a value."""
    if value is None:
        return True
    if not isinstance(value, list):
        return False
    for item in value:
        if not isinstance(item, Mapping) or not set(item) <= _COLLECT_KEYS or item.get("type", "text") not in \
                COLLECT_TYPES or not isinstance(item.get("required", True), bool):
            return False
        texts = [item.get(k) for k in ("key", "description", "save_to")] + list(item.get("options") or [])
        if any(not isinstance(x, str | type(None)) or (x and ("|" in x or "\n" in x)) for x in texts):
            return False
        if any("," in str(o) for o in item.get("options") or []):
            return False
    return True


def json_text(value: Any) -> str:
    """A value in the advanced JSON editor."""
    return "" if value is None else json.dumps(value, ensure_ascii=False, indent=2)


def json_value(raw: str | None, label: str) -> Any:
    """The advanced JSON editor's value (None when blank); ``FormError`` for invalid JSON."""
    if not (raw or "").strip():
        return None
    try:
        return json.loads(raw)  # type: ignore[arg-type]
    except json.JSONDecodeError as exc:
        raise FormError(t("editor.panel.json_error", field=label, reason=exc.msg)) from None


def pick_options(names: Mapping[Any, str], value: Any) -> tuple[list[Any], list[Any]]:
    """(options, chosen) of a picker: the source's ids, then chosen ids no longer in it (shown as "#id")."""
    chosen = list(value) if isinstance(value, list) else [] if value is None else [value]
    return [*names, *(v for v in chosen if v not in names)], chosen


# -- contact field pickers ----------------------------------------------------------------------------------------

CUSTOM_DATA = "contact.custom_data."


def target_choices(fields: list[Mapping[str, Any]], current: str | None) -> tuple[list[str], dict[str, str]]:
    """(options, labels) of a "save to" picker: the contact's name, then the workspace's defined fields (rows of
    the ``contact_fields`` choice source: ``id`` = key, ``name`` = label) as ``contact.custom_data.KEY``.

    The picker also takes typed paths (``vars.X``, a free-form field); ``current``, when it is none of the
    options, stays offered as it is. Labels were typed by people: plain option text only.
    """
    options = ["contact.name", *(CUSTOM_DATA + str(row["id"]) for row in fields)]
    labels = {"contact.name": t("editor.subject.contact.name"),
              **{CUSTOM_DATA + str(row["id"]): f"{row['name']} ({row['id']})" for row in fields}}
    return _keeping(options, current), labels


def field_key_choices(fields: list[Mapping[str, Any]], current: str | None) -> tuple[list[str], dict[str, str]]:
    """(options, labels) of a condition rule's contact field picker: the defined fields' keys, plus ``current``
    when it is not one of them (a free-form field typed by hand)."""
    options = [str(row["id"]) for row in fields]
    return _keeping(options, current), {str(row["id"]): f"{row['name']} ({row['id']})" for row in fields}


def _keeping(options: list[str], current: str | None) -> list[str]:
    return options + [current] if current and current not in options else options


# -- condition rules ----------------------------------------------------------------------------------------------

SUBJECTS = ("last_reply", "trigger.message", "contact.name", "contact.phone", "vars", "custom_data", "tags")
"""What a rule reads; ``vars`` and ``custom_data`` also need a name (``vars.X``, ``contact.custom_data.X``)."""
NAMED_SUBJECTS = {"vars": "vars.", "custom_data": "contact.custom_data."}
OPERATORS: tuple[str, ...] = get_args(condition.Operator)
TAG_OPERATORS = ("has_tag", "not_has_tag")
"""Operators that test the contact's tags and ignore the rule's subject."""
_RULE_DEFAULTS = {name: info.default for name, info in condition.Rule.model_fields.items()}


@dataclass(frozen=True)
class RuleRow:
    """One rule as the form shows it: subject (``SUBJECTS``), name (for named subjects), operator, value text."""

    subject: str
    name: str
    operator: str
    value: str


def split_field(field: str) -> tuple[str, str] | None:
    """``(subject, name)`` for a rule's field path, or None when no subject covers it."""
    for subject, prefix in NAMED_SUBJECTS.items():
        if field.startswith(prefix):
            return subject, field[len(prefix):]
    return (field, "") if field in SUBJECTS and field not in NAMED_SUBJECTS else None


def join_field(subject: str, name: str) -> str:
    """The field path for a subject and, for named subjects, a name (``vars`` + ``email`` -> ``vars.email``)."""
    return NAMED_SUBJECTS[subject] + name.strip() if subject in NAMED_SUBJECTS else subject


def operator_needs_value(operator: str) -> bool:
    """Whether the operator compares with a value (``is_empty`` / ``not_empty`` do not)."""
    return operator in condition.NEEDS_VALUE  # the engine's own list, so the form cannot disagree with it


def rule_form(groups: Any) -> list[list[RuleRow]] | None:
    """The rows of each group (missing groups: none), or None when the shape is beyond the typed form."""
    if groups is None:
        return []
    if not isinstance(groups, list):
        return None
    rows = []
    for group in groups:
        rules = group.get("rules") if isinstance(group, dict) else None
        if not isinstance(rules, list):
            return None
        group_rows = []
        for rule in rules:
            if not isinstance(rule, dict):
                return None
            field = rule.get("field", _RULE_DEFAULTS["field"])
            operator = rule.get("operator", _RULE_DEFAULTS["operator"])
            value = rule.get("value")
            subject = split_field(field) if isinstance(field, str) else None
            if subject is None or operator not in OPERATORS or not isinstance(value, str | None):
                return None
            group_rows.append(RuleRow(subject[0], subject[1], operator, value or ""))
        rows.append(group_rows)
    return rows


def rule_from_row(row: RuleRow, original: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A rule for the row, keeping what the row leaves as it was in ``original`` (absent keys, extra keys)."""
    shown = original.get("value") if isinstance(original, Mapping) else None
    return _merged(original, {"field": join_field(row.subject, row.name), "operator": row.operator,
                              "value": _text(row.value, shown)}, _RULE_DEFAULTS)


def groups_from_rows(rows: list[list[RuleRow]], original: Any) -> list[dict[str, Any]] | None:
    """The ``groups`` for the form's rows; ``original`` is the value the rows were drawn from (same shape)."""
    if not isinstance(original, list):
        return [{"rules": [rule_from_row(row) for row in group]} for group in rows] if rows else None
    groups = []
    for group_rows, group in zip(rows, original, strict=True):
        rules = [rule_from_row(row, rule) for row, rule in zip(group_rows, group["rules"], strict=True)]
        groups.append({**group, "rules": rules})
    return groups


def add_rule(groups: list[dict[str, Any]], group: int) -> list[dict[str, Any]]:
    """A copy with a new rule at the end of group ``group`` (AND)."""
    result = copy.deepcopy(groups)
    result[group]["rules"].append(new_rule())
    return result


def remove_rule(groups: list[dict[str, Any]], group: int, rule: int) -> list[dict[str, Any]]:
    """A copy without that rule; a group left with no rules goes too (a group needs at least one)."""
    result = copy.deepcopy(groups)
    del result[group]["rules"][rule]
    if not result[group]["rules"]:
        del result[group]
    return result


def add_group(groups: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A copy with a new group (OR) holding one new rule."""
    return [*copy.deepcopy(groups or []), {"rules": [new_rule()]}]


# -- business hours -----------------------------------------------------------------------------------------------

WEEKDAYS = tuple(range(7))
"""0 = Monday ... 6 = Sunday, as the delay node stores them."""
_HOURS_DEFAULTS = delay.BusinessHours().model_dump(exclude={"timezone"})
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class HoursForm:
    """Business hours as the form shows them. ``timezone`` is only displayed (None: the workspace's zone)."""

    enabled: bool
    days: list[int]
    start: time
    end: time
    timezone: str | None = None


def hours_form(value: Any) -> HoursForm | None:
    """The form for a ``business_hours`` value (None or a dict), or None when it is beyond the typed form.

    Switched off, the form still holds the schema's defaults, ready for when the toggle is turned on.
    """
    if value is None:
        return HoursForm(False, list(_HOURS_DEFAULTS["days"]), _clock(_HOURS_DEFAULTS["start"]),
                         _clock(_HOURS_DEFAULTS["end"]))
    if not isinstance(value, dict):
        return None
    days = value.get("days", _HOURS_DEFAULTS["days"])
    start, end = value.get("start", _HOURS_DEFAULTS["start"]), value.get("end", _HOURS_DEFAULTS["end"])
    zone = value.get("timezone")
    if not (isinstance(days, list) and all(type(d) is int and d in WEEKDAYS for d in days)):
        return None
    if not all(isinstance(s, str) and _HHMM.match(s) for s in (start, end)) or not isinstance(zone, str | None):
        return None
    return HoursForm(True, sorted(set(days)), _clock(start), _clock(end), zone)


def hours_from_form(form: HoursForm, original: Any) -> dict[str, Any] | None:
    """The ``business_hours`` for the form (None when switched off); ``original`` is what it was drawn from.

    A clock left empty becomes "" so the node shows the problem instead of silently keeping a time.
    """
    if not form.enabled:
        return None
    days: list[int] = sorted(set(form.days))
    start, end = _hhmm(form.start), _hhmm(form.end)
    shown_days = original.get("days") if isinstance(original, Mapping) else None
    if isinstance(shown_days, list) and sorted(set(shown_days)) == days:
        days = shown_days  # the same days in another order are the same setting
    return _merged(original, {"days": days, "start": start, "end": end}, _HOURS_DEFAULTS)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _hhmm(clock: time | None) -> str:
    return clock.strftime("%H:%M") if clock is not None else ""


# -- send-message media -------------------------------------------------------------------------------------------

MEDIA_KINDS: tuple[str, ...] = get_args(send_message.Media.model_fields["kind"].annotation)


@dataclass(frozen=True)
class MediaForm:
    """The media as the form shows it: kind ("" = no media), the media id (None = none chosen) and the caption."""

    kind: str
    media_id: int | str | None
    caption: str


def media_form(value: Any) -> MediaForm | None:
    """The form for a ``media`` value (None or a dict), or None when it is beyond the typed form."""
    if value is None:
        return MediaForm("", None, "")
    if not isinstance(value, dict):
        return None
    kind, media_id, caption = value.get("kind"), value.get("media_id"), value.get("caption")
    if kind not in MEDIA_KINDS or isinstance(media_id, bool) or not isinstance(media_id, int | str | None) \
            or not isinstance(caption, str | None):
        return None
    return MediaForm(kind, media_id, caption or "")


def media_options(library: list[Mapping[str, Any]], kept: int | str | None) -> tuple[list[int | str], dict[str, str]]:
    """The picker's media ids and their file names (keyed by ``str(id)``) for the library items of one kind
    (rows of the ``media`` choice source: ``id`` and ``name``).

    ``kept`` (the id the node sends now) stays offered even when it is no longer in the library, with no name,
    and keeps its own type (an imported ``"12"`` is not silently turned into ``12``).
    """
    ids: list[int | str] = []
    names: dict[str, str] = {}
    for item in library:
        same = kept is not None and str(item["id"]) == str(kept)
        ids.append(kept if same else item["id"])
        names[str(item["id"])] = str(item.get("name") or "")
    if kept is not None and str(kept) not in names:
        ids.insert(0, kept)
    return ids, names


def media_from_form(form: MediaForm, original: Any) -> dict[str, Any] | None:
    """The ``media`` for the form (None: no media); ``original`` is what it was drawn from.

    With no file chosen the id is left out, so the node shows that a file is missing.
    """
    if not form.kind:
        return None
    shown = original.get("caption") if isinstance(original, Mapping) else None
    return _merged(original, {"kind": form.kind, "media_id": form.media_id, "caption": _text(form.caption, shown)},
                   {"caption": None})


_FITS: dict[str, Callable[[Any], bool]] = {
    "rule_groups": lambda value: rule_form(value) is not None,
    "business_hours": lambda value: hours_form(value) is not None,
    "media": lambda value: media_form(value) is not None,
    "collect_fields": _collect_fits,
}
"""The typed editors, and whether a value fits one (otherwise the field is shown as advanced JSON)."""


# -- shared -------------------------------------------------------------------------------------------------------

def _text(text: str, shown: str | None) -> str | None:
    """A text box's value: what it was drawn from when unchanged ("", None and absent all show as an empty box),
    else the text, or None when blank."""
    if text == (shown or ""):
        return shown
    return text if text.strip() else None


def _merged(original: Any, values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` over a copy of ``original``, None removing a key.

    A value equal to what ``original`` means (its own, or the default when absent) leaves the key as it was.
    Without an original (a new value) every value that is not None is written out.
    """
    if not isinstance(original, Mapping):
        return {key: value for key, value in values.items() if value is not None}
    result = dict(original)
    for key, value in values.items():
        if value == original.get(key, defaults.get(key)):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result
