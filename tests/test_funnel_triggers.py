"""Text normalisation, keyword/regex/choice matching and picking the trigger that starts a funnel. Pure."""

from __future__ import annotations

import time
import unicodedata

import pytest

from engine.core.matching import (
    MAX_MATCH_INPUT,
    TriggerCandidate,
    TriggerEvent,
    match_choice,
    match_keyword,
    normalize,
    pick_trigger,
    regex_problem,
    regex_search,
)
from engine.core.nodes.trigger import TriggerData


@pytest.mark.parametrize(("raw", "expected"), [
    ("Olá", "ola"),
    ("  AÇÃO \t e\nReação ", "acao e reacao"),
    ("ÉÈÊË", "eeee"),
    ("Straße", "strasse"),
    ("1️⃣", "1"),
    ("", ""),
    (None, ""),
])
def test_normalize(raw: str | None, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(("text", "words", "mode", "expected"), [
    ("Olá", ["ola"], "exact", "ola"),
    ("ola", ["Olá"], "exact", "Olá"),
    ("OLÁ!!!", ["olá"], "exact", "olá"),
    ("olá, tudo bem?", ["olá"], "exact", None),
    ("olá, tudo bem?", ["olá"], "contains", "olá"),
    ("Quero falar com VENDAS agora", ["vendas"], "contains", "vendas"),
    ("oito", ["oi"], "contains", None),  # whole words only
    ("quero um orçamento já", ["orcamento ja"], "contains", "orcamento ja"),
    ("quero ja um orcamento", ["orcamento ja"], "contains", None),
    ("suporte", ["vendas", "suporte"], "contains", "suporte"),
    ("pedido 12345", [r"pedido\s+\d{5}"], "regex", r"pedido\s+\d{5}"),
    ("Olá", ["^ola$"], "regex", "^ola$"),  # regex also runs on the normalised text
    ("PROMO2025", ["promo\\d+"], "regex", "promo\\d+"),
    ("nada", ["promo\\d+"], "regex", None),
    ("", ["vendas"], "contains", None),
    (None, ["vendas"], "exact", None),
])
def test_match_keyword(text: str | None, words: list[str], mode: str, expected: str | None) -> None:
    assert match_keyword(text, words, mode) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("pattern", ["(", "[a-", "a{2,1}", "", "a" * 400, r"(a)\1", "a(?=a)", "(?<!b)a", "a{1001}",
                                     r"(?:\pL\pN){5}"])
def test_regex_problems(pattern: str) -> None:
    assert regex_problem(pattern) is not None
    assert regex_search(pattern, "aaaa") is False


@pytest.mark.parametrize("pattern", [r"^\d{5}-?\d{3}$", r"(\d{2})+", "ol[aá]", "vendas|comercial", "(a+)+$",
                                     r"(\w+\s?)*$", "(x*){2,}", r"(?i)^PRE[CÇ]O\b"])
def test_regex_ok(pattern: str) -> None:
    assert regex_problem(pattern) is None


@pytest.mark.parametrize(("pattern", "named"), [
    (r"(a)\1", r"\1"), ("(?P<x>a)(?P=x)", "(?P=nome)"), ("a(?=b)", "(?=…)"), ("a(?!b)", "(?!…)"),
    ("(?<=a)b", "(?<=…)"), ("(?<!a)b", "(?<!…)"), ("(?>a)", "(?>…)"), ("a++", "a++"), (r"fim\Z", r"\z"),
])
def test_features_the_linear_engine_lacks_are_named_in_portuguese(pattern: str, named: str,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    problem = regex_problem(pattern)
    assert problem is not None and "não é suportad" in problem and named in problem
    assert "invalid" not in problem  # the engine's English detail is not the message
    assert capfd.readouterr().err == ""  # the engine's own logging stays quiet


def test_too_complex_patterns_are_refused_in_portuguese() -> None:
    for pattern in ["a{1001}", r"(?:\pL\pN){5}", ".{999}.{999}x"]:
        assert "complexa demais" in (regex_problem(pattern) or ""), pattern


def test_regex_looks_at_a_bounded_normalised_text() -> None:
    # One ligature decomposes to 18 letters: the normalised text is cut like the message itself.
    ligatures = "\ufdfa" * MAX_MATCH_INPUT
    assert normalize(ligatures).endswith("سلم")
    assert regex_search("سلم$", ligatures) is False
    assert regex_search("^صلى", ligatures) is True


def test_regex_input_is_capped() -> None:
    # A match only past the cap is not seen: bounded work on hostile input.
    text = "a" * (MAX_MATCH_INPUT + 10) + "ZZZ"
    start = time.perf_counter()
    assert regex_search("ZZZ", text) is False
    assert time.perf_counter() - start < 1


LABELS = ["Vendas", "Suporte técnico", "Financeiro"]


@pytest.mark.parametrize(("reply", "expected"), [
    ("1", 0), ("2", 1), (" 3. ", 2), ("3)", 2), ("opção 2", 1), ("Opcao 1", 0), ("nº 3", 2), ("2️⃣", 1),
    ("vendas", 0), ("VENDAS!", 0), ("suporte tecnico", 1), ("Suporte Técnico", 1),
    ("quero falar com o financeiro por favor", 2),
    ("4", None), ("0", None), ("talvez", None), ("", None), (None, None),
    ("vendas e financeiro", None),  # two labels inside: ambiguous
])
def test_match_choice(reply: str | None, expected: int | None) -> None:
    assert match_choice(reply, LABELS) == expected


def test_match_choice_by_key_and_numeric_labels() -> None:
    assert match_choice("sup", ["Vendas", "Suporte"], ["ven", "sup"]) == 1
    assert match_choice("20", ["10", "20"]) == 1  # out-of-range number falls back to the labels


def _candidate(funnel_id: int, **data: object) -> TriggerCandidate:
    return TriggerCandidate(funnel_id, f"t{funnel_id}", TriggerData(**data))  # type: ignore[arg-type]


def test_pick_keyword_vs_first_message_vs_any() -> None:
    welcome = _candidate(1, kind="first_message")
    sales = _candidate(2, kind="keyword", words=["vendas"])
    fallback = _candidate(3, kind="any_message")
    triggers = [welcome, sales, fallback]
    new_sales = pick_trigger(triggers, TriggerEvent("message", text="Vendas", is_new_contact=True))
    assert new_sales is not None and new_sales.candidate is sales and new_sales.keyword == "vendas"
    new_hello = pick_trigger(triggers, TriggerEvent("message", text="oi", is_new_contact=True))
    assert new_hello is not None and new_hello.candidate is welcome
    known_hello = pick_trigger(triggers, TriggerEvent("message", text="oi"))
    assert known_hello is not None and known_hello.candidate is fallback
    assert pick_trigger([welcome, sales], TriggerEvent("message", text="oi")) is None


def test_priority_beats_specificity() -> None:
    welcome = _candidate(1, kind="first_message", priority=50)
    sales = _candidate(2, kind="keyword", words=["vendas"])
    match = pick_trigger([sales, welcome], TriggerEvent("message", text="vendas", is_new_contact=True))
    assert match is not None and match.candidate is welcome


def test_ties_go_to_exact_then_longer_keyword_then_order() -> None:
    contains = _candidate(1, kind="keyword", words=["plano"])
    exact = _candidate(2, kind="keyword", mode="exact", words=["plano"])
    assert pick_trigger([contains, exact], TriggerEvent("message", text="Plano")).candidate is exact  # type: ignore[union-attr]
    short = _candidate(3, kind="keyword", words=["plano"])
    long = _candidate(4, kind="keyword", words=["plano empresarial"])
    event = TriggerEvent("message", text="quero o plano empresarial")
    assert pick_trigger([short, long], event).candidate is long  # type: ignore[union-attr]
    first, second = _candidate(5, kind="keyword", words=["x"]), _candidate(6, kind="keyword", words=["x"])
    assert pick_trigger([first, second], TriggerEvent("message", text="x")).candidate is first  # type: ignore[union-attr]
    assert pick_trigger([second, first], TriggerEvent("message", text="x")).candidate is second  # type: ignore[union-attr]


def test_running_conversations_only_restartable_triggers() -> None:
    polite = _candidate(1, kind="keyword", words=["menu"], priority=100)
    restart = _candidate(2, kind="keyword", words=["menu"], restart_running=True)
    event = TriggerEvent("message", text="menu", run_active=True)
    assert pick_trigger([polite, restart], event).candidate is restart  # type: ignore[union-attr]
    assert pick_trigger([polite], event) is None


def test_instance_scope() -> None:
    scoped = _candidate(1, kind="any_message", instance_ids=[7])
    assert pick_trigger([scoped], TriggerEvent("message", text="oi", instance_id=7)) is not None
    assert pick_trigger([scoped], TriggerEvent("message", text="oi", instance_id=8)) is None
    unscoped = _candidate(2, kind="any_message", instance_ids=[])
    assert pick_trigger([unscoped], TriggerEvent("message", text="oi", instance_id=8)) is not None


def test_tag_and_manual_events() -> None:
    tagged = _candidate(1, kind="tag_added", tag="Lead Quente")
    manual = _candidate(2, kind="manual")
    other_manual = _candidate(3, kind="manual")
    keyword = _candidate(4, kind="keyword", words=["lead"])
    triggers = [tagged, manual, other_manual, keyword]
    assert pick_trigger(triggers, TriggerEvent("tag_added", tag="lead quente")).candidate is tagged  # type: ignore[union-attr]
    assert pick_trigger(triggers, TriggerEvent("tag_added", tag="frio")) is None
    assert pick_trigger(triggers, TriggerEvent("manual", funnel_id=3)).candidate is other_manual  # type: ignore[union-attr]
    assert pick_trigger(triggers, TriggerEvent("message", text="lead quente")).candidate is keyword  # type: ignore[union-attr]


def test_regex_trigger_accent_insensitive() -> None:
    regex = _candidate(1, kind="keyword", mode="regex", words=[r"^or[cç]amento\b"])
    assert pick_trigger([regex], TriggerEvent("message", text="Orçamento, por favor")) is not None
    assert pick_trigger([regex], TriggerEvent("message", text="um orçamento")) is None


def test_a_hostile_message_is_normalised_once_for_every_trigger(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each of these characters decomposes into 18: normalising the message is the costly part, so it happens once
    # per message, not once per keyword of every funnel.
    hostile = "\ufdfa" * (MAX_MATCH_INPUT - 5) + "único"  # not normalised by an earlier test
    real = unicodedata.normalize
    hostile_inputs: list[str] = []

    def spy(form: str, text: str) -> str:
        if "\ufdfa" in text:
            hostile_inputs.append(text)
        return real(form, text)

    monkeypatch.setattr(unicodedata, "normalize", spy)
    triggers = [_candidate(i, kind="keyword", mode=mode, words=[f"palavra {i}", r"\bvendas", "(a+)+$"])
                for i, mode in enumerate(["regex", "contains", "exact"] * 10)]
    assert pick_trigger(triggers, TriggerEvent("message", text=hostile)) is None
    assert match_choice(hostile, ["Vendas", "Suporte"]) is None
    assert len(hostile_inputs) == 1
