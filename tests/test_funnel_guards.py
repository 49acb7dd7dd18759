"""Funnel authors' patterns and templates cannot stop a worker: known attacks and Hypothesis families. Pure.

Cost is asserted through what the guards guarantee, never through wall-clock time: every accepted regular
expression runs on RE2 (linear in the text) with a bounded program, and every render counts its work and stops at
its budget.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import re2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.matching import MAX_MATCH_INPUT, MAX_PATTERN_PROGRAM, pattern_matcher, regex_problem, regex_search
from engine.core.templates import MAX_OUTPUT_CHARS, MAX_RENDER_WORK, check_syntax, render

RE2_PATTERN = type(re2.compile("x"))  # the linear engine's compiled pattern

# No example database: nothing is written into the repository, and every run draws the same examples.
GUARD_SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])

# Exponential on a backtracking engine (Python's re): each takes seconds to years on a few dozen characters.
CATASTROPHIC = [
    r"(a+)+$", r"((a+))+$", r"(a|aa)+$", r"(a|a?)+$", r"(.*a){12}$", r"\d*\d*\d*\d*\d*\d*x", r"(x+x+)+y",
    r"(\w+\s?)+$", r"^(([a-z])+.)+[A-Z]([a-z])+$", r"(a*)*b", r"(a|b|ab)*c", r"^(\w+\.?)*@", r"(\s*,?\s*\w+)*$",
    r"^([a-zA-Z0-9])(([\-.]|[_]+)?([a-zA-Z0-9]+))*(@){1}[a-z0-9]+[.]{1}(([a-z]{2,3})|([a-z]{2,3}[.]{1}[a-z]{2,3}))$",
    r"(.*){1,32000}[bc]", r"(?:a|a)*$", r"(a?){25}a{25}", r"(\d+)*[a-z]", r"^(a+|b+)*c$", r"(?:[^\s]+\s?)+$",
]
HOSTILE_TEXTS = ["a" * 30 + "!", "a" * MAX_MATCH_INPUT + "!", "1" * MAX_MATCH_INPUT + "!", "x" * 40,
                 "ab" * (MAX_MATCH_INPUT // 2), "a " * 1500 + "!", "aaaa.aaaa." * 300]


@contextmanager
def python_re_compiles() -> Iterator[list[str]]:
    """Every pattern handed to Python's backtracking ``re`` while the block runs."""
    seen: list[str] = []
    real = re.compile

    def spy(pattern, flags=0):  # type: ignore[no-untyped-def]
        seen.append(pattern)
        return real(pattern, flags)

    re.compile = spy  # type: ignore[assignment]
    try:
        yield seen
    finally:
        re.compile = real  # type: ignore[assignment]


def assert_runs_on_re2_only(pattern: str, texts: list[str]) -> None:
    """Refused, or run on an RE2 program within the bound; Python's re never sees the pattern either way."""
    with python_re_compiles() as seen:
        problem = regex_problem(pattern)
        for text in texts:
            assert regex_search(pattern, text) in (True, False)
    assert pattern not in seen
    matcher = pattern_matcher(pattern)
    if problem is None:
        assert isinstance(matcher, RE2_PATTERN)
        assert max(matcher.programsize, matcher.reverseprogramsize) <= MAX_PATTERN_PROGRAM
    else:
        assert isinstance(problem, str) and problem and matcher is None


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_patterns_cannot_backtrack(pattern: str) -> None:
    assert_runs_on_re2_only(pattern, HOSTILE_TEXTS)


# Pieces of patterns, hostile ones included: nested and stacked repeats, alternations that overlap, big counted
# repeats, Unicode classes, and the constructs RE2 lacks.
_ATOMS = st.sampled_from(["a", "b", "x", ".", r"\d", r"\w", r"\s", "[a-z]", "[^x]", r"\pL", "(a|aa)", "(a|a?)",
                          "ç", "ã", r"\b", "^", "$", r"\1", "(?=a)", "(?<!b)"])
_QUANTIFIERS = st.sampled_from(["", "", "*", "+", "?", "{2,}", "{12}", "{0,999}", "{1000}", "*?", "++"])


@st.composite
def _patterns(draw: st.DrawFn, depth: int = 3) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        if depth and draw(st.booleans()):
            body = draw(_patterns(depth - 1))
            parts.append("(" + body + ")" + draw(_QUANTIFIERS))
        else:
            parts.append(draw(_ATOMS) + draw(_QUANTIFIERS))
    return "|".join(parts) if draw(st.integers(0, 4)) == 0 else "".join(parts)


@GUARD_SETTINGS
@given(pattern=_patterns(), text=st.sampled_from(HOSTILE_TEXTS) | st.text(max_size=300))
def test_random_patterns_are_refused_or_linear(pattern: str, text: str) -> None:
    assert_runs_on_re2_only(pattern, [text])


# -- templates -----------------------------------------------------------------------------------------------------

# Expressions that are expensive when combined: big integers, long strings and lists, ranges, lazy filters, contact
# data. Each strategy level wraps the previous one in an operator, a filter, a method call, a slice or a comparison.
_VALUES = st.sampled_from([
    "3", "a", "3 ** 2000", "2 ** 4095", "'x' * 60000", "['a'] * 60000", "range(1000)", "(range(1000) | list) * 60",
    "'9' * 4000", "'a <' * 20000", "contact.name", "contact.tags", "vars.n", "history", "loop.index", "'a b'",
])
_FILTERS = st.sampled_from([
    "sort", "unique | list", "sum", "int", "string", "list", "length", "select | list", "title", "wordcount",
    "join(',')", "replace('a', 'bb')", "striptags", "urlencode", "max", "reverse | list", "select",
    "selectattr('x') | list", "first", "upper", "trim", "abs", "float", "round", "default('z')",
])
_ITERABLES = st.sampled_from(["'x' * 60000", "range(1000)", "['a'] * 60000", "('a b' * 9000).split()",
                              "contact.tags", "history", "(range(1000) | list) * 60"])
_BINARY = st.sampled_from(["*", "+", "-", "**", "//", "%", "~", "in", "==", "<", "and"])
_METHODS = st.sampled_from(["split()", "count('a')", "upper()", "find('b')", "splitlines()", "strip()"])


def _around(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """One level more: an operator, a filter, a method call or a slice around smaller expressions."""
    binary = st.tuples(inner, _BINARY, inner).map(lambda p: f"({p[0]} {p[1]} {p[2]})")
    filtered = st.tuples(inner, _FILTERS).map(lambda p: f"({p[0]} | {p[1]})")
    method = st.tuples(inner, _METHODS).map(lambda p: f"({p[0]}).{p[1]}")
    return st.one_of(binary, filtered, method, inner.map(lambda e: f"({e})[1:]"))


def _expressions() -> st.SearchStrategy[str]:
    return st.recursive(_VALUES, _around, max_leaves=6)


def _statements(expr: st.SearchStrategy[str], loops: bool) -> st.SearchStrategy[str]:
    simple = st.one_of(expr.map(lambda e: "{{ " + e + " }}"), expr.map(lambda e: "{% set a = " + e + " %}"),
                       st.tuples(expr, expr).map(lambda p: "{% if " + p[0] + " %}{{ " + p[1] + " }}{% endif %}"),
                       st.just("{% if x %}{% endif %}"), st.just("{% set b = x %}"))  # no metered operation
    if not loops:
        return simple
    body = st.lists(simple, min_size=1, max_size=8).map("".join)
    iterable = st.one_of(_ITERABLES, expr)
    loop = st.tuples(iterable, body).map(lambda p: "{% for x in " + p[0] + " %}" + p[1] + "{% endfor %}")
    return st.one_of(simple, loop)


TEMPLATES = st.lists(_statements(_expressions(), loops=True), min_size=1, max_size=8).map("".join)
TEMPLATE_CONTEXT = {"contact": {"name": "Ana", "tags": ["lead", "vip"]}, "vars": {"n": 7},
                    "history": "Contato: oi\nBot: " + "olá " * 2000}


@contextmanager
def python_steps() -> Iterator[dict[str, int]]:
    """Count what Python runs inside the block, independently of the meter: function calls (generators resuming
    included) and lines of the templates' compiled code (where loop bodies and ``if`` tests run)."""
    steps = {"calls": 0, "template_lines": 0}

    def in_template(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "line":
            steps["template_lines"] += 1
        return in_template

    def on_call(frame, event, arg):  # type: ignore[no-untyped-def]
        steps["calls"] += 1
        return in_template if frame.f_code.co_filename == "<template>" else None

    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        yield steps
    finally:
        sys.settrace(previous)


@GUARD_SETTINGS
@given(template=TEMPLATES)
def test_random_templates_stay_within_the_work_budget(template: str) -> None:
    if check_syntax(template) is not None:
        return  # refused before it can run (e.g. nested loops)
    with python_steps() as steps:
        result = render(template, TEMPLATE_CONTEXT)
    assert 0 <= result.work <= MAX_RENDER_WORK
    assert len(result.text) <= MAX_OUTPUT_CHARS
    assert (result.error is None) == result.ok
    # Everything the render runs is paid for: a loop, filter or comparison left off the meter would run
    # unbounded Python for a bounded count of units.
    assert steps["calls"] <= 2 * result.work + 1_000, (steps, result.work)
    assert steps["template_lines"] <= result.work + 1_000, (steps, result.work)
