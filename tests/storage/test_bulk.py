"""bulk_create: all rows or none, problems with row numbers, demo-data overrides, one audit event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import stamps
from engine.errors import EngineError, PermissionDenied
from engine.queries import ListQuery, list_records
from engine.storage import bulk_create, create
from tests.storage.conftest import ADMIN, MANAGER, OUTREACH, STAFF, audit_rows, submissions


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"name": f"导入{i}", "id_no": f"B{i:05d}", "kind": "civil", "amount": str(i)} for i in range(start, start + n)]


def test_bulk_create_stores_every_row_with_one_audit_event(cases):
    before = stamps.current(cases, "data:case")
    assert bulk_create(cases, "case", rows(120), actor=MANAGER, batch=50) == 120
    assert submissions(cases) == 120
    (event,) = audit_rows(cases, "import")
    assert event.detail["count"] == 120 and event.form_slug == "case" and event.username == "boss"
    assert event.detail["last_id"] - event.detail["first_id"] == 119
    assert stamps.current(cases, "data:case") == before + 1
    page = list_records(cases, "case", ListQuery(sort="id", desc=False), actor=ADMIN)
    first = page.items[0]
    assert first.data == {"name": "导入0", "id_no": "B00000", "kind": "civil", "amount": "0.00"}
    assert first.state == "applied" and first.created_by == "boss" and first.revision == 1 and first.form_version == 1


def test_any_bad_row_writes_nothing_and_names_every_row(cases):
    data = rows(30)
    data[4]["kind"] = "nope"  # row 5
    del data[16]["name"]  # row 17
    data[20]["id_no"] = data[2]["id_no"]  # row 21 repeats row 3
    data[25]["_state"] = "flying"  # row 26
    data[27]["_bogus"] = 1  # row 28
    with pytest.raises(EngineError) as err:
        bulk_create(cases, "case", data, actor=ADMIN, batch=10)
    assert err.value.code == "import.invalid" and err.value.params["count"] == 5
    found = sorted((p.row, p.code) for p in err.value.problems)
    assert found == [(5, "field.choice"), (17, "field.required"), (21, "import.duplicate_in_file"),
                     (26, "import.bad_state"), (28, "import.unknown_meta")]
    assert "第 5 行" in err.value.describe("zh") and "row 17" in err.value.describe("en")
    assert submissions(cases) == 0 and audit_rows(cases, "import") == []


def test_values_already_stored_count_as_duplicates(cases):
    create(cases, "case", {"name": "已有", "id_no": "B00007"}, actor=STAFF)
    with pytest.raises(EngineError) as err:
        bulk_create(cases, "case", rows(10), actor=ADMIN, batch=4)
    (problem,) = err.value.problems
    assert problem.code == "record.duplicate" and problem.row == 8 and problem.field == "id_no"
    assert submissions(cases) == 1


def test_demo_overrides_and_parents(cases):
    when = datetime(2025, 5, 4, 8, 30, tzinfo=UTC)
    data = rows(3)
    data[0].update({"_created_at": "2025-05-04T08:30:00+00:00", "_created_by": "wang", "_state": "reviewing"})
    data[1].update({"_created_at": when.replace(tzinfo=None).isoformat()})  # naive: taken as UTC
    assert bulk_create(cases, "case", data, actor=ADMIN) == 3
    items = list_records(cases, "case", ListQuery(sort="id", desc=False), actor=ADMIN).items
    assert items[0].created_at == when and items[0].created_by == "wang" and items[0].state == "reviewing"
    assert items[0].state_since == when
    assert items[1].created_at == when and items[1].state == "applied"
    event = create(cases, "evt", {"title": "普法"}, actor=OUTREACH)
    signups = [{"name": f"群众{i}", "_parent_id": event.id} for i in range(5)]
    assert bulk_create(cases, "signup", signups, actor=ADMIN) == 5
    with pytest.raises(EngineError) as err:
        bulk_create(cases, "signup", [{"name": "x", "_parent_id": items[0].id}, {"name": "y"}], actor=ADMIN)
    assert sorted(p.code for p in err.value.problems) == ["record.parent_not_found", "record.parent_required"]
    kids = list_records(cases, "signup", ListQuery(parent_id=event.id), actor=OUTREACH)
    assert kids.total == 5


def test_without_validation_and_refusals(cases):
    assert bulk_create(cases, "case", [{"name": "raw", "amount": "1.5"}] * 3, actor=ADMIN, validate=False) == 3
    with pytest.raises(PermissionDenied):
        bulk_create(cases, "case", rows(2), actor=STAFF)  # staff may not import
    assert bulk_create(cases, "case", [], actor=ADMIN) == 0
    assert len(audit_rows(cases, "import")) == 1
