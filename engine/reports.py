"""The year-end work report (DOMAIN.md, "What a year-end report tallies"), in SQL.

`year_end_report(engine, date_from, date_to)` computes every figure with SQL aggregates: GROUP BY
on JSON keys through `engine.queries.json_field` (the literal-path expression an expression index
can serve), SUM over tally events, COUNT(DISTINCT ...) — never a table loaded into Python. Rules:

- Deleted records are never counted. Records of every form version count alike (a field key never
  changes meaning across versions).
- A record is dated by its form's `date_field` (ISO text, compared as text), else by `created_at`
  — the same rule as the records list, so a figure's drill-down link shows exactly its records.
- Intake: a case is *accepted* once it left `applied`: states accepted, reviewing,
  waiting_materials, granted, refused, assigned, handling, closed, archived and terminated all
  count (refused at review and terminated cases were accepted first). *Closed* = closed + archived;
  closure rate = closed / accepted. Aided persons (人次) by special group count the accepted cases
  whose `special_groups` list holds the group: an applicant in two groups counts once in each.
- Outreach figures sum the tally events of the events held in the period (the event's date, not
  the tap's). Hearings: sessions = records, person-times = SUM(observer_count). Return visits:
  reach rate = connected / all visits; satisfaction rate = (satisfied + basic) / connected.
  Integrity self-checks: staff members (distinct) per month of the `month` field. Archive
  checklists: complete vs incomplete.

Each `Figure` carries the value, the value of the previous period of the same length (whole years
→ the same years before, whole months → the same months before, else the same number of days), and
a `Drilldown` (form, filters, states, dates) the UI turns into a link to the records list.
"""

from __future__ import annotations

import calendar
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import distinct, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from engine.db import url_key
from engine.errors import EngineError, NotFound
from engine.messages import register
from engine.queries import json_field, json_list, json_number
from models.spec import FieldSpec, FormSpec, LText, ltext
from models.tables import Submission, TallyEvent

register(
    {
        "report.bad_range": {
            "zh": "统计期间有误：开始日期 {date_from} 晚于结束日期 {date_to}。",
            "en": "Wrong period: the start {date_from} is after the end {date_to}.",
        },
        "report.range_too_long": {
            "zh": "统计期间不能超过 {years} 年。",
            "en": "The period cannot be longer than {years} years.",
        },
    }
)

MAX_YEARS = 10
ACCEPTED_STATES: tuple[str, ...] = (
    "accepted", "reviewing", "waiting_materials", "granted", "refused", "assigned", "handling", "closed",
    "archived", "terminated",
)
CLOSED_STATES: tuple[str, ...] = ("closed", "archived")
SATISFIED: tuple[str, ...] = ("satisfied", "basic")

INTAKE = "intake"
CONSULTATION = "consultation"
EVENT = "outreach_event"
HEARING = "hearing_observation"
VISIT = "return_visit"
INTEGRITY = "integrity_check"
ARCHIVE = "archive_checklist"

# unit key -> label (zh, en); a figure's value is shown with its unit
UNITS: dict[str, LText] = {
    "cases": {"zh": "件", "en": "cases"},
    "person_times": {"zh": "人次", "en": "person-times"},
    "events": {"zh": "场", "en": "events"},
    "copies": {"zh": "份", "en": "copies"},
    "people": {"zh": "人", "en": "people"},
    "sessions": {"zh": "场", "en": "sessions"},
    "visits": {"zh": "次", "en": "visits"},
    "files": {"zh": "卷", "en": "files"},
    "checks": {"zh": "人次", "en": "checks"},
    "percent": {"zh": "%", "en": "%"},
    "points": {"zh": "个", "en": "points"},
}
COUNTER_UNITS = {"brochures": "copies", "consultations": "person_times", "onsite_applications": "cases",
                 "people_reached": "people"}

SECTIONS: dict[str, LText] = {
    "cases": {"zh": "一、法律援助案件受理情况", "en": "1. Legal-aid cases"},
    "groups": {"zh": "二、受援人特殊群体（人次）", "en": "2. Aided persons by special group (person-times)"},
    "consultations": {"zh": "三、法律咨询", "en": "3. Legal consultations"},
    "outreach": {"zh": "四、普法宣传与品牌活动", "en": "4. Outreach and campaign events"},
    "quality": {"zh": "五、案件质量管理", "en": "5. Quality control"},
    "integrity": {"zh": "六、廉洁自律自查", "en": "6. Integrity self-checks"},
    "network": {"zh": "七、法律援助网络", "en": "7. The legal-aid network"},
}

CHARTS: dict[str, tuple[LText, str]] = {  # chart key -> (title, figure-key prefix of its bars)
    "cases_by_category": ({"zh": "受理案件类别", "en": "Cases accepted by category"}, "cases.accepted."),
    "events_by_target": ({"zh": "宣传活动服务对象", "en": "Events by target group"}, "outreach.events."),
    "consultations_by_channel": ({"zh": "法律咨询方式", "en": "Consultations by channel"}, "consultations."),
}


# --------------------------------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Drilldown:
    """The records behind a figure: a form, field filters, workflow states and a date range."""

    slug: str
    filters: tuple[tuple[str, str], ...] = ()  # (field key, value); a value "a,b" means any of
    states: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None

    def query_params(self) -> dict[str, str]:
        """What the records page reads: state, date_from, date_to, f_<field>."""
        params: dict[str, str] = {}
        if self.states:
            params["state"] = ",".join(self.states)
        if self.date_from:
            params["date_from"] = self.date_from.isoformat()
        if self.date_to:
            params["date_to"] = self.date_to.isoformat()
        for key, value in self.filters:
            params[f"f_{key}"] = value
        return params

    def url(self) -> str:
        query = urlencode(self.query_params())
        return f"/{self.slug}-records" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class Figure:
    key: str
    label: LText
    value: int | float | None
    previous: int | float | None = None
    drilldown: Drilldown | None = None
    unit: str = "cases"
    level: int = 0  # 0: a headline figure, 1: "of which", 2: a part of a part
    counts_records: bool = True  # the drill-down lists exactly `value` records (False: a sum or a rate)

    def label_for(self, lang: str = "zh") -> str:
        return ltext(self.label, lang) or self.key

    @property
    def change(self) -> int | float | None:
        if self.value is None or self.previous is None:
            return None
        diff = self.value - self.previous
        return round(diff, 1) if isinstance(diff, float) else diff

    def unit_label(self, lang: str = "zh") -> str:
        return ltext(UNITS.get(self.unit, {}), lang)


@dataclass
class Section:
    key: str
    title: LText
    figures: list[Figure] = field(default_factory=list)


@dataclass
class Report:
    date_from: date
    date_to: date
    previous_from: date | None
    previous_to: date | None
    sections: list[Section]
    office: str = ""
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]

    def figure(self, key: str) -> Figure:
        for f in self.figures():
            if f.key == key:
                return f
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self.figure(key).value
        except KeyError:
            return default

    def chart(self, name: str, lang: str = "zh") -> tuple[str, list[tuple[str, float]]]:
        """(title, [(bar label, value)]) of one of CHARTS, from the report's own figures."""
        title, prefix = CHARTS[name]
        bars = [
            (f.label_for(lang), float(f.value or 0))
            for f in self.figures()
            if f.key.startswith(prefix) and f.key.count(".") == prefix.count(".") and f.unit != "percent"
            and not f.key.endswith(".total")
        ]
        return ltext(title, lang), bars

    def period_label(self, lang: str = "zh") -> str:
        return period_label(self.date_from, self.date_to, lang)

    def previous_label(self, lang: str = "zh") -> str:
        if self.previous_from is None or self.previous_to is None:
            return ""
        return period_label(self.previous_from, self.previous_to, lang)

    def to_rows(self, lang: str = "zh") -> list[dict[str, Any]]:
        """One dict per figure, for tables: section, key, label, value, previous, change, unit, url."""
        rows: list[dict[str, Any]] = []
        for s in self.sections:
            for f in s.figures:
                rows.append({
                    "section": ltext(s.title, lang),
                    "key": f.key,
                    "label": ("　" * f.level if lang == "zh" else "  " * f.level) + f.label_for(lang),
                    "value": format_value(f.value, f.unit),
                    "unit": f.unit_label(lang),
                    "previous": format_value(f.previous, f.unit),
                    "change": format_change(f.change, f.unit),
                    "url": f.drilldown.url() if f.drilldown else "",
                })
        return rows


def format_value(value: int | float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "percent":
        return f"{value:.1f}%"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def format_change(change: int | float | None, unit: str = "") -> str:
    if change is None:
        return "—"
    if unit == "percent":
        return f"{change:+.1f}"
    return f"{int(change):+,}" if float(change).is_integer() else f"{change:+,.1f}"


def period_label(d_from: date, d_to: date, lang: str = "zh") -> str:
    whole_years = d_from.month == 1 and d_from.day == 1 and d_to.month == 12 and d_to.day == 31
    if whole_years:
        if d_from.year == d_to.year:
            return f"{d_from.year}年" if lang == "zh" else str(d_from.year)
        return f"{d_from.year}—{d_to.year}年" if lang == "zh" else f"{d_from.year}–{d_to.year}"
    if lang == "zh":
        return f"{d_from.year}年{d_from.month}月{d_from.day}日至{d_to.year}年{d_to.month}月{d_to.day}日"
    return f"{d_from.isoformat()} – {d_to.isoformat()}"


# --------------------------------------------------------------------------------------------------
# periods
# --------------------------------------------------------------------------------------------------
def _month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def _shift_months(d: date, months: int) -> date:
    index = d.year * 12 + (d.month - 1) - months
    return date(index // 12, index % 12 + 1, 1)


def previous_period(d_from: date, d_to: date) -> tuple[date, date]:
    """The period of the same length just before: whole years and whole months shift by calendar."""
    if d_from.month == 1 and d_from.day == 1 and d_to.month == 12 and d_to.day == 31:
        n = d_to.year - d_from.year + 1
        return date(d_from.year - n, 1, 1), date(d_to.year - n, 12, 31)
    if d_from.day == 1 and d_to == _month_end(d_to):
        n = (d_to.year - d_from.year) * 12 + d_to.month - d_from.month + 1
        start = _shift_months(d_from, n)
        return start, _month_end(_shift_months(d_to.replace(day=1), n))
    days = (d_to - d_from).days + 1
    return d_from - timedelta(days=days), d_from - timedelta(days=1)


def year_range(first_year: int, last_year: int | None = None) -> tuple[date, date]:
    last = first_year if last_year is None else last_year
    return date(min(first_year, last), 1, 1), date(max(first_year, last), 12, 31)


# --------------------------------------------------------------------------------------------------
# SQL helpers
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FormScope:
    slug: str
    id: int
    spec: FormSpec  # the current version: it carries every key ever used (retired ones too)


def _form(engine: Engine, slug: str) -> FormScope | None:
    from engine.forms import form_ref

    try:
        ref = form_ref(engine, slug)
    except NotFound:
        return None
    return FormScope(slug, ref.id, ref.spec)


def date_conditions(dialect: str, spec: FormSpec, d_from: date, d_to: date) -> list[ColumnElement[bool]]:
    """A record's date in [d_from, d_to]: the spec's date_field (ISO text), else created_at (UTC days)."""
    if spec.date_field and spec.field(spec.date_field) is not None:
        expr = json_field(dialect, spec.date_field)
        return [expr >= d_from.isoformat(), expr < (d_to + timedelta(days=1)).isoformat()]
    start = datetime.combine(d_from, time.min, tzinfo=UTC)
    end = datetime.combine(d_to + timedelta(days=1), time.min, tzinfo=UTC)
    return [Submission.created_at >= start, Submission.created_at < end]


def base_conditions(dialect: str, form: FormScope, d_from: date | None, d_to: date | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [Submission.form_id == form.id, Submission.deleted_at.is_(None)]
    if d_from is not None and d_to is not None:
        conds += date_conditions(dialect, form.spec, d_from, d_to)
    return conds


def group_counts(conn: Connection, conds: list[ColumnElement[bool]], *exprs: ColumnElement[Any]) -> dict[Any, int]:
    """{value (or tuple of values): count} — SELECT exprs, COUNT(*) ... GROUP BY exprs."""
    labelled = [e.label(f"g{i}") for i, e in enumerate(exprs)]
    stmt = select(*labelled, func.count().label("n")).where(*conds).group_by(*exprs)
    out: dict[Any, int] = {}
    for row in conn.execute(stmt):
        values = tuple(_norm(v) for v in row[:-1])
        key = values[0] if len(values) == 1 else values
        out[key] = out.get(key, 0) + int(row[-1])
    return out


def list_counts(conn: Connection, dialect: str, conds: list[ColumnElement[bool]], key: str) -> dict[str, int]:
    """{item: records whose list field `key` holds item} (multiselect): one GROUP BY over the distinct
    lists (served by the field's expression index, see engine.indexes), folded into items here."""
    kind, value = json_list(dialect, key)
    stmt = select(value, func.count()).where(*conds, kind == "array").group_by(value)
    out: dict[str, int] = {}
    for found, n in conn.execute(stmt):
        items = json.loads(found) if isinstance(found, str) else found
        if not isinstance(items, list):
            continue
        for item in {_item_text(dialect, i) for i in items if i is not None}:
            out[item] = out.get(item, 0) + int(n)
    return out


def _item_text(dialect: str, item: Any) -> str:
    """A list item as text, as SQLite's json_each / PostgreSQL's jsonb_array_elements_text give it."""
    if isinstance(item, bool):
        return ("true" if item else "false") if dialect == "postgresql" else ("1" if item else "0")
    if isinstance(item, dict | list):
        return json.dumps(item, ensure_ascii=False, separators=(", ", ": ") if dialect == "postgresql" else (",", ":"))
    return str(item)


def tally_sums(conn: Connection, conds: list[ColumnElement[bool]]) -> dict[str, int]:
    """{counter: SUM(delta)} over the tally events of the records matching `conds`."""
    stmt = (select(TallyEvent.counter, func.coalesce(func.sum(TallyEvent.delta), 0))
            .join(Submission, Submission.id == TallyEvent.submission_id)
            .where(*conds).group_by(TallyEvent.counter))
    return {str(c): int(n or 0) for c, n in conn.execute(stmt)}


def _norm(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else str(value)


def _choices(spec: FormSpec | None, key: str) -> list[tuple[str, LText]]:
    f: FieldSpec | None = spec.field(key) if spec else None
    if f is None or not f.choices:
        return []
    return [(c.value, c.label or {"zh": c.value}) for c in f.choices]


def _field_label(spec: FormSpec | None, key: str, default: LText) -> LText:
    f = spec.field(key) if spec else None
    return (f.label or default) if f is not None else default


def _rate(num: int | None, den: int | None) -> float | None:
    if num is None or not den:
        return None
    return round(100.0 * num / den, 1)


def _with_extra(choices: list[tuple[str, LText]], *seen: Iterable[Any]) -> list[tuple[str, LText]]:
    """The spec's choices, then any value found in the data that the choices do not know (old ones)."""
    known = {v for v, _ in choices}
    extra = sorted({str(v) for s in seen for v in s if v is not None and str(v) not in known})
    return choices + [(v, {"zh": v, "en": v}) for v in extra]


# --------------------------------------------------------------------------------------------------
# per-period raw figures (one dict of plain numbers per period)
# --------------------------------------------------------------------------------------------------
def _raw_intake(conn: Connection, dialect: str, form: FormScope, d_from: date, d_to: date) -> dict[str, Any]:
    conds = base_conditions(dialect, form, d_from, d_to)
    cat, route = json_field(dialect, "case_category"), json_field(dialect, "criminal_route")
    by = group_counts(conn, conds, cat, route, Submission.state)
    out: dict[str, Any] = {"by": by}
    refused = conds + [Submission.state == "refused"]
    out["refusal"] = group_counts(conn, refused, json_field(dialect, "refusal_reason"))
    out["groups"] = list_counts(conn, dialect, conds + [Submission.state.in_(ACCEPTED_STATES)], "special_groups")
    return out


def _raw_simple(conn: Connection, dialect: str, form: FormScope, d_from: date, d_to: date, *keys: str) -> dict[Any, int]:
    conds = base_conditions(dialect, form, d_from, d_to)
    return group_counts(conn, conds, *(json_field(dialect, k) for k in keys))


def _raw_events(conn: Connection, dialect: str, form: FormScope, d_from: date, d_to: date) -> dict[str, Any]:
    conds = base_conditions(dialect, form, d_from, d_to)
    return {"by": group_counts(conn, conds, json_field(dialect, "target_group")), "tally": tally_sums(conn, conds)}


def _raw_hearings(conn: Connection, dialect: str, form: FormScope, d_from: date, d_to: date) -> tuple[int, int]:
    conds = base_conditions(dialect, form, d_from, d_to)
    n, persons = conn.execute(
        select(func.count(), func.coalesce(func.sum(json_number(dialect, "observer_count")), 0)).where(*conds)
    ).one()
    return int(n), int(round(float(persons or 0)))


def _raw_integrity(conn: Connection, dialect: str, form: FormScope, d_from: date, d_to: date) -> dict[str, int]:
    """{YYYY-MM: distinct staff} for the months of the period (by the `month` field)."""
    month = json_field(dialect, "month")
    staff = json_field(dialect, "staff")
    conds = base_conditions(dialect, form, None, None) + [
        month >= f"{d_from.year:04d}-{d_from.month:02d}", month <= f"{d_to.year:04d}-{d_to.month:02d}",
    ]
    stmt = select(month, func.count(distinct(staff))).where(*conds).group_by(month)
    return {str(m): int(n) for m, n in conn.execute(stmt) if m is not None}


@dataclass
class _Raw:
    intake: dict[str, Any] | None = None
    consult: dict[Any, int] | None = None
    events: dict[str, Any] | None = None
    hearings: tuple[int, int] | None = None
    visits: dict[Any, int] | None = None
    integrity: dict[str, int] | None = None
    archive: dict[Any, int] | None = None
    grades: dict[Any, int] | None = None
    network: tuple[int, int] | None = None  # (liaison points in the list, points with records in the period)


LIAISON_FORMS = (INTAKE, CONSULTATION, EVENT)


def _raw_network(conn: Connection, dialect: str, forms: dict[str, FormScope | None], d_from: date,
                 d_to: date) -> tuple[int, int] | None:
    """(active liaison points in the reference list, distinct points named by the period's records)."""
    from sqlalchemy import union

    from models.tables import ChoiceItem, ChoiceList

    parts = []
    for slug in LIAISON_FORMS:
        form = forms.get(slug)
        if form is None or form.spec.field("liaison_point") is None:
            continue
        expr = json_field(dialect, "liaison_point")
        parts.append(select(expr.label("lp")).where(*base_conditions(dialect, form, d_from, d_to), expr.is_not(None)))
    if not parts:
        return None
    points = conn.execute(select(func.count()).select_from(ChoiceItem).join(
        ChoiceList, ChoiceList.id == ChoiceItem.list_id).where(
        ChoiceList.name == "liaison_points", ChoiceItem.active.is_(True))).scalar_one()
    named = union(*parts).subquery()
    active = conn.execute(select(func.count()).select_from(named)).scalar_one()
    return int(points), int(active)


def _collect(engine: Engine, forms: dict[str, FormScope | None], d_from: date, d_to: date) -> _Raw:
    dialect = engine.dialect.name
    raw = _Raw()
    with engine.connect() as conn:
        if forms[INTAKE]:
            raw.intake = _raw_intake(conn, dialect, forms[INTAKE], d_from, d_to)  # type: ignore[arg-type]
        if forms[CONSULTATION]:
            raw.consult = _raw_simple(conn, dialect, forms[CONSULTATION], d_from, d_to, "channel")  # type: ignore[arg-type]
        if forms[EVENT]:
            raw.events = _raw_events(conn, dialect, forms[EVENT], d_from, d_to)  # type: ignore[arg-type]
        if forms[HEARING]:
            raw.hearings = _raw_hearings(conn, dialect, forms[HEARING], d_from, d_to)  # type: ignore[arg-type]
        if forms[VISIT]:
            raw.visits = _raw_simple(conn, dialect, forms[VISIT], d_from, d_to, "reached", "satisfaction")  # type: ignore[arg-type]
        if forms[INTEGRITY]:
            raw.integrity = _raw_integrity(conn, dialect, forms[INTEGRITY], d_from, d_to)  # type: ignore[arg-type]
        if forms[ARCHIVE]:
            raw.archive = _raw_simple(conn, dialect, forms[ARCHIVE], d_from, d_to, "complete")  # type: ignore[arg-type]
            if forms[ARCHIVE].spec.field("grade") is not None:  # type: ignore[union-attr]
                raw.grades = _raw_simple(conn, dialect, forms[ARCHIVE], d_from, d_to, "grade")  # type: ignore[arg-type]
        raw.network = _raw_network(conn, dialect, forms, d_from, d_to)
    return raw


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------
_GRADE_PREFIX = {"zh": "卷宗评定：", "en": "File grade: "}


class _Builder:
    def __init__(self, cur: _Raw, prev: _Raw | None, d_from: date, d_to: date, forms: dict[str, FormScope | None]):
        self.cur, self.prev, self.d_from, self.d_to, self.forms = cur, prev, d_from, d_to, forms

    def drill(self, slug: str, filters: dict[str, str] | None = None, states: Iterable[str] = (),
              dated: bool = True) -> Drilldown:
        return Drilldown(slug, tuple((filters or {}).items()), tuple(states),
                         self.d_from if dated else None, self.d_to if dated else None)

    def both(self, fn: Any) -> tuple[Any, Any]:
        """fn(raw) for the period and the previous one (None when not compared)."""
        return fn(self.cur), (fn(self.prev) if self.prev is not None else None)

    # --- cases -----------------------------------------------------------------------------------
    def cases(self) -> Section | None:
        form = self.forms[INTAKE]
        if form is None or self.cur.intake is None:
            return None
        spec = form.spec
        sec = Section("cases", SECTIONS["cases"])

        def total(raw: _Raw, *, cat: str | None = None, route: str | None = None,
                  states: Iterable[str] = ACCEPTED_STATES) -> int:
            wanted = set(states)
            return sum(n for (c, r, s), n in raw.intake["by"].items()  # type: ignore[index]
                       if s in wanted and (cat is None or c == cat) and (route is None or r == route))

        accepted = self.both(lambda r: total(r))
        sec.figures.append(Figure("cases.accepted", {"zh": "受理法律援助案件", "en": "Legal-aid cases accepted"},
                                  *accepted, self.drill(INTAKE, states=ACCEPTED_STATES)))
        seen = [c for (c, _r, _s) in self.cur.intake["by"]]
        if self.prev is not None and self.prev.intake is not None:
            seen += [c for (c, _r, _s) in self.prev.intake["by"]]
        for value, label in _with_extra(_choices(spec, "case_category"), seen):
            v = self.both(lambda r, value=value: total(r, cat=value))
            sec.figures.append(Figure(f"cases.accepted.{value}", label, *v,
                                      self.drill(INTAKE, {"case_category": value}, ACCEPTED_STATES), level=1))
            if value == "criminal":
                for route, rlabel in _choices(spec, "criminal_route") or [("applied", {}), ("notified", {})]:
                    rv = self.both(lambda r, route=route: total(r, cat="criminal", route=route))
                    sec.figures.append(Figure(
                        f"cases.criminal.{route}", rlabel or {"zh": route}, *rv,
                        self.drill(INTAKE, {"case_category": "criminal", "criminal_route": route}, ACCEPTED_STATES),
                        level=2))
        closed = self.both(lambda r: total(r, states=CLOSED_STATES))
        sec.figures.append(Figure("cases.closed", {"zh": "结案（含归档）", "en": "Closed (incl. archived)"},
                                  *closed, self.drill(INTAKE, states=CLOSED_STATES)))
        rate = (_rate(closed[0], accepted[0]), _rate(closed[1], accepted[1]) if self.prev else None)
        sec.figures.append(Figure("cases.closure_rate", {"zh": "结案率", "en": "Closure rate"}, *rate,
                                  self.drill(INTAKE, states=CLOSED_STATES), unit="percent"))
        term = self.both(lambda r: total(r, states=("terminated",)))
        sec.figures.append(Figure("cases.terminated", {"zh": "终止法律援助", "en": "Aid terminated"}, *term,
                                  self.drill(INTAKE, states=("terminated",))))
        refused = self.both(lambda r: total(r, states=("refused",)))
        sec.figures.append(Figure("cases.refused", {"zh": "不予法律援助", "en": "Aid refused"}, *refused,
                                  self.drill(INTAKE, states=("refused",))))
        seen_reasons = list(self.cur.intake["refusal"]) + (
            list(self.prev.intake["refusal"]) if self.prev is not None and self.prev.intake else [])
        for value, label in _with_extra(_choices(spec, "refusal_reason"), [r for r in seen_reasons if r]):
            v = self.both(lambda r, value=value: r.intake["refusal"].get(value, 0))
            sec.figures.append(Figure(f"cases.refused.{value}", label, *v,
                                      self.drill(INTAKE, {"refusal_reason": value}, ("refused",)), level=1))
        missing = self.both(lambda r: r.intake["refusal"].get(None, 0))
        if missing[0] or missing[1]:
            sec.figures.append(Figure("cases.refused.unstated", {"zh": "未填写原因", "en": "Reason not given"},
                                      *missing, None, level=1))
        return sec

    def groups(self) -> Section | None:
        form = self.forms[INTAKE]
        if form is None or self.cur.intake is None:
            return None
        sec = Section("groups", SECTIONS["groups"])
        seen = list(self.cur.intake["groups"])
        for value, label in _with_extra(_choices(form.spec, "special_groups"), seen):
            v = self.both(lambda r, value=value: r.intake["groups"].get(value, 0))
            sec.figures.append(Figure(f"groups.{value}", label, *v,
                                      self.drill(INTAKE, {"special_groups": value}, ACCEPTED_STATES),
                                      unit="person_times"))
        return sec

    # --- consultations ---------------------------------------------------------------------------
    def consultations(self) -> Section | None:
        form = self.forms[CONSULTATION]
        if form is None or self.cur.consult is None:
            return None
        sec = Section("consultations", SECTIONS["consultations"])
        tot = self.both(lambda r: sum(r.consult.values()))
        sec.figures.append(Figure("consultations.total", {"zh": "解答法律咨询", "en": "Consultations answered"},
                                  *tot, self.drill(CONSULTATION), unit="person_times"))
        for value, label in _with_extra(_choices(form.spec, "channel"), [k for k in self.cur.consult if k]):
            v = self.both(lambda r, value=value: r.consult.get(value, 0))
            sec.figures.append(Figure(f"consultations.{value}", label, *v,
                                      self.drill(CONSULTATION, {"channel": value}), unit="person_times", level=1))
        return sec

    # --- outreach --------------------------------------------------------------------------------
    def outreach(self) -> Section | None:
        form = self.forms[EVENT]
        if form is None or self.cur.events is None:
            return None
        spec = form.spec
        sec = Section("outreach", SECTIONS["outreach"])
        tot = self.both(lambda r: sum(r.events["by"].values()))
        sec.figures.append(Figure("outreach.events", {"zh": "开展宣传活动", "en": "Outreach events held"}, *tot,
                                  self.drill(EVENT), unit="events"))
        for value, label in _with_extra(_choices(spec, "target_group"), [k for k in self.cur.events["by"] if k]):
            v = self.both(lambda r, value=value: r.events["by"].get(value, 0))
            sec.figures.append(Figure(f"outreach.events.{value}", label, *v,
                                      self.drill(EVENT, {"target_group": value}), unit="events", level=1))
        counters = [(f.key, f.label) for f in spec.fields if f.type == "counter"]
        known = {k for k, _ in counters}
        counters += [(k, {"zh": k, "en": k}) for k in sorted(self.cur.events["tally"]) if k not in known]
        for key, label in counters:
            v = self.both(lambda r, key=key: r.events["tally"].get(key, 0))
            sec.figures.append(Figure(f"outreach.{key}", label, *v, self.drill(EVENT),
                                      unit=COUNTER_UNITS.get(key, "cases"), counts_records=False))
        return sec

    # --- quality ---------------------------------------------------------------------------------
    def quality(self) -> Section | None:
        sec = Section("quality", SECTIONS["quality"])
        if self.forms[HEARING] is not None and self.cur.hearings is not None:
            n = self.both(lambda r: r.hearings[0])
            p = self.both(lambda r: r.hearings[1])
            sec.figures.append(Figure("hearings.sessions", {"zh": "参加庭审旁听", "en": "Court hearings attended"},
                                      *n, self.drill(HEARING), unit="sessions"))
            sec.figures.append(Figure("hearings.person_times", {"zh": "庭审旁听人次",
                                                                 "en": "Hearing attendance (person-times)"},
                                      *p, self.drill(HEARING), unit="person_times", counts_records=False))
        if self.forms[VISIT] is not None and self.cur.visits is not None:
            def visits(r: _Raw) -> tuple[int, int, int]:
                total = sum(r.visits.values())
                reached = sum(n for (re, _s), n in r.visits.items() if re == "connected")
                happy = sum(n for (re, s), n in r.visits.items() if re == "connected" and s in SATISFIED)
                return total, reached, happy

            cur = visits(self.cur)
            prev = visits(self.prev) if self.prev is not None and self.prev.visits is not None else None

            def pick(i: int) -> tuple[int, int | None]:
                return cur[i], (prev[i] if prev else None)

            sec.figures += [
                Figure("visits.total", {"zh": "回访受援人", "en": "Return visits"}, *pick(0), self.drill(VISIT),
                       unit="visits"),
                Figure("visits.reached", {"zh": "其中：联系上", "en": "of which reached"}, *pick(1),
                       self.drill(VISIT, {"reached": "connected"}), unit="visits", level=1),
                Figure("visits.reach_rate", {"zh": "回访联系率", "en": "Reach rate"}, _rate(cur[1], cur[0]),
                       _rate(prev[1], prev[0]) if prev else None, self.drill(VISIT, {"reached": "connected"}),
                       unit="percent", level=1),
                Figure("visits.satisfied", {"zh": "满意及基本满意", "en": "Satisfied or basically satisfied"},
                       *pick(2), self.drill(VISIT, {"reached": "connected", "satisfaction": ",".join(SATISFIED)}),
                       unit="visits", level=1),
                Figure("visits.satisfaction_rate", {"zh": "满意率", "en": "Satisfaction rate"},
                       _rate(cur[2], cur[1]), _rate(prev[2], prev[1]) if prev else None,
                       self.drill(VISIT, {"reached": "connected", "satisfaction": ",".join(SATISFIED)}),
                       unit="percent", level=1),
            ]
        form = self.forms[ARCHIVE]
        if form is not None and self.cur.archive is not None:
            tot = self.both(lambda r: sum(r.archive.values()))
            sec.figures.append(Figure("archive.total", {"zh": "归档材料核查", "en": "Case files checked"}, *tot,
                                      self.drill(ARCHIVE), unit="files"))
            for value, label in _with_extra(_choices(form.spec, "complete"), [k for k in self.cur.archive if k]):
                v = self.both(lambda r, value=value: r.archive.get(value, 0))
                sec.figures.append(Figure(f"archive.{value}", label, *v, self.drill(ARCHIVE, {"complete": value}),
                                          unit="files", level=1))
            if self.cur.grades is not None:
                graded = [(v, lab) for v, lab in _choices(form.spec, "grade")]
                for value, label in _with_extra(graded, [k for k in self.cur.grades if k]):
                    v = self.both(lambda r, value=value: (r.grades or {}).get(value, 0))
                    sec.figures.append(Figure(
                        f"archive.grade.{value}", {k: f"{_GRADE_PREFIX[k]}{t}" for k, t in label.items()
                                                   if k in _GRADE_PREFIX} or label,
                        *v, self.drill(ARCHIVE, {"grade": value}), unit="files", level=1))
        return sec if sec.figures else None

    # --- network ---------------------------------------------------------------------------------
    def network(self) -> Section | None:
        if self.cur.network is None:
            return None
        points, active = self.cur.network
        prev_active = self.prev.network[1] if self.prev is not None and self.prev.network else None
        return Section("network", SECTIONS["network"], [
            Figure("network.points", {"zh": "法律服务联络点", "en": "Legal-service liaison points"}, points, None,
                   None, unit="points", counts_records=False),
            Figure("network.active", {"zh": "本期有案件、咨询或活动的联络点",
                                      "en": "Points with cases, consultations or events in the period"},
                   active, prev_active, None, unit="points", level=1, counts_records=False),
        ])

    # --- integrity -------------------------------------------------------------------------------
    def integrity(self) -> Section | None:
        form = self.forms[INTEGRITY]
        if form is None or self.cur.integrity is None:
            return None
        sec = Section("integrity", SECTIONS["integrity"])
        tot = self.both(lambda r: sum(r.integrity.values()))
        sec.figures.append(Figure("integrity.checks", {"zh": "完成廉洁自律自查", "en": "Self-checks completed"},
                                  *tot, None, unit="checks"))
        months = sorted(self.cur.integrity)
        for m in months:
            year, mon = m[:4], m[5:7].lstrip("0")
            sec.figures.append(Figure(f"integrity.month.{m}", {"zh": f"{year}年{mon}月", "en": m},
                                      self.cur.integrity[m], None, self.drill(INTEGRITY, {"month": m}, dated=False),
                                      unit="people", level=1, counts_records=False))
        return sec


def year_end_report(engine: Engine, date_from: date, date_to: date, *, compare: bool = True) -> Report:
    """The year-end report for [date_from, date_to] (inclusive), compared with the period before."""
    from engine.pdf import office_name

    if isinstance(date_from, datetime):
        date_from = date_from.date()
    if isinstance(date_to, datetime):
        date_to = date_to.date()
    if date_from > date_to:
        raise EngineError("report.bad_range", date_from=date_from.isoformat(), date_to=date_to.isoformat())
    if (date_to - date_from).days > 366 * MAX_YEARS:
        raise EngineError("report.range_too_long", years=MAX_YEARS)
    key = (url_key(engine), date_from, date_to, bool(compare), _marks(engine))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
    if hit is None:
        hit = _compute(engine, date_from, date_to, compare)
        with _CACHE_LOCK:
            _CACHE[key] = hit
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
    prev_from, prev_to, sections = hit
    sections = [Section(s.key, s.title, list(s.figures)) for s in sections]  # figures are frozen
    return Report(date_from, date_to, prev_from, prev_to, sections, office=office_name(engine))


def _compute(engine: Engine, date_from: date, date_to: date,
             compare: bool) -> tuple[date | None, date | None, list[Section]]:
    forms = {slug: _form(engine, slug) for slug in (INTAKE, CONSULTATION, EVENT, HEARING, VISIT, INTEGRITY, ARCHIVE)}
    cur = _collect(engine, forms, date_from, date_to)
    prev_from = prev_to = None
    prev = None
    if compare:
        prev_from, prev_to = previous_period(date_from, date_to)
        prev = _collect(engine, forms, prev_from, prev_to)
    b = _Builder(cur, prev, date_from, date_to, forms)
    sections = [s for s in (b.cases(), b.groups(), b.consultations(), b.outreach(), b.quality(), b.integrity(),
                            b.network()) if s is not None]
    return prev_from, prev_to, sections


# Computed reports, per process, keyed by what they are computed from: every record write bumps the
# "data" stamp, a publish "forms", a reference-list edit "choice_lists", and a tally tap adds a
# tally_events row (append-only: its count and largest id move). A cached report is never stale.
CACHE_SIZE = 64
_CACHE: OrderedDict[tuple, tuple[date | None, date | None, list[Section]]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _marks(engine: Engine) -> tuple:
    from engine import stamps

    marks = stamps.current_many(engine, ["data", "forms", "choice_lists"])
    with engine.connect() as conn:
        taps = conn.execute(select(func.count(), func.max(TallyEvent.id)).select_from(TallyEvent)).one()
    return (tuple(sorted(marks.items())), int(taps[0] or 0), int(taps[1] or 0))


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


__all__ = [
    "ACCEPTED_STATES", "CHARTS", "CLOSED_STATES", "Drilldown", "Figure", "Report", "Section", "base_conditions",
    "clear_cache",
    "date_conditions", "format_change", "format_value", "group_counts", "list_counts", "period_label",
    "previous_period", "tally_sums", "year_end_report", "year_range",
]
