"""Moving the whole database to a new, empty one: SQLite → PostgreSQL (or any of the two → any).

`move_database(src_url, dst_url)` copies every table of the models (`SQLModel.metadata.sorted_tables`,
parents first, so a table added later is moved too): users, forms and all their versions, records,
tallies, the audit log, reference lists and items, settings, sequences, change stamps, decisions...

- **The source is never written.** A SQLite source is opened read-only (`file:...?mode=ro` with
  `PRAGMA query_only`), a PostgreSQL one in read-only REPEATABLE READ transactions. Every table is
  read inside one transaction: the copy is one consistent moment of the source.
- **The target must be new and empty.** It is migrated to the source's schema revision first; any
  row in any of our tables is refused (`move.target_not_empty`) and nothing is changed there.
- **Streams.** Rows are read in keyset pages of `batch` (5,000) rows ordered by primary key and
  inserted page by page, so memory does not grow with the data. Primary keys are kept; PostgreSQL
  sequences are set to the largest id afterwards.
- **Verified.** Per table, the row count and a SHA-256 over a canonical JSON line per row (ordered
  by primary key; datetimes as UTC ISO, JSON values with sorted keys, SQL NULL told apart from a
  JSON null) are computed on the source while copying and on the target afterwards, in the same
  way. The copy runs in one target transaction: on a mismatch or any error it is rolled back and
  the target stays empty.
- While the copy runs, the target is held under the first-start advisory lock (PostgreSQL) or the
  write lock (SQLite), so a console started against it meanwhile waits instead of loading its
  built-in forms into the half-filled database.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    String,
    Table,
    and_,
    create_engine,
    event,
    func,
    insert,
    inspect,
    null,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from engine.errors import EngineError
from engine.messages import register

BATCH = 5000
SUPPORTED = ("sqlite", "postgresql")

register(
    {
        "move.bad_url": {
            "zh": "数据库地址「{url}」无法识别：{detail}。示例：postgresql://用户名@主机:5432/数据库名 或 sqlite:///路径/console.db",
            "en": "Database URL '{url}' is not valid: {detail}. Examples: postgresql://user@host:5432/dbname "
            "or sqlite:///path/console.db",
        },
        "move.unsupported": {
            "zh": "不支持的数据库类型「{kind}」：只能在 SQLite 与 PostgreSQL 之间迁移。",
            "en": "Unsupported database kind '{kind}': only SQLite and PostgreSQL are supported.",
        },
        "move.same_database": {
            "zh": "源数据库和目标数据库是同一个（{url}）。请指定一个新建的空数据库作为目标。",
            "en": "The source and the target are the same database ({url}). Give a new, empty database as the target.",
        },
        "move.source_missing": {
            "zh": "找不到源数据库文件「{path}」。",
            "en": "The source database file '{path}' does not exist.",
        },
        "move.source_memory": {
            "zh": "内存数据库不能迁移。",
            "en": "An in-memory database cannot be moved.",
        },
        "move.cannot_connect_source": {
            "zh": "无法连接源数据库（{url}）：{detail}",
            "en": "Cannot connect to the source database ({url}): {detail}",
        },
        "move.cannot_connect_target": {
            "zh": "无法连接目标数据库（{url}）：{detail}",
            "en": "Cannot connect to the target database ({url}): {detail}",
        },
        "move.source_not_console": {
            "zh": "源数据库（{url}）不是本系统的数据库（缺少：{tables}）。",
            "en": "The source ({url}) is not a database of this console (missing: {tables}).",
        },
        "move.source_newer": {
            "zh": "源数据库来自更新版本的程序（数据库版本 {revision}），请先升级本程序再迁移。",
            "en": "The source comes from a newer program (schema {revision}); upgrade this program first.",
        },
        "move.target_not_empty": {
            "zh": "目标数据库不是空的（{tables}），已拒绝迁移，目标未做任何改动。请新建一个空数据库作为目标"
            "（不要先用它启动系统，系统启动时会载入内置表单）。",
            "en": "The target database is not empty ({tables}); the move was refused and nothing was changed "
            "there. Create a new, empty database as the target (do not start the console on it first: a start "
            "loads the built-in forms).",
        },
        "move.target_schema": {
            "zh": "目标数据库已有不同的结构版本（目标 {target}，源 {source}）。请使用一个新建的空数据库。",
            "en": "The target already has a different schema (target {target}, source {source}). "
            "Use a new, empty database.",
        },
        "move.target_foreign": {
            "zh": "目标数据库中已有本系统的数据表，但没有结构版本记录（{tables}）。请使用一个新建的空数据库。",
            "en": "The target already has tables of this console but no schema version ({tables}). "
            "Use a new, empty database.",
        },
        "move.copy_failed": {
            "zh": "复制数据表「{table}」时出错，已全部撤销（目标仍为空）：{detail}",
            "en": "Copying table '{table}' failed; everything was rolled back (the target is still empty): {detail}",
        },
        "move.verify_failed": {
            "zh": "复制后的核对不一致（{tables}），已全部撤销（目标仍为空）。源数据库未被改动。",
            "en": "The copy did not verify ({tables}); everything was rolled back (the target is still empty). "
            "The source was not changed.",
        },
        "move.db_error": {
            "zh": "迁移时数据库出错（{detail}），已撤销；源数据库未被改动。",
            "en": "A database error stopped the move ({detail}); it was rolled back and the source was not changed.",
        },
    }
)


class MoveError(EngineError):
    """The move did not happen (the target is left as it was, the source is never changed).

    `summary` is set when the copy was made but did not verify (then rolled back)."""

    def __init__(self, code: str, *, summary: MoveSummary | None = None, **params: Any) -> None:
        self.summary = summary
        super().__init__(code, **params)


@dataclass(frozen=True)
class TableCheck:
    """One table: rows and checksum on each side."""

    table: str
    source_rows: int
    target_rows: int
    source_sha256: str
    target_sha256: str

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_sha256 == self.target_sha256


@dataclass
class MoveSummary:
    source: str  # URLs without passwords
    target: str
    revision: str | None
    tables: list[TableCheck] = field(default_factory=list)
    seconds: float = 0.0
    sequences_fixed: bool = False

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(t.source_rows for t in self.tables)

    def table(self, name: str) -> TableCheck:
        return next(t for t in self.tables if t.table == name)

    def describe(self, lang: str = "zh") -> str:
        zh = lang == "zh"
        head = ("数据表 table", "源 source", "目标 target", "SHA-256", "结果 result") if zh else (
            "table", "source rows", "target rows", "SHA-256", "result")
        rows = [
            (t.table, f"{t.source_rows:,}", f"{t.target_rows:,}", t.target_sha256[:16],
             ("一致 OK" if zh else "OK") if t.ok else ("不一致 MISMATCH" if zh else "MISMATCH"))
            for t in self.tables
        ]
        widths = [max(_width(r[i]) for r in [head, *rows]) for i in range(len(head))]

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(c + " " * (w - _width(c)) for c, w in zip(cells, widths, strict=True)).rstrip()

        out = [
            (f"源 / from:   {self.source}" if zh else f"from: {self.source}"),
            (f"目标 / to:   {self.target}" if zh else f"to:   {self.target}"),
            (f"结构版本 / schema: {self.revision}" if zh else f"schema: {self.revision}"),
            "",
            line(head),
            "  ".join("-" * w for w in widths),
            *[line(r) for r in rows],
            "",
        ]
        total = f"{self.rows:,}"
        if self.ok:
            out.append(f"全部 {len(self.tables)} 个数据表、{total} 行已复制并核对一致（{self.seconds:.1f} 秒）。"
                       if zh else f"All {len(self.tables)} tables, {total} rows copied and verified "
                       f"({self.seconds:.1f} s).")
        else:
            bad = ", ".join(t.table for t in self.tables if not t.ok)
            out.append(f"核对不一致：{bad}" if zh else f"Mismatch in: {bad}")
        return "\n".join(out)


def _width(text_: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text_)


# --------------------------------------------------------------------------------------------
# URLs and engines


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "?"


def _parse(url: str) -> Any:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise MoveError("move.bad_url", url=url.split("@")[-1], detail=str(exc)) from None
    kind = parsed.get_backend_name()
    if kind not in SUPPORTED:
        raise MoveError("move.unsupported", kind=kind)
    return parsed


def _identity(url: str) -> tuple:
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database.startswith("file:"):
            database = urllib.parse.unquote(database[5:].split("?", 1)[0])
        return ("sqlite", str(Path(database).resolve()) if database and database != ":memory:" else database)
    return ("postgresql", parsed.host or "localhost", parsed.port or 5432, parsed.database)


def _sqlite_file(parsed: Any) -> Path:
    database = parsed.database or ""
    if database.startswith("file:"):
        database = urllib.parse.unquote(database[5:].split("?", 1)[0])
    if not database or database == ":memory:":
        raise MoveError("move.source_memory")
    return Path(database)


def _pg_url(parsed: Any) -> Any:
    return parsed.set(drivername="postgresql+psycopg") if parsed.drivername == "postgresql" else parsed


def open_source(url: str) -> Engine:
    """A read-only engine on the source (never writes; see the module doc)."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if not path.is_file():
            raise MoveError("move.source_missing", path=str(path))
        uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)

        eng = create_engine("sqlite://", creator=connect, poolclass=NullPool)

        @event.listens_for(eng, "connect")
        def _read_only(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA query_only=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(eng, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")  # deferred: one read snapshot until the end

        return eng
    return create_engine(
        _pg_url(parsed), poolclass=NullPool, connect_args={"options": "-c default_transaction_read_only=on"},
    )


def open_target(url: str) -> Engine:
    from engine.db import make_engine

    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        _sqlite_file(parsed).parent.mkdir(parents=True, exist_ok=True)
    return make_engine(url)


def _connect(eng: Engine, which: str, url: str) -> Connection:
    try:
        return eng.connect()
    except SQLAlchemyError as exc:
        raise MoveError(f"move.cannot_connect_{which}", url=safe_url(url), detail=_first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


# --------------------------------------------------------------------------------------------
# schema


def _our_tables() -> list[Table]:
    from engine.backup import tables

    return tables()


def _revision(conn: Connection, names: set[str]) -> str | None:
    if "alembic_version" not in names:
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return row[0] if row else None


def _known_revisions() -> list[str]:
    from engine.backup import _known_revisions

    return _known_revisions()


def _busy(conn: Connection, tables: list[Table], names: set[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for table in tables:
        if table.name in names:
            n = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            if n:
                out[table.name] = n
    return out


def _busy_text(busy: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in busy.items())


def _migrate(eng: Engine, revision: str | None) -> None:
    """Bring the target to `revision` (head: under the usual advisory lock)."""
    from engine.db import upgrade

    if revision is None or revision == _known_revisions()[-1]:
        upgrade(eng)
        return
    from engine.backup import _migrate as migrate_to

    migrate_to(eng, revision)


def _prepare_target(eng: Engine, url: str, revision: str | None, tables: list[Table]) -> None:
    """Refuse a non-empty target; migrate an empty one to the source's revision."""
    ours = {t.name for t in tables}
    with _connect(eng, "target", url) as conn:
        names = set(inspect(conn).get_table_names())
        busy = _busy(conn, tables, names)
        target_rev = _revision(conn, names)
    if busy:
        raise MoveError("move.target_not_empty", tables=_busy_text(busy))
    if target_rev is None and names & ours:
        raise MoveError("move.target_foreign", tables=", ".join(sorted(names & ours)))
    known = _known_revisions()
    if target_rev is not None and target_rev != revision:
        older = target_rev in known and revision in known and known.index(target_rev) < known.index(revision)
        if not older:
            raise MoveError("move.target_schema", target=target_rev, source=revision)
    if target_rev != revision:
        _migrate(eng, revision)


# --------------------------------------------------------------------------------------------
# rows: keyset pages and the canonical form used for the checksums


@dataclass(frozen=True)
class _Plan:
    table: Table
    columns: list[str]  # copied columns (in both databases), in model order
    json_columns: frozenset[str]
    self_refs: tuple[str, ...]  # columns referring to this table's own id (submissions.parent_id)

    @property
    def name(self) -> str:
        return self.table.name


def _plan(table: Table, source_cols: set[str], target_cols: set[str]) -> _Plan:
    cols = [c.name for c in table.columns if c.name in source_cols and c.name in target_cols]
    json_cols = frozenset(c.name for c in table.columns if c.name in cols and isinstance(c.type, JSON))
    refs = tuple(fk.parent.name for fk in table.foreign_keys
                 if fk.column.table is table and fk.parent.name in cols)
    return _Plan(table, cols, json_cols, refs)


def _null_label(name: str) -> str:
    return f"_sqlnull_{name}"


def _ordered(column: Any, dialect: str) -> Any:
    # Byte order for text keys on PostgreSQL too (SQLite's BINARY collation), so that both sides
    # list the rows of settings / sequences / change_stamps in the same order.
    if dialect == "postgresql" and isinstance(column.type, String):
        return column.collate("C")
    return column


def _after(keys: list[Any], last: list[Any]) -> Any:
    """Rows after `last` in the order of `keys` (a keyset page condition, without row values)."""
    terms = []
    for i, key in enumerate(keys):
        equal = [keys[j] == last[j] for j in range(i)]
        terms.append(and_(*equal, key > last[i]))
    return or_(*terms)


def _pages(conn: Connection, plan: _Plan, batch: int) -> Iterator[list[Any]]:
    table = plan.table
    dialect = conn.dialect.name
    pk = [c.name for c in table.primary_key.columns]
    keys = [_ordered(table.c[name], dialect) for name in pk]
    columns = [table.c[name] for name in plan.columns]
    columns += [table.c[name].is_(None).label(_null_label(name)) for name in sorted(plan.json_columns)]
    stmt = select(*columns).order_by(*keys).limit(batch)
    last: list[Any] | None = None
    while True:
        query = stmt if last is None else stmt.where(_after(keys, last))
        rows = conn.execute(query).mappings().all()
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        last = [rows[-1][name] for name in pk]


def _canon(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date | dtime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def canonical_row(row: Any, plan: _Plan) -> str:
    """One row as canonical JSON (what the checksums hash): sorted keys, UTC datetimes, JSON values
    as their canonical text, SQL NULL as null (a JSON null is the text "null")."""
    out: dict[str, Any] = {}
    for name in plan.columns:
        if name in plan.json_columns:
            out[name] = None if row[_null_label(name)] else _json_text(row[name])
        else:
            out[name] = _canon(row[name])
    return json.dumps(out, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _insert_values(row: Any, plan: _Plan) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in plan.columns:
        if name in plan.json_columns and row[_null_label(name)]:
            values[name] = null()  # SQL NULL (None would be stored as the JSON value null)
        else:
            values[name] = row[name]
    return values


def table_digest(conn: Connection, plan: _Plan, batch: int = BATCH) -> tuple[int, str]:
    """(row count, SHA-256 of the canonical rows in primary-key order) of one table."""
    digest = hashlib.sha256()
    count = 0
    for rows in _pages(conn, plan, batch):
        for row in rows:
            digest.update(canonical_row(row, plan).encode("utf-8") + b"\n")
        count += len(rows)
    return count, digest.hexdigest()


def _copy_table(src: Connection, dst: Connection, plan: _Plan, batch: int,
                tick: Callable[[int], None]) -> tuple[int, str]:
    """Copy one table page by page; returns the source side's (count, sha256)."""
    table = plan.table
    digest = hashlib.sha256()
    count = 0
    fixups: list[tuple[Any, dict[str, Any]]] = []
    has_id = "id" in table.c and table.c.id.primary_key
    for rows in _pages(src, plan, batch):
        values = []
        for row in rows:
            digest.update(canonical_row(row, plan).encode("utf-8") + b"\n")
            item = _insert_values(row, plan)
            if plan.self_refs and has_id:
                # A reference to a row not inserted yet (its id is not smaller): set it afterwards.
                later = {c: item[c] for c in plan.self_refs if item[c] is not None and item[c] >= item["id"]}
                if later:
                    fixups.append((item["id"], later))
                    item.update({c: None for c in later})
            values.append(item)
        dst.execute(insert(table), values)
        count += len(rows)
        tick(len(rows))
    for pk, later in fixups:
        dst.execute(table.update().where(table.c.id == pk).values(**later))
    return count, digest.hexdigest()


# --------------------------------------------------------------------------------------------
# the move


def move_database(src_url: str, dst_url: str, *, progress: Callable[[int, int], None] | None = None,
                  batch: int = BATCH) -> MoveSummary:
    """Copy everything from `src_url` into the new, empty database `dst_url`, verify it, and return
    the per-table summary. Raises MoveError (nothing changed in the target) when refused or failed."""
    started = time.perf_counter()
    if _identity(src_url) == _identity(dst_url):
        raise MoveError("move.same_database", url=safe_url(src_url))
    tables = _our_tables()
    source = open_source(src_url)
    target = open_target(dst_url)
    try:
        with _connect(source, "source", src_url) as sconn:
            if source.dialect.name == "postgresql":
                sconn.execution_options(isolation_level="REPEATABLE READ")  # one snapshot for every table
            with sconn.begin():
                summary, revision = _move_from(sconn, target, src_url, dst_url, tables, progress, batch)
        if revision is not None and revision != _known_revisions()[-1]:
            _migrate(target, None)  # an older source: bring the copy up to this program's schema
        summary.seconds = time.perf_counter() - started
        return summary
    except SQLAlchemyError as exc:
        raise MoveError("move.db_error", detail=_first_line(exc)) from None
    finally:
        source.dispose()
        target.dispose()


def _move_from(sconn: Connection, target: Engine, src_url: str, dst_url: str, tables: list[Table],
               progress: Callable[[int, int], None] | None, batch: int) -> tuple[MoveSummary, str | None]:
    """Inside the source's read transaction: check the source, prepare the target, copy, verify."""
    names = set(inspect(sconn).get_table_names())
    missing = [t for t in ("users", "forms", "form_versions", "submissions", "alembic_version") if t not in names]
    if missing:
        raise MoveError("move.source_not_console", url=safe_url(src_url), tables=", ".join(missing))
    revision = _revision(sconn, names)
    if revision is not None and revision not in _known_revisions():
        raise MoveError("move.source_newer", revision=revision)
    _prepare_target(target, dst_url, revision, tables)
    summary = MoveSummary(source=safe_url(src_url), target=safe_url(dst_url), revision=revision)
    _copy_all(sconn, target, dst_url, [t for t in tables if t.name in names], summary, progress, batch)
    return summary, revision


def _copy_all(sconn: Connection, target: Engine, dst_url: str, tables: list[Table], summary: MoveSummary,
              progress: Callable[[int, int], None] | None, batch: int) -> None:
    from engine.db import MIGRATION_LOCK_ID, is_postgres

    src_inspect = inspect(sconn)
    counts = {t.name: int(sconn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables}
    total = sum(counts.values())
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    if progress:
        progress(0, total)
    bind = target.execution_options(sqlite_immediate=True)
    with _connect(bind, "target", dst_url) as tconn:
        trans = tconn.begin()
        try:
            if is_postgres(target):
                # A console started on the target meanwhile waits here (first start, migrations).
                tconn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})
            tgt_inspect = inspect(tconn)
            tgt_names = set(tgt_inspect.get_table_names())
            absent = [t.name for t in tables if t.name not in tgt_names]
            if absent:
                raise MoveError("move.target_schema", target=", ".join(absent), source=summary.revision)
            busy = _busy(tconn, tables, tgt_names)
            if busy:  # someone wrote there since the check
                raise MoveError("move.target_not_empty", tables=_busy_text(busy))
            plans = [
                _plan(t, {c["name"] for c in src_inspect.get_columns(t.name)},
                      {c["name"] for c in tgt_inspect.get_columns(t.name)})
                for t in tables
            ]
            source_side: dict[str, tuple[int, str]] = {}
            for plan in plans:
                try:
                    source_side[plan.name] = _copy_table(sconn, tconn, plan, batch, tick)
                except SQLAlchemyError as exc:
                    raise MoveError("move.copy_failed", table=plan.name, detail=_first_line(exc)) from None
            if is_postgres(target):
                from engine.backup import _reset_sequences

                _reset_sequences(tconn)
                summary.sequences_fixed = True
            for plan in plans:
                rows, sha = source_side[plan.name]
                target_rows, target_sha = table_digest(tconn, plan, batch)
                summary.tables.append(TableCheck(plan.name, rows, target_rows, sha, target_sha))
            if not summary.ok:
                bad = ", ".join(t.table for t in summary.tables if not t.ok)
                raise MoveError("move.verify_failed", summary=summary, tables=bad)
            trans.commit()
        except BaseException:
            if trans.is_active:
                trans.rollback()
            raise


__all__ = ["BATCH", "MoveError", "MoveSummary", "TableCheck", "canonical_row", "move_database", "open_source",
           "open_target", "safe_url", "table_digest"]
