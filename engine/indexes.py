"""Expression indexes for the JSON fields a form lists, filters on or aggregates by.

Records keep their values in one JSON column (`submissions.data`), so a list filter, a dashboard
GROUP BY or a report figure over a field would read and parse every row of the form. When a form
is published, `ensure_indexes(engine, spec)` creates one index per such field:

- SQLite:     ``(form_id, json_extract(data, '$."key"')) WHERE form_id = N AND deleted_at IS NULL``
- PostgreSQL: ``(form_id, (data ->> 'key'))          WHERE form_id = N AND deleted_at IS NULL``

The indexed expression is compiled from `engine.queries.json_field` (`json_number` for numeric
sort columns), so it is textually the expression the queries use: SQLite serves an expression
index only for the identical expression with a literal path. Each index is partial on its form
(an insert computes only the indexes of its own form) and on live records (so it also covers the
``deleted_at IS NULL`` every list and aggregate has); `form_id` is its first column so that the
planner sees an equality on it.

Which fields (`planned_indexes`): the list columns (as the records page shows them), the summary
dimensions, the date field, the single-value choice fields offered as list filters and unique
fields; never sensitive fields or object (checklist) fields. A list-valued (multiselect) summary
dimension gets ``(form_id, json_type(...), json_extract(...))``: records per item are then counted by
a GROUP BY over the few distinct lists (`engine.reports.list_counts`). Plus `(form_id, updated_at)` for the "recently updated" sort
and, for a form with a workflow, `(form_id, state, due_at, paused_at)` for the dashboard funnel.

Names are ``ixf_<slug>_<key>_<hash>`` (at most 60 characters; the hash of kind, slug and key keeps
them distinct). Indexes of the form that the current spec no longer wants are dropped. On PostgreSQL
each indexed expression also gets `CREATE STATISTICS` (``sxf_<key>_<hash>``, shared by the forms that
use the key): the planner ignores a partial index's own expression statistics.
`rebuild_indexes(engine)` does the same for every published form; it reads the catalogue once and
creates only what is missing, so it is cheap when nothing is (a few milliseconds).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from engine.queries import KEY_RE, json_field, json_list, json_number
from models.spec import FieldSpec, FormSpec

PREFIX = "ixf_"
MAX_NAME = 60  # PostgreSQL identifiers are cut at 63 bytes
LIST_SKIP = frozenset({"note", "counter", "checklist", "textarea"})  # as pages/records.list_fields
FILTER_TYPES = frozenset({"select"})  # the single-value filters of the records page
UNINDEXABLE_KINDS = frozenset({"list", "object"})
_FORM_IN_PREDICATE = re.compile(r"form_id\)?\s*=\s*\(?(\d+)")


@dataclass(frozen=True)
class IndexDef:
    name: str
    key: str  # the field key ("updated_at" for the column index)
    kind: str  # "text" (json_field) | "number" (json_number) | "list" (json_list) | "column"
    expression: str  # SQL of the indexed expression(s), unqualified; " || " between two (kind "list")

    def ddl(self, dialect: str, form_id: int) -> str:
        expr = self.expression
        if dialect == "postgresql":
            # id last: equal values come in id order, as the list wants them (SQLite's rowid is implicit)
            if self.kind == "list":
                expr = ", ".join(f"({part})" for part in expr.split(" || "))
            elif self.kind != "column":
                expr = f"({expr})"
            expr += ", id"
        else:
            expr = expr.replace(" || ", ", ")
        return (f'CREATE INDEX IF NOT EXISTS "{self.name}" ON submissions (form_id, {expr}) '
                f"WHERE form_id = {int(form_id)} AND deleted_at IS NULL")


# --- which fields ------------------------------------------------------------------------------
def _value_kind(f: FieldSpec) -> str:
    from engine.fields import REGISTRY

    ftype = REGISTRY.get(f.type)
    return ftype.value_kind if ftype is not None else "text"


def _stores(f: FieldSpec) -> bool:
    from engine.fields import REGISTRY

    ftype = REGISTRY.get(f.type)
    return bool(ftype.stores_value) if ftype is not None else False


def list_fields(spec: FormSpec) -> list[FieldSpec]:
    """The records page's columns: list_columns, else the first six storing fields."""
    if spec.list_columns:
        return [f for f in (spec.field(k) for k in spec.list_columns) if f is not None]
    return [f for f in spec.active_fields if f.type not in LIST_SKIP][:6]


def indexed_fields(spec: FormSpec) -> list[tuple[FieldSpec, str]]:
    """(field, "text" | "number") for every field worth an index, in a stable order."""
    wanted: dict[str, tuple[FieldSpec, str]] = {}

    def add(f: FieldSpec | None, kind: str = "text") -> None:
        if f is None or f.sensitive or not _stores(f) or _value_kind(f) in UNINDEXABLE_KINDS:
            return
        if not KEY_RE.match(f.key):
            return
        wanted.setdefault(f"{kind}:{f.key}", (f, kind))

    for f in list_fields(spec):
        add(f, "number" if _value_kind(f) == "number" else "text")  # sorted as numbers
    for key in spec.summary:
        f = spec.field(key)
        if f is not None and _value_kind(f) == "list" and not f.sensitive and _stores(f) and KEY_RE.match(f.key):
            wanted.setdefault(f"list:{f.key}", (f, "list"))  # records per item: GROUP BY the whole list
        else:
            add(f)
    if spec.date_field:
        add(spec.field(spec.date_field))
    for f in spec.active_fields:
        if f.type in FILTER_TYPES or (f.type == "reference" and f.choice_list) or f.unique:
            add(f)
    return list(wanted.values())


def _name(slug: str, key: str, kind: str) -> str:
    digest = hashlib.sha1(f"{kind}:{slug}:{key}".encode()).hexdigest()[:6]
    slug_part = re.sub(r"[^a-z0-9_]", "_", slug.lower())[:22]
    return f"{PREFIX}{slug_part}_{key[:MAX_NAME - len(PREFIX) - len(slug_part) - 9]}_{digest}"


def _sql(expr: Any, engine: Engine | Connection) -> str:
    compiled = str(expr.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    return compiled.replace("submissions.", "")


def planned_indexes(engine: Engine | Connection, spec: FormSpec) -> list[IndexDef]:
    """The indexes `spec` wants on this database's dialect."""
    dialect = engine.dialect.name
    out: list[IndexDef] = []
    for f, kind in indexed_fields(spec):
        if kind == "list":
            sql = " || ".join(_sql(e, engine) for e in json_list(dialect, f.key))
        else:
            sql = _sql(json_number(dialect, f.key) if kind == "number" else json_field(dialect, f.key), engine)
        out.append(IndexDef(_name(spec.slug, f.key, kind), f.key, kind, sql))
    out.append(IndexDef(_name(spec.slug, "updated_at", "column"), "updated_at", "column", "updated_at"))
    if spec.workflow is not None:  # the dashboard funnel (per state, overdue): an index-only scan
        out.append(IndexDef(_name(spec.slug, "state", "column"), "state", "column", "state, due_at, paused_at"))
    return out


# --- PostgreSQL: statistics on the indexed expressions -----------------------------------------
def statistics_for(plan: list[IndexDef]) -> dict[str, str]:
    """{statistics name: expression} for a plan (PostgreSQL). The planner does not use the statistics
    of a partial index's expressions, so without these it guesses 0.5 % for any JSON range and picks
    an index scan where a (parallel) sequential scan of a third of the table is twice as fast."""
    out: dict[str, str] = {}
    for idx in plan:
        if idx.kind in ("text", "number"):
            expr = f"({idx.expression})"
        elif idx.kind == "list":
            expr = ", ".join(f"({part})" for part in idx.expression.split(" || "))
        else:
            continue
        digest = hashlib.sha1(f"{idx.kind}:{idx.key}".encode()).hexdigest()[:6]
        out[f"sxf_{idx.key[:44]}_{digest}"] = expr
    return out


def existing_statistics(conn: Connection) -> set[str]:
    if conn.dialect.name != "postgresql":
        return set()
    return set(conn.execute(text(
        "SELECT stxname FROM pg_statistic_ext WHERE stxnamespace = current_schema()::regnamespace "
        "AND stxname LIKE 'sxf\\_%'")).scalars())


def _sync_statistics(conn: Connection, plan: list[IndexDef], have: set[str]) -> list[str]:
    made = []
    for name, expr in statistics_for(plan).items():
        if name not in have:
            conn.execute(text(f'CREATE STATISTICS IF NOT EXISTS "{name}" ON {expr} FROM submissions'))
            made.append(name)
            have.add(name)
    return made


# --- the catalogue ------------------------------------------------------------------------------
def existing_indexes(conn: Connection) -> dict[str, int | None]:
    """{index name: form id of its predicate} of this module's indexes on submissions."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'submissions' "
            "AND schemaname = current_schema() AND indexname LIKE 'ixf\\_%'")).all()
    else:
        rows = conn.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'submissions' "
            "AND name LIKE 'ixf\\_%' ESCAPE '\\'")).all()
    out: dict[str, int | None] = {}
    for name, sql in rows:
        m = _FORM_IN_PREDICATE.search(str(sql or "").split(" WHERE ", 1)[-1])
        out[str(name)] = int(m.group(1)) if m else None
    return out


def _as_spec(spec: FormSpec | Mapping[str, Any]) -> FormSpec:
    return spec if isinstance(spec, FormSpec) else FormSpec.model_validate(dict(spec))


def _form_id(conn: Connection, slug: str) -> int | None:
    value = conn.execute(text("SELECT id FROM forms WHERE slug = :s"), {"s": slug}).scalar()
    return None if value is None else int(value)


def _sync(conn: Connection, spec: FormSpec, form_id: int, existing: dict[str, int | None]) -> list[str]:
    dialect = conn.dialect.name
    plan = planned_indexes(conn, spec)
    created: list[str] = []
    for idx in plan:
        if existing.get(idx.name) == form_id:
            continue
        if idx.name in existing:  # same name, other form (a restored or renumbered database)
            conn.execute(text(f'DROP INDEX IF EXISTS "{idx.name}"'))
        conn.execute(text(idx.ddl(dialect, form_id)))
        created.append(idx.name)
    keep = {idx.name for idx in plan}
    for name, fid in existing.items():
        if fid == form_id and name not in keep:
            conn.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
    if dialect == "postgresql":
        created += _sync_statistics(conn, plan, existing_statistics(conn))
    return created


INDEX_LOCK_ID = 7_245_201  # PostgreSQL advisory lock: one index builder at a time


def _stats_done(engine: Engine, plan: list[IndexDef], have: set[str]) -> bool:
    return engine.dialect.name != "postgresql" or set(statistics_for(plan)) <= have


@contextmanager
def _writer(engine: Engine) -> Iterator[Connection]:
    """A write transaction for DDL. SQLite: the write lock at BEGIN (a read, then CREATE INDEX, could
    not upgrade under load). PostgreSQL: an advisory lock, since CREATE INDEX IF NOT EXISTS is not
    safe against a concurrent creator of the same name (several processes starting together)."""
    if engine.dialect.name == "sqlite":
        with engine.execution_options(sqlite_immediate=True).begin() as conn:
            yield conn
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": INDEX_LOCK_ID})
        yield conn


def ensure_indexes(engine: Engine, spec: FormSpec | Mapping[str, Any]) -> list[str]:
    """Create the indexes the form's (current) spec wants and drop those it no longer wants.

    Returns the names created. On a large table this builds the new indexes now (seconds per index
    at a million records); nothing is done when they exist.
    """
    spec = _as_spec(spec)
    with engine.connect() as conn:
        form_id = _form_id(conn, spec.slug)
        if form_id is None:
            return []
        existing = existing_indexes(conn)
        stats = existing_statistics(conn)
    mine = {n: f for n, f in existing.items() if f == form_id}
    plan = planned_indexes(engine, spec)
    if {i.name for i in plan} == set(mine) and _stats_done(engine, plan, stats):
        return []
    with _writer(engine) as conn:
        return _sync(conn, spec, form_id, existing_indexes(conn))


def rebuild_indexes(engine: Engine) -> list[str]:
    """`ensure_indexes` for every published form (its current version). Returns the names created."""
    from engine.forms import get_spec

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, slug, current_version FROM forms WHERE current_version >= 1")).all()
        existing = existing_indexes(conn)
        stats = existing_statistics(conn)
    specs = [(int(form_id), get_spec(engine, slug, int(version))) for form_id, slug, version in rows]
    missing = False
    for form_id, spec in specs:
        plan = planned_indexes(engine, spec)
        have = {n for n, f in existing.items() if f == form_id}
        if {i.name for i in plan} != have or not _stats_done(engine, plan, stats):
            missing = True
            break
    if not missing:
        return []
    created: list[str] = []
    with _writer(engine) as conn:
        existing = existing_indexes(conn)
        for form_id, spec in specs:
            created += _sync(conn, spec, form_id, existing)
            existing = existing_indexes(conn)
    return created


def drop_indexes(engine_or_conn: Engine | Connection) -> list[str]:
    """Drop every index of this module (benchmarks compare with and without them)."""
    if isinstance(engine_or_conn, Engine):
        with _writer(engine_or_conn) as conn:
            return drop_indexes(conn)
    names = list(existing_indexes(engine_or_conn))
    for name in names:
        engine_or_conn.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
    return names


__all__ = ["IndexDef", "drop_indexes", "ensure_indexes", "existing_indexes", "indexed_fields", "list_fields",
           "planned_indexes", "rebuild_indexes"]
