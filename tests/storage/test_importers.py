"""Record imports (engine.importers) on real databases: export → import round trips (CSV and XLSX, labels
or keys, zh or en), per-row per-field problems with file row numbers, all-or-nothing (a refused import
leaves every table exactly as it was), undo of exactly one batch, encodings, limits and refusals."""

from __future__ import annotations

import hashlib
import io
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from engine.access import SYSTEM, Actor
from engine.db import session_scope
from engine.errors import EngineError, PermissionDenied
from engine.exporters import export_records
from engine.forms import get_spec, load_builtins, publish
from engine.importers import (
    MAX_BYTES,
    MAX_ROWS,
    ImportRefused,
    batch_ids,
    commit,
    dry_run,
    map_columns,
    read_table,
    recent_imports,
    undo_import,
)
from engine.storage import bulk_create, count_live, create
from models.tables import AuditEvent, Submission
from tests.fixtures.seed_dataset import Case, _intake_row

MANAGER = Actor("boss", "manager")
MANAGER2 = Actor("deputy", "manager")
ADMIN = Actor("root", "admin")
STAFF = Actor("li", "staff")


@pytest.fixture
def intake(engine: Engine) -> Engine:
    load_builtins(engine)
    cases = [Case(date(2025, 1 + i % 12, 1 + i), ("criminal", "civil", "labour", "administrative")[i % 4],
                  "notified" if i % 8 == 0 else "applied" if i % 4 == 0 else None,
                  ("handling", "closed", "archived", "refused", "applied")[i % 5],
                  [["elderly", "women"], [], ["migrant_worker"]][i % 3], reason="not_in_scope")
             for i in range(12)]
    rows = [_intake_row(i, c) for i, c in enumerate(cases, start=1)]
    rows[0]["facts"] = "=HYPERLINK(\"http://evil\") 申请人要求支付工资，多次讨要未果。"
    rows[1]["opposing_parties"] = "+86 某某公司\n@某某人"
    rows[2].update(hardship_route="certificate", household_size=3, monthly_income_total="1234.50",
                   high_value_assets=False)
    rows[3]["materials"] = {"application_form": {"answer": "yes", "note": ""},
                            "identity_proof": {"answer": "no", "note": "复印件（待补）; 原件已核对"}}
    rows[4]["phone"] = "13802715634"
    bulk_create(engine, "intake", rows, actor=SYSTEM)
    return engine


def _records(engine: Engine, slug: str, after: int = 0) -> list[Submission]:
    from engine.forms import form_ref

    fid = form_ref(engine, slug).id
    with session_scope(engine, write=False) as s:
        return list(s.execute(select(Submission).where(Submission.form_id == fid, Submission.id > after,
                                                       Submission.deleted_at.is_(None))
                              .order_by(Submission.id)).scalars())


def _export(engine: Engine, slug: str, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    export_records(engine, slug, buf, fmt, actor=SYSTEM, reveal=True, **kw)
    return buf.getvalue()


def checksum(engine: Engine) -> dict[str, tuple[int, str]]:
    out = {}
    with engine.connect() as conn:
        for table in ("submissions", "audit_events", "tally_events", "change_stamps", "forms", "form_versions"):
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY 1")).all()
            out[table] = (len(rows), hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest())
    return out


# --- round trips ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "headers", "lang"), [("csv", "label", "zh"), ("xlsx", "label", "en"),
                                                      ("csv", "key", "zh"), ("xlsx", "key", "zh")])
def test_export_then_import_gives_the_same_records(intake, fmt, headers, lang):
    originals = _records(intake, "intake")
    last = originals[-1].id
    data = _export(intake, "intake", fmt, headers=headers, lang=lang)
    report = dry_run(intake, "intake", data, actor=MANAGER, lang=lang)
    assert report.ok and report.rows_total == 12 and report.rows_ok == 12, report.messages()
    assert not report.columns.unknown
    result = commit(intake, "intake", data, actor=MANAGER, lang=lang)
    assert result.count == 12 and len(result.ids) == 12
    copies = _records(intake, "intake", after=last)
    assert [c.id for c in copies] == result.ids
    for old, new in zip(originals, copies, strict=True):
        assert new.data == old.data
        assert new.state == old.state  # the state column (label or key) is imported too
        assert new.created_by == MANAGER.username
    assert copies[0].data["facts"].startswith("=HYPERLINK")  # formula payload: inert in the file, exact here
    assert copies[3].data["materials"]["identity_proof"] == {"answer": "no", "note": "复印件（待补）; 原件已核对"}


def test_csv_has_a_bom_and_neutralised_formulas_that_import_back(intake):
    data = _export(intake, "intake", "csv")
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"'=HYPERLINK" in data and b"'+86" in data
    table = read_table(data)
    assert table.encoding == "utf-8-sig"
    cells = [c for _n, row in table.rows() for c in row]
    assert any(c.startswith("=HYPERLINK") for c in cells)


def test_columns_map_by_key_and_zh_or_en_label(intake):
    spec = get_spec(intake, "intake")
    m = map_columns(spec, ["姓名", "Case category", "application_date*", "状态", "记录ID", "不知道", "",
                           "Sex", "name"])
    assert m.mapping == {0: "name", 1: "case_category", 2: "application_date", 3: "_state", 7: "sex"}
    assert m.unknown == ["不知道"]
    status = {c.header: c.status for c in m.columns}
    assert status["记录ID"] == "meta" and status["name"] == "skipped"  # a second column for one field
    chosen = map_columns(spec, ["申请人姓名", "日期"], {"申请人姓名": "name", 1: "application_date"})
    assert chosen.mapping == {0: "name", 1: "application_date"}
    with pytest.raises(EngineError) as err:
        map_columns(spec, ["x"], {0: "no_such_field"})
    assert err.value.code == "import.bad_mapping"
    events = map_columns(get_spec(intake, "outreach_event"), ["活动名称", "发放宣传资料（份）", "brochures"])
    assert events.mapping == {0: "title"}
    assert [c.status for c in events.columns[1:]] == ["counter", "counter"]


# --- problems -------------------------------------------------------------------------------------
HEARING_HEADER = ("开庭日期,审理机关,审级,旁听人次,仪表仪态与庭审礼仪,庭前准备,对案件事实的掌握,举证质证,法律适用,"
                  "辩论与表达,工作态度与责任心,总体效果,关联援助案件\n")


def _hearing(day: str = "2025-01-05", court: str = "xiashan_court", count: str = "1", overall: str = "4",
             case: str = "") -> str:
    return f"{day},{court},一审,{count},4,4,4,4,4,4,4,{overall},{case}\n"


def test_per_row_problems_name_the_file_row_and_field_in_the_users_language(intake):
    body = HEARING_HEADER + _hearing() + _hearing(day="2025-02-30", overall="7") + _hearing() + \
        _hearing(court="月球法院", count="0") + _hearing(case="999999")
    report = dry_run(intake, "hearing_observation", body.encode("utf-8"), actor=MANAGER, lang="zh")
    assert (report.rows_total, report.rows_ok, report.rows_refused) == (5, 2, 3)
    got = [(m["row"], m["field"]) for m in report.messages("zh")]
    assert got == [(3, "开庭日期"), (3, "总体效果"), (5, "审理机关"), (5, "旁听人次"), (6, "关联援助案件")]
    zh = report.messages("zh")
    en = report.messages("en")
    assert "「月球法院」不是可选的选项" in zh[2]["message"]
    assert en[2]["field"] == "Court / tribunal" and "not one of the options" in en[2]["message"]
    assert "#999999" in zh[4]["message"]
    with pytest.raises(ImportRefused) as err:
        commit(intake, "hearing_observation", body.encode("utf-8"), actor=MANAGER)
    assert err.value.report.problems_total == 5
    assert "没有导入任何记录" in err.value.message("zh")


def test_a_refused_import_leaves_every_table_unchanged(intake):
    before = checksum(intake)
    live = count_live(intake, "hearing_observation")
    body = HEARING_HEADER + "".join(_hearing() for _ in range(30)) + _hearing(overall="six") + _hearing()
    with pytest.raises(ImportRefused) as err:
        commit(intake, "hearing_observation", body.encode("utf-8"), actor=MANAGER)
    assert [m["row"] for m in err.value.report.messages()] == [32]
    assert checksum(intake) == before
    assert count_live(intake, "hearing_observation") == live


def test_unique_values_are_checked_against_the_file_and_the_database(engine):
    publish(engine, {"slug": "tokens", "title": {"zh": "编号"}, "fields": [
        {"key": "code", "type": "text", "label": {"zh": "编号", "en": "Code"}, "unique": True, "required": True}]},
        actor=SYSTEM)
    create(engine, "tokens", {"code": "A1"}, actor=SYSTEM)
    report = dry_run(engine, "tokens", "编号\nB1\nA1\nB1\nC1\n".encode(), actor=ADMIN)
    assert [(m["row"], m["field"]) for m in report.messages()] == [(3, "编号"), (4, "编号")]
    assert "第 2 行" in report.messages()[1]["message"]


# --- undo ------------------------------------------------------------------------------------------
def test_undo_soft_deletes_exactly_the_batch(intake):
    body_a = HEARING_HEADER + "".join(_hearing(day=f"2025-03-{d:02d}") for d in range(1, 4))
    body_b = HEARING_HEADER + "".join(_hearing(day=f"2025-04-{d:02d}") for d in range(1, 3))
    a = commit(intake, "hearing_observation", body_a.encode(), actor=MANAGER)
    other = create(intake, "hearing_observation", {"hearing_date": "2025-03-15", "court": "xiashan_court",
                                                   "instance": "first", "observer_count": 1,
                                                   **{k: 3 for k in ("appearance_conduct", "preparation", "facts",
                                                                     "evidence", "law_application", "argument",
                                                                     "attitude", "overall")}}, actor=STAFF)
    b = commit(intake, "hearing_observation", body_b.encode(), actor=MANAGER)
    assert len(a.ids) == 3 and len(b.ids) == 2
    with session_scope(intake, write=False) as s:
        event = s.get(AuditEvent, a.audit_id)
    assert batch_ids(intake, event) == a.ids
    assert [x.audit_id for x in recent_imports(intake, "hearing_observation", actor=MANAGER)][:2] == [b.audit_id,
                                                                                                       a.audit_id]
    before = count_live(intake, "hearing_observation")
    assert undo_import(intake, a.audit_id, actor=MANAGER) == 3
    assert count_live(intake, "hearing_observation") == before - 3
    with session_scope(intake, write=False) as s:
        deleted = {i for (i,) in s.execute(select(Submission.id).where(Submission.deleted_at.is_not(None)))}
        trail = s.execute(select(AuditEvent).where(AuditEvent.action == "delete")).scalars().all()
    assert deleted == set(a.ids)
    assert other.id not in deleted and not deleted & set(b.ids)
    summary = [e for e in trail if e.entity == "import"]
    assert len(summary) == 1 and summary[0].detail["ids"] == a.ids and summary[0].entity_id == str(a.audit_id)
    assert sorted(int(e.entity_id) for e in trail if e.entity == "submission") == a.ids
    assert [x.undone for x in recent_imports(intake, "hearing_observation", actor=MANAGER)][:2] == [False, True]
    with pytest.raises(EngineError) as err:
        undo_import(intake, a.audit_id, actor=MANAGER)
    assert err.value.code == "import.batch_undone"
    with pytest.raises(PermissionDenied):
        undo_import(intake, b.audit_id, actor=MANAGER2)  # someone else's import: admins only
    assert undo_import(intake, b.audit_id, actor=ADMIN) == 2


# --- files, encodings and limits ------------------------------------------------------------------
def test_encodings_and_delimiters(intake):
    body = HEARING_HEADER + _hearing() + _hearing(day="2025-05-06")
    for data in (body.encode("gb18030"), body.encode("utf-8"), body.encode("utf-8-sig"),
                 body.replace(",", ";").encode("utf-8"), body.replace(",", "\t").encode("gb18030")):
        report = dry_run(intake, "hearing_observation", data, actor=MANAGER)
        assert report.ok and report.rows_total == 2, (data[:40], report.messages())
    assert read_table(body.encode("gb18030")).encoding == "gb18030"


def test_xlsx_with_typed_cells(intake):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(HEARING_HEADER.strip().split(","))
    ws.append([datetime(2025, 6, 7), "湛江市霞山区人民法院", "一审", 2, 4, 4, 4, 4, 4, 4, 4, 5.0, None])
    ws.append([])  # a blank row is skipped, row numbers stay those of the sheet
    ws.append([date(2025, 6, 8), "xiashan_court", "retrial", 1, 4, 4, 4, 4, 4, 4, 4, 11, None])
    buf = io.BytesIO()
    wb.save(buf)
    report = dry_run(intake, "hearing_observation", buf.getvalue(), actor=MANAGER, lang="en")
    assert report.fmt == "xlsx" and report.rows_total == 2
    assert [(m["row"], m["field"]) for m in report.messages("en")] == [(4, "Overall effect")]


def test_files_too_large_or_too_long_are_refused_clearly(engine):
    publish(engine, {"slug": "notes", "title": {"zh": "便签"}, "fields": [
        {"key": "memo", "type": "text", "label": {"zh": "内容", "en": "Memo"}}]}, actor=SYSTEM)
    with pytest.raises(EngineError) as err:
        dry_run(engine, "notes", b"a" * (MAX_BYTES + 1), actor=ADMIN)
    assert err.value.code == "import.too_large" and f"{MAX_BYTES // (1024 * 1024)} MB" in err.value.message("zh")
    body = "内容\n" + "x\n" * (MAX_ROWS + 1)
    with pytest.raises(EngineError) as err:
        dry_run(engine, "notes", body.encode(), actor=ADMIN)
    assert err.value.code == "import.too_many_rows" and str(MAX_ROWS) in err.value.message("en")
    with pytest.raises(EngineError) as err:
        dry_run(engine, "notes", b"\xd0\xcf\x11\xe0" + b"\0" * 100, actor=ADMIN)
    assert err.value.code == "import.xls_unsupported"
    with pytest.raises(EngineError) as err:
        dry_run(engine, "notes", "别的\nx\n".encode(), actor=ADMIN)
    assert err.value.code == "import.no_columns"
    with pytest.raises(EngineError) as err:
        commit(engine, "notes", "内容\n\n".encode(), actor=ADMIN)
    assert err.value.code == "import.empty"


def test_roles_without_the_import_ability_are_refused(intake):
    body = (HEARING_HEADER + _hearing()).encode()
    with pytest.raises(PermissionDenied):
        dry_run(intake, "hearing_observation", body, actor=STAFF)
    with pytest.raises(PermissionDenied):
        commit(intake, "hearing_observation", body, actor=Actor("v", "viewer"))


def _cli(engine: Engine, *argv: str):
    import argparse

    from engine.cli_reports import add_commands

    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--database-url", engine.url.render_as_string(hide_password=False), *argv])
    return args.func(args)


def test_import_records_command_prints_row_problems_and_exits_non_zero(intake, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_bytes((HEARING_HEADER + _hearing() + _hearing(day="2025-02-30")).encode("gb18030"))
    live = count_live(intake, "hearing_observation")
    assert _cli(intake, "import-records", "hearing_observation", str(bad)) == 1
    err = capsys.readouterr().err
    assert "第 3 行 「开庭日期」" in err and "没有导入任何记录" in err
    assert count_live(intake, "hearing_observation") == live
    good = tmp_path / "good.csv"
    good.write_bytes((HEARING_HEADER + _hearing() + _hearing(day="2025-02-28")).encode("utf-8"))
    assert _cli(intake, "import-records", "hearing_observation", str(good), "--dry-run", "--lang", "en") == 0
    assert "Check passed: all 2 rows" in capsys.readouterr().out
    assert count_live(intake, "hearing_observation") == live
    assert _cli(intake, "import-records", "hearing_observation", str(good)) == 0
    assert "已导入 2 条记录" in capsys.readouterr().out
    assert count_live(intake, "hearing_observation") == live + 2
    with pytest.raises(EngineError) as exc:
        _cli(intake, "import-records", "hearing_observation", str(tmp_path / "missing.csv"))
    assert exc.value.code == "cli.file_missing"
