"""What the fuzz tests (``tests/test_fuzz_*.py``) and ``bench/fuzz.py`` share: Hypothesis strategies for hostile
input, the check that every refusal is a catalogued one, a tally of cases and refusals, and the database dump that
proves nothing was left half-written.

A refusal is *catalogued* when the user sees a pt-BR message from ``workbench/base/i18n.py``:

- a ``WorkbenchError`` whose key has a catalog entry (its kind is the key);
- a ``ValueError`` the code raises with a catalog message as its text (``DefinitionImportError``, the editor's
  ``FormError``, the contact import's row errors): its kind is the catalog key the text was built from;
- a stream event the workers cannot read (``pydantic.ValidationError`` from ``decode_inbound``): it is set aside
  at once as ``failures.code.malformed``, which the Falhas page shows;
- a funnel definition's ``Problem`` (a report, not an exception): its code is in ``PROBLEM_CODES`` and its message
  is a catalog text.

Anything else (a ``KeyError``, a ``TypeError``, English text) fails the test.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import re2
from hypothesis import settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import text

from workbench.base.errors import WorkbenchError
from workbench.base.i18n import CATALOG, DEFAULT_LOCALE, error_text, has_key, t

# -- how many cases: the loaded Hypothesis profile (tests/conftest.py) sets the default; a test scales it ---------


def scaled(share: float) -> settings:
    """The loaded profile with ``share`` of its examples (at least 10): database-bound targets run fewer cases
    than pure ones in the same time."""
    return settings(max_examples=max(10, int(settings.default.max_examples * share)))


# -- the tally bench/fuzz.py prints ------------------------------------------------------------------------------

CASES: Counter[str] = Counter()
"""Cases run, by target."""
REFUSALS: Counter[tuple[str, str]] = Counter()
"""Refusals, by (target, catalogued kind)."""


def count(target: str, kind: str | None = None) -> None:
    """One case of ``target``; ``kind`` names the catalogued refusal it ended in, if any."""
    CASES[target] += 1
    if kind is not None:
        REFUSALS[target, kind] += 1


# -- the catalog, read backwards ---------------------------------------------------------------------------------

_FORMATTER = string.Formatter()
_SURROGATES = re.compile("[\ud800-\udfff]")


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[str, str, str, Any]]:
    """(key, longest literal piece, all literal text, regex) of every pt-BR entry with some literal text: the
    regex matches what ``t(key, ...)`` renders whatever the values. RE2, so matching stays linear in the message
    however many placeholders the entry has (messages quote user text of any length)."""
    found = []
    for key, value in CATALOG[DEFAULT_LOCALE].items():
        pieces, regex = [], []
        try:
            parsed = list(_FORMATTER.parse(value))
        except ValueError:  # not a format string (a lone brace): ``t`` shows it as it is
            parsed = [(value, None, None, None)]
        for literal, field, _spec, _conv in parsed:
            pieces.append(literal)
            regex.append(re.escape(literal))
            if field is not None:
                regex.append("(?:.*?)")
        literal_text = "".join(pieces)
        if len(literal_text.strip(" :.,()'")) < 3:  # "{problem}" alone would match anything
            continue
        found.append((key, max(pieces, key=len), literal_text, re2.compile("(?s)" + "".join(regex))))
    # The most specific entry first: "erro no modelo: {detail}" must not claim what a longer entry explains.
    found.sort(key=lambda item: -len(item[2]))
    return found


@lru_cache(maxsize=4096)
def catalog_key(message: str) -> str | None:
    """The catalog key whose pt-BR text ``message`` is, or None."""
    message = _SURROGATES.sub("\ufffd", message)  # RE2 reads UTF-8; no catalog text holds a surrogate
    for key, piece, _literal, pattern in _patterns():
        if piece in message and pattern.fullmatch(message):
            return key
    return None


class Uncatalogued(AssertionError):
    """A refusal with no pt-BR catalog message: what the fuzz tests exist to find."""


def refusal_kind(exc: BaseException) -> str:
    """The catalogued kind of a refusal (see the module docstring); raises ``Uncatalogued`` (chained to ``exc``)
    for anything else."""
    if isinstance(exc, WorkbenchError):
        message = error_text(exc)
        if has_key(exc.key) and message.strip() and message != t("error.generic"):
            return exc.key
    elif isinstance(exc, ValidationError):
        return "failures.code.malformed"
    elif type(exc) is not ValueError and isinstance(exc, ValueError):  # the product's own ValueError classes
        key = catalog_key(str(exc))
        if key is not None:
            return key
    raise Uncatalogued(f"refusal without a catalogued pt-BR message: {type(exc).__name__}: {exc!r}"[:2000]) from exc


def refused(target: str, call: Callable[[], Any], *kinds: type[BaseException]) -> tuple[Any, str | None]:
    """Run ``call``: (its result, None), or (None, the catalogued kind) when it raises one of ``kinds``; counted
    under ``target``. Anything else it raises propagates, and an uncatalogued refusal fails."""
    try:
        result = call()
    except kinds as exc:
        kind = refusal_kind(exc)
        count(target, kind)
        return None, kind
    count(target)
    return result, None


def problem_kind(problem: Any) -> str:
    """A definition problem's kind, after checking it is catalogued (its code listed, its message a catalog text
    after the field path)."""
    from engine.core.definition import PROBLEM_CODES

    if problem.code not in PROBLEM_CODES or not problem.message.strip():
        raise Uncatalogued(f"problem {problem!r}")
    # field problems read "<field path>: <catalog text>"
    text = problem.message.removeprefix(f"{problem.field}: ") if problem.field else problem.message
    if catalog_key(problem.message) is None and catalog_key(text) is None:
        raise Uncatalogued(f"problem message not in the catalog: {problem.message!r}")
    return f"problem.{problem.code}"


# -- strategies ----------------------------------------------------------------------------------------------------

HOSTILE_CHARS = ["\x00", "\ud800", "\udfff", "\u202e", "\ufeff", "\u0301", "٥", "５", "\n", "\r", "\t", " ", "'",
                 '"', "\\", "<", ">", "&", "{", "}", "{{", "}}", "{%", "%}", "|", "%", "_", "@", ":", ".", "+", "-",
                 "😀", "ç", "ã", "İ", "ß", "ﬃ"]
"""Characters that broke something somewhere once: NUL and lone surrogates (PostgreSQL refuses them), direction
and joining marks, digits that are not ASCII, markup, template braces, LIKE wildcards, JID separators."""

hostile_text = st.lists(st.one_of(st.sampled_from(HOSTILE_CHARS), st.text(max_size=8)), max_size=12).map("".join)
"""Short text mixing hostile characters with anything Hypothesis draws."""
any_text = st.one_of(hostile_text, st.text(max_size=40), st.text(alphabet=st.characters(codec="utf-8"),
                                                                    max_size=300))
big_ints = st.one_of(st.integers(-2**31, 2**31), st.integers(-2**31, 2**31), st.integers(),
                     st.sampled_from([2**63, -2**63 - 1, 2**64, 10**20]))
numbers = st.one_of(big_ints, st.floats(allow_nan=False, allow_infinity=False), st.booleans())
scalars = st.one_of(st.none(), numbers, any_text)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(any_text, inner, max_size=4)),
                           max_leaves=12)
"""JSON values a file or a browser could hold (finite numbers: the reader refuses the rest first)."""


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a JSON value (the value itself first)."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of ``value`` with the part at ``path`` replaced by ``new`` (``_DROP``: removed)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = dict(value)
    else:
        out = list(value)
    inner = _replace(value[head], rest, new)
    if inner is _DROP:
        del out[head]
    else:
        out[head] = inner
    return out


_DROP = object()


@st.composite
def mutated(draw: st.DrawFn, value: Any, changes: int = 4) -> Any:
    """``value`` with up to ``changes`` of its parts replaced by random JSON or dropped: a well-formed value gone
    slightly wrong reaches deeper than random JSON. (A few draws per case, whatever the value's size: Hypothesis
    gives up on cases that draw too much.)"""
    for _ in range(draw(st.integers(0, changes))):
        paths = _paths(value)
        path = paths[draw(st.integers(0, len(paths) - 1))]
        value = _replace(value, path, _DROP if path and draw(st.booleans()) else draw(json_values))
    return value


@st.composite
def retexted(draw: st.DrawFn, value: Any, changes: int = 4) -> Any:
    """``value`` with up to ``changes`` of its texts (keys kept) replaced by hostile ones: the shape stays valid,
    so the texts reach what reads them (templates, patterns, names)."""
    for _ in range(draw(st.integers(1, changes))):
        paths = [path for path in _paths(value) if isinstance(_at(value, path), str)]
        if not paths:
            break
        value = _replace(value, paths[draw(st.integers(0, len(paths) - 1))], draw(any_text))
    return value


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


@st.composite
def some_fields(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]],
                hostile: dict[str, st.SearchStrategy[Any]], most: int = 2) -> dict[str, Any]:
    """A dict from ``base`` with up to ``most`` of its fields drawn from ``hostile`` instead (often none)."""
    value = draw(base)
    for name in draw(st.lists(st.sampled_from(sorted(hostile)), max_size=most, unique=True)):
        value[name] = draw(hostile[name])
    return value


def jinja_text() -> st.SearchStrategy[str]:
    """Template sources: pieces of Jinja syntax, names of the namespace and filters, with any text between."""
    pieces = st.sampled_from([
        "{{", "}}", "{%", "%}", "{#", "#}", " if ", " else ", " endif ", " for x in ", " endfor ", " set a = ",
        "contact.name", "contact.custom_data.x", "contact.tags", "vars.n", "vars", "last_reply", "trigger.message",
        "history", "funnel.name", "loop.index", "|", " upper", " default('z')", " join(',')", " length", " int",
        " replace('a','bb')", " truncate(3)", " title", "(", ")", "[", "]", "'", '"', ".", ",", "*", "**", "+",
        "~", "%", "//", "1", "9" * 30, "range(", "__class__", "self", "lipsum", "cycler", "namespace",
        " macro ", " include ", " raw ", " endraw ", "-", "\n",
    ])
    return st.lists(st.one_of(pieces, hostile_text), max_size=20).map("".join)


# -- the database after a run --------------------------------------------------------------------------------------

INVARIANTS = {
    "message without its conversation in its workspace": """
        SELECT count(*) FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id
        WHERE c.id IS NULL OR c.workspace_id <> m.workspace_id OR c.instance_id <> m.instance_id""",
    "conversation without its contact in its workspace": """
        SELECT count(*) FROM conversations c LEFT JOIN contacts k ON k.id = c.contact_id
        WHERE k.id IS NULL OR k.workspace_id <> c.workspace_id OR k.instance_id <> c.instance_id""",
    "contact of a number of another workspace": """
        SELECT count(*) FROM contacts k JOIN instances i ON i.id = k.instance_id
        WHERE i.workspace_id <> k.workspace_id""",
    "contact whose phone is not 1 to 32 ASCII digits": """
        SELECT count(*) FROM contacts WHERE phone !~ '^[0-9]{1,32}$'""",
    "conversation with more unread than inbound messages": """
        SELECT count(*) FROM conversations c WHERE c.unread_count < 0 OR c.unread_count > (
            SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in')""",
    "conversation whose last message time is none of its messages' times": """
        SELECT count(*) FROM conversations c WHERE c.last_message_at IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM messages m WHERE m.conversation_id = c.id
            AND c.last_message_at IN (m.wa_timestamp, m.created_at))""",
    "two messages with one WhatsApp id on a number": """
        SELECT count(*) FROM (SELECT 1 FROM messages WHERE wa_id IS NOT NULL
                              GROUP BY instance_id, wa_id HAVING count(*) > 1) d""",
    "published funnel without its version row": """
        SELECT count(*) FROM funnels f LEFT JOIN funnel_versions v ON v.id = f.published_version_id
        WHERE f.published_version_id IS NOT NULL AND (v.id IS NULL OR v.funnel_id <> f.id)""",
    "active funnel that was never published": """
        SELECT count(*) FROM funnels WHERE is_active AND published_version_id IS NULL""",
    "funnel versions not numbered 1..n": """
        SELECT count(*) FROM (SELECT funnel_id FROM funnel_versions GROUP BY funnel_id
                              HAVING max(version) <> count(*) OR min(version) <> 1) d""",
    "funnel draft without its {nodes, edges} lists": """
        SELECT count(*) FROM funnels WHERE jsonb_typeof(draft -> 'nodes') IS DISTINCT FROM 'array'
        OR jsonb_typeof(COALESCE(draft -> 'edges', '[]')) <> 'array'""",
    "run of another funnel's version, or of another contact's conversation": """
        SELECT count(*) FROM funnel_runs r JOIN funnel_versions v ON v.id = r.version_id
        JOIN conversations c ON c.id = r.conversation_id
        WHERE v.funnel_id <> r.funnel_id OR c.contact_id <> r.contact_id OR c.workspace_id <> r.workspace_id""",
    "run pointing at a node its version does not have": """
        SELECT count(*) FROM funnel_runs r JOIN funnel_versions v ON v.id = r.version_id
        WHERE r.current_node IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM jsonb_array_elements(v.definition -> 'nodes') n WHERE n ->> 'id' = r.current_node)""",
    "outbox row whose message is not outbound on its number": """
        SELECT count(*) FROM outbox o JOIN messages m ON m.id = o.message_id
        WHERE m.direction <> 'out' OR m.instance_id <> o.instance_id""",
    "contact tag of another workspace's tag": """
        SELECT count(*) FROM contact_tags ct JOIN contacts k ON k.id = ct.contact_id JOIN tags g ON g.id = ct.tag_id
        WHERE g.workspace_id <> k.workspace_id""",
    "contact import job that took more rows than its file has, or left its cursor short": """
        SELECT count(*) FROM contact_jobs WHERE status = 'done' AND kind = 'import'
        AND ((result ->> 'created')::int + (result ->> 'updated')::int + (result ->> 'skipped')::int
             + (result ->> 'failed')::int > total OR done <> total)""",
}
"""What must hold in the whole database after any run (each query counts the rows that break it)."""


def broken_invariants(connection: Any) -> dict[str, int]:
    """Every invariant of ``INVARIANTS`` that some row breaks, with how many rows."""
    found = {}
    for name, query in INVARIANTS.items():
        n = connection.execute(text(query)).scalar_one()
        if n:
            found[name] = n
    return found


def table_counts(connection: Any) -> dict[str, int]:
    """Rows per table (the dump's summary, for the bench's report)."""
    names = connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                    "AND tablename <> 'alembic_version' ORDER BY tablename")).scalars().all()
    return {name: connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one() for name in names}
