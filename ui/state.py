"""Per-session handles: the database engine, the logged-in actor and the UI language.

Contract used by every page (owned by the console/auth work; extend, do not rename):
- `db()`    -> the initialised SQLAlchemy engine for DATABASE_URL (cached per URL, shared by sessions)
- `actor()` -> engine.access.Actor of the logged-in user (raises PermissionDenied if none)
- `lang()`  -> "zh" | "en" for the current user
"""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from engine.access import Actor
from engine.config import database_url
from engine.errors import PermissionDenied


@st.cache_resource(show_spinner=False)
def _engine_for(url: str) -> Engine:
    from engine.db import get_engine
    from engine.forms import init_database

    eng = get_engine(url)
    init_database(eng)
    return eng


def db() -> Engine:
    return _engine_for(database_url())


def actor() -> Actor:
    current = st.session_state.get("actor")
    if not isinstance(current, Actor):
        raise PermissionDenied("auth.required")
    return current


def lang() -> str:
    value = st.session_state.get("lang")
    if value in ("zh", "en"):
        return value
    current = st.session_state.get("actor")
    return current.language if isinstance(current, Actor) else "zh"
