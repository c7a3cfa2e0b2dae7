"""Statutory time limits of an intake record, computed from its audit trail of workflow steps.

Rules (Legal Aid Law art. 43 and the office's service standard; see `RULES`):

| kind             | starts when the record enters | limit   | met when it enters     | clock stops while |
|------------------|-------------------------------|---------|------------------------|-------------------|
| review_decision  | accepted (受理)               | 7 days  | granted / refused      | waiting_materials |
| assignment       | granted (给予)                | 3 days  | assigned               | —                 |
| closing_file     | closed (结案)                 | 30 days | archived               | —                 |

Entering `terminated` ends a running limit without it being met (it is then no longer listed).

Counting (decided here, documented for the office): the law says 日, calendar days. As in Chinese
procedure (民事诉讼法 第八十五条: the day the period starts is not counted; 期间届满的最后一日是法定休假日的，
以法定休假日后的第一日为期间的最后一日): due date = local start date + limit + paused days; when that
day is a Saturday or Sunday (or a holiday listed in Setting "deadline_calendar"), it moves to the next
working day (a make-up working Saturday listed as a workday does not move). Holidays inside the period
count. The limit ends at 24:00 China Standard Time of the due date.

Paused days: every stay in `waiting_materials` between the start and the end adds the number of
calendar days between entering and leaving it (local dates; a pause begun and ended on the same day
adds 0). While the record waits, the clock is stopped: the deadline is neither overdue nor due soon,
and its due date keeps moving with today. "Due soon": running, not overdue, and the due date is at most
`soon_days` (2) calendar days after today.

The trail is `AuditEvent(action="transition", entity="submission")` with `detail.from / detail.to` and
`at`; when a record has no event for its start (imported records), the record's `state_since` stands
in. So the answer does not depend on `Submission.due_at`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from engine.access import Actor
from engine.db import session_scope
from engine.eligibility import INTAKE, read_setting, require_admin, write_setting
from engine.errors import EngineError
from engine.fields import LOCAL_TZ
from engine.messages import register
from engine.queries import json_field
from models.spec import LText, ltext
from models.tables import AuditEvent, ChoiceItem, ChoiceList, Form, Submission, utcnow

register({
    "deadlines.bad_date": {
        "zh": "日期「{value}」无效，请写成 2026-10-01 的形式，每行一个。",
        "en": "'{value}' is not a date: write dates like 2026-10-01, one per line.",
    },
})

CALENDAR_KEY = "deadline_calendar"


@dataclass(frozen=True)
class Rule:
    kind: str
    label: LText
    starts: frozenset[str]  # entering one of these starts the clock
    met: frozenset[str]  # entering one of these meets the limit
    days: int
    during: frozenset[str]  # states in which the clock runs (or is paused)
    pauses: frozenset[str] = frozenset()  # states in which the clock is stopped
    ends: frozenset[str] = frozenset({"terminated"})  # entering one ends the limit unmet (not listed)


RULES: dict[str, tuple[Rule, ...]] = {
    INTAKE: (
        Rule("review_decision", {"zh": "审查决定（受理后7日内）", "en": "Review decision (7 days after acceptance)"},
             frozenset({"accepted"}), frozenset({"granted", "refused"}), 7,
             frozenset({"accepted", "reviewing", "waiting_materials"}), frozenset({"waiting_materials"})),
        Rule("assignment", {"zh": "指派律师（给予后3日内）", "en": "Assignment (3 days after the grant)"},
             frozenset({"granted"}), frozenset({"assigned"}), 3, frozenset({"granted"})),
        Rule("closing_file", {"zh": "提交结案材料（结案后30日内）", "en": "Closing file (30 days after closing)"},
             frozenset({"closed"}), frozenset({"archived"}), 30, frozenset({"closed"})),
    ),
}
RULE_BY_KIND: dict[str, Rule] = {r.kind: r for rules in RULES.values() for r in rules}
RUNNING_STATES: dict[str, frozenset[str]] = {
    slug: frozenset().union(*(r.during for r in rules)) for slug, rules in RULES.items()
}


@dataclass(frozen=True)
class Step:
    at: datetime
    from_state: str | None
    to_state: str


@dataclass(frozen=True)
class Deadline:
    kind: str
    label: LText
    started_at: datetime
    due_date: date  # the last day (local)
    due_at: datetime  # end of the last day, aware UTC
    met_at: datetime | None
    paused_days: int
    paused: bool  # the clock is stopped now (waiting for materials)
    overdue: bool
    due_soon: bool
    late: bool  # met after the limit

    def label_in(self, lang: str = "zh") -> str:
        return ltext(self.label, lang)


@dataclass(frozen=True)
class Calendar:
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()  # make-up working days (调休) on a weekend

    def working(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays


def local_date(at: datetime) -> date:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(LOCAL_TZ).date()


def end_of(day: date) -> datetime:
    """24:00 local of `day`, as aware UTC (the moment a limit ending that day is past)."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=LOCAL_TZ).astimezone(UTC)


def roll_forward(day: date, cal: Calendar | None = None) -> date:
    """The day itself if it is a working day, else the next working day."""
    cal = cal or Calendar()
    for _ in range(60):
        if cal.working(day):
            return day
        day += timedelta(days=1)
    return day


def due_date_for(start: date, days: int, paused_days: int = 0, cal: Calendar | None = None) -> date:
    return roll_forward(start + timedelta(days=days + paused_days), cal)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def compute(rules: Sequence[Rule], steps: Sequence[Step], *, state: str | None, state_since: datetime | None,
            created_at: datetime | None = None, now: datetime | None = None, cal: Calendar | None = None,
            soon_days: int = 2) -> list[Deadline]:
    """Deadlines of one record from its workflow steps and its current state. Pure."""
    now = _aware(now or utcnow())
    ordered = sorted((Step(_aware(s.at), s.from_state, s.to_state) for s in steps), key=lambda s: s.at)
    since = _aware(state_since) if state_since is not None else None
    created = _aware(created_at) if created_at is not None else None
    out = []
    for rule in rules:
        found = _one(rule, ordered, state, since, created, now, cal, soon_days)
        if found is not None:
            out.append(found)
    return out


def _days_between(start: datetime, end: datetime) -> int:
    return max(0, (local_date(end) - local_date(start)).days)


def _one(rule: Rule, steps: Sequence[Step], state: str | None, since: datetime | None, created: datetime | None,
         now: datetime, cal: Calendar | None, soon_days: int) -> Deadline | None:
    index = next((i for i, s in enumerate(steps) if s.to_state in rule.starts), None)
    if index is not None:
        started = steps[index].at
    elif state in rule.during or (steps and steps[0].from_state in rule.during):
        # No trail of the start (an imported record): the earliest moment known.
        fallback = created or since
        if fallback is None:
            return None
        started, index = fallback, 0
    else:
        return None
    met_at: datetime | None = None
    paused_days = 0
    pause_from: datetime | None = None
    for s in steps[index:]:
        if s.to_state in rule.met:
            met_at = s.at
            break
        if s.to_state in rule.ends:
            return None
        if s.to_state in rule.pauses:
            pause_from = pause_from or s.at
        elif pause_from is not None:
            paused_days += _days_between(pause_from, s.at)
            pause_from = None
    if met_at is None and pause_from is None and state in rule.pauses:
        pause_from = since or started  # waiting, with no trail of when it began
    if pause_from is not None and met_at is None and state not in rule.pauses:
        paused_days += _days_between(pause_from, since or now)  # resumed without a trail
        pause_from = None
    if pause_from is not None and met_at is not None:
        paused_days += _days_between(pause_from, met_at)
        pause_from = None
    paused = pause_from is not None
    if paused and pause_from is not None:
        paused_days += _days_between(pause_from, now)
    due = due_date_for(local_date(started), rule.days, paused_days, cal)
    due_at = end_of(due)
    running = met_at is None and not paused
    overdue = running and now >= due_at
    return Deadline(kind=rule.kind, label=rule.label, started_at=started, due_date=due, due_at=due_at, met_at=met_at,
                    paused_days=paused_days, paused=paused, overdue=overdue,
                    due_soon=running and not overdue and (due - local_date(now)).days <= soon_days,
                    late=met_at is not None and met_at >= due_at)


# --- the calendar setting -------------------------------------------------------------------------
def _dates(values: Iterable[Any]) -> frozenset[date]:
    out = set()
    for v in values or ():
        try:
            out.add(date.fromisoformat(str(v).strip()))
        except ValueError:
            continue
    return frozenset(out)


def calendar(engine: Engine) -> Calendar:
    value = read_setting(engine, CALENDAR_KEY)
    if not isinstance(value, Mapping):
        return Calendar()
    return Calendar(_dates(value.get("holidays") or ()), _dates(value.get("workdays") or ()))


def parse_dates(text: str) -> list[date]:
    out = []
    for raw in str(text or "").replace(",", "\n").replace("，", "\n").splitlines():
        raw = raw.strip()
        if not raw:
            continue
        try:
            out.append(date.fromisoformat(raw))
        except ValueError:
            raise EngineError("deadlines.bad_date", value=raw[:20]) from None
    return sorted(set(out))


def set_calendar(engine: Engine, holidays: Iterable[date], workdays: Iterable[date], *, actor: Actor) -> Calendar:
    """Statutory holidays and make-up working days (admins; audited)."""
    require_admin(actor)
    hol, work = sorted(set(holidays)), sorted(set(workdays))
    with session_scope(engine) as session:
        write_setting(session, CALENDAR_KEY, {"holidays": [d.isoformat() for d in hol],
                                              "workdays": [d.isoformat() for d in work]} if hol or work else None,
                      actor, detail={"holidays": len(hol), "workdays": len(work)})
    return Calendar(frozenset(hol), frozenset(work))


# --- records --------------------------------------------------------------------------------------
def _steps_for(engine: Engine, ids: Sequence[int]) -> dict[int, list[Step]]:
    out: dict[int, list[Step]] = {i: [] for i in ids}
    keys = [str(i) for i in ids]
    for i in range(0, len(keys), 500):
        with session_scope(engine, write=False) as session:
            rows = session.execute(
                select(AuditEvent.entity_id, AuditEvent.at, AuditEvent.detail)
                .where(AuditEvent.entity == "submission", AuditEvent.action == "transition",
                       col(AuditEvent.entity_id).in_(keys[i:i + 500]))
                .order_by(AuditEvent.id)).all()
        for entity_id, at, detail in rows:
            detail = detail if isinstance(detail, Mapping) else {}
            to = detail.get("to")
            if to:
                out.setdefault(int(entity_id), []).append(Step(_aware(at), detail.get("from"), str(to)))
    return out


def deadlines(engine: Engine, sub_id: int, now: datetime | None = None, *, soon_days: int = 2) -> list[Deadline]:
    """Every deadline of a record that has started (met, running or paused)."""
    with session_scope(engine, write=False) as session:
        row = session.execute(select(Submission, Form.slug).join(Form, Form.id == Submission.form_id)
                              .where(Submission.id == int(sub_id))).first()
    if row is None:
        return []
    sub, slug = row
    rules = RULES.get(slug)
    if not rules or sub.deleted_at is not None:
        return []
    steps = _steps_for(engine, [int(sub_id)])[int(sub_id)]
    return compute(rules, steps, state=sub.state, state_since=sub.state_since, created_at=sub.created_at, now=now,
                   cal=calendar(engine), soon_days=soon_days)


@dataclass(frozen=True)
class DueItem:
    sub_id: int
    number: str | None
    name: str
    state: str | None
    created_by: str
    lawyer: str | None
    deadline: Deadline


@dataclass
class DueLists:
    mine_overdue: list[DueItem] = field(default_factory=list)
    mine_due_soon: list[DueItem] = field(default_factory=list)
    all_overdue: list[DueItem] = field(default_factory=list)  # managers only (records.all)
    all_due_soon: list[DueItem] = field(default_factory=list)
    manager: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return {"mine_overdue": len(self.mine_overdue), "mine_due_soon": len(self.mine_due_soon),
                "all_overdue": len(self.all_overdue), "all_due_soon": len(self.all_due_soon)}


def lawyer_codes(engine: Engine, username: str) -> set[str]:
    """Values of the `lawyers` list that belong to a user (item value = username, or extra.username)."""
    out = {username}
    with session_scope(engine, write=False) as session:
        rows = session.execute(select(ChoiceItem.value, ChoiceItem.extra).join(
            ChoiceList, ChoiceList.id == ChoiceItem.list_id).where(ChoiceList.name == "lawyers")).all()
    for value, extra in rows:
        if isinstance(extra, Mapping) and extra.get("username") == username:
            out.add(str(value))
    return out


def overdue_and_due_soon(engine: Engine, *, actor: Actor, now: datetime | None = None, days: int = 2,
                         slug: str = INTAKE) -> DueLists:
    """Overdue and due-soon deadlines: the actor's (created by them or assigned to them as lawyer) and,
    for roles that see all records, everyone's. Candidates (live records in a state where a limit runs)
    are selected in SQL; their transitions are read in one query per 500 records."""
    now = _aware(now or utcnow())
    rules = RULES.get(slug)
    out = DueLists(manager=actor.can("records.all"))
    if not rules:
        return out
    dialect = engine.dialect.name
    name_expr, lawyer_expr = json_field(dialect, "name"), json_field(dialect, "lawyer")
    conds = [Form.slug == slug, col(Submission.deleted_at).is_(None), col(Submission.state).in_(
        sorted(RUNNING_STATES[slug]))]
    mine_cond = or_(Submission.created_by == actor.username, lawyer_expr.in_(sorted(lawyer_codes(engine,
                                                                                                  actor.username))))
    if not out.manager:
        conds.append(mine_cond)
    cal = calendar(engine)
    after = 0
    while True:
        with session_scope(engine, write=False) as session:
            rows = session.execute(
                select(Submission.id, Submission.number, name_expr, Submission.state, Submission.state_since,
                       Submission.created_at, Submission.created_by, lawyer_expr, mine_cond)
                .join(Form, Form.id == Submission.form_id)
                .where(and_(*conds), Submission.id > after).order_by(Submission.id).limit(1000)).all()
        if not rows:
            break
        steps = _steps_for(engine, [int(r[0]) for r in rows])
        for sid, number, name, state, since, created_at, created_by, lawyer, mine in rows:
            for d in compute(rules, steps.get(int(sid), []), state=state, state_since=since, created_at=created_at,
                             now=now, cal=cal, soon_days=days):
                if not (d.overdue or d.due_soon):
                    continue
                item = DueItem(int(sid), number, str(name or ""), state, created_by, lawyer, d)
                if mine:
                    (out.mine_overdue if d.overdue else out.mine_due_soon).append(item)
                if out.manager:
                    (out.all_overdue if d.overdue else out.all_due_soon).append(item)
        if len(rows) < 1000:
            break
        after = int(rows[-1][0])
    for items in (out.mine_overdue, out.mine_due_soon, out.all_overdue, out.all_due_soon):
        items.sort(key=lambda it: (it.deadline.due_at, it.sub_id))
    return out


__all__ = [
    "RULES", "Calendar", "Deadline", "DueItem", "DueLists", "Rule", "Step", "calendar", "compute", "deadlines",
    "due_date_for", "end_of", "overdue_and_due_soon", "parse_dates", "roll_forward", "set_calendar",
]
