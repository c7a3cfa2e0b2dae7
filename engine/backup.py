"""Backups and restores of the whole database.

- SQLite: ``backup`` uses the sqlite3 online backup API: a consistent copy while the app keeps
  writing, saved as ``data/backups/console-YYYYmmdd-HHMMSS.db``. ``restore`` checks the file
  (a SQLite database with our tables that passes ``PRAGMA integrity_check``), keeps the current
  database as ``<name>.bak`` and copies the backup into the live file with the same API (so
  other connections see either the old or the new database, never half of one).
- PostgreSQL: ``backup`` writes a logical snapshot of every table, read in one REPEATABLE READ
  transaction, as gzip-compressed JSON lines (``.lacdump``). ``restore`` loads such a file into
  an empty migrated database (a non-empty one only with ``force``). A ``.lacdump`` can also be
  made from and restored into SQLite, which is how data moves between the two.

Both write an audit event (action ``backup`` / ``restore_db``).

Downloads from the backups page: listing backups reads only their directory entries
(``backup_files``); a file is read only when an admin downloads that one file (``read_backup``), and
only up to ``download_limit()`` bytes (env ``LAC_BACKUP_DOWNLOAD_MAX_MB``, default 200; 0 = never in
the browser). A larger backup is copied off the machine from the server (``copy_command``; DEPLOY.md
section 1.5). Each download is audited (``audit_download``).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shlex
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, inspect, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError
from sqlmodel import SQLModel

import models.tables  # noqa: F401  (registers the tables)
from engine.config import DATA_DIR
from engine.db import dispose_engine, get_engine, is_postgres, session_scope
from engine.errors import EngineError
from engine.messages import register

DUMP_FORMAT = "lacdump"
DUMP_VERSION = 1
DUMP_SUFFIX = ".lacdump"
BATCH = 2000
REQUIRED_TABLES = ("users", "forms", "form_versions", "submissions", "audit_events")
BACKUP_DIR = DATA_DIR / "backups"  # the default
BACKUP_DIR_ENV = "LAC_BACKUP_DIR"  # the nightly script's setting (deploy/lac-backup.sh) too
DOWNLOAD_LIMIT_ENV = "LAC_BACKUP_DOWNLOAD_MAX_MB"
DOWNLOAD_LIMIT_MB = 200.0  # larger backups are not offered as browser downloads (memory)

register(
    {
        "backup.failed": {"zh": "备份失败：{reason}", "en": "Backup failed: {reason}"},
        "restore.no_file": {"zh": "找不到备份文件「{file}」。", "en": "Backup file '{file}' not found."},
        "restore.unknown_kind": {
            "zh": "「{file}」不是本系统的备份文件（应为 .db 或 .lacdump）。",
            "en": "'{file}' is not a backup of this console (expected .db or .lacdump).",
        },
        "restore.not_sqlite": {
            "zh": "「{file}」不是 SQLite 数据库文件。",
            "en": "'{file}' is not a SQLite database file.",
        },
        "restore.corrupt": {
            "zh": "备份文件「{file}」已损坏（完整性检查：{detail}），未做任何改动。",
            "en": "Backup file '{file}' is damaged (integrity check: {detail}); nothing was changed.",
        },
        "restore.not_ours": {
            "zh": "「{file}」不是本系统的数据库（缺少数据表：{tables}）。",
            "en": "'{file}' is not a database of this console (missing tables: {tables}).",
        },
        "restore.newer_schema": {
            "zh": "备份来自更新版本的程序（数据库版本 {revision}），请先升级程序再恢复。",
            "en": "The backup comes from a newer program (schema {revision}); upgrade the program first.",
        },
        "restore.schema_mismatch": {
            "zh": "目标数据库的结构版本（{target}）与备份（{dump}）不同，请恢复到一个新建的空数据库。",
            "en": "The target database schema ({target}) differs from the backup's ({dump}); "
            "restore into a new, empty database.",
        },
        "restore.sqlite_only": {
            "zh": "SQLite 备份文件（.db）只能恢复到 SQLite 数据库；迁移到 PostgreSQL 请使用 .lacdump 备份。",
            "en": "A SQLite backup (.db) can only be restored to SQLite; use a .lacdump backup to move to PostgreSQL.",
        },
        "restore.not_empty": {
            "zh": "目标数据库不是空的（{tables}）。恢复会覆盖现有数据；确认无误后请加 --force 重试。",
            "en": "The target database is not empty ({tables}). Restoring replaces its data; "
            "add --force if that is what you want.",
        },
        "restore.bad_dump": {
            "zh": "备份文件「{file}」内容有误：{reason}",
            "en": "Backup file '{file}' is malformed: {reason}",
        },
        "backup.too_large_download": {
            "zh": "备份文件「{file}」有 {size} MB，超过网页下载上限 {limit} MB，请在服务器上复制。",
            "en": "Backup file '{file}' is {size} MB, over the {limit} MB browser download limit; copy it on the server.",
        },
        "backup.bad_limit": {
            "zh": "环境变量 {name} 的值「{value}」无效：应为不小于 0 的数字（单位 MB）。",
            "en": "The environment variable {name} has an invalid value '{value}': expected a number of MB, 0 or more.",
        },
        "backup.forbidden": {
            "zh": "只有管理员可以下载备份。", "en": "Only administrators may download backups.",
        },
    }
)


class BackupError(EngineError):
    """A backup or restore could not be made; nothing was changed."""


@dataclass
class RestoreSummary:
    file: str
    kind: str  # "sqlite" | "lacdump"
    counts: dict[str, int] = field(default_factory=dict)
    previous: str | None = None  # the kept old database file (.bak), SQLite only

    def describe(self, lang: str = "zh") -> str:
        head = "恢复完成" if lang == "zh" else "Restore finished"
        lines = [f"{head}: {self.file}"]
        if self.previous:
            lines.append(
                ("原数据库已保存为 " if lang == "zh" else "Previous database kept as ") + self.previous
            )
        lines += [f"  {name}: {count}" for name, count in self.counts.items()]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# helpers


def _import_models() -> None:
    """Register every table module of the models package on SQLModel.metadata."""
    import importlib
    import pkgutil

    import models

    for info in pkgutil.iter_modules(models.__path__):
        importlib.import_module(f"models.{info.name}")


def tables(conn: Connection | None = None) -> list[Table]:
    """Our tables in dependency order (parents first); with `conn`, only those that exist there."""
    _import_models()
    found = list(SQLModel.metadata.sorted_tables)
    if conn is None:
        return found
    existing = set(inspect(conn).get_table_names())
    return [t for t in found if t.name in existing]


def sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise BackupError("backup.failed", reason="in-memory database")
    return Path(database)


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    for n in range(1, 1000):
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise BackupError("backup.failed", reason=f"too many backups named {path.name}")


def _audit(engine: Engine, actor: Any, action: str, detail: dict[str, Any]) -> None:
    from engine.audit import record

    with session_scope(engine) as session:
        record(session, actor or "system", action, "system", "database", detail=detail)


def table_counts(engine: Engine) -> dict[str, int]:
    out: dict[str, int] = {}
    with engine.connect() as conn:
        for table in tables(conn):
            out[table.name] = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    return out


def _revision(conn: Connection) -> str | None:
    try:
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except Exception:
        return None
    return row[0] if row else None


def _known_revisions() -> list[str]:
    """Alembic revisions of this program, oldest first."""
    from alembic.script import ScriptDirectory

    from engine.db import _alembic_config

    script = ScriptDirectory.from_config(_alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _migrate(engine: Engine, target: str = "head") -> None:
    from alembic import command

    from engine.db import _alembic_config

    cfg = _alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)
        conn.commit()


# --------------------------------------------------------------------------------------------
# backup


def backup(
    engine: Engine,
    dest_dir: str | Path | None = None,
    *,
    fmt: str | None = None,
    actor: Any = None,
    progress: Any = None,
) -> Path:
    """Write a consistent backup and return its path.

    fmt: "sqlite" (SQLite only; the default there) or "lacdump" (the default on PostgreSQL).
    """
    dest = Path(dest_dir) if dest_dir else backup_dir()
    dest.mkdir(parents=True, exist_ok=True)
    fmt = fmt or ("lacdump" if is_postgres(engine) else "sqlite")
    if fmt == "sqlite":
        if engine.dialect.name != "sqlite":
            raise BackupError("restore.sqlite_only")
        path = _unique(dest / f"console-{_stamp()}.db")
        _sqlite_backup(engine, path, progress)
    elif fmt == "lacdump":
        path = _unique(dest / f"console-{_stamp()}{DUMP_SUFFIX}")
        _dump(engine, path, progress)
    else:
        raise BackupError("backup.failed", reason=f"unknown format {fmt!r}")
    _audit(engine, actor, "backup", {"file": path.name, "format": fmt, "bytes": path.stat().st_size})
    return path


def _sqlite_backup(engine: Engine, path: Path, progress: Any = None) -> None:
    src_path = sqlite_path(engine)
    tmp = path.with_name(path.name + ".part")
    src = sqlite3.connect(str(src_path), timeout=30)
    try:
        dst = sqlite3.connect(str(tmp))
        try:

            def _progress(_status: int, remaining: int, total: int) -> None:
                if progress:
                    progress(total - remaining, total)

            # pages=-1: one step, under one read transaction: a consistent snapshot even while
            # other connections write (WAL readers never block writers).
            src.backup(dst, pages=-1, progress=_progress)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    tmp.replace(path)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _dump(engine: Engine, path: Path, progress: Any = None) -> None:
    tmp = path.with_name(path.name + ".part")
    conn = engine.connect()
    try:
        if is_postgres(engine):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin(), gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as out:
            # One snapshot for everything (REPEATABLE READ on PostgreSQL; one read txn on SQLite).
            dumped = tables(conn)
            counts = {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in dumped
            }
            total = sum(counts.values())
            header = {
                "format": DUMP_FORMAT,
                "version": DUMP_VERSION,
                "dialect": engine.dialect.name,
                "revision": _revision(conn),
                "created_at": datetime.now(UTC).isoformat(),
                "counts": counts,
            }
            out.write(json.dumps(header, ensure_ascii=False) + "\n")
            done = 0
            for table in dumped:
                cols = [c.name for c in table.columns]
                out.write(
                    json.dumps({"table": table.name, "columns": cols, "count": counts[table.name]}) + "\n"
                )
                order = list(table.primary_key.columns)
                result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
                    select(table).order_by(*order)
                )
                for row in result:
                    out.write(json.dumps([_encode(v) for v in row], ensure_ascii=False) + "\n")
                    done += 1
                    if progress and done % BATCH == 0:
                        progress(done, total)
            out.write(json.dumps({"end": True, "rows": done}) + "\n")
        if progress:
            progress(total, total)
    finally:
        conn.close()
    tmp.replace(path)


# --------------------------------------------------------------------------------------------
# restore


def restore(engine_url: str, file: str | Path, *, force: bool = False, actor: Any = None) -> RestoreSummary:
    """Restore `file` into the database at `engine_url`; returns counts per table afterwards."""
    path = Path(file)
    if not path.is_file():
        raise BackupError("restore.no_file", file=str(path))
    kind = _kind(path)
    if kind == "sqlite":
        summary = _restore_sqlite(engine_url, path)
    else:
        summary = _restore_dump(engine_url, path, force)
    engine = get_engine(engine_url)
    _audit(engine, actor, "restore_db", {"file": path.name, "kind": kind, "counts": summary.counts})
    return summary


def _kind(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if head[:2] == b"\x1f\x8b":
        return "lacdump"
    if path.suffix == ".db":
        raise BackupError("restore.not_sqlite", file=str(path))
    raise BackupError("restore.unknown_kind", file=str(path))


def verify_sqlite_file(path: Path) -> str | None:
    """Check a SQLite backup; returns its schema revision. Raises BackupError when unusable."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError("restore.not_sqlite", file=str(path)) from exc
    try:
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise BackupError("restore.corrupt", file=str(path), detail=str(exc)) from exc
        if rows != ["ok"]:
            raise BackupError("restore.corrupt", file=str(path), detail="; ".join(rows[:5]))
        missing = [t for t in (*REQUIRED_TABLES, "alembic_version") if t not in names]
        if missing:
            raise BackupError("restore.not_ours", file=str(path), tables=", ".join(missing))
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def _check_revision(revision: str | None) -> None:
    if revision is not None and revision not in _known_revisions():
        raise BackupError("restore.newer_schema", revision=revision)


def _restore_sqlite(engine_url: str, path: Path) -> RestoreSummary:
    if not engine_url.startswith("sqlite"):
        raise BackupError("restore.sqlite_only")
    target = Path(make_url(engine_url).database or "")
    _check_revision(verify_sqlite_file(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = None
    dispose_engine(engine_url)
    if target.exists():
        previous_path = target.with_name(target.name + ".bak")
        live = sqlite3.connect(str(target), timeout=30)
        try:
            bak = sqlite3.connect(str(previous_path))
            try:
                live.backup(bak)
            finally:
                bak.close()
        finally:
            live.close()
        previous = str(previous_path)
    # Copy the backup into the live file through SQLite (locks held, atomic for other readers).
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(str(target), timeout=30)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")
            result = dst.execute("PRAGMA integrity_check").fetchone()
            if not result or result[0] != "ok":  # pragma: no cover - copy of a verified file
                raise BackupError("restore.corrupt", file=str(target), detail=str(result))
        finally:
            dst.close()
    finally:
        src.close()
    engine = get_engine(engine_url)
    _migrate(engine)
    return RestoreSummary(file=str(path), kind="sqlite", counts=table_counts(engine), previous=previous)


def _read_dump(path: Path) -> Iterator[Any]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackupError("restore.bad_dump", file=str(path), reason=str(exc)) from exc


def _python_type(type_: Any) -> Any:
    impl = getattr(type_, "impl", None)
    if impl is not None and not isinstance(impl, type):
        type_ = impl
    try:
        return type_.python_type
    except NotImplementedError:
        return None


def _decoder(table: Table, columns: list[str]) -> Any:
    kinds: list[str] = []
    for name in columns:
        col = table.columns.get(name)
        python_type = _python_type(col.type) if col is not None else None
        if python_type is datetime:
            kinds.append("datetime")
        elif python_type is date:
            kinds.append("date")
        elif python_type is time:
            kinds.append("time")
        elif python_type is Decimal:
            kinds.append("decimal")
        elif python_type is bytes:
            kinds.append("bytes")
        else:
            kinds.append("")

    def decode(values: list[Any]) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, kind, value in zip(columns, kinds, values, strict=True):
            if value is not None and kind:
                if kind == "datetime":
                    value = datetime.fromisoformat(value)
                    if value.tzinfo is None:
                        value = value.replace(tzinfo=UTC)
                elif kind == "date":
                    value = date.fromisoformat(value)
                elif kind == "time":
                    value = time.fromisoformat(value)
                elif kind == "decimal":
                    value = Decimal(value)
                else:
                    value = base64.b64decode(value)
            row[name] = value
        return row

    return decode


def _self_refs(table: Table) -> list[str]:
    return [fk.parent.name for fk in table.foreign_keys if fk.column.table is table]


def _restore_dump(engine_url: str, path: Path, force: bool) -> RestoreSummary:
    lines = _read_dump(path)
    header = next(lines, None)
    if not isinstance(header, dict) or header.get("format") != DUMP_FORMAT:
        raise BackupError("restore.bad_dump", file=str(path), reason="no lacdump header")
    dump_rev = header.get("revision")
    _check_revision(dump_rev)
    engine = get_engine(engine_url)
    with engine.connect() as conn:
        target_rev = _revision(conn)
    known = _known_revisions()
    if target_rev is None:
        _migrate(engine, dump_rev or "head")
    elif dump_rev != target_rev:
        raise BackupError("restore.schema_mismatch", target=target_rev, dump=dump_rev)
    counts = table_counts(engine)
    busy = {name: n for name, n in counts.items() if n}
    if busy and not force:
        raise BackupError("restore.not_empty", tables=", ".join(f"{k}={v}" for k, v in busy.items()))
    by_name = {t.name: t for t in tables()}
    try:  # one transaction: a dump that breaks half way leaves the database as it was
        with engine.begin() as conn:
            for table in reversed(tables(conn)):
                conn.execute(table.delete())
            _load(conn, lines, by_name, path)
            if is_postgres(engine):
                _reset_sequences(conn)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError,
            IntegrityError, DataError, ProgrammingError) as exc:  # rows that are not what the header says
        raise BackupError("restore.bad_dump", file=str(path), reason=f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    if dump_rev and dump_rev != known[-1]:
        _migrate(engine)
    return RestoreSummary(file=str(path), kind="lacdump", counts=table_counts(engine))


def _load(conn: Connection, lines: Iterator[Any], by_name: dict[str, Table], path: Path) -> None:
    table: Table | None = None
    decode: Any = None
    refs: list[str] = []
    seen: set[Any] = set()
    fixups: list[tuple[Any, dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    ended = False

    def flush() -> None:
        if table is not None and batch:
            conn.execute(insert(table), batch)
        batch.clear()

    def finish_table() -> None:
        flush()
        if table is not None:
            for pk, values in fixups:
                conn.execute(table.update().where(table.c.id == pk).values(**values))
        fixups.clear()
        seen.clear()

    for item in lines:
        if isinstance(item, dict):
            if item.get("end"):
                ended = True
                break
            finish_table()
            name = item.get("table")
            table = by_name.get(name)
            if table is None:
                raise BackupError("restore.bad_dump", file=str(path), reason=f"unknown table {name}")
            decode = _decoder(table, item["columns"])
            refs = _self_refs(table)
            continue
        if table is None:
            raise BackupError("restore.bad_dump", file=str(path), reason="row before table")
        row = decode(item)
        if refs:
            later = {c: row[c] for c in refs if row.get(c) is not None and row[c] not in seen}
            if later:
                fixups.append((row["id"], later))
                row.update({c: None for c in later})
            seen.add(row.get("id"))
        batch.append(row)
        if len(batch) >= BATCH:
            flush()
    finish_table()
    if not ended:
        raise BackupError("restore.bad_dump", file=str(path), reason="file is truncated")


def _reset_sequences(conn: Connection) -> None:
    for table in tables(conn):
        if "id" in table.columns and table.c.id.primary_key and table.c.id.autoincrement:
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                )
            )


def audit_download(engine: Engine, file_name: str, *, actor: Any, size: int | None = None) -> None:
    """A backup file (every record, unmasked) was handed out for download: who, when, which file."""
    _audit(engine, actor, "export", {"backup_file": file_name, "bytes": size, "purpose": "backup download",
                                     "sensitive": True, "revealed": True})


# --------------------------------------------------------------------------------------------
# downloads (backups page): list without reading, read one file on request, up to a limit


@dataclass(frozen=True)
class BackupFile:
    """One backup as its directory entry describes it (the file is not opened)."""

    path: Path
    size: int  # bytes
    modified: datetime  # aware UTC

    @property
    def name(self) -> str:
        return self.path.name


def backup_dir() -> Path:
    """Where backups are made and listed: `LAC_BACKUP_DIR` when set (as for the nightly script, so the
    backups page shows its backups too), else data/backups."""
    configured = os.environ.get(BACKUP_DIR_ENV, "").strip()
    return Path(configured) if configured else BACKUP_DIR


def backup_files(dest_dir: str | Path | None = None) -> list[BackupFile]:
    """The backups in `dest_dir` (default `backup_dir()`), newest first: names and stat() only."""
    dest = Path(dest_dir) if dest_dir else backup_dir()
    if not dest.is_dir():
        return []
    found: list[BackupFile] = []
    for p in dest.iterdir():
        if not (p.name.startswith("console-") and p.suffix in (".db", DUMP_SUFFIX)):
            continue
        try:
            st = p.stat()
        except OSError:  # removed meanwhile (e.g. by the nightly pruning)
            continue
        if p.is_file():
            found.append(BackupFile(p, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
    return sorted(found, key=lambda f: (f.modified, f.name), reverse=True)


def find_backup(name: str, dest_dir: str | Path | None = None) -> BackupFile:
    """The listed backup called `name` (never a path elsewhere); BackupError if there is none."""
    for f in backup_files(dest_dir):
        if f.name == name:
            return f
    raise BackupError("restore.no_file", file=name)


def download_limit() -> int:
    """Largest backup (bytes) offered as a browser download: env LAC_BACKUP_DOWNLOAD_MAX_MB (MB,
    default 200; 0: none). The whole file is held in the server's memory while it is handed out."""
    raw = os.environ.get(DOWNLOAD_LIMIT_ENV, "").strip()
    if not raw:
        return int(DOWNLOAD_LIMIT_MB * 1_048_576)
    try:
        mb = float(raw)
    except ValueError:
        mb = -1.0
    if not mb >= 0 or mb == float("inf"):
        raise BackupError("backup.bad_limit", name=DOWNLOAD_LIMIT_ENV, value=raw)
    return int(mb * 1_048_576)


def downloadable(f: BackupFile, limit: int | None = None) -> bool:
    limit = download_limit() if limit is None else limit
    return limit > 0 and f.size <= limit


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f}"


def read_backup(name: str, *, actor: Any, dest_dir: str | Path | None = None, limit: int | None = None) -> bytes:
    """The bytes of ONE listed backup, for a browser download (admins only; refused above the limit)."""
    if actor is None or not actor.can("backup"):
        raise BackupError("backup.forbidden")
    f = find_backup(name, dest_dir)
    limit = download_limit() if limit is None else limit
    if limit <= 0:
        raise BackupError("backup.too_large_download", file=name, size=_mb(f.size), limit=_mb(0))
    with f.path.open("rb") as fh:  # read at most limit + 1 bytes, whatever the file grew to
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise BackupError("backup.too_large_download", file=name, size=_mb(max(f.size, len(data))), limit=_mb(limit))
    return data


def copy_command(path: Path, host: str | None = None, user: str = "lac") -> str:
    """The command to run on ANOTHER computer to copy `path` off this server (OpenSSH scp,
    also on Windows 10+). `host` defaults to this server's host name."""
    return f"scp {user}@{host or socket.gethostname()}:{shlex.quote(str(path))} ."
