"""SQL and formula injection, on SQLite and PostgreSQL (`db_url`).

SQL: injection strings in the list search, the filters, the sort key (refused: query.bad_key), the date
parameters, the audit-log filters and the cells of imported CSV / XLSX files change nothing (row
counts and a SHA-256 of every table before and after) and leak nothing (a result only ever holds
records that contain the term; never a password hash; a role never gets a sensitive field it may not
see as a filter or sort key).

Formulas: payloads (=cmd|' /C calc'!A0, +1+1, -1+1, @SUM(1), tab=1, CR=1) in record values and in
field labels (headers) come out of the CSV and XLSX exports (and the event sign-up CSV) as text that no
spreadsheet runs: prefixed with a quote, never an XLSX formula cell.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest

from engine.access import SYSTEM, Actor
from engine.audit_log import AuditQuery, search
from engine.errors import EngineError
from engine.exporters import FORMULA_CHARS, export_records
from engine.forms import get_spec, init_database, publish
from engine.importers import commit, dry_run
from engine.queries import ListQuery, count_records, list_records
from engine.storage import create
from tests.security.conftest import SAMPLES, diff, seed_records, snapshot

SQL_PAYLOADS = (
    "' OR 1=1 --",
    '"; DROP TABLE submissions; --',
    "%' UNION SELECT password_hash FROM users --",
    "\\",
    "_",
    "%",
    "'; UPDATE users SET role='admin' WHERE '1'='1",
    "1) OR (1=1",
    "$.name') OR 1=1 --",
    "id_number",
)
FORMULAS = ("=cmd|' /C calc'!A0", "+1+1", "-1+1", "@SUM(1)", "\t=1", "\r=1", "=HYPERLINK(\"http://x\",\"y\")")
ADMIN = Actor("admin", "admin", True)
STAFF = Actor("staff", "staff")
STATS: dict[str, int] = {}


def _count(name: str, n: int = 1) -> None:
    STATS[name] = STATS.get(name, 0) + n


@pytest.fixture
def loaded(engine):
    from engine import auth

    init_database(engine)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAC_TEST_MODE", "1")
        mp.setenv("LAC_BCRYPT_ROUNDS", "4")
        auth.create_first_admin(engine, "admin", "Admin-Pass-2026")
        auth.create_user(engine, "staff", "Staff-Pass-2026", "staff", "李干事", ADMIN)
    seeded = seed_records(engine)
    # one consultation per payload, whose name holds it literally: a search must find exactly that one
    planted: dict[str, int] = {}
    for p in SQL_PAYLOADS:
        raw = dict(SAMPLES["records"]["consultation"]["valid"][0]["data"], name=f"测{p}试")
        planted[p] = int(create(engine, "consultation", raw, actor=ADMIN).id)
    return engine, seeded, planted


def _values_text(data: dict, hidden: set[str]) -> str:
    return "\n".join(json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
                     for k, v in data.items() if k not in hidden)


def test_sql_strings_in_search_filters_sort_and_dates_change_nothing_and_leak_nothing(loaded):
    engine, seeded, planted = loaded
    before = snapshot(engine)
    for slug in ("consultation", "intake"):
        spec = get_spec(engine, slug)
        every = list_records(engine, slug, ListQuery(page_size=100), actor=ADMIN).items
        ids = {s.id for s in every}
        for actor in (ADMIN, STAFF):
            hidden = set() if actor is ADMIN else {f.key for f in spec.fields if f.sensitive}
            for p in SQL_PAYLOADS:
                page = list_records(engine, slug, ListQuery(search=p, page_size=100), actor=actor)
                _count("sql_search")
                assert {s.id for s in page.items} <= ids
                assert page.total == len(page.items) == count_records(engine, slug, ListQuery(search=p), actor=actor)
                for sub in page.items:
                    text = json.dumps(sub.data, ensure_ascii=False) if actor is ADMIN else _values_text(sub.data, hidden)
                    assert p.lower() in text.lower(), f"{actor.role} search {p!r} returned #{sub.id} without it"
                    assert "$2b$" not in json.dumps(sub.data), "a password hash in a result"
                if slug == "consultation" and p not in ("\\", "_", "%", "id_number"):
                    assert [s.id for s in page.items] == [planted[p]], (p, [s.id for s in page.items])
                # as a filter value: matches nothing (no record has it), never everything
                field = "channel" if slug == "consultation" else "case_category"
                for value in (p, [p], [p, "x"]):
                    assert list_records(engine, slug, ListQuery(filters={field: value}), actor=actor).total == 0
                    _count("sql_filter")
                if spec.field(p) is not None:
                    continue  # a real key ("id_number") is a search term here, tried as a key below
                # as a filter key, a sort key, a date: refused with a coded message
                for q, code in ((ListQuery(filters={p: "x"}), "query.bad_key"),
                                (ListQuery(sort=p), "query.bad_key"),
                                (ListQuery(date_from=p), "query.bad_value"),
                                (ListQuery(date_to=p), "query.bad_value")):
                    with pytest.raises(EngineError) as err:
                        list_records(engine, slug, q, actor=actor)
                    assert err.value.code == code, (p, q, err.value.code)
                    _count("sql_keys")
    # a role that may not see a sensitive field may neither filter nor sort by it (no value oracle)
    for q in (ListQuery(sort="id_number"), ListQuery(filters={"id_number": "440803197102035172"}),
              ListQuery(filters={"health": ["serious_illness"]}), ListQuery(sort="phone")):
        with pytest.raises(EngineError) as err:
            list_records(engine, "intake", q, actor=STAFF)
        assert err.value.code == "query.bad_key"
        with pytest.raises(EngineError):
            count_records(engine, "intake", q, actor=STAFF)
        _count("sql_keys")
        assert list_records(engine, "intake", q, actor=ADMIN).total >= 1  # those who may reveal may
    assert not diff(before, snapshot(engine))


def test_sql_strings_in_the_audit_log_filters_change_nothing(loaded):
    engine, _seeded, _planted = loaded
    before = snapshot(engine)
    total = search(engine, AuditQuery(page_size=100)).total
    for p in SQL_PAYLOADS:
        for q in (AuditQuery(username=p), AuditQuery(entity_id=p), AuditQuery(action=p), AuditQuery(form_slug=p)):
            page = search(engine, q)
            _count("sql_audit")
            assert page.total == 0 and page.rows == []
    assert search(engine, AuditQuery(page_size=100)).total == total
    assert not diff(before, snapshot(engine))


def _csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def _xlsx_bytes(rows: list[list[str]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append([c if not c.startswith("=") else c for c in row])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_sql_strings_in_imported_cells_are_stored_as_text_and_nothing_else(loaded, fmt):
    engine, _seeded, _planted = loaded
    spec = get_spec(engine, "training_record")
    sample = SAMPLES["records"]["training_record"]["valid"][0]["data"]
    header = [f.label["zh"] for f in spec.active_fields if f.key in ("training_date", "topic", "kind", "notes")]
    kind = next(c.label["zh"] for c in spec.field("kind").choices if c.value == sample["kind"])
    rows = [header] + [[sample["training_date"], f"主题{p}", kind, p] for p in SQL_PAYLOADS]
    data = _csv_bytes(rows) if fmt == "csv" else _xlsx_bytes(rows)
    before = snapshot(engine)
    report = dry_run(engine, "training_record", io.BytesIO(data), actor=ADMIN)
    assert not diff(before, snapshot(engine)), "a dry run wrote something"
    assert report.rows_total == len(SQL_PAYLOADS), report.messages("en")
    if report.ok:
        result = commit(engine, "training_record", io.BytesIO(data), actor=ADMIN)
        assert result.count == len(SQL_PAYLOADS)
    changed = diff(before, snapshot(engine))
    assert set(changed) <= {"submissions", "audit_events", "change_stamps"}, changed
    assert changed["submissions"][1][0] == before["submissions"][0] + len(SQL_PAYLOADS)
    stored = list_records(engine, "training_record", ListQuery(page_size=100), actor=ADMIN).items
    topics = {s.data.get("topic") for s in stored}
    assert {f"主题{p}" for p in SQL_PAYLOADS} <= topics, "payloads not stored literally"
    _count("sql_import_cells", 2 * len(SQL_PAYLOADS))


# --- formula injection -----------------------------------------------------------------------------
def _formula_setup(engine) -> None:
    spec = get_spec(engine, "training_record").model_dump(mode="json", exclude_none=True, by_alias=True)
    for f, formula in zip(spec["fields"], FORMULAS * 3, strict=False):
        f["label"] = {"zh": formula + f["label"]["zh"], "en": formula}
    publish(engine, spec, actor=SYSTEM, note="formula labels")
    sample = SAMPLES["records"]["training_record"]["valid"][0]["data"]
    for formula in FORMULAS:
        create(engine, "training_record", dict(sample, topic=formula, organiser=formula, notes=formula), actor=ADMIN)
    consult = SAMPLES["records"]["consultation"]["valid"][0]["data"]
    create(engine, "consultation", dict(consult, name="=1+2", summary="@SUM(A1:A9)", answer="-2+3"), actor=ADMIN)


def _dangerous(text: str) -> bool:
    return bool(text) and text.startswith(FORMULA_CHARS)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_formula_payloads_are_neutralised_in_exports(loaded, fmt):
    engine, seeded, _planted = loaded
    _formula_setup(engine)
    cells: list[str] = []
    for slug in ("training_record", "consultation"):
        out = io.BytesIO()
        export_records(engine, slug, out, fmt, actor=ADMIN, lang="zh")
        if fmt == "csv":
            rows = list(csv.reader(io.StringIO(out.getvalue().decode("utf-8-sig"), newline="")))
            cells += [c for row in rows for c in row]
        else:
            from openpyxl import load_workbook

            wb = load_workbook(io.BytesIO(out.getvalue()))
            for ws in wb.worksheets:
                for row in ws.iter_rows():
                    for c in row:
                        assert c.data_type != "f", f"a formula cell: {c.coordinate} {c.value!r}"
                        if isinstance(c.value, str):
                            cells.append(c.value)
    if fmt == "csv":
        from engine.outreach import signups_csv

        data = signups_csv(engine, seeded.ids["outreach_event"], actor=ADMIN)
        cells += [c for row in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")) for c in row]
    carrying = [c for c in cells if any(f.strip() in c for f in FORMULAS) or c.lstrip("'").startswith(FORMULA_CHARS)]
    _count(f"formula_cells_{fmt}", len(carrying))
    assert len(carrying) >= len(FORMULAS) * 3, "the payloads are not in the export"
    bad = [c for c in cells if _dangerous(c)]
    assert not bad, f"cells a spreadsheet would run: {bad[:5]}"
    # the header row (labels) is neutralised too, and the text is kept exactly (after the quote)
    assert any(c.startswith("'=cmd|' /C calc'!A0") for c in cells)


def test_date_parameters_of_the_list_accept_dates_only(loaded):
    engine, _seeded, _planted = loaded
    ok = list_records(engine, "consultation", ListQuery(date_from=date(2000, 1, 1), date_to="2100-12-31"), actor=ADMIN)
    assert ok.total >= 1
    for bad in ("2026-01-01' OR '1'='1", "2026-13-45", "now()", "1; DROP TABLE users"):
        with pytest.raises(EngineError) as err:
            list_records(engine, "consultation", ListQuery(date_from=bad), actor=ADMIN)
        assert err.value.code == "query.bad_value"
        _count("sql_dates")


def audit_page() -> None:
    from pages.audit import render_audit

    render_audit()


def test_sql_strings_typed_into_the_audit_page_filters_change_nothing(sec_env):
    from tests.security.conftest import snapshot as snap

    engine = sec_env.engine
    before = snap(engine)
    at = sec_env.page(audit_page, "admin").run()
    assert at.dataframe and len(at.dataframe[0].value) > 0
    for p in SQL_PAYLOADS:
        for key in ("audit_user", "audit_entity"):
            at.text_input(key=key).input(p[:64]).run()
            assert not at.exception, (key, p)
            assert len(at.dataframe[0].value) == 0, f"{key}={p!r} matched audit events"
            _count("sql_audit_page")
            at.text_input(key=key).input("").run()
    assert not diff(before, snap(engine))


def test_out_of_range_record_ids_are_not_found_not_database_errors(loaded):
    from engine.errors import NotFound
    from engine.outreach import load_event
    from engine.storage import get_record

    engine, _seeded, _planted = loaded
    for bad in (10**20, 2**63, 2**31, -1, 0):
        for call in (lambda b: get_record(engine, b, actor=ADMIN), lambda b: load_event(engine, b, ADMIN)):
            with pytest.raises(NotFound):
                call(bad)
            _count("sql_ids")
