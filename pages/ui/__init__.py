"""Streamlit helpers shared by the pages (floor 4, beside the pages)."""
