"""Funnel authors' patterns and templates cannot stop a worker: known attacks and Hypothesis families. Pure.

Cost is asserted through what the guards guarantee, never through wall-clock time: every accepted regular
expression runs on RE2 (linear in the text) with a bounded program, and every render counts its work and stops at
its budget.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import re2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.matching import MAX_MATCH_INPUT, MAX_PATTERN_PROGRAM, pattern_matcher, regex_problem, regex_search

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
        assert isinstance(matcher, re2._Regexp)
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
