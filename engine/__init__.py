"""Pure-Python core of the console. Never imports streamlit."""
