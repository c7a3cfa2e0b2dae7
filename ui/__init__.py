"""Streamlit glue: widgets per field type, session and database handles, i18n. Pages import from here."""
