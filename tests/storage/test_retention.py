"""engine.retention on SQLite and PostgreSQL: plan, anonymise, purge closed intake cases older than N
years; an explicit, audited admin action that never runs by itself and keeps year-end figures right."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Engine

from engine.access import Actor
from engine.check import check_database
from engine.db import session_scope
from engine.errors import EngineError, PermissionDenied
from engine.exporters import export_records
from engine.queries import ListQuery
from engine.retention import (
    MARKER,
    apply_retention,
    plan_retention,
    retention_years,
    set_retention_years,
)
from engine.storage import create, get_record, list_records, restore, soft_delete
from models.decisions import Decision
from models.tables import AuditEvent, Submission
from tests.storage.conftest import audit_rows, count_rows

ADMIN = Actor("admin1", "admin")
MANAGER = Actor("boss", "manager")
STAFF = Actor("li", "staff")
NOW = datetime(2031, 6, 30, 4, 0, tzinfo=UTC)


def _values(name: str, seq: int, category: str = "civil") -> dict[str, Any]:
    from engine.idnumber import make_id

    values = {
        "application_date": "2025-03-16", "intake_channel": "window", "name": name, "sex": "male" if seq % 2 else "female",
        "id_doc_type": "resident_id", "id_number": make_id("440803", "19800101", seq), "phone": "13802715634",
        "residence": "湛江市霞山区友谊路1号", "case_category": category,
        "service_type": "litigation_agency", "case_cause": "support_maintenance", "legal_position": "plaintiff",
        "facts": f"{name}因赡养纠纷申请法律援助，住友谊路1号，电话13802715634。", "occupation": "木工",
        "hardship_route": "exempt", "exemption_ground": "social_assistance", "special_groups": ["elderly"],
    }
    if category == "criminal":
        values.update({"criminal_route": "applied", "legal_position_criminal": "defendant",
                       "service_type": "criminal_defence"})
        values.pop("legal_position")
    return values


def _case(engine: Engine, name: str, seq: int, state: str, closed_on: datetime, category: str = "civil") -> int:
    sid = int(create(engine, "intake", _values(name, seq, category), actor=STAFF).id)
    with session_scope(engine) as s:  # the workflow's end state and when it was reached
        s.execute(sql_update(Submission).where(Submission.id == sid).values(state=state, state_since=closed_on))
    return sid


@pytest.fixture
def cases(loaded: Engine) -> dict[str, int]:
    old = NOW - timedelta(days=365 * 6)
    recent = NOW - timedelta(days=365 * 2)
    ids = {
        "closed_old": _case(loaded, "陈老结", 101, "closed", old),
        "archived_old": _case(loaded, "林老档", 102, "archived", old - timedelta(days=30), "labour"),
        "terminated_old": _case(loaded, "黄老终", 103, "terminated", old),
        "refused_old": _case(loaded, "张老拒", 104, "refused", old, "criminal"),
        "open_old": _case(loaded, "王老办", 105, "handling", old),  # still open: never
        "closed_recent": _case(loaded, "吴新结", 106, "closed", recent),  # too recent
        "deleted_old": _case(loaded, "刘已删", 107, "closed", old),
    }
    soft_delete(loaded, ids["deleted_old"], actor=ADMIN)
    return ids


OLD = ("closed_old", "archived_old", "terminated_old", "refused_old")


def _figures(engine: Engine) -> dict[str, Any]:
    from engine.reports import year_end_report

    report = year_end_report(engine, date(2025, 1, 1), date(2025, 12, 31), compare=False)
    return {f.key: f.value for f in report.figures()}


def _export(engine: Engine) -> str:
    out = io.BytesIO()
    export_records(engine, "intake", out, "csv", actor=ADMIN, reveal=True)
    return out.getvalue().decode("utf-8-sig")


def test_plan_names_only_old_closed_cases_and_changes_nothing(loaded: Engine, cases: dict[str, int]) -> None:
    audits = count_rows(loaded, AuditEvent)
    plan = plan_retention(loaded, 5, now=NOW)
    assert plan.count == 4 and sorted(plan.sample_ids) == sorted(cases[k] for k in OLD)
    assert plan.by_state == {"closed": 1, "archived": 1, "terminated": 1, "refused": 1}
    assert plan.cutoff == datetime(2026, 6, 30, 4, 0, tzinfo=UTC)
    assert plan.oldest is not None and plan.newest is not None and plan.oldest < plan.newest < plan.cutoff
    assert plan_retention(loaded, 1, now=NOW).count == 5  # the recent one too
    assert plan_retention(loaded, 10, now=NOW).count == 0
    assert plan_retention(loaded, 5, now=NOW, sample=2).sample_ids == sorted(cases[k] for k in OLD)[:2]
    assert count_rows(loaded, AuditEvent) == audits  # a plan writes nothing


def test_anonymise_takes_personal_data_out_and_keeps_the_figures(loaded: Engine, cases: dict[str, int]) -> None:
    figures = _figures(loaded)
    with session_scope(loaded) as s:  # a conflict-check decision that named the other party
        s.add(Decision(submission_id=cases["closed_old"], kind="conflict", subject="party:陈老结", outcome="cleared",
                       reason="对方当事人陈老结与本处无关", username="boss", data={"match": {"name": "陈老结"}}))
    result = apply_retention(loaded, 5, "anonymise", actor=ADMIN, confirm_count=4, now=NOW)
    assert sorted(result.ids) == sorted(cases[k] for k in OLD)
    for key in OLD:
        rec = get_record(loaded, cases[key], actor=ADMIN)
        data = rec.data
        assert data["name"] == MARKER and data["occupation"] == MARKER
        assert "id_number" not in data and "phone" not in data and "facts" not in data  # the marker does not fit
        assert data["residence"] == MARKER  # sensitive free text
        # what statistics need stays
        assert data["case_category"] and data["application_date"] == "2025-03-16"
        assert data["special_groups"] == ["elderly"] and data["case_cause"] == "support_maintenance"
        assert rec.submission.number and rec.submission.state and rec.submission.state_since
        assert not rec.deleted
        # and it is gone from the history too; the history says who did it, when, and why
        for event in rec.history:
            text = str(event.detail)
            assert "陈老结" not in text and "林老档" not in text and "友谊路" not in text, event.detail
        last = rec.history[0]
        assert last.action == "retention" and last.username == "admin1" and last.detail["mode"] == "anonymise"
        assert last.detail["years"] == 5 and "name" in last.detail["fields"]
    untouched = get_record(loaded, cases["open_old"], actor=ADMIN).data
    assert untouched["name"] == "王老办" and untouched["id_number"]
    with session_scope(loaded, write=False) as s:
        decision = s.execute(select(Decision)).scalars().one()
    assert decision.data is None and decision.subject == MARKER and decision.reason == MARKER
    assert _figures(loaded) == figures  # the year-end report counts exactly as before
    assert check_database(loaded) == []
    page = list_records(loaded, "intake", ListQuery(search="陈老结"), actor=ADMIN)
    assert page.total == 0
    exported = _export(loaded)
    assert "陈老结" not in exported and MARKER in exported and "王老办" in exported
    summary = audit_rows(loaded, "retention", "intake")
    assert len(summary) == 1 and summary[0].detail["count"] == 4
    # done once: the next plan does not pick them again
    assert plan_retention(loaded, 5, now=NOW).count == 0


def test_purge_soft_deletes_and_empties_and_cannot_be_restored(loaded: Engine, cases: dict[str, int]) -> None:
    creates = count_rows(loaded, AuditEvent, AuditEvent.action == "create")
    result = apply_retention(loaded, 5, "purge", actor=ADMIN, confirm_count="4", now=NOW)
    assert result.count == 4
    with session_scope(loaded, write=False) as s:
        rows = {r.id: r for r in s.execute(select(Submission).where(Submission.id.in_(result.ids))).scalars()}
    for row in rows.values():
        assert row.data == {} and row.deleted_at is not None and row.deleted_by == "admin1"
        assert row.number and row.state in ("closed", "archived", "terminated", "refused")
    assert list_records(loaded, "intake", ListQuery(), actor=MANAGER).total == 2  # open_old, closed_recent
    with pytest.raises(EngineError) as info:
        restore(loaded, cases["closed_old"], actor=ADMIN)
    assert info.value.code == "record.purged"
    # a record deleted the ordinary way is still restorable
    restore(loaded, cases["deleted_old"], actor=ADMIN)
    history = get_record(loaded, cases["closed_old"], actor=ADMIN).history
    create_event = next(e for e in history if e.action == "create")
    assert create_event.detail["data"] == {} and create_event.username == "li"
    assert count_rows(loaded, AuditEvent, AuditEvent.action == "create") == creates
    assert check_database(loaded) == []
    assert "陈老结" not in _export(loaded)


def test_only_an_admin_confirming_the_right_count_changes_anything(loaded: Engine, cases: dict[str, int]) -> None:
    exported = _export(loaded)  # (an export with sensitive columns is itself audited)
    audits = count_rows(loaded, AuditEvent)
    for actor in (MANAGER, STAFF):
        with pytest.raises(PermissionDenied):
            apply_retention(loaded, 5, "anonymise", actor=actor, confirm_count=4, now=NOW)
    for typed in (3, 5, "", "四", None):
        with pytest.raises(EngineError) as info:
            apply_retention(loaded, 5, "anonymise", actor=ADMIN, confirm_count=typed, now=NOW)
        assert info.value.code == "retention.confirm_mismatch"
    for years in (0, -1, 101, "abc", 2.5):
        with pytest.raises(EngineError) as info:
            plan_retention(loaded, years, now=NOW)
        assert info.value.code == "retention.bad_years"
    with pytest.raises(EngineError) as info:
        apply_retention(loaded, 5, "shred", actor=ADMIN, confirm_count=4, now=NOW)
    assert info.value.code == "retention.bad_mode"
    with pytest.raises(EngineError) as info:
        apply_retention(loaded, 10, "purge", actor=ADMIN, confirm_count=0, now=NOW)
    assert info.value.code == "retention.nothing"
    assert count_rows(loaded, AuditEvent) == audits and _export(loaded) == exported  # nothing happened
    assert info.value.message("zh") and info.value.message("en")


def test_the_setting_is_only_a_default_and_never_runs_by_itself(loaded: Engine, cases: dict[str, int]) -> None:
    from engine.forms import init_database

    assert retention_years(loaded) is None
    with pytest.raises(PermissionDenied):
        set_retention_years(loaded, 1, actor=MANAGER)
    set_retention_years(loaded, 1, actor=ADMIN)
    assert retention_years(loaded) == 1
    event = audit_rows(loaded, "setting_update", "retention_years")[-1]
    assert event.username == "admin1" and event.detail["after"] == {"years": 1}
    init_database(loaded)  # an app start: nothing is anonymised or purged on its own
    assert get_record(loaded, cases["closed_old"], actor=ADMIN).data["name"] == "陈老结"
    assert audit_rows(loaded, "retention") == []
    set_retention_years(loaded, None, actor=ADMIN)
    assert retention_years(loaded) is None


def test_an_anonymised_record_can_still_be_deleted_and_restored(loaded: Engine, cases: dict[str, int]) -> None:
    apply_retention(loaded, 5, "anonymise", actor=ADMIN, confirm_count=4, now=NOW)
    sid = cases["archived_old"]
    soft_delete(loaded, sid, actor=ADMIN)
    restore(loaded, sid, actor=ADMIN)
    assert get_record(loaded, sid, actor=ADMIN).data["name"] == MARKER
    reader = csv.reader(io.StringIO(_export(loaded)))
    assert sum(1 for _ in reader) == 1 + 6  # header + every live record
