"""What the home page needs, in SQL: records awaiting the user's action (and the overdue ones among
them), today's outreach events and this month's counts per form. No table is loaded: every function
runs a few small indexed queries and returns at most `limit` rows per form.

Which records "await" a user comes from the workflow rules: a record waits for the user when its
form's workflow has a transition from the record's state that the user's role may take
(`engine.workflow.available`, computed per state here so that SQL can filter on `state IN (...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from engine.access import Actor, form_allows
from engine.db import session_scope
from engine.forms import get_spec
from engine.queries import json_field
from models.spec import FormSpec
from models.tables import Form, Submission, utcnow

LOCAL_TZ = timezone(timedelta(hours=8))  # the office's day and month (China Standard Time)
OUTREACH_CATEGORY = "outreach"


@dataclass(frozen=True)
class HomeItem:
    slug: str
    spec: FormSpec  # the form's current version (labels of states, title field)
    submission: Submission
    overdue: bool


def actionable_states(spec: FormSpec, actor: Actor) -> set[str]:
    """States of the form's workflow from which this actor's role may take some step."""
    if spec.workflow is None:
        return set()
    out: set[str] = set()
    every = {s.key for s in spec.workflow.states}
    for t in spec.workflow.transitions:
        if actor.role in t.roles:
            out |= every if "*" in t.from_ else set(t.from_)
    terminal = {s.key for s in spec.workflow.states if s.terminal}
    return out - terminal


def viewable_forms(engine: Engine, actor: Actor) -> list[tuple[str, int, FormSpec]]:
    """(slug, form id, current spec) of every published, not archived form the actor may view.
    One query on the forms table; specs come from the version cache."""
    with session_scope(engine, write=False) as s:
        rows = s.execute(
            select(Form.slug, Form.id, Form.current_version)
            .where(Form.current_version >= 1, col(Form.archived).is_(False))
            .order_by(Form.category, Form.slug)
        ).all()
    out = []
    for slug, form_id, version in rows:
        spec = get_spec(engine, slug, int(version))
        if form_allows(actor, spec, "view"):
            out.append((slug, int(form_id), spec))
    return out


Forms = list[tuple[str, int, FormSpec]]


def awaiting(engine: Engine, actor: Actor, *, limit: int = 20, now: datetime | None = None,
             forms: Forms | None = None, include_overdue: bool = True) -> list[HomeItem]:
    """Live records in states where the actor can act, overdue first, then by due date, then newest
    (`include_overdue=False`: only those not past their limit)."""
    now = now or utcnow()
    items: list[HomeItem] = []
    with session_scope(engine, write=False) as s:
        for slug, form_id, spec in _forms(engine, actor, forms):
            states = sorted(actionable_states(spec, actor))
            if not states:
                continue
            stmt = (
                select(Submission)
                .where(Submission.form_id == form_id, col(Submission.deleted_at).is_(None),
                       col(Submission.state).in_(states))
                .order_by(col(Submission.due_at).asc().nulls_last(), col(Submission.id).desc())
                .limit(limit)
            )
            if not include_overdue:
                stmt = stmt.where(or_(col(Submission.due_at).is_(None), col(Submission.due_at) >= now,
                                      col(Submission.paused_at).is_not(None)))
            for sub in s.execute(stmt).scalars().all():
                items.append(HomeItem(slug, spec, sub, _is_overdue(sub, now)))
    items.sort(key=lambda i: (not i.overdue, _aware(i.submission.due_at) or datetime.max.replace(tzinfo=UTC),
                              -int(i.submission.id or 0)))
    return items


def overdue(engine: Engine, actor: Actor, *, limit: int = 50, now: datetime | None = None,
            forms: Forms | None = None) -> list[HomeItem]:
    """Live records past their time limit (clock not paused) in states where the actor can act."""
    now = now or utcnow()
    items: list[HomeItem] = []
    with session_scope(engine, write=False) as s:
        for slug, form_id, spec in _forms(engine, actor, forms):
            states = sorted(actionable_states(spec, actor))
            if not states:
                continue
            stmt = (
                select(Submission)
                .where(Submission.form_id == form_id, col(Submission.deleted_at).is_(None),
                       col(Submission.state).in_(states), col(Submission.due_at).is_not(None),
                       col(Submission.due_at) < now, col(Submission.paused_at).is_(None))
                .order_by(col(Submission.due_at).asc())
                .limit(limit)
            )
            items.extend(HomeItem(slug, spec, sub, True) for sub in s.execute(stmt).scalars().all())
    items.sort(key=lambda i: _aware(i.submission.due_at) or now)
    return items


def count_awaiting(engine: Engine, actor: Actor, *, now: datetime | None = None,
                   forms: Forms | None = None) -> tuple[int, int]:
    """(records awaiting the actor, of which overdue): COUNTs only."""
    now = now or utcnow()
    total = late = 0
    with session_scope(engine, write=False) as s:
        for _slug, form_id, spec in _forms(engine, actor, forms):
            states = sorted(actionable_states(spec, actor))
            if not states:
                continue
            base = and_(Submission.form_id == form_id, col(Submission.deleted_at).is_(None),
                        col(Submission.state).in_(states))
            total += int(s.execute(select(func.count()).select_from(Submission).where(base)).scalar_one())
            late += int(s.execute(select(func.count()).select_from(Submission).where(
                base, col(Submission.due_at).is_not(None), col(Submission.due_at) < now,
                col(Submission.paused_at).is_(None))).scalar_one())
    return total, late


def todays_events(engine: Engine, actor: Actor, *, today: date | None = None, limit: int = 20,
                  forms: Forms | None = None) -> list[HomeItem]:
    """Outreach records (category 'outreach', not child forms) dated today on their date field."""
    today = today or datetime.now(LOCAL_TZ).date()
    dialect = engine.dialect.name
    items: list[HomeItem] = []
    with session_scope(engine, write=False) as s:
        for slug, form_id, spec in _forms(engine, actor, forms):
            if spec.category != OUTREACH_CATEGORY or spec.parent or not spec.date_field:
                continue
            stmt = (
                select(Submission)
                .where(Submission.form_id == form_id, col(Submission.deleted_at).is_(None),
                       json_field(dialect, spec.date_field) == today.isoformat())
                .order_by(col(Submission.id).desc())
                .limit(limit)
            )
            items.extend(HomeItem(slug, spec, sub, False) for sub in s.execute(stmt).scalars().all())
    return items


def month_start(today: date | None = None) -> datetime:
    """The first moment of the office's current month, as aware UTC."""
    today = today or datetime.now(LOCAL_TZ).date()
    return datetime(today.year, today.month, 1, tzinfo=LOCAL_TZ).astimezone(UTC)


def month_counts(engine: Engine, actor: Actor, *, today: date | None = None,
                 forms: Forms | None = None) -> list[tuple[str, FormSpec, int]]:
    """(slug, spec, records entered this month) per form the actor may view: one GROUP BY query."""
    since = month_start(today)
    forms = _forms(engine, actor, forms)
    if not forms:
        return []
    by_id = {form_id: (slug, spec) for slug, form_id, spec in forms}
    stmt = (
        select(Submission.form_id, func.count())
        .where(col(Submission.form_id).in_(list(by_id)), col(Submission.deleted_at).is_(None),
               Submission.created_at >= since)
        .group_by(Submission.form_id)
    )
    with session_scope(engine, write=False) as s:
        counts: dict[Any, int] = {fid: int(n) for fid, n in s.execute(stmt).all()}
    return [(slug, spec, counts.get(fid, 0)) for fid, (slug, spec) in by_id.items()]


def _forms(engine: Engine, actor: Actor, forms: Forms | None) -> Forms:
    return viewable_forms(engine, actor) if forms is None else forms


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _is_overdue(sub: Submission, now: datetime) -> bool:
    due = _aware(sub.due_at)
    return due is not None and sub.paused_at is None and now > due
