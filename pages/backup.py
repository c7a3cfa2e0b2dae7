"""Backups (admin): make a consistent copy now and download it; restore is done with manage.py."""

from __future__ import annotations

import streamlit as st

from engine import backup as backups
from engine.errors import EngineError
from ui.auth import error_text, require_ability
from ui.i18n import t
from ui.state import db


def render_backup() -> None:
    actor = require_ability("backup")
    st.title(t("backup.title"))
    st.markdown(t("backup.help"))
    engine = db()
    if st.button(t("backup.make"), type="primary", key="backup_make"):
        try:
            with st.spinner(t("backup.working")):
                path = backups.backup(engine, actor=actor)
        except EngineError as exc:
            st.error(error_text(exc))
        else:
            st.success(t("backup.done", file=path.name))
    files = backups.list_backups()
    if not files:
        st.info(t("backup.none"))
        return
    for path in files[:20]:
        cols = st.columns([3, 1, 1])
        cols[0].write(path.name)
        cols[1].write(f"{path.stat().st_size / 1_048_576:.1f} MB")
        cols[2].download_button(t("backup.download"), data=path.read_bytes(), file_name=path.name,
                                key=f"backup_dl_{path.name}", on_click=backups.audit_download,
                                args=(engine, path.name), kwargs={"actor": actor, "size": path.stat().st_size})
