"""The pages' action helper (pages/ui/feedback.py): a refusal is flashed once in Portuguese and stops the action;
a success message survives the rerun; without a flash key the refusal shows in place."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from workbench.base.i18n import t


def _page() -> None:
    """A page with one action that goes through, one the service refuses, one that finds Redis down."""
    import redis
    import streamlit as st

    from pages.ui.feedback import attempt, show_flash
    from workbench.base.errors import NotFound

    def act(problem: Exception | None) -> None:
        with attempt("flash", "Feito."):
            if problem is not None:
                raise problem
            st.session_state["went_through"] = True  # the rest of the action runs only after a success

    show_flash("flash")
    st.button("ok", key="ok", on_click=act, args=(None,))
    st.button("refused", key="refused", on_click=act,
              args=(NotFound("conversation", key="error.conversation_not_found"),))
    st.button("down", key="down", on_click=act, args=(redis.ConnectionError("connection refused"),))
    with attempt():  # drawing code: a refusal shows here, at once
        if st.session_state.get("read_fails"):
            raise NotFound("conversation", key="error.conversation_not_found")
        st.text("lido")


def test_a_refusal_is_flashed_once_and_stops_the_action():
    at = AppTest.from_function(_page).run()
    at.button(key="refused").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Conversa não encontrada."]
    assert "went_through" not in at.session_state and not at.success
    at.run()
    assert not at.error, "shown once"
    at.button(key="down").click().run()
    assert [e.value for e in at.error] == [t("error.unavailable")]


def test_a_success_message_survives_the_rerun():
    at = AppTest.from_function(_page).run()
    at.button(key="ok").click().run()
    assert [s.value for s in at.success] == ["Feito."] and at.session_state["went_through"]
    assert not at.error
    at.run()
    assert not at.success


def test_without_a_flash_key_the_refusal_shows_in_place():
    at = AppTest.from_function(_page).run()
    assert "lido" in [x.value for x in at.text]
    at.session_state["read_fails"] = True
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Conversa não encontrada."]
    assert "lido" not in [x.value for x in at.text]
