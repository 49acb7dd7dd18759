"""Floor 3, the funnel editor's logic (no Streamlit): canvas conversion and typed node forms."""
