"""Audit log and backup pages: admin only; the audit log is read-only in the UI."""

from __future__ import annotations

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
