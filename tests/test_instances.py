"""Numbers' services: pairing a real number by phone code or with a new QR series."""

from __future__ import annotations

import json

import pytest

from connector.contracts import CONTROL_LIST, INSTANCES_HASH
from tests.factories import make_actor, make_instance, make_workspace
from workbench.base.errors import InvalidInput, NotFound, PermissionDenied
from workbench.services import instances


def commands(r, instance_id: int) -> list[dict]:
    """Every control command waiting for the number's connector, oldest first."""
    return [json.loads(raw) for raw in r.lrange(CONTROL_LIST.format(instance_id), 0, -1)]


@pytest.mark.parametrize("typed, digits", [
    ("5511987654321", "5511987654321"),
    ("+55 (11) 98765-4321", "5511987654321"),
    (" +1 415-555-0100 ", "14155550100"),
    ("4420\t7946 0958", "442079460958"),
    ("123456789012345", "123456789012345"),
])
def test_pair_phone_digits_accepts_what_people_paste(typed, digits):
    assert instances.pair_phone_digits(typed) == digits


@pytest.mark.parametrize("typed", [
    "", None, "119876543", "1234567890123456", "55 11 9876-543a", "55.11.98765.4321", "++5511987654321",
    "55+11987654321", "５５１１９８７６５４３２１",  # full-width digits are digits to str.isdigit, not to WhatsApp
])
def test_pair_phone_digits_refuses_anything_else(typed):
    with pytest.raises(InvalidInput) as caught:
        instances.pair_phone_digits(typed)
    assert caught.value.key == "error.pair_phone"


def test_request_pair_code_sends_the_digits_to_the_connector(engine, r):
    ws = make_workspace()
    inst = instances.create_instance(make_actor(ws), "Vendas", "neonize")
    supervisor = make_actor(ws, role="supervisor")
    assert instances.request_pair_code(supervisor, inst, "+55 (11) 98765-4321") == "5511987654321"
    assert commands(r, inst) == [{"action": "pair_phone", "phone": "5511987654321"}]


def test_request_pair_code_starts_a_stopped_number(engine, r):
    ws = make_workspace()
    actor = make_actor(ws)
    inst = make_instance(ws)
    instances.stop_instance(actor, inst)
    instances.request_pair_code(actor, inst, "5511987654321")
    # otherwise the command would wait in wb:ctl and surprise someone at the next start
    assert json.loads(r.hget(INSTANCES_HASH, str(inst)))["desired"] == "running"
    assert [c["action"] for c in commands(r, inst)] == ["pair_phone"]


def test_request_pair_code_refuses_a_bad_phone_and_sends_nothing(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    with pytest.raises(InvalidInput) as caught:
        instances.request_pair_code(make_actor(ws), inst, "11 9876")
    assert caught.value.key == "error.pair_phone"
    assert commands(r, inst) == []


def test_request_pair_code_checks_role_and_workspace(engine, r):
    ws, other = make_workspace(), make_workspace("Outra")
    inst = make_instance(ws)
    with pytest.raises(PermissionDenied):
        instances.request_pair_code(make_actor(ws, role="agent"), inst, "5511987654321")
    with pytest.raises(NotFound):
        instances.request_pair_code(make_actor(other), inst, "5511987654321")
    with pytest.raises(NotFound):
        instances.request_pair_code(make_actor(ws), 9999, "5511987654321")
    assert commands(r, inst) == []


def test_restart_pairing_asks_for_a_new_qr_series(engine, r):
    ws = make_workspace()
    actor = make_actor(ws, role="supervisor")
    inst = make_instance(ws)
    instances.stop_instance(make_actor(ws), inst)
    instances.restart_pairing(actor, inst)
    assert commands(r, inst) == [{"action": "restart_pairing"}]
    assert instances.list_instances(actor)[0]["desired"] == "running"


def test_restart_pairing_checks_role_and_workspace(engine, r):
    ws, other = make_workspace(), make_workspace("Outra")
    inst = make_instance(ws)
    with pytest.raises(PermissionDenied):
        instances.restart_pairing(make_actor(ws, role="agent"), inst)
    with pytest.raises(NotFound):
        instances.restart_pairing(make_actor(other), inst)
    removed = make_instance(ws)
    instances.remove_instance(make_actor(ws), removed)
    r.delete(CONTROL_LIST.format(removed))  # the removal's own logout
    with pytest.raises(NotFound):
        instances.restart_pairing(make_actor(ws), removed)
    assert commands(r, inst) == [] and commands(r, removed) == []
