"""Backup and restore while writes are going on: the restored database is consistent and equal to
the state at the backup's moment.

A writer thread saves intake records (record + application number + audit event per transaction)
the whole time; three backups are taken one after the other, each restored into a new location and
checked:

- consistent: engine.check.check_database is clean, PRAGMA integrity_check / foreign keys on SQLite;
- one moment: the records in the copy are exactly the source's records up to the copy's newest one
  (one writer: commits are in id order), their number lies between the counts seen just before and
  just after the backup, and every copied row of the append-only tables (records, audit events, form
  versions, users, reference items) is identical to the source row;
- audit: the copy's create events and records match one to one (no record without its event, no
  event without its record), and the application-number counter equals the numbers handed out.

SQLite: the online backup API (.db). PostgreSQL (and SQLite too): the logical .lacdump snapshot.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from engine.access import SYSTEM, Actor
from engine.backup import backup, restore, tables
from engine.db import dispose_engine, get_engine, is_postgres
from engine.storage import bulk_create, create
from models.tables import AuditEvent, Sequence, Submission
from tests.app.entry_helpers import intake_values
from tests.conftest import drop_pg_database, make_pg_database
from tests.reliability.conftest import count, create_audit_ids, integrity_problems

STAFF = Actor("staff", "staff")
BACKUPS = 3
SEED_ROWS = 1500  # so that a backup takes a moment while the writer writes
APPEND_ONLY = ("submissions", "audit_events", "form_versions", "users", "choice_items")


class WriterThread:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stop = threading.Event()
        self.saved: list[int] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        try:
            while not self.stop.is_set():
                values = intake_values(f"备份测试{i:04d}", i % 1000, birth=f"19{50 + i % 40}0101")
                self.saved.append(int(create(self.engine, "intake", values, actor=STAFF).id))
                i += 1
        except BaseException as exc:  # pragma: no cover - reported by the test
            self.errors.append(exc)

    def __enter__(self) -> WriterThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while len(self.saved) < 5 and time.monotonic() < deadline and not self.errors:
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def _seed(engine: Engine) -> None:
    rows = [{**intake_values(f"存量{i:04d}", i % 1000), "_created_by": "staff"} for i in range(SEED_ROWS)]
    assert bulk_create(engine, "intake", rows, actor=SYSTEM, validate=False) == SEED_ROWS


def _rows(engine: Engine, name: str) -> dict[Any, tuple]:
    table = next(t for t in tables() if t.name == name)
    pk = list(table.primary_key.columns)
    with engine.connect() as conn:
        return {tuple(r[c.name] for c in pk): tuple(r) for r in conn.execute(select(table)).mappings()}


def _live_count(engine: Engine) -> int:
    return count(engine, Submission)


def _check_copy(source: Engine, copy: Engine, before: int, after: int) -> dict[str, int]:
    assert integrity_problems(copy) == []
    copied = _rows(copy, "submissions")
    ids = sorted(k[0] for k in copied)
    assert before <= len(ids) <= after, (before, len(ids), after)
    src = _rows(source, "submissions")
    # one moment: exactly the source's records up to the newest copied one
    assert ids == sorted(k[0] for k in src if k[0] <= ids[-1])
    for name in APPEND_ONLY:
        theirs = _rows(source, name)
        for key, row in _rows(copy, name).items():
            if name == "audit_events" and row[2] == "restore_db" or name == "audit_events" and key not in theirs:
                continue  # written by the restore itself, into the copy only
            assert theirs.get(key) == row, f"{name} {key}: the copy differs from the source"
    # audit events and records match one to one
    audited = create_audit_ids(copy)
    imported: set[int] = set()
    with copy.connect() as conn:
        for detail in conn.execute(select(AuditEvent.detail).where(AuditEvent.action == "import")).scalars():
            imported |= set(range(detail["first_id"], detail["last_id"] + 1))
        restores = conn.execute(select(AuditEvent.id).where(AuditEvent.action == "restore_db")).all()
        numbered = [n for n in conn.execute(select(Submission.number)).scalars() if n]
        last = conn.execute(select(Sequence.last).where(Sequence.name == "intake")).scalar() or 0
    assert audited | imported == set(ids) and not audited & imported
    assert len(restores) == 1
    assert last == len(numbered) == len(set(numbered))  # the number counter is from the same moment
    return {"copied": len(ids), "before": before, "after": after}


def _backup_while_writing(engine: Engine, tmp_path: Path, fmt: str, new_target: Any) -> list[dict[str, int]]:
    _seed(engine)
    results = []
    with WriterThread(engine) as writer:
        for n in range(BACKUPS):
            before = _live_count(engine)
            path = backup(engine, tmp_path / f"backups{n}", fmt=fmt, actor=SYSTEM)
            after = _live_count(engine)
            target = new_target(n)
            restore(target, path, actor=SYSTEM)
            results.append({"target": target, "before": before, "after": after})
            time.sleep(0.05)
    assert writer.errors == []
    assert len(writer.saved) > BACKUPS  # the writer did write meanwhile (this test can fail)
    checked = []
    for r in results:
        copy = get_engine(r["target"])
        checked.append(_check_copy(engine, copy, r["before"], r["after"]))
    assert checked[-1]["copied"] > checked[0]["copied"] - 1
    return checked


def test_sqlite_online_backup_while_writing(tmp_path: Path, template_db: Path) -> None:
    from tests.reliability.conftest import fresh_sqlite

    url = fresh_sqlite(tmp_path, template_db)
    engine = get_engine(url)
    targets: list[str] = []

    def new_target(n: int) -> str:
        targets.append(f"sqlite:///{tmp_path / f'restored{n}.db'}")
        return targets[-1]

    try:
        print(_backup_while_writing(engine, tmp_path, "sqlite", new_target))
    finally:
        for t in targets:
            dispose_engine(t)
        dispose_engine(url)


@pytest.mark.postgres
def test_postgres_lacdump_while_writing(pg_url: str, tmp_path: Path) -> None:
    from engine.forms import init_database

    engine = get_engine(pg_url)
    init_database(engine)
    assert is_postgres(engine)
    targets: list[str] = []

    def new_target(_n: int) -> str:
        targets.append(make_pg_database())
        return targets[-1]

    try:
        print(_backup_while_writing(engine, tmp_path, "lacdump", new_target))
    finally:
        for t in targets:
            drop_pg_database(t)


def test_sqlite_lacdump_while_writing(tmp_path: Path, template_db: Path) -> None:
    from tests.reliability.conftest import fresh_sqlite

    url = fresh_sqlite(tmp_path, template_db)
    engine = get_engine(url)
    targets: list[str] = []

    def new_target(n: int) -> str:
        targets.append(f"sqlite:///{tmp_path / f'dumped{n}.db'}")
        return targets[-1]

    try:
        print(_backup_while_writing(engine, tmp_path, "lacdump", new_target))
    finally:
        for t in targets:
            dispose_engine(t)
        dispose_engine(url)
