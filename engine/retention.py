"""Retention of closed cases (PIPL): anonymise or purge intake records closed more than N years ago.

Nothing here runs by itself. An administrator looks at the plan (`plan_retention`), types the number
of records it names, and applies it (`apply_retention`); the Setting "retention_years" is only the
default the retention page offers (None: no default, nothing is proposed until a number is typed).

Which records: records of the intake form (or `slug`) in a final or closed state ("closed",
"archived", "terminated", "refused") whose last state change (`state_since`, else `updated_at`) is
older than N calendar years, not deleted, and not already anonymised (a record that went through
retention has a "retention" audit event and is never picked again).

Two modes, one transaction each, all or nothing:

- **anonymise** (the default; year-end figures stay right): every personal field of the record's own
  form version loses its value — the title field (the applicant's name), every sensitive field, every
  identity-typed field (id_number, phone, email) and every free-text field (text, textarea: free text
  can hold anything) — and checklist notes are emptied. A text field gets the marker "已匿名化"; a
  field the marker does not fit (an ID number, a phone, a select, a textarea with a minimum length)
  loses its value. Choices, references (category, cause, liaison point...), numbers, booleans, dates,
  the workflow state and its dates, the application number and who created the record are kept, so
  dashboards and the year-end report count the record exactly as before. The record stays live.
- **purge**: the record is soft-deleted (deleted_at / deleted_by: the admin) and its data emptied.
  The row stays, with its id, form, version, application number, state and dates, so the audit
  trail still points somewhere, application numbers keep no gap and `check` still finds each
  record's creation event; it is no longer counted in lists, dashboards or reports (use anonymise
  when past years' figures must not change). A purged record cannot be restored
  (engine.storage.restore refuses it).

In both modes the same values are also taken out of what the audit log and the decisions table hold
about the record (the masked copy in its create event, the before/after values of its edits, the
details of its conflict-check decisions): otherwise the record would be anonymised while its history
still named the person. Who did what and when stays. This is the one place that rewrites audit
details, it runs only inside `apply_retention`, and it is itself audited: one "retention" event per
record (mode, years, cutoff, fields) and one for the whole run. No page offers any other change to
the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, case, cast, exists, func, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from engine import audit, stamps
from engine.access import Actor
from engine.db import is_postgres, session_scope
from engine.errors import EngineError, PermissionDenied
from engine.fields import REGISTRY, FieldProblem, is_empty
from engine.forms import form_ref, get_spec
from engine.messages import register
from models.decisions import Decision
from models.spec import FieldSpec, FormSpec
from models.tables import AuditEvent, Setting, Submission, utcnow

MARKER = "已匿名化"
CLOSED_STATES: tuple[str, ...] = ("closed", "archived", "terminated", "refused")
MODES: tuple[str, ...] = ("anonymise", "purge")
SETTING_KEY = "retention_years"
DEFAULT_SLUG = "intake"
MIN_YEARS, MAX_YEARS = 1, 100
SAMPLE = 20
BATCH = 500
IDENTITY_TYPES = frozenset({"id_number", "phone", "email"})
FREE_TEXT_TYPES = frozenset({"text", "textarea"})

register({
    "retention.forbidden": {
        "zh": "只有管理员可以执行数据保留期限处理。",
        "en": "Only administrators may apply the retention of closed cases.",
    },
    "retention.bad_years": {
        "zh": "保留年限应为 {min} 到 {max} 之间的整数（填写的是「{years}」）。",
        "en": "The retention period must be a whole number of years from {min} to {max} (got '{years}').",
    },
    "retention.bad_mode": {
        "zh": "处理方式「{mode}」无效，只能是匿名化（anonymise）或清除（purge）。",
        "en": "Unknown mode '{mode}': use anonymise or purge.",
    },
    "retention.nothing": {
        "zh": "没有超过 {years} 年的已结案件需要处理。",
        "en": "There are no closed cases older than {years} years to process.",
    },
    "retention.confirm_mismatch": {
        "zh": "确认数量不符：现在符合条件的记录有 {count} 条，您填写的是 {typed}。没有做任何改动，请重新核对后再确认。",
        "en": "The confirmation does not match: {count} record(s) qualify now, you typed {typed}. Nothing was "
              "changed; check the list again and confirm.",
    },
})


@dataclass
class RetentionPlan:
    """What `apply_retention` would process now (nothing is changed by making a plan)."""

    slug: str
    years: int
    cutoff: datetime
    count: int
    sample_ids: list[int]
    by_state: dict[str, int] = field(default_factory=dict)
    oldest: datetime | None = None  # the oldest / newest last state change among them
    newest: datetime | None = None


@dataclass
class RetentionResult:
    slug: str
    mode: str
    years: int
    cutoff: datetime
    ids: list[int]

    @property
    def count(self) -> int:
        return len(self.ids)


# --- the default (a setting; nothing runs on its own) -------------------------------------------
def check_years(years: Any) -> int:
    try:
        value = int(years)
        if isinstance(years, bool) or (isinstance(years, float) and not years.is_integer()):
            raise ValueError
    except (TypeError, ValueError):
        raise EngineError("retention.bad_years", years=years, min=MIN_YEARS, max=MAX_YEARS) from None
    if not MIN_YEARS <= value <= MAX_YEARS:
        raise EngineError("retention.bad_years", years=years, min=MIN_YEARS, max=MAX_YEARS)
    return value


def _require_admin(actor: Actor) -> None:
    if not (actor.can("settings") or actor.can("users")):
        raise PermissionDenied("retention.forbidden")


def retention_years(engine: Engine) -> int | None:
    """The configured default period (Setting "retention_years"), None when not configured."""
    with session_scope(engine, write=False) as session:
        value = session.execute(select(Setting.value).where(Setting.key == SETTING_KEY)).scalar()
    years = value.get("years") if isinstance(value, dict) else None
    return int(years) if isinstance(years, int) else None


def set_retention_years(engine: Engine, years: int | None, *, actor: Actor) -> None:
    """Set (or with None, remove) the default period shown on the retention page. Audited."""
    _require_admin(actor)
    value = None if years is None else check_years(years)
    with session_scope(engine) as session:
        row = session.get(Setting, SETTING_KEY)
        before = row.value if row is not None else None
        if value is None:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(Setting(key=SETTING_KEY, value={"years": value}, updated_at=utcnow()))
        else:
            row.value = {"years": value}
            row.updated_at = utcnow()
            session.add(row)
        audit.record(session, actor, "setting_update", "setting", SETTING_KEY,
                     detail={"before": before, "after": None if value is None else {"years": value}})


# --- which records ------------------------------------------------------------------------------
def cutoff_for(years: int, now: datetime | None = None) -> datetime:
    """`now` minus `years` calendar years (29 February -> 28 February), aware UTC."""
    now = (now or utcnow()).astimezone(UTC)
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def _last_change_before(cutoff: datetime) -> Any:
    return or_(
        and_(col(Submission.state_since).isnot(None), col(Submission.state_since) < cutoff),
        and_(col(Submission.state_since).is_(None), col(Submission.updated_at) < cutoff),
    )


def _candidates(form_id: int, cutoff: datetime, states: tuple[str, ...]) -> Any:
    """WHERE clause of the records a run processes (see the module docstring)."""
    done = select(AuditEvent.id).where(
        AuditEvent.action == "retention", AuditEvent.entity == "submission",
        AuditEvent.entity_id == cast(Submission.id, String),
    )
    return and_(
        Submission.form_id == form_id, col(Submission.deleted_at).is_(None), col(Submission.state).in_(states),
        _last_change_before(cutoff), ~exists(done),
    )


def plan_retention(engine: Engine, years: int, *, now: datetime | None = None, slug: str = DEFAULT_SLUG,
                   states: tuple[str, ...] = CLOSED_STATES, sample: int = SAMPLE) -> RetentionPlan:
    """How many records `apply_retention` would process now, and which (a sample of ids). Read-only."""
    years = check_years(years)
    cutoff = cutoff_for(years, now)
    ref = form_ref(engine, slug)
    where = _candidates(ref.id, cutoff, states)
    when = func.coalesce(Submission.state_since, Submission.updated_at)
    with session_scope(engine, write=False) as session:
        by_state = {str(s): int(n) for s, n in session.execute(
            select(Submission.state, func.count()).where(where).group_by(Submission.state)).all()}
        ids = [int(i) for i in session.execute(
            select(Submission.id).where(where).order_by(Submission.id).limit(max(0, sample))).scalars()]
        oldest, newest = session.execute(select(func.min(when), func.max(when)).where(where)).one()
    return RetentionPlan(slug=slug, years=years, cutoff=cutoff, count=sum(by_state.values()), sample_ids=ids,
                         by_state=by_state, oldest=_aware(oldest), newest=_aware(newest))


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite: min()/max() of a coalesce come back as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- what anonymising takes away ----------------------------------------------------------------
def personal_fields(spec: FormSpec) -> list[FieldSpec]:
    """Fields whose values anonymising takes away (see the module docstring)."""
    return [
        f for f in spec.fields
        if f.key == spec.title_field or f.sensitive or f.type in IDENTITY_TYPES or f.type in FREE_TEXT_TYPES
    ]


def _marker_fits(f: FieldSpec) -> bool:
    ft = REGISTRY.get(f.type)
    if ft is None or f.type not in FREE_TEXT_TYPES:
        return False
    try:
        return ft.coerce(MARKER, f, None) == MARKER
    except FieldProblem:
        return False
    except Exception:  # a type that fails unexpectedly: take the value away instead
        return False


def _plan_fields(spec: FormSpec) -> dict[str, str | None]:
    """{field key: the marker, or None (the value is taken away)} for one form version."""
    return {f.key: (MARKER if _marker_fits(f) else None) for f in personal_fields(spec)}


def _checklists(spec: FormSpec) -> set[str]:
    return {f.key for f in spec.fields if f.type == "checklist"}


def anonymised(data: Mapping[str, Any], rules: Mapping[str, str | None], checklists: set[str]) -> dict[str, Any]:
    """A copy of record data with personal values replaced (marker) or taken away, checklist notes emptied."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in rules:
            if is_empty(value):
                out[key] = value
            elif rules[key] is not None:
                out[key] = rules[key]
            continue  # the value is taken away
        if key in checklists and isinstance(value, dict):
            value = {k: ({**v, "note": ""} if isinstance(v, dict) and v.get("note") else v) for k, v in value.items()}
        out[key] = value
    return out


def _scrub_detail(detail: Any, mode: str, rules: Mapping[str, str | None], checklists: set[str]) -> Any:
    """An audit event's detail without the personal values it copied from the record."""
    if not isinstance(detail, dict):
        return detail
    out = dict(detail)
    if isinstance(out.get("data"), dict):
        out["data"] = {} if mode == "purge" else anonymised(out["data"], rules, checklists)
    if isinstance(out.get("changes"), dict):
        if mode == "purge":
            out["changes"] = {k: [None, None] for k in out["changes"]}
        else:
            out["changes"] = {
                k: ([MARKER if not is_empty(v) else v for v in pair] if isinstance(pair, list) else MARKER)
                if k in rules else pair
                for k, pair in out["changes"].items()
            }
    return out


# --- doing it ------------------------------------------------------------------------------------
def apply_retention(engine: Engine, years: int, mode: str = "anonymise", *, actor: Actor, confirm_count: int,
                    now: datetime | None = None, slug: str = DEFAULT_SLUG,
                    states: tuple[str, ...] = CLOSED_STATES) -> RetentionResult:
    """Anonymise or purge the records `plan_retention` names, in one transaction (all or nothing).

    Admins only. `confirm_count` is the number the admin typed after reading the plan: when it is not
    the number of records that qualify at this moment, nothing is changed (EngineError
    "retention.confirm_mismatch").
    """
    _require_admin(actor)
    years = check_years(years)
    if mode not in MODES:
        raise EngineError("retention.bad_mode", mode=mode)
    cutoff = cutoff_for(years, now)
    ref = form_ref(engine, slug)
    specs = {v: get_spec(engine, slug, v) for v in range(1, ref.version + 1)}
    rules = {v: _plan_fields(s) for v, s in specs.items()}
    checklists = {v: _checklists(s) for v, s in specs.items()}
    at = utcnow()
    with session_scope(engine) as session:
        stmt = select(Submission).where(_candidates(ref.id, cutoff, states)).order_by(Submission.id)
        if is_postgres(engine):
            stmt = stmt.with_for_update()
        subs = list(session.execute(stmt).scalars())
        typed = _as_int(confirm_count)
        if not subs:
            raise EngineError("retention.nothing", years=years)
        if typed != len(subs):
            raise EngineError("retention.confirm_mismatch", count=len(subs), typed=confirm_count)
        for sub in subs:
            _process(session, sub, mode, rules[sub.form_version], checklists[sub.form_version], actor, at)
            audit.record(session, actor, "retention", "submission", sub.id, form_slug=slug, detail={
                "mode": mode, "years": years, "cutoff": cutoff, "state": sub.state,
                "fields": sorted(k for k in rules[sub.form_version] if k in sub.data) if mode == "anonymise"
                else sorted(sub.data),
            })
        ids = [int(s.id or 0) for s in subs]
        audit.record(session, actor, "retention", "form", slug, form_slug=slug, detail={
            "mode": mode, "years": years, "cutoff": cutoff, "count": len(ids), "first_id": ids[0],
            "last_id": ids[-1], "states": list(states),
        })
        stamps.bump(session, stamps.data_scope(slug))
    return RetentionResult(slug=slug, mode=mode, years=years, cutoff=cutoff, ids=ids)


def _as_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _process(session: Session, sub: Submission, mode: str, rules: Mapping[str, str | None], checklists: set[str],
             actor: Actor, at: datetime) -> None:
    values: dict[str, Any] = {"revision": sub.revision + 1}
    if mode == "anonymise":
        values["data"] = anonymised(sub.data or {}, rules, checklists)
    else:
        values.update(data={}, deleted_at=at, deleted_by=actor.username, updated_by=actor.username, updated_at=at)
    session.execute(sql_update(Submission).where(Submission.id == sub.id).values(**values))
    events = session.execute(select(AuditEvent.id, AuditEvent.detail).where(
        AuditEvent.entity == "submission", AuditEvent.entity_id == str(sub.id))).all()
    for event_id, detail in events:
        scrubbed = _scrub_detail(detail, mode, rules, checklists)
        if scrubbed != detail:
            session.execute(sql_update(AuditEvent).where(AuditEvent.id == event_id).values(detail=scrubbed))
    # decisions: what a conflict check matched (names, ID numbers) and the staff's free-text reasons
    session.execute(sql_update(Decision).where(Decision.submission_id == sub.id).values(
        data=None,
        subject=case((Decision.kind == "conflict", MARKER), else_=Decision.subject),
        reason=case((Decision.reason == "", ""), else_=MARKER),
    ))


__all__ = [
    "CLOSED_STATES", "MARKER", "MODES", "SETTING_KEY", "RetentionPlan", "RetentionResult", "anonymised",
    "apply_retention", "check_years", "cutoff_for", "personal_fields", "plan_retention", "retention_years",
    "set_retention_years",
]
