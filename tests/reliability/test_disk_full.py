"""Disk full or read-only database: a save fails with a clear message, the user's input is kept on
screen, and nothing is half-written.

The faults are SQLite's (and PostgreSQL's) own refusals, not mocks:
- read-only: the file opened through a read-only URI (`file:...?mode=ro`), or `PRAGMA query_only`
  on every connection (running as root, chmod would not stop anything); PostgreSQL:
  `default_transaction_read_only`;
- disk full: `PRAGMA max_page_count` pinned to the file's current size, so SQLite answers
  SQLITE_FULL ("database or disk is full") as soon as a write needs one more page.

Asserted: engine.storage.create raises a coded EngineError (db.read_only / db.full) with a zh and
an en message, the entry page shows that message and keeps every typed value, and the row counts of
records, audit events, numbering counters and change stamps are what they were before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from engine.access import SYSTEM, Actor
from engine.db import StorageFailure, dispose_engine, get_engine, make_engine
from engine.errors import EngineError
from engine.forms import publish
from engine.messages import MESSAGES
from engine.storage import create
from models.tables import AuditEvent, ChangeStamp, Sequence, Submission
from tests.app.entry_helpers import PageEnv, button, entry_page, intake_values, page_env, unescape
from tests.conftest import PG_URL, drop_pg_database, make_pg_database

STAFF = Actor("staff", "staff")
SLUG = "visit_log"
VISIT = {
    "slug": SLUG,
    "title": {"zh": "来访登记", "en": "Visits"},
    "access": {"submit": ["admin", "manager", "staff"], "view": ["admin", "manager", "staff"],
               "edit": ["admin", "manager", "staff"], "reveal": ["admin", "manager"]},
    "fields": [
        {"key": "name", "type": "text", "label": {"zh": "来访人", "en": "Visitor"}, "required": True},
        {"key": "phone", "type": "phone", "label": {"zh": "电话", "en": "Phone"}, "sensitive": True},
        {"key": "story", "type": "textarea", "label": {"zh": "来访事由", "en": "Reason"}},
    ],
    "title_field": "name",
}
P = f"entry__{SLUG}__0__"
BIG = "申请人陈述：" + "因工资被拖欠多月，多次讨要未果，请求法律援助。" * 120  # needs new pages (several KB)


def _state(engine: Engine) -> dict[str, Any]:
    """Everything a save writes: records, audit events, numbering counters, change stamps."""
    with engine.connect() as conn:
        return {
            "submissions": conn.execute(select(func.count()).select_from(Submission)).scalar_one(),
            "audit": conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
            "sequences": conn.execute(select(Sequence.name, Sequence.scope, Sequence.last)).all(),
            "stamps": conn.execute(select(ChangeStamp.scope, ChangeStamp.stamp)).all(),
        }


def _query_only(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA query_only=ON")


def _no_more_pages(dbapi_conn: Any, _record: Any) -> None:
    pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
    dbapi_conn.execute(f"PRAGMA max_page_count={pages}")


def _compact(path: Path) -> None:
    """No free pages left in the file: the next page a write needs is one past max_page_count."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
    finally:
        conn.close()


def _fault(engine: Engine, listener: Callable[[Any, Any], None]) -> None:
    """Every connection the engine makes from now on gets `listener` (the pool is emptied)."""
    event.listen(engine, "connect", listener)
    engine.dispose()


def _assert_coded(exc: EngineError, code: str) -> None:
    assert isinstance(exc, StorageFailure) and exc.code == code
    assert set(MESSAGES[code]) >= {"zh", "en"}
    zh, en = exc.message("zh"), exc.message("en")
    assert "没有生效" in zh and "did not happen" in en


# --- engine ----------------------------------------------------------------------------------------
@pytest.fixture
def sqlite_db(tmp_path: Path, template_db: Path) -> Iterator[tuple[str, Path]]:
    from tests.reliability.conftest import fresh_sqlite

    url = fresh_sqlite(tmp_path, template_db)
    publish(get_engine(url), VISIT, actor=SYSTEM)
    create(get_engine(url), "intake", intake_values("已有记录", 11), actor=STAFF)
    dispose_engine(url)
    yield url, tmp_path / "console.db"
    dispose_engine(url)


@pytest.mark.parametrize("how", ["uri_mode_ro", "query_only"])
def test_read_only_sqlite_refuses_the_save_with_a_coded_message(sqlite_db: tuple[str, Path], how: str) -> None:
    url, path = sqlite_db
    if how == "uri_mode_ro":
        engine = make_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    else:
        engine = make_engine(url)
        event.listen(engine, "connect", _query_only)
    try:
        before = _state(engine)
        for slug, values in (("intake", intake_values("只读甲", 12)), (SLUG, {"name": "只读乙", "story": "x"})):
            with pytest.raises(EngineError) as info:
                create(engine, slug, values, actor=STAFF)
            _assert_coded(info.value, "db.read_only")
        assert _state(engine) == before
    finally:
        engine.dispose()
    rw = get_engine(url)  # the same file, writable again: saving works, nothing was left behind
    assert _state(rw) == before
    create(rw, "intake", intake_values("恢复可写", 13), actor=STAFF)
    assert _state(rw)["submissions"] == before["submissions"] + 1


def test_full_sqlite_refuses_the_save_with_a_coded_message(sqlite_db: tuple[str, Path]) -> None:
    url, path = sqlite_db
    _compact(path)
    engine = make_engine(url)
    event.listen(engine, "connect", _no_more_pages)
    try:
        before = _state(engine)
        for i in range(3):  # again and again: each one refused cleanly
            with pytest.raises(EngineError) as info:
                create(engine, "intake", intake_values(f"满盘{i}", 14 + i, facts=BIG), actor=STAFF)
            _assert_coded(info.value, "db.full")
            assert _state(engine) == before
    finally:
        engine.dispose()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    rw = get_engine(url)
    create(rw, "intake", intake_values("空间已腾出", 20, facts=BIG), actor=STAFF)
    assert _state(rw)["submissions"] == before["submissions"] + 1


@pytest.mark.postgres
def test_read_only_postgres_refuses_the_save_with_a_coded_message() -> None:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it)")
    from engine.forms import init_database

    url = make_pg_database()
    try:
        init_database(get_engine(url))
        before = _state(get_engine(url))
        engine = make_engine(url)

        @event.listens_for(engine, "connect")
        def _read_only(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute("SET default_transaction_read_only = on")
            dbapi_conn.commit()

        try:
            with pytest.raises(EngineError) as info:
                create(engine, "intake", intake_values("只读丙", 15), actor=STAFF)
            _assert_coded(info.value, "db.read_only")
        finally:
            engine.dispose()
        assert _state(get_engine(url)) == before
    finally:
        drop_pg_database(url)


# --- the entry page --------------------------------------------------------------------------------
@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template_db: Path) -> Iterator[PageEnv]:
    yield from page_env(monkeypatch, tmp_path, template_db)


@pytest.mark.parametrize("fault", ["read_only", "full"])
def test_entry_page_shows_the_failure_and_keeps_what_was_typed(env: PageEnv, fault: str) -> None:
    publish(env.engine, VISIT, actor=SYSTEM)
    if fault == "full":
        env.engine.dispose()
        _compact(Path(env.url.removeprefix("sqlite:///")))
    at = env.app(entry_page, "staff", SLUG).run()
    assert not at.exception
    _fault(env.engine, _query_only if fault == "read_only" else _no_more_pages)
    before = _state(env.engine)
    at.text_input(key=P + "name").input("黄大伯")
    at.text_input(key=P + "phone").input("13802715634")
    at.text_area(key=P + "story").input(BIG).run()
    button(at, "保存").click().run()
    assert not at.exception, at.exception
    errors = [unescape(e.value) for e in at.error]
    expected = {"read_only": "数据库当前是只读的", "full": "磁盘空间已满"}[fault]
    assert any(expected in e and "仍保留在页面上" in e for e in errors), errors
    # the typed values are still there: nothing to type again
    assert at.text_input(key=P + "name").value == "黄大伯"
    assert at.text_input(key=P + "phone").value == "13802715634"
    assert at.text_area(key=P + "story").value == BIG
    assert not at.success  # no "saved" banner
    assert _state(env.engine) == before
    # once the database takes writes again, the same screen saves them (nothing to re-type)
    event.remove(env.engine, "connect", _query_only if fault == "read_only" else _no_more_pages)
    env.engine.dispose()
    button(at, "保存").click().run()
    assert any("已保存" in unescape(s.value) for s in at.success), [e.value for e in at.error]
    after = _state(env.engine)
    assert after["submissions"] == before["submissions"] + 1 and after["audit"] == before["audit"] + 1
