"""Per-form dashboards in SQL: records per month, breakdowns by the spec's `summary` dimensions, the
workflow funnel with overdue counts. Filters: date range, liaison point (when the form has one),
creator.

Every number is an SQL aggregate (GROUP BY over `engine.queries.json_field` expressions, COUNT,
SUM(CASE ...)); nothing loads a table. Results are cached in this process keyed by the database's
change stamps ("data:<slug>", "forms", "choice_lists") — a write anywhere (any process) bumps the
stamp, so a cached dashboard is never stale — and by the minute (overdue counts move with time).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Integer, case, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from engine import stamps
from engine.access import Actor, form_allows
from engine.errors import PermissionDenied
from engine.messages import register
from engine.queries import json_equals, json_field
from engine.reports import FormScope, base_conditions, group_counts, list_counts
from models.spec import FieldSpec, FormSpec, LText, ltext
from models.tables import Submission, User, utcnow

register(
    {
        "dashboard.forbidden": {
            "zh": "您的角色不能查看表单「{form}」的统计。",
            "en": "Your role may not see the dashboard of form '{form}'.",
        },
    }
)

CATEGORICAL = frozenset({"select", "multiselect", "boolean", "reference", "user", "text", "date"})
MAX_BARS = 30
CACHE_SIZE = 256
EMPTY_LABEL: LText = {"zh": "（未填写）", "en": "(empty)"}
BOOL_LABELS: dict[bool, LText] = {True: {"zh": "是", "en": "Yes"}, False: {"zh": "否", "en": "No"}}
LIAISON_LIST = "liaison_points"


@dataclass(frozen=True)
class DashboardFilter:
    date_from: date | None = None
    date_to: date | None = None
    liaison_point: str | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class Bar:
    value: Any  # the stored value (None: empty)
    label: LText
    count: int

    def label_for(self, lang: str = "zh") -> str:
        return ltext(self.label, lang) or str(self.value)


@dataclass(frozen=True)
class Breakdown:
    key: str
    label: LText
    type: str
    bars: list[Bar]
    truncated: bool = False  # more distinct values than MAX_BARS

    def rows(self, lang: str = "zh") -> list[tuple[str, int]]:
        return [(b.label_for(lang), b.count) for b in self.bars]


@dataclass(frozen=True)
class FunnelStep:
    state: str
    label: LText
    count: int
    overdue: int
    terminal: bool = False


@dataclass
class Dashboard:
    slug: str
    title: LText
    filters: DashboardFilter
    total: int
    by_month: list[tuple[str, int]]
    breakdowns: list[Breakdown]
    funnel: list[FunnelStep]
    overdue: int
    liaison_field: str | None
    date_basis: str  # the date_field key, or "created_at"
    computed_at: datetime = field(default_factory=utcnow)

    @property
    def open(self) -> int:
        return sum(s.count for s in self.funnel if not s.terminal)


# --------------------------------------------------------------------------------------------------
def liaison_field(spec: FormSpec) -> FieldSpec | None:
    """The form's liaison-point field: key `liaison_point`, or a reference to the liaison_points list."""
    f = spec.field("liaison_point")
    if f is not None:
        return f
    return next((f for f in spec.fields if f.type == "reference" and f.choice_list == LIAISON_LIST), None)


def month_expression(dialect: str, spec: FormSpec) -> ColumnElement[Any]:
    """YYYY-MM of a record's date: the date_field's text, else created_at in China Standard Time."""
    if spec.date_field and spec.field(spec.date_field) is not None:
        return func.substr(json_field(dialect, spec.date_field), 1, 7)
    if dialect == "postgresql":
        return func.to_char(func.timezone("Asia/Shanghai", Submission.created_at), "YYYY-MM")
    return func.strftime("%Y-%m", Submission.created_at, "+8 hours")


def check_allowed(actor: Actor, spec: FormSpec) -> None:
    if not actor.can("dashboards") or not form_allows(actor, spec, "view"):
        raise PermissionDenied("dashboard.forbidden", form=ltext(spec.title, actor.language) or spec.slug)


def dashboard_forms(engine: Engine, actor: Actor) -> list[tuple[str, LText]]:
    """(slug, title) of the forms whose dashboard the actor may see (no record counts: one small query)."""
    from engine.home_queries import viewable_forms

    if not actor.can("dashboards"):
        return []
    return [(slug, dict(spec.title)) for slug, _id, spec in viewable_forms(engine, actor)]


_CREATORS: OrderedDict[tuple, list[tuple[str, str]]] = OrderedDict()


def creators(engine: Engine, slug: str, *, actor: Actor) -> list[tuple[str, str]]:
    """(username, display name) of everyone who created records of the form (for the filter).

    A GROUP BY over the form's records: remembered per "data:<slug>" and "users" stamps."""
    from engine.forms import form_ref

    ref = form_ref(engine, slug)
    check_allowed(actor, ref.spec)
    marks = stamps.current_many(engine, [stamps.data_scope(slug), "users"])
    key = (str(engine.url), slug, tuple(sorted(marks.items())))
    with _CACHE_LOCK:
        hit = _CREATORS.get(key)
    if hit is not None:
        return list(hit)
    with engine.connect() as conn:
        names = [r for (r,) in conn.execute(
            select(Submission.created_by).where(Submission.form_id == ref.id, Submission.deleted_at.is_(None))
            .group_by(Submission.created_by).order_by(Submission.created_by)) if r]
        shown = dict(conn.execute(select(User.username, User.display_name).where(User.username.in_(names))).all())
    result = [(n, shown.get(n) or n) for n in names]
    with _CACHE_LOCK:
        _CREATORS[key] = result
        while len(_CREATORS) > CACHE_SIZE:
            _CREATORS.popitem(last=False)
    return list(result)


# --------------------------------------------------------------------------------------------------
def _conditions(dialect: str, form: FormScope, flt: DashboardFilter) -> list[ColumnElement[bool]]:
    conds = base_conditions(dialect, form, None, None)
    if flt.date_from is not None or flt.date_to is not None:
        from engine.reports import date_conditions

        lo = flt.date_from or date(1900, 1, 1)
        hi = flt.date_to or date(9999, 12, 30)
        conds += date_conditions(dialect, form.spec, lo, hi)
    if flt.liaison_point:
        lf = liaison_field(form.spec)
        if lf is not None:
            conds.append(json_equals(dialect, lf.key, flt.liaison_point))
    if flt.created_by:
        conds.append(Submission.created_by == flt.created_by)
    return conds


def _labels(engine: Engine, spec: FormSpec, f: FieldSpec, conn: Connection, values: list[Any]) -> dict[Any, LText]:
    if f.choices:
        return {c.value: (c.label or {"zh": c.value}) for c in f.choices}
    if f.choice_list:
        from engine.forms import choice_lists

        return {c.value: (c.label or {"zh": c.value}) for c in choice_lists(engine).get(f.choice_list, [])}
    if f.type == "user":
        wanted = [str(v) for v in values if v is not None]
        rows = conn.execute(select(User.username, User.display_name).where(User.username.in_(wanted))).all()
        return {u: {"zh": d or u, "en": d or u} for u, d in rows}
    return {}


def _bool_value(v: Any) -> Any:
    if isinstance(v, str) and v in ("true", "false"):
        return v == "true"
    if isinstance(v, int) and not isinstance(v, bool) and v in (0, 1):
        return bool(v)
    return v


def _breakdown(engine: Engine, conn: Connection, dialect: str, spec: FormSpec, f: FieldSpec,
               conds: list[ColumnElement[bool]]) -> Breakdown:
    if f.type == "multiselect":
        counts: dict[Any, int] = dict(list_counts(conn, dialect, conds, f.key))
    else:
        expr = json_field(dialect, f.key)
        counts = {}
        for value, n in group_counts(conn, conds, expr).items():
            key = _bool_value(value) if f.type == "boolean" else value
            counts[key] = counts.get(key, 0) + n
    labels = _labels(engine, spec, f, conn, list(counts))
    if f.type == "boolean":
        labels = {True: BOOL_LABELS[True], False: BOOL_LABELS[False]}
    ordered = sorted(counts.items(), key=lambda kv: (kv[0] is None, -kv[1], str(kv[0])))
    if f.choices:  # keep the spec's order for choice fields (zero bars included)
        order = {c.value: i for i, c in enumerate(f.choices)}
        for c in f.choices:
            counts.setdefault(c.value, 0)
        ordered = sorted(counts.items(), key=lambda kv: (kv[0] is None, order.get(kv[0], len(order)), str(kv[0])))
    bars = [Bar(v, EMPTY_LABEL if v is None else labels.get(v, {"zh": str(v), "en": str(v)}), n) for v, n in ordered]
    return Breakdown(f.key, f.label or {"zh": f.key}, f.type, bars[:MAX_BARS], truncated=len(bars) > MAX_BARS)


def _funnel(conn: Connection, spec: FormSpec, conds: list[ColumnElement[bool]], now: datetime) -> list[FunnelStep]:
    if spec.workflow is None:
        return []
    late = case((Submission.due_at.is_not(None) & (Submission.due_at < now) & Submission.paused_at.is_(None), 1),
                else_=0)
    stmt = (select(Submission.state, func.count(), func.coalesce(func.sum(late.cast(Integer)), 0))
            .where(*conds).group_by(Submission.state))
    found = {state: (int(n), int(o)) for state, n, o in conn.execute(stmt)}
    steps = []
    for st in spec.workflow.states:
        n, o = found.pop(st.key, (0, 0))
        steps.append(FunnelStep(st.key, st.label or {"zh": st.key}, n, 0 if st.terminal else o, st.terminal))
    for state, (n, o) in sorted(found.items(), key=lambda kv: str(kv[0])):  # states older versions had
        if state is not None:
            steps.append(FunnelStep(state, {"zh": state, "en": state}, n, o))
    return steps


def _by_month(conn: Connection, dialect: str, spec: FormSpec, conds: list[ColumnElement[bool]],
              month: ColumnElement[Any]) -> tuple[list[tuple[str, int]], int]:
    """(records per YYYY-MM, all records): one GROUP BY, whose groups (the records without a date
    included) also give the total, so no count of its own reads them again. With a `date` date_field:
    counted per day on its expression index (an index-only scan; a few thousand distinct days) and
    folded into months here, instead of a substr() that no index holds and that reads every record."""
    f = spec.field(spec.date_field) if spec.date_field else None
    group = month if f is None or f.type != "date" else json_field(dialect, f.key)
    months: dict[str, int] = {}
    total = 0
    for value, n in conn.execute(select(group, func.count()).where(*conds).group_by(group)):
        total += int(n)
        if value is not None:
            m = str(value)[:7]
            months[m] = months.get(m, 0) + int(n)
    return sorted(months.items()), total


@dataclass(frozen=True)
class _Counts:
    """The parts of a dashboard that change only when the records do (not with the clock)."""

    total: int
    by_month: list[tuple[str, int]]
    breakdowns: list[Breakdown]


def _counts(engine: Engine, form: FormScope, flt: DashboardFilter) -> _Counts:
    dialect = engine.dialect.name
    spec = form.spec
    conds = _conditions(dialect, form, flt)
    month = month_expression(dialect, spec)
    with engine.connect() as conn:
        by_month, total = _by_month(conn, dialect, spec, conds, month)
        breakdowns = []
        for key in spec.summary:
            f = spec.field(key)
            if f is None or f.type not in CATEGORICAL or f.sensitive:
                continue
            breakdowns.append(_breakdown(engine, conn, dialect, spec, f, conds))
    return _Counts(total, by_month, breakdowns)


def _compute(engine: Engine, form: FormScope, flt: DashboardFilter, now: datetime,
             counts: _Counts | None = None) -> Dashboard:
    spec = form.spec
    counts = counts or _counts(engine, form, flt)
    with engine.connect() as conn:
        funnel = _funnel(conn, spec, _conditions(engine.dialect.name, form, flt), now)
    lf = liaison_field(spec)
    return Dashboard(
        slug=form.slug, title=spec.title, filters=flt, total=counts.total, by_month=counts.by_month,
        breakdowns=counts.breakdowns, funnel=funnel, overdue=sum(s.overdue for s in funnel),
        liaison_field=lf.key if lf else None,
        date_basis=spec.date_field if spec.date_field and spec.field(spec.date_field) else "created_at",
    )


# Two caches, both keyed by the change stamps: whole dashboards per minute (overdue counts move with
# the clock), and their record counts (totals, months, breakdowns: the expensive GROUP BYs) until the
# next write, so a new minute recomputes only the funnel (an index-only scan).
_CACHE: OrderedDict[tuple, Dashboard] = OrderedDict()
_COUNTS: OrderedDict[tuple, _Counts] = OrderedDict()
_CACHE_LOCK = threading.Lock()
STATS = {"hits": 0, "misses": 0}


def form_dashboard(engine: Engine, slug: str, filters: DashboardFilter | None = None, *, actor: Actor,
                   now: datetime | None = None) -> Dashboard:
    """The dashboard of form `slug` under `filters` (checked: actor.can("dashboards") and view access)."""
    from engine.forms import form_ref

    flt = filters or DashboardFilter()
    ref = form_ref(engine, slug)
    check_allowed(actor, ref.spec)
    now = now or datetime.now(UTC)
    marks = stamps.current_many(engine, [stamps.data_scope(slug), "forms", "choice_lists"])
    base = (str(engine.url), slug, ref.version, flt, tuple(sorted(marks.items())))
    key = (*base, now.replace(second=0, microsecond=0))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            STATS["hits"] += 1
            return hit
        counts = _COUNTS.get(base)
    STATS["misses"] += 1
    form = FormScope(slug, ref.id, ref.spec)
    if counts is None:
        counts = _counts(engine, form, flt)
    result = _compute(engine, form, flt, now, counts)
    with _CACHE_LOCK:
        _CACHE[key] = result
        _COUNTS[base] = counts
        for cache in (_CACHE, _COUNTS):
            while len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
    return result


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
        _COUNTS.clear()
        _CREATORS.clear()


__all__ = [
    "Bar", "Breakdown", "Dashboard", "DashboardFilter", "FunnelStep", "check_allowed", "clear_cache", "creators",
    "dashboard_forms", "form_dashboard", "liaison_field", "month_expression",
]
