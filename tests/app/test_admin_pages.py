"""Audit log and backup pages: admin only; the audit log is read-only in the UI; the backup page reads
no backup file to render, offers one picked backup for download (read on click, audited), and shows
the server path and a copy command instead for a backup over the download limit."""

from __future__ import annotations

import builtins
import io
import os
import pathlib
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from engine.audit_log import AuditQuery, search
from models.tables import AuditEvent
from tests.app.conftest import texts


def _audit():
    from pages.audit import render_audit

    render_audit()


def _backup():
    from pages.backup import render_backup

    render_backup()


@pytest.mark.parametrize("role", ["manager", "staff", "outreach", "viewer"])
@pytest.mark.parametrize("page", [_audit, _backup])
def test_only_admins_reach_audit_and_backup(app_env, role, page):
    at = app_env.page(page, role).run()
    assert not at.exception
    assert not at.dataframe and not at.button  # refused: no data, no actions


def test_audit_page_lists_events_newest_first_and_offers_no_edit(app_env):
    at = app_env.page(_audit, "admin").run()
    assert not at.exception
    assert "审计日志" in texts(at)
    shown = at.dataframe[0].value
    total = search(app_env.engine, AuditQuery()).total
    assert total > 0 and len(shown) == min(total, 50)
    assert not at.button  # nothing on the page changes the log
    with Session(app_env.engine) as s:
        newest = s.exec(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert shown.iloc[0]["用户"] == newest.username


def test_audit_filters_by_user(app_env):
    at = app_env.page(_audit, "admin").run()
    at.text_input(key="audit_user").input("admin").run()
    df = at.dataframe[0].value
    with Session(app_env.engine) as s:
        n = s.exec(select(func.count()).select_from(AuditEvent).where(AuditEvent.username == "admin")).one()
    assert n > 0 and len(df) == min(n, 50)
    assert set(df["用户"]) == {"admin"}


def test_backup_page_makes_a_backup(app_env, tmp_path, monkeypatch):
    import engine.backup as backups

    monkeypatch.setattr(backups, "BACKUP_DIR", tmp_path / "backups")
    at = app_env.page(_backup, "admin").run()
    at.button(key="backup_make").click().run()
    assert not at.exception
    files = list((tmp_path / "backups").glob("console-*.db"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    assert files[0].name in texts(at)


def test_backup_page_lists_and_makes_backups_in_the_nightly_folder(app_env, tmp_path, monkeypatch):
    """LAC_BACKUP_DIR (where deploy/lac-backup.sh writes the nightly backups) is the page's folder too."""
    nightly = tmp_path / "nightly"
    nightly.mkdir()
    (nightly / "console-20260301-023000.db").write_bytes(b"SQLite format 3\x00" + b"x" * 2000)
    monkeypatch.setenv("LAC_BACKUP_DIR", str(nightly))
    at = app_env.page(_backup, "admin").run()
    assert list(at.dataframe[0].value["文件"]) == ["console-20260301-023000.db"]
    at.button(key="backup_make").click().run()
    assert not at.exception
    made = sorted((p.name for p in nightly.glob("console-*.db")), reverse=True)
    assert len(made) == 2 and made[0] in texts(at)  # the message names the new backup
    assert list(at.dataframe[0].value["文件"]) == made  # newest first


# --- backup downloads ----------------------------------------------------------------------------------
SMALL = "console-20260301-023000.db"
LARGE = "console-20260302-023000.db"


@pytest.fixture
def backup_dir(tmp_path, monkeypatch) -> Path:
    """data/backups with a small backup and a 300 MB sparse one (no disk blocks written)."""
    import engine.backup as backups

    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / SMALL).write_bytes(b"SQLite format 3\x00" + b"x" * 2000)
    with (folder / LARGE).open("wb") as fh:
        fh.truncate(300 * 1_048_576)
    os.utime(folder / SMALL, (1_772_000_000, 1_772_000_000))
    os.utime(folder / LARGE, (1_772_100_000, 1_772_100_000))
    monkeypatch.setattr(backups, "BACKUP_DIR", folder)
    monkeypatch.delenv("LAC_BACKUP_DOWNLOAD_MAX_MB", raising=False)
    return folder


@pytest.fixture
def no_backup_reads(backup_dir, monkeypatch) -> list[str]:
    """Fail (and record) any opening of a file in the backup folder while the page runs."""
    opened: list[str] = []
    inside = str(backup_dir.resolve())

    def guard(path) -> None:
        if isinstance(path, str | os.PathLike) and os.path.abspath(os.fspath(path)).startswith(inside):
            opened.append(os.fspath(path))
            raise AssertionError(f"backup file read while rendering: {path}")

    real_open, real_io_open = builtins.open, io.open
    real_read_bytes, real_path_open = pathlib.Path.read_bytes, pathlib.Path.open
    monkeypatch.setattr(builtins, "open", lambda file, *a, **k: (guard(file), real_open(file, *a, **k))[1])
    monkeypatch.setattr(io, "open", lambda file, *a, **k: (guard(file), real_io_open(file, *a, **k))[1])
    monkeypatch.setattr(pathlib.Path, "read_bytes", lambda self: (guard(self), real_read_bytes(self))[1])
    monkeypatch.setattr(pathlib.Path, "open", lambda self, *a, **k: (guard(self), real_path_open(self, *a, **k))[1])
    return opened


def _downloads(at) -> list:
    return [b for b in at.get("download_button") if b.key and b.key.startswith("backup_dl_")]


def _codes(at) -> str:
    return "\n".join(str(c.value) for c in at.code)


def test_backup_page_reads_no_backup_and_shows_the_path_of_a_large_one(app_env, no_backup_reads, backup_dir):
    at = app_env.page(_backup, "admin").run()
    assert not at.exception and no_backup_reads == []
    assert list(at.dataframe[0].value["文件"]) == [LARGE, SMALL]  # newest first, sizes from stat()
    assert list(at.dataframe[0].value["大小"]) == ["300.0 MB", "0.0 MB"]
    assert _downloads(at) == []  # nothing offered before a backup is picked
    at.selectbox(key="backup_pick").set_value(LARGE).run()
    assert not at.exception and no_backup_reads == []
    assert _downloads(at) == []  # over the 200 MB default: no browser download
    shown = texts(at)
    assert "300.0 MB" in shown and "200.0 MB" in shown and "DEPLOY.md" in shown
    codes = _codes(at)
    assert str(backup_dir / LARGE) in codes
    assert "scp lac@" in codes and f":{backup_dir / LARGE} ." in codes


def test_a_small_backup_is_offered_after_picking_it_and_its_download_is_audited(app_env, backup_dir):
    from engine.backup import read_backup

    at = app_env.page(_backup, "admin").run()
    at.selectbox(key="backup_pick").set_value(SMALL).run()
    assert not at.exception
    [download] = _downloads(at)
    assert download.key == f"backup_dl_{SMALL}" and download.proto.label == "下载"
    assert str(backup_dir / SMALL) not in _codes(at)
    before = _export_events(app_env)
    download.click().run()
    assert not at.exception
    [event] = _export_events(app_env)[len(before):]
    assert event.username == "admin" and event.detail["backup_file"] == SMALL
    assert event.detail["bytes"] == (backup_dir / SMALL).stat().st_size
    # what the button hands out when clicked: that one file's bytes
    assert read_backup(SMALL, actor=app_env.actor("admin")) == (backup_dir / SMALL).read_bytes()


def test_the_download_limit_is_a_setting(app_env, backup_dir, monkeypatch):
    monkeypatch.setenv("LAC_BACKUP_DOWNLOAD_MAX_MB", "0.001")  # about 1 KB: the small backup is over it
    at = app_env.page(_backup, "admin").run()
    at.selectbox(key="backup_pick").set_value(SMALL).run()
    assert not at.exception and _downloads(at) == []
    assert str(backup_dir / SMALL) in _codes(at)
    monkeypatch.setenv("LAC_BACKUP_DOWNLOAD_MAX_MB", "0")  # browser downloads switched off
    at.run()
    assert _downloads(at) == [] and "LAC_BACKUP_DOWNLOAD_MAX_MB=0" in texts(at)
    monkeypatch.setenv("LAC_BACKUP_DOWNLOAD_MAX_MB", "lots")  # a bad value: said so, no download
    at.run()
    assert not at.exception and _downloads(at) == [] and "LAC_BACKUP_DOWNLOAD_MAX_MB" in texts(at)
    monkeypatch.setenv("LAC_BACKUP_DOWNLOAD_MAX_MB", "500")
    at.selectbox(key="backup_pick").set_value(LARGE).run()
    assert [b.key for b in _downloads(at)] == [f"backup_dl_{LARGE}"]


def _export_events(app_env) -> list[AuditEvent]:
    with Session(app_env.engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == "export").order_by(AuditEvent.id)).all())
