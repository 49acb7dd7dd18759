"""Worst cases of the pattern and template guards: what an author's regex or template can cost a worker.

Regular expressions: the worst single ``regex_search`` (message as typed plus its normalised form, each pattern
compiled fresh so RE2 builds its automaton from scratch) over the catastrophic-backtracking family and over
patterns that make RE2's automaton grow at every character, sized up to ``MAX_PATTERN_PROGRAM``, on
``MAX_MATCH_INPUT``-character hostile messages.

Templates: nanoseconds per work unit for the operations the meter charges (the figure ``_FILTER_FACTORS`` and
``_OP`` in ``engine/core/templates.py`` were set from), then the slowest renders that run into
``MAX_RENDER_WORK``. Prints figures; it asserts nothing.

    .venv/bin/python bench/guards.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import re2  # noqa: E402

from engine.core import matching  # noqa: E402
from engine.core.matching import MAX_MATCH_INPUT, MAX_PATTERN_PROGRAM, regex_problem, regex_search  # noqa: E402
from engine.core.templates import MAX_RENDER_WORK, render  # noqa: E402

CATASTROPHIC = [r"(a+)+$", r"((a+))+$", r"(a|aa)+$", r"(a|a?)+$", r"(.*a){12}$", r"\d*\d*\d*\d*\d*\d*x",
                r"(x+x+)+y", r"(\w+\s?)+$", r"^(([a-z])+.)+[A-Z]([a-z])+$"]
# Patterns whose automaton needs a new state at almost every character, as large as the cap allows ({k}).
GROWING = [lambda k: f"a[ab]{{{k}}}c", lambda k: f"(?:a|b)*a(?:a|b){{{k}}}c", lambda k: f"a.{{{k}}}c",
           lambda k: f"é[^c]{{{k}}}x", lambda k: f"(?:a.{{{k}}}|b.{{{k}}})c", lambda k: f"[a-zà-ú]{{{k}}}!"]


def _hostile_texts(rng: random.Random) -> list[str]:
    n = MAX_MATCH_INPUT
    return ["a" * n + "!", "1" * n + "!", "a " * (n // 2), "".join(rng.choice("ab") for _ in range(n)),
            "".join(rng.choice("abéç ã1") for _ in range(n)), "\ufdfa" * n, "Ç" * n]


def _largest(shape: Callable[[int], str]) -> str | None:
    best = None
    for k in range(1, 1001):
        if regex_problem(shape(k)) is not None:
            break
        best = shape(k)
    return best


def _worst_search(pattern: str, texts: list[str], repeat: int) -> tuple[float, str]:
    """The slowest text for ``pattern`` (each timed ``repeat`` times, the fastest kept: noise from other
    processes only ever adds)."""
    worst = (0.0, "")
    for text in texts:
        fastest = None
        for _ in range(repeat):
            matching._compile.cache_clear()
            re2.purge()
            start = time.perf_counter()
            regex_search(pattern, text)
            elapsed = time.perf_counter() - start
            fastest = elapsed if fastest is None else min(fastest, elapsed)
        worst = max(worst, (fastest or 0.0, text[:12]))
    return worst


def bench_patterns(repeat: int) -> None:
    rng = random.Random(7)
    texts = _hostile_texts(rng)
    patterns = CATASTROPHIC + [p for p in (_largest(shape) for shape in GROWING) if p]
    print(f"regex_search, {MAX_MATCH_INPUT}-character messages, programs up to {MAX_PATTERN_PROGRAM} instructions")
    overall = 0.0
    for pattern in patterns:
        seconds, text = _worst_search(pattern, texts, repeat)
        overall = max(overall, seconds)
        print(f"  {pattern[:40]:42} worst {seconds * 1000:7.2f} ms  (on {text!r}...)")
    print(f"  worst of all: {overall * 1000:.2f} ms")


_S = "{% set s = 'a <' * 20000 %}"
_L = "{% set l = (range(1000) | list) * 30 %}"
_W = "{% set l = ('ab cd' * 6000).split() %}"
_S_SHORT = "{% set s = 'a <' * 2000 %}"
_W_SHORT = "{% set l = ('ab cd' * 600).split() %}"
UNIT_CASES = {
    "title": _S_SHORT + "{{ s | title | length }}", "wordcount": _S + "{{ s | wordcount }}",
    "urlencode": _S + "{{ s | urlencode | length }}", "striptags": _S + "{{ s | striptags | length }}",
    "sort": _W + "{{ l | sort | length }}", "unique": _L + "{{ l | unique | list | length }}",
    "min": _L + "{{ l | min }}", "max": _W + "{{ l | max }}", "sum": _L + "{{ l | sum }}",
    "join": _W + "{{ l | join(',') | length }}", "select": _L + "{{ l | select('odd') | list | length }}",
    "selectattr": _W_SHORT + "{{ l | selectattr('x') | list | length }}", "in (list)": _W + "{{ 'zz' in l }}",
    "split": _S + "{{ s.split() | length }}", "output of a list": _W + "{{ l }}",
    "loop, tests": "{% for i in range(1000) %}{% if i == 1 %}{% endif %}{% if i %}{% endif %}{% endfor %}",
    "loop, loop.*": "{% for i in range(1000) %}{{ loop.index }}{{ loop.first }}{% endfor %}",
    "big integers": "{{ (3 ** 2580) // 7 > 0 }}" * 20 + "{{ (3 ** 2580) | string | length }}" * 20,
}
BUDGET_CASES = {
    "squaring 3 ** 2000": "{% set a = 3 ** 2000 %}" + "{% set a = a * a %}" * 14,
    "sort x40": "{% set l = (range(1000) | list) * 60 %}" + "{{ l | sort | length }}" * 40,
    "loop over split, count": "{% set s = 'a ' * 30000 %}{% for w in s.split() %}{{ s.count('a') > 0 and '' }}"
                              "{% endfor %}",
    "loop, loop.*": "{% for x in ['a'] * 60000 %}{{ loop.index }}{{ loop.first }}{% endfor %}",
    "title on 10k chars x100": "{{ '" + "a " * 5000 + "'" + " | title" * 100 + " }}",
    "selectattr x20": _W + "{{ l | selectattr('x') | list | length }}" * 20,
    "nested list output": "{% set l = ['a'] * 60000 %}{{ [l] * 1000 }}",
}


def _timed_render(template: str, repeat: int) -> tuple[float, int, str | None]:
    """The fastest of ``repeat`` renders, with the work and error of the last."""
    render(template, {})  # compile once: Jinja's compile is cached per source
    best = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = render(template, {})
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best or 0.0, result.work, result.error


def bench_templates(repeat: int) -> None:
    print(f"render: nanoseconds per work unit (budget {MAX_RENDER_WORK} units)")
    for name, template in UNIT_CASES.items():
        seconds, work, _ = _timed_render(template, repeat)
        print(f"  {name:20} {work:7d} units {seconds * 1000:7.2f} ms  {seconds * 1e9 / max(work, 1):6.0f} ns/unit")
    print("render: templates that run into the budget")
    for name, template in BUDGET_CASES.items():
        seconds, work, error = _timed_render(template, repeat)
        print(f"  {name:24} {seconds * 1000:7.2f} ms  {work:7d} units  {(error or 'ok')[:60]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bench_patterns(args.repeat)
    bench_templates(args.repeat)


if __name__ == "__main__":
    main()
