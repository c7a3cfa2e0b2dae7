"""Expression indexes (engine.indexes) on SQLite and PostgreSQL: made when a form is published, named
within limits, exactly the expressions the engine's queries use (`json_field`, `json_number` for number
columns, the `json_list` pair (JSON type, whole value) for a list-valued summary field), dropped when the
spec no longer wants them, with PostgreSQL statistics on them; and usable — EXPLAIN of the SQL the engine
really runs (captured from the driver) shows each index serving it: a list filter and date range as an
index condition, sorts and deep keyset pages in index order, dashboard breakdowns, records per month,
the funnel and the per-list counts of a multiselect grouped in index order (no sort, no hash), and the
year-end report's figures. Deep pages reached by page number list exactly the records an OFFSET would,
NULLs last, in both directions."""

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
    indexed_fields,
    planned_indexes,
    rebuild_indexes,
    statistics_for,
)
from engine.queries import ListQuery, clear_paging_cache, json_field, json_list, json_number, list_records
from engine.storage import bulk_create, create
from models.spec import FormSpec

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


def test_which_fields_get_which_index():
    """A multiselect gets the list index only as a summary dimension (records per item); as a list column
    or a filter it gets none (a btree cannot serve 'the list contains x'); never when sensitive; a
    checklist (an object) never."""
    extra = [
        {"key": "needs", "type": "multiselect", "label": {"zh": "需求"}, "choices": [
            {"value": "housing", "label": {"zh": "住房"}}]},
        {"key": "secret_tags", "type": "multiselect", "sensitive": True, "label": {"zh": "敏感"}, "choices": [
            {"value": "x", "label": {"zh": "x"}}]},
        {"key": "docs", "type": "checklist", "label": {"zh": "材料"}, "items": [{"key": "id", "label": {"zh": "证件"}}]},
    ]
    spec = FormSpec.model_validate({**SPEC, "fields": SPEC["fields"] + extra,
                                    "list_columns": SPEC["list_columns"] + ["needs", "docs"],
                                    "summary": SPEC["summary"] + ["secret_tags", "docs"]})
    wanted = [(f.key, kind) for f, kind in indexed_fields(spec)]
    assert wanted == [("day", "text"), ("name", "text"), ("kind", "text"), ("hours", "number"), ("tags", "list"),
                      ("channel", "text"), ("stage", "text")]


def _query_expressions(dialect: str, key: str, kind: str) -> list[Any]:
    if kind == "list":
        return list(json_list(dialect, key))
    return [json_number(dialect, key) if kind == "number" else json_field(dialect, key)]


def test_indexed_expression_is_the_query_expression(cases):
    """Each index holds, after form_id, exactly the expression(s) the queries compile to: textually on
    SQLite (which matches an expression index only to the identical expression); on PostgreSQL as the
    server reads them back (pg_get_indexdef of the index vs of a throwaway index on the query's SQL)."""
    dialect = cases.dialect.name
    plan = planned_indexes(cases, get_spec(cases, SLUG))
    assert {i.kind for i in plan} == {"text", "number", "list", "column"}
    for idx in plan:
        if idx.kind == "column":
            continue
        parts = [str(e.compile(dialect=cases.dialect, compile_kwargs={"literal_binds": True})).replace("submissions.", "")
                 for e in _query_expressions(dialect, idx.key, idx.kind)]
        assert idx.expression == " || ".join(parts)
        if idx.kind == "list":  # (JSON type, whole value): json_type / jsonb_typeof first, for `= 'array'`
            assert parts[0].startswith("jsonb_typeof(" if dialect == "postgresql" else "json_type(")
        with cases.connect() as conn:
            if dialect == "postgresql":
                ddl = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                                   {"n": idx.name}).scalar_one()
                assert "deleted_at IS NULL" in ddl
                oid = conn.execute(text("SELECT CAST(CAST(:n AS regclass) AS oid)"), {"n": f'"{idx.name}"'}).scalar_one()
                held = [conn.execute(text("SELECT pg_get_indexdef(:o, :k, true)"), {"o": oid, "k": k}).scalar_one()
                        for k in range(1, len(parts) + 3)]
                with conn.begin_nested() as probe:
                    conn.execute(text("CREATE INDEX probe_expr ON submissions (form_id, "
                                      + ", ".join(f"({p})" for p in parts) + ", id)"))
                    oid = conn.execute(text("SELECT CAST(CAST('probe_expr' AS regclass) AS oid)")).scalar_one()
                    asked = [conn.execute(text("SELECT pg_get_indexdef(:o, :k, true)"), {"o": oid, "k": k})
                             .scalar_one() for k in range(1, len(parts) + 3)]
                    probe.rollback()
                assert held == asked, (idx.name, held, asked)
            else:
                ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": idx.name}).scalar_one()
                assert f"(form_id, {', '.join(parts)}) WHERE" in ddl and "deleted_at IS NULL" in ddl
            conn.rollback()
    if dialect == "postgresql":  # statistics on the same expressions (a pair for the list index)
        stats = statistics_for(plan)
        tags = next(i for i in plan if i.key == "tags")
        assert {v for v in stats.values() if "tags" in v} == {
            ", ".join(f"({p})" for p in tags.expression.split(" || "))}


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
    assert "hours" not in now and "stage" not in now and "tags" not in now  # tags: no longer a summary field
    mine = {n for n, fid in _mine(engine).items() if fid == _form_id(engine, SLUG)}
    assert mine == {i.name for i in planned_indexes(engine, get_spec(engine, SLUG))}
    assert rebuild_indexes(engine) == []


# --- what is used --------------------------------------------------------------------------------------
# The statements are the engine's own: captured from the driver while list_records, form_dashboard and
# year_end_report run (compiled by the engine's builders for this dialect, with their parameters). If a
# builder and an index expression drift apart, the plan stops naming the index, or names it only for
# `form_id` and sorts (or hashes) the rows itself.
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


PG_OFF = ("enable_seqscan", "enable_bitmapscan", "enable_hashagg", "enable_sort")


def _drop_all_but(conn: Any, dialect: str, keep: str) -> None:
    """Drop every index of submissions but `keep` (in the caller's transaction, which is rolled back)."""
    if dialect == "postgresql":
        for name, constraint in conn.execute(text(
                "SELECT c.relname, k.conname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid "
                "AND k.contype IN ('p', 'u', 'x') "
                "WHERE i.indrelid = 'submissions'::regclass AND c.relname <> :keep"), {"keep": keep}).all():
            if constraint:  # the primary key (and the foreign keys on it, CASCADE): back at the rollback
                conn.execute(text(f'ALTER TABLE submissions DROP CONSTRAINT "{constraint}" CASCADE'))
            else:
                conn.execute(text(f'DROP INDEX "{name}"'))
        return
    for (name,) in conn.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'submissions' "
            "AND sql IS NOT NULL AND name <> :keep"), {"keep": keep}).all():
        conn.execute(text(f'DROP INDEX "{name}"'))


def plan_of(engine: Engine, statement: str, parameters: Any, alone: str | None = None) -> list[str]:
    """The plan of one captured statement, as lines: as the planner chooses, or with `alone` the only
    index of submissions.

    `alone` asks whether that index CAN serve the statement: in a transaction that is rolled back, every
    other index of submissions is dropped and, on PostgreSQL, sequential and bitmap scans, hashing and
    sorting are switched off (at a few hundred rows a sequential scan, or the plain (form_id, state)
    index plus a hash or a sort, is cheaper to it than any expression index). What is left shows the
    index as an index condition and as the order of an ORDER BY / GROUP BY, or shows it cannot be."""
    explain = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with engine.connect() as conn:
        if alone is None:
            return [str(r[-1]) for r in conn.exec_driver_sql(explain + statement, parameters)]
        with conn.begin() as tx:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                for setting in PG_OFF:
                    conn.execute(text(f"SET LOCAL {setting} = off"))
            _drop_all_but(conn, engine.dialect.name, alone)
            rows = [str(r[-1]) for r in conn.exec_driver_sql(explain + statement, parameters)]
            tx.rollback()
        return rows


def served(engine: Engine, plan: list[str], index: str, key: str | None, ordered: bool) -> str | None:
    """Why `plan` does not serve the statement from `index` (None when it does).

    key: the JSON key whose condition must be an index condition (a search on the expression, not a
    filter of the rows read). ordered: the ORDER BY / GROUP BY comes from the index (no sort, no hash)."""
    pg = engine.dialect.name == "postgresql"
    if pg:
        using = [line for line in plan if re.search(rf'[Uu]sing "?{re.escape(index)}"?\b', line)]
    else:
        using = [line for line in plan if re.search(rf"USING (COVERING )?INDEX {re.escape(index)}\b", line)]
    if not using:
        return f"{index} is not used"
    if key is not None:
        if pg:
            conds = [line for line in plan if "Index Cond:" in line and f"'{key}'::text" in line]
        else:
            conds = [line for line in using if "<expr>" in line]
        if not conds:
            return f"no index condition on {key!r}"
    if ordered:
        sorting = [line for line in plan if re.search(r"\b(Sort|Incremental Sort|HashAggregate|TEMP B-TREE)\b", line)]
        if sorting:
            return f"the rows are sorted/hashed: {sorting[0].strip()}"
    return None


def index_name(engine: Engine, key: str, kind: str = "text", slug: str = SLUG) -> str:
    return next(i.name for i in planned_indexes(engine, get_spec(engine, slug)) if i.key == key and i.kind == kind)


def assert_served(engine: Engine, statements: list[tuple[str, Any]], needle: str, index: str, *,
                  key: str | None = None, ordered: bool = False, chosen_on_sqlite: bool = True) -> None:
    """Every captured statement matching `needle` can be served by `index` (see `served`) and, on SQLite
    (`chosen_on_sqlite`), the planner also picks it among all the indexes."""
    wanted = [(s, p) for s, p in statements if re.search(needle, s, re.S)]
    assert wanted, f"no statement matching {needle!r} among {[s[:120] for s, _ in statements]}"
    for statement, parameters in wanted:
        plans = [plan_of(engine, statement, parameters, alone=index)]
        if chosen_on_sqlite and engine.dialect.name == "sqlite":
            plans.append(plan_of(engine, statement, parameters))
        for plan in plans:
            problem = served(engine, plan, index, key, ordered)
            assert problem is None, f"{problem}\n--- statement\n{statement}\n{parameters}\n--- plan\n" + "\n".join(plan)


def group_by(key: str) -> str:
    """A needle for a statement grouped by the JSON field `key` (either dialect's spelling)."""
    return rf"GROUP BY [^\n]*'(\$\.\")?{key}\b"


def test_plan_check_sees_an_index_that_cannot_serve(cases):
    """The check itself: a GROUP BY over an expression the `kind` index does not hold (a different JSON
    path spelling) is not served by it, though the index is still usable for the form's rows."""
    dialect = cases.dialect.name
    other = ("submissions.data -> 'kind'" if dialect == "postgresql"
             else "json_extract(submissions.data, '$.kind')")
    statement = (f"SELECT {other}, count(*) FROM submissions WHERE submissions.form_id = {_form_id(cases, SLUG)} "
                 f"AND submissions.deleted_at IS NULL GROUP BY {other}")
    index = index_name(cases, "kind")
    params: Any = {} if dialect == "postgresql" else ()
    plan = plan_of(cases, statement, params, alone=index)
    assert served(cases, plan, index, None, ordered=False) is None  # read from it, for the form's rows
    assert served(cases, plan, index, None, ordered=True) is not None  # but grouped by a sort or a hash


def test_list_filter_sort_and_deep_page_use_the_indexes(cases):
    kind = index_name(cases, "kind")
    with captured(cases) as seen:  # (a) a filter on a choice field: the count and the first page
        list_records(cases, SLUG, ListQuery(filters={"kind": ["civil"]}), actor=MANAGER)
    assert_served(cases, seen, r"count\(\*\)", kind, key="kind")
    assert_served(cases, seen, r"LIMIT", kind, key="kind", ordered=True)  # equal values in id order
    with captured(cases) as seen:  # a date range on the date field
        page = list_records(cases, SLUG, ListQuery(date_from=date(2025, 3, 1), date_to=date(2025, 3, 31)),
                            actor=MANAGER)
    assert page.total == 31  # days 59..89 (one record each: day i % 300 of 240 records)
    assert_served(cases, seen, r"count\(\*\)", index_name(cases, "day"), key="day")
    with captured(cases) as seen:  # a sort by a text column, deep page: keyset reads on the index
        list_records(cases, SLUG, ListQuery(sort="name", page=4), actor=MANAGER)
    assert_served(cases, seen, r"DESC, submissions\.id DESC\s+LIMIT", index_name(cases, "name"), key="name",
                  ordered=True)
    with captured(cases) as seen:  # a sort by a number column (json_number), first page
        list_records(cases, SLUG, ListQuery(sort="hours", desc=False), actor=MANAGER)
    assert_served(cases, seen, r"IS NOT NULL ORDER BY", index_name(cases, "hours", "number"), ordered=True)
    with captured(cases) as seen:  # "recently updated", page 2 (bulk-loaded: one updated_at, then id order)
        list_records(cases, SLUG, ListQuery(sort="updated_at", page=2), actor=MANAGER)
    assert_served(cases, seen, r"updated_at = .*ORDER BY submissions\.id DESC", index_name(cases, "updated_at", "column"),
                  ordered=True)


def test_dashboard_aggregates_use_the_indexes(cases):
    with captured(cases) as seen:
        dashboards.form_dashboard(cases, SLUG, actor=MANAGER)
    # (b) breakdowns by choice fields: GROUP BY in index order
    assert_served(cases, seen, group_by("kind"), index_name(cases, "kind"), ordered=True)
    assert_served(cases, seen, group_by("channel"), index_name(cases, "channel"), ordered=True)
    # records per month: counted per day on the date field's index
    assert_served(cases, seen, group_by("day"), index_name(cases, "day"), ordered=True)
    # the funnel: per state on the (state, due_at, paused_at) index
    assert_served(cases, seen, r"GROUP BY submissions\.state", index_name(cases, "state", "column"), ordered=True)
    # (c) records per list item: the distinct lists, json_type = 'array' searched and grouped on the list index
    assert_served(cases, seen, group_by("tags"), index_name(cases, "tags", "list"), key="tags", ordered=True)
    tags = {b.key: b for b in dashboards.form_dashboard(cases, SLUG, actor=MANAGER).breakdowns}["tags"]
    assert {bar.value: bar.count for bar in tags.bars if bar.count} == {"elderly": 80}  # i % 3 == 0 of 240


def test_year_end_report_figures_use_the_intake_indexes(engine):
    init_database(engine)
    rows = [{"application_date": (date(2025, 1, 1) + timedelta(days=i)).isoformat(), "case_category": "civil",
             "_state": "accepted", **({"special_groups": ["elderly", "women"]} if i % 4 == 0 else {})}
            for i in range(60)]
    bulk_create(engine, "intake", rows, actor=SYSTEM, validate=False)
    analyze(engine)
    reports.clear_cache()
    with captured(engine) as seen:
        report = reports.year_end_report(engine, date(2025, 1, 1), date(2025, 12, 31))
    assert report.get("cases.accepted") == 60
    # the period's records: a range on the date field's index
    assert_served(engine, seen, r"GROUP BY.*case_category", index_name(engine, "application_date", slug="intake"),
                  key="application_date")
    # (c) accepted cases per special group: the distinct lists on the list index
    groups = index_name(engine, "special_groups", "list", slug="intake")
    # (SQLite itself reads the year's range on the date index and groups those rows: fewer, for one year)
    assert_served(engine, seen, group_by("special_groups"), groups, key="special_groups", ordered=True,
                  chosen_on_sqlite=False)
    assert (report.get("groups.elderly"), report.get("groups.women"), report.get("groups.disabled")) == (15, 15, 0)


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
