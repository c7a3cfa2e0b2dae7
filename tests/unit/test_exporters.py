"""Record exports: formula injection, BOM, masking and reveal, headers, retired fields, paging."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from engine import exporters
from engine.access import SYSTEM, Actor
from engine.errors import EngineError, NotFound, PermissionDenied
from engine.exporters import EXPORTERS, export_records, neutralise, unescape_cell
from engine.forms import publish
from engine.idnumber import make_id
from engine.storage import create, soft_delete
from models.tables import AuditEvent

ID_NUMBER = make_id("440803", "19850607", 123)  # odd sequence: male

SPEC = {
    "slug": "visits",
    "title": {"zh": "来访登记", "en": "Visits"},
    "fields": [
        {"key": "visitor", "type": "text", "label": {"zh": "来访人", "en": "Visitor"}},
        {
            "key": "id_number",
            "type": "id_number",
            "label": {"zh": "身份证号", "en": "ID number"},
            "sensitive": True,
        },
        {"key": "phone", "type": "phone", "label": {"zh": "电话", "en": "Phone"}, "sensitive": True},
        {"key": "count", "type": "integer", "label": {"zh": "人数", "en": "People"}},
        {"key": "fee", "type": "money", "label": {"zh": "金额", "en": "Amount"}},
        {
            "key": "kind",
            "type": "select",
            "label": {"zh": "类别", "en": "Kind"},
            "choices": [
                {"value": "walk_in", "label": {"zh": "来访"}},
                {"value": "phone", "label": {"zh": "电话"}},
            ],
        },
        {"key": "info", "type": "note", "label": {"zh": "说明"}},
    ],
}
PLAIN = {"slug": "plain", "title": {"zh": "普通"}, "fields": [{"key": "text", "type": "text"}]}
STAFF = Actor("clerk", "staff")
MANAGER = Actor("boss", "manager")


@pytest.fixture
def eng(engine):
    publish(engine, SPEC, actor=SYSTEM)
    publish(engine, PLAIN, actor=SYSTEM)
    return engine


def export(engine, slug: str = "visits", fmt: str = "csv", **kw) -> tuple[bytes, exporters.ExportResult]:
    buf = io.BytesIO()
    kw.setdefault("actor", SYSTEM)
    result = export_records(engine, slug, buf, fmt, **kw)
    return buf.getvalue(), result


def read_csv(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def as_dicts(rows: list[list]) -> list[dict]:
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


# --------------------------------------------------------------------------------------------
# cells


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
        ("+86 138", "'+86 138"),
        ("-1", "'-1"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'=x", "''=x"),  # already quoted by the user: still comes back exactly
        ("陈伟", "陈伟"),
        ("a=b", "a=b"),
        ("'quoted", "'quoted"),
        ("", ""),
    ],
)
def test_neutralise_and_its_inverse(text: str, cell: str) -> None:
    assert neutralise(text) == cell
    assert unescape_cell(cell) == text


def test_registry_has_csv_and_xlsx() -> None:
    assert set(EXPORTERS) >= {"csv", "xlsx"}


# --------------------------------------------------------------------------------------------
# CSV / XLSX


DANGEROUS = ['=HYPERLINK("http://x","y")', "+cmd", "-2+3", "@SUM(1)", "'=quoted", "=1\tx"]


def test_csv_has_a_bom_and_neutralises_formulas(eng) -> None:
    for text in DANGEROUS:
        create(eng, "plain", {"text": text}, actor=SYSTEM)
    raw, result = export(eng, "plain", headers="key")
    assert raw.startswith(b"\xef\xbb\xbf")
    assert result.count == len(DANGEROUS)
    cells = [r["text"] for r in as_dicts(read_csv(raw))]
    assert cells == ["'" + t for t in DANGEROUS]
    assert [unescape_cell(c) for c in cells] == DANGEROUS


def test_xlsx_neutralises_formulas_and_keeps_numbers(eng) -> None:
    create(eng, "visits", {"visitor": "=1+1", "count": 12, "fee": "-30.50"}, actor=SYSTEM)
    raw, _ = export(eng, fmt="xlsx", headers="key")
    ws = load_workbook(io.BytesIO(raw)).active
    rows = list(ws.iter_rows())
    head = [c.value for c in rows[0]]
    cell = {h: c for h, c in zip(head, rows[1], strict=True)}
    assert cell["visitor"].value == "'=1+1" and cell["visitor"].data_type == "s"
    assert cell["count"].value == 12
    assert float(cell["fee"].value) == -30.5  # a number cell, not text: Excel can sum it
    assert not any(c.data_type == "f" for row in rows for c in row)


def test_meta_columns_and_values(eng) -> None:
    sub = create(eng, "visits", {"visitor": "陈伟", "count": 3, "kind": "phone"}, actor=STAFF_SUBMITTER)
    rows = as_dicts(read_csv(export(eng, headers="key")[0]))
    assert list(rows[0])[:3] == ["id", "number", "state"]
    assert list(rows[0])[-3:] == ["created_by", "created_at", "form_version"]
    assert "info" not in rows[0]  # a note stores nothing
    row = rows[0]
    assert row["id"] == str(sub.id) and row["created_by"] == "clerk" and row["form_version"] == "1"
    assert row["kind"] == "phone" and row["count"] == "3" and row["created_at"].endswith("+08:00")


STAFF_SUBMITTER = Actor("clerk", "staff")


@pytest.mark.parametrize(
    ("headers", "lang", "expected"),
    [
        ("label", "zh", "来访人"),
        ("label", "en", "Visitor"),
        ("key", "zh", "visitor"),
        ("key", "en", "visitor"),
    ],
)
def test_header_languages(eng, headers: str, lang: str, expected: str) -> None:
    raw, _ = export(eng, headers=headers, lang=lang)
    head = read_csv(raw)[0]
    assert head[3] == expected
    assert head[0] == {"label": {"zh": "记录ID", "en": "Record ID"}[lang], "key": "id"}[headers]


def test_bad_format_and_headers_are_coded_errors(eng) -> None:
    with pytest.raises(EngineError) as info:
        export(eng, fmt="pdf")
    assert info.value.code == "export.unknown_format"
    with pytest.raises(EngineError):
        export(eng, headers="both")
    with pytest.raises(NotFound):
        export(eng, slug="nope")


# --------------------------------------------------------------------------------------------
# sensitive data


def _audits(engine) -> list[AuditEvent]:
    from engine.db import session_scope

    with session_scope(engine, write=False) as s:
        return list(s.execute(select(AuditEvent).where(AuditEvent.action == "export")).scalars())


def test_sensitive_columns_are_masked_and_the_export_audited(eng) -> None:
    create(eng, "visits", {"visitor": "陈伟", "id_number": ID_NUMBER, "phone": "13812345678"}, actor=SYSTEM)
    raw, result = export(eng, headers="key", actor=MANAGER)
    row = as_dicts(read_csv(raw))[0]
    assert ID_NUMBER not in raw.decode("utf-8-sig") and "13812345678" not in raw.decode("utf-8-sig")
    assert row["id_number"].startswith("440") and "*" in row["id_number"]
    assert row["phone"] == "138****5678"
    assert row["visitor"] == "陈伟"
    assert not result.revealed and set(result.sensitive) == {"id_number", "phone"}
    (audit,) = _audits(eng)
    assert audit.username == "boss" and audit.form_slug == "visits"
    assert audit.detail["count"] == 1 and audit.detail["revealed"] is False
    assert "id_number" in audit.detail["columns"]


def test_reveal_needs_a_role_that_may_reveal(eng) -> None:
    create(eng, "visits", {"id_number": ID_NUMBER}, actor=SYSTEM)
    raw, result = export(eng, headers="key", actor=MANAGER, reveal=True)
    assert as_dicts(read_csv(raw))[0]["id_number"] == ID_NUMBER and result.revealed
    assert _audits(eng)[-1].detail["revealed"] is True
    with pytest.raises(PermissionDenied) as info:
        export(eng, actor=STAFF, reveal=True)
    assert info.value.code == "export.reveal_forbidden"
    with pytest.raises(PermissionDenied):
        export(eng, actor=Actor("v", "viewer"))


def test_an_export_without_sensitive_columns_is_not_audited(eng) -> None:
    create(eng, "plain", {"text": "x"}, actor=SYSTEM)
    export(eng, "plain")
    assert _audits(eng) == []


# --------------------------------------------------------------------------------------------
# versions, deletes, paging, progress


def test_retired_fields_and_fields_of_older_versions_are_exported(eng) -> None:
    old = create(eng, "visits", {"visitor": "陈伟", "count": 2}, actor=SYSTEM)
    v2 = {**SPEC, "fields": [f for f in SPEC["fields"] if f["key"] != "count"]}
    publish(eng, v2, actor=SYSTEM)
    create(eng, "visits", {"visitor": "李娜"}, actor=SYSTEM)
    raw, _ = export(eng, headers="label", lang="en")
    head = read_csv(raw)[0]
    assert "People (retired)" in head
    rows = as_dicts(read_csv(export(eng, headers="key")[0]))
    assert [(r["id"], r["count"], r["form_version"]) for r in rows][0] == (str(old.id), "2", "1")
    assert rows[1]["count"] == "" and rows[1]["form_version"] == "2"


def test_deleted_records_are_left_out(eng) -> None:
    keep = create(eng, "plain", {"text": "keep"}, actor=SYSTEM)
    gone = create(eng, "plain", {"text": "gone"}, actor=SYSTEM)
    soft_delete(eng, gone.id, actor=SYSTEM)
    rows = as_dicts(read_csv(export(eng, "plain", headers="key")[0]))
    assert [r["id"] for r in rows] == [str(keep.id)]


def test_rows_stream_in_id_order_across_batches(eng, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.storage import bulk_create

    monkeypatch.setattr(exporters, "BATCH", 7)
    bulk_create(eng, "plain", [{"text": f"row {i}"} for i in range(30)], actor=SYSTEM)
    seen: list[tuple[int, int]] = []
    raw, result = export(eng, "plain", headers="key", progress=lambda done, total: seen.append((done, total)))
    rows = as_dicts(read_csv(raw))
    assert [r["text"] for r in rows] == [f"row {i}" for i in range(30)]
    assert result.count == 30
    assert seen[0] == (0, 30) and seen[-1] == (30, 30) and len(seen) == 1 + 5  # 7+7+7+7+2


def test_an_empty_form_exports_the_header_only(eng) -> None:
    raw, result = export(eng, "plain", headers="key")
    assert read_csv(raw) == [["id", "number", "state", "text", "created_by", "created_at", "form_version"]]
    assert result.count == 0
    xlsx, _ = export(eng, "plain", fmt="xlsx")
    assert load_workbook(io.BytesIO(xlsx)).active.max_row == 1


def test_counter_totals_are_exported(engine) -> None:
    from engine.forms import init_database
    from engine.tally import tap

    init_database(engine)
    event = create(
        engine,
        "outreach_event",
        {
            "title": "走进社区",
            "event_date": "2026-03-15",
            "place_type": "community",
            "target_group": "elderly",
        },
        actor=SYSTEM,
    )
    for _ in range(3):
        tap(engine, event.id, "brochures", 10, actor=SYSTEM, device="t1")
    tap(engine, event.id, "consultations", 1, actor=SYSTEM, device="t1")
    row = as_dicts(read_csv(export(engine, "outreach_event", headers="key")[0]))[0]
    assert row["brochures"] == "30" and row["consultations"] == "1" and row["onsite_applications"] == "0"
