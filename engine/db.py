"""Database engine, sessions and schema upgrade (Alembic).

`get_engine(url)` returns one SQLAlchemy engine per URL (cached). SQLite gets WAL, a busy
timeout, NORMAL sync and foreign keys; JSON is stored with readable Chinese.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, create_engine

from engine.config import ROOT, database_url
from engine.errors import EngineError
from engine.messages import register

register({
    "db.read_only": {
        "zh": "数据库当前是只读的，这次保存没有生效，您填写的内容仍保留在页面上。请联系管理员检查数据库文件的权限或只读设置后再保存。",
        "en": "The database is read-only right now, so this save did not happen; what you entered is still on "
              "the page. Ask the administrator to check the database file's permissions or read-only setting, "
              "then save again.",
    },
    "db.full": {
        "zh": "磁盘空间已满（或数据库已到容量上限），这次保存没有生效，您填写的内容仍保留在页面上。请联系管理员腾出空间后再保存。",
        "en": "The disk (or the database's size limit) is full, so this save did not happen; what you entered is "
              "still on the page. Ask the administrator to free some space, then save again.",
    },
    "db.write_failed": {
        "zh": "写入数据库时出错（{detail}），这次保存没有生效，您填写的内容仍保留在页面上。请稍后重试；如仍失败请联系管理员。",
        "en": "Writing to the database failed ({detail}), so this save did not happen; what you entered is still "
              "on the page. Try again in a moment; if it keeps failing, tell the administrator.",
    },
})


class StorageFailure(EngineError):
    """The database refused a write (read-only, full, I/O error); the transaction was rolled back."""


# (code, lower-case fragments of the driver's message or SQLSTATEs) -- SQLite and PostgreSQL
_WRITE_FAILURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("db.read_only", ("readonly database", "read-only database", "read-only transaction", "25006")),
    ("db.full", ("database or disk is full", "no space left on device", "could not extend file", "53100",
                 "disk full")),
    ("db.write_failed", ("disk i/o error", "database disk image is malformed", "unable to open database file",
                         "58030")),
)


def _driver_error(exc: BaseException) -> bool:
    """An error of the DB-API driver itself (sqlite3 or psycopg), not wrapped by SQLAlchemy."""
    return isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg")


def write_failure(exc: BaseException) -> StorageFailure | None:
    """The coded error for a database refusing a write, or None when `exc` is something else."""
    if isinstance(exc, DBAPIError):
        orig = getattr(exc, "orig", None)
    elif _driver_error(exc):  # raised by a raw DB-API cursor (engine.hotpath)
        orig = exc
    else:
        return None
    state = str(getattr(orig, "sqlstate", "") or getattr(orig, "pgcode", "") or "")
    message = str(orig if orig is not None else exc).lower()
    for code, needles in _WRITE_FAILURES:
        if state in needles or any(n in message for n in needles if not n.isdigit()):
            detail = message.splitlines()[0][:120] if message else type(exc).__name__
            return StorageFailure(code, detail=detail)
    return None


_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
SQLITE_BUSY_MS = 30_000


def _json_dumps(obj: Any) -> str:
    """JSON text as stored (readable Chinese, compact): orjson (~4x faster on a record's data), with
    the standard library for what orjson refuses (e.g. integers beyond 64 bits)."""
    try:
        return orjson.dumps(obj, default=str).decode()  # str keys (a record's data): the usual case
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
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
            # The most recently used connection first: each SQLite connection has its own page cache,
            # which a write through another connection makes stale (FIFO would re-read it every time).
            pool_use_lifo=True,
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
    A database that refuses the write (read-only, disk full, I/O error) raises `StorageFailure`
    (an EngineError with a zh/en message: "db.read_only" / "db.full" / "db.write_failed") after
    the rollback, instead of the driver's raw error.
    """
    bind = _immediate(engine) if write else engine
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException as exc:
            with suppress(DBAPIError):  # the connection is gone as well: nothing was committed anyway
                session.rollback()
            failure = write_failure(exc) if write else None
            if failure is not None:
                raise failure from exc
            raise


@contextmanager
def raw_write(engine: Engine) -> Iterator[Any]:
    """A DB-API connection (as a pool fairy) inside one write transaction, for the hottest write
    path (`engine.hotpath`): no SQLAlchemy Connection or Session around it.

    Same contract as `session_scope(engine, write=True)`: BEGIN IMMEDIATE on SQLite (the driver runs
    in autocommit mode, so the transaction is ours), commit on success, roll back on any error, and a
    refused write raises `StorageFailure`. Writer connections are kept aside for this path
    (`_Writers`: no pool check-out, reset or ping per record)."""
    writers = _writers(engine)
    fairy = writers.take() if writers is not None else engine.raw_connection()
    try:
        driver = fairy.dbapi_connection  # the driver's own (sqlite3, psycopg): no async adapter
        if engine.dialect.name == "sqlite":
            driver.execute("BEGIN IMMEDIATE")
        yield fairy
        driver.commit()
    except BaseException as exc:
        with suppress(Exception):
            fairy.dbapi_connection.rollback()
        failure = write_failure(exc)
        if failure is not None:
            raise failure from exc
        raise
    finally:
        if writers is not None:
            writers.give_back(fairy)
        else:
            fairy.close()


class _Writers:
    """Idle writer connections of one engine, most recent first (a SQLite connection has its own page
    cache, warm after its last write; a PostgreSQL one skips the pool's ping per check-out). They are
    detached from the pool, so a check-out is a list pop; the engine's "engine_disposed" event closes
    them (restore, tests, `dispose_engine`). A PostgreSQL connection idle for longer than
    `PING_AFTER` seconds is pinged first, as the pool would (a server restart leaves it dead)."""

    KEEP = 4  # idle connections kept; more are closed on return (a burst of writers opens its own)
    PING_AFTER = 10.0

    def __init__(self, engine: Engine) -> None:
        self.engine = weakref.ref(engine)  # the engine owns this (its event), not the other way round
        self.ping = engine.dialect.name == "postgresql"
        self.idle: list[Any] = []
        self.generation = 0
        self.pid = os.getpid()
        event.listen(engine, "engine_disposed", self.close_all)

    def take(self) -> Any:
        if self.pid != os.getpid():  # a forked child: the parent's connections are not its to use or close
            self.idle, self.pid = [], os.getpid()
            self.generation += 1
        while True:
            try:
                fairy = self.idle.pop()  # atomic: two threads never get the same connection
            except IndexError:
                return self._new()
            if self._alive(fairy):
                return fairy
            with suppress(Exception):
                fairy.close()

    def _new(self) -> Any:
        engine = self.engine()
        assert engine is not None, "an engine in use is alive"
        fairy = engine.raw_connection()  # connect event (SQLite pragmas); the pool's ping (PostgreSQL)
        fairy.detach()
        fairy.info["lac_writer_generation"] = self.generation
        return fairy

    def _alive(self, fairy: Any) -> bool:
        if not self.ping or time.monotonic() - fairy.info.get("lac_writer_used", 0.0) < self.PING_AFTER:
            return True
        try:
            fairy.dbapi_connection.execute("SELECT 1")
            fairy.dbapi_connection.rollback()
        except Exception:
            return False
        return True

    def give_back(self, fairy: Any) -> None:
        if (_idle(fairy.dbapi_connection) and fairy.info.get("lac_writer_generation") == self.generation
                and len(self.idle) < self.KEEP):
            fairy.info["lac_writer_used"] = time.monotonic()
            self.idle.append(fairy)
            return
        with suppress(Exception):
            fairy.close()

    def close_all(self, *_: Any) -> None:
        self.generation += 1  # connections in use now are closed when they come back
        while self.idle:
            with suppress(Exception):
                self.idle.pop().close()


def _idle(conn: Any) -> bool:
    """A driver connection that is open and outside any transaction (sqlite3 or psycopg)."""
    info = getattr(conn, "info", None)
    if info is not None and hasattr(info, "transaction_status"):  # psycopg: 0 is IDLE
        return not conn.closed and not conn.broken and int(info.transaction_status) == 0
    return not getattr(conn, "in_transaction", True)


_WRITERS: weakref.WeakKeyDictionary[Engine, _Writers | None] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def _writers(engine: Engine) -> _Writers | None:
    """The kept writer connections of a SQLite file or PostgreSQL engine (None: use the pool)."""
    try:
        return _WRITERS[engine]
    except KeyError:
        pass
    with _WRITERS_LOCK:
        if engine not in _WRITERS:
            kept = isinstance(engine.pool, QueuePool) and (
                engine.dialect.name == "postgresql"
                or (engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")))
            _WRITERS[engine] = _Writers(engine) if kept else None
        return _WRITERS[engine]


_IMMEDIATE: dict[int, Engine] = {}


def _immediate(engine: Engine) -> Engine:
    """The engine with SQLite's BEGIN IMMEDIATE option (made once per engine)."""
    bound = _IMMEDIATE.get(id(engine))
    if bound is None or getattr(bound, "_proxied", None) is not engine:
        bound = _IMMEDIATE[id(engine)] = engine.execution_options(sqlite_immediate=True)
    return bound


_URL_KEYS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def url_key(engine: Engine) -> str:
    """The engine's URL without its password: the key of per-database caches (made once per engine)."""
    try:
        return _URL_KEYS[engine]
    except KeyError:
        key = _URL_KEYS[engine] = engine.url.render_as_string(hide_password=True)
        return key


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
