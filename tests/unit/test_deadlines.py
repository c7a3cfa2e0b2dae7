"""Statutory time limits: calendar days, a last day on a weekend (or listed holiday) moves to the next working
day, days waiting for materials do not count, the clock stops while waiting; then the same from a real record's
audit trail and the overdue / due-soon lists per user and for managers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.access import Actor
from engine.db import session_scope
from engine.deadlines import (
    RULES,
    Calendar,
    Step,
    compute,
    deadlines,
    due_date_for,
    end_of,
    overdue_and_due_soon,
    parse_dates,
    roll_forward,
    set_calendar,
)
from engine.errors import EngineError, PermissionDenied
from engine.fields import LOCAL_TZ
from models.tables import AuditEvent, Submission

INTAKE_RULES = RULES["intake"]


def at(day: str, hour: int = 10, minute: int = 0) -> datetime:
    """A local (China Standard Time) moment, as aware UTC."""
    d = date.fromisoformat(day)
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=LOCAL_TZ).astimezone(UTC)


def steps(*pairs: tuple[str, str]) -> list[Step]:
    """Steps from (local day[ hh:mm], to_state) pairs, in order."""
    out, prev = [], "applied"
    for when, to in pairs:
        day, _, hm = when.partition(" ")
        h, _, m = (hm or "10:00").partition(":")
        out.append(Step(at(day, int(h), int(m)), prev, to))
        prev = to
    return out


def one(kind: str, trail: list[Step], *, state: str, now: str, cal: Calendar | None = None, **kw: Any):
    day, _, hm = now.partition(" ")
    h, _, m = (hm or "10:00").partition(":")
    found = {d.kind: d for d in compute(INTAKE_RULES, trail, state=state, state_since=trail[-1].at if trail else None,
                                        now=at(day, int(h), int(m)), cal=cal, **kw)}
    return found.get(kind)


def test_the_calendar() -> None:
    assert date(2026, 3, 16).weekday() == 0  # the dates below: 2026-03-16 is a Monday
    assert roll_forward(date(2026, 3, 21)) == date(2026, 3, 23)  # Saturday -> Monday
    assert roll_forward(date(2026, 3, 22)) == date(2026, 3, 23)  # Sunday -> Monday
    assert roll_forward(date(2026, 3, 20)) == date(2026, 3, 20)
    golden_week = Calendar(holidays=frozenset(date(2026, 10, d) for d in range(1, 8)),
                           workdays=frozenset({date(2026, 10, 10)}))
    assert roll_forward(date(2026, 10, 1), golden_week) == date(2026, 10, 8)
    assert roll_forward(date(2026, 10, 10), golden_week) == date(2026, 10, 10)  # make-up working Saturday
    assert due_date_for(date(2026, 9, 24), 7, 0, golden_week) == date(2026, 10, 8)  # holidays inside count
    assert end_of(date(2026, 3, 23)) == datetime(2026, 3, 23, 16, 0, tzinfo=UTC)  # 24:00 in China


@pytest.mark.parametrize(("accepted", "due"), [
    ("2026-03-16", "2026-03-23"),  # Monday + 7 = Monday
    ("2026-03-17", "2026-03-24"),
    ("2026-03-20", "2026-03-27"),  # the weekend inside the period counts
    ("2026-03-21", "2026-03-30"),  # accepted on a Saturday: the 7th day is a Saturday -> Monday
    ("2026-03-22", "2026-03-30"),  # Sunday -> Sunday -> Monday
])
def test_review_decision_seven_calendar_days(accepted: str, due: str) -> None:
    d = one("review_decision", steps((accepted, "accepted")), state="accepted", now=accepted)
    assert d is not None and d.due_date == date.fromisoformat(due) and d.paused_days == 0


@pytest.mark.parametrize(("granted", "due"), [
    ("2026-03-18", "2026-03-23"),  # Wednesday + 3 = Saturday -> Monday
    ("2026-03-19", "2026-03-23"),  # Thursday + 3 = Sunday -> Monday
    ("2026-03-20", "2026-03-23"),  # Friday + 3 = Monday, across the weekend
    ("2026-03-16", "2026-03-19"),
])
def test_assignment_three_days_across_weekends(granted: str, due: str) -> None:
    trail = steps(("2026-03-09", "accepted"), ("2026-03-10", "reviewing"), (granted, "granted"))
    d = one("assignment", trail, state="granted", now=granted)
    assert d is not None and d.due_date == date.fromisoformat(due)
    review = one("review_decision", trail, state="granted", now=granted)
    assert review is not None and review.met_at == at(granted) and not review.overdue


def test_closing_file_thirty_days() -> None:
    trail = steps(("2026-01-05", "accepted"), ("2026-01-06", "reviewing"), ("2026-01-07", "granted"),
                  ("2026-01-08", "assigned"), ("2026-01-09", "handling"), ("2026-03-02", "closed"))
    d = one("closing_file", trail, state="closed", now="2026-03-30")
    assert d is not None and d.due_date == date(2026, 4, 1) and d.due_soon and not d.overdue
    assert one("closing_file", trail + steps(("2026-03-20", "archived")), state="archived",
               now="2026-05-01").met_at is not None


def test_material_waits_do_not_count() -> None:
    trail = steps(("2026-03-16", "accepted"), ("2026-03-17", "reviewing"), ("2026-03-18", "waiting_materials"),
                  ("2026-03-23", "reviewing"))
    d = one("review_decision", trail, state="reviewing", now="2026-03-24")
    assert d.paused_days == 5 and not d.paused
    assert d.due_date == date(2026, 3, 30)  # 03-16 + 7 + 5 = Saturday 03-28 -> Monday 03-30
    assert not d.overdue and d.due_at == end_of(date(2026, 3, 30))
    # two waits add up; a wait begun and ended on the same day adds nothing
    trail2 = trail + steps(("2026-03-24 09:00", "waiting_materials"), ("2026-03-24 17:00", "reviewing"),
                           ("2026-03-25", "waiting_materials"), ("2026-03-27", "reviewing"))
    d2 = one("review_decision", trail2, state="reviewing", now="2026-03-27")
    assert d2.paused_days == 7 and d2.due_date == date(2026, 3, 30)  # 03-30 Monday
    trail3 = trail2 + steps(("2026-03-28", "waiting_materials"), ("2026-03-29", "reviewing"))
    assert one("review_decision", trail3, state="reviewing", now="2026-03-30").due_date == date(2026, 3, 31)


def test_the_clock_stops_while_waiting() -> None:
    trail = steps(("2026-03-16", "accepted"), ("2026-03-17", "reviewing"), ("2026-03-18", "waiting_materials"))
    d = one("review_decision", trail, state="waiting_materials", now="2026-04-20")
    assert d.paused and not d.overdue and not d.due_soon
    assert d.paused_days == 33 and d.due_date == date(2026, 4, 27)  # moves with today: 03-16 + 7 + 33 (Monday)
    resumed = trail + steps(("2026-04-20", "reviewing"))
    d = one("review_decision", resumed, state="reviewing", now="2026-04-27 23:30")
    assert not d.paused and not d.overdue and d.due_soon
    d = one("review_decision", resumed, state="reviewing", now="2026-04-28 00:05")
    assert d.overdue and not d.due_soon


def test_overdue_due_soon_met_late() -> None:
    trail = steps(("2026-03-16", "accepted"), ("2026-03-17", "reviewing"))
    assert one("review_decision", trail, state="reviewing", now="2026-03-20").due_soon is False
    d = one("review_decision", trail, state="reviewing", now="2026-03-22")
    assert d.due_soon and not d.overdue
    d = one("review_decision", trail, state="reviewing", now="2026-03-23 23:59")
    assert d.due_soon and not d.overdue
    d = one("review_decision", trail, state="reviewing", now="2026-03-24 00:00")
    assert d.overdue and not d.due_soon
    on_time = one("review_decision", trail + steps(("2026-03-23 18:00", "granted")), state="granted",
                  now="2026-04-01")
    assert on_time.met_at is not None and not on_time.late and not on_time.overdue
    late = one("review_decision", trail + steps(("2026-03-25", "refused")), state="refused", now="2026-04-01")
    assert late.late and not late.overdue


def test_terminated_ends_the_limit_and_nothing_starts_before_its_state() -> None:
    trail = steps(("2026-03-16", "accepted"), ("2026-03-17", "terminated"))
    assert one("review_decision", trail, state="terminated", now="2026-04-01") is None
    assert compute(INTAKE_RULES, [], state="applied", state_since=at("2026-03-16"), now=at("2026-04-01")) == []


def test_records_without_a_trail_use_their_own_times() -> None:
    found = compute(INTAKE_RULES, [], state="reviewing", state_since=at("2026-03-18"),
                    created_at=at("2026-03-16"), now=at("2026-03-20"))
    assert [(d.kind, d.due_date) for d in found] == [("review_decision", date(2026, 3, 23))]
    waiting = compute(INTAKE_RULES, [], state="waiting_materials", state_since=at("2026-03-18"),
                      created_at=at("2026-03-16"), now=at("2026-03-20"))
    assert waiting[0].paused and waiting[0].paused_days == 2


def test_holiday_calendar_setting() -> None:
    assert parse_dates("2026-10-01\n2026-10-02, 2026-10-01") == [date(2026, 10, 1), date(2026, 10, 2)]
    with pytest.raises(EngineError):
        parse_dates("10/1")
    cal = Calendar(holidays=frozenset(date(2026, 10, d) for d in range(1, 9)))
    d = one("review_decision", steps(("2026-09-24", "accepted")), state="accepted", now="2026-09-25", cal=cal)
    assert d.due_date == date(2026, 10, 9)


# --- from a real record's audit trail ------------------------------------------------------------------------
STAFF = Actor("li", "staff")
STAFF2 = Actor("wang", "staff")
MANAGER = Actor("boss", "manager")
ADMIN = Actor("admin1", "admin")


@pytest.fixture
def loaded(engine):
    from engine.forms import load_builtins, save_choice_list

    assert load_builtins(engine)["problems"] == {}
    save_choice_list(engine, "lawyers", {"zh": "律师"}, [
        {"value": "lw001", "label": {"zh": "陈志强"}, "extra": {"username": "wang"}}], actor=ADMIN)
    return engine


def _intake(engine, actor: Actor, seq: int) -> int:
    from engine.idnumber import make_id
    from engine.storage import create

    values = {"application_date": "2026-03-16", "intake_channel": "window", "name": f"申请人{seq}", "sex": "male",
              "id_doc_type": "resident_id", "id_number": make_id("440803", "19800101", seq * 2 + 1),
              "case_category": "civil", "legal_position": "plaintiff", "service_type": "litigation_agency",
              "case_cause": "labour_remuneration", "facts": "申请人被拖欠工资三个月，多次讨要未果。",
              "hardship_route": "exempt", "exemption_ground": "social_assistance"}
    return int(create(engine, "intake", values, actor=actor).id)


def _walk(engine, rid: int, *moves: tuple[str, str]) -> None:
    """Take workflow steps, then date their audit events (and the record's state_since) as given."""
    from engine.storage import transition

    for key, _when in moves:
        values = {"lawyer": "lw001"} if key == "assign" else None
        transition(engine, rid, key, actor=MANAGER, reason="理由" if key in ("refuse", "terminate") else None,
                   values=values)
    with session_scope(engine) as s:
        events = s.execute(select(AuditEvent).where(AuditEvent.action == "transition",
                                                    AuditEvent.entity_id == str(rid)).order_by(AuditEvent.id)
                           ).scalars().all()
        for event, (_key, when) in zip(events[-len(moves):], moves, strict=True):
            day, _, hm = when.partition(" ")
            event.at = at(day, int((hm or "10:00")[:2]))
            s.add(event)
        s.execute(update(Submission).where(Submission.id == rid).values(state_since=at(moves[-1][1])))


def test_deadlines_from_the_audit_trail_even_without_due_at(loaded) -> None:
    rid = _intake(loaded, STAFF, 1)
    _walk(loaded, rid, ("accept", "2026-03-16"), ("review", "2026-03-17"), ("request_materials", "2026-03-18"),
          ("materials_received", "2026-03-23"))
    with session_scope(loaded) as s:
        s.execute(update(Submission).where(Submission.id == rid).values(due_at=None))
    [d] = deadlines(loaded, rid, now=at("2026-03-28"))
    assert (d.kind, d.paused_days, d.due_date, d.overdue, d.due_soon) == (
        "review_decision", 5, date(2026, 3, 30), False, True)
    _walk(loaded, rid, ("grant", "2026-03-27"))
    found = {d.kind: d for d in deadlines(loaded, rid, now=at("2026-04-01"))}
    assert found["review_decision"].met_at == at("2026-03-27") and not found["review_decision"].late
    assert found["assignment"].due_date == date(2026, 3, 30)  # Friday + 3 = Monday
    assert found["assignment"].overdue


def test_overdue_and_due_soon_per_user_and_for_managers(loaded) -> None:
    mine_late = _intake(loaded, STAFF, 1)
    _walk(loaded, mine_late, ("accept", "2026-03-16"))
    mine_soon = _intake(loaded, STAFF, 2)
    _walk(loaded, mine_soon, ("accept", "2026-03-20"))
    waiting = _intake(loaded, STAFF, 3)
    _walk(loaded, waiting, ("accept", "2026-03-01"), ("review", "2026-03-02"), ("request_materials", "2026-03-03"))
    others = _intake(loaded, STAFF2, 4)
    _walk(loaded, others, ("accept", "2026-03-16"))
    lawyer_case = _intake(loaded, STAFF, 5)
    _walk(loaded, lawyer_case, ("accept", "2026-02-02"), ("review", "2026-02-02"), ("grant", "2026-02-03"),
          ("assign", "2026-02-04"), ("handle", "2026-02-05"), ("close", "2026-02-16"))
    fresh = _intake(loaded, STAFF, 6)  # applied, nothing running
    now = at("2026-03-25")

    mine = overdue_and_due_soon(loaded, actor=STAFF, now=now)
    assert not mine.manager and mine.all_overdue == [] and mine.all_due_soon == []
    assert [i.sub_id for i in mine.mine_overdue] == [lawyer_case, mine_late]  # earliest due first
    assert [i.sub_id for i in mine.mine_due_soon] == [mine_soon]
    assert mine.mine_overdue[0].deadline.kind == "closing_file"
    assert mine.mine_overdue[1].name == "申请人1"

    wang = overdue_and_due_soon(loaded, actor=STAFF2, now=now)  # the lawyer of lw001 is user wang
    assert {i.sub_id for i in wang.mine_overdue} == {others, lawyer_case}

    boss = overdue_and_due_soon(loaded, actor=MANAGER, now=now)
    assert boss.manager and boss.mine_overdue == []
    assert {i.sub_id for i in boss.all_overdue} == {mine_late, others, lawyer_case}
    assert {i.sub_id for i in boss.all_due_soon} == {mine_soon}
    assert waiting not in {i.sub_id for i in boss.all_overdue + boss.all_due_soon}  # paused
    assert fresh not in {i.sub_id for i in boss.all_overdue + boss.all_due_soon}
    assert boss.counts == {"mine_overdue": 0, "mine_due_soon": 0, "all_overdue": 3, "all_due_soon": 1}


def test_calendar_setting_moves_deadlines(loaded) -> None:
    rid = _intake(loaded, STAFF, 1)
    _walk(loaded, rid, ("accept", "2026-09-24"))
    assert deadlines(loaded, rid, now=at("2026-09-25"))[0].due_date == date(2026, 10, 1)
    with pytest.raises(PermissionDenied):
        set_calendar(loaded, [date(2026, 10, 1)], [], actor=STAFF)
    set_calendar(loaded, [date(2026, 10, d) for d in range(1, 8)], [date(2026, 10, 10)], actor=ADMIN)
    assert deadlines(loaded, rid, now=at("2026-09-25"))[0].due_date == date(2026, 10, 8)
    assert deadlines(loaded, rid, now=at("2026-09-25") + timedelta(days=14))[0].overdue
