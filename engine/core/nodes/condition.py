"""Condition: rules on the reply, variables, contact fields and tags; outputs ``true`` / ``false``.

Rules are grouped in disjunctive normal form: ``groups`` are OR-ed, the ``rules`` inside a group are
AND-ed. "A and (B or C)" is written as two groups, [A, B] and [A, C]. One shape covers every combination,
and the canvas can show it as "any of these groups, where all rules hold".

Comparisons are case- and accent-insensitive. ``greater``/``less`` compare numbers (pt-BR notation
accepted: "1.234,5") and fall back to ISO dates ("2025-12-25"); anything else is false.

A contact field the workspace defined as a number, a date or sim/não (``ExecutionContext.field_types``) is
compared by that type: the rule's value is read the way the field's values are typed ("1.234,56", "31/12/2026",
"hoje", "sim"), so "data_retorno menor que hoje" and "valor igual a 1000,00" mean what they say.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from engine.core.matching import normalize, regex_problem, regex_search
from engine.core.nodes.base import (
    Config,
    ExecutionContext,
    FieldHint,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    TemplateStr,
    raw_list,
    read_value,
    regex_refusal,
    render_text,
)
from engine.core.nodes.wait_reply import local_today, parse_date, parse_number, parse_yes_no
from workbench.base.i18n import t

Operator = Literal["equals", "not_equals", "contains", "regex", "greater", "less", "is_empty", "not_empty",
                   "has_tag", "not_has_tag"]

_FIELD = re.compile(
    r"^(last_reply|trigger\.message|tags|contact\.name|contact\.phone"
    r"|vars\.[A-Za-z][A-Za-z0-9_]{0,63}|contact\.custom_data\.[A-Za-z][A-Za-z0-9_]{0,63})$"
)
TYPED_FIELDS = frozenset({"number", "date", "boolean"})
"""Contact field types whose rules compare values by type rather than as text."""
NEEDS_VALUE = frozenset({"equals", "not_equals", "contains", "regex", "greater", "less", "has_tag", "not_has_tag"})
"""Operators that compare with the rule's value (``is_empty`` / ``not_empty`` do not)."""


class Rule(NodeData):
    """One comparison.

    Attributes:
        field: ``last_reply``, ``trigger.message``, ``vars.X``, ``contact.name``, ``contact.phone``,
            ``contact.custom_data.X`` or ``tags`` (ignored by ``has_tag``/``not_has_tag``).
        operator: see ``Operator``.
        value: what to compare with (template); the tag name for ``has_tag``; the pattern for ``regex``
            (used as written, not rendered).
    """

    field: str = "last_reply"
    operator: Operator = "equals"
    value: TemplateStr | None = Field(default=None, max_length=1_000)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Rule:
        if self.operator not in {"has_tag", "not_has_tag"} and not _FIELD.match(self.field):
            raise PydanticCustomError("field_invalid", t("node.condition.error.field_invalid"), {"field": self.field})
        if self.operator in NEEDS_VALUE and not (self.value and self.value.strip()):
            raise PydanticCustomError("value_missing", t("node.condition.error.value_missing"),
                                      {"operator": self.operator})
        if self.operator == "regex":
            problem = regex_refusal(self.value or "", info)
            if problem:
                raise PydanticCustomError("regex_invalid", t("node.condition.error.regex_invalid"),
                                          {"problem": problem})
        return self


class RuleGroup(NodeData):
    """Rules that must all hold."""

    rules: list[Rule] = Field(min_length=1, max_length=20)


class ConditionData(NodeData):
    """``groups``: true when any group has all of its rules true."""

    groups: list[RuleGroup] = Field(min_length=1, max_length=10)


class ConditionNode(NodeBase):
    """Schema of a ``condition`` node."""

    type: Literal["condition"]
    data: ConditionData


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


def _ordered(value: Any) -> float | date | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = _as_text(value).strip()
    number = parse_number(text)
    if number is not None:
        return float(number)
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _typed(kind: str, value: Any, today: date) -> float | date | bool | None:
    """A typed field's value, or a rule's value for it, as the field's type; None when it is not one."""
    if isinstance(value, bool):
        return value if kind == "boolean" else None
    if kind == "number":
        number = value if isinstance(value, int | float) else parse_number(_as_text(value))
        return None if number is None else float(number)
    if kind == "date":
        return parse_date(_as_text(value).strip(), today)
    return parse_yes_no(_as_text(value))


def _compare_typed(kind: str, op: str, actual: Any, expected: str, ctx: ExecutionContext) -> bool | None:
    """The rule's outcome on a typed field, or None to compare as text (a value that is not of the type)."""
    today = local_today(ctx)
    left, right = _typed(kind, actual, today), _typed(kind, expected, today)
    if op in {"greater", "less"}:
        if left is None or right is None or kind == "boolean":
            return False
        return (left > right) if op == "greater" else (left < right)  # type: ignore[operator]
    if left is None or right is None:
        return None
    return (left == right) == (op == "equals")


def evaluate_rule(rule: Rule, ctx: ExecutionContext) -> tuple[bool, tuple[str, ...]]:
    """Evaluate one rule; returns (result, log lines)."""
    log: tuple[str, ...] = ()
    if rule.operator == "regex":
        expected = rule.value or ""
    else:
        rendered = render_text(rule.value, ctx, t("run.what.rule_value"))
        if rendered.error:
            return False, rendered.log + (rendered.error,)
        expected, log = rendered.text, rendered.log
    op = rule.operator
    tags = {normalize(t) for t in ctx.contact.tags}
    if op == "has_tag":
        return normalize(expected) in tags, log
    if op == "not_has_tag":
        return normalize(expected) not in tags, log
    actual = read_value(ctx, rule.field)
    if op in {"is_empty", "not_empty"}:
        empty = actual is None or (isinstance(actual, str | list | tuple | dict) and not _as_text(actual).strip())
        return empty == (op == "is_empty"), log
    if rule.field == "tags" and op in {"equals", "not_equals", "contains"}:
        # "tags contains X" reads naturally as "has tag X"
        present = normalize(expected) in tags
        return (not present) if op == "not_equals" else present, log
    kind = ctx.field_types.get(rule.field.removeprefix("contact.custom_data.")) \
        if rule.field.startswith("contact.custom_data.") else None
    if kind in TYPED_FIELDS and op in {"equals", "not_equals", "greater", "less"}:
        outcome = _compare_typed(kind, op, actual, expected, ctx)
        if outcome is not None:
            return outcome, log
    if op == "regex":
        problem = regex_problem(expected)  # only in a version published before the pattern became unusable
        if problem:
            return False, log + (t("run.regex_unusable", problem=problem),)
        return regex_search(expected, _as_text(actual)), log
    if op in {"greater", "less"}:
        left, right = _ordered(actual), _ordered(expected)
        if left is None or right is None or type(left) is not type(right):
            return False, log
        return (left > right) if op == "greater" else (left < right), log  # type: ignore[operator]
    left_text, right_text = normalize(_as_text(actual)), normalize(expected)
    if op == "contains":
        return right_text in left_text, log
    equal = left_text == right_text
    if not equal:
        left_num, right_num = _ordered(actual), _ordered(expected)
        equal = left_num is not None and left_num == right_num
    return equal if op == "equals" else not equal, log


def execute(node: ConditionNode, ctx: ExecutionContext) -> NodeResult:
    """Take ``true`` when any group's rules all hold, else ``false``."""
    log: list[str] = []
    for index, group in enumerate(node.data.groups):
        holds = True
        for rule in group.rules:
            ok, rule_log = evaluate_rule(rule, ctx)
            log += rule_log
            if not ok:
                holds = False
                break
        if holds:
            return NodeResult(output="true", log=tuple(log), data={"group": index})
    return NodeResult(output="false", log=tuple(log), data={"group": None})


def true_false(data: Config) -> list[str]:
    """``true`` and ``false``, both required."""
    return ["true", "false"]


def new_rule() -> dict[str, Any]:
    """The rule a new condition (or "add rule") starts with: the last reply equals an empty value (a ⚠)."""
    return {"field": "last_reply", "operator": "equals", "value": ""}


def summary(data: Config) -> str:
    """How many groups of rules."""
    return t("node.condition.summary", n=len(raw_list(data, "groups")))


SPEC = NodeSpec(type="condition", schema=ConditionNode, execute=execute, outputs=true_false,
                required_outputs=true_false, summary=summary,
                default_data=lambda: {"groups": [{"rules": [new_rule()]}]},
                hints={"groups": FieldHint(kind="rule_groups")})
