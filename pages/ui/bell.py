"""The notifications bell in the sidebar: what funnels ("notify human") and the product tell the signed-in user.

Live every few seconds, but re-read only when the workspace's revision moved, like the inbox. A notification's
body is rendered from a template with contact data and names typed by people, so everything in it is literal
text (``st.text``).
"""

from __future__ import annotations

from contextlib import suppress

import streamlit as st

from pages.ui.gate import recheck
from pages.ui.panel import live_fragment
from workbench.base.i18n import format_when, t
from workbench.services import conversations, notifications
from workbench.services.auth import Actor
from workbench.store.outages import PAGE_ERRORS

NOTIFY_CACHE_KEY = "notify_cache"  # (workspace revision, unread count, latest notifications)
INBOX_SELECTED_KEY = "inbox_selected"  # the conversation the inbox opens (pages/inbox.py SELECTED_KEY)
CONTACT_PAGE = "pages/contact.py"  # the Visão 360, opened with ?contact=<id>


def _dismiss(actor: Actor, notification_id: int | None) -> None:
    """Mark one notification (or, with None, all of them) read."""
    # Already gone or no longer visible: the next read of the list shows the truth.
    with suppress(*PAGE_ERRORS):
        recheck()  # a callback runs before app.py's gate
        if notification_id is None:
            notifications.mark_all_read(actor)
        else:
            notifications.mark_read(actor, notification_id)
    st.session_state.pop(NOTIFY_CACHE_KEY, None)


@live_fragment(run_every=5)
def bell(actor: Actor, inbox: st.Page) -> None:
    """The bell with the unread count, opening the actor's latest notifications; "Abrir conversa" goes to ``inbox``
    with the notification's conversation selected, "Ver contato" to the contact's Visão 360."""
    revision = conversations.revision(actor)
    cache = st.session_state.get(NOTIFY_CACHE_KEY)
    if not cache or cache[0] != revision:
        cache = (revision, notifications.unread_count(actor), notifications.list_notifications(actor))
        st.session_state[NOTIFY_CACHE_KEY] = cache
    _, unread, items = cache
    label = t("notify.title_unread", n=unread) if unread else t("notify.title")
    with st.popover(label, icon=":material/notifications:", width="stretch"):
        if unread:
            st.button(t("notify.mark_all"), key="notify_all", on_click=_dismiss, args=(actor, None),
                      icon=":material/done_all:")
        if not items:
            st.caption(t("notify.empty"))
        for item in items:
            with st.container(border=True):
                # rendered from a template with contact data, and names typed by people: literal text only
                st.text(item["body"])
                about = " · ".join(part for part in (item["contact"], item["team"]) if part)
                if about:
                    st.text(about)
                when = format_when(item["created_at"])
                st.caption(when if item["read_at"] else f"{when} · {t('notify.unread')}")
                if item["conversation_id"]:
                    with st.container(horizontal=True):
                        open_chat = st.button(t("notify.open"), key=f"notify_open_{item['id']}",
                                              icon=":material/forum:")
                        open_contact = st.button(t("notify.open_contact"), key=f"notify_contact_{item['id']}",
                                                 icon=":material/person_search:")
                    if open_chat or open_contact:
                        _dismiss(actor, item["id"])
                    if open_chat:
                        st.session_state[INBOX_SELECTED_KEY] = item["conversation_id"]
                        st.switch_page(inbox)
                    if open_contact:
                        st.switch_page(CONTACT_PAGE, query_params={"contact": str(item["contact_id"])})
                elif not item["conversation_id"] and not item["read_at"]:
                    st.button(t("notify.dismiss"), key=f"notify_read_{item['id']}", on_click=_dismiss,
                              args=(actor, item["id"]))
