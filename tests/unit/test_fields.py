"""The field-type registry: coerce tables per type (valid and invalid), display, export/import cells."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from engine.fields import REGISTRY, FieldProblem, display_lists, field_type, is_empty, mask_value
from engine.idnumber import make_id
from engine.messages import MESSAGES, render
from engine.validate import ValidationContext
from models.spec import Choice, FieldSpec

TODAY = date(2026, 3, 15)
CTX = ValidationContext(
    today=TODAY,
    choice_lists={
        "liaison_points": [
            Choice(value="lp01", label={"zh": "东新社区", "en": "Dongxin"}),
            Choice(value="lp02", label={"zh": "海滨村", "en": "Haibin"}, active=False),
        ]
    },
)
SEX = [Choice(value="male", label={"zh": "男", "en": "Male"}), Choice(value="female", label={"zh": "女", "en": "Female"})]
GROUPS = [
    Choice(value="elderly", label={"zh": "老年人", "en": "Elderly"}),
    Choice(value="disabled", label={"zh": "残疾人", "en": "Disabled"}),
    Choice(value="minor", label={"zh": "未成年人", "en": "Minor"}),
    Choice(value="old_code", label={"zh": "旧选项", "en": "Old"}, active=False),
]
ITEMS = [{"key": "no_gifts", "label": "未收受礼品"}, {"key": "no_fees", "label": "未收费"}, {"key": "recusal"}]
ID_MALE = make_id("440803", date(1990, 1, 1), 123)
ID_X = next(n for s in range(1000) if (n := make_id("440803", date(1988, 8, 8), s)).endswith("X"))


def spec(type_: str, **attrs: Any) -> FieldSpec:
    return FieldSpec(key="f", type=type_, **attrs)


FIELDS: dict[str, FieldSpec] = {
    "text": spec("text"),
    "text_len": spec("text", min_length=2, max_length=5),
    "text_pattern": spec("text", pattern=r"[A-Z]{2}\d{4}"),
    "text_pattern_msg": spec("text", pattern=r"\d{6}", pattern_message={"zh": "邮编为6位数字", "en": "6 digits"}),
    "textarea": spec("textarea"),
    "integer": spec("integer"),
    "integer_range": spec("integer", min=1, max=20),
    "decimal": spec("decimal"),
    "decimal_range": spec("decimal", min=0, max=1.5),
    "money": spec("money"),
    "money_range": spec("money", min=0),
    "date": spec("date"),
    "datetime": spec("datetime"),
    "time": spec("time"),
    "select": spec("select", choices=SEX),
    "select_list": spec("select", choice_list="liaison_points"),
    "select_missing_list": spec("select", choice_list="courts"),
    "multiselect": spec("multiselect", choices=GROUPS),
    "multiselect_max": spec("multiselect", choices=GROUPS, max=2),
    "boolean": spec("boolean"),
    "checklist": spec("checklist", items=ITEMS),
    "checklist_required": spec("checklist", items=ITEMS, required=True),
    "rating": spec("rating"),
    "rating_10": spec("rating", min=0, max=10),
    "phone": spec("phone"),
    "email": spec("email"),
    "id_number": spec("id_number"),
    "id_any_doc": spec("id_number", doc_type_field="doc_type"),
    "reference": spec("reference", reference_form="intake"),
    "reference_list": spec("reference", choice_list="liaison_points"),
    "user": spec("user"),
}

VALID: list[tuple[str, Any, Any]] = [
    ("text", "  张三  ", "张三"),
    ("text", 12, "12"),
    ("text", "a" * 100_000, "a" * 100_000),
    ("text_len", "ab", "ab"),
    ("text_len", "abcde", "abcde"),
    ("text_pattern", "GD1234", "GD1234"),
    ("text_pattern_msg", "524000", "524000"),
    ("textarea", "第一行\r\n第二行\n", "第一行\n第二行"),
    ("integer", 5, 5),
    ("integer", "1,234", 1234),
    ("integer", "１２", 12),  # full-width digits
    ("integer", 3.0, 3),
    ("integer", "-7", -7),
    ("integer", Decimal("40"), 40),
    ("integer_range", "20", 20),
    ("decimal", "1,234.50", "1234.50"),
    ("decimal", 0.1, "0.1"),
    ("decimal", Decimal("2.500"), "2.500"),
    ("decimal", "-0", "0"),
    ("decimal", "1e3", "1000"),
    ("decimal_range", "1.5", "1.5"),
    ("money", "1,234.5", "1234.50"),
    ("money", 1234.5, "1234.50"),
    ("money", "¥3,200", "3200.00"),
    ("money", "850元", "850.00"),
    ("money", Decimal("12.340"), "12.34"),
    ("money", 0, "0.00"),
    ("date", date(2026, 3, 15), "2026-03-15"),
    ("date", datetime(2026, 3, 15, 0, 0), "2026-03-15"),
    ("date", "2026-03-15", "2026-03-15"),
    ("date", "2026/3/5", "2026-03-05"),
    ("date", "2026.03.05", "2026-03-05"),
    ("date", "2026年3月5日", "2026-03-05"),
    ("date", "20260305", "2026-03-05"),
    ("date", "2026-03-15 00:00:00", "2026-03-15"),
    ("datetime", datetime(2026, 3, 15, 14, 30, 5, 999), "2026-03-15T14:30:05"),
    ("datetime", datetime(2026, 3, 15, 6, 30, tzinfo=UTC), "2026-03-15T14:30:00"),
    ("datetime", "2026-03-15 14:30", "2026-03-15T14:30:00"),
    ("datetime", "2026/3/15 9:05:07", "2026-03-15T09:05:07"),
    ("datetime", "2026-03-15T14:30:00+08:00", "2026-03-15T14:30:00"),
    ("datetime", date(2026, 3, 15), "2026-03-15T00:00:00"),
    ("time", time(9, 5), "09:05"),
    ("time", "9:05", "09:05"),
    ("time", "14:30:59", "14:30"),
    ("time", "14：30", "14:30"),
    ("select", "male", "male"),
    ("select", "女", "female"),  # a zh label from a spreadsheet
    ("select", "Female", "female"),  # an en label
    ("select", "MALE", "male"),
    ("select_list", "lp01", "lp01"),
    ("select_list", "东新社区", "lp01"),
    ("multiselect", ["minor", "elderly"], ["elderly", "minor"]),  # the spec's choice order
    ("multiselect", "minor;elderly", ["elderly", "minor"]),
    ("multiselect", "未成年人；老年人；minor", ["elderly", "minor"]),
    ("multiselect", ("disabled",), ["disabled"]),
    ("multiselect_max", ["elderly", "minor"], ["elderly", "minor"]),
    ("boolean", True, True),
    ("boolean", False, False),
    ("boolean", "是", True),
    ("boolean", "否", False),
    ("boolean", "yes", True),
    ("boolean", "No", False),
    ("boolean", "true", True),
    ("boolean", "1", True),
    ("boolean", 0, False),
    ("checklist", {"no_gifts": {"answer": "yes", "note": ""}}, {"no_gifts": {"answer": "yes", "note": ""}}),
    (
        "checklist",
        {"no_gifts": "是", "no_fees": {"answer": "否", "note": " 收过 50 元 "}, "recusal": {"answer": None}},
        {"no_gifts": {"answer": "yes", "note": ""}, "no_fees": {"answer": "no", "note": "收过 50 元"}},
    ),
    (
        "checklist",
        "no_fees=na; no_gifts=yes(已核对)",
        {"no_gifts": {"answer": "yes", "note": "已核对"}, "no_fees": {"answer": "na", "note": ""}},
    ),
    (
        "checklist_required",
        {"no_gifts": "yes", "no_fees": "no", "recusal": "na"},
        {k: {"answer": a, "note": ""} for k, a in (("no_gifts", "yes"), ("no_fees", "no"), ("recusal", "na"))},
    ),
    ("rating", 5, 5),
    ("rating", "3", 3),
    ("rating", "★★★★☆", 4),
    ("rating_10", 0, 0),
    ("rating_10", "10", 10),
    ("phone", "138 1234 5678", "13812345678"),
    ("phone", "0759-1234567", "0759-1234567"),
    ("email", " Zhang.San@Example.COM ", "Zhang.San@example.com"),
    ("email", "a+b@mail.gd.gov.cn", "a+b@mail.gd.gov.cn"),
    ("id_number", ID_MALE, ID_MALE),
    ("id_number", ID_X.lower(), ID_X),
    ("id_number", "440803580720123", "440803580720123"),
    ("id_any_doc", " e1234 5678 ", "E12345678"),
    ("reference", 12, 12),
    ("reference", "12", 12),
    ("reference", "#7", 7),
    ("reference_list", "lp01", "lp01"),
    ("user", " Zhang_San ", "zhang_san"),
    ("user", "王芳", "王芳"),
]


@pytest.mark.parametrize(("field", "raw", "clean"), VALID, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(VALID)])
def test_valid_values_coerce_to_the_stored_convention(field: str, raw: Any, clean: Any) -> None:
    spec_ = FIELDS[field]
    coerce = REGISTRY[spec_.type].coerce
    assert coerce(raw, spec_, CTX) == clean
    assert coerce(clean, spec_, CTX) == clean  # coercing a clean value changes nothing


INVALID: list[tuple[str, Any, str]] = [
    ("text", "a" * 100_001, "field.too_long"),
    ("text", ["a"], "field.text"),
    ("text", True, "field.text"),
    ("text_len", "a", "field.min_length"),
    ("text_len", "abcdef", "field.max_length"),
    ("text_pattern", "gd1234", "field.pattern"),
    ("text_pattern", "GD12345", "field.pattern"),
    ("text_pattern_msg", "52400", "field.pattern_custom"),
    ("textarea", "x" * 100_001, "field.too_long"),
    ("integer", "abc", "field.number"),
    ("integer", "1.5", "field.integer"),
    ("integer", 2.5, "field.integer"),
    ("integer", True, "field.number"),
    ("integer", float("nan"), "field.number"),
    ("integer", float("inf"), "field.number"),
    ("integer", "1e20", "field.number_too_large"),
    ("integer", "1" * 5000, "field.number_too_large"),
    ("integer", [1], "field.number"),
    ("integer_range", 0, "field.min"),
    ("integer_range", "21", "field.max"),
    ("decimal", "1.2.3", "field.number"),
    ("decimal", "0.00000000001", "field.decimal_places"),
    ("decimal_range", "-0.01", "field.min"),
    ("decimal_range", "1.51", "field.max"),
    ("money", "12.345", "field.decimal_places"),
    ("money", "十块", "field.number"),
    ("money_range", "-1", "field.min"),
    ("date", "2026-02-30", "field.date"),
    ("date", "2026-13-01", "field.date"),
    ("date", "15/03/2026", "field.date"),
    ("date", "yesterday", "field.date"),
    ("date", "2026-03-15 14:30", "field.date"),
    ("date", 20260315, "field.date"),
    ("datetime", "2026-03-15 25:00", "field.datetime"),
    ("datetime", "14:30", "field.datetime"),
    ("time", "24:00", "field.time"),
    ("time", "9:60", "field.time"),
    ("time", "noon", "field.time"),
    ("time", 930, "field.time"),
    ("select", "unknown", "field.choice"),
    ("select", ["male"], "field.choice"),
    ("select_list", "lp02", "field.choice_inactive"),  # an inactive list item for a new value
    ("select_list", "海滨村", "field.choice_inactive"),
    ("select_missing_list", "x", "field.list_unavailable"),
    ("multiselect", ["elderly", "nobody"], "field.choice"),
    ("multiselect", "old_code", "field.choice_inactive"),
    ("multiselect_max", ["elderly", "minor", "disabled"], "field.max_choices"),
    ("boolean", "maybe", "field.boolean"),
    ("boolean", 2, "field.boolean"),
    ("checklist", {"unknown_item": "yes"}, "field.checklist_item"),
    ("checklist", {"no_gifts": "perhaps"}, "field.checklist_answer"),
    ("checklist", {"no_gifts": {"answer": None, "note": "a note without an answer"}}, "field.checklist_answer"),
    ("checklist", "no_gifts=yes(unclosed", "field.checklist"),
    ("checklist", "no_gifts", "field.checklist"),
    ("checklist", ["yes"], "field.checklist"),
    ("checklist_required", {"no_gifts": "yes"}, "field.checklist_incomplete"),
    ("rating", 6, "field.rating"),
    ("rating", 0, "field.rating"),
    ("rating", "good", "field.rating"),
    ("rating", 3.5, "field.rating"),
    ("rating_10", 11, "field.rating"),
    ("phone", "12345", "phone.invalid"),
    ("phone", "1381234567", "phone.mobile"),
    ("email", "zhang.san", "field.email"),
    ("email", "zhang@localhost", "field.email"),
    ("email", "zhang san@example.com", "field.email"),
    ("email", "a..b@example.com", "field.email"),
    ("id_number", ID_MALE[:-1] + ("0" if ID_MALE[-1] != "0" else "1"), "id.checksum"),
    ("id_number", make_id("440803", "19900230", 1), "id.birth_date"),
    ("id_number", make_id("440803", "20260316", 1), "id.future"),  # ctx.today is 2026-03-15
    ("id_number", "12345", "id.length"),
    ("id_any_doc", "x" * 41, "id.other"),
    ("reference", 0, "field.reference"),
    ("reference", "-3", "field.reference"),
    ("reference", "abc", "field.reference"),
    ("reference", 1.5, "field.reference"),
    ("reference_list", "nowhere", "field.choice"),
    ("user", "zhang san", "field.user"),
    ("user", "x" * 65, "field.user"),
]


@pytest.mark.parametrize(("field", "raw", "code"), INVALID, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(INVALID)])
def test_invalid_values_raise_their_code(field: str, raw: Any, code: str) -> None:
    spec_ = FIELDS[field]
    with pytest.raises(FieldProblem) as caught:
        REGISTRY[spec_.type].coerce(raw, spec_, CTX)
    assert caught.value.code == code
    assert code in MESSAGES, f"{code} has no registered message"
    assert render(code, "zh", **caught.value.params) != render(code, "en", **caught.value.params)


def test_inactive_choices_are_allowed_for_values_already_stored() -> None:
    ctx = ValidationContext(choice_lists=CTX.choice_lists, allow_inactive={"lp02", "old_code"})
    assert field_type("select").coerce("lp02", FIELDS["select_list"], ctx) == "lp02"
    assert field_type("multiselect").coerce(["old_code", "minor"], FIELDS["multiselect"], ctx) == ["minor", "old_code"]


def test_range_messages_name_the_limits() -> None:
    with pytest.raises(FieldProblem) as caught:
        field_type("integer").coerce(0, FIELDS["integer_range"], CTX)
    assert render(caught.value.code, "zh", **caught.value.params) == "不能小于 1"
    assert render(caught.value.code, "en", **caught.value.params) == "Must be at least 1"


def test_custom_pattern_message_in_each_language() -> None:
    with pytest.raises(FieldProblem) as caught:
        field_type("text").coerce("1", FIELDS["text_pattern_msg"], CTX)
    assert render(caught.value.code, "zh", **caught.value.params) == "邮编为6位数字"
    assert render(caught.value.code, "en", **caught.value.params) == "6 digits"


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_empty_input_is_no_value(type_name: str) -> None:
    f = spec(type_name, items=ITEMS if type_name == "checklist" else None)
    for empty in (None, "", "   ", [], {}):
        assert REGISTRY[type_name].coerce(empty, f, CTX) is None


@pytest.mark.parametrize(
    ("value", "empty"),
    [(None, True), ("", True), ("  ", True), ([], True), ({}, True), ([""], True),
     ({"a": {"answer": None, "note": ""}}, True), (False, False), (0, False), ("0", False), (["a"], False)],
)
def test_is_empty(value: Any, empty: bool) -> None:
    assert is_empty(value) is empty


def test_registry_covers_every_type() -> None:
    assert set(REGISTRY) == {
        "text", "textarea", "integer", "decimal", "money", "date", "datetime", "time", "select", "multiselect",
        "boolean", "checklist", "rating", "phone", "email", "id_number", "reference", "user", "note", "counter",
    }
    assert {n for n, t in REGISTRY.items() if not t.stores_value} == {"note", "counter"}
    for name, ftype in REGISTRY.items():
        assert ftype.name == name
        assert ftype.label["zh"] and ftype.label["en"]
        assert ftype.value_kind in {"text", "number", "bool", "list", "object"}
        assert {"key", "type", "label"} <= ftype.allowed_attrs
    assert "items" in REGISTRY["checklist"].allowed_attrs and "items" not in REGISTRY["text"].allowed_attrs
    assert "steps" in REGISTRY["counter"].allowed_attrs
    assert "required" not in REGISTRY["note"].allowed_attrs


def test_unknown_type_name() -> None:
    with pytest.raises(KeyError, match="signature"):
        field_type("signature")


def test_note_and_counter_store_nothing() -> None:
    for name in ("note", "counter"):
        ftype = REGISTRY[name]
        assert ftype.coerce("anything", spec(name), CTX) is None
        assert ftype.export("anything", spec(name)) == ""
        assert ftype.display("anything", spec(name), "zh") == ""


# --- display -------------------------------------------------------------------------------------
DISPLAY: list[tuple[str, Any, str, str]] = [
    ("boolean", True, "是", "Yes"),
    ("boolean", False, "否", "No"),
    ("select", "female", "女", "Female"),
    ("select", "retired_value", "retired_value", "retired_value"),  # an old value still shows
    ("multiselect", ["elderly", "minor"], "老年人、未成年人", "Elderly, Minor"),
    ("money", "1234567.50", "1,234,567.50", "1,234,567.50"),
    ("integer", 2026, "2026", "2026"),
    ("datetime", "2026-03-15T14:30:00", "2026-03-15 14:30", "2026-03-15 14:30"),
    ("rating", 4, "4/5", "4/5"),
    ("reference", 12, "#12", "#12"),
    (
        "checklist",
        {"no_gifts": {"answer": "yes", "note": ""}, "no_fees": {"answer": "no", "note": "x"}},
        "是 1，否 1，未答 1",
        "yes 1, no 1, unanswered 1",
    ),
    ("text", None, "", ""),
]


@pytest.mark.parametrize(("field", "value", "zh", "en"), DISPLAY)
def test_display_in_each_language(field: str, value: Any, zh: str, en: str) -> None:
    spec_ = FIELDS[field]
    ftype = REGISTRY[spec_.type]
    assert ftype.display(value, spec_, "zh") == zh
    assert ftype.display(value, spec_, "en") == en


def test_choice_list_labels_show_within_display_lists() -> None:
    f = FIELDS["select_list"]
    assert field_type("select").display("lp01", f, "zh") == "lp01"  # no lists given: the value
    with display_lists(CTX.choice_lists):
        assert field_type("select").display("lp01", f, "zh") == "东新社区"
        assert field_type("reference").display("lp02", FIELDS["reference_list"], "en") == "Haibin"
    # a field copy carrying the list's items as choices works too
    copy = f.model_copy(update={"choices": list(CTX.choice_lists["liaison_points"])})
    assert field_type("select").display("lp01", copy, "en") == "Dongxin"


def test_display_never_raises_on_odd_stored_values() -> None:
    assert REGISTRY["checklist"].display("not a dict", FIELDS["checklist"], "zh") == "not a dict"
    assert REGISTRY["money"].display("abc", FIELDS["money"], "zh") == "abc"


# --- export / import cells -----------------------------------------------------------------------
EXPORT: list[tuple[str, Any, str]] = [
    ("select", "female", "female"),  # the value, not the label
    ("multiselect", ["elderly", "minor"], "elderly;minor"),
    ("boolean", True, "yes"),
    ("boolean", False, "no"),
    ("money", "1234.50", "1234.50"),
    ("integer", 7, "7"),
    ("date", "2026-03-15", "2026-03-15"),
    ("datetime", "2026-03-15T14:30:00", "2026-03-15 14:30:00"),
    (
        "checklist",
        {"no_gifts": {"answer": "yes", "note": "已核对"}, "no_fees": {"answer": "na", "note": ""}},
        "no_gifts=yes(已核对); no_fees=na",
    ),
    (
        "checklist",
        {"no_gifts": {"answer": "no", "note": "见附件(二); 待补"}},
        "no_gifts=no(见附件(二\\); 待补)",
    ),
    ("id_number", ID_X, ID_X),
    ("text", None, ""),
]


@pytest.mark.parametrize(("field", "value", "cell"), EXPORT)
def test_export_cell_and_import_round_trip(field: str, value: Any, cell: str) -> None:
    spec_ = FIELDS[field]
    ftype = REGISTRY[spec_.type]
    assert ftype.export(value, spec_) == cell
    assert ftype.coerce(ftype.parse_cell(cell, spec_, CTX), spec_, CTX) == value


@pytest.mark.parametrize(
    ("field", "cell", "clean"),
    [
        ("boolean", "是", True),
        ("multiselect", " 老年人 ；Minor ", ["elderly", "minor"]),
        ("date", "2026/3/15", "2026-03-15"),
        ("money", "1,234.50", "1234.50"),
        ("checklist", "no_gifts=是（无）；no_fees=否", {"no_gifts": {"answer": "yes", "note": "无"},
                                                   "no_fees": {"answer": "no", "note": ""}}),
        ("text", "  ", None),
    ],
)
def test_hand_made_spreadsheet_cells(field: str, cell: str, clean: Any) -> None:
    spec_ = FIELDS[field]
    ftype = REGISTRY[spec_.type]
    assert ftype.coerce(ftype.parse_cell(cell, spec_, CTX), spec_, CTX) == clean


# --- masks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "text", "masked"),
    [
        (spec("id_number", sensitive=True), "44010219900101123X", "440***********123X"),
        (spec("phone", sensitive=True), "13812345678", "138****5678"),
        (spec("phone", sensitive=True), "0759-1234567", "0759-***4567"),
        (spec("text", sensitive=True), "张三丰", "张**"),
        (spec("textarea", sensitive=True), "广东省湛江市霞山区某街道某号某房", "广******"),
        (spec("text", sensitive=True), "", ""),
    ],
)
def test_mask_value(field: FieldSpec, text: str, masked: str) -> None:
    assert mask_value(field, text) == masked


def test_datetime_from_another_zone_is_stored_as_local_time() -> None:
    utc_evening = datetime(2026, 3, 15, 20, 0, tzinfo=UTC)
    assert field_type("datetime").coerce(utc_evening, FIELDS["datetime"], CTX) == "2026-03-16T04:00:00"
    assert field_type("date").coerce(utc_evening, FIELDS["date"], CTX) == "2026-03-16"
    west = timezone(timedelta(hours=-5))
    assert field_type("datetime").coerce("2026-03-15T10:00:00-05:00", FIELDS["datetime"], CTX) == field_type(
        "datetime"
    ).coerce(datetime(2026, 3, 15, 10, 0, tzinfo=west), FIELDS["datetime"], CTX)
