"""The Contatos list: search, each filter operator and their combinations, sorting, keyset pages, scope, segments."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tests.contact_rows import make_contact, make_field, make_run
from tests.factories import make_actor, make_instance, make_team, make_workspace
from workbench.base.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from workbench.base.i18n import error_text
from workbench.services import contact_list
from workbench.services.contact_list import list_contacts
from workbench.store.db import session_scope
from workbench.store.models import Segment


def names(actor, flt=None, **kw) -> list[str]:
    return [row["display_name"] for row in list_contacts(actor, flt, limit=500, **kw)["rows"]]


@pytest.fixture
def shop(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    return ws, inst, make_actor(ws)


def test_rows_carry_tags_responsible_number_last_message_and_funnel(shop):
    ws, inst, admin = shop
    agent = make_actor(ws, "agent")
    team = make_team(ws, "Vendas")
    at = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    ana = make_contact(ws, inst, "Ana", tags=("vip", "Lead"), agent_id=agent.user_id, last_message_at=at,
                       email="ana@x.com")
    make_contact(ws, inst, "Bruno", team_id=team)
    make_contact(ws, inst, None, push_name="Zap Carla", conversation=False)
    make_run(ws, ana, "Boas-vindas", "waiting")
    rows = list_contacts(admin)["rows"]
    assert [r["display_name"] for r in rows] == ["Ana", "Bruno", "Zap Carla"]
    first = rows[0]
    assert first["tags"] == ["Lead", "vip"]
    assert first["responsible"] == agent.name and first["instance"] == "Comercial"
    assert first["last_message_at"] == at and first["funnel"] == "Boas-vindas" and first["email"] == "ana@x.com"
    assert rows[1]["responsible"] == "Vendas" and rows[1]["funnel"] is None
    assert rows[2]["tags"] == [] and rows[2]["responsible"] is None  # no conversation at all


@pytest.mark.parametrize("typed", ["+55 (11) 98765-4321", "5511987654321", "98765-4321", "(11) 98765"])
def test_phone_search_ignores_formatting(shop, typed):
    ws, inst, admin = shop
    make_contact(ws, inst, "Ana", phone="5511987654321")
    make_contact(ws, inst, "Bia", phone="5521912345678")
    assert names(admin, {"search": typed}) == ["Ana"]


def test_search_by_name_email_company_and_field_value_with_wildcards_literal(shop):
    ws, inst, admin = shop
    make_contact(ws, inst, "Maria Silva", email="maria@loja.com")
    make_contact(ws, inst, "João", custom={"cidade": "Campinas", "plano": "100%"})
    make_contact(ws, inst, None, push_name="Zé do Sítio")
    make_contact(ws, inst, "Pedro", custom={"campinas": "chave, não valor"})
    assert names(admin, {"search": "silva"}) == ["Maria Silva"]
    assert names(admin, {"search": "@loja.com"}) == ["Maria Silva"]
    assert names(admin, {"search": "campinas"}) == ["João"]  # a key alone does not match
    assert names(admin, {"search": "sítio"}) == ["Zé do Sítio"]
    assert names(admin, {"search": "ZE DO SITIO"}) == ["Zé do Sítio"]  # case and accents ignored
    assert names(admin, {"search": "joão"}) == names(admin, {"search": "joao"}) == ["João"]
    assert names(admin, {"search": "100%"}) == ["João"]
    assert names(admin, {"search": "%"}) == ["João"]  # % is literal, not "anything"
    assert names(admin, {"search": "_"}) == []


def test_tags_any_all_none(shop):
    ws, inst, admin = shop
    make_contact(ws, inst, "A", tags=("vip", "lead"))
    make_contact(ws, inst, "B", tags=("vip",))
    make_contact(ws, inst, "C", tags=("lead",))
    make_contact(ws, inst, "D")
    assert names(admin, {"tags_any": ["VIP", "lead"]}) == ["A", "B", "C"]
    assert names(admin, {"tags_all": ["vip", "Lead"]}) == ["A"]
    assert names(admin, {"tags_none": ["vip"]}) == ["C", "D"]
    assert names(admin, {"tags_all": ["vip", "nunca-usada"]}) == []
    assert names(admin, {"tags_any": ["vip"], "tags_none": ["lead"]}) == ["B"]


def test_field_conditions_typed_by_definitions(shop):
    ws, inst, admin = shop
    make_field(ws, "idade", "number")
    make_field(ws, "nascimento", "date")
    make_field(ws, "cliente", "boolean")
    make_contact(ws, inst, "A", custom={"idade": "30", "nascimento": "1990-05-01", "cidade": "São Paulo",
                                        "cliente": "sim"})
    make_contact(ws, inst, "B", custom={"idade": "9", "nascimento": "15/03/2001", "cidade": "Santos"})
    make_contact(ws, inst, "C", custom={"idade": "trinta", "nascimento": "31/02/xx", "cliente": "não"})
    make_contact(ws, inst, "D")

    def by(key, op, value=None):
        return names(admin, {"fields": [{"key": key, "op": op, "value": value}]})

    assert by("idade", "gt", "10") == ["A"]  # numeric, not text ("9" > "10" as text)
    assert by("idade", "lt", "10,5") == ["B"]
    assert by("idade", "eq", "30") == ["A"]
    assert by("nascimento", "gt", "01/01/2000") == ["B"]
    assert by("nascimento", "lt", "2000-01-01") == ["A"]
    assert by("nascimento", "eq", "15/03/2001") == ["B"]
    assert by("cidade", "contains", "são") == ["A"]  # free-form key: text
    assert by("cidade", "eq", "santos") == ["B"]
    assert by("cidade", "empty") == ["C", "D"]
    assert by("cidade", "not_empty") == ["A", "B"]
    assert by("cliente", "eq", "sim") == ["A"]
    assert by("cliente", "eq", "não") == ["C"]
    # two conditions combine
    assert names(admin, {"fields": [{"key": "idade", "op": "not_empty"},
                                    {"key": "cidade", "op": "contains", "value": "s"}]}) == ["A", "B"]
    with pytest.raises(InvalidInput) as wrong:
        by("cidade", "gt", "5")
    assert error_text(wrong.value).startswith("Essa condição não vale")
    with pytest.raises(InvalidInput):
        by("idade", "gt", "dez")
    with pytest.raises(InvalidInput):
        by("nascimento", "gt", "ontem")
    with pytest.raises(InvalidInput):
        names(admin, {"fields": [{"key": "1; drop", "op": "eq", "value": "x"}]})


def test_responsible_number_dates_and_funnel(shop):
    ws, inst, admin = shop
    other_inst = make_instance(ws, "Suporte")
    agent = make_actor(ws, "agent")
    team = make_team(ws, "Vendas")
    old = datetime(2025, 1, 10, 12, tzinfo=UTC)
    a = make_contact(ws, inst, "A", agent_id=agent.user_id, created_at=old,
                     last_message_at=datetime(2026, 11, 1, 2, tzinfo=UTC))  # 31/10 23h in São Paulo
    b = make_contact(ws, other_inst, "B", team_id=team, last_message_at=datetime(2026, 11, 2, 12, tzinfo=UTC))
    make_contact(ws, inst, "C")
    assert names(admin, {"agent_id": agent.user_id}) == ["A"]
    assert names(admin, {"team_id": team}) == ["B"]
    assert names(admin, {"unassigned": True}) == ["C"]
    assert names(admin, {"instance_id": other_inst}) == ["B"]
    assert names(admin, {"created_to": "2025-12-31"}) == ["A"]
    assert names(admin, {"created_from": "2026-01-01"}) == ["B", "C"]
    assert names(admin, {"last_message_from": "2026-11-01"}) == ["B"]  # days in the workspace's zone
    assert names(admin, {"last_message_to": "2026-10-31"}) == ["A"]
    funnel = make_run(ws, a, "Agenda", "waiting")
    make_run(ws, b, "Agenda", "completed", funnel_id=funnel)
    assert names(admin, {"funnel_id": funnel, "funnel_state": "in_now"}) == ["A"]
    assert names(admin, {"funnel_id": funnel, "funnel_state": "completed"}) == ["B"]
    assert names(admin, {"funnel_id": funnel, "funnel_state": "never"}) == ["C"]
    assert names(admin, {"funnel_id": funnel, "instance_id": inst, "created_from": date(2026, 1, 1),
                         "funnel_state": "never"}) == ["C"]


def test_sorting_and_keyset_pages_both_ways(shop):
    ws, inst, admin = shop
    for i in range(7):
        make_contact(ws, inst, f"Pessoa {i}", phone=f"551190000000{9 - i}",
                     last_message_at=datetime(2026, 11, 1 + i, tzinfo=UTC) if i % 2 else None)
    make_contact(ws, inst, "pessoa 3", phone="5511900000099")  # same name ignoring case: the id breaks the tie
    make_contact(ws, inst, "Sem conversa", phone="5511900000098", conversation=False)
    make_contact(ws, inst, "Também sem", phone="5511900000097", conversation=False)
    agent = make_actor(ws, "agent")
    for actor, size in ((admin, 10), (agent, 8)):
        for sort in contact_list.SORTS:
            for descending in (False, True):
                whole = [r["id"] for r in list_contacts(actor, sort=sort, descending=descending, limit=100)["rows"]]
                walked, after = [], None
                while True:
                    page = list_contacts(actor, sort=sort, descending=descending, after=after, limit=3)
                    walked += [r["id"] for r in page["rows"]]
                    after = page["next"]
                    if after is None:
                        break
                assert walked == whole and len(whole) == size, (sort, descending)
    by_name = names(admin)
    assert by_name[:5] == ["Pessoa 0", "Pessoa 1", "Pessoa 2", "Pessoa 3", "pessoa 3"]
    assert [r["phone"] for r in list_contacts(admin, sort="phone")["rows"]][0] == "5511900000003"
    newest = list_contacts(admin, sort="last_message", descending=True)["rows"]
    assert [r["display_name"] for r in newest[:3]] == ["Pessoa 5", "Pessoa 3", "Pessoa 1"]
    # no message yet (a conversation without one, or no conversation at all) sorts as the oldest, newest id first
    assert [r["display_name"] for r in newest[3:]] == ["Também sem", "Sem conversa", "pessoa 3", "Pessoa 6",
                                                       "Pessoa 4", "Pessoa 2", "Pessoa 0"]
    with pytest.raises(InvalidInput):
        list_contacts(admin, sort="custom_data")


def test_count_is_capped(shop, monkeypatch):
    ws, inst, admin = shop
    for i in range(5):
        make_contact(ws, inst, f"C{i}")
    assert list_contacts(admin, with_count=True)["count"] == 5
    monkeypatch.setattr(contact_list, "COUNT_CAP", 3)
    page = list_contacts(admin, with_count=True)
    assert (page["count"], page["count_capped"]) == (3, True)


def test_agents_list_only_contacts_of_conversations_they_see(shop):
    ws, inst, admin = shop
    agent = make_actor(ws, "agent")
    other = make_actor(ws, "agent")
    mine = make_team(ws, "Minha", agent.user_id)
    theirs = make_team(ws, "Outra", other.user_id)
    make_contact(ws, inst, "Meu", agent_id=agent.user_id)
    make_contact(ws, inst, "Da equipe", team_id=mine)
    make_contact(ws, inst, "Livre")
    make_contact(ws, inst, "Do outro", agent_id=other.user_id)
    make_contact(ws, inst, "Outra equipe", team_id=theirs)
    make_contact(ws, inst, "Sem conversa", phone="5511900000098", conversation=False)
    assert names(agent) == ["Da equipe", "Livre", "Meu"]
    assert names(agent, {"search": "outr"}) == []
    assert list_contacts(agent, with_count=True)["count"] == 3
    assert len(names(admin)) == 6


def test_another_workspaces_ids_in_a_filter_are_not_found(shop):
    ws, inst, admin = shop
    other_ws = make_workspace("Outra")
    other_inst = make_instance(other_ws)
    other_team = make_team(other_ws, "X")
    stranger = make_actor(other_ws)
    make_contact(other_ws, other_inst, "Alheio")
    assert names(admin) == []
    for flt in ({"instance_id": other_inst}, {"team_id": other_team}, {"agent_id": stranger.user_id},
                {"funnel_id": 10**20}, {"instance_id": 999}):
        with pytest.raises((NotFound, InvalidInput)):
            list_contacts(admin, flt)
    with pytest.raises(NotFound):
        list_contacts(admin, {"instance_id": other_inst})


def test_bad_filters_are_invalid_input_in_portuguese(shop):
    _, _, admin = shop
    for bad in ({"search": "x" * 201}, {"tags_any": "vip"}, {"fields": [{"key": "a", "op": "regex"}]},
                {"created_from": "ontem"}, {"unknown": 1}, {"tags_any": ["t"] * 51}):
        with pytest.raises(InvalidInput) as exc:
            list_contacts(admin, bad)
        assert error_text(exc.value) == "O filtro de contatos não é válido. Revise as condições."


def test_segments_crud_roles_and_unique_names(shop):
    ws, inst, admin = shop
    agent = make_actor(ws, "agent")
    supervisor = make_actor(ws, "supervisor")
    make_contact(ws, inst, "Ana", tags=("vip",))
    make_contact(ws, inst, "Bia")
    seg = contact_list.save_segment(supervisor, "  Clientes   VIP ", {"tags_any": ["vip"]})
    assert contact_list.list_segments(agent) == [{"id": seg, "name": "Clientes VIP"}]
    flt = contact_list.load_segment(agent, seg)
    assert names(admin, flt) == ["Ana"]
    with pytest.raises(Conflict) as dup:
        contact_list.save_segment(admin, "clientes vip", {})
    assert error_text(dup.value) == "Já existe um segmento com esse nome."
    with pytest.raises(PermissionDenied):
        contact_list.save_segment(agent, "Meu", {})
    with pytest.raises(InvalidInput):
        contact_list.save_segment(admin, "   ", {})
    other = contact_list.save_segment(admin, "Todos", {})
    with pytest.raises(Conflict):
        contact_list.rename_segment(admin, other, "CLIENTES VIP")
    contact_list.rename_segment(admin, other, "Todos os contatos")
    contact_list.update_segment(admin, other, {"search": "bia"})
    assert names(admin, contact_list.load_segment(admin, other)) == ["Bia"]
    with pytest.raises(PermissionDenied):
        contact_list.delete_segment(agent, seg)
    contact_list.delete_segment(admin, seg)
    assert [s["name"] for s in contact_list.list_segments(admin)] == ["Todos os contatos"]
    # another workspace's segment is not found; a stored filter that no longer validates is a clear error
    stranger = make_actor(make_workspace("Outra"))
    with pytest.raises(NotFound):
        contact_list.load_segment(stranger, other)
    with pytest.raises(NotFound):
        contact_list.delete_segment(stranger, other)
    with session_scope() as s:
        s.get(Segment, other).filter = {"tags_any": "not a list", "old_key": 1}
    with pytest.raises(InvalidInput) as broken:
        contact_list.load_segment(admin, other)
    assert error_text(broken.value).startswith("Este segmento foi salvo com um filtro")
