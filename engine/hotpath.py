"""Raw DB-API statements for the hottest write: one record saved from the entry page.

Through SQLAlchemy a statement costs ~35 µs of Python on top of the database's own work, and an ORM
session ~100 µs per transaction; saving a record takes six statements. Here they go straight to the
driver's cursor, inside a `engine.db.raw_write` transaction (so BEGIN IMMEDIATE, rollback and
the "db.read_only"/"db.full" messages are the same as everywhere else). Every value is converted by
its column's own SQLAlchemy bind processor, so the rows are stored exactly as the ORM stores them.

Placeholders differ per driver; `STYLES` holds them (a registry, one entry per dialect).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import configure_mappers

from models.tables import AuditEvent, Submission


@dataclass(frozen=True)
class Style:
    """How one DB-API driver writes a placeholder (plain, and for a JSON column), and how a new row's
    id comes back: SQLite's `lastrowid` (its RETURNING costs ~100 µs more per insert on our indexed
    table) or PostgreSQL's RETURNING."""

    mark: str
    json_mark: str
    returning: bool


STYLES: dict[str, Style] = {
    "sqlite": Style("?", "?", returning=False),  # sqlite3, qmark
    "postgresql": Style("%s", "%s::jsonb", returning=True),  # psycopg 3, format
}

_SQL: dict[tuple[str, str], str] = {}  # (dialect, template) -> SQL
# (dialect, table) -> (column, its bind processor) per column but the id
_PROCESSORS: dict[tuple[str, str], list[tuple[str, Callable[[Any], Any] | None]]] = {}
_PLACES: dict[tuple[str, str, str], int] = {}  # (dialect, table, column) -> its place among the parameters


@dataclass(frozen=True)
class FormHead:
    """What a record save reads first, in one query: the form row, the reference lists' change stamp
    and the form's numbering setting."""

    form_id: int
    version: int
    archived: bool
    lists_stamp: int
    number_setting: Any


_HEAD = (
    "SELECT f.id, f.current_version, f.archived, "
    "(SELECT stamp FROM change_stamps WHERE scope = 'choice_lists'), "
    "(SELECT value FROM settings WHERE key = ?) FROM forms f WHERE f.slug = ?"
)
# numbering.advance(..., 1) for the raw cursor (the same statement, driver placeholders)
_NEXT = ("INSERT INTO sequences (name, scope, last) VALUES (?, ?, 1) "
         "ON CONFLICT (name, scope) DO UPDATE SET last = sequences.last + 1 RETURNING last")
# the next number and, in the same statement, what `_HEAD` reads (a save that guessed the form's numbering
# right, which is every save but the first after a change, needs no statement of its own for the head)
_HEAD_NEXT = (_NEXT + ", (SELECT f.id FROM forms f WHERE f.slug = ?), "
              "(SELECT f.current_version FROM forms f WHERE f.slug = ?), (SELECT f.archived FROM forms f WHERE f.slug = ?), "
              "(SELECT stamp FROM change_stamps WHERE scope = 'choice_lists'), (SELECT value FROM settings WHERE key = ?)")
_BUMP_TWO = ("INSERT INTO change_stamps (scope, stamp) VALUES (?, 1), (?, 1) "
             "ON CONFLICT (scope) DO UPDATE SET stamp = change_stamps.stamp + 1")


@functools.lru_cache(maxsize=64)
def _setting_from(text: str | bytes) -> Any:
    """A stored setting's JSON text read (the same few texts every save: read once; never mutated)."""
    return json.loads(text)


def _head_from(row: Sequence[Any]) -> FormHead:
    """A FormHead from (form id, current version, archived, lists stamp, numbering setting)."""
    setting = row[4]
    if isinstance(setting, str | bytes):  # SQLite hands JSON back as text
        setting = _setting_from(setting)
    return FormHead(int(row[0]), int(row[1]), bool(row[2]), int(row[3] or 0), setting)


def _columns(table: Table) -> list[str]:
    return [c.name for c in table.c if c.name != "id"]


def _insert_template(table: Table) -> str:
    """INSERT of every column but the id; JSON columns marked `?J`, the rest `?`."""
    marks = ", ".join("?J" if isinstance(c.type, JSON) else "?" for c in table.c if c.name != "id")
    return f"INSERT INTO {table.name} ({', '.join(_columns(table))}) VALUES ({marks})"


_INSERTS: dict[str, str] = {t.name: _insert_template(t) for t in (Submission.__table__, AuditEvent.__table__)}  # type: ignore[attr-defined]
_TABLES: dict[str, Table] = {t.name: t for t in (Submission.__table__, AuditEvent.__table__)}  # type: ignore[attr-defined]


class CoreView:
    """Stands in for a session in helpers that run Core statements only in some cases."""

    def __init__(self, tx: RawTx) -> None:
        self.tx = tx

    def execute(self, statement: Any, params: Any = None) -> Any:
        return self.tx.core.execute(statement, params)


class RawTx:
    """The driver cursor of a pooled connection inside a `engine.db.raw_write` transaction.

    `core` is a SQLAlchemy Connection over the same driver connection and transaction (made when
    first used, never beginning or ending a transaction of its own) for the rarer checks written
    with Core statements (parents, references, unique values, PostgreSQL's advisory lock)."""

    def __init__(self, engine: Engine, fairy: Any) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.style = STYLES[engine.dialect.name]
        self.fairy = fairy
        self.cur = fairy.dbapi_connection.cursor()  # sync drivers: the driver connection
        self._core: Connection | None = None

    @property
    def core(self) -> Connection:
        if self._core is None:
            self._core = Connection(self.engine, connection=self.fairy, _allow_autobegin=False)
        return self._core

    @property
    def lazy_core(self) -> CoreView:
        """Something with `execute(statement, params)` that makes `core` only when a statement runs."""
        return CoreView(self)

    def sql(self, template: str) -> str:
        key = (self.dialect.name, template)
        text = _SQL.get(key)
        if text is None:
            text = _SQL[key] = template.replace("?J", "\0").replace("?", self.style.mark).replace(
                "\0", self.style.json_mark)
        return text

    def execute(self, template: str, params: Sequence[Any]) -> Any:
        self.cur.execute(self.sql(template), tuple(params))
        return self.cur

    def head(self, slug: str, setting_key: str) -> FormHead | None:
        row = self.execute(_HEAD, (setting_key, slug)).fetchone()
        return None if row is None else _head_from(row)

    def next_value(self, name: str, scope: str) -> int:
        return int(self.execute(_NEXT, (name, scope)).fetchone()[0])

    def head_and_next(self, slug: str, setting_key: str, scope: str) -> tuple[FormHead | None, int]:
        """`head(slug, setting_key)` and `next_value(slug, scope)` in one statement (the counter moves
        even when the form is gone or changed: the caller rolls back if the head is not what it expected)."""
        row = self.execute(_HEAD_NEXT, (slug, scope, slug, slug, slug, setting_key)).fetchone()
        return (None if row[1] is None else _head_from(row[1:])), int(row[0])

    def bump_two(self, scope: str, also: str) -> None:
        self.execute(_BUMP_TWO, (scope, also))

    def bind(self, table: str, values: Mapping[str, Any], converted: dict[int, Any] | None = None) -> list[Any]:
        """The parameters of `table`'s INSERT for `values` (to send later with `insert_bound`). Rows
        bound with one `converted` dict convert a datetime they share once (a record and its audit
        event are stamped with the same moment)."""
        return _bind(self._processors(table), values, {} if converted is None else converted)

    def insert_bound(self, table: str, params: Sequence[Any]) -> int:
        """INSERT one row from parameters made by `bind`; its new id."""
        if self.style.returning:
            return int(self.execute(_INSERTS[table] + " RETURNING id", params).fetchone()[0])
        return int(self.execute(_INSERTS[table], params).lastrowid)

    def column_index(self, table: str, column: str) -> int:
        """Where `column` is among the parameters that `bind` makes for `table`."""
        key = (self.dialect.name, table, column)
        found = _PLACES.get(key)
        if found is None:
            found = _PLACES[key] = [name for name, _proc in self._processors(table)].index(column)
        return found

    def _processors(self, table: str) -> list[tuple[str, Callable[[Any], Any] | None]]:
        key = (self.dialect.name, table)
        procs = _PROCESSORS.get(key)
        if procs is None:
            cols = [c for c in _TABLES[table].c if c.name != "id"]
            procs = _PROCESSORS[key] = [(c.name, c.type._cached_bind_processor(self.dialect)) for c in cols]
        return procs


def _bind(columns: Sequence[tuple[str, Callable[[Any], Any] | None]], values: Mapping[str, Any],
          seen: dict[int, Any]) -> list[Any]:
    """The row's values in column order, each converted by its column's bind processor (one datetime
    shared by several columns, such as created/updated `now`, is converted once: `seen` holds the
    conversions by the datetime's id, for as long as the caller keeps the datetimes)."""
    get = values.get
    out: list[Any] = []
    for name, proc in columns:
        value = get(name)
        if proc is not None and value is not None:
            if type(value) is datetime:
                done = seen.get(id(value))
                if done is None:
                    done = seen[id(value)] = proc(value)
                value = done
            else:
                value = proc(value)
        out.append(value)
    return out


def submission_from(values: Mapping[str, Any]) -> Submission:
    """A detached `Submission` holding `values` (every column), built the way the ORM builds a row it
    loads (~3 µs instead of ~100 µs for the validating constructor, whose checks the values passed)."""
    global _MAPPED
    if not _MAPPED:
        configure_mappers()
        _MAPPED = True
    sub = _NEW_SUBMISSION()
    get = values.get
    sub.__dict__.update(zip(_ALL_SUBMISSION_COLUMNS, map(get, _ALL_SUBMISSION_COLUMNS), strict=True))
    return sub


_MAPPED = False  # configure_mappers() has run (models are mapped once, at import)
_NEW_SUBMISSION = Submission._sa_class_manager.new_instance  # type: ignore[attr-defined]


_ALL_SUBMISSION_COLUMNS: tuple[str, ...] = tuple(c.name for c in Submission.__table__.c)  # type: ignore[attr-defined]

__all__ = ["STYLES", "CoreView", "FormHead", "RawTx", "Style", "submission_from"]
