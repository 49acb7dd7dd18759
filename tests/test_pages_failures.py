"""Conexões → Falhas: the events a number set aside, shown literally to admins and supervisors, with Reprocessar
and Descartar."""

from __future__ import annotations

from sqlalchemy import select

from connector.contracts import IN_FAILED_STREAM
from tests.factories import make_actor, make_instance, make_workspace, run_jobs
from tests.test_failures import set_aside, set_aside_malformed
from tests.test_pages_connections import open_page
from workbench.store.db import session_scope
from workbench.store.models import Message

HOSTILE = "**oi** <script>x</script> :red[a]"


def _texts(at) -> list[str]:
    return [element.value for element in at.text]


def _markdown(at) -> str:
    return " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)


def test_admins_see_failures_literally_and_can_reprocess(engine, r, monkeypatch):
    ws = make_workspace()
    inst = make_instance(ws)
    set_aside(r, monkeypatch, inst, HOSTILE)
    at = open_page(make_actor(ws, "admin"))
    assert not at.exception
    assert "Falhas (1)" in [e.label for e in at.expander]
    assert {"5511988887777", HOSTILE, "RuntimeError: tabela indisponível"} <= set(_texts(at))
    assert "<script>" not in _markdown(at), "the contact's text never goes through Markdown"
    assert "Deu erro ao processar o evento em todas as tentativas." in [c.value for c in at.caption]
    assert any("5 tentativa(s)" in c.value and "[Mensagem]" in c.value for c in at.caption)

    [retry] = [b for b in at.button if b.key.startswith(f"conn_fail_retry_{inst}_")]
    retry.click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Evento enviado para ser processado de novo."]
    assert "Falhas (1)" not in [e.label for e in at.expander]
    run_jobs()
    with session_scope() as s:
        assert s.scalars(select(Message.text)).all() == [HOSTILE]


def test_discarding_asks_first(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    set_aside_malformed(r, inst)
    at = open_page(make_actor(ws, "supervisor"))
    [retry] = [b for b in at.button if b.key.startswith(f"conn_fail_retry_{inst}_")]
    assert retry.disabled, "an unreadable event can only be discarded"
    [discard] = [b for b in at.button if b.key.startswith(f"conn_fail_discard_{inst}_")]
    discard.click().run()
    assert [w.value for w in at.warning] == ["Descartar este evento? Ele será apagado e não poderá ser recuperado."]
    assert r.xlen(IN_FAILED_STREAM.format(inst)) == 1
    [no] = [b for b in at.button if b.key.startswith(f"conn_fail_no_{inst}_")]
    no.click().run()
    assert not at.warning and r.xlen(IN_FAILED_STREAM.format(inst)) == 1
    [discard] = [b for b in at.button if b.key.startswith(f"conn_fail_discard_{inst}_")]
    discard.click().run()
    [yes] = [b for b in at.button if b.key.startswith(f"conn_fail_yes_{inst}_")]
    yes.click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Evento descartado."]
    assert r.xlen(IN_FAILED_STREAM.format(inst)) == 0
    assert not [e for e in at.expander if e.label.startswith("Falhas")]


def test_agents_do_not_see_failures(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    set_aside_malformed(r, inst)
    at = open_page(make_actor(ws, "agent"))
    assert not at.exception
    assert not [e for e in at.expander if e.label.startswith("Falhas")]
    assert not [b for b in at.button if b.key.startswith("conn_fail_")]
