"""Record lists in SQL: filter, search, sort and page without loading the table.

`json_field(engine, key)` is the one way to read a value out of `Submission.data` in SQL:
`json_extract(data, '$."key"')` with a literal path on SQLite (so that an expression index on
exactly that expression can serve it) and `data ->> 'key'` on PostgreSQL. Keys are checked
against `[a-z][a-z0-9_]*` and the form's own field keys first; user text never reaches SQL
except as bound parameters.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    Numeric,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from engine.access import Actor, form_allows, may_reveal
from engine.db import session_scope, url_key
from engine.errors import EngineError, PermissionDenied
from engine.messages import register
from models.spec import FieldSpec, FormSpec, ltext
from models.tables import ChangeStamp, Submission

register({
    "query.bad_key": {
        "zh": "表单「{form}」没有可用于{what}的字段「{key}」。",
        "en": "Form '{form}' has no field '{key}' to {what} by.",
    },
    "query.bad_page_size": {
        "zh": "每页条数只能是 {allowed}。",
        "en": "Page size must be one of {allowed}.",
    },
    "query.bad_page": {"zh": "页码必须是正整数。", "en": "The page number must be a positive whole number."},
    "query.bad_value": {
        "zh": "筛选条件「{key}」的值无效。",
        "en": "The filter value for '{key}' is not valid.",
    },
    "query.keyset_sort": {
        "zh": "按「{sort}」排序时不能使用续页标记。",
        "en": "Paging by a last-seen record is not possible when sorting by '{sort}'.",
    },
    "record.forbidden_view": {
        "zh": "您的角色不能查看表单「{form}」的记录。",
        "en": "Your role may not view records of form '{form}'.",
    },
    "record.forbidden_deleted": {
        "zh": "只有管理员可以查看已删除的记录。",
        "en": "Only administrators may see deleted records.",
    },
})

KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PAGE_SIZES: tuple[int, ...] = (20, 50, 100)
COLUMN_SORTS: dict[str, Any] = {
    "id": Submission.id,
    "created_at": Submission.created_at,
    "updated_at": Submission.updated_at,
    "state": Submission.state,
    "number": Submission.number,
}
KEYSET_SORTS: frozenset[str] = frozenset({"id", "created_at", "updated_at"})  # NOT NULL columns
_PG_NUMBER_RE = "'^[-+]?[0-9]+([.][0-9]+)?$'"  # a constant SQL literal (no user text)
NUMBER_TYPES: frozenset[str] = frozenset({"integer", "decimal", "money", "rating", "counter"})
LIST_TYPES: frozenset[str] = frozenset({"multiselect"})


@dataclass
class ListQuery:
    page: int = 1
    page_size: int = 20  # 20 / 50 / 100
    search: str | None = None  # free text over the record's values
    state: str | None = None
    date_from: date | None = None  # on the spec's date_field, else created_at (inclusive)
    date_to: date | None = None  # inclusive
    created_by: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)  # field key -> value (list: any of)
    sort: str = "id"  # a field key, or id / created_at / updated_at / state / number
    desc: bool = True
    include_deleted: bool = False  # admins only
    after_id: int | None = None  # keyset paging: the last id of the previous page
    parent_id: int | None = None  # children of one parent record (e.g. sign-ups of one event)


@dataclass
class RecordPage:
    items: list[Submission]
    total: int  # rows matching the query (all pages)
    page: int
    page_size: int
    pages: int
    next_after_id: int | None = None  # pass as ListQuery.after_id for the next page (keyset)

    @property
    def has_next(self) -> bool:
        return self.next_after_id is not None


# --- JSON paths --------------------------------------------------------------------------------
def _dialect_name(engine_or_dialect: Engine | Dialect | str) -> str:
    if isinstance(engine_or_dialect, str):
        return engine_or_dialect
    dialect = getattr(engine_or_dialect, "dialect", engine_or_dialect)
    return str(dialect.name)


def check_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise EngineError("query.bad_key", form="?", key=str(key)[:64], what="?")
    return key


def sqlite_path(key: str) -> str:
    """The literal JSON path of a key (a SQL string literal; the key is checked first)."""
    return "'$.\"" + check_key(key) + "\"'"


def json_field(engine_or_dialect: Engine | Dialect | str, key: str) -> ColumnElement[Any]:
    """`Submission.data[key]` as an SQL expression an expression index can match."""
    if _dialect_name(engine_or_dialect) == "postgresql":
        # A literal key (checked above), not a bound one: `data ->> 'key'` is what an index holds.
        return Submission.data.op("->>")(literal_column("'" + check_key(key) + "'"))  # type: ignore[attr-defined]
    return func.json_extract(Submission.data, literal_column(sqlite_path(key)))


def json_list(engine_or_dialect: Engine | Dialect | str, key: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """(JSON type, whole value) of a list-valued field (multiselect), as one expression index holds them:
    SQLite ``json_type(data, '$."key"')``, ``json_extract(data, '$."key"')`` (an array as JSON text);
    PostgreSQL ``jsonb_typeof(data -> 'key')``, ``data -> 'key'``. Counting records per item is then a
    GROUP BY over the index (a few distinct lists) folded into items, not a json_each of every record."""
    if _dialect_name(engine_or_dialect) == "postgresql":
        value = Submission.data.op("->")(literal_column("'" + check_key(key) + "'"))  # type: ignore[attr-defined]
        return func.jsonb_typeof(value), value
    path = literal_column(sqlite_path(key))
    return func.json_type(Submission.data, path), func.json_extract(Submission.data, path)


def json_number(engine_or_dialect: Engine | Dialect | str, key: str) -> ColumnElement[Any]:
    """A numeric JSON value (integers, or decimals stored as exact strings) for sorting and sums."""
    expr = json_field(engine_or_dialect, key)
    if _dialect_name(engine_or_dialect) == "postgresql":
        # A value that is not a plain number (e.g. imported unvalidated) sorts as NULL instead of
        # failing the whole query with "invalid input syntax for type numeric".
        return case((expr.op("~")(literal_column(_PG_NUMBER_RE)), cast(expr, Numeric)), else_=None)
    return cast(expr, Float)


def _sql_value(dialect: str, value: Any) -> Any:
    """A bound value compared with `json_field`: typed on SQLite, text on PostgreSQL (->> gives text)."""
    if dialect == "postgresql":
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if isinstance(value, bool):
        return 1 if value else 0
    return value


def json_equals(engine_or_dialect: Engine | Dialect | str, key: str, value: Any) -> ColumnElement[bool]:
    dialect = _dialect_name(engine_or_dialect)
    expr = json_field(dialect, key)
    if isinstance(value, list | tuple | set | frozenset):
        values = [_sql_value(dialect, v) for v in value]
        return expr.in_(values) if values else false()
    return expr == _sql_value(dialect, value)


def json_contains(engine_or_dialect: Engine | Dialect | str, key: str, value: Any) -> ColumnElement[bool]:
    """A list value (multiselect) contains `value`."""
    dialect = _dialect_name(engine_or_dialect)
    check_key(key)
    if dialect == "postgresql":
        return Submission.data.op("->")(key).op("@>")(literal([value], JSONB))  # type: ignore[attr-defined]
    each = func.json_each(Submission.data, literal_column(sqlite_path(key))).table_valued("value")
    return select(literal_column("1")).select_from(each).where(each.c.value == value).exists()


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_clause(engine_or_dialect: Engine | Dialect | str, term: str,
                  hidden_keys: set[str] | None = None) -> ColumnElement[bool]:
    """Free text over the record's JSON. With `hidden_keys` (sensitive fields the user may not see),
    only the other keys' values are searched, so a search cannot confirm a masked value."""
    dialect = _dialect_name(engine_or_dialect)
    pattern = "%" + _escape_like(term) + "%"
    if not hidden_keys:
        as_text = cast(Submission.data, Text)
        if dialect == "postgresql":
            return as_text.ilike(pattern, escape="\\")
        return as_text.like(pattern, escape="\\")
    hidden = sorted(check_key(k) for k in hidden_keys)
    if dialect == "postgresql":
        each = func.jsonb_each_text(Submission.data).table_valued("key", "value")
        cond = each.c.value.ilike(pattern, escape="\\")
    else:
        each = func.json_each(Submission.data).table_valued("key", "value")
        cond = cast(each.c.value, Text).like(pattern, escape="\\")
    return select(literal_column("1")).select_from(each).where(each.c.key.not_in(hidden), cond).exists()


# --- the list ----------------------------------------------------------------------------------
def _bad_key(spec: FormSpec, key: Any, what: str) -> EngineError:
    return EngineError("query.bad_key", form=ltext(spec.title) or spec.slug, key=str(key)[:64], what=what)


def _field_for(spec: FormSpec, key: Any, what: str) -> FieldSpec:
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise _bad_key(spec, key, what)
    f = spec.field(key)
    if f is None:
        raise _bad_key(spec, key, what)
    return f


def _is_number(f: FieldSpec) -> bool:
    try:
        from engine.fields import field_type

        return field_type(f.type).value_kind == "number"
    except (ImportError, KeyError):
        return f.type in NUMBER_TYPES


def _is_list(f: FieldSpec) -> bool:
    try:
        from engine.fields import field_type

        return field_type(f.type).value_kind == "list"
    except (ImportError, KeyError):
        return f.type in LIST_TYPES


def sort_expression(dialect: str, spec: FormSpec, sort: str) -> ColumnElement[Any]:
    if sort in COLUMN_SORTS:
        return COLUMN_SORTS[sort]
    f = _field_for(spec, sort, "sort")
    return json_number(dialect, f.key) if _is_number(f) else json_field(dialect, f.key)


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def _as_date(value: Any, spec: FormSpec, key: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise EngineError("query.bad_value", key=key) from None


def conditions(dialect: str, spec: FormSpec, form_id: int, q: ListQuery, *,
               hidden_keys: set[str] | None = None) -> list[ColumnElement[bool]]:
    """WHERE conditions of a list query (keys checked against the spec)."""
    conds: list[ColumnElement[bool]] = [Submission.form_id == form_id]
    if not q.include_deleted:
        conds.append(col(Submission.deleted_at).is_(None))
    if q.state:
        conds.append(Submission.state == q.state)
    if q.created_by:
        conds.append(Submission.created_by == q.created_by)
    if q.parent_id is not None:
        conds.append(Submission.parent_id == int(q.parent_id))
    if q.date_from is not None or q.date_to is not None:
        conds.extend(_date_conditions(dialect, spec, q))
    if hidden_keys and q.sort in hidden_keys:  # sorting by a value one may not see orders it: an oracle
        raise _bad_key(spec, q.sort, "sort")
    for key, value in (q.filters or {}).items():
        f = _field_for(spec, key, "filter")
        if hidden_keys and f.key in hidden_keys:  # so is filtering by it
            raise _bad_key(spec, key, "filter")
        if value is None or value == "" or value == []:
            continue
        if _is_list(f):
            values = value if isinstance(value, list | tuple | set | frozenset) else [value]
            conds.extend(json_contains(dialect, f.key, str(v)) for v in values)
        else:
            conds.append(json_equals(dialect, f.key, value))
    term = (q.search or "").strip()
    if term:
        conds.append(search_clause(dialect, term[:200], hidden_keys))
    return conds


def _date_conditions(dialect: str, spec: FormSpec, q: ListQuery) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if spec.date_field:
        expr = json_field(dialect, _field_for(spec, spec.date_field, "date").key)
        # ISO dates (and datetimes) compare correctly as text.
        if q.date_from is not None:
            out.append(expr >= _as_date(q.date_from, spec, "date_from").isoformat())
        if q.date_to is not None:
            nxt = _as_date(q.date_to, spec, "date_to") + timedelta(days=1)
            out.append(expr < nxt.isoformat())
        return out
    if q.date_from is not None:
        out.append(Submission.created_at >= _day_start(_as_date(q.date_from, spec, "date_from")))
    if q.date_to is not None:
        out.append(Submission.created_at < _day_start(_as_date(q.date_to, spec, "date_to") + timedelta(days=1)))
    return out


def _check_query(spec: FormSpec, q: ListQuery) -> None:
    if q.page_size not in PAGE_SIZES:
        raise EngineError("query.bad_page_size", allowed=" / ".join(map(str, PAGE_SIZES)))
    if not isinstance(q.page, int) or isinstance(q.page, bool) or q.page < 1:
        raise EngineError("query.bad_page")
    if q.sort not in COLUMN_SORTS:
        _field_for(spec, q.sort, "sort")
    if q.after_id is not None and q.sort not in KEYSET_SORTS:
        raise EngineError("query.keyset_sort", sort=q.sort)


def hidden_keys_for(actor: Actor, spec: FormSpec) -> set[str]:
    """Sensitive field keys whose values this actor may not see in clear (not searchable for them)."""
    if may_reveal(actor, spec):
        return set()
    return {f.key for f in spec.fields if f.sensitive}


def list_records(engine: Engine, slug: str, q: ListQuery | None = None, *, actor: Actor) -> RecordPage:
    """One page of a form's records (all versions) and the total count, in SQL.

    Deep pages are keyset pages: the last row of every page served is remembered (per process, keyed
    by the form's "data:<slug>" change stamp, so any write forgets them), and page N+1 continues
    from page N's last (sort value, id) through the expression index instead of an OFFSET. A page
    reached without its predecessor finds that anchor once, from the nearest page already known.
    The total is remembered the same way. A write bumps the stamp: nothing stale is ever served.
    """
    from engine.forms import form_ref

    q = q or ListQuery()
    ref = form_ref(engine, slug)
    spec = ref.spec  # the current version carries every key ever used (retired ones included)
    if not form_allows(actor, spec, "view"):
        raise PermissionDenied("record.forbidden_view", form=ltext(spec.title, actor.language) or slug)
    if q.include_deleted and not actor.can("records.delete"):
        raise PermissionDenied("record.forbidden_deleted")
    _check_query(spec, q)
    dialect = engine.dialect.name
    hidden = hidden_keys_for(actor, spec)
    conds = conditions(dialect, spec, ref.id, q, hidden_keys=hidden)
    sort_expr = sort_expression(dialect, spec, q.sort)
    size = q.page_size
    with session_scope(engine, write=False) as session:
        # The stamp is read before the data: a write in between leaves an older stamp on newer data,
        # which the next call recomputes (never the reverse).
        memo = _paging(engine, slug, ref.version, q, hidden, _stamp(session, slug))
        if memo.total is None:
            memo.total = _count(session, conds)
        if q.after_id is not None:
            anchor = _anchor_of(session, sort_expr, int(q.after_id), q.sort)
            rows = [] if anchor is None else _fetch(session, conds, sort_expr, q, anchor, size + 1)
        elif q.page == 1:
            rows = _fetch(session, conds, sort_expr, q, None, size + 1)
        else:
            anchor = _find_anchor(session, memo, conds, sort_expr, q)
            rows = [] if anchor is None else _fetch(session, conds, sort_expr, q, anchor, size + 1)
        if q.after_id is None and len(rows) > size:
            memo.remember(size, q.page, rows[size - 1][1], int(rows[size - 1][0].id))
    total = memo.total
    more = len(rows) > size
    items = [sub for sub, _value in rows[:size]]
    pages = max(1, -(-total // size))
    return RecordPage(items=items, total=total, page=q.page, page_size=size,
                      pages=pages, next_after_id=items[-1].id if more and items else None)


# --- keyset paging and the per-stamp memo -------------------------------------------------------
PAGING_CACHE_SIZE = 256
MAX_ANCHORS = 2048
_MISSING = object()


@dataclass
class _Paging:
    total: int | None = None
    anchors: dict[tuple[int, int], tuple[Any, int]] = field(default_factory=dict)  # (size, page) -> last row

    def remember(self, size: int, page: int, value: Any, row_id: int) -> None:
        if len(self.anchors) < MAX_ANCHORS:
            self.anchors[(size, page)] = (value, row_id)


_PAGING: OrderedDict[tuple[Any, ...], _Paging] = OrderedDict()
_PAGING_LOCK = threading.Lock()


def _stamp(session: Any, slug: str) -> int:
    from engine.stamps import data_scope

    value = session.execute(select(ChangeStamp.stamp).where(ChangeStamp.scope == data_scope(slug))).scalar()
    return int(value or 0)


def _paging(engine: Engine, slug: str, version: int, q: ListQuery, hidden: set[str], stamp: int) -> _Paging:
    what = repr((q.search, q.state, q.date_from, q.date_to, q.created_by, sorted((q.filters or {}).items()),
                 q.sort, q.desc, q.include_deleted, q.parent_id, sorted(hidden)))
    key = (url_key(engine), slug, version, stamp, what)
    with _PAGING_LOCK:
        memo = _PAGING.get(key)
        if memo is None:
            memo = _PAGING[key] = _Paging()
            while len(_PAGING) > PAGING_CACHE_SIZE:
                _PAGING.popitem(last=False)
        else:
            _PAGING.move_to_end(key)
        return memo


def clear_paging_cache() -> None:
    with _PAGING_LOCK:
        _PAGING.clear()


def _count(session: Any, conds: list[ColumnElement[bool]]) -> int:
    return int(session.execute(select(func.count()).select_from(Submission).where(and_(*conds))).scalar_one())


def _order(sort_expr: ColumnElement[Any], desc: bool) -> list[Any]:
    """The list's order in one ORDER BY (NULLs last); used for the one-off anchor search only."""
    if desc:
        return [sort_expr.desc().nulls_last(), col(Submission.id).desc()]
    return [sort_expr.asc().nulls_last(), col(Submission.id).asc()]


NOT_NULL_SORTS: frozenset[str] = frozenset({"id", "created_at", "updated_at"})


def _rows(session: Any, stmt: Any) -> list[tuple[Submission, Any]]:
    return [(sub, value) for sub, value in session.execute(stmt).all()]


def _fetch(session: Any, conds: list[ColumnElement[bool]], sort_expr: ColumnElement[Any], q: ListQuery,
           anchor: tuple[Any, int] | None, limit: int) -> list[tuple[Submission, Any]]:
    """The first `limit` rows after `anchor` = (sort value, id) in list order (None: from the start).

    List order is the sort value (NULLs last in both directions), then id. It is read as up to three
    plain index range reads, each with an ORDER BY an index can give as is (no NULLS LAST clause,
    which PostgreSQL could only serve by sorting): rows with the anchor's value and a further id,
    rows with a further value, then the rows without a value."""
    sid = col(Submission.id)
    by_id = sid.desc() if q.desc else sid.asc()
    base = select(Submission, sort_expr).where(and_(*conds))
    if q.sort == "id":
        if anchor is not None:
            base = base.where(sid < anchor[1] if q.desc else sid > anchor[1])
        return _rows(session, base.order_by(by_id).limit(limit))
    by_value = [sort_expr.desc() if q.desc else sort_expr.asc(), by_id]
    nullable = q.sort not in NOT_NULL_SORTS
    value, after = anchor if anchor is not None else (None, 0)
    beyond_id = sid < after if q.desc else sid > after
    out: list[tuple[Submission, Any]] = []
    if anchor is None:
        present = base.where(sort_expr.is_not(None)) if nullable else base
        out += _rows(session, present.order_by(*by_value).limit(limit))
    elif value is not None:
        out += _rows(session, base.where(sort_expr == value, beyond_id).order_by(by_id).limit(limit))
        if len(out) < limit:
            further = sort_expr < value if q.desc else sort_expr > value
            out += _rows(session, base.where(further).order_by(*by_value).limit(limit - len(out)))
    if nullable and len(out) < limit:
        nulls = base.where(sort_expr.is_(None))
        if anchor is not None and value is None:
            nulls = nulls.where(beyond_id)
        out += _rows(session, nulls.order_by(by_id).limit(limit - len(out)))
    return out


def _anchor_of(session: Any, sort_expr: ColumnElement[Any], row_id: int, sort: str) -> tuple[Any, int] | None:
    """(sort value, id) of one record (the `after_id` of an explicit keyset query), None if it is gone."""
    if sort == "id":
        return (row_id, row_id)
    found = session.execute(select(Submission.id, sort_expr).where(Submission.id == row_id)).first()
    if found is None:
        return None
    return (found[1], row_id)


def _find_anchor(session: Any, memo: _Paging, conds: list[ColumnElement[bool]], sort_expr: ColumnElement[Any],
                 q: ListQuery) -> tuple[Any, int] | None:
    """The last row of page q.page - 1: remembered, else counted once from the nearest known page."""
    size, target = q.page_size, q.page - 1
    known = memo.anchors.get((size, target))
    if known is not None:
        return known
    start = max((p for (s, p) in memo.anchors if s == size and p < target), default=0)
    skip = (target - start) * size - 1  # rows between the start anchor and the wanted last row
    stmt = select(Submission.id, sort_expr).where(and_(*conds))
    if start:
        value, after = memo.anchors[(size, start)]
        stmt = stmt.where(_beyond(sort_expr, q, value, after))
    row = session.execute(stmt.order_by(*_order(sort_expr, q.desc)).offset(skip).limit(1)).first()
    if row is None:
        return None
    anchor = (row[0] if q.sort == "id" else row[1], int(row[0]))
    memo.remember(size, target, *anchor)
    return anchor


def _beyond(sort_expr: ColumnElement[Any], q: ListQuery, value: Any, after: int) -> ColumnElement[bool]:
    """Rows after (value, id) in list order, as one condition (for the one-off anchor search)."""
    sid = col(Submission.id)
    beyond_id = sid < after if q.desc else sid > after
    if q.sort == "id":
        return beyond_id
    if value is None:
        return and_(sort_expr.is_(None), beyond_id)
    further = sort_expr < value if q.desc else sort_expr > value
    return or_(further, and_(sort_expr == value, beyond_id), sort_expr.is_(None))


def count_records(engine: Engine, slug: str, q: ListQuery | None = None, *, actor: Actor) -> int:
    """Only the count of `list_records` (remembered per change stamp, like the list's)."""
    from engine.forms import form_ref

    q = q or ListQuery()
    ref = form_ref(engine, slug)
    if not form_allows(actor, ref.spec, "view"):
        raise PermissionDenied("record.forbidden_view", form=ltext(ref.spec.title, actor.language) or slug)
    if q.include_deleted and not actor.can("records.delete"):
        raise PermissionDenied("record.forbidden_deleted")
    hidden = hidden_keys_for(actor, ref.spec)
    conds = conditions(engine.dialect.name, ref.spec, ref.id, q, hidden_keys=hidden)
    with session_scope(engine, write=False) as session:
        memo = _paging(engine, slug, ref.version, q, hidden, _stamp(session, slug))
        if memo.total is None:
            memo.total = _count(session, conds)
        return memo.total
