"""Record lists in SQL: paging, keyset paging, search, filters, date ranges, sorting, refusals."""

from __future__ import annotations

from datetime import date

import pytest

from engine.errors import EngineError, PermissionDenied
from engine.queries import ListQuery, json_field, list_records
from engine.storage import bulk_create, soft_delete, transition
from tests.storage.conftest import ADMIN, MANAGER, OUTREACH, STAFF, VIEWER, submissions

KINDS = ["civil", "criminal", "labour"]
TAGS = [["elderly"], ["migrant"], ["elderly", "minor"], []]
AMOUNTS = ["5", "20", "100", "1000.5", "9"]


@pytest.fixture
def listed(cases):
    rows = []
    for i in range(25):
        row = {"name": f"客户{i:02d}", "id_no": f"44080319900101{i:04d}", "kind": KINDS[i % 3], "tags": TAGS[i % 4],
               "amount": AMOUNTS[i % 5], "applied_on": date(2026, 1, 1 + i).isoformat(),
               "_created_by": "li" if i % 2 else "wang"}
        rows.append(row)
    rows[3]["name"] = "50%折扣_特价"
    rows[4]["name"] = "O'Brien"
    assert bulk_create(cases, "case", rows, actor=ADMIN) == 25
    return cases


def names(page) -> list[str]:
    return [s.data["name"] for s in page.items]


def test_pages_and_total(listed):
    first = list_records(listed, "case", ListQuery(), actor=STAFF)
    assert first.total == 25 and first.pages == 2 and len(first.items) == 20 and first.has_next
    ids = [s.id for s in first.items]
    assert ids == sorted(ids, reverse=True)  # newest first by default
    second = list_records(listed, "case", ListQuery(page=2), actor=STAFF)
    assert len(second.items) == 5 and not second.has_next
    assert not {s.id for s in first.items} & {s.id for s in second.items}
    assert list_records(listed, "case", ListQuery(page=3), actor=STAFF).items == []
    assert len(list_records(listed, "case", ListQuery(page_size=50), actor=STAFF).items) == 25
    for bad in (10, 25, 1000, 0):
        with pytest.raises(EngineError) as err:
            list_records(listed, "case", ListQuery(page_size=bad), actor=STAFF)
        assert err.value.code == "query.bad_page_size"
    with pytest.raises(EngineError):
        list_records(listed, "case", ListQuery(page=0), actor=STAFF)


@pytest.mark.parametrize("sort,desc", [("id", True), ("id", False), ("created_at", True), ("updated_at", False)])
def test_keyset_paging_walks_every_record_once(listed, sort, desc):
    seen: list[int] = []
    q = ListQuery(sort=sort, desc=desc)
    while True:
        page = list_records(listed, "case", q, actor=STAFF)
        assert page.total == 25
        seen += [s.id for s in page.items]
        if not page.has_next:
            break
        q = ListQuery(sort=sort, desc=desc, after_id=page.next_after_id)
    assert len(seen) == len(set(seen)) == 25
    with pytest.raises(EngineError) as err:
        list_records(listed, "case", ListQuery(sort="name", after_id=seen[0]), actor=STAFF)
    assert err.value.code == "query.keyset_sort"


def test_sort_by_field_keys(listed):
    page = list_records(listed, "case", ListQuery(sort="name", desc=False, page_size=50), actor=STAFF)
    assert names(page) == sorted(names(page))
    # money is stored as exact decimal text, but sorts as a number
    page = list_records(listed, "case", ListQuery(sort="amount", desc=False, page_size=50), actor=STAFF)
    amounts = [float(s.data["amount"]) for s in page.items]
    assert amounts == sorted(amounts) and amounts[0] == 5.0 and amounts[-1] == 1000.5
    page = list_records(listed, "case", ListQuery(sort="applied_on", desc=True), actor=STAFF)
    assert page.items[0].data["applied_on"] == "2026-01-25"


def test_number_sort_survives_a_non_number_stored_without_validation(listed):
    bulk_create(listed, "case", [{"name": "坏数据", "amount": "abc"}], actor=ADMIN, validate=False)
    page = list_records(listed, "case", ListQuery(sort="amount", desc=True, page_size=50), actor=STAFF)
    assert page.total == 26 and float(page.items[0].data["amount"]) == 1000.5


@pytest.mark.parametrize("key", ["nope", "name; DROP TABLE submissions", "Name", "data", "'$.name'", "", "1abc"])
def test_unknown_sort_and_filter_keys_are_refused(listed, key):
    with pytest.raises(EngineError) as err:
        list_records(listed, "case", ListQuery(sort=key), actor=STAFF)
    assert err.value.code == "query.bad_key"
    with pytest.raises(EngineError) as err:
        list_records(listed, "case", ListQuery(filters={key: "x"}), actor=STAFF)
    assert err.value.code == "query.bad_key"
    if key in ("nope", "data"):
        return  # well-formed keys: json_field itself only checks the shape
    with pytest.raises(EngineError):
        json_field(listed, key)


def test_filters_state_owner_and_dates(listed):
    q = ListQuery(filters={"kind": "civil"}, page_size=50)
    page = list_records(listed, "case", q, actor=STAFF)
    assert page.total == 9 and {s.data["kind"] for s in page.items} == {"civil"}
    page = list_records(listed, "case", ListQuery(filters={"kind": ["civil", "labour"]}), actor=STAFF)
    assert page.total == 17
    page = list_records(listed, "case", ListQuery(filters={"tags": "elderly"}, page_size=50), actor=STAFF)
    assert page.total == 13 and all("elderly" in s.data["tags"] for s in page.items)
    page = list_records(listed, "case", ListQuery(filters={"tags": ["elderly", "minor"]}), actor=STAFF)
    assert page.total == 6
    assert list_records(listed, "case", ListQuery(created_by="li"), actor=STAFF).total == 12
    q = ListQuery(date_from=date(2026, 1, 10), date_to=date(2026, 1, 12))
    assert sorted(s.data["applied_on"] for s in list_records(listed, "case", q, actor=STAFF).items) == [
        "2026-01-10", "2026-01-11", "2026-01-12"]
    first = list_records(listed, "case", ListQuery(sort="id", desc=False), actor=STAFF).items[0]
    transition(listed, first.id, "review", actor=ADMIN)
    page = list_records(listed, "case", ListQuery(state="reviewing"), actor=STAFF)
    assert [s.id for s in page.items] == [first.id]
    assert list_records(listed, "case", ListQuery(state="applied"), actor=STAFF).total == 24
    combined = ListQuery(filters={"kind": "civil", "tags": "elderly"}, created_by="wang", search="客户")
    for s in list_records(listed, "case", combined, actor=STAFF).items:
        assert s.data["kind"] == "civil" and "elderly" in s.data["tags"] and s.created_by == "wang"


def test_search_is_literal_text(listed):
    assert names(list_records(listed, "case", ListQuery(search="客户07"), actor=STAFF)) == ["客户07"]
    assert names(list_records(listed, "case", ListQuery(search="o'brien"), actor=STAFF)) == ["O'Brien"]
    # % and _ are literal characters, not wildcards
    assert names(list_records(listed, "case", ListQuery(search="50%"), actor=STAFF)) == ["50%折扣_特价"]
    assert names(list_records(listed, "case", ListQuery(search="_特"), actor=STAFF)) == ["50%折扣_特价"]
    assert list_records(listed, "case", ListQuery(search="%"), actor=STAFF).total == 1
    assert list_records(listed, "case", ListQuery(search="客_0"), actor=STAFF).total == 0


@pytest.mark.parametrize("term", [
    "' OR 1=1 --", "'); DROP TABLE submissions; --", "\" OR \"\"=\"", "%' OR '%'='", "\\", "1; DELETE FROM forms",
    "' UNION SELECT password_hash FROM users --",
])
def test_injection_strings_in_search_find_nothing_and_harm_nothing(listed, term):
    page = list_records(listed, "case", ListQuery(search=term), actor=MANAGER)
    assert page.total == 0 and page.items == []
    assert submissions(listed) == 25
    assert list_records(listed, "case", ListQuery(filters={"kind": term}), actor=STAFF).total == 0


def test_sensitive_values_are_not_searchable_without_reveal(listed):
    term = "440803199001010007"
    assert list_records(listed, "case", ListQuery(search=term), actor=MANAGER).total == 1  # may reveal
    assert list_records(listed, "case", ListQuery(search=term), actor=STAFF).total == 0
    assert list_records(listed, "case", ListQuery(search="客户07"), actor=STAFF).total == 1


def test_deleted_records_and_view_access(listed):
    victim = list_records(listed, "case", ListQuery(), actor=STAFF).items[0]
    soft_delete(listed, victim.id, actor=ADMIN)
    assert list_records(listed, "case", ListQuery(), actor=STAFF).total == 24
    assert list_records(listed, "case", ListQuery(include_deleted=True), actor=ADMIN).total == 25
    with pytest.raises(PermissionDenied):
        list_records(listed, "case", ListQuery(include_deleted=True), actor=MANAGER)
    with pytest.raises(PermissionDenied):
        list_records(listed, "case", ListQuery(), actor=OUTREACH)
    assert list_records(listed, "case", ListQuery(), actor=VIEWER).total == 24
