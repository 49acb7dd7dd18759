"""Text matching for funnels: normalisation, keyword triggers, choice replies and picking a trigger.

Everything here is pure. Comparisons are case- and accent-insensitive ("Olá" == "ola"), because contacts
type on phones with and without accents and caps. Regular expressions come from funnel authors and run on
contact text, so they run on RE2 (``google-re2``), whose matching time grows linearly with the text and never
backtracks: ``(a+)+$`` costs the same as ``a+$``. On top of that the text is cut at ``MAX_MATCH_INPUT``
characters and a pattern may not compile to more than ``MAX_PATTERN_PROGRAM`` instructions, so one search
costs at most a few milliseconds whatever the pattern and the message. RE2 has no backreferences, lookaround
or atomic groups; ``regex_problem`` names what is missing in pt-BR.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol

import re2

from workbench.base.i18n import t

MAX_MATCH_INPUT = 2_000
"""Characters of a message (and of its normalised form) looked at by keyword, regex and choice matching."""
MAX_PATTERN_CHARS = 300
"""Longest regular expression an author may write."""
MAX_PATTERN_PROGRAM = 200
"""Largest RE2 program (instructions) a pattern may compile to. A search does at most about this much work per
character, so this and ``MAX_MATCH_INPUT`` bound its cost (``bench/guards.py``). A list of words needs about one
instruction per character: a longer one can be split into several keywords."""

_SPACES = re.compile(r"\s+")
_NUMBERED_REPLY = re.compile(r"^(?:op(?:cao|t|tion)?\.?\s*|n[o.]?\s*|#\s*)?(\d{1,3})\s*[.)\-:]?$")


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.never_capture = True  # only "is there a match" is asked: no submatch bookkeeping
    options.log_errors = False  # the author gets the problem in pt-BR; nothing goes to stderr
    options.max_mem = 1 << 20  # per compiled pattern (program and match cache); the cache below holds 128
    return options


_RE2_OPTIONS = _re2_options()

# RE2's error text (English, after the colon the offending piece) -> catalog key naming the feature it lacks.
# Anything else RE2 refuses (\q, a{2,1}, unbalanced brackets ...) is reported as invalid, with RE2's detail.
_UNSUPPORTED = (
    (re.compile(r"invalid escape sequence: \\[1-9]|invalid perl operator: \(\?P$"), "regex.feature.backreference"),
    (re.compile(r"invalid perl operator: \(\?[=!]$"), "regex.feature.lookahead"),
    (re.compile(r"invalid perl operator: \(\?<[=!]$"), "regex.feature.lookbehind"),
    (re.compile(r"invalid perl operator: \(\?>$"), "regex.feature.atomic"),
    (re.compile(r"invalid perl operator: \(\?\($"), "regex.feature.conditional"),
    (re.compile(r"invalid perl operator: \(\?#$"), "regex.feature.comment"),
    (re.compile(r"invalid perl operator: \(\?[aLux]"), "regex.feature.flag"),
    (re.compile(r"bad repetition operator: [*+?}]\+$"), "regex.feature.possessive"),
    (re.compile(r"invalid escape sequence: \\Z$"), "regex.feature.end_z"),
    (re.compile(r"invalid escape sequence: \\[uUN]$"), "regex.feature.unicode_escape"),
)
# A counted repeat past RE2's 1000 (alone or nested: (a{100}){100}); {2,1} is malformed instead.
_REPEAT_SIZE = re.compile(r"^invalid repetition size: \{(\d+)(?:,(\d*))?\}$")


def normalize(text: str | None) -> str:
    """Casefold, strip accents and collapse whitespace: ``"  Olá,\\tMundo "`` -> ``"ola, mundo"``.

    Accents go via NFKD decomposition minus combining marks, which also turns keycap emoji ("1️⃣") and
    full-width digits into plain digits.
    """
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.category(ch).startswith("M"))
    return _SPACES.sub(" ", stripped).strip()


@lru_cache(maxsize=256)
def _normalised(sample: str) -> str:
    """``normalize`` of a text already cut at ``MAX_MATCH_INPUT``, cut again (one ligature may become 18 letters).

    Cached: every trigger of every funnel reads the same message, and a hostile one (2,000 ligatures) takes
    about 10 ms to normalise. Inputs and results are bounded, so the cache is too.
    """
    return normalize(sample)[:MAX_MATCH_INPUT]


@lru_cache(maxsize=256)
def _words(text: str | None) -> tuple[str, ...]:
    """Normalised text split into words, punctuation dropped ("Vendas!!" -> ("vendas",)); cached like
    ``_normalised``."""
    cleaned = "".join(ch if ch.isalnum() else " " for ch in _normalised((text or "")[:MAX_MATCH_INPUT]))
    return tuple(cleaned.split())


def regex_problem(pattern: str) -> str | None:
    """Return a pt-BR reason why ``pattern`` cannot be used, or None when RE2 runs it within the bounds."""
    if not pattern:
        return t("regex.empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        return t("regex.too_long", max=MAX_PATTERN_CHARS)
    return _compile(pattern)[1]


def pattern_matcher(pattern: str) -> Any:
    """The compiled RE2 matcher (case-insensitive) of a usable pattern, or None when ``regex_problem`` refuses it."""
    if not pattern or len(pattern) > MAX_PATTERN_CHARS:
        return None
    return _compile(pattern)[0]


@lru_cache(maxsize=128)
def _compile(pattern: str) -> tuple[Any, str | None]:
    """(matcher, None) or (None, pt-BR problem); ``re2`` ships no type hints, hence ``Any``."""
    try:
        matcher = re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        return None, _re2_problem(exc)
    if max(matcher.programsize, matcher.reverseprogramsize) > MAX_PATTERN_PROGRAM:
        return None, t("regex.too_complex")
    return matcher, None


def _re2_problem(exc: re2.error) -> str:
    detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    repeat = _REPEAT_SIZE.match(detail)
    if detail.startswith("pattern too large") or repeat and not (repeat[2] and int(repeat[2]) < int(repeat[1])):
        return t("regex.too_complex")
    for shape, key in _UNSUPPORTED:
        if shape.search(detail):
            return t("regex.unsupported", feature=t(key))
    return t("regex.invalid", detail=detail)


def regex_search(pattern: str, text: str | None) -> bool:
    """Search ``pattern`` case-insensitively in the text as typed and in its normalised form.

    Trying both makes ``ol[aá]`` and ``ola`` alike match "Olá". Both are cut at ``MAX_MATCH_INPUT`` characters
    (normalising can lengthen a text: one ligature may become 18 letters). An unusable pattern never matches
    (the validator reports it before a funnel is published).
    """
    matcher = pattern_matcher(pattern)
    if matcher is None or text is None:
        return False
    sample = text[:MAX_MATCH_INPUT]
    if matcher.search(sample) is not None:
        return True
    normalised = _normalised(sample)
    return normalised != sample and matcher.search(normalised) is not None


KeywordMode = Literal["contains", "exact", "regex"]


def match_keyword(text: str | None, words: Iterable[str], mode: KeywordMode) -> str | None:
    """Return the first keyword (as configured) that matches ``text``, or None.

    - ``exact``: the whole message equals the keyword, ignoring case, accents and punctuation
      ("Vendas!" matches "vendas").
    - ``contains``: the keyword appears as whole words ("quero vendas" matches "vendas"; "oito" does not
      match "oi"); multi-word keywords must appear in sequence.
    - ``regex``: ``regex_search``.
    """
    if not text:
        return None
    if mode == "regex":
        return next((w for w in words if regex_search(w, text)), None)
    message = _words(text)
    for word in words:
        wanted = _words(word)
        if not wanted:
            continue
        if mode == "exact" and message == wanted:
            return word
        if mode == "contains" and _contains_run(message, wanted):
            return word
    return None


def _contains_run(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    first = needle[0]
    return any(word == first and haystack[i:i + n] == needle for i, word in enumerate(haystack[:len(haystack) - n + 1]))


def match_choice(reply: str | None, labels: Sequence[str], keys: Sequence[str] | None = None) -> int | None:
    """Return the index of the option a reply picks, or None.

    Accepted, in order: the option's number as shown ("2", "2.", "opção 2", "2️⃣"); the label or key typed
    in full ("suporte", "Suporte!"); a label appearing as whole words in a longer reply ("quero suporte"),
    only when exactly one label does. Poll votes arrive as the voted label, so they match the same way.
    """
    if not reply:
        return None
    text = _normalised(reply[:MAX_MATCH_INPUT])
    numbered = _NUMBERED_REPLY.match(text)
    if numbered:
        index = int(numbered.group(1)) - 1
        if 0 <= index < len(labels):
            return index
        # out of range: maybe the labels themselves are numbers ("10", "20"); try them as text below
    words = _words(text)
    candidates = [list(labels)] + ([list(keys)] if keys else [])
    for names in candidates:
        for i, name in enumerate(names):
            if _words(name) and _words(name) == words:
                return i
    inside = [i for i, label in enumerate(labels) if _words(label) and _contains_run(words, _words(label))]
    return inside[0] if len(inside) == 1 else None


# -- entry link codes -------------------------------------------------------------------------------------

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
"""Letters and digits of an entry link's code: none that read alike (0/O, 1/I/L), so a person can type it."""
CODE_LENGTH = 6
CODE_MARKER = "ref"
"""The word put before a code in the pre-filled message ("… (ref K7MP3Q)"); stripped with the code."""
_CODE_WORD = re.compile(rf"^[{CODE_ALPHABET.lower()}]{{{CODE_LENGTH}}}$")


def looks_like_code(word: str) -> bool:
    """Whether a (normalised, lower-case) word has a code's shape: six letters and digits of ``CODE_ALPHABET``,
    with at least one of each, so ordinary words ("amanha") never qualify."""
    return bool(_CODE_WORD.match(word)) and any(c.isdigit() for c in word) and any(c.isalpha() for c in word)


def entry_codes_in(text: str | None) -> list[str]:
    """The code-shaped words of a message, upper-case, in order and without repeats (the caller keeps those that
    are the workspace's codes). Case, accents and punctuation around them do not matter."""
    found: list[str] = []
    for word in _words(text):
        code = word.upper()
        if looks_like_code(word) and code not in found:
            found.append(code)
    return found


def strip_entry_codes(text: str | None, codes: Iterable[str]) -> str:
    """``text`` without the given codes (whole words, any case) nor the ``ref`` marker or ``#`` just before them,
    so keyword triggers see only what the contact wrote ("Quero a promo (ref K7MP3Q)" -> "Quero a promo ( )")."""
    if not text:
        return text or ""
    wanted = [c for c in codes if looks_like_code(c.lower())]
    if not wanted:
        return text
    pattern = re.compile(rf"(?:\b{CODE_MARKER}\b\s*[:.#-]?\s*)?#?\b(?:{'|'.join(map(re.escape, wanted))})\b",
                         re.IGNORECASE)
    return _SPACES.sub(" ", pattern.sub(" ", text[:MAX_MATCH_INPUT])).strip()


# -- picking the trigger that starts a funnel -------------------------------------------------------------

class TriggerConfig(Protocol):
    """What ``pick_trigger`` reads from a trigger node's ``data`` (``engine.core.nodes.trigger.TriggerData``)."""

    kind: str
    mode: str
    words: list[str]
    tag: str | None
    priority: int
    restart_running: bool
    instance_ids: list[int] | None
    entry_link_ids: list[int] | None


@dataclass(frozen=True)
class TriggerCandidate:
    """One active funnel's start node, as the runtime feeds it to ``pick_trigger``.

    Attributes:
        funnel_id: the funnel (its published version is what would start).
        node_id: the trigger node's id in that version.
        config: the trigger node's ``data`` (``TriggerData``).
    """

    funnel_id: Any
    node_id: str
    config: TriggerConfig


@dataclass(frozen=True)
class TriggerEvent:
    """What happened, from the runtime's point of view.

    Attributes:
        kind: ``message`` (a contact wrote), ``tag_added`` (a tag was put on the contact) or ``manual``
            (an agent started a funnel by hand).
        text: the message text (``message`` events).
        tag: the tag name (``tag_added`` events).
        funnel_id: the funnel asked for (``manual`` events).
        instance_id: the WhatsApp number the event came through (for triggers scoped to numbers).
        is_new_contact: this is the contact's first message ever (``first_message`` triggers).
        run_active: the conversation already has a live run (active, waiting or paused).
        entry_link_id: the entry link whose code the contact's first message carried (``entry_link`` triggers);
            ``text`` then comes without the code.
    """

    kind: Literal["message", "tag_added", "manual"]
    text: str | None = None
    tag: str | None = None
    funnel_id: Any = None
    instance_id: int | None = None
    is_new_contact: bool = False
    run_active: bool = False
    entry_link_id: int | None = None


@dataclass(frozen=True, slots=True)
class TriggerMatch:
    """A candidate that fires for an event, and why (for the funnel event log).

    Attributes:
        candidate: the funnel and trigger node that would start.
        reason: why it fired, in pt-BR ("palavra-chave 'vendas'", "primeira mensagem", ...).
        keyword: the configured keyword that matched (keyword triggers only).
    """

    candidate: TriggerCandidate
    reason: str
    keyword: str | None = None

    def rank(self) -> tuple[int, int, int]:
        """How strongly it should win: priority, then the kind's specificity, then the keyword's length."""
        cfg = self.candidate.config
        specificity = _SPECIFICITY.get((cfg.kind, cfg.mode if cfg.kind == "keyword" else ""), 0)
        return cfg.priority, specificity, len(normalize(self.keyword)) if self.keyword else 0


# Higher = more specific; decides ties between equal priorities. A keyword someone typed on purpose
# beats "first message", which beats "any message".
_SPECIFICITY = {("keyword", "exact"): 60, ("keyword", "regex"): 50, ("keyword", "contains"): 40,
                ("manual", ""): 70, ("tag_added", ""): 70, ("entry_link", ""): 65, ("first_message", ""): 20,
                ("any_message", ""): 10}


def trigger_matches(candidate: TriggerCandidate, event: TriggerEvent) -> TriggerMatch | None:
    """The match when one trigger fires for ``event``, else None (priority is ``pick_trigger``'s business)."""
    config = candidate.config
    if config.instance_ids and event.instance_id not in config.instance_ids:
        return None
    if event.run_active and not config.restart_running:
        return None
    if event.kind == "message":
        if config.kind == "entry_link":
            links = getattr(config, "entry_link_ids", None)
            if event.entry_link_id is None or (links and event.entry_link_id not in links):
                return None
            return TriggerMatch(candidate, t("trigger.reason.entry_link"))
        if config.kind == "first_message" and event.is_new_contact:
            return TriggerMatch(candidate, t("trigger.reason.first_message"))
        if config.kind == "any_message":
            return TriggerMatch(candidate, t("trigger.reason.any_message"))
        if config.kind == "keyword":
            keyword = match_keyword(event.text, config.words, config.mode)  # type: ignore[arg-type]
            if keyword is None:
                return None
            return TriggerMatch(candidate, t("trigger.reason.keyword", keyword=keyword), keyword)
        return None
    if event.kind == "tag_added" and config.kind == "tag_added":
        if normalize(config.tag) == normalize(event.tag):
            return TriggerMatch(candidate, t("trigger.reason.tag_added", tag=config.tag))
        return None
    if event.kind == "manual" and config.kind == "manual":
        return TriggerMatch(candidate, t("trigger.reason.manual"))
    return None


def pick_trigger(triggers: Iterable[TriggerCandidate], event: TriggerEvent) -> TriggerMatch | None:
    """Pick the trigger that should start a funnel for ``event``, or None.

    Among the candidates that fire (``trigger_matches``), the winner has the highest ``priority``; ties go
    to the more specific kind (manual/tag > exact keyword > regex > contains > first message > any
    message), then to the longer keyword, then to the earlier candidate — so the runtime should pass
    candidates in a stable order (e.g. by funnel id). For ``manual`` events only candidates of
    ``event.funnel_id`` are considered.

    While a run is live (``event.run_active``) only triggers with ``restart_running`` fire: they interrupt
    the live run; the others leave the message to it.
    """
    best: TriggerMatch | None = None
    for candidate in triggers:
        if event.kind == "manual" and candidate.funnel_id != event.funnel_id:
            continue
        match = trigger_matches(candidate, event)
        if match is not None and (best is None or match.rank() > best.rank()):  # a tie keeps the earlier one
            best = match
    return best
