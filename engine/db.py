"""Database engine, sessions and schema upgrade (Alembic).

`get_engine(url)` returns one SQLAlchemy engine per URL (cached). SQLite gets WAL, a busy
timeout, NORMAL sync and foreign keys; JSON is stored with readable Chinese.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from engine.config import ROOT, database_url

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
SQLITE_BUSY_MS = 30_000


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Write transactions take the write lock at BEGIN, so concurrent writers queue on
    # busy_timeout instead of failing on a read->write lock upgrade (SQLITE_BUSY, no retry).
    # Read transactions stay deferred so that readers never wait for each other.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str) -> Engine:
    """A new engine for `url` (use `get_engine` to share one)."""
    if url.startswith("sqlite"):
        eng = create_engine(
            url,
            json_serializer=_json_dumps,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_MS / 1000, "isolation_level": None},
        )
        event.listen(eng, "connect", _sqlite_pragmas)
        event.listen(eng, "begin", _sqlite_begin)
        return eng
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, json_serializer=_json_dumps, pool_pre_ping=True, pool_size=10, max_overflow=20)


def get_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    with _LOCK:
        eng = _ENGINES.get(url)
        if eng is None:
            eng = _ENGINES[url] = make_engine(url)
        return eng


def dispose_engine(url: str) -> None:
    with _LOCK:
        eng = _ENGINES.pop(url, None)
    if eng is not None:
        eng.dispose()


@contextmanager
def session_scope(engine: Engine, write: bool = True) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error.

    `write=True` takes SQLite's write lock up front (BEGIN IMMEDIATE); use `write=False` for reads.
    """
    bind = engine.execution_options(sqlite_immediate=True) if write else engine
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


MIGRATION_LOCK_ID = 7_245_001  # PostgreSQL advisory lock key for schema upgrade + first load


def upgrade(engine: Engine) -> None:
    """Bring the schema up to the newest migration. Safe to call from several processes at once."""
    from alembic import command

    cfg = _alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        if is_postgres(engine):
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            if is_postgres(engine):
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})
                conn.commit()
