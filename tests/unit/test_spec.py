"""engine.spec: parsing, checking (one coded problem per mistake, all at once), dumping (round trip)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import SpecError
from engine.fields import REGISTRY
from engine.messages import MESSAGES, render
from engine.spec import KEY_RE, check_spec, dump_spec, field_type_names, load_source, parse_spec
from models.spec import FormSpec

MARK = "#<"  # marks the line a problem must point at

HEAD = """\
slug: demo
title: 演示表单
fields:
  - key: name
    type: text
"""


def _case(code: str, text: str, field: str | None, **kw) -> pytest.param:
    return pytest.param(code, text, field, kw, id=code + ("-" + kw.pop("id") if "id" in kw else ""))


# (code, YAML text with the offending line marked, field the problem names, parse_spec kwargs)
CASES = [
    _case("spec.syntax", HEAD + "  - key: age\n   type: integer  #<\n", None),
    _case("spec.not_mapping", "- just  #<\n- a list\n", None),
    _case("spec.duplicate_key", HEAD + "    label: 姓名\n    label: 名字  #<\n", "name"),
    _case("spec.slug_missing", "title: 演示  #<\nfields: []\n", None, id="absent"),
    _case("spec.slug_invalid", "slug: Demo-Form  #<\ntitle: 演示\n", None),
    _case("spec.slug_invalid", "slug: d  #<\ntitle: 演示\n", None, id="short"),
    _case("spec.title_missing", "slug: demo\ntitle: {en: Demo}  #<\n", None),
    _case("spec.unknown_key", "slug: demo\ntitle: 演示\ncolour: red  #<\n", None),
    _case("spec.unknown_key", HEAD + "  - key: sex\n    type: select\n    choices:\n"
          "      - {value: m, lable: 男}  #<\n", "sex", id="in-choice"),
    _case("spec.field_not_mapping", HEAD + "  - just text  #<\n", None),
    _case("spec.field_key_missing", HEAD + "  - type: text  #<\n", None),
    _case("spec.field_key_invalid", HEAD + "  - key: 2nd_name  #<\n    type: text\n", "2nd_name"),
    _case("spec.field_key_invalid", HEAD + "  - key: Name  #<\n    type: text\n", "Name", id="upper"),
    _case("spec.field_key_duplicate", HEAD + "  - key: name  #<\n    type: textarea\n", "name"),
    _case("spec.field_type_missing", HEAD + "  - key: age  #<\n    label: 年龄\n", "age"),
    _case("spec.field_type_unknown", HEAD + "  - key: age\n    type: number  #<\n", "age"),
    _case("spec.field_unknown_attr", HEAD + "    lable: 姓名  #<\n", "name"),
    _case("spec.attr_not_allowed", HEAD + "  - key: age\n    type: integer\n    choices: [a, b]  #<\n", "age"),
    _case("spec.attr_not_allowed", HEAD + "  - key: intro\n    type: note\n    required: true  #<\n", "intro",
          id="required-on-note"),
    _case("spec.choices_missing", HEAD + "  - key: sex\n    type: select\n    choices: []  #<\n", "sex"),
    _case("spec.choices_both", HEAD + "  - key: sex\n    type: select\n    choices: [m, f]\n"
          "    choice_list: sexes  #<\n", "sex"),
    _case("spec.choice_duplicate", HEAD + "  - key: sex\n    type: multiselect\n    choices:\n      - m\n"
          "      - m  #<\n", "sex"),
    _case("spec.too_many_choices", HEAD + "  - key: pick\n    type: select\n    choices: ["
          + ", ".join(f"v{i}" for i in range(2001)) + "]  #<\n", "pick"),
    _case("spec.choice_list_unknown", HEAD + "  - key: court\n    type: select\n    choice_list: courtz  #<\n",
          "court", known_lists={"courts"}),
    _case("spec.items_missing", HEAD + "  - key: files  #<\n    type: checklist\n", "files"),
    _case("spec.item_duplicate", HEAD + "  - key: files\n    type: checklist\n    items:\n"
          "      - {key: id_copy, label: 身份证复印件}\n      - {key: id_copy, label: 户口本}  #<\n", "files"),
    _case("spec.min_gt_max", HEAD + "  - key: age\n    type: integer\n    min: 120  #<\n    max: 18\n", "age"),
    _case("spec.length_min_gt_max", HEAD + "    min_length: 10  #<\n    max_length: 2\n", "name"),
    _case("spec.pattern_invalid", HEAD + "    pattern: '([a-z'  #<\n", "name"),
    _case("spec.default_invalid", HEAD + "  - key: age\n    type: integer\n    max: 150\n    default: 200  #<\n",
          "age"),
    _case("spec.default_invalid", HEAD + "  - key: sex\n    type: select\n    choices: [m, f]\n"
          "    default: x  #<\n", "sex", id="not-a-choice"),
    _case("spec.default_invalid", HEAD + "  - key: day\n    type: date\n    default: 2026-02-30  #<\n", "day",
          id="date"),
    _case("spec.show_if_malformed", HEAD + "  - key: age\n    type: integer\n"
          "    show_if: {all: [], any: []}  #<\n", "age"),
    _case("spec.show_if_bad_op", HEAD + "  - key: age\n    type: integer\n    show_if:\n      field: name\n"
          "      op: like  #<\n      value: x\n", "age"),
    _case("spec.show_if_missing_value", HEAD + "  - key: age\n    type: integer\n    show_if:\n      field: name\n"
          "      op: equals  #<\n", "age", id="no-value"),
    _case("spec.show_if_missing_value", HEAD + "  - key: age\n    type: integer\n    show_if:\n      field: name\n"
          "      op: in\n      value: x  #<\n", "age", id="in-needs-list"),
    _case("spec.show_if_unknown_field", HEAD + "  - key: age\n    type: integer\n"
          "    show_if: {field: nmae, op: not_empty}  #<\n", "age"),
    _case("spec.show_if_self", HEAD + "  - key: age\n    type: integer\n"
          "    show_if: {not: {field: age, op: empty}}  #<\n", "age"),
    _case("spec.show_if_retired", HEAD + "  - key: old\n    type: text\n    retired: true\n  - key: age\n"
          "    type: integer\n    show_if: {field: old, op: not_empty}  #<\n", "age"),
    _case("spec.show_if_cycle", HEAD + "  - key: aa\n    type: text\n    show_if: {field: bb, op: empty}  #<\n"
          "  - key: bb\n    type: text\n    show_if: {any: [{field: name, op: empty}, {field: aa, op: empty}]}\n",
          "aa"),
    _case("spec.section_unknown", "slug: demo\ntitle: 演示\nsections:\n  - {key: main, title: 基本}\nfields:\n"
          "  - key: name\n    type: text\n    section: mian  #<\n", "name"),
    _case("spec.section_duplicate", "slug: demo\ntitle: 演示\nsections:\n  - {key: main, title: 基本}\n"
          "  - {key: main, title: 其他}  #<\n", None),
    _case("spec.workflow_initial_unknown", HEAD + "workflow:\n  initial: new  #<\n  states: [{key: applied}]\n",
          None),
    _case("spec.transition_state_unknown", HEAD + "workflow:\n  initial: applied\n  states: [applied, done]\n"
          "  transitions:\n    - key: finish\n      from: applied\n      to: closed  #<\n", None),
    _case("spec.state_duplicate", HEAD + "workflow:\n  initial: applied\n  states:\n    - key: applied\n"
          "    - key: applied  #<\n", None),
    _case("spec.transition_duplicate", HEAD + "workflow:\n  initial: a1\n  states: [a1, b1]\n  transitions:\n"
          "    - {key: go, from: a1, to: b1}\n    - {key: go, from: b1, to: a1}  #<\n", None),
    _case("spec.transition_role_unknown", HEAD + "workflow:\n  initial: a1\n  states: [a1, b1]\n  transitions:\n"
          "    - key: go\n      from: a1\n      to: b1\n      roles: [boss]  #<\n", None),
    _case("spec.due_days_negative", HEAD + "workflow:\n  initial: a1\n  states: [a1, b1]\n  transitions:\n"
          "    - key: go\n      from: a1\n      to: b1\n      due_days: -3  #<\n", None),
    _case("spec.keep_due_with_due_days", HEAD + "workflow:\n  initial: a1\n  states: [a1, b1]\n  transitions:\n"
          "    - key: go\n      from: a1\n      to: b1\n      due_days: 7\n      keep_due: true  #<\n", None),
    _case("spec.pause_with_due_days", HEAD + "workflow:\n  initial: a1\n  states: [a1, b1]\n  transitions:\n"
          "    - key: go\n      from: a1\n      to: b1\n      due_days: 15\n      pause: true  #<\n", None),
    _case("spec.needs_field_unknown", HEAD + "workflow:\n  initial: a1\n  states: [a1, b1]\n  transitions:\n"
          "    - key: go\n      from: a1\n      to: b1\n      needs_field: lawyer  #<\n", None),
    _case("spec.access_role_unknown", HEAD + "access:\n  submit: [staff]\n  view:\n    - admin\n"
          "    - everyone  #<\n", None),
    _case("spec.parent_unknown", HEAD + "parent: outreach  #<\n", None, known_forms={"outreach_event"}),
    _case("spec.list_column_unknown", HEAD + "list_columns: [name, phone]  #<\n", None),
    _case("spec.summary_unknown", HEAD + "summary:\n  - nmae  #<\n", None),
    _case("spec.date_field_unknown", HEAD + "date_field: name  #<\n", None),
    _case("spec.title_field_unknown", HEAD + "title_field: title  #<\n", None),
    _case("spec.steps_invalid", HEAD + "  - key: leaflets\n    type: counter\n    steps: [1, 0, 5]  #<\n", "leaflets"),
    _case("spec.reference_target_missing", HEAD + "  - key: event  #<\n    type: reference\n", "event"),
    _case("spec.reference_form_unknown", HEAD + "  - key: event\n    type: reference\n"
          "    reference_form: outreach  #<\n", "event", known_forms={"outreach_event"}),
    _case("spec.sex_field_invalid", HEAD + "  - key: id_no\n    type: id_number\n    sex_field: name  #<\n", "id_no"),
    _case("spec.doc_type_field_invalid", HEAD + "  - key: id_no\n    type: id_number\n"
          "    doc_type_field: doc  #<\n", "id_no"),
    _case("spec.schema", HEAD + "    max_length: many  #<\n", "name"),
    _case("spec.schema", HEAD + "    required: [yes]  #<\n", "name", id="bool"),
    _case("spec.schema", "slug: demo\ntitle: 演示\ncategory: [a, b]  #<\n", None, id="top-level"),
]


def _marked_line(text: str) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if MARK in line]
    assert len(lines) == 1, "each case marks exactly one line"
    return lines[0]


@pytest.mark.parametrize(("code", "text", "field", "kw"), CASES)
def test_each_mistake_has_its_code_field_and_line(code, text, field, kw):
    with pytest.raises(SpecError) as info:
        parse_spec(text, **kw)
    err = info.value
    assert err.code == "spec.invalid"
    assert [p.code for p in err.problems] == [code], err.describe("en")
    problem = err.problems[0]
    assert problem.field == field
    assert problem.row == _marked_line(text)
    if code not in ("spec.syntax", "spec.not_mapping", "spec.slug_missing", "spec.slug_invalid"):
        assert problem.form == "demo"


@pytest.mark.parametrize(("code", "text", "field", "kw"), CASES)
def test_messages_render_in_both_languages_without_placeholders(code, text, field, kw):
    with pytest.raises(SpecError) as info:
        parse_spec(text, **kw)
    problem = info.value.problems[0]
    zh, en = problem.message("zh"), problem.message("en")
    assert zh and en and zh != en
    assert re.search(r"[\u4e00-\u9fff]", zh), "the zh text is Chinese"
    for text_ in (zh, en, info.value.describe("zh"), info.value.describe("en")):
        assert not re.search(r"\{[a-z_]+\}", text_), f"unfilled placeholder in {text_!r}"
        assert "pydantic" not in text_ and "Input should" not in text_


TEXT_ONLY = ("spec.syntax", "spec.duplicate_key")  # only text can be unreadable or repeat a key


@pytest.mark.parametrize(("code", "text", "field", "kw"), [c for c in CASES if c.values[0] not in TEXT_ONLY])
def test_same_mistakes_from_a_dict_name_code_and_field_without_lines(code, text, field, kw):
    data, _, load_problems = load_source(text)
    assert load_problems == []
    spec, problems = check_spec(data, **kw)
    assert spec is None
    assert [p.code for p in problems] == [code]
    assert problems[0].field == field
    assert problems[0].row is None


def test_every_spec_code_has_a_case_and_both_languages():
    codes = {c for c in MESSAGES if c.startswith("spec.")}
    tested = {c.values[0] for c in CASES} | {"spec.invalid", "spec.file_unreadable", "spec.format_unknown"}
    assert codes - tested == set()
    for code in codes:
        assert MESSAGES[code]["zh"] and MESSAGES[code]["en"]
        assert MESSAGES[code]["zh"] != MESSAGES[code]["en"]


def test_unknown_type_message_lists_the_registry_types():
    with pytest.raises(SpecError) as info:
        parse_spec(HEAD + "  - key: age\n    type: number\n")
    msg = info.value.problems[0].message("en")
    for name in REGISTRY:
        assert name in msg
    assert field_type_names() == tuple(REGISTRY)


def test_unknown_attr_suggests_the_closest_setting():
    with pytest.raises(SpecError) as info:
        parse_spec(HEAD + "    requried: true\n")
    assert "required" in info.value.problems[0].message("zh")
    assert "did you mean 'required'" in info.value.problems[0].message("en")


MULTI = """\
slug: Bad Slug
title: {en: only english}
fields:
  - key: age
    type: integer
    min: 9
    max: 1
  - key: age
    type: text
  - key: kind
    type: select
  - key: kinds
    type: select
    choices: [a, a]
  - key: cond
    type: text
    show_if: {field: ghost, op: equals, value: 1}
  - key: when
    type: widget
list_columns: [nobody]
workflow:
  initial: nowhere
  states: [a1]
access: {view: [martian]}
"""


def test_a_spec_with_many_mistakes_reports_them_all_at_once():
    with pytest.raises(SpecError) as info:
        parse_spec(MULTI)
    got = sorted((p.code, p.field, p.row) for p in info.value.problems)
    assert got == sorted([
        ("spec.slug_invalid", None, 1),
        ("spec.title_missing", None, 2),
        ("spec.min_gt_max", "age", 6),
        ("spec.field_key_duplicate", "age", 8),
        ("spec.choices_missing", "kind", 10),
        ("spec.choice_duplicate", "kinds", 14),
        ("spec.show_if_unknown_field", "cond", 17),
        ("spec.field_type_unknown", "when", 19),
        ("spec.list_column_unknown", None, 20),
        ("spec.workflow_initial_unknown", None, 22),
        ("spec.access_role_unknown", None, 24),
    ])
    assert info.value.params["count"] == 11
    rows = [p.row for p in info.value.problems]
    assert rows == sorted(rows), "problems are listed in source order"
    text = info.value.describe("zh")
    assert "11" in text and "Bad Slug" in text


def test_a_field_with_a_bad_setting_still_has_its_other_settings_checked():
    with pytest.raises(SpecError) as info:
        parse_spec(HEAD + "    max_length: many\n    pattern: '(['\n")
    assert sorted(p.code for p in info.value.problems) == ["spec.pattern_invalid", "spec.schema"]


def test_json_text_errors_name_the_line():
    with pytest.raises(SpecError) as info:
        parse_spec('{\n  "slug": "demo",\n  "title": \n}', fmt="json")
    assert [(p.code, p.row) for p in info.value.problems] == [("spec.syntax", 4)]


def test_json_text_problems_name_the_line_of_the_field():
    text = json.dumps({"slug": "demo", "title": "演示", "fields": [
        {"key": "name", "type": "text"}, {"key": "age", "type": "integer", "min": 5, "max": 1}]}, indent=2)
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    problem = info.value.problems[0]
    assert (problem.code, problem.field) == ("spec.min_gt_max", "age")
    assert text.splitlines()[problem.row - 1].strip().startswith('"min"')


# --------------------------------------------------------------------------------------------
# Reading: shorthands, scalars, files
# --------------------------------------------------------------------------------------------
def test_plain_text_labels_and_option_shorthands():
    spec = parse_spec("""\
slug: demo
title: 演示
fields:
  - key: sex
    type: select
    label: 性别
    help: 按证件填写
    choices: [男, 女]
  - key: files
    type: checklist
    items: [身份证]
  - key: leaflets
    type: counter
workflow:
  initial: applied
  states: [applied, closed]
  transitions:
    - {key: close, from: applied, to: closed}
""")
    assert spec.title == {"zh": "演示"}
    sex = spec.field("sex")
    assert sex.label == {"zh": "性别"} and sex.help == {"zh": "按证件填写"}
    assert [(c.value, c.label) for c in sex.choices] == [("男", {"zh": "男"}), ("女", {"zh": "女"})]
    assert spec.field("files").items[0].key == "身份证"
    assert spec.field("leaflets").steps == [1], "counters tap by 1 unless told"
    assert spec.workflow.transitions[0].from_ == ["applied"]
    assert [s.key for s in spec.workflow.states] == ["applied", "closed"]


def test_yaml_words_and_times_stay_text():
    spec = parse_spec("""\
slug: demo
title: 演示
fields:
  - key: answer
    type: select
    choices: [yes, no, on, off, 1e5, 007]
    default: no
  - key: start
    type: time
    default: 10:30
  - key: day
    type: date
    default: 2026-03-15
  - key: flag
    type: boolean
    default: false
""")
    assert [c.value for c in spec.field("answer").choices] == ["yes", "no", "on", "off", "1e5", "007"]
    assert spec.field("answer").default == "no"
    assert spec.field("start").default == "10:30"
    assert spec.field("day").default == "2026-03-15"
    assert spec.field("flag").default is False


def test_files(tmp_path: Path):
    spec = parse_spec(HEAD)
    (tmp_path / "a.yaml").write_text(dump_spec(spec, "yaml"), encoding="utf-8")
    (tmp_path / "a.yml").write_text("\ufeff" + dump_spec(spec, "yaml"), encoding="utf-8")
    (tmp_path / "a.json").write_text(dump_spec(spec, "json"), encoding="utf-8")
    for name in ("a.yaml", "a.yml", "a.json"):
        assert parse_spec(tmp_path / name) == spec
    (tmp_path / "a.txt").write_text(HEAD, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        parse_spec(tmp_path / "a.txt")
    assert info.value.problems[0].code == "spec.format_unknown"
    with pytest.raises(SpecError) as info:
        parse_spec(tmp_path / "missing.yaml")
    assert info.value.problems[0].code == "spec.file_unreadable"
    (tmp_path / "bad.yaml").write_bytes(b"slug: \xff\xfe\n")
    with pytest.raises(SpecError) as info:
        parse_spec(tmp_path / "bad.yaml")
    assert info.value.problems[0].code == "spec.file_unreadable"


def test_check_spec_accepts_a_formspec_and_defaults_are_checked_with_the_field_types():
    spec = parse_spec(HEAD + "  - key: fee\n    type: money\n    default: '12.50'\n  - key: ok\n    type: boolean\n"
                      "    default: true\n  - key: tags\n    type: multiselect\n    choices: [a, b]\n"
                      "    default: [a]\n")
    again, problems = check_spec(spec)
    assert problems == [] and again == spec
    _, problems = check_spec({**spec.to_dict(), "fields": [
        {"key": "tags", "type": "multiselect", "choices": ["a", "b"], "default": ["c"]}]})
    assert [p.code for p in problems] == ["spec.default_invalid"]


def test_known_lists_and_forms_are_only_checked_when_given():
    text = HEAD + "  - key: court\n    type: select\n    choice_list: courts\nparent: outreach_event\n"
    assert parse_spec(text).parent == "outreach_event"
    with pytest.raises(SpecError) as info:
        parse_spec(text, known_lists=set(), known_forms=set())
    assert sorted(p.code for p in info.value.problems) == ["spec.choice_list_unknown", "spec.parent_unknown"]


def test_sections_are_optional_but_checked_when_declared():
    assert parse_spec(HEAD + "    section: anything\n").field("name").section == "anything"


def test_id_number_links_to_select_fields():
    spec = parse_spec(HEAD + "  - key: sex\n    type: select\n    choices: [男, 女]\n  - key: doc\n    type: select\n"
                      "    choices: [id_card, passport]\n  - key: id_no\n    type: id_number\n    sex_field: sex\n"
                      "    doc_type_field: doc\n    sensitive: true\n")
    assert spec.field("id_no").sex_field == "sex"


def test_key_rule():
    assert KEY_RE.match("ab") and KEY_RE.match("a" * 64) and KEY_RE.match("a_1")
    assert not any(KEY_RE.match(k) for k in ("a", "a" * 65, "1a", "_a", "aB", "a-b", "姓名", "a b"))


# --------------------------------------------------------------------------------------------
# Round trip
# --------------------------------------------------------------------------------------------
RICH = {
    "slug": "rich_form",
    "title": {"zh": "全部类型", "en": "Every type"},
    "description": {"zh": "第一行\n第二行：含冒号、# 号和 'quotes'\n", "en": "Line one\n  indented"},
    "category": "cases",
    "access": {"submit": ["admin", "staff"], "view": ["admin", "manager", "viewer"], "reveal": ["admin"]},
    "sections": [{"key": "main", "title": "基本信息"}, {"key": "more", "title": {"zh": "其他", "en": "More"},
                                                      "help": "选填"}],
    "parent": "outreach_event",
    "list_columns": ["name", "sex", "fee"],
    "summary": ["sex", "topics"],
    "date_field": "day",
    "title_field": "name",
    "fields": [
        {"key": "name", "type": "text", "label": {"zh": "姓名", "en": "Name"}, "section": "main", "required": True,
         "max_length": 50, "min_length": 2, "pattern": r"^[\u4e00-\u9fa5A-Za-z·]+$",
         "pattern_message": "只能填写汉字或字母", "unique": True},
        {"key": "bio", "type": "textarea", "label": "简介", "help": {"zh": "多行", "en": "Lines"}, "section": "more",
         "default": "第一行\n第二行"},
        {"key": "age", "type": "integer", "label": "年龄", "min": 0, "max": 150, "default": 30},
        {"key": "ratio", "type": "decimal", "label": "比例", "min": 0.5, "max": 1e20, "default": "0.75"},
        {"key": "fee", "type": "money", "label": "费用", "min": 0, "default": "1234.50"},
        {"key": "day", "type": "date", "label": "日期", "default": "2026-03-15"},
        {"key": "at", "type": "datetime", "label": "时间", "default": "2026-03-15T10:30:00+08:00"},
        {"key": "start", "type": "time", "label": "开始", "default": "10:30"},
        {"key": "sex", "type": "select", "label": "性别", "required": True, "default": "no",
         "choices": [{"value": "yes", "label": "是"}, {"value": "no", "label": {"zh": "否", "en": "No"}},
                     {"value": "null", "label": "~"}, {"value": "1e5", "label": "a: b, c"},
                     {"value": "007", "label": " leading", "active": False}, {"value": "true", "label": "#hash"},
                     {"value": "2026-01-01", "label": "[x]"}]},
        {"key": "topics", "type": "multiselect", "label": "事项", "choices": ["婚姻", "劳动", "10:30"],
         "default": ["婚姻"], "min": 1, "max": 2, "show_if": {"all": [
             {"field": "sex", "op": "in", "value": ["yes", "no"]},
             {"not": {"field": "age", "op": "lt", "value": 18}},
             {"any": [{"field": "name", "op": "not_empty"}, {"field": "ok", "op": "equals", "value": True}]}]}},
        {"key": "ok", "type": "boolean", "label": "同意", "default": False},
        {"key": "files", "type": "checklist", "label": "材料",
         "items": [{"key": "id_copy", "label": "身份证复印件", "group": "civil"}, {"key": "proof", "label": "证明"}]},
        {"key": "score", "type": "rating", "label": "评分", "default": 5},
        {"key": "phone", "type": "phone", "label": "电话", "sensitive": True},
        {"key": "email", "type": "email", "label": "邮箱"},
        {"key": "doc", "type": "select", "label": "证件类型", "choices": ["id_card", "passport"]},
        {"key": "id_no", "type": "id_number", "label": "身份证号", "sensitive": True, "unique": True,
         "sex_field": "sex", "doc_type_field": "doc"},
        {"key": "event", "type": "reference", "label": "活动", "reference_form": "outreach_event"},
        {"key": "point", "type": "reference", "label": "联络点", "choice_list": "liaison_points"},
        {"key": "court", "type": "select", "label": "法院", "choice_list": "courts"},
        {"key": "handler", "type": "user", "label": "经办人"},
        {"key": "intro", "type": "note", "label": "说明：请如实填写", "help": "注意"},
        {"key": "leaflets", "type": "counter", "label": "宣传资料", "steps": [1, 5, 10]},
        {"key": "old_note", "type": "text", "label": "旧字段", "retired": True},
    ],
    "workflow": {
        "initial": "applied",
        "states": [{"key": "applied", "label": "申请"}, {"key": "accepted", "label": "受理"},
                   {"key": "closed", "label": "结案", "terminal": True}],
        "transitions": [
            {"key": "accept", "label": "受理", "from": ["applied"], "to": "accepted", "due_days": 7,
             "roles": ["manager"], "needs_field": "handler"},
            {"key": "wait", "from": "accepted", "to": "accepted", "pause": True, "needs_reason": True},
            {"key": "recheck", "from": "accepted", "to": "accepted", "keep_due": True},
            {"key": "close", "from": ["applied", "accepted"], "to": "closed"},
        ],
    },
}


def test_keep_due_with_due_days_names_form_and_step_and_keep_due_with_pause_is_accepted():
    wf = "workflow:\n  initial: a1\n  states: [a1, b1]\n  transitions:\n"
    with pytest.raises(SpecError) as info:
        parse_spec(HEAD + wf + "    - {key: go, from: a1, to: b1, due_days: 0, keep_due: true}\n")
    (problem,) = info.value.problems
    assert (problem.code, problem.form, problem.params["transition"]) == ("spec.keep_due_with_due_days", "demo", "go")
    assert "「go」" in problem.message("zh") and "0" in problem.message("zh")
    assert "'go'" in problem.message("en") and "demo" in problem.describe("en")
    # keep_due: false with due_days is just a limit; keep_due with pause is redundant, not an error
    spec = parse_spec(HEAD + wf + "    - {key: go, from: a1, to: b1, due_days: 7, keep_due: false}\n"
                      "    - {key: wait, from: b1, to: b1, pause: true, keep_due: true}\n")
    go, wait = spec.workflow.transitions
    assert (go.due_days, go.keep_due) == (7, False) and wait.pause and wait.keep_due
    assert "keep_due" not in spec.to_dict()["workflow"]["transitions"][0]  # the default is not stored


def test_rich_spec_covers_every_field_type():
    assert {f["type"] for f in RICH["fields"]} == set(REGISTRY)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_round_trip_is_exact(fmt):
    spec = parse_spec(RICH, known_lists={"liaison_points", "courts"}, known_forms={"outreach_event"})
    text = dump_spec(spec, fmt)
    again = parse_spec(text)
    assert again == spec
    assert parse_spec(text, fmt=fmt) == spec
    assert dump_spec(again, fmt) == text, "dumping is stable"


def test_yaml_dump_is_readable():
    text = dump_spec(parse_spec(RICH), "yaml")
    assert "全部类型" in text and "\\u5168" not in text, "unicode is written as is"
    assert text.startswith("slug: rich_form\ntitle: {zh: 全部类型, en: Every type}\n")
    assert "description:\n  zh: |\n    第一行\n" in text, "multi-line text is a block"
    assert "steps: [1, 5, 10]" in text
    assert "\n  - key: name\n    type: text\n" in text
    json_text = dump_spec(parse_spec(RICH), "json")
    assert "全部类型" in json_text and '\n  "slug": "rich_form"' in json_text
    with pytest.raises(ValueError):
        dump_spec(parse_spec(RICH), "xml")


_texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(label=_texts, values=st.lists(_texts.filter(lambda s: s != ""), min_size=1, max_size=5, unique=True),
       help_=_texts)
def test_any_text_round_trips(label, values, help_):
    data = {"slug": "demo", "title": {"zh": label or "x", "en": help_}, "fields": [
        {"key": "pick", "type": "select", "label": {"zh": label, "en": help_},
         "choices": [{"value": v, "label": v} for v in values], "default": values[0]},
        {"key": "note", "type": "text", "help": help_, "pattern_message": label}]}
    spec = parse_spec(data)
    for fmt in ("yaml", "json"):
        assert parse_spec(dump_spec(spec, fmt)) == spec


# --------------------------------------------------------------------------------------------
# Never raises, never leaks pydantic
# --------------------------------------------------------------------------------------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_setting = st.sampled_from(
    ["type", "label", "choices", "items", "min", "max", "min_length", "pattern", "show_if", "steps", "default",
     "section", "required", "sex_field", "key", "reference_form", "retired"]
)


@settings(max_examples=300, deadline=None)
@given(field_index=st.integers(0, len(RICH["fields"]) - 1), setting=_setting, value=_json,
       top=st.sampled_from(["slug", "title", "workflow", "access", "sections", "fields", "summary", "parent"]),
       top_value=_json, which=st.booleans())
def test_garbage_gives_coded_problems_never_an_exception(field_index, setting, value, top, top_value, which):
    data = json.loads(json.dumps(RICH))
    if which:
        data["fields"][field_index][setting] = value
    else:
        data[top] = top_value
    spec, problems = check_spec(data)
    assert (spec is None) == bool(problems)
    for p in problems:
        assert p.code in MESSAGES, p.code
        for lang in ("zh", "en"):
            text = p.message(lang)
            assert not re.search(r"\{[a-z_]+\}", text), text
            assert "Input should" not in text and "pydantic" not in text
    if spec is not None:
        assert parse_spec(dump_spec(spec, "yaml")) == spec


@pytest.mark.parametrize("data", [None, [], "text", 3, {"fields": "x"}, {"slug": "ab", "fields": [None, 1, []]}])
def test_odd_top_level_data(data):
    spec, problems = check_spec(data)
    assert spec is None and problems
    assert all(render(p.code, "en") != p.code for p in problems)


def test_parse_error_names_the_form_and_counts():
    with pytest.raises(SpecError) as info:
        parse_spec({"slug": "demo", "title": "演示", "fields": [{"key": "x1", "type": "nope"}]})
    assert info.value.params == {"form": "demo", "count": 1}
    assert "[spec.field_type_unknown]" in info.value.describe("en")
    assert isinstance(parse_spec({"slug": "demo", "title": "演示"}), FormSpec)


def test_xlsx_files_are_read_as_xlsforms(tmp_path: Path):
    xlsform = pytest.importorskip("engine.xlsform")
    spec = parse_spec(HEAD + "  - key: sex\n    type: select\n    label: {zh: 性别, en: Sex}\n    choices: [男, 女]\n")
    (tmp_path / "demo.xlsx").write_bytes(xlsform.export_xlsform(spec))
    assert parse_spec(tmp_path / "demo.xlsx") == spec
    (tmp_path / "broken.xlsx").write_bytes(b"not a workbook")
    with pytest.raises(SpecError) as info:
        parse_spec(tmp_path / "broken.xlsx")
    assert info.value.problems and all(p.code in MESSAGES for p in info.value.problems)


def test_yaml_anchors_and_merge_keys_are_not_duplicates():
    spec = parse_spec("""\
slug: demo
title: 演示
fields:
  - &contact {key: phone, type: phone, label: 电话, sensitive: true}
  - <<: *contact
    key: agent_phone
    label: 代理人电话
""")
    assert [(f.key, f.type, f.sensitive, f.label["zh"]) for f in spec.fields] == [
        ("phone", "phone", True, "电话"), ("agent_phone", "phone", True, "代理人电话")]


def test_a_self_referring_yaml_alias_is_a_coded_problem():
    with pytest.raises(SpecError) as info:
        parse_spec("slug: demo\ntitle: 演示\nfields: &f\n  - *f\n")
    assert [(p.code, p.row) for p in info.value.problems] == [("spec.syntax", 3)]
