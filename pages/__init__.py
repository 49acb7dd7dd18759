"""The panel's screens (one file per page, run by ``app.py``'s navigation) and their Streamlit helpers (``ui``)."""
