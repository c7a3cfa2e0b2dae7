"""PDFs in Chinese (engine.pdf, engine.prints): the text is real text (pdftotext extracts the headings and
figures), the CJK font is embedded (a /FontFile2 subset), the font is parsed once per process, a
missing font gives the clear pdf.no_font error, and sensitive values are masked unless revealed."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader

from engine import pdf as pdfmod
from engine.access import SYSTEM, Actor
from engine.errors import EngineError, PermissionDenied
from engine.pdf import Document, FontRef, find_cjk_font
from engine.prints import available_prints, print_record, report_pdf
from engine.reports import Drilldown, Figure, Report, Section

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) not installed")


def pdftotext(data: bytes, tmp_path: Path, *, first: int | None = None, last: int | None = None,
              layout: bool = False) -> str:
    path = tmp_path / "out.pdf"
    path.write_bytes(data)
    cmd = ["pdftotext", "-enc", "UTF-8"]
    if layout:
        cmd.append("-layout")
    if first:
        cmd += ["-f", str(first)]
    if last:
        cmd += ["-l", str(last)]
    out = subprocess.run([*cmd, str(path), "-"], capture_output=True, text=True, check=True).stdout
    return out if layout else "".join(out.split())  # CJK text: pdftotext's spacing is not the document's


def font_descriptors(data: bytes) -> list:
    out = []
    for page in PdfReader(io.BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            for desc in font.get("/DescendantFonts", []):
                out.append((font["/BaseFont"], desc.get_object()["/FontDescriptor"].get_object()))
    return out


def seed_report() -> Report:
    d = Drilldown("intake", (), ("accepted",), date(2023, 1, 1), date(2025, 12, 31))
    cases = Section("cases", {"zh": "一、法律援助案件受理情况", "en": "1. Legal-aid cases"}, [
        Figure("cases.accepted", {"zh": "受理法律援助案件", "en": "Legal-aid cases accepted"}, 2158, 1960, d),
        Figure("cases.accepted.criminal", {"zh": "刑事", "en": "Criminal"}, 736, 700, d, level=1),
        Figure("cases.accepted.civil", {"zh": "民事", "en": "Civil"}, 1422, 1260, d, level=1),
        Figure("cases.closure_rate", {"zh": "结案率", "en": "Closure rate"}, 52.1, 59.4, d, unit="percent"),
    ])
    outreach = Section("outreach", {"zh": "四、普法宣传与品牌活动", "en": "4. Outreach"}, [
        Figure("outreach.events", {"zh": "开展宣传活动", "en": "Events"}, 13, 9, None, unit="events"),
        Figure("outreach.events.elderly", {"zh": "老年人专场", "en": "Elderly"}, 2, 1, None, unit="events", level=1),
        Figure("outreach.events.migrant_workers", {"zh": "农民工专场", "en": "Migrant workers"}, 1, 0, None,
               unit="events", level=1),
        Figure("outreach.brochures", {"zh": "发放宣传资料（份）", "en": "Brochures"}, 3200, 2500, None, unit="copies"),
        Figure("outreach.consultations", {"zh": "解答咨询（人次）", "en": "Consultations"}, 675, 500, None,
               unit="person_times"),
    ])
    quality = Section("quality", {"zh": "五、案件质量管理", "en": "5. Quality"}, [
        Figure("hearings.sessions", {"zh": "参加庭审旁听", "en": "Hearings"}, 29, 20, None, unit="sessions"),
        Figure("hearings.person_times", {"zh": "庭审旁听人次", "en": "Person-times"}, 34, 25, None,
               unit="person_times"),
    ])
    consult = Section("consultations", {"zh": "三、法律咨询", "en": "3. Consultations"}, [
        Figure("consultations.total", {"zh": "解答法律咨询", "en": "Consultations"}, 300, 280, None),
        Figure("consultations.walk_in", {"zh": "来访（窗口）", "en": "Walk-in"}, 200, 190, None, level=1),
        Figure("consultations.hotline_12348", {"zh": "12348热线", "en": "12348 hotline"}, 100, 90, None, level=1),
    ])
    return Report(date(2023, 1, 1), date(2025, 12, 31), date(2020, 1, 1), date(2022, 12, 31),
                  [cases, consult, outreach, quality], office="霞山区法律援助处")


# --- the year-end report ---------------------------------------------------------------------------
def test_report_pdf_has_chinese_headings_figures_and_charts(tmp_path):
    data = report_pdf(seed_report(), "zh")
    assert data.startswith(b"%PDF")
    text = pdftotext(data, tmp_path)
    for expected in ("霞山区法律援助处", "2023—2025年法律援助工作统计报告", "统计期间", "对比期间",
                     "一、法律援助案件受理情况", "受理法律援助案件", "2,158", "1,960", "+198",
                     "参加庭审旁听", "29", "庭审旁听人次", "34", "开展宣传活动", "13", "老年人专场", "农民工专场",
                     "发放宣传资料（份）", "3,200", "解答咨询（人次）", "675", "结案率", "52.1",
                     "统计图", "受理案件类别", "宣传活动服务对象", "法律咨询方式", "第1页"):
        assert expected in text, expected
    charts = pdftotext(data, tmp_path, first=len(PdfReader(io.BytesIO(data)).pages))
    assert "受理案件类别" in charts and "736" in charts and "1,422" in charts
    assert "解答法律咨询" not in charts  # the total is not a bar of the channel chart


def test_report_pdf_in_english(tmp_path):
    text = pdftotext(report_pdf(seed_report(), "en"), tmp_path)
    assert "LegalAidWorkReport2023–2025" in text and "3,200" in text and "Page1" in text


def test_the_font_is_embedded_as_a_subset(tmp_path):
    data = report_pdf(seed_report(), "zh")
    fonts = font_descriptors(data)
    assert fonts
    for base, desc in fonts:
        assert "/FontFile2" in desc or "/FontFile3" in desc
        assert "+" in str(base)  # a subset: ABCDEF+FontName
    assert len(data) < 200_000  # a subset, not the 5 MB font file


# --- the Document builder --------------------------------------------------------------------------
def test_long_tables_repeat_their_header_and_text_wraps(tmp_path):
    doc = Document(title="测试文档", office="测试法律援助处")
    doc.heading("一级标题")
    doc.paragraph("这是一段很长的中文文字，" * 30)
    doc.table(["项目名称", "数量"], [(f"第{i}项", i) for i in range(120)], widths=[3, 1])
    doc.bar_chart("图表", [("甲", 3), ("乙", 5.5)])
    doc.signature_lines(["申请人签名", "日期"])
    data = doc.output()
    pages = len(PdfReader(io.BytesIO(data)).pages)
    assert pages >= 3
    second = pdftotext(data, tmp_path, first=2, last=2)
    assert "项目名称" in second and "测试法律援助处" in second and "第2页" in second
    text = pdftotext(data, tmp_path)
    assert "第119项" in text and "申请人签名" in text and "5.5" in text


def test_the_font_is_parsed_once_and_documents_stay_identical_to_plain_fpdf2():
    import datetime as dt

    from fpdf import FPDF

    ref = find_cjk_font()
    Document().output()
    parses = pdfmod.FONT_PARSES["count"]
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def make(cached: bool) -> bytes:
        pdf = FPDF()
        if cached:
            pdfmod._attach_font(pdf, ref)
        else:
            pdf.add_font("cjk", "", ref.path, collection_font_number=ref.index)
        pdf.set_creation_date(when)
        pdf.add_page()
        pdf.set_font("cjk", size=12)
        pdf.multi_cell(0, 8, "法律援助处 受理案件 2158 件；旁听 34 人次。ABC 「」（）")
        return bytes(pdf.output())

    plain, first, second = make(False), make(True), make(True)
    assert first == plain and second == plain
    for _ in range(3):
        Document().output()
    assert pdfmod.FONT_PARSES["count"] == parses  # no new parse for new documents


# --- finding the font ------------------------------------------------------------------------------
def test_a_missing_font_file_gives_the_clear_error(monkeypatch, tmp_path):
    missing = tmp_path / "nope" / "font.ttc"
    monkeypatch.setenv("LAC_CJK_FONT", str(missing))
    with pytest.raises(EngineError) as err:
        find_cjk_font()
    assert err.value.code == "pdf.no_font"
    zh, en = err.value.message("zh"), err.value.message("en")
    assert "fonts-wqy-microhei" in zh and "LAC_CJK_FONT" in zh and str(missing) in zh
    assert "fonts-wqy-microhei" in en and "LAC_CJK_FONT" in en
    with pytest.raises(EngineError) as err:
        Document()
    assert err.value.code == "pdf.no_font"
    with pytest.raises(EngineError):
        report_pdf(seed_report())


def test_the_font_path_may_name_a_face_of_a_collection(monkeypatch):
    path = find_cjk_font().path
    monkeypatch.setenv("LAC_CJK_FONT", f"{path}:0")
    assert find_cjk_font() == FontRef(path, 0)
    bad = Path(path).parent / "not-a-font.txt"
    monkeypatch.setenv("LAC_CJK_FONT", str(bad) + ":1")
    with pytest.raises(EngineError):
        find_cjk_font()


def test_a_file_that_is_not_a_font_gives_the_clear_error(monkeypatch, tmp_path):
    junk = tmp_path / "junk.ttf"
    junk.write_bytes(b"not a font at all")
    monkeypatch.setenv("LAC_CJK_FONT", str(junk))
    with pytest.raises(EngineError) as err:
        Document()
    assert err.value.code == "pdf.no_font" and "junk.ttf" in err.value.message("en")


# --- per-record prints -----------------------------------------------------------------------------
@pytest.fixture
def records(sqlite_url):
    from engine.db import get_engine, upgrade
    from engine.forms import load_builtins
    from engine.storage import bulk_create
    from tests.fixtures.seed_dataset import Case, _intake_row

    engine = get_engine(sqlite_url)
    upgrade(engine)
    load_builtins(engine)
    row = _intake_row(7, Case(date(2025, 3, 16), "civil", None, "accepted", ["elderly", "women"]))
    row.update(name="李秀梅", phone="13802715634", residence="湛江市霞山区海头街道新建村三巷8号",
               materials={"application_form": {"answer": "yes", "note": ""},
                          "identity_proof": {"answer": "yes", "note": "原件已核对"},
                          "hardship_proof": {"answer": "no", "note": ""}},
               missing_materials="低保证明复印件")
    bulk_create(engine, "intake", [row], actor=SYSTEM)
    scores = {k: 4 for k in ("appearance_conduct", "preparation", "facts", "evidence", "law_application",
                             "argument", "attitude")}
    bulk_create(engine, "hearing_observation", [{
        "hearing_date": "2025-04-02", "court": "xiashan_court", "instance": "first", "observer_count": 2,
        "observers": "王主任\n李干事", "case_number": "（2025）粤0803刑初123号", "aided_person": "陈某某",
        "overall": 5, "comments": "辩护意见充分", **scores}], actor=SYSTEM)
    items = {"closing_approval": "yes", "cover_index": "yes", "assignment_notice": "no"}
    bulk_create(engine, "archive_checklist", [{
        "case_number": "霞援〔2025〕12号", "case_kind": "criminal", "archived_on": "2025-05-01",
        "complete": "incomplete", "criminal_items": {k: {"answer": v, "note": ""} for k, v in items.items()}
        | {k: {"answer": "na", "note": ""} for k in ("indictment", "agreement_poa", "meeting_records",
                                                     "file_review_notes", "written_opinions", "defence_statement",
                                                     "hearing_notice", "judgment", "closing_report",
                                                     "opinion_forms")}}], actor=SYSTEM)
    from sqlalchemy import text

    with engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT f.slug, min(s.id) FROM submissions s JOIN forms f ON f.id = s.form_id "
                                     "GROUP BY f.slug")).all())
    return engine, ids


MANAGER = Actor("boss", "manager")
STAFF = Actor("li", "staff")


def test_intake_application_form_print(records, tmp_path):
    engine, ids = records
    data = print_record(engine, ids["intake"], "application", actor=STAFF)
    text = pdftotext(data, tmp_path)
    for expected in ("法律援助申请表", "申请信息", "申请人", "案件情况", "李秀梅", "民事", "老年人、妇女",
                     "申请人签名", "受理人签名", "日期", "已收材料", "法律援助申请表", "原件已核对", "v1"):
        assert expected in text, expected
    assert "440803" not in text.replace("440***", "")  # the ID number is masked
    assert "138****5634" in text and "13802715634" not in text
    assert "新建村三巷" not in text  # the residence (sensitive) is masked too
    assert font_descriptors(data)


def test_the_header_names_the_office_from_settings(records, tmp_path):
    from engine.db import session_scope
    from models.tables import Setting

    engine, ids = records
    assert Document(engine=engine).office_name == "法律援助处"
    with session_scope(engine) as s:
        s.add(Setting(key="office_name", value={"zh": "湛江市霞山区法律援助处", "en": "Xiashan Legal Aid Office"}))
    assert Document(engine=engine, lang="en").office_name == "Xiashan Legal Aid Office"
    text = pdftotext(print_record(engine, ids["intake"], "receipt", actor=STAFF), tmp_path)
    assert "湛江市霞山区法律援助处" in text


def test_reveal_prints_clear_values_for_managers_only_and_is_audited(records, tmp_path):
    from sqlalchemy import select

    from engine.db import session_scope
    from models.tables import AuditEvent

    engine, ids = records
    text = pdftotext(print_record(engine, ids["intake"], "application", actor=MANAGER, reveal=True), tmp_path)
    assert "13802715634" in text and "新建村三巷8号" in text
    with session_scope(engine, write=False) as s:
        reveals = s.execute(select(AuditEvent).where(AuditEvent.action == "reveal")).scalars().all()
    assert len(reveals) == 1 and reveals[0].detail["via"] == "print:application"
    assert "id_number" in reveals[0].detail["fields"]
    with pytest.raises(PermissionDenied):
        print_record(engine, ids["intake"], "application", actor=STAFF, reveal=True)


def test_receipt_lists_the_materials_received(records, tmp_path):
    engine, ids = records
    text = pdftotext(print_record(engine, ids["intake"], "receipt", actor=STAFF), tmp_path)
    for expected in ("法律援助申请材料接收凭证", "李秀梅", "2025-03-16", "法律援助申请表", "已收到", "未收到",
                     "经济困难证明或承诺材料", "低保证明复印件", "接收人签名", "申请人签名", "七日内"):
        assert expected in text, expected


def test_hearing_evaluation_print(records, tmp_path):
    engine, ids = records
    text = pdftotext(print_record(engine, ids["hearing_observation"], "evaluation", actor=STAFF), tmp_path)
    for expected in ("庭审旁听评价表", "庭审信息", "评分", "举证质证", "4/5", "总体效果", "5/5", "总分",
                     "33/40", "（2025）粤0803刑初123号", "湛江市霞山区人民法院", "辩护意见充分", "旁听人签名"):
        assert expected in text, expected
    assert "陈某某" not in text  # the aided person is sensitive


def test_any_checklist_form_prints_with_its_items(records, tmp_path):
    engine, ids = records
    assert [k.key for k in available_prints("archive_checklist")] == ["record"]
    assert [k.key for k in available_prints("intake")] == ["application", "receipt", "record"]
    text = pdftotext(print_record(engine, ids["archive_checklist"], "record", actor=STAFF), tmp_path)
    for expected in ("结案归档材料检查", "刑事归档材料", "结案审批表", "指派通知书或通知辩护公函", "不适用", "是", "否",
                     "不齐全", "填表人签名"):
        assert expected in text, expected
    en = pdftotext(print_record(engine, ids["archive_checklist"], "record", actor=STAFF, lang="en"), tmp_path)
    assert "Closingapprovalform" in en and "N/A" in en
    with pytest.raises(EngineError) as err:
        print_record(engine, ids["archive_checklist"], "receipt", actor=STAFF)
    assert err.value.code == "print.unknown_kind"
    with pytest.raises(PermissionDenied):
        print_record(engine, ids["archive_checklist"], "record", actor=Actor("v", "viewer"))
