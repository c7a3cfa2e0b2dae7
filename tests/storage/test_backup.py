"""Backups and restores on real databases.

SQLite: the online backup is a consistent snapshot even while another thread keeps writing.
PostgreSQL: the .lacdump snapshot restores into an empty database (and, as data moves between the
two, into SQLite), refuses a non-empty target unless forced, and leaves sequences usable.
"""

from __future__ import annotations

import gzip
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from engine.access import SYSTEM
from engine.backup import BackupError, backup, restore, table_counts
from engine.db import dispose_engine, get_engine
from engine.forms import init_database
from engine.storage import create
from engine.tally import tap
from models.tables import AuditEvent, Submission

VISITS = {"slug": "visits", "title": {"zh": "来访"}, "fields": [{"key": "visitor", "type": "text"}]}


def _prepare(engine) -> int:
    from engine.forms import publish

    init_database(engine)
    publish(engine, VISITS, actor=SYSTEM)
    for name in ("陈伟", "李娜", "王芳"):
        create(engine, "visits", {"visitor": name}, actor=SYSTEM)
    event = create(
        engine,
        "outreach_event",
        {
            "title": "走进新建村",
            "event_date": "2026-07-13",
            "place_type": "village",
            "target_group": "general",
        },
        actor=SYSTEM,
    )
    create(engine, "event_signup", {"name": "张三"}, actor=SYSTEM, parent_id=event.id)
    for _ in range(3):
        tap(engine, event.id, "brochures", 10, actor=SYSTEM, device="t1")
    return event.id


PG_URL = os.environ.get("TEST_DATABASE_URL", "").strip()


def _new_pg_database() -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_URL.rpartition("/")[0] + "/" + name


def _drop_pg_database(url: str) -> None:
    dispose_engine(url)
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)'))
    admin.dispose()


def _submissions(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM submissions").fetchone()[0]


# --------------------------------------------------------------------------------------------
# SQLite


def test_sqlite_backup_while_another_thread_writes(sqlite_url: str, tmp_path: Path) -> None:
    engine = get_engine(sqlite_url)
    _prepare(engine)
    db = Path(engine.url.database)
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            i = 0
            while not stop.is_set():
                create(engine, "visits", {"visitor": f"访客{i}"}, actor=SYSTEM)
                written.append(i)
                i += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(written) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        before = _submissions(db)
        path = backup(engine, tmp_path / "backups")
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert not errors
    after = _submissions(db)
    assert path.name.startswith("console-") and path.suffix == ".db"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        copied = conn.execute("SELECT count(*) FROM submissions").fetchone()[0]
        audits = conn.execute("SELECT count(*) FROM audit_events WHERE action = 'create'").fetchone()[0]
    assert before <= copied <= after
    assert after > before  # the writer really was writing during the backup
    assert audits == copied  # each copied record has its audit row: one consistent moment

    target = tmp_path / "restored.db"
    summary = restore(f"sqlite:///{target}", path)
    assert summary.counts["submissions"] == copied and summary.previous is None
    restored = get_engine(f"sqlite:///{target}")
    with restored.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Submission)).scalar_one() == copied
        assert (
            conn.execute(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)).scalar()
            == "restore_db"
        )
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(AuditEvent.action == "backup")).scalar_one() == 1


def test_sqlite_restore_keeps_the_old_file_and_refuses_bad_files(sqlite_url: str, tmp_path: Path) -> None:
    from engine.backup import verify_sqlite_file

    engine = get_engine(sqlite_url)
    _prepare(engine)
    db = Path(engine.url.database)
    path = backup(engine, tmp_path)
    create(engine, "visits", {"visitor": "后来的"}, actor=SYSTEM)
    assert _submissions(db) == _submissions(path) + 1

    summary = restore(sqlite_url, path)
    assert _submissions(db) == _submissions(path)
    assert Path(summary.previous).exists() and _submissions(Path(summary.previous)) == _submissions(path) + 1
    # the restored database is in use at once: new records get fresh ids
    create(get_engine(sqlite_url), "visits", {"visitor": "恢复后"}, actor=SYSTEM)

    damaged = tmp_path / "damaged.db"
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 3 + 2000] = b"\x00" * 2000  # overwrite part of a page
    damaged.write_bytes(bytes(data))
    with pytest.raises(BackupError) as info:
        verify_sqlite_file(damaged)
    assert info.value.code in ("restore.corrupt", "restore.not_ours")
    before = _submissions(db)
    with pytest.raises(BackupError):
        restore(sqlite_url, damaged)
    assert _submissions(db) == before  # nothing changed

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE other (x)").connection.commit()
    with pytest.raises(BackupError) as info:
        restore(sqlite_url, empty)
    assert info.value.code == "restore.not_ours"


# --------------------------------------------------------------------------------------------
# .lacdump (PostgreSQL, and across databases)


def test_lacdump_round_trip(db_url: str, tmp_path: Path) -> None:
    """On both backends: dump, restore into a new empty database, same counts and a working sequence."""
    engine = get_engine(db_url)
    event_id = _prepare(engine)
    path = backup(engine, tmp_path, fmt="lacdump")
    assert path.suffix == ".lacdump"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        assert '"format": "lacdump"' in fh.readline()
    counts = {k: v for k, v in table_counts(engine).items() if k != "audit_events"}

    targets = [f"sqlite:///{tmp_path / 'copy.db'}"]
    if PG_URL:
        targets.append(_new_pg_database())
    try:
        for url in targets:
            summary = restore(url, path)
            assert {k: v for k, v in summary.counts.items() if k != "audit_events"} == counts
            copy = get_engine(url)
            from engine.tally import totals

            assert totals(copy, event_id)["brochures"] == 30
            new = create(copy, "visits", {"visitor": "新记录"}, actor=SYSTEM)  # ids continue after the max
            with copy.connect() as conn:
                assert new.id > conn.execute(select(func.min(Submission.id))).scalar_one()
    finally:
        for url in targets[1:]:
            _drop_pg_database(url)


def test_lacdump_refuses_a_non_empty_target_unless_forced(pg_url: str, tmp_path: Path) -> None:
    engine = get_engine(pg_url)
    _prepare(engine)
    path = backup(engine, tmp_path)  # PostgreSQL: the logical snapshot is the default
    assert path.suffix == ".lacdump"
    create(engine, "visits", {"visitor": "后来的"}, actor=SYSTEM)
    with pytest.raises(BackupError) as info:
        restore(pg_url, path)
    assert info.value.code == "restore.not_empty" and "--force" in info.value.message("en")
    summary = restore(pg_url, path, force=True)
    with engine.connect() as conn:
        visitors = conn.execute(select(func.count()).select_from(Submission)).scalar_one()
    assert visitors == summary.counts["submissions"] == 5
    create(engine, "visits", {"visitor": "恢复后"}, actor=SYSTEM)


def test_pg_backup_while_writing_is_one_snapshot(pg_url: str, tmp_path: Path) -> None:
    engine = get_engine(pg_url)
    _prepare(engine)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            create(engine, "visits", {"visitor": f"访客{i}"}, actor=SYSTEM)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        path = backup(engine, tmp_path)
    finally:
        stop.set()
        thread.join()
    target = f"sqlite:///{tmp_path / 'snap.db'}"
    restore(target, path)
    with get_engine(target).connect() as conn:
        subs = conn.execute(select(func.count()).select_from(Submission)).scalar_one()
        creates = conn.execute(select(func.count()).where(AuditEvent.action == "create")).scalar_one()
    assert subs == creates  # records and their audit rows from the same moment


def test_restore_of_a_truncated_dump_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    engine = get_engine(sqlite_url)
    _prepare(engine)
    path = backup(engine, tmp_path, fmt="lacdump")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        lines = fh.readlines()
    cut = tmp_path / "cut.lacdump"
    with gzip.open(cut, "wt", encoding="utf-8") as fh:
        fh.writelines(lines[: len(lines) // 2])
    target = f"sqlite:///{tmp_path / 'cut.db'}"
    with pytest.raises(BackupError) as info:
        restore(target, cut)
    assert info.value.code == "restore.bad_dump"
    assert not any(table_counts(get_engine(target)).values())  # all or nothing


# --- downloads from the backups page -------------------------------------------------------------------
def test_backup_files_are_listed_from_their_directory_entries_and_read_one_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.access import Actor
    from engine.backup import backup_files, copy_command, download_limit, find_backup, read_backup

    folder = tmp_path / "backups"
    folder.mkdir()
    small = folder / "console-20260301-023000.db"
    small.write_bytes(b"a" * 3000)
    big = folder / "console-20260302-023000.lacdump"
    with big.open("wb") as fh:
        fh.truncate(5 * 1_048_576)  # sparse
    (folder / "notes.txt").write_text("not a backup")
    (tmp_path / "console-secret.db").write_bytes(b"outside the folder")
    os.utime(small, (1_772_000_000, 1_772_000_000))
    os.utime(big, (1_772_100_000, 1_772_100_000))
    admin, manager = Actor("root", "admin"), Actor("boss", "manager")
    monkeypatch.delenv("LAC_BACKUP_DOWNLOAD_MAX_MB", raising=False)

    files = backup_files(folder)
    assert [(f.name, f.size) for f in files] == [(big.name, 5 * 1_048_576), (small.name, 3000)]
    assert files[0].modified.tzinfo is not None
    assert download_limit() == 200 * 1_048_576
    assert read_backup(small.name, actor=admin, dest_dir=folder) == small.read_bytes()
    with pytest.raises(BackupError) as err:
        read_backup(big.name, actor=admin, dest_dir=folder, limit=1_048_576)
    assert err.value.code == "backup.too_large_download" and "5.0" in err.value.message("en")
    monkeypatch.setenv("LAC_BACKUP_DOWNLOAD_MAX_MB", "0")
    with pytest.raises(BackupError):
        read_backup(small.name, actor=admin, dest_dir=folder)
    monkeypatch.setenv("LAC_BACKUP_DOWNLOAD_MAX_MB", "-3")
    with pytest.raises(BackupError) as err:
        download_limit()
    assert err.value.code == "backup.bad_limit"
    monkeypatch.setenv("LAC_BACKUP_DOWNLOAD_MAX_MB", "0.5")
    assert download_limit() == 524_288
    with pytest.raises(BackupError) as err:
        read_backup(small.name, actor=manager, dest_dir=folder)
    assert err.value.code == "backup.forbidden"
    for name in ("../console-secret.db", "notes.txt", str(tmp_path / "console-secret.db")):
        with pytest.raises(BackupError) as err:
            find_backup(name, folder)
        assert err.value.code == "restore.no_file"
    assert copy_command(big, host="lac-server") == f"scp lac@lac-server:{big} ."
    assert copy_command(Path("/srv/my backups/console-1.db"), host="h") == "scp lac@h:'/srv/my backups/console-1.db' ."
