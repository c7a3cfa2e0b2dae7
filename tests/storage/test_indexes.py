"""Expression indexes (engine.indexes) on SQLite and PostgreSQL: made when a form is published, named
within limits, textually the expression `engine.queries.json_field` generates, dropped when the spec no
longer wants them; and used — EXPLAIN of the SQL the engine really runs (captured from the driver) for a
list filter, a sort by a list column, a deep keyset page, a dashboard GROUP BY, the funnel and a
year-end report figure names the index. Deep pages reached by page number list exactly the records an
OFFSET would, NULLs last, in both directions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from engine import dashboards, reports
from engine.access import SYSTEM, Actor
from engine.forms import get_spec, init_database, publish
from engine.indexes import (
    existing_indexes,
    existing_statistics,
    planned_indexes,
    rebuild_indexes,
    statistics_for,
)
from engine.queries import ListQuery, clear_paging_cache, json_field, list_records
from engine.storage import bulk_create, create

MANAGER = Actor("boss", "manager")

SPEC: dict[str, Any] = {
    "slug": "aid_case_with_a_rather_long_slug_name",
    "title": {"zh": "案件", "en": "Case"},
    "date_field": "day",
    "list_columns": ["day", "name", "kind", "hours", "id_no"],
    "summary": ["kind", "tags", "channel"],
    "access": {"submit": ["admin", "manager", "staff"], "view": ["admin", "manager", "staff"]},
    "fields": [
        {"key": "day", "type": "date", "label": {"zh": "日期"}},
        {"key": "name", "type": "text", "label": {"zh": "姓名"}},
        {"key": "kind", "type": "select", "label": {"zh": "类别"}, "choices": [
            {"value": "civil", "label": {"zh": "民事"}}, {"value": "criminal", "label": {"zh": "刑事"}}]},
        {"key": "channel", "type": "select", "label": {"zh": "渠道"}, "choices": [
            {"value": "window", "label": {"zh": "窗口"}}, {"value": "phone", "label": {"zh": "电话"}}]},
        {"key": "stage", "type": "select", "label": {"zh": "阶段"}, "choices": [
            {"value": "first", "label": {"zh": "一审"}}, {"value": "second", "label": {"zh": "二审"}}]},
        {"key": "tags", "type": "multiselect", "label": {"zh": "群体"}, "choices": [
            {"value": "elderly", "label": {"zh": "老年人"}}, {"value": "women", "label": {"zh": "妇女"}}]},
        {"key": "hours", "type": "decimal", "label": {"zh": "时长"}},
        {"key": "id_no", "type": "text", "label": {"zh": "证件号"}, "sensitive": True},
        {"key": "remark", "type": "textarea", "label": {"zh": "备注"}},
    ],
    "workflow": {
        "initial": "new",
        "states": [{"key": "new", "label": {"zh": "新建"}}, {"key": "done", "label": {"zh": "完成"},
                                                             "terminal": True}],
        "transitions": [{"key": "finish", "label": {"zh": "完成"}, "from": ["new"], "to": "done",
                         "roles": ["admin", "manager", "staff"]}],
    },
}
SLUG = SPEC["slug"]


def _rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"day": (date(2025, 1, 1) + timedelta(days=i % 300)).isoformat(),
                               "name": f"申请人{i % 37:02d}", "_state": "new" if i % 3 else "done"}
        if i % 4:
            row["kind"] = "civil" if i % 4 == 1 else "criminal"
        if i % 5:
            row["hours"] = f"{(i * 7) % 23}.5"
        if i % 2:
            row["channel"] = "window"
        row["tags"] = ["elderly"] if i % 3 == 0 else []
        rows.append(row)
    return rows


@pytest.fixture
def cases(engine: Engine) -> Engine:
    publish(engine, SPEC, actor=SYSTEM)
    bulk_create(engine, SLUG, _rows(240), actor=SYSTEM, validate=False)
    analyze(engine)
    clear_paging_cache()
    dashboards.clear_cache()
    reports.clear_cache()
    return engine


def analyze(engine: Engine) -> None:
    """PostgreSQL plans by statistics: gather them after a bulk load (as autovacuum soon would)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE submissions")


def _mine(engine: Engine) -> dict[str, int | None]:
    with engine.connect() as conn:
        return existing_indexes(conn)


def _form_id(engine: Engine, slug: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT id FROM forms WHERE slug = :s"), {"s": slug}).scalar_one())


# --- what is made ------------------------------------------------------------------------------------
def test_publish_creates_the_indexes_the_spec_wants(cases):
    fid = _form_id(cases, SLUG)
    plan = planned_indexes(cases, get_spec(cases, SLUG))
    keys = {(i.key, i.kind) for i in plan}
    # list columns (numbers as numbers), summary (a multiselect as a whole list), date field, select filters;
    # the funnel; updated_at
    assert keys == {("day", "text"), ("name", "text"), ("kind", "text"), ("hours", "number"), ("channel", "text"),
                    ("stage", "text"), ("tags", "list"), ("updated_at", "column"), ("state", "column")}
    # never a sensitive field or long free text
    assert not {"id_no", "remark"} & {i.key for i in plan}
    found = _mine(cases)
    assert all(found.get(i.name) == fid for i in plan)
    assert all(len(i.name) <= 60 and i.name.startswith("ixf_") for i in plan)
    assert len({i.name for i in plan}) == len(plan)
    assert rebuild_indexes(cases) == []  # nothing missing: nothing done
    if cases.dialect.name == "postgresql":  # the planner's statistics for the JSON expressions
        with cases.connect() as conn:
            assert set(statistics_for(plan)) <= existing_statistics(conn)


def test_indexed_expression_is_the_query_expression(cases):
    dialect = cases.dialect.name
    for idx in planned_indexes(cases, get_spec(cases, SLUG)):
        if idx.kind != "text":
            continue
        query_sql = str(json_field(dialect, idx.key).compile(dialect=cases.dialect,
                                                             compile_kwargs={"literal_binds": True}))
        assert query_sql.replace("submissions.", "") == idx.expression
        with cases.connect() as conn:
            if dialect == "postgresql":
                ddl = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                                   {"n": idx.name}).scalar_one()
                assert f"'{idx.key}'::text" in ddl and "deleted_at IS NULL" in ddl
            else:
                ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": idx.name}).scalar_one()
                assert idx.expression in ddl and "deleted_at IS NULL" in ddl


def test_republishing_drops_indexes_no_longer_wanted_and_builtins_get_theirs(engine):
    init_database(engine)  # built-in forms: indexes made on the first start
    intake = planned_indexes(engine, get_spec(engine, "intake"))
    assert intake and all(_mine(engine).get(i.name) == _form_id(engine, "intake") for i in intake)
    publish(engine, SPEC, actor=SYSTEM)
    fewer = {**SPEC, "list_columns": ["day", "name"], "summary": ["kind"]}
    fewer["fields"] = [f for f in SPEC["fields"] if f["key"] != "stage"] + [
        {**next(f for f in SPEC["fields"] if f["key"] == "stage"), "retired": True}]
    publish(engine, fewer, actor=SYSTEM)
    now = {i.key for i in planned_indexes(engine, get_spec(engine, SLUG))}
    assert "hours" not in now and "stage" not in now
    mine = {n for n, fid in _mine(engine).items() if fid == _form_id(engine, SLUG)}
    assert mine == {i.name for i in planned_indexes(engine, get_spec(engine, SLUG))}
    assert rebuild_indexes(engine) == []


# --- what is used --------------------------------------------------------------------------------------
@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def grab(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT") and "submissions" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", grab)


def plan_of(engine: Engine, statement: str, parameters: Any) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # Small tables: a sequential or bitmap scan is cheaper to PostgreSQL; ask what an index can serve.
            conn.exec_driver_sql("SET enable_seqscan = off")
            conn.exec_driver_sql("SET enable_bitmapscan = off")
            rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        else:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    return "\n".join(str(r[-1]) for r in rows)


def index_name(engine: Engine, key: str, kind: str = "text") -> str:
    return next(i.name for i in planned_indexes(engine, get_spec(engine, SLUG)) if i.key == key and i.kind == kind)


def uses(engine: Engine, statements: list[tuple[str, Any]], needle: str, index: str) -> bool:
    wanted = [(s, p) for s, p in statements if re.search(needle, s, re.S)]
    assert wanted, f"no statement matching {needle!r} among {[s[:120] for s, _ in statements]}"
    return any(index in plan_of(engine, s, p) for s, p in wanted)


def test_list_filter_sort_and_deep_page_use_the_indexes(cases):
    with captured(cases) as seen:
        list_records(cases, SLUG, ListQuery(filters={"kind": ["civil"]}), actor=MANAGER)
    assert uses(cases, seen, r"count\(\*\)", index_name(cases, "kind"))
    if cases.dialect.name == "sqlite":  # PostgreSQL rightly reads a common value's first page in id order
        assert uses(cases, seen, r"LIMIT", index_name(cases, "kind"))
    with captured(cases) as seen:
        list_records(cases, SLUG, ListQuery(sort="name", page=4), actor=MANAGER)
    assert uses(cases, seen, r"LIMIT", index_name(cases, "name"))
    with captured(cases) as seen:
        list_records(cases, SLUG, ListQuery(sort="hours", desc=False), actor=MANAGER)
    assert uses(cases, seen, r"LIMIT", index_name(cases, "hours", "number"))
    with captured(cases) as seen:
        list_records(cases, SLUG, ListQuery(sort="updated_at", page=2), actor=MANAGER)
    assert uses(cases, seen, r"LIMIT", index_name(cases, "updated_at", "column"))


def test_dashboard_and_report_aggregates_use_the_indexes(cases):
    with captured(cases) as seen:
        dashboards.form_dashboard(cases, SLUG, actor=MANAGER)
    assert uses(cases, seen, r"GROUP BY.*kind", index_name(cases, "kind"))
    assert uses(cases, seen, r"GROUP BY.*channel", index_name(cases, "channel"))
    if cases.dialect.name == "sqlite":  # PostgreSQL hashes 240 distinct days from any index at this size
        assert uses(cases, seen, r"GROUP BY.*day", index_name(cases, "day"))  # records per month
    assert uses(cases, seen, r"GROUP BY submissions.state", index_name(cases, "state", "column"))  # funnel
    if cases.dialect.name == "sqlite":  # PostgreSQL scans a whole form for a GROUP BY (no index-only scans on
        # expressions); there the indexes serve filters, ranges and sorts
        assert uses(cases, seen, r"GROUP BY.*tags", index_name(cases, "tags", "list"))  # records per list item
    tags = {b.key: b for b in dashboards.form_dashboard(cases, SLUG, actor=MANAGER).breakdowns}["tags"]
    assert {bar.value: bar.count for bar in tags.bars if bar.count} == {"elderly": 80}  # i % 3 == 0 of 240


def test_year_end_report_figures_use_the_intake_indexes(engine):
    init_database(engine)
    rows = [{"application_date": (date(2025, 1, 1) + timedelta(days=i)).isoformat(), "case_category": "civil",
             "_state": "accepted"} for i in range(60)]
    bulk_create(engine, "intake", rows, actor=SYSTEM, validate=False)
    analyze(engine)
    reports.clear_cache()
    with captured(engine) as seen:
        report = reports.year_end_report(engine, date(2025, 1, 1), date(2025, 12, 31))
    assert report.get("cases.accepted") == 60
    date_index = next(i.name for i in planned_indexes(engine, get_spec(engine, "intake"))
                      if i.key == "application_date")
    assert uses(engine, seen, r"GROUP BY.*case_category", date_index)


# --- deep pages ----------------------------------------------------------------------------------------
def _expected(engine: Engine, sort: str, desc: bool) -> list[int]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.id, s.data FROM submissions s JOIN forms f ON f.id = s.form_id WHERE f.slug = :s "
            "AND s.deleted_at IS NULL"), {"s": SLUG}).all()
    import json as _json

    def value(data: Any) -> Any:
        d = data if isinstance(data, dict) else _json.loads(data)
        v = d.get(sort)
        return float(v) if sort == "hours" and v is not None else v

    present = sorted(((value(d), i) for i, d in rows if value(d) is not None), reverse=desc)
    missing = sorted((i for i, d in rows if value(d) is None), reverse=desc)
    return [i for _v, i in present] + missing


@pytest.mark.parametrize(("sort", "desc"), [("id", True), ("kind", True), ("kind", False), ("hours", False),
                                            ("hours", True), ("name", True)])
def test_pages_by_number_list_every_record_once_in_order(cases, sort, desc):
    expected = _expected(cases, sort, desc) if sort != "id" else None
    walked: list[int] = []
    # jump straight to page 5 first (anchor found once), then walk 1..n (continuing from remembered anchors)
    deep = list_records(cases, SLUG, ListQuery(sort=sort, desc=desc, page=5), actor=MANAGER)
    for page in range(1, 13):
        got = list_records(cases, SLUG, ListQuery(sort=sort, desc=desc, page=page), actor=MANAGER)
        walked += [int(s.id) for s in got.items]
        if page == 5:
            assert [s.id for s in got.items] == [s.id for s in deep.items]
    assert len(walked) == len(set(walked)) == 240
    if expected is not None:
        assert walked == expected
    else:
        assert walked == sorted(walked, reverse=True)


def test_a_write_forgets_remembered_pages_and_totals(cases):
    first = list_records(cases, SLUG, ListQuery(page=3), actor=MANAGER)
    assert first.total == 240
    create(cases, SLUG, {"day": "2025-12-30", "name": "新人"}, actor=MANAGER)
    again = list_records(cases, SLUG, ListQuery(page=3), actor=MANAGER)
    assert again.total == 241
    assert [s.id for s in again.items][1:] == [s.id for s in first.items][:-1]  # all moved down by one
    newest = list_records(cases, SLUG, ListQuery(page=1), actor=MANAGER)
    assert newest.items[0].data["name"] == "新人"
