"""PostgreSQL or Redis out of reach: the panel says so in Portuguese and offers a retry, instead of a traceback.

The servers are made unreachable for real: the product is pointed at a closed port (nothing listens on port 1).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.core.examples import welcome_funnel
from tests.factories import PASSWORD, inbox_with_one_conversation, make_actor, make_workspace
from tests.test_pages_app import browser_cookies, login, new_app, scripts
from tests.test_pages_inbox import open_conversation, open_inbox
from workbench.base.errors import AfterCommit
from workbench.base.i18n import t
from workbench.services import auth, contacts, conversations, funnels
from workbench.store import bus, db
from workbench.store.config import get_settings
from workbench.store.models import FunnelRun, Message, Outbox

NOTICE = "O servidor de dados não está respondendo agora."


class Outage:
    """Points the product at a closed port (nothing listens on port 1) and back."""

    DEAD = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2",
            "REDIS_URL": "redis://127.0.0.1:1/0"}

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def cut(self, name: str) -> None:
        """Make PostgreSQL (``DATABASE_URL``) or Redis (``REDIS_URL``) unreachable."""
        self.monkeypatch.setenv(name, self.DEAD[name])
        self._reconnect()

    def restore(self) -> None:
        """The servers answer again."""
        self.monkeypatch.undo()
        self._reconnect()

    @staticmethod
    def _reconnect() -> None:
        get_settings.cache_clear()
        db.dispose_engines()
        bus.reset_clients()


@pytest.fixture
def outage(monkeypatch) -> Iterator[Outage]:
    """Cut a server for the test; it answers again afterwards."""
    cut = Outage(monkeypatch)
    yield cut
    cut.restore()


def _notice(at) -> bool:
    return any(NOTICE in e.value for e in at.error)


@pytest.mark.parametrize("server", ["DATABASE_URL", "REDIS_URL"])
def test_the_inbox_says_the_server_is_out_of_reach(engine, r, outage, server):
    inst, agent, conv_id = inbox_with_one_conversation()
    at = open_conversation(open_inbox(agent), conv_id)
    assert not at.exception
    outage.cut(server)
    at = at.run()
    assert not at.exception and _notice(at)


def test_an_agent_reply_while_postgres_is_down_is_refused_visibly(engine, r, outage):
    inst, agent, conv_id = inbox_with_one_conversation()
    at = open_conversation(open_inbox(agent), conv_id)
    outage.cut("DATABASE_URL")
    at = at.chat_input(key="inbox_reply").set_value("Oi!").run()
    assert not at.exception and _notice(at)


def test_signing_in_without_postgres_shows_the_notice(engine, r, outage):
    outage.cut("DATABASE_URL")
    at = new_app().run()
    assert not at.exception and at.text_input(key="auth_email"), "the form needs no database"
    at = login(at, "ana@example.com", "segredo")
    assert not at.exception and _notice(at)
    assert "auth_actor" not in at.session_state


def test_live_parts_recover_by_themselves_and_nothing_is_lost(engine, r, outage):
    inst, agent, conv_id = inbox_with_one_conversation()
    at = open_conversation(open_inbox(agent), conv_id)
    outage.cut("REDIS_URL")
    at = at.run()
    assert _notice(at)
    outage.restore()
    at = at.run()  # the next tick of the live parts
    assert not at.exception and not _notice(at)
    with db.session_scope() as s:
        assert s.query(Message).count() == 1, "nothing was lost"


def test_retry_button_after_the_server_is_back(engine, r, outage):
    outage.cut("DATABASE_URL")
    at = login(new_app().run(), "ana@example.com", "segredo")
    assert _notice(at)
    outage.restore()
    at = at.button(key="unavailable_retry").click().run()
    assert not at.exception and not _notice(at) and at.text_input(key="auth_email")


def test_a_reply_saved_while_redis_is_down_says_it_is_saved(engine, r, outage):
    """The reply is stored and queued before Redis is needed: the page says so, so nobody sends it twice."""
    inst, agent, conv_id = inbox_with_one_conversation()
    at = open_conversation(open_inbox(agent), conv_id)
    outage.cut("REDIS_URL")
    at = at.chat_input(key="inbox_reply").set_value("Oi!").run()
    assert not at.exception
    assert [w.value for w in at.warning] == [t("error.after_commit")]
    with db.session_scope() as s:
        assert s.query(Message).filter_by(direction="out", text="Oi!").count() == 1
        assert [row.status for row in s.query(Outbox)] == ["pending"], "the sweep re-publishes it"


def test_actions_that_commit_before_redis_report_saved(engine, r, outage):
    """Starting a funnel and tagging a contact are stored even when publishing what follows them fails."""
    inst, agent, conv_id = inbox_with_one_conversation()
    admin = make_actor(agent.workspace_id, "admin")
    funnel_id = funnels.create_funnel(admin, "Boas-vindas", welcome_funnel())
    funnels.publish(admin, funnel_id)
    funnels.set_active(admin, funnel_id, True)
    contact_id = conversations.get_conversation(agent, conv_id)["contact"]["id"]
    outage.cut("REDIS_URL")
    with pytest.raises(AfterCommit):
        funnels.start_for_conversation(agent, conv_id, funnel_id)
    with pytest.raises(AfterCommit):
        contacts.add_tag(agent, contact_id, "vip")
    with pytest.raises(AfterCommit):
        conversations.pause_bot(agent, conv_id)
    outage.restore()
    with db.session_scope() as s:
        assert s.query(FunnelRun).count() == 1
    assert conversations.get_conversation(agent, conv_id)["bot_paused"]
    assert contacts.contact_profile(agent, contact_id)["tags"] == ["vip"]


def test_a_login_kept_in_the_cookie_survives_a_database_blip(engine, r, outage):
    """A refresh while PostgreSQL is restarting shows the notice and keeps the login for the retry."""
    actor = make_actor(make_workspace())
    _, token = auth.login(actor.email, PASSWORD)
    outage.cut("DATABASE_URL")
    with browser_cookies({"wb_session": token}):
        at = new_app().run()
        assert not at.exception and _notice(at)
        assert scripts(at) == [], "the cookie is neither cleared nor rewritten"
        outage.restore()
        at = at.button(key="unavailable_retry").click().run()
    assert not at.exception and not _notice(at)
    assert at.session_state["auth_actor"] == actor
    assert [t.value for t in at.title] == ["Painel"]  # an admin's landing page
