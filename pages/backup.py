"""Backups (admin): make a consistent copy now; pick ONE backup to download; restore is done with manage.py.

Rendering reads no backup file: the list comes from the directory entries. The picked file is read
only when the admin clicks its download button (Streamlit's deferred download), and only below the
download limit (`engine.backup.download_limit`); a larger one is shown as its path on the server
with the command to copy it off the machine (DEPLOY.md 1.5).
"""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from engine import backup as backups
from engine.errors import EngineError
from ui.auth import error_text, require_ability
from ui.i18n import t
from ui.records_view import local_time
from ui.state import db

PICK_KEY = "backup_pick"


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


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
    files = backups.backup_files()
    if not files:
        st.info(t("backup.none"))
        return
    st.dataframe(pd.DataFrame([{t("backup.col_file"): f.name, t("backup.col_size"): _mb(f.size),
                                t("backup.col_time"): local_time(f.modified)} for f in files]),
                 hide_index=True)
    by_name = {f.name: f for f in files}
    name = st.selectbox(t("backup.pick"), list(by_name), index=None, key=PICK_KEY,
                        placeholder=t("backup.pick_placeholder"),
                        format_func=lambda n: f"{n} · {_mb(by_name[n].size)} · {local_time(by_name[n].modified)}")
    if name is None or name not in by_name:
        return
    _offer(engine, actor, by_name[name])


def _offer(engine, actor, f: backups.BackupFile) -> None:
    """A download button for the picked backup (read on click), or its path and copy command."""
    try:
        limit = backups.download_limit()
    except EngineError as exc:  # a bad setting: no browser downloads until it is fixed
        st.error(error_text(exc))
        limit = -1
    if backups.downloadable(f, limit):
        st.download_button(t("backup.download"), data=functools.partial(backups.read_backup, f.name, actor=actor),
                           file_name=f.name, mime="application/octet-stream", key=f"backup_dl_{f.name}",
                           icon=":material/download:", type="primary", on_click=backups.audit_download,
                           args=(engine, f.name), kwargs={"actor": actor, "size": f.size})
        st.caption(t("backup.download_note"))
        return
    if limit > 0:
        st.warning(t("backup.too_large", size=_mb(f.size), limit=_mb(limit)), icon=":material/hard_drive:")
    elif limit == 0:
        st.info(t("backup.downloads_off"), icon=":material/hard_drive:")
    st.markdown(t("backup.server_path"))
    st.code(str(f.path), language=None)
    st.markdown(t("backup.copy_command"))
    st.code(backups.copy_command(f.path), language="bash")
    st.caption(t("backup.copy_hint"))
