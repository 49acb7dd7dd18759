"""The one template function: every text a funnel sends goes through ``render``.

Templates are Jinja2 on ``ImmutableSandboxedEnvironment``. Authors are workspace users, but the *values* are
contact-supplied (names, replies, custom fields), so the sandbox is tightened beyond Jinja's defaults:

- attribute access is an allow-list: keys of our own namespaces, a few pure ``str`` methods, the ``loop``
  helper; everything else (``__class__``, ``str.center``, ``int.to_bytes`` ...) raises ``SecurityError``;
- the only global is a ``range`` capped at ``MAX_RANGE`` items; ``lipsum``, ``cycler``, ``namespace`` and
  ``dict`` are gone; filters are an allow-list, and those that build text check the size they would produce;
- operators and ``~`` are intercepted so no single value can outgrow ``MAX_VALUE_CHARS`` and no integer
  ``MAX_INT_BITS`` (``a ** b`` is checked before it is computed);
- macros, call blocks, includes, imports, recursive loops and nested loops are refused at compile time;
- every render runs on a work meter (``RenderResult.work``): each operator, comparison, call, filter, test,
  attribute or item access and output costs ``_OP`` units plus the size of the values it reads or builds (nested
  values included), each loop step costs the size of the loop's body, and the render stops at
  ``MAX_RENDER_WORK`` units. Nothing is computed at compile time, where the meter does not run. The meter is
  deterministic (the same template on the same data always costs the same) and needs no timer or signal, so it
  works in the panel's script thread and in workers alike;
- output is consumed chunk by chunk and cut at ``MAX_OUTPUT_CHARS``.

A missing value renders as an empty string and its dotted path is reported in ``RenderResult.missing`` (for
the funnel event log); ``{% if vars.x %}`` and ``| default(...)`` do not count as missing. ``render`` never
raises: syntax errors, sandbox violations and runtime errors come back as ``RenderResult.error`` (pt-BR).
"""

from __future__ import annotations

import contextvars
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from typing import Any

from jinja2 import Template, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.nodes import EvalContext
from jinja2.runtime import LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from workbench.base.i18n import t

MAX_TEMPLATE_CHARS = 20_000
"""Longest template source accepted (a WhatsApp text is at most ~65k; prompts are far shorter)."""
MAX_OUTPUT_CHARS = 64 * 1024
"""Rendered text is cut here and ``RenderResult.truncated`` is set."""
MAX_VALUE_CHARS = 64 * 1024
"""Largest string/list any single template expression may build."""
MAX_RANGE = 1_000
"""Largest ``range()`` a template may create."""
MAX_INT_BITS = 4_096
"""Largest integer (in bits, about 1,200 digits) a template may use or compute."""
MAX_RENDER_WORK = 100_000
"""Work units one render may spend (see the module docstring); a greeting with a loop over the contact's tags
costs about 100, and spending all of it takes some tens of milliseconds (``bench/guards.py``)."""
HISTORY_LINES = 20
"""How many recent messages ``{{history}}`` shows."""

_missing_paths: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("_missing_paths", default=None)


@dataclass(frozen=True)
class RenderResult:
    """What ``render`` produced.

    Attributes:
        text: the rendered text ("" when ``error`` is set).
        missing: dotted paths of values that were referenced but absent, in first-use order, without repeats.
        error: pt-BR description of why nothing was rendered, or None.
        truncated: True when the output was cut at ``MAX_OUTPUT_CHARS``.
        work: work units the render spent, at most ``MAX_RENDER_WORK``.
    """

    text: str
    missing: list[str] = field(default_factory=list)
    error: str | None = None
    truncated: bool = False
    work: int = 0

    @property
    def ok(self) -> bool:
        """True when the template rendered (possibly with missing values or truncated)."""
        return self.error is None


class _Bag:
    """A read-only namespace whose keys are reachable as attributes (``contact.custom_data.email``).

    Not a ``dict``: a dict would expose ``items``/``keys``/``get`` ahead of same-named keys (Jinja prefers
    attributes), so a custom field called ``items`` would be unreachable. ``None`` values count as missing.
    """

    __slots__ = ("_data", "_path")

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            value = self._data[name]
        except KeyError:
            raise AttributeError(name) from None
        if value is None:
            raise AttributeError(name)
        return _wrap(value, f"{self._path}.{name}")

    def __getitem__(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise KeyError(name)
        try:
            return self.__getattr__(name)
        except AttributeError:
            raise KeyError(name) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._data.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def __str__(self) -> str:
        # Printing a whole namespace is almost always a mistake; printing nothing beats leaking a repr.
        return ""


def _wrap(value: Any, path: str) -> Any:
    if isinstance(value, Mapping):
        return _Bag(value, path)
    if isinstance(value, list | tuple):
        return [_wrap(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


class _TrackingUndefined(Undefined):
    """Renders as "" and records its dotted path when printed; chains through ``.x`` and ``[x]``."""

    __slots__ = ("_wb_path",)

    def __init__(self, hint: str | None = None, obj: Any = None, name: str | None = None,
                 exc: type[TemplateError] = UndefinedError) -> None:
        if obj is None:
            super().__init__(hint=hint, name=name, exc=exc)
        else:
            super().__init__(hint=hint, obj=obj, name=name, exc=exc)
        base = obj._path if isinstance(obj, _Bag) else None
        self._wb_path = f"{base}.{name}" if base and name else (name or "?")

    def __getattr__(self, name: str) -> Any:
        if name[:1] == "_":
            raise AttributeError(name)
        return _TrackingUndefined(name=f"{self._wb_path}.{name}")

    def __getitem__(self, key: Any) -> Any:
        return _TrackingUndefined(name=f"{self._wb_path}.{key}")

    def _record(self) -> None:
        paths = _missing_paths.get()
        if paths is not None and self._wb_path not in paths:
            paths.append(self._wb_path)

    def __str__(self) -> str:
        self._record()
        return ""

    def __iter__(self) -> Iterator[Any]:
        self._record()
        return iter(())

    __html__ = __str__


class _LimitError(SecurityError):
    """A template tried to build something larger than the limits allow."""


class _Meter:
    """Work units spent by the render in progress."""

    __slots__ = ("spent",)

    def __init__(self) -> None:
        self.spent = 0


_meter: contextvars.ContextVar[_Meter | None] = contextvars.ContextVar("_meter", default=None)


_OP = 10
"""Units of one metered operation before the size of its values: a sandboxed attribute lookup or call costs about
as much Python as ten loop-body nodes or ten list items."""
_LOOP_STEP = 4
"""Units of one loop step's own bookkeeping, before the size of the loop's body."""
# Filters doing Python-level work per character or item pay that many units per unit of size (measured with
# bench/guards.py).
_FILTER_FACTORS = {"title": 128, "wordcount": 32, "selectattr": 16, "rejectattr": 16, "urlencode": 16, "sort": 4,
                   "select": 4, "reject": 4, "striptags": 4, "unique": 2, "min": 2, "max": 2}


def _charge(units: int) -> None:
    meter = _meter.get()
    if meter is None:
        return  # outside a render (a filter called directly)
    if meter.spent + units > MAX_RENDER_WORK:
        meter.spent = MAX_RENDER_WORK
        raise _LimitError(t("template.too_much_work", max=MAX_RENDER_WORK))
    meter.spent += units


def _weight(value: Any) -> int:
    """Units for reading or building ``value``: one per item of a collection, nested ones included (``[l] * 1000``
    holds ``l`` a thousand times), per 64 characters or 64 integer bits. Counting stops past the budget."""
    total, pending = 0, [value]
    while pending and total <= MAX_RENDER_WORK:
        item = pending.pop()
        if isinstance(item, str):
            total += len(item) >> 6
        elif isinstance(item, int):
            total += item.bit_length() >> 6
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            pending.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            pending.extend(item.values())
        elif isinstance(item, range | _Bag):
            total += len(item)
    return total


def _check_int(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _LimitError(t("template.int_too_big", max=MAX_INT_BITS))
    return value


def _steps(iterable: Iterable[Any], units: int) -> Iterator[Any]:
    """``iterable``, charging ``units`` for each item taken (loops, lazy filters such as ``select``)."""
    for item in iterable:
        _charge(units)
        yield item


def _metered(func: Callable[..., Any], factor: int = 1) -> Callable[..., Any]:
    """A filter or test that charges for what it reads and builds (keeping Jinja's ``pass_*`` marks)."""

    @wraps(func)
    def metered(*args: Any, **kwargs: Any) -> Any:
        _charge(_OP + factor * (sum(map(_weight, args)) + sum(map(_weight, kwargs.values()))))
        result = func(*args, **kwargs)
        if isinstance(result, Iterator):
            return _steps(result, 1)
        _charge(_weight(result))
        return _check_int(result)

    return metered


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 0


def _check_size(value: Any) -> Any:
    if _size(value) > MAX_VALUE_CHARS:
        raise _LimitError(t("template.value_too_long", max=MAX_VALUE_CHARS))
    return value


def _mul(left: Any, right: Any) -> Any:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(n, int):
            if len(seq) * max(n, 0) > MAX_VALUE_CHARS:
                raise _LimitError(t("template.value_too_long", max=MAX_VALUE_CHARS))
    return left * right


def _add(left: Any, right: Any) -> Any:
    if _size(left) + _size(right) > MAX_VALUE_CHARS:
        raise _LimitError(t("template.value_too_long", max=MAX_VALUE_CHARS))
    return left + right


def _pow(left: Any, right: Any) -> Any:
    if isinstance(left, int | float) and isinstance(right, int | float) and abs(left) > 1 and right > 0:
        if math.log2(abs(left)) * right > MAX_INT_BITS:
            raise _LimitError(t("template.int_too_big", max=MAX_INT_BITS))
    return left**right


def _mod(left: Any, right: Any) -> Any:
    # printf-style formatting can pad to any width ('%999999999s'); numbers only.
    if isinstance(left, str):
        raise SecurityError(t("template.percent_format"))
    return left % right


def _safe_range(*args: Any) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise _LimitError(t("template.range_too_big", max=MAX_RANGE))
    return rng


def _join(value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = [str(v) for v in value] if attribute is None else [str(getattr(v, str(attribute), "")) for v in value]
    if sum(map(len, items)) + len(d) * max(len(items) - 1, 0) > MAX_VALUE_CHARS:
        raise _LimitError(t("template.value_too_long", max=MAX_VALUE_CHARS))
    return d.join(items)


def _replace(s: Any, old: str, new: str, count: int | None = None) -> str:
    s = str(s)
    occurrences = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    if len(s) + occurrences * (len(new) - len(old)) > MAX_VALUE_CHARS:
        raise _LimitError(t("template.value_too_long", max=MAX_VALUE_CHARS))
    return s.replace(old, new, -1 if count is None else count)


# Pure, output-bounded str methods; padding/formatting ones (center, zfill, format, expandtabs ...) are absent.
_SAFE_STR_METHODS = frozenset({
    "upper", "lower", "title", "capitalize", "casefold", "swapcase", "strip", "lstrip", "rstrip",
    "startswith", "endswith", "split", "rsplit", "splitlines", "count", "find", "rfind", "isdigit",
    "isnumeric", "isalpha", "isalnum", "isspace", "islower", "isupper", "removeprefix", "removesuffix",
})
_SAFE_SEQ_METHODS = frozenset({"index", "count"})
_SAFE_FILTERS = frozenset({
    "abs", "capitalize", "count", "d", "default", "first", "float", "int", "last", "length", "list", "lower",
    "max", "min", "reject", "rejectattr", "reverse", "round", "select", "selectattr", "sort", "string",
    "striptags", "sum", "title", "trim", "truncate", "unique", "upper", "urlencode", "wordcount",
})
_FORBIDDEN_NODES: dict[type[nodes.Node], str] = {
    nodes.Macro: "template.forbidden.macro",
    nodes.CallBlock: "template.forbidden.call",
    nodes.Include: "template.forbidden.include",
    nodes.Import: "template.forbidden.import",
    nodes.FromImport: "template.forbidden.from_import",
    nodes.Extends: "template.forbidden.extends",
    nodes.Block: "template.forbidden.block",
}


_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lteq": operator.le, "gt": operator.gt,
    "gteq": operator.ge, "in": lambda a, b: a in b, "notin": lambda a, b: a not in b,
}


class _CheckedCodeGenerator(CodeGenerator):
    """Routes what Jinja compiles to plain Python, out of the sandbox's sight, through the environment's checks:
    ``a ~ b`` (a join), comparisons (``x in a_long_list`` reads the whole list) and slices (``l[1:]`` copies)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("environment.checked_compare(")
        self.visit(node.expr, frame)
        self.write(", (")
        for operand in node.ops:
            self.write(f"({operand.op!r}, ")
            self.visit(operand.expr, frame)
            self.write("), ")
        self.write("))")

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.getitem(")
        self.visit(node.node, frame)
        self.write(", slice(")
        for index, part in enumerate((node.arg.start, node.arg.stop, node.arg.step)):
            self.write(", " if index else "")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write("))")


class _FunnelEnvironment(ImmutableSandboxedEnvironment):
    code_generator_class = _CheckedCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self) -> None:
        # optimized=False: Jinja would otherwise compute constant expressions while compiling, out of the
        # meter's sight (300 '| title' on a long literal took 1.5 s in check_syntax).
        super().__init__(autoescape=False, undefined=_TrackingUndefined, finalize=_finalize,
                         keep_trailing_newline=True, auto_reload=False, optimized=False)
        self.globals.clear()
        self.globals["range"] = _safe_range
        kept = {name: f for name, f in self.filters.items() if name in _SAFE_FILTERS}
        kept.update(join=_join, replace=_replace)
        self.filters.clear()
        self.filters.update({name: _metered(f, _FILTER_FACTORS.get(name, 1)) for name, f in kept.items()})
        self.tests.update({name: _metered(f) for name, f in self.tests.items()})
        self.binop_table.update({"+": _add, "*": _mul, "**": _pow, "%": _mod})

    def checked_concat(self, parts: Sequence[Any]) -> str:
        """Size-checked and metered version of Jinja's ``~`` operator."""
        _charge(sum(map(_weight, parts)))
        texts = [str(_shown(p)) for p in parts]
        joined = _check_size("".join(texts))
        _charge(_OP + _weight(joined))
        return joined

    def checked_compare(self, left: Any, operands: Sequence[tuple[str, Any]]) -> Any:
        """Metered version of Jinja's comparisons, chains included (``a < b < c``)."""
        result: Any = True
        for op, right in operands:
            _charge(_OP + _weight(left) + _weight(right))
            result = _COMPARISONS[op](left, right)
            if not result:
                return result
            left = right
        return result

    def loop_steps(self, iterable: Any, units: int) -> Iterator[Any]:
        """A ``{% for %}``'s iterable, charged ``units`` (the loop body's size) per step (see ``_meter_loops``)."""
        return _steps(iterable, units)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, _Bag | Undefined):
            return True
        if isinstance(obj, str):
            return attr in _SAFE_STR_METHODS
        if isinstance(obj, list | tuple):
            return attr in _SAFE_SEQ_METHODS
        return isinstance(obj, LoopContext)

    def wrap_str_format(self, value: Any) -> None:
        # Jinja hands out a sandboxed str.format before consulting is_safe_attribute; format can still pad to
        # any width ('{:>999999999}'), so it goes through the allow-list like every other method.
        return None

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # Fail at the access itself rather than handing back a lazy undefined the template could test.
        raise SecurityError(t("template.attribute_denied", attribute=attribute))

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        _charge(_OP + _weight(_check_int(left)) + _weight(_check_int(right)))
        result = _check_int(_check_size(super().call_binop(context, operator_name, left, right)))
        _charge(_weight(result))
        return result

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        # Positional-only, so a template's own keyword arguments may be called "context" or "obj". A bound method
        # reads its object: 'x'.split() costs the size of the string.
        _charge(_OP + _weight(getattr(obj, "__self__", None)) + sum(map(_weight, args))
                + sum(map(_weight, kwargs.values())))
        result = super().call(context, obj, *args, **kwargs)
        _charge(_weight(result))
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        value = super().getattr(obj, attribute)
        _charge(_OP + _weight(value))
        return value

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        _charge(_OP + _weight(value))
        return value


def _shown(value: Any) -> Any:
    """What an output shows: None as "", lists as their items joined with ", "."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(_shown(v)) for v in value)
    return value


@pass_eval_context
def _finalize(eval_ctx: EvalContext, value: Any) -> Any:
    # Asking for the evaluation context keeps Jinja from computing constant outputs ({{ 'a b' | title }}) at
    # compile time, where the meter does not run.
    _charge(_OP + _weight(value))
    return _shown(value)


_ENV = _FunnelEnvironment()


def _meter_loops(tree: nodes.Template) -> None:
    """Route each ``{% for %}``'s iterable through ``loop_steps``: every step costs the size of the loop's body
    (its nodes and its ``if`` test), so the work the loop does between metered operations is paid for too."""
    for loop in tree.find_all(nodes.For):
        per_step = [*loop.body, *([loop.test] if loop.test else [])]
        units = _LOOP_STEP + sum(1 + sum(1 for _ in node.find_all(nodes.Node)) for node in per_step)
        steps = nodes.Call(nodes.EnvironmentAttribute("loop_steps"), [loop.iter, nodes.Const(units)], [], None, None,
                           lineno=loop.lineno)
        loop.iter = steps.set_environment(_ENV)


def _check_ast(tree: nodes.Template) -> str | None:
    for node in tree.find_all(tuple(_FORBIDDEN_NODES)):
        return t("template.at_line", line=node.lineno, problem=t(_FORBIDDEN_NODES[type(node)]))
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            return t("template.at_line", line=loop.lineno, problem=t("template.recursive_loop"))
        # One level of looping keeps the work linear in the data; nested loops multiply it.
        if next(loop.find_all(nodes.For), None) is not None:
            return t("template.at_line", line=loop.lineno, problem=t("template.nested_loop"))
    return None


_SYNTAX_HINTS = (
    ("unexpected 'end of template'", "template.syntax.unclosed_tag"),
    ("no filter named", "template.syntax.unknown_filter"),
    ("no test named", "template.syntax.unknown_test"),
    ("unexpected end of template", "template.syntax.unclosed_block"),
    ("encountered unknown tag", "template.syntax.unknown_tag"),
    ("expected token", "template.syntax.incomplete"),
)


def _syntax_message(exc: TemplateSyntaxError) -> str:
    detail = exc.message or ""
    for english, key in _SYNTAX_HINTS:
        if detail.lower().startswith(english):
            detail = f"{t(key)} ({detail})"
            break
    return t("template.syntax", line=exc.lineno, detail=detail)


@lru_cache(maxsize=1024)
def _compile(source: str) -> Template | str:
    """Compile once per distinct source; returns the template or a pt-BR error message."""
    if len(source) > MAX_TEMPLATE_CHARS:
        return t("template.too_long", max=MAX_TEMPLATE_CHARS)
    try:
        tree = _ENV.parse(source)
        problem = _check_ast(tree)
        if problem:
            return problem
        _meter_loops(tree)
        return _ENV.from_string(tree)
    except TemplateSyntaxError as exc:
        return _syntax_message(exc)
    except SecurityError as exc:
        return t("template.blocked", detail=exc)
    except (RecursionError, SyntaxError):
        # Jinja parses and compiles recursively, and Python refuses ~200 nested parentheses: a few hundred
        # characters of '((((' or '| f | f | f' are too deep for either.
        return t("template.too_deep")


def check_syntax(template: str) -> str | None:
    """Return a pt-BR description of what is wrong with ``template``, or None when it compiles.

    Covers Jinja syntax errors, constructs the sandbox refuses (macros, includes, nested loops ...)
    and oversized templates. It does not catch runtime problems such as a missing value.
    """
    compiled = _compile(template)
    return compiled if isinstance(compiled, str) else None


def history_text(history: Iterable[Any]) -> str:
    """Format recent messages as ``Contato: ...`` / ``Bot: ...`` lines (the ``{{history}}`` value)."""
    lines = []
    for entry in list(history)[-HISTORY_LINES:]:
        if isinstance(entry, Mapping):
            direction, text, author = entry.get("direction"), entry.get("text"), entry.get("author")
        else:
            direction, text, author = (getattr(entry, "direction", None), getattr(entry, "text", None),
                                       getattr(entry, "author", None))
        if not text:
            continue
        who = author or ("Contato" if direction == "in" else "Bot")
        lines.append(f"{who}: {' '.join(str(text).split())}")
    return "\n".join(lines)


def template_namespace(ctx: Any) -> dict[str, Any]:
    """Build the names a template sees from an execution context (or pass a ready mapping through).

    ``ctx`` is anything with the attributes of ``engine.core.nodes.base.ExecutionContext`` (``contact``,
    ``variables``, ``trigger_message``, ``last_reply``, ``funnel_name``, ``history``); duck-typed so this
    module does not import the node package. A ``Mapping`` is taken as the namespace itself.
    """
    if isinstance(ctx, Mapping):
        raw: dict[str, Any] = dict(ctx)
    else:
        contact = getattr(ctx, "contact", None)
        if contact is not None and not isinstance(contact, Mapping):
            contact = {"name": contact.name, "phone": contact.phone, "custom_data": dict(contact.custom_data),
                       "tags": list(contact.tags)}
        raw = {
            "contact": contact or {},
            "vars": dict(getattr(ctx, "variables", {}) or {}),
            "trigger": {"message": getattr(ctx, "trigger_message", None)},
            "funnel": {"name": getattr(ctx, "funnel_name", None) or None},
            "last_reply": getattr(ctx, "last_reply", None),
            "history": history_text(getattr(ctx, "history", ()) or ()),
        }
    return {key: _wrap(value, key) for key, value in raw.items() if value is not None}


def render(template: str, ctx: Any) -> RenderResult:
    """Render one funnel text with the sandboxed environment; never raises.

    Args:
        template: Jinja2 source, e.g. ``"Olá {{contact.name}}!"``.
        ctx: an ``ExecutionContext`` (or any object with its attributes), or a ready namespace mapping
            with keys such as ``contact``, ``vars``, ``trigger``, ``funnel``, ``history``.

    Returns:
        ``RenderResult``: the text, the dotted paths of missing values, and an error (pt-BR) when the
        template could not be rendered — in which case ``text`` is "".
    """
    if not template:
        return RenderResult("")
    if "{" not in template and "\r" not in template and len(template) <= MAX_TEMPLATE_CHARS:
        # No Jinja syntax (nor line ends Jinja would normalise): the text is its own rendering, without a context
        # built for it (most of a funnel's texts and option labels; a fifth of a welcome walk's time).
        return RenderResult(template)  # shorter than MAX_OUTPUT_CHARS
    compiled = _compile(template)
    if isinstance(compiled, str):
        return RenderResult("", error=compiled)
    missing: list[str] = []
    meter = _Meter()
    missing_token, meter_token = _missing_paths.set(missing), _meter.set(meter)
    try:
        chunks: list[str] = []
        size = 0
        truncated = False
        for chunk in compiled.generate(template_namespace(ctx)):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                truncated = True
                break
        text = "".join(chunks)[:MAX_OUTPUT_CHARS]
        return RenderResult(text, missing, truncated=truncated, work=meter.spent)
    except SecurityError as exc:
        error = t("template.blocked", detail=exc)
    except TemplateError as exc:
        error = t("template.error", detail=exc)
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError, RecursionError) as exc:
        # Runtime mistakes in an author's expression ({{ vars.n / 0 }}, {{ 'a' + 1 }}) are data for the
        # run's log, not crashes; anything else is a bug and propagates.
        error = t("template.render_error", kind=type(exc).__name__, detail=exc)
    finally:
        _meter.reset(meter_token)
        _missing_paths.reset(missing_token)
    return RenderResult("", missing, error=error, work=meter.spent)


__all__ = ["MAX_INT_BITS", "MAX_OUTPUT_CHARS", "MAX_RENDER_WORK", "RenderResult", "check_syntax", "history_text",
           "render", "template_namespace"]
