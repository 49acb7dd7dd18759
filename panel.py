"""The panel's server: the Streamlit app (``app.py``) plus the routes that set and clear the login cookie.

``python -m workbench up`` runs it with ``streamlit run panel.py`` (which serves ``app`` with uvicorn); any ASGI
server can too (``uvicorn panel:app``). ``workbench/services/login_cookie.py`` explains the routes: the login
cookie is ``HttpOnly``, so only a server response can write it. ``streamlit run app.py`` still serves the pages,
but a login then does not survive a refresh.
"""

import streamlit as st

from workbench.services import login_cookie

app = st.App("app.py", routes=login_cookie.routes())
