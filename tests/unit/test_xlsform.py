"""XLSForm import / export on real workbooks written with openpyxl (no mocks)."""

from __future__ import annotations

import importlib.util
import io
import re
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from engine.fields import REGISTRY
from engine.spec import parse_spec
from engine.xlsform import (
    MAX_BYTES,
    MAX_CHOICE_ROWS,
    MAX_SURVEY_ROWS,
    export_xlsform,
    import_xlsform,
    xlsform_to_dict,
)
from models.spec import FormSpec

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "xlsform"
FORMS = ROOT / "data" / "forms"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def write_xlsform(path: Path, survey: list[list[Any]], choices: list[list[Any]] | None = None,
                  settings: list[list[Any]] | None = None, **other: list[list[Any]]) -> Path:
    """Write a workbook: `survey` / `choices` / `settings` (and any other sheet) as rows of cells."""
    wb = Workbook()
    wb.remove(wb.active)
    sheets = {"survey": survey, "choices": choices, "settings": settings, **other}
    for title, rows in sheets.items():
        if rows is None:
            continue
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def ok(result: tuple[FormSpec | None, list, list[str]]) -> FormSpec:
    spec, problems, _warnings = result
    assert problems == [], [p.describe("en") for p in problems]
    assert spec is not None
    return spec


def codes(problems: list) -> list[tuple[str | None, int | None, str]]:
    return [(p.sheet, p.row, p.code) for p in problems]


def field_dict(spec: FormSpec, key: str) -> dict[str, Any]:
    found = spec.field(key)
    assert found is not None, key
    return found.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def assert_renders(problem) -> None:
    """Every problem reads as words in both languages, with every placeholder filled."""
    for lang in ("zh", "en"):
        text = problem.message(lang)
        assert text != problem.code and not re.search(r"(?<!\$)\{[a-z_]+\}", text), (lang, text)


SETTINGS = [["form_id", "form_title"], ["test_form", "测试表单"]]
HEAD = ["type", "name", "label"]


def one_field(tmp_path: Path, row: list[Any], header: list[str] | None = None,
              choices: list[list[Any]] | None = None, before: list[list[Any]] | None = None):
    header = header or HEAD
    survey = [header, *(before or []), row]
    return import_xlsform(write_xlsform(tmp_path / "f.xlsx", survey, choices, SETTINGS))


# --------------------------------------------------------------------------------------------
# types and columns
# --------------------------------------------------------------------------------------------
def test_every_kobo_type_and_column(tmp_path: Path) -> None:
    header = ["type", "name", "label", "label::English (en)", "hint", "hint::English (en)", "required",
              "relevant", "constraint", "constraint_message", "constraint_message::English (en)", "default",
              "appearance"]
    survey = [
        header,
        ["text", "full_name", "姓名", "Name", "与证件一致", "As on the ID", "yes", None,
         "regex(., '^[^0-9]+$')", "不能有数字", "No digits"],
        ["text", "notes", "备注", "Notes", None, None, None, None, None, None, None, None, "multiline"],
        ["integer", "age", "年龄", "Age", None, None, "true", None, ". >= 0 and . <= 120", None, None, 30],
        ["decimal", "income", "月收入", "Monthly income", None, None, None, None, ". >= 0", None, None, 1500.5],
        ["date", "visit_date", "日期", "Date", None, None, "1", None, None, None, None,
         datetime(2026, 3, 15)],
        ["datetime", "visit_at", "时间", "When"],
        ["dateTime", "recorded_at", "记录时间", "Recorded at"],
        ["time", "start_time", "开始时间", "Start"],
        ["select_one yn", "resolved", "是否解决", "Resolved", None, None, "是", None, None, None, None, "yes"],
        ["select_multiple topics", "topics", "咨询事项", "Topics", None, None, None, "${resolved} = 'no'",
         None, None, None, "labour family"],
        ["note", "intro", "请如实填写", "Please answer truthfully"],
        ["acknowledge", "consent", "我同意", "I agree", None, None, True, None, None, None, None, "OK"],
    ]
    choices = [
        ["list_name", "name", "label", "label::English (en)"],
        ["yn", "yes", "是", "Yes"],
        ["yn", "no", "否", "No"],
        ["topics", "labour", "劳动", "Labour"],
        ["topics", "family", "婚姻家庭", "Family"],
    ]
    spec, problems, warnings = import_xlsform(write_xlsform(tmp_path / "all.xlsx", survey, choices, SETTINGS))
    assert problems == [], [p.describe("en") for p in problems]
    assert spec is not None and spec.slug == "test_form" and spec.title == {"zh": "测试表单"}
    assert warnings == []
    assert [(f.key, f.type) for f in spec.fields] == [
        ("full_name", "text"), ("notes", "textarea"), ("age", "integer"), ("income", "decimal"),
        ("visit_date", "date"), ("visit_at", "datetime"), ("recorded_at", "datetime"), ("start_time", "time"),
        ("resolved", "select"), ("topics", "multiselect"), ("intro", "note"), ("consent", "boolean"),
    ]
    assert field_dict(spec, "full_name") == {
        "key": "full_name", "type": "text", "label": {"zh": "姓名", "en": "Name"},
        "help": {"zh": "与证件一致", "en": "As on the ID"}, "required": True, "pattern": "^[^0-9]+$",
        "pattern_message": {"zh": "不能有数字", "en": "No digits"},
    }
    age = field_dict(spec, "age")
    assert (age["required"], age["min"], age["max"], age["default"]) == (True, 0, 120, 30)
    assert field_dict(spec, "income")["default"] == "1500.5"
    assert field_dict(spec, "visit_date")["default"] == "2026-03-15"
    resolved = field_dict(spec, "resolved")
    assert resolved["required"] is True and resolved["default"] == "yes"
    assert resolved["choices"] == [{"value": "yes", "label": {"zh": "是", "en": "Yes"}},
                                   {"value": "no", "label": {"zh": "否", "en": "No"}}]
    topics = field_dict(spec, "topics")
    assert topics["default"] == ["labour", "family"]
    assert topics["show_if"] == {"field": "resolved", "op": "equals", "value": "no"}
    assert field_dict(spec, "intro")["label"] == {"zh": "请如实填写", "en": "Please answer truthfully"}
    consent = field_dict(spec, "consent")
    assert consent["required"] is True and consent["default"] is True


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("yes", True), ("Yes", True), ("TRUE", True), ("true", True), ("1", True), (1, True), ("是", True),
     (True, True), ("true()", True), ("no", False), ("0", False), (False, False), ("否", False), (None, False)],
)
def test_required_spellings(tmp_path: Path, cell: Any, expected: bool) -> None:
    spec = ok(one_field(tmp_path, ["text", "answer", "答案", cell], header=[*HEAD, "required"]))
    assert spec.fields[0].required is expected


def test_lac_columns_carry_our_richer_types(tmp_path: Path) -> None:
    header = [*HEAD, "lac_type", "lac_sensitive", "lac_unique", "lac_sex_field", "lac_doc_type_field",
              "lac_steps", "lac_reference_form", "lac_retired"]
    survey = [
        header,
        ["select_one sex", "sex", "性别"],
        ["select_one doc", "doc_type", "证件类型"],
        ["text", "id_no", "身份证号", "id_number", "yes", "yes", "sex", "doc_type"],
        ["text", "mobile", "电话", "phone", "yes"],
        ["text", "mail", "邮箱", "email"],
        ["decimal", "fee", "金额", "money"],
        ["text", "facts", "事实与理由", "textarea"],
        ["integer", "score", "评分", "rating"],
        ["integer", "brochures", "资料份数", "counter", None, None, None, None, "1 5 10"],
        ["text", "lawyer", "承办人", "user"],
        ["text", "event", "所属活动", "reference", None, None, None, None, None, "outreach_event"],
        ["select_multiple materials", "materials", "归档材料", "checklist"],
        ["text", "old_field", "旧字段", None, None, None, None, None, None, None, "yes"],
    ]
    choices = [
        ["list_name", "name", "label", "lac_group"],
        ["sex", "male", "男"], ["sex", "female", "女"],
        ["doc", "resident_id", "居民身份证"], ["doc", "passport", "护照"],
        ["materials", "application", "申请表", "civil"],
        ["materials", "judgment", "判决书", "criminal"],
    ]
    spec = ok(import_xlsform(write_xlsform(tmp_path / "lac.xlsx", survey, choices, SETTINGS)))
    types = {f.key: f.type for f in spec.fields}
    assert types == {"sex": "select", "doc_type": "select", "id_no": "id_number", "mobile": "phone",
                     "mail": "email", "fee": "money", "facts": "textarea", "score": "rating",
                     "brochures": "counter", "lawyer": "user", "event": "reference", "materials": "checklist",
                     "old_field": "text"}
    id_no = spec.field("id_no")
    assert id_no is not None
    assert (id_no.sensitive, id_no.unique, id_no.sex_field, id_no.doc_type_field) == (True, True, "sex", "doc_type")
    assert spec.field("brochures").steps == [1, 5, 10]
    assert spec.field("event").reference_form == "outreach_event"
    assert spec.field("old_field").retired is True
    items = [it.model_dump(exclude_defaults=True) for it in spec.field("materials").items]
    assert items == [{"key": "application", "label": {"zh": "申请表"}, "group": "civil"},
                     {"key": "judgment", "label": {"zh": "判决书"}, "group": "criminal"}]


def test_select_from_file_becomes_a_reference_list(tmp_path: Path) -> None:
    spec, problems, warnings = one_field(tmp_path, ["select_one_from_file courts.csv", "court", "法院"])
    assert problems == []
    assert spec is not None and spec.fields[0].choice_list == "courts" and spec.fields[0].type == "select"
    assert any("courts" in w for w in warnings)


def test_numeric_and_mixed_cells(tmp_path: Path) -> None:
    """Choice names typed as numbers stay '1', '2'; a Kobo name with capitals becomes a valid key."""
    survey = [[*HEAD, "relevant"],
              ["select_one rating", "Q1", "满意度"],
              ["text", "Q1_Why", "原因", "${Q1} = '1'"],
              ["integer", "1st_visit", "首次来访"]]
    choices = [["list_name", "name", "label"], ["rating", 1, "满意"], ["rating", 2.0, "不满意"]]
    spec, problems, warnings = import_xlsform(write_xlsform(tmp_path / "n.xlsx", survey, choices, SETTINGS))
    assert problems == []
    assert [f.key for f in spec.fields] == ["q1", "q1_why", "f_1st_visit"]
    assert [c.value for c in spec.fields[0].choices] == ["1", "2"]
    assert field_dict(spec, "q1_why")["show_if"] == {"field": "q1", "op": "equals", "value": "1"}
    assert sum("Q1" in w for w in warnings) == 2


# --------------------------------------------------------------------------------------------
# languages, case, blank rows, comment columns
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("zh_header", "en_header"),
    [("label::Chinese (zh)", "label::English (en)"), ("label::zh", "label::en"), ("label::中文", "label::English"),
     ("Label::Chinese (zh-CN)", "LABEL :: english (en-US)"), ("label::简体中文", "label::英文"),
     ("label::Chinese", "label::en-GB")],
)
def test_language_columns(tmp_path: Path, zh_header: str, en_header: str) -> None:
    header = ["type", "name", zh_header, en_header, "label::Français (fr)", "label::Spanish (es)"]
    spec, problems, warnings = one_field(tmp_path, ["text", "name", "姓名", "Name", "Nom", "Nombre"], header=header)
    assert problems == []
    assert spec.fields[0].label == {"zh": "姓名", "en": "Name"}
    assert len(warnings) == 2 and all("fr" in w or "es" in w for w in warnings)


def test_plain_label_takes_the_default_language(tmp_path: Path) -> None:
    survey = [["type", "name", "label", "label::Chinese (zh)"], ["text", "name", "Name", "姓名"],
              ["text", "town", "Town"]]
    settings = [["form_id", "form_title", "default_language"], ["visits", "Visits", "English (en)"]]
    spec = ok(import_xlsform(write_xlsform(tmp_path / "l.xlsx", survey, None, settings)))
    assert spec.fields[0].label == {"zh": "姓名", "en": "Name"}
    assert spec.fields[1].label == {"en": "Town"}
    assert spec.title == {"zh": "Visits", "en": "Visits"}  # a zh title is required: the English one stands in


def test_sheet_and_column_names_ignore_case_and_spaces(tmp_path: Path) -> None:
    wb = Workbook()
    wb.remove(wb.active)
    ws = wb.create_sheet(" SURVEY ")
    ws.append([" Type ", "Name", " Label :: Chinese (zh) ", "REQUIRED"])
    ws.append(["  Integer ", "age", "年龄", " Yes "])
    ws = wb.create_sheet("SETTINGS")
    ws.append(["FORM_ID ", " form_title"])
    ws.append(["MixedCase", "混合"])
    wb.save(tmp_path / "case.xlsx")
    spec = ok(import_xlsform(tmp_path / "case.xlsx"))
    assert spec.slug == "mixedcase" and spec.fields[0].type == "integer" and spec.fields[0].required


def test_blank_rows_comment_columns_and_blank_types(tmp_path: Path) -> None:
    survey = [
        [*HEAD, "comment", "note", "$kuid"],
        [None, None, None, "a comment on a row with no type"],
        ["text", "a_field", "甲", "fill in later", "n1", "abc123"],
        [],
        [],
        [None, "orphan", "no type: skipped"],
        ["text", "b_field", "乙"],
    ]
    choices = [["list_name", "name", "label", "media::image", "comment"],
               ["unused", "x", "X", None, "lists nobody uses are fine"],
               [None, "stray", "no list name: skipped"]]
    spec, problems, warnings = import_xlsform(write_xlsform(tmp_path / "b.xlsx", survey, choices, SETTINGS))
    assert problems == [] and warnings == []
    assert [f.key for f in spec.fields] == ["a_field", "b_field"]


# --------------------------------------------------------------------------------------------
# groups -> sections
# --------------------------------------------------------------------------------------------
def test_groups_become_sections(tmp_path: Path) -> None:
    survey = [
        [*HEAD, "hint", "relevant"],
        ["select_one yn", "has_case", "有案件吗"],
        ["begin group", "applicant", "申请人", "申请人的基本情况"],
        ["text", "person", "姓名"],
        ["begin_group", "address", "住址", None, "${has_case} = 'yes'"],
        ["text", "street", "街道", None, "${person} != ''"],
        ["end_group"],
        ["text", "phone", "电话"],
        ["end group"],
        ["Begin Group", "case", "案件", None, "${has_case} = 'yes'"],
        ["text", "cause", "案由"],
        ["END GROUP"],
        ["text", "loose", "组外字段"],
    ]
    choices = [["list_name", "name", "label"], ["yn", "yes", "是"], ["yn", "no", "否"]]
    spec, problems, warnings = import_xlsform(write_xlsform(tmp_path / "g.xlsx", survey, choices, SETTINGS))
    assert problems == []
    assert [s.model_dump(exclude_defaults=True) for s in spec.sections] == [
        {"key": "applicant", "title": {"zh": "申请人"}, "help": {"zh": "申请人的基本情况"}},
        {"key": "case", "title": {"zh": "案件"}},
    ]
    assert {f.key: f.section for f in spec.fields} == {
        "has_case": None, "person": "applicant", "street": "applicant", "phone": "applicant", "cause": "case",
        "loose": None,
    }
    # a group's relevance is carried onto every field inside it (nested: combined with the field's own)
    has_case = {"field": "has_case", "op": "equals", "value": "yes"}
    assert field_dict(spec, "street")["show_if"] == {"all": [has_case, {"field": "person", "op": "not_empty"}]}
    assert field_dict(spec, "cause")["show_if"] == has_case
    assert spec.field("phone").show_if is None
    assert any("address" in w and "applicant" in w for w in warnings)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([["end group"]], [(3, "xlsform.group_unbalanced")]),
        ([["begin group", "g1", "组"], ["text", "inside", "里"]], [(3, "xlsform.group_unclosed")]),
        ([["begin group", None, "组"], ["text", "inside", "里"], ["end group"]], [(3, "xlsform.missing_name")]),
        ([["begin group", "g1", "组"], ["end group"], ["begin group", "g1", "组"], ["end group"]],
         [(5, "xlsform.duplicate_name")]),
        ([["begin repeat", "r", "重复"], ["text", "inner", "里"], ["end repeat"]], [(3, "xlsform.repeat")]),
        ([["begin repeat", "r", "重复"], ["end group"]], [(3, "xlsform.repeat"), (4, "xlsform.group_unbalanced")]),
    ],
)
def test_group_refusals(tmp_path: Path, rows: list[list[Any]], expected: list[tuple[int, str]]) -> None:
    spec, problems, _ = import_xlsform(
        write_xlsform(tmp_path / "g.xlsx", [HEAD, ["text", "first", "一"], *rows], None, SETTINGS))
    assert spec is None
    assert codes(problems) == [("survey", row, code) for row, code in expected]
    for problem in problems:
        assert_renders(problem)


# --------------------------------------------------------------------------------------------
# relevant -> show_if
# --------------------------------------------------------------------------------------------
REL_SURVEY = [
    [*HEAD, "relevant"],
    ["text", "aa", "甲"],
    ["integer", "nn", "数"],
    ["select_multiple m_list", "mm", "多选"],
    ["acknowledge", "ack", "确认"],
    ["text", "Mixed_Name", "大小写"],
]
REL_CHOICES = [["list_name", "name", "label"], ["m_list", "x", "X"], ["m_list", "z", "Z"]]


def a_is(value: Any, op: str = "equals", key: str = "aa") -> dict[str, Any]:
    return {"field": key, "op": op, "value": value}


@pytest.mark.parametrize(
    ("expr", "show_if"),
    [
        ("${aa} = 'x'", a_is("x")),
        ('${aa}="x"', a_is("x")),
        ("${aa} != 'x'", a_is("x", "not_equals")),
        ("${nn} > 5", a_is(5, "gt", "nn")),
        ("${nn} < 5", a_is(5, "lt", "nn")),
        ("${nn} >= 2.5", a_is(2.5, "gte", "nn")),
        ("${nn} <= -1", a_is(-1, "lte", "nn")),
        ("5 < ${nn}", a_is(5, "gt", "nn")),
        ("'x' = ${aa}", a_is("x")),
        ("${aa} = '5'", a_is("5")),
        ("${aa} = ''", {"field": "aa", "op": "empty"}),
        ("${aa} != ''", {"field": "aa", "op": "not_empty"}),
        ("selected(${mm}, 'x')", a_is("x", "contains", "mm")),
        ("selected( ${mm} , \"z\" )", a_is("z", "contains", "mm")),
        ("${ack} = 'OK'", a_is(True, key="ack")),
        ("${ack} = true()", a_is(True, key="ack")),
        ("${aa} = false()", a_is(False)),
        ("${Mixed_Name} = 'x'", a_is("x", key="mixed_name")),
        ("${aa} = 'x' and ${nn} > 1", {"all": [a_is("x"), a_is(1, "gt", "nn")]}),
        ("${aa} = 'x' or ${aa} = 'y'", {"any": [a_is("x"), a_is("y")]}),
        ("${aa} = 'x' and ${nn} > 1 or ${nn} < 0",
         {"any": [{"all": [a_is("x"), a_is(1, "gt", "nn")]}, a_is(0, "lt", "nn")]}),
        ("${aa} = 'x' and (${nn} > 1 or ${nn} < 0)",
         {"all": [a_is("x"), {"any": [a_is(1, "gt", "nn"), a_is(0, "lt", "nn")]}]}),
        ("not(${aa} = 'x')", {"not": a_is("x")}),
        ("not(selected(${mm}, 'x') or ${nn} = 0)", {"not": {"any": [a_is("x", "contains", "mm"), a_is(0, key="nn")]}}),
        ("((${aa} = 'x'))", a_is("x")),
        ("${aa} = 'x'\n  and\n${aa} != 'y'", {"all": [a_is("x"), a_is("y", "not_equals")]}),
        ("${aa} = 'x' AND ${nn} = 1", {"all": [a_is("x"), a_is(1, key="nn")]}),
    ],
)
def test_relevant_maps_to_show_if(tmp_path: Path, expr: str, show_if: dict[str, Any]) -> None:
    survey = [*REL_SURVEY, ["text", "target", "目标", expr]]
    spec = ok(import_xlsform(write_xlsform(tmp_path / "r.xlsx", survey, REL_CHOICES, SETTINGS)))
    assert field_dict(spec, "target")["show_if"] == show_if


@pytest.mark.parametrize(
    ("expr", "code"),
    [
        ("count-selected(${mm}) > 1", "xlsform.unsupported_function"),
        ("string-length(${aa}) > 0", "xlsform.unsupported_function"),
        ("${nn} > today()", "xlsform.unsupported_function"),
        ("${aa} = ${nn}", "xlsform.bad_expression"),
        ("${nn} + 1 > 2", "xlsform.bad_expression"),
        ("${aa} = 'x' and", "xlsform.bad_expression"),
        ("${aa} = 'x')", "xlsform.bad_expression"),
        ("${aa} == 'x'", "xlsform.bad_expression"),
        (". > 1", "xlsform.bad_expression"),
        ("${aa} = 'unclosed", "xlsform.bad_expression"),
        ("${nowhere} = 'x'", "xlsform.unknown_reference"),
    ],
)
def test_relevant_refusals(tmp_path: Path, expr: str, code: str) -> None:
    survey = [*REL_SURVEY, ["text", "target", "目标", expr]]
    spec, problems, _ = import_xlsform(write_xlsform(tmp_path / "r.xlsx", survey, REL_CHOICES, SETTINGS))
    assert spec is None
    assert codes(problems) == [("survey", 7, code)]
    assert problems[0].params["column"] == "relevant"
    assert_renders(problems[0])


# --------------------------------------------------------------------------------------------
# constraint -> min / max / length / pattern
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ftype", "expr", "rules", "warned"),
    [
        ("integer", ". >= 0", {"min": 0}, False),
        ("integer", ". <= 100", {"max": 100}, False),
        ("integer", ". > 0 and . < 10", {"min": 1, "max": 9}, False),
        ("integer", "0 <= . and 100 >= .", {"min": 0, "max": 100}, False),
        ("integer", "(. >= 1) and (. <= 5)", {"min": 1, "max": 5}, False),
        ("integer", ". = 3", {"min": 3, "max": 3}, False),
        ("decimal", ". > 0.5 and . < 2", {"min": 0.5, "max": 2}, True),
        ("decimal", ". >= -10.25", {"min": -10.25}, False),
        ("text", "regex(., '^\\d{6}$')", {"pattern": "^\\d{6}$"}, False),
        ("text", "regex(., \"^it's$\")", {"pattern": "^it's$"}, False),
        ("text", "string-length(.) <= 20", {"max_length": 20}, False),
        ("text", "string-length(.) > 1 and string-length(.) < 21 and regex(., '^[a-z]+$')",
         {"min_length": 2, "max_length": 20, "pattern": "^[a-z]+$"}, False),
    ],
)
def test_constraint_maps_to_rules(tmp_path: Path, ftype: str, expr: str, rules: dict, warned: bool) -> None:
    spec, problems, warnings = one_field(tmp_path, [ftype, "val", "值", expr], header=[*HEAD, "constraint"])
    assert problems == [], [p.describe("en") for p in problems]
    got = {k: v for k, v in field_dict(spec, "val").items() if k in ("min", "max", "min_length", "max_length",
                                                                    "pattern")}
    assert got == rules
    assert (len(warnings) == 1) is warned


@pytest.mark.parametrize(
    ("expr", "code"),
    [
        (". >= 0 or . <= 5", "xlsform.bad_expression"),
        (". != 3", "xlsform.bad_expression"),
        (". <= today()", "xlsform.unsupported_function"),
        ("${other} > 0", "xlsform.bad_expression"),
        (". + 1 > 2", "xlsform.bad_expression"),
        ("regex(., 'a') and regex(., 'b')", "xlsform.bad_expression"),
        ("not(. = 1)", "xlsform.unsupported_function"),
    ],
)
def test_constraint_refusals(tmp_path: Path, expr: str, code: str) -> None:
    spec, problems, _ = one_field(tmp_path, ["integer", "val", "值", expr], header=[*HEAD, "constraint"])
    assert spec is None and codes(problems) == [("survey", 2, code)]
    assert problems[0].params["column"] == "constraint"
    assert_renders(problems[0])


def test_range_message_on_numbers_is_dropped_with_a_warning(tmp_path: Path) -> None:
    spec, problems, warnings = one_field(tmp_path, ["integer", "val", "值", ". >= 0", "不能为负"],
                                         header=[*HEAD, "constraint", "constraint_message"])
    assert problems == [] and spec.fields[0].min == 0 and spec.fields[0].pattern_message == {}
    assert len(warnings) == 1 and "constraint_message" in warnings[0]


# --------------------------------------------------------------------------------------------
# refusals: one problem per row, all at once, nothing half-imported
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("row", "header_extra", "code"),
    [
        (["begin repeat", "members", "成员"], [], "xlsform.repeat"),
        (["geopoint", "where", "位置"], [], "xlsform.unsupported_type"),
        (["geotrace", "path", "路线"], [], "xlsform.unsupported_type"),
        (["geoshape", "area", "区域"], [], "xlsform.unsupported_type"),
        (["image", "photo", "照片"], [], "xlsform.unsupported_type"),
        (["audio", "voice", "录音"], [], "xlsform.unsupported_type"),
        (["video", "clip", "视频"], [], "xlsform.unsupported_type"),
        (["file", "doc", "文件"], [], "xlsform.unsupported_type"),
        (["barcode", "code", "条码"], [], "xlsform.unsupported_type"),
        (["calculate", "total", None], [], "xlsform.unsupported_type"),
        (["range", "score", "评分"], [], "xlsform.unsupported_type"),
        (["rank", "order", "排序"], [], "xlsform.unsupported_type"),
        (["hidden", "secret", None], [], "xlsform.unsupported_type"),
        (["select_one yn or_other", "pick", "选"], [], "xlsform.unsupported_type"),
        (["integr", "typo", "错字"], [], "xlsform.unknown_type"),
        (["select_one", "no_list", "无列表"], [], "xlsform.unknown_type"),
        (["select_one nolist", "pick", "选"], [], "xlsform.missing_list"),
        (["select_one yn", "pick", "选", "${first} = 'x'"], ["choice_filter"], "xlsform.unsupported_column"),
        (["text", "twice", "二", "1 + 1"], ["calculation"], "xlsform.unsupported_column"),
        (["text", "pic", "图", "a.jpg"], ["media::image"], "xlsform.unsupported_column"),
        (["text", "first", "重名"], [], "xlsform.duplicate_name"),
        (["text", None, "无名"], [], "xlsform.missing_name"),
        (["text", "maybe", "条件必填", "${first} != ''"], ["required"], "xlsform.bad_required"),
        (["integer", "kids", "子女", "abc"], ["default"], "xlsform.bad_default"),
        (["text", "flagged", "标记", "maybe"], ["lac_sensitive"], "xlsform.bad_value"),
        (["integer", "taps", "计数", "one"], ["lac_steps"], "xlsform.bad_value"),
        (["text", "cond", "条件", "{not json"], ["lac_show_if"], "xlsform.bad_value"),
    ],
)
def test_each_refusal_names_sheet_row_and_code(tmp_path: Path, row: list[Any], header_extra: list[str],
                                               code: str) -> None:
    choices = [["list_name", "name", "label"], ["yn", "yes", "是"]]
    spec, problems, _ = one_field(tmp_path, row, header=[*HEAD, *header_extra], choices=choices,
                                  before=[["text", "first", "第一"]])
    assert spec is None
    assert codes(problems) == [("survey", 3, code)], [p.describe("en") for p in problems]
    assert problems[0].form == "test_form"
    assert_renders(problems[0])


def test_refusals_are_collected_at_once_one_per_row() -> None:
    spec, problems, _ = import_xlsform(FIXTURES / "odk_refusals.xlsx")
    assert spec is None
    assert codes(problems) == [
        ("survey", 3, "xlsform.repeat"),
        ("survey", 6, "xlsform.unsupported_type"),
        ("survey", 7, "xlsform.unsupported_type"),
        ("survey", 8, "xlsform.unsupported_type"),
        ("survey", 9, "xlsform.unsupported_type"),
        ("survey", 10, "xlsform.unsupported_type"),
        ("survey", 11, "xlsform.unsupported_type"),
        ("survey", 12, "xlsform.unsupported_column"),
        ("survey", 13, "xlsform.unsupported_function"),
        ("survey", 14, "xlsform.missing_list"),
        ("survey", 15, "xlsform.duplicate_name"),
        ("survey", 16, "xlsform.bad_required"),
    ]
    assert [p.params.get("type") for p in problems[1:7]] == ["geopoint", "image", "calculate", "range", "rank",
                                                             "barcode"]
    for p in problems:
        assert_renders(p)
    # the same workbook as plain data: no dict either
    data, problems2, _ = xlsform_to_dict(FIXTURES / "odk_refusals.xlsx")
    assert data is None and len(problems2) == len(problems)


def test_a_row_with_several_faults_gets_one_problem(tmp_path: Path) -> None:
    spec, problems, _ = one_field(tmp_path, ["geopoint", "where", "位置", "count-selected(${x}) > 1", "maybe"],
                                  header=[*HEAD, "relevant", "required"])
    assert spec is None and codes(problems) == [("survey", 2, "xlsform.unsupported_type")]


def test_references_to_a_refused_row_do_not_cascade(tmp_path: Path) -> None:
    survey = [[*HEAD, "relevant"], ["geopoint", "where", "位置"], ["text", "why", "原因", "${where} != ''"]]
    _, problems, _ = import_xlsform(write_xlsform(tmp_path / "c.xlsx", survey, None, SETTINGS))
    assert codes(problems) == [("survey", 2, "xlsform.unsupported_type")]


@pytest.mark.parametrize(
    ("choices", "row", "code"),
    [
        ([["yn", "yes", "是"], ["yn", "yes", "也是"]], 3, "xlsform.duplicate_choice"),
        ([["yn", "yes", "是"], ["yn", None, "无值"]], 3, "xlsform.choice_missing_name"),
        ([["yn", "yes", "是", "yes.png"]], 2, "xlsform.unsupported_column"),
    ],
)
def test_choice_sheet_refusals(tmp_path: Path, choices: list[list[Any]], row: int, code: str) -> None:
    sheet = [["list_name", "name", "label", "media::image"], *choices]
    spec, problems, _ = one_field(tmp_path, ["select_one yn", "pick", "选"], choices=sheet)
    assert spec is None and codes(problems) == [("choices", row, code)]
    assert_renders(problems[0])


def test_check_spec_problems_point_at_the_row(tmp_path: Path) -> None:
    survey = [
        [*HEAD, "constraint", "default", "lac_type"],
        ["text", "ok_field", "好"],
        ["integer", "range_bad", "范围", ". >= 10 and . <= 5"],
        ["select_one yn", "pick", "选", None, "maybe"],
        ["text", "weird", "怪", None, None, "hologram"],
        ["text", "x", "太短"],
    ]
    choices = [["list_name", "name", "label"], ["yn", "yes", "是"], ["yn", "no", "否"]]
    settings = [["form_id", "form_title"], ["_bad slug", "标题"]]
    spec, problems, _ = import_xlsform(write_xlsform(tmp_path / "s.xlsx", survey, choices, settings))
    assert spec is None
    assert sorted(codes(problems), key=lambda c: c[1]) == [
        ("settings", 2, "spec.slug_invalid"),
        ("survey", 3, "spec.min_gt_max"),
        ("survey", 4, "spec.default_invalid"),
        ("survey", 5, "spec.field_type_unknown"),
        ("survey", 6, "spec.field_key_invalid"),
    ]


# --------------------------------------------------------------------------------------------
# settings, slug, workbook-level refusals and size guards
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("form_id", "slug"),
    [("intake", "intake"), ("Legal Aid-Intake v2", "legal_aid_intake_v2"), ("2026 survey", "f_2026_survey"),
     ("  Spaced  ", "spaced")],
)
def test_form_id_becomes_the_slug(tmp_path: Path, form_id: str, slug: str) -> None:
    settings = [["form_id", "form_title", "version"], [form_id, "标题", "2026010101"]]
    spec = ok(import_xlsform(write_xlsform(tmp_path / "s.xlsx", [HEAD, ["text", "name", "姓名"]], None, settings)))
    assert spec.slug == slug and spec.title == {"zh": "标题"}


def test_slug_without_settings(tmp_path: Path) -> None:
    data = (FIXTURES / "odk_no_settings.xlsx").read_bytes()
    spec, problems, _ = import_xlsform(data)
    assert spec is None and codes(problems) == [(None, None, "xlsform.no_slug")]
    assert_renders(problems[0])
    spec = ok(import_xlsform(data, slug="visits"))
    assert spec.slug == "visits" and spec.title == {"zh": "visits"}
    assert [f.label for f in spec.fields] == [{"zh": "来访人", "en": "Visitor"}, {"zh": "是否解决", "en": "Resolved"}]
    # given a path, the file name serves when nothing else does
    path = tmp_path / "walk_in.xlsx"
    path.write_bytes(data)
    spec = ok(import_xlsform(path))
    assert spec.slug == "walk_in"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"this is not a workbook", "xlsform.unreadable"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "xlsform.unreadable"),  # an old .xls
        (b"PK" + b"\0" * (MAX_BYTES + 1), "xlsform.too_large"),
    ],
)
def test_unreadable_and_oversized_bytes(data: bytes, code: str) -> None:
    spec, problems, _ = import_xlsform(data)
    assert spec is None and [p.code for p in problems] == [code]
    assert_renders(problems[0])


def test_a_zip_that_is_not_a_workbook() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "hi")
    spec, problems, _ = import_xlsform(buf.getvalue())
    assert spec is None and [p.code for p in problems] == ["xlsform.unreadable"]


def test_oversized_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "big.xlsx"
    path.write_bytes(b"PK" + b"\0" * (MAX_BYTES + 10))
    _, problems, _ = import_xlsform(path)
    assert [p.code for p in problems] == ["xlsform.too_large"]
    assert problems[0].params["limit_mb"] == 10


def test_missing_survey_sheet_and_columns(tmp_path: Path) -> None:
    wb = Workbook()
    wb.active.title = "questions"
    wb.save(tmp_path / "x.xlsx")
    _, problems, _ = import_xlsform(tmp_path / "x.xlsx")
    assert [p.code for p in problems] == ["xlsform.no_survey"]
    _, problems, _ = import_xlsform(write_xlsform(tmp_path / "y.xlsx", [["name", "label"], ["a_b", "甲"]]))
    assert codes(problems) == [("survey", 1, "xlsform.missing_column")]
    assert problems[0].params["column"] == "type"
    survey = [HEAD, ["select_one yn", "pick", "选"], ["select_one other", "pick2", "选"]]
    _, problems, _ = import_xlsform(write_xlsform(tmp_path / "z.xlsx", survey, [["list", "name"], ["yn", "y"]],
                                                  SETTINGS))
    assert codes(problems) == [("choices", 1, "xlsform.missing_column")]
    assert problems[0].params["column"] == "list_name"
    assert_renders(problems[0])


def test_too_many_survey_rows(tmp_path: Path) -> None:
    rows = [HEAD] + [["text", f"f{i}", f"字段{i}"] for i in range(MAX_SURVEY_ROWS + 1)]
    _, problems, _ = import_xlsform(write_xlsform(tmp_path / "big.xlsx", rows, None, SETTINGS))
    assert codes(problems) == [("survey", None, "xlsform.too_many_rows")]
    assert problems[0].params == {"limit": MAX_SURVEY_ROWS}
    assert_renders(problems[0])


def test_too_many_choice_rows(tmp_path: Path) -> None:
    choices = [["list_name", "name", "label"]] + [["big", f"c{i}", f"选项{i}"] for i in range(MAX_CHOICE_ROWS + 1)]
    _, problems, _ = import_xlsform(
        write_xlsform(tmp_path / "big.xlsx", [HEAD, ["select_one big", "pick", "选"]], choices, SETTINGS))
    assert codes(problems) == [("choices", None, "xlsform.too_many_rows")]


# --------------------------------------------------------------------------------------------
# Kobo / ODK-shaped workbooks (committed fixtures, generated by make_fixtures.py)
# --------------------------------------------------------------------------------------------
def _fixture_module():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kobo_shaped_workbook() -> None:
    spec, problems, warnings = import_xlsform(FIXTURES / "kobo_outreach.xlsx", lang="en")
    assert problems == [], [p.describe("en") for p in problems]
    assert spec.slug == "f_2026_outreach_event" and spec.title == {"zh": "普法宣传活动"}
    assert [(s.key, s.title) for s in spec.sections] == [("event", {"zh": "活动", "en": "Event"}),
                                                        ("results", {"zh": "成效", "en": "Results"})]
    assert spec.sections[0].help == {"zh": "活动基本情况", "en": "About the event"}
    keys = [f.key for f in spec.fields]
    assert "start" not in keys and "deviceid" not in keys and len(keys) == 16
    town = spec.field("town")
    assert town.required and len(town.choices) == 200
    assert town.choices[199].model_dump(exclude_defaults=True) == {"value": "town_200",
                                                                   "label": {"zh": "镇200", "en": "Town 200"}}
    assert spec.field("place_type").required and [c.value for c in spec.field("place_type").choices] == [
        "enterprise", "village", "community", "other"]
    assert spec.field("elderly_count").section == "event"  # nested group flattened into the outer one
    assert field_dict(spec, "elderly_count")["show_if"] == {"field": "target_groups", "op": "contains",
                                                            "value": "elderly"}
    assert field_dict(spec, "consultations")["show_if"] == {"all": [
        {"field": "brochures", "op": "gt", "value": 0},
        {"any": [{"field": "town", "op": "equals", "value": "town_001"},
                 {"field": "town", "op": "equals", "value": "town_002"}]}]}
    assert field_dict(spec, "thanks")["show_if"] == {"field": "confirmed", "op": "equals", "value": True}
    assert spec.field("summary").type == "textarea" and spec.field("recorded_at").type == "datetime"
    assert spec.field("confirmed").type == "boolean"
    phone = spec.field("contact_phone")
    assert phone.pattern == "^1[3-9][0-9]{9}$" and phone.pattern_message == {"en": "11-digit mobile number"}
    assert (spec.field("hours").min, spec.field("hours").max) == (0, 24)
    assert spec.field("title").max_length == 80
    text = "\n".join(warnings)
    for meta in ("start", "end", "today", "deviceid", "username"):
        assert f"type {meta} (row" in text
    assert "nested group 'audience'" in text and "(≥ 0, ≤ 24)" in text and "'appearance'" in text
    assert "comment" not in text  # comment columns are silently ignored


def test_fixtures_match_their_generator(tmp_path: Path) -> None:
    """The committed .xlsx files are what make_fixtures.py writes today."""
    written = _fixture_module().main(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in FIXTURES.glob("*.xlsx"))
    for fresh in written:
        a = xlsform_to_dict(fresh.read_bytes(), slug="x")
        b = xlsform_to_dict((FIXTURES / fresh.name).read_bytes(), slug="x")
        assert a[0] == b[0] and codes(a[1]) == codes(b[1]) and a[2] == b[2], fresh.name


# --------------------------------------------------------------------------------------------
# export and round trip
# --------------------------------------------------------------------------------------------
def rich_spec() -> FormSpec:
    """A spec using every field type of ours and every attribute the designer offers."""
    yn = [{"value": "yes", "label": {"zh": "是", "en": "Yes"}}, {"value": "no", "label": {"zh": "否", "en": "No"}}]
    return parse_spec({
        "slug": "rich_form",
        "title": {"zh": "全字段表单", "en": "Every field"},
        "description": {"zh": "往返测试", "en": "Round trip"},
        "category": "cases",
        "parent": "outreach_event",
        "access": {"submit": ["admin", "staff"], "reveal": ["admin"]},
        "sections": [
            {"key": "people", "title": {"zh": "人员", "en": "People"}, "help": {"zh": "说明", "en": "About"}},
            {"key": "money_part", "title": {"zh": "金额"}},
            {"key": "empty_one", "title": {"zh": "空分组"}},
        ],
        "fields": [
            {"key": "intro", "type": "note", "label": {"zh": "=请先阅读", "en": "=Read first"}},
            {"key": "name", "type": "text", "label": {"zh": "姓名", "en": "Name"}, "section": "people",
             "required": True, "help": {"zh": "与证件一致", "en": "As on the ID"}, "min_length": 2,
             "max_length": 20, "pattern": "^[^0-9]+$", "pattern_message": {"zh": "不能有数字", "en": "No digits"},
             "unique": True, "default": "张三"},
            {"key": "quote", "type": "text", "label": {"zh": "引号"}, "section": "people",
             "pattern": "^[^'\"]*$"},
            {"key": "sex", "type": "select", "label": {"zh": "性别"}, "section": "people", "choices": [
                {"value": "male", "label": {"zh": "男", "en": "Male"}},
                {"value": "female", "label": {"zh": "女", "en": "Female"}},
                {"value": "unknown", "label": {"zh": "不详"}, "active": False}]},
            {"key": "doc_type", "type": "select", "label": {"zh": "证件"}, "section": "people",
             "choices": [{"value": "resident_id", "label": {"zh": "居民身份证"}}], "default": "resident_id"},
            {"key": "id_no", "type": "id_number", "label": {"zh": "身份证号"}, "section": "people",
             "sensitive": True, "sex_field": "sex", "doc_type_field": "doc_type", "required": True},
            {"key": "mobile", "type": "phone", "label": {"zh": "电话"}, "sensitive": True,
             "pattern": "^1", "pattern_message": {"zh": "手机号"}},
            {"key": "mail", "type": "email", "label": {"zh": "邮箱"}},
            {"key": "facts", "type": "textarea", "label": {"zh": "事实", "en": "Facts"}, "max_length": 2000},
            {"key": "age", "type": "integer", "label": {"zh": "年龄"}, "min": 0, "max": 120, "default": 18},
            {"key": "ratio", "type": "decimal", "label": {"zh": "比例"}, "min": 0.5, "max": 99.75,
             "default": "1.5"},
            {"key": "fee", "type": "money", "label": {"zh": "金额"}, "section": "money_part", "min": 0,
             "default": "0.00"},
            {"key": "visit_date", "type": "date", "label": {"zh": "日期"}, "section": "money_part",
             "default": "2026-03-15"},
            {"key": "visit_at", "type": "datetime", "label": {"zh": "时间"}},
            {"key": "start_time", "type": "time", "label": {"zh": "开始"}, "default": "09:30"},
            {"key": "topics", "type": "multiselect", "label": {"zh": "事项"}, "min": 1, "max": 2, "choices": [
                {"value": "labour", "label": {"zh": "劳动"}}, {"value": "family", "label": {"zh": "家庭"}},
                {"value": "other", "label": {"zh": "其他"}}], "default": ["labour", "family"]},
            {"key": "resolved", "type": "select", "label": {"zh": "解决"}, "choices": yn},
            {"key": "agreed", "type": "boolean", "label": {"zh": "同意"}, "default": False},
            {"key": "materials", "type": "checklist", "label": {"zh": "材料"}, "items": [
                {"key": "application", "label": {"zh": "申请表", "en": "Application"}, "group": "civil"},
                {"key": "judgment", "label": {"zh": "判决书"}, "group": "criminal"},
                {"key": "receipt", "label": {"zh": "收据"}}]},
            {"key": "score", "type": "rating", "label": {"zh": "评分"}, "min": 1, "max": 10},
            {"key": "phone_again", "type": "text", "label": {"zh": "再次"}, "section": "people"},
            {"key": "event", "type": "reference", "label": {"zh": "活动"}, "reference_form": "outreach_event"},
            {"key": "court", "type": "reference", "label": {"zh": "法院"}, "choice_list": "courts"},
            {"key": "point", "type": "select", "label": {"zh": "联络点"}, "choice_list": "liaison_points"},
            {"key": "points", "type": "multiselect", "label": {"zh": "多个联络点"}, "choice_list": "liaison_points"},
            {"key": "lawyer", "type": "user", "label": {"zh": "承办人"}},
            {"key": "brochures", "type": "counter", "label": {"zh": "资料"}, "steps": [1, 5, 10]},
            {"key": "taps", "type": "counter", "label": {"zh": "人次"}},
            {"key": "retired_one", "type": "text", "label": {"zh": "旧"}, "retired": True},
            # show_if of every kind
            {"key": "c_eq", "type": "text", "show_if": {"field": "resolved", "op": "equals", "value": "no"}},
            {"key": "c_ne", "type": "text", "show_if": {"field": "resolved", "op": "not_equals", "value": "no"}},
            {"key": "c_gt", "type": "text", "show_if": {"field": "age", "op": "gt", "value": 17}},
            {"key": "c_lt", "type": "text", "show_if": {"field": "age", "op": "lt", "value": 60.5}},
            {"key": "c_gte", "type": "text", "show_if": {"field": "age", "op": "gte", "value": -1}},
            {"key": "c_lte", "type": "text", "show_if": {"field": "visit_date", "op": "lte", "value": "2026-01-01"}},
            {"key": "c_empty", "type": "text", "show_if": {"field": "name", "op": "empty"}},
            {"key": "c_full", "type": "text", "show_if": {"field": "name", "op": "not_empty"}},
            {"key": "c_has", "type": "text", "show_if": {"field": "topics", "op": "contains", "value": "other"}},
            {"key": "c_bool", "type": "text", "show_if": {"field": "agreed", "op": "equals", "value": True}},
            {"key": "c_in", "type": "text", "show_if": {"field": "sex", "op": "in", "value": ["male", "female"]}},
            {"key": "c_not_in", "type": "text", "show_if": {"field": "sex", "op": "not_in", "value": ["male"]}},
            {"key": "c_quote", "type": "text", "show_if": {"field": "name", "op": "equals", "value": "O'Brien"}},
            {"key": "c_tree", "type": "text", "show_if": {"all": [
                {"any": [{"field": "resolved", "op": "equals", "value": "yes"},
                         {"not": {"field": "topics", "op": "contains", "value": "labour"}}]},
                {"all": [{"field": "age", "op": "gte", "value": 18}, {"field": "age", "op": "lt", "value": 60}]},
                {"field": "mobile", "op": "not_empty"}]}},
            {"key": "c_single", "type": "text", "show_if": {"any": [{"field": "age", "op": "gt", "value": 1}]}},
            {"key": "back_to_people", "type": "text", "label": {"zh": "回到人员"}, "section": "people"},
        ],
        "list_columns": ["name", "age"],
        "summary": ["sex", "topics"],
        "date_field": "visit_date",
        "title_field": "name",
        "workflow": {
            "initial": "open",
            "states": [{"key": "open", "label": {"zh": "待办"}}, {"key": "done", "label": {"zh": "完成"},
                                                                  "terminal": True}],
            "transitions": [{"key": "finish", "label": {"zh": "完成"}, "from": ["open"], "to": "done",
                             "roles": ["admin", "manager"], "due_days": 7, "needs_reason": True}],
        },
    })


def test_rich_spec_covers_every_field_type() -> None:
    assert {f.type for f in rich_spec().fields} == set(REGISTRY)


def test_round_trip_every_field_type() -> None:
    spec = rich_spec()
    data = export_xlsform(spec)
    back, problems, warnings = import_xlsform(data)
    assert problems == [], [p.describe("en") for p in problems]
    assert warnings == []
    assert back == spec
    assert back.to_dict() == spec.to_dict()
    # and again: an export of the import is the same workbook content
    again, _, _ = import_xlsform(export_xlsform(back))
    assert again == spec


@pytest.mark.parametrize("path", sorted(FORMS.glob("*.yaml")), ids=lambda p: p.stem)
def test_round_trip_built_in_forms(path: Path) -> None:
    spec = parse_spec(path)
    back, problems, warnings = import_xlsform(export_xlsform(spec))
    assert problems == [] and warnings == []
    assert back == spec


def _sheet_rows(data: bytes, title: str) -> list[dict[str, Any]]:
    wb = load_workbook(io.BytesIO(data), read_only=True)
    rows = list(wb[title].iter_rows(values_only=True))
    wb.close()
    header = rows[0]
    return [{h: v for h, v in zip(header, row, strict=False) if v is not None} for row in rows[1:]]


XLSFORM_TYPES = {"text", "integer", "decimal", "date", "datetime", "time", "note", "acknowledge",
                 "select_one", "select_multiple", "select_one_from_file", "select_multiple_from_file",
                 "begin group", "end group"}


def test_export_speaks_xlsform() -> None:
    data = export_xlsform(rich_spec())
    wb = load_workbook(io.BytesIO(data), read_only=True)
    assert wb.sheetnames == ["survey", "choices", "settings", "lac_settings"]
    wb.close()
    survey = _sheet_rows(data, "survey")
    for row in survey:
        head = row["type"] if row["type"] in ("begin group", "end group") else row["type"].split(" ")[0]
        assert head in XLSFORM_TYPES, row["type"]
    by_name = {r.get("name"): r for r in survey}
    assert by_name["name"]["constraint"] == ("string-length(.) >= 2 and string-length(.) <= 20 and "
                                             "regex(., '^[^0-9]+$')")
    assert by_name["name"]["label::Chinese (zh)"] == "姓名" and by_name["name"]["required"] == "yes"
    assert by_name["age"]["constraint"] == ". >= 0 and . <= 120"
    assert by_name["facts"]["appearance"] == "multiline" and "lac_type" not in by_name["facts"]
    assert by_name["agreed"]["type"] == "acknowledge"
    assert by_name["id_no"]["type"] == "text" and by_name["id_no"]["lac_type"] == "id_number"
    assert by_name["materials"]["type"] == "select_multiple materials"
    assert by_name["court"]["type"] == "select_one_from_file courts.csv"
    assert by_name["c_tree"]["relevant"] == (
        "(${resolved} = 'yes' or not(selected(${topics}, 'labour'))) and (${age} >= 18 and ${age} < 60) "
        "and ${mobile} != ''")
    assert by_name["c_bool"]["relevant"] == "${agreed} = true()"
    assert by_name["c_quote"]["relevant"] == "${name} = \"O'Brien\""
    assert "lac_show_if" not in by_name["c_tree"] and "lac_show_if" in by_name["c_in"]
    assert by_name["intro"]["label::Chinese (zh)"] == "=请先阅读"  # text, not a formula
    groups = [r["name"] for r in survey if r["type"] == "begin group"]
    assert groups == ["people", "money_part", "empty_one"]
    assert by_name["back_to_people"]["lac_section"] == "people"
    settings = _sheet_rows(data, "settings")[0]
    assert settings == {"form_id": "rich_form", "form_title": "全字段表单", "default_language": "Chinese (zh)"}


def test_plain_spec_exports_a_clean_kobo_file() -> None:
    spec = parse_spec({"slug": "simple", "title": "简单", "fields": [
        {"key": "who", "type": "text", "label": {"zh": "谁"}, "required": True},
        {"key": "kind", "type": "select", "label": {"zh": "类别"}, "choices": ["a", "b"]},
        {"key": "why", "type": "text", "show_if": {"field": "kind", "op": "equals", "value": "b"}}]})
    data = export_xlsform(spec)
    wb = load_workbook(io.BytesIO(data), read_only=True)
    assert wb.sheetnames == ["survey", "choices", "settings"]
    header = next(wb["survey"].iter_rows(values_only=True))
    wb.close()
    assert not any(str(h).startswith("lac_") for h in header)
    assert ok(import_xlsform(data)) == spec


def test_edits_made_in_excel_after_export_win(tmp_path: Path) -> None:
    spec = rich_spec()
    path = tmp_path / "edited.xlsx"
    path.write_bytes(export_xlsform(spec))
    wb = load_workbook(path)
    ws = wb["survey"]
    header = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(header)}
    for row in range(2, ws.max_row + 1):
        name = ws.cell(row, col["name"]).value
        if name == "c_in":  # had an exact lac_show_if beside it: the edited relevant must win
            ws.cell(row, col["relevant"]).value = "${sex} = 'female'"
        if name == "age":
            ws.cell(row, col["label::English (en)"]).value = "Age (years)"
            ws.cell(row, col["constraint"]).value = ". >= 16"
    wb.save(path)
    back, problems, warnings = import_xlsform(path, lang="en")
    assert problems == []
    assert field_dict(back, "c_in")["show_if"] == {"field": "sex", "op": "equals", "value": "female"}
    assert back.field("age").label == {"zh": "年龄", "en": "Age (years)"}
    assert (back.field("age").min, back.field("age").max) == (16, None)
    assert len(warnings) == 1 and "lac_show_if" in warnings[0]


def test_warnings_follow_the_language(tmp_path: Path) -> None:
    path = write_xlsform(tmp_path / "w.xlsx", [HEAD, ["start", "start"], ["text", "a_b", "甲"]], None, SETTINGS)
    assert "元数据" in import_xlsform(path)[2][0]
    assert "metadata" in import_xlsform(path, lang="en")[2][0]


def test_xlsform_to_dict_gives_plain_data(tmp_path: Path) -> None:
    data, problems, warnings = xlsform_to_dict(FIXTURES / "odk_no_settings.xlsx", slug="walk_in")
    assert problems == []
    assert data == {
        "slug": "walk_in", "title": {"zh": "odk_no_settings"},
        "fields": [
            {"key": "visitor", "type": "text", "label": {"zh": "来访人", "en": "Visitor"}},
            {"key": "resolved", "type": "select", "label": {"zh": "是否解决", "en": "Resolved"},
             "choices": [{"value": "yes", "label": {"zh": "是", "en": "Yes"}},
                         {"value": "no", "label": {"zh": "否", "en": "No"}}]},
        ],
    }
