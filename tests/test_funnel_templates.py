"""The one template function: values, missing values, sandbox escapes, size limits, syntax errors. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.core.nodes.base import ExecutionContext, HistoryEntry
from engine.core.templates import MAX_OUTPUT_CHARS, MAX_RENDER_WORK, check_syntax, history_text, render


@pytest.fixture
def ctx() -> ExecutionContext:
    return ExecutionContext(
        now=datetime(2025, 5, 5, 12, tzinfo=UTC),
        variables={"email": "ana@example.com", "n": 3, "perfil": {"cidade": "Curitiba"}},
        contact={"name": "Ana", "phone": "5541999998888", "custom_data": {"email": "c@x.com", "items": "k"},
                 "tags": ["lead", "vip"]},
        trigger_message="quero vendas",
        funnel_name="Agendamento",
        history=[HistoryEntry("in", "oi"), HistoryEntry("out", "Olá! Como posso ajudar?"),
                 {"direction": "out", "text": "Sou a Bia", "author": "Bia"}],
    )


@pytest.mark.parametrize(("template", "expected"), [
    ("Olá {{contact.name}}!", "Olá Ana!"),
    ("{{contact.phone}}", "5541999998888"),
    ("{{contact.custom_data.email}}", "c@x.com"),
    ("{{ contact.custom_data.items }}", "k"),  # a key named like a dict method is still the key
    ("{{vars.email}} {{vars.n + 1}}", "ana@example.com 4"),
    ("{{vars.perfil.cidade}}", "Curitiba"),
    ("{{trigger.message}}", "quero vendas"),
    ("{{funnel.name}}", "Agendamento"),
    ("{{contact.tags}}", "lead, vip"),
    ("{{ contact.name | upper }} {{ contact.name.lower() }}", "ANA ana"),
    ("{% if 'vip' in contact.tags %}VIP{% else %}comum{% endif %}", "VIP"),
    ("{{ 'a' ~ 1 ~ 'b' }}", "a1b"),
    ("{% for t in contact.tags %}{{ loop.index }}:{{ t }} {% endfor %}", "1:lead 2:vip "),
    ("sem variáveis", "sem variáveis"),
    ("", ""),
])
def test_renders_values(ctx: ExecutionContext, template: str, expected: str) -> None:
    result = render(template, ctx)
    assert result.error is None
    assert result.text == expected
    assert result.missing == []


def test_history_renders_recent_messages(ctx: ExecutionContext) -> None:
    assert render("{{history}}", ctx).text == "Contato: oi\nBot: Olá! Como posso ajudar?\nBia: Sou a Bia"
    assert history_text([{"direction": "in", "text": f"m{i}"} for i in range(50)]).count("\n") == 19


def test_missing_values_render_empty_and_are_reported(ctx: ExecutionContext) -> None:
    result = render("Oi {{vars.nada}}|{{contact.custom_data.cpf}}|{{contact.custom_data.a.b}}|{{desconhecido}}", ctx)
    assert result.text == "Oi |||"
    assert result.error is None
    assert result.missing == ["vars.nada", "contact.custom_data.cpf", "contact.custom_data.a.b", "desconhecido"]


def test_none_values_count_as_missing() -> None:
    result = render("Olá {{contact.name}}!", {"contact": {"name": None}})
    assert (result.text, result.missing) == ("Olá !", ["contact.name"])


def test_tests_and_defaults_are_not_missing(ctx: ExecutionContext) -> None:
    result = render("{% if vars.nada %}x{% endif %}{{ vars.nada | default('amigo') }}", ctx)
    assert (result.text, result.missing) == ("amigo", [])


def test_missing_reported_once(ctx: ExecutionContext) -> None:
    assert render("{{vars.x}}{{vars.x}}", ctx).missing == ["vars.x"]


def test_accepts_plain_namespace_mapping() -> None:
    assert render("{{vars.a}}-{{contact.name}}", {"vars": {"a": 1}, "contact": {"name": "Bo"}}).text == "1-Bo"


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ contact.__class__ }}",
    "{{ contact['__class__'] }}",
    "{{ vars.n.__class__ }}",
    "{{ (1).to_bytes(10**9, 'big') }}",
    "{{ 'a'.center(10**9) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'x'.format_map(vars) }}",
    "{{ '%999999999s' % 'x' }}",
    "{{ lipsum(10**6) }}",
    "{{ self.__init__ }}",
    "{{ range.__self__ }}",
    "{{ config }}{{ request.application }}",
])
def test_sandbox_escapes_are_blocked(ctx: ExecutionContext, template: str) -> None:
    result = render(template, ctx)
    # Either refused outright or rendered as nothing: never Python internals.
    assert result.error is not None or result.text == ""
    assert "class" not in result.text and "module" not in result.text


def test_underscore_names_are_unreachable(ctx: ExecutionContext) -> None:
    result = render("{{ vars._secret }}", {"vars": {"_secret": "s3cr3t"}})
    assert result.text == ""


@pytest.mark.parametrize("template", [
    "{{ range(10**9) | list }}",
    "{{ 'a' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ 2 ** 100000 }}",
    "{% set a = 'x' * 60000 %}{{ a ~ a }}",
    "{% set a = 'x' * 60000 %}{{ a + a }}",
    "{{ ('x' * 60000) | replace('x', 'yy') }}",
    "{{ ['x' * 60000, 'y' * 60000] | join }}",
])
def test_expensive_expressions_are_bounded(ctx: ExecutionContext, template: str) -> None:
    result = render(template, ctx)
    assert result.error is not None
    assert result.text == ""


# 299 characters that rendered for about 23 s: every step squares a 3,000-bit number.
SQUARING = "{% set a = 3 ** 2000 %}" + "{% set a = a * a %}" * 14


@pytest.mark.parametrize("template", [
    SQUARING,
    "{{ (3 ** 2000) * (3 ** 2000) }}",
    "{% set a = 2 ** 4000 %}{{ (a * 2) * (a * 2) }}",
    "{% set a = ('9' * 4000) | int %}{{ a > 0 }}",  # int() of a long string: 13,000 bits
    "{% set a = 2 ** 4095 %}{{ a + a }}",
    "{% set a = 2 ** 4095 %}{{ a - (0 - a) }}",
])
def test_integers_stay_small(template: str) -> None:
    assert check_syntax(template) is None
    result = render(template, {})
    assert result.error is not None and "número grande demais" in result.error
    assert result.text == ""


HEAVY_TEMPLATES = [
    "{% set a = 3 %}" + "{% set a = a * a %}" * 11,  # the same shape, within 4,096 bits: fine
    "{% set l = (range(1000) | list) * 60 %}" + "{{ l | sort | length }}" * 40,  # about 20 s before
    "{% set l = (range(1000) | list) * 60 %}" + "{{ l | unique | list | length }}" * 40,  # about 5 s
    "{% set l = ['a'] * 60000 %}" + "{{ 'b' in l }}" * 200,  # about 2 s
    "{% set s = 'a ' * 30000 %}{% for w in s.split() %}{{ s.count('a') > 0 and '' }}{% endfor %}",  # about 13 s
    "{% for x in ['a'] * 60000 %}{% if x == 'b' %}{% endif %}{% if x == 'c' %}{% endif %}{% endfor %}",
    "{% set l = ['a'] * 60000 %}" + "{{ l[1:] | length }}" * 300,  # slices copy
    "{% set l = range(1000) %}" + "{% set l = l | select %}" * 300 + "{{ l | list | length }}",  # lazy filters
    "{% for i in range(1000) %}{% set s = 'x' * 60000 %}{{ s | upper | length > 0 and '' }}{% endfor %}",
    "{{ '" + "a " * 5000 + "'" + " | title" * 100 + " }}",  # constants: Jinja computed them in check_syntax
    "{% set l = ['a'] * 60000 %}{{ [l] * 1000 }}",  # a list holding one list many times
    "{% set l = ['a'] * 60000 %}{{ [l, l, l, l, l, l, l, l, l, l] | join }}",
]


@pytest.mark.parametrize("template", HEAVY_TEMPLATES[1:])
def test_render_work_is_bounded(template: str) -> None:
    assert check_syntax(template) is None
    result = render(template, {})
    assert result.error is not None and "trabalho demais" in result.error
    assert result.text == ""
    assert result.work <= MAX_RENDER_WORK


def test_work_is_counted_and_small_for_everyday_templates(ctx: ExecutionContext) -> None:
    greeting = render("Olá {{contact.name}}! {% for t in contact.tags %}{{ t | upper }} {% endfor %}", ctx)
    assert greeting.text == "Olá Ana! LEAD VIP "
    assert 0 < greeting.work < 200  # a thousandth of the budget
    assert render("Olá {{contact.name}}! {% for t in contact.tags %}{{ t | upper }} {% endfor %}", ctx).work \
        == greeting.work  # the same render costs the same
    assert render(HEAVY_TEMPLATES[0], {}).ok


def test_huge_output_is_capped(ctx: ExecutionContext) -> None:
    result = render("{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}", ctx)
    assert result.error is None
    assert result.truncated
    assert len(result.text) == MAX_OUTPUT_CHARS


@pytest.mark.parametrize("template", [
    "{% for i in range(10) %}{% for j in range(10) %}x{% endfor %}{% endfor %}",
    "{% macro m() %}x{% endmacro %}",
    "{% include 'x' %}",
    "{% for i in [1] recursive %}{{ loop([]) }}{% endfor %}",
    "x" * 20_001,
    "{{ " + "(" * 400 + "1" + ")" * 400 + " }}",  # raised RecursionError out of check_syntax and render
    "{{ " + "(" * 150 + "1" + ")" * 150 + " }}",  # too deep for Python's own parser
    "{{ 1" + " + 1" * 3000 + " }}",
    "{{ range(10)" + " | select" * 1500 + " | list }}",
])
def test_risky_constructs_are_refused_at_compile_time(template: str) -> None:
    assert check_syntax(template) is not None
    assert render(template, {}).error is not None


@pytest.mark.parametrize("template", ["{{", "{{ contact.name ", "{% if %}", "{% for %}", "{{ a | nofilter }}",
                                      "{% endif %}"])
def test_syntax_errors(template: str) -> None:
    problem = check_syntax(template)
    assert problem is not None
    result = render(template, {})
    assert result.error is not None and result.text == ""


def test_valid_syntax_is_none() -> None:
    assert check_syntax("Olá {{contact.name}}{% if vars.x %}!{% endif %}") is None
    assert check_syntax("") is None


def test_runtime_errors_are_results_not_exceptions(ctx: ExecutionContext) -> None:
    for template in ["{{ vars.n / 0 }}", "{{ 'a' + 1 }}", "{{ vars.nada + 1 }}", "{{ nada() }}"]:
        result = render(template, ctx)
        assert result.error is not None, template
        assert not result.ok
