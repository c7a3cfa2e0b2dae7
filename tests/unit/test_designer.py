"""engine.designer without a browser: the grid round trip keeps everything, grid edits change only what
they show, the condition builder makes and describes conditions, check_draft puts each problem next
to its field, and the reference-list import merges a spreadsheet column."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pandas as pd
import pytest

from engine import designer as dz
from engine.conditions import evaluate
from engine.config import FORMS_DIR
from engine.errors import EngineError
from engine.spec import check_spec, parse_spec
from models.spec import Condition, FormSpec

BUILTINS = sorted(p.stem for p in Path(FORMS_DIR).glob("*.yaml"))

SPEC = {
    "slug": "grid_case",
    "title": {"zh": "表格测试", "en": "Grid test"},
    "sections": [{"key": "a", "title": {"zh": "甲"}}, {"key": "b", "title": {"zh": "乙", "en": "B"}}],
    "fields": [
        {"key": "name", "type": "text", "label": {"zh": "姓名", "en": "Name"}, "required": True, "section": "a",
         "min_length": 2, "max_length": 20, "pattern": "^[^0-9]+$",
         "pattern_message": {"zh": "不能有数字", "en": "No digits"}, "help": {"zh": "全名"}},
        {"key": "kind", "type": "select", "label": {"zh": "类别"}, "default": "b", "section": "b",
         "choices": [{"value": "a", "label": {"zh": "甲=一/二", "en": "A; first"}},
                     {"value": "old", "label": {"zh": "旧"}, "active": False},
                     {"value": "b", "label": {"zh": "b"}},
                     {"value": "c", "label": {}}]},
        {"key": "other", "type": "text", "label": {"zh": "其他说明"},
         "show_if": {"any": [{"field": "kind", "op": "equals", "value": "c"},
                             {"not": {"field": "kind", "op": "in", "value": ["a", "b"]}}]}},
        {"key": "court", "type": "select", "label": {"zh": "法院"}, "choice_list": "courts"},
        {"key": "tags", "type": "multiselect", "label": {"zh": "标签"}, "min": 1, "max": 2,
         "default": ["x", "y"], "choices": [{"value": "x", "label": {"zh": "X"}}, {"value": "y", "label": {"zh": "Y"}}]},
        {"key": "people", "type": "integer", "label": {"zh": "人数"}, "min": 0, "max": 99.5, "default": 3,
         "unique": True},
        {"key": "amount", "type": "money", "label": {"zh": "金额"}, "default": "12.50", "sensitive": True},
        {"key": "agree", "type": "boolean", "label": {"zh": "同意"}, "default": False},
        {"key": "checks", "type": "checklist", "label": {"zh": "核对"},
         "items": [{"key": "p1", "label": {"zh": "材料一", "en": "Paper 1"}, "group": "civil"},
                   {"key": "p2", "label": {"zh": "材料二"}}]},
        {"key": "taps", "type": "counter", "label": {"zh": "计数"}, "steps": [1, 5]},
        {"key": "gone", "type": "text", "label": {"zh": "旧字段"}, "retired": True},
        {"key": "idno", "type": "id_number", "label": {"zh": "身份证号"}, "sex_field": "sex", "sensitive": True},
        {"key": "sex", "type": "select", "label": {"zh": "性别"},
         "choices": [{"value": "male", "label": {"zh": "男"}}, {"value": "female", "label": {"zh": "女"}}]},
    ],
    "list_columns": ["name", "kind"],
}


def spec() -> FormSpec:
    return parse_spec(copy.deepcopy(SPEC), known_lists={"courts"})


def through_editor(rows: list[dict]) -> list[dict]:
    """What st.data_editor hands back: a DataFrame (NaN for missing numbers, numpy scalars)."""
    return pd.DataFrame(rows).to_dict("records")


def rebuilt(s: FormSpec, rows: list[dict], **kw) -> FormSpec:
    data = s.to_dict()
    data["fields"] = dz.rows_to_fields(rows, s, **kw)
    out, problems = check_spec(data)
    assert out is not None, [p.describe("en") for p in problems]
    return out


# --- the grid ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILTINS)
def test_grid_round_trip_of_every_builtin_form_keeps_everything(name):
    s = parse_spec(Path(FORMS_DIR) / f"{name}.yaml")
    assert rebuilt(s, through_editor(dz.fields_to_rows(s))) == s


def test_grid_round_trip_keeps_hidden_settings_inactive_options_and_odd_labels():
    s = spec()
    rows = dz.fields_to_rows(s, "zh")
    assert [r["key"] for r in rows] == [f.key for f in s.fields]
    assert set(dz.GRID_COLUMNS) <= set(rows[0])
    kind = rows[1]
    assert "old" not in kind["choices"]  # inactive options are not offered, so not listed
    assert kind["choices"] == r"a=甲\=一\/二/A\; first; b; c="
    assert rows[3]["choices"] == "@courts"
    assert rows[8]["choices"] == "p1=材料一/Paper 1; p2=材料二"
    assert rows[10]["retired"] is True
    assert rebuilt(s, through_editor(rows)) == s


def test_grid_edits_change_what_the_row_shows_and_keep_the_rest():
    s = spec()
    rows = dz.fields_to_rows(s)
    rows[0]["label_zh"] = "申请人姓名"
    rows[0]["required"] = False
    rows[1]["choices"] = r"a=甲\=一\/二/A\; first; b; d=丁/D"  # c removed, d added
    rows[5]["max"] = 50
    rows[5]["default"] = "7"
    rows[7]["default"] = "yes"
    rows[8]["choices"] = "p1=材料一/Paper 1; p3=材料三"
    out = rebuilt(s, rows)
    name = out.field("name")
    assert name.label == {"zh": "申请人姓名", "en": "Name"} and not name.required
    assert (name.min_length, name.max_length, name.pattern_message) == (2, 20, {"zh": "不能有数字", "en": "No digits"})
    kind = out.field("kind")
    assert [(c.value, c.active) for c in kind.choices] == [("a", True), ("old", False), ("b", True), ("d", True)]
    assert out.field("people").max == 50 and out.field("people").default == 7 and out.field("people").unique
    assert out.field("agree").default is True
    assert [(i.key, i.group) for i in out.field("checks").items] == [("p1", "civil"), ("p3", None)]
    assert out.field("other").show_if == s.field("other").show_if


def test_grid_order_column_reorders_and_blank_rows_are_ignored():
    s = spec()
    rows = dz.fields_to_rows(s)
    rows[0]["order"], rows[1]["order"] = 2, 1
    rows.append({c: None for c in dz.GRID_COLUMNS})
    rows.append({"key": "extra", "type": "date", "label_zh": "新日期", "order": math.nan})
    out = rebuilt(s, through_editor(rows))
    assert [f.key for f in out.fields][:2] == ["kind", "name"]
    assert out.fields[-1].key == "extra" and out.fields[-1].label == {"zh": "新日期"}


def test_deleting_a_published_row_retires_it_in_place_and_a_draft_only_row_goes():
    s = spec()
    rows = [r for r in dz.fields_to_rows(s) if r["key"] not in ("court", "tags")]
    out = rebuilt(s, rows, keep={"name", "kind", "other", "court"})
    assert [f.key for f in out.fields][:5] == ["name", "kind", "other", "court", "people"]
    assert out.field("court").retired and out.field("tags") is None
    assert out.field("court").choice_list == "courts"


def test_a_type_change_drops_hidden_settings_the_new_type_cannot_use():
    s = spec()
    rows = dz.fields_to_rows(s)
    rows[0]["type"] = "textarea"  # keeps lengths and pattern
    rows[5]["type"] = "decimal"
    out = rebuilt(s, rows)
    assert out.field("name").type == "textarea" and out.field("name").min_length == 2
    assert out.field("people").type == "decimal" and out.field("people").unique
    rows[0]["type"] = "date"
    fields = dz.rows_to_fields(rows, s)
    assert "min_length" not in fields[0] and "pattern_message" not in fields[0]


@pytest.mark.parametrize(("text", "expected"), [
    ("", (None, [])),
    ("@lawyers", ("lawyers", [])),
    ("a=甲/A; b=乙；c", (None, [{"value": "a", "label": {"zh": "甲", "en": "A"}},
                              {"value": "b", "label": {"zh": "乙"}}, {"value": "c", "label": {"zh": "c"}}])),
    ("=只有名称", (None, [{"value": "只有名称", "label": {"zh": "只有名称"}}])),
    ("x=/English only", (None, [{"value": "x", "label": {"en": "English only"}}])),
    (r"v=a\/b/c\=d", (None, [{"value": "v", "label": {"zh": "a/b", "en": "c=d"}}])),
])
def test_parse_choices(text, expected):
    assert dz.parse_choices(text) == expected


def test_draft_edit_helpers():
    draft = spec().to_dict()
    d = dz.add_field(draft, key="visit_day", type="date", label_zh="走访日期", after="name")
    assert [f["key"] for f in d["fields"]][:2] == ["name", "visit_day"]
    with pytest.raises(EngineError) as err:
        dz.add_field(d, key="gone", type="text")
    assert err.value.code == "designer.field_exists"  # retired keys are never reused
    with pytest.raises(EngineError):
        dz.add_field(d, key="Bad Key", type="text")
    d = dz.add_field(d, key="pick", type="checklist", choices="i1=一; i2=二")
    assert d["fields"][-1]["items"] == [{"key": "i1", "label": {"zh": "一"}}, {"key": "i2", "label": {"zh": "二"}}]
    d = dz.move_field(d, "pick", -100)
    assert d["fields"][0]["key"] == "pick"
    d = dz.remove_field(d, "pick", published={"name"})
    assert "pick" not in [f["key"] for f in d["fields"]]
    d = dz.remove_field(d, "name", published={"name"})
    assert d["fields"][0]["retired"] is True
    d = dz.restore_field(d, "name")
    assert "retired" not in d["fields"][0]
    d = dz.add_choice(d, "kind", "", "新选项", "New")
    assert d["fields"][2]["choices"][-1] == {"value": "新选项", "label": {"zh": "新选项", "en": "New"}}
    with pytest.raises(EngineError) as err:
        dz.add_choice(d, "kind", "old", "再来")
    assert err.value.code == "designer.choice_exists"
    with pytest.raises(EngineError):
        dz.add_choice(d, "court", "x", "X")  # a reference list is edited on the reference lists page
    assert draft == spec().to_dict()  # the helpers never change their input


# --- conditions ----------------------------------------------------------------------------------------
def test_condition_builder_makes_conditions_the_engine_evaluates():
    eq = dz.condition_from_parts("kind", "equals", "c")
    many = dz.condition_from_parts("people", "gte", 3)
    both = dz.combine([eq, many], "all")
    either = dz.combine([eq, many], "any")
    assert both == {"all": [{"field": "kind", "op": "equals", "value": "c"},
                            {"field": "people", "op": "gte", "value": 3}]}
    cond = Condition.model_validate(both)
    assert evaluate(cond, {"kind": "c", "people": 5}) and not evaluate(cond, {"kind": "c", "people": 1})
    assert evaluate(Condition.model_validate(either), {"kind": "a", "people": 4})
    assert dz.combine([eq]) == eq and dz.combine([]) is None
    assert dz.condition_from_parts("kind", "not_empty", "ignored") == {"field": "kind", "op": "not_empty"}
    assert dz.condition_from_parts("kind", "in", "a") == {"field": "kind", "op": "in", "value": ["a"]}
    for bad in (("", "equals", "x"), ("kind", "like", "x"), ("kind", "equals", ""), ("kind", "in", [])):
        with pytest.raises(EngineError) as err:
            dz.condition_from_parts(*bad)
        assert err.value.code == "designer.condition_incomplete"


def test_split_condition_reads_back_what_the_builder_can_edit():
    leaf = {"field": "kind", "op": "equals", "value": "c"}
    assert dz.split_condition(None) == ("all", [])
    assert dz.split_condition(leaf) == ("all", [leaf])
    assert dz.split_condition({"any": [leaf, leaf]}) == ("any", [leaf, leaf])
    assert dz.split_condition(spec().field("other").show_if) is None  # a nested not: replace only


def test_describe_condition_uses_labels_in_both_languages():
    s = spec()
    cond = {"all": [{"field": "kind", "op": "in", "value": ["a", "b"]}, {"field": "agree", "op": "equals",
                                                                       "value": True}]}
    assert dz.describe_condition(cond, s, "zh") == "「类别」是以下之一「甲=一/二」、「b」 并且 「同意」等于是"
    assert dz.describe_condition({"field": "name", "op": "empty"}, s, "en") == "'Name' is empty"
    assert dz.describe_condition(s.field("other").show_if, s, "en") == \
        "'类别' is 'c' or not ('类别' is one of 'A; first', 'b')"
    assert dz.describe_condition(None, s, "zh") == "总是显示"
    court = {"field": "court", "op": "equals", "value": "xiashan_court"}
    lists = {"courts": [{"value": "xiashan_court", "label": {"zh": "霞山区法院"}}]}
    assert dz.describe_condition(court, s, "zh", lists) == "「法院」等于「霞山区法院」"


def test_ops_follow_the_controlling_field_type():
    assert dz.ops_for({"type": "multiselect"})[0] == "contains"
    assert "gt" in dz.ops_for({"type": "date"}) and "gt" not in dz.ops_for({"type": "select"})
    assert dz.ops_for({"type": "boolean"}) == ("equals", "not_empty", "empty")


# --- checking: problems next to their fields ----------------------------------------------------------
def test_check_draft_maps_problems_to_field_keys(engine):
    from engine.access import SYSTEM
    from engine.forms import publish

    publish(engine, {"slug": "grid_case", "title": "表", "fields": [
        {"key": "name", "type": "text", "label": "姓名"}, {"key": "num", "type": "integer"}]}, actor=SYSTEM)
    draft = {"slug": "grid_case", "title": "表", "fields": [
        {"key": "name", "type": "integer", "label": "姓名"},  # type change: refused on publish
        {"key": "kind", "type": "select", "label": "类别"},  # no options
        {"key": "court", "type": "select", "choice_list": "nowhere"},
        {"key": "later", "type": "text", "show_if": {"field": "ghost", "op": "equals", "value": 1}},
        {"type": "text", "label": "没有标识"},
    ], "list_columns": ["nope"]}
    grouped = dz.group_problems(dz.check_draft(engine, draft))
    assert [p.code for p in grouped["kind"]] == ["spec.choices_missing"]
    assert [p.code for p in grouped["court"]] == ["spec.choice_list_unknown"]
    assert [p.code for p in grouped["later"]] == ["spec.show_if_unknown_field"]
    assert [p.code for p in grouped["#5"]] == ["spec.field_key_missing"]
    assert [p.code for p in grouped[None]] == ["spec.list_column_unknown"]
    draft["fields"] = draft["fields"][:1] + [{"key": "num", "type": "integer"}]
    draft.pop("list_columns")
    grouped = dz.group_problems(dz.check_draft(engine, draft))
    assert list(grouped) == ["name"] and grouped["name"][0].code == "version.type_changed"
    rows = dz.fields_to_rows(draft, "en", grouped)
    assert rows[0]["problems"].startswith("[version.type_changed] The type of field 'name' cannot change")
    assert rows[1]["problems"] == ""


# --- workflow / sections / options grids ---------------------------------------------------------------
def test_workflow_grids_round_trip_and_edit():
    s = parse_spec(Path(FORMS_DIR) / "intake.yaml")
    wf = s.to_dict()["workflow"]
    states = through_editor(dz.states_to_rows(wf))
    transitions = dz.transitions_to_rows(wf)
    assert dz.rows_to_workflow(wf["initial"], states, transitions, wf) == wf
    transitions[0]["roles"] = ["admin"]
    transitions[0]["due_days"] = 5.0
    out = dz.rows_to_workflow(wf["initial"], states, transitions, wf)
    assert out["transitions"][0]["roles"] == ["admin"] and out["transitions"][0]["due_days"] == 5
    # keep_due: a checkbox column; unticked drops the setting, ticked stores true
    review = next(r for r in transitions if r["key"] == "review")
    assert review["keep_due"] is True and review["due_days"] is None
    assert [r["keep_due"] for r in transitions].count(True) == 1
    review["keep_due"] = False
    review["due_days"] = 7.0
    out = dz.rows_to_workflow(wf["initial"], states, transitions, wf)
    assert next(t for t in out["transitions"] if t["key"] == "review") == {
        "key": "review", "label": {"zh": "开始审查", "en": "Start review"}, "from": ["accepted"],
        "to": "reviewing", "roles": ["admin", "manager", "staff"], "due_days": 7}
    review["keep_due"] = True
    review["due_days"] = None
    assert dz.rows_to_workflow(wf["initial"], states, transitions, out) == dict(wf, transitions=[
        dict(t, roles=["admin"], due_days=5) if t["key"] == "accept" else t for t in wf["transitions"]])


def test_sections_and_choices_grids():
    s = spec().to_dict()
    rows = dz.sections_to_rows(s)
    assert dz.rows_to_sections(rows, s["sections"]) == s["sections"]
    kind = s["fields"][1]
    rows = dz.choices_to_rows(kind)
    assert [r["active"] for r in rows] == [True, False, True, True]
    rows = [r for r in rows if r["value"] != "b"] + [{"value": "n", "label_zh": "新", "label_en": None,
                                                     "active": None}]
    out = dz.rows_to_choices(rows, published=kind["choices"])
    assert [(c["value"], c.get("active", True)) for c in out] == [
        ("a", True), ("old", False), ("c", True), ("n", True), ("b", False)]


# --- reference lists from a spreadsheet column ----------------------------------------------------------
def test_merge_list_items_adds_generates_values_and_relabels():
    existing = [{"value": "xs", "label": {"zh": "霞山"}, "active": False}, {"value": "mediators_001",
                                                                          "label": {"zh": "甲"}}]
    rows = [{"label_zh": "霞山", "label_en": "Xiashan"}, {"label_zh": "新点"}, {"label_zh": ""},
            {"label_zh": "新点"}, {"label_zh": "Port Office"}, {"label_zh": "丙", "value": "c3"}]
    merged = dz.merge_list_items("mediators", existing, rows)
    assert merged.added == ["mediators_002", "port_office", "c3"]
    assert merged.relabelled == ["xs"]
    assert merged.skipped == 2
    assert merged.items[0] == {"value": "xs", "label": {"zh": "霞山", "en": "Xiashan"}, "active": False,
                               "extra": None}
    assert dz.next_list_value("mediators", merged.items, "再来") == "mediators_003"
    assert dz.next_list_value("mediators", merged.items, "", "Port Office") == "mediators_003"
