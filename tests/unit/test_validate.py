"""Record validation: required, visibility (show_if chains), whole-record ID checks, derived facts."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from engine.errors import ValidationFailed
from engine.idnumber import make_id
from engine.validate import ValidationContext, derive, validate, visible_fields
from models.spec import Choice, FormSpec

TODAY = date(2026, 3, 15)
LISTS = {
    "liaison_points": [
        Choice(value="lp01", label={"zh": "东新社区", "en": "Dongxin"}),
        Choice(value="lp02", label={"zh": "海滨村", "en": "Haibin"}, active=False),
    ]
}
CTX = ValidationContext(today=TODAY, choice_lists=LISTS)

SPEC = FormSpec.model_validate(
    {
        "slug": "intake",
        "title": {"zh": "法律援助申请登记", "en": "Legal aid application"},
        "fields": [
            {"key": "intro", "type": "note", "label": "请如实填写"},
            {"key": "name", "type": "text", "label": {"zh": "姓名", "en": "Name"}, "required": True},
            {"key": "sex", "type": "select", "choices": [{"value": "male", "label": "男"},
                                                          {"value": "female", "label": "女"}]},
            {"key": "doc_type", "type": "select", "choices": [
                {"value": "resident_id", "label": "居民身份证"}, {"value": "passport", "label": "护照"},
                {"value": "hk_macau_permit", "label": "港澳通行证"}, {"value": "military", "label": "军官证"},
                {"value": "other", "label": "其他"}]},
            {"key": "id_no", "type": "id_number", "required": True, "sensitive": True,
             "sex_field": "sex", "doc_type_field": "doc_type"},
            {"key": "phone", "type": "phone", "sensitive": True},
            {"key": "liaison_point", "type": "select", "choice_list": "liaison_points"},
            {"key": "income", "type": "money", "min": 0},
            {"key": "has_agent", "type": "boolean", "default": False},
            {"key": "agent_name", "type": "text", "required": True,
             "show_if": {"field": "has_agent", "op": "equals", "value": True}},
            {"key": "agent_kind", "type": "select", "required": True,
             "choices": [{"value": "statutory"}, {"value": "entrusted"}],
             "show_if": {"field": "agent_name", "op": "not_empty"}},
            {"key": "agent_id", "type": "id_number", "required": True,
             "show_if": {"field": "agent_kind", "op": "equals", "value": "entrusted"}},
            {"key": "brochures", "type": "counter"},
            {"key": "old_remark", "type": "text", "retired": True},
        ],
    }
)
APPLICANT = make_id("440803", date(1990, 1, 1), 123)  # male
AGENT = make_id("440803", date(1980, 6, 1), 246)  # female


def good(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": " 张三 ", "sex": "male", "id_no": APPLICANT.lower(), "phone": "138 1234 5678",
                           "liaison_point": "lp01", "income": "1,850.5", "has_agent": False}
    raw.update(changes)
    return raw


def test_a_good_record_is_cleaned() -> None:
    clean, errors = validate(SPEC, good(), CTX)
    assert errors == {}
    assert clean == {"name": "张三", "sex": "male", "id_no": APPLICANT, "phone": "13812345678",
                     "liaison_point": "lp01", "income": "1850.50", "has_agent": False}


def test_display_only_retired_and_unknown_keys_are_dropped() -> None:
    clean, errors = validate(SPEC, good(intro="x", brochures=5, old_remark="old", hacker="1; DROP TABLE"), CTX)
    assert errors == {}
    assert not {"intro", "brochures", "old_remark", "hacker"} & set(clean)


def test_required_fields() -> None:
    clean, errors = validate(SPEC, good(name="  ", id_no=None), CTX)
    assert {k: p.code for k, p in errors.items()} == {"name": "field.required", "id_no": "field.required"}
    problem = errors["name"]
    assert problem.form == "intake" and problem.field == "name"
    assert problem.message("zh") == "此项必填"
    assert problem.message("en") == "This field is required"
    assert "name" not in clean and "id_no" not in clean


def test_defaults_are_not_applied_by_validate() -> None:
    raw = good()
    del raw["has_agent"]
    clean, errors = validate(SPEC, raw, CTX)
    assert errors == {} and "has_agent" not in clean


def test_every_error_message_is_non_empty_and_differs_by_language() -> None:
    raw = good(name="", id_no="123", phone="12345", income="-1", liaison_point="nowhere", sex="other")
    _, errors = validate(SPEC, raw, CTX)
    assert set(errors) == {"name", "id_no", "phone", "income", "liaison_point", "sex"}
    for problem in errors.values():
        zh, en = problem.message("zh"), problem.message("en")
        assert zh and en and zh != en
        assert "{" not in zh and "{" not in en  # every placeholder was filled
    failed = ValidationFailed("intake", errors)
    assert failed.params["count"] == 6
    assert "id_no" in failed.describe("en")


# --- visibility ----------------------------------------------------------------------------------
def test_hidden_fields_are_neither_validated_nor_saved() -> None:
    # has_agent is false: the required agent fields are hidden; stale values typed earlier are dropped
    raw = good(agent_name="李四", agent_kind="entrusted", agent_id="not an id")
    clean, errors = validate(SPEC, raw, CTX)
    assert errors == {}
    assert not {"agent_name", "agent_kind", "agent_id"} & set(clean)


def test_show_if_chain_when_the_first_condition_holds() -> None:
    clean, errors = validate(SPEC, good(has_agent=True), CTX)
    assert {k: p.code for k, p in errors.items()} == {"agent_name": "field.required"}
    clean, errors = validate(SPEC, good(has_agent="是", agent_name="李四"), CTX)
    assert {k: p.code for k, p in errors.items()} == {"agent_kind": "field.required"}
    clean, errors = validate(SPEC, good(has_agent=True, agent_name="李四", agent_kind="statutory"), CTX)
    assert errors == {} and clean["agent_kind"] == "statutory" and "agent_id" not in clean
    clean, errors = validate(SPEC, good(has_agent=True, agent_name="李四", agent_kind="entrusted",
                                        agent_id=AGENT), CTX)
    assert errors == {} and clean["agent_id"] == AGENT


def test_a_field_controlled_by_a_hidden_field_is_hidden() -> None:
    values = good(has_agent=False, agent_name="李四", agent_kind="entrusted")
    keys = [f.key for f in visible_fields(SPEC, values)]
    assert "agent_name" not in keys and "agent_kind" not in keys and "agent_id" not in keys
    values["has_agent"] = True
    keys = [f.key for f in visible_fields(SPEC, values)]
    assert keys[keys.index("agent_name"):] == ["agent_name", "agent_kind", "agent_id", "brochures"]
    assert "old_remark" not in keys  # retired: never shown for entry
    assert keys[0] == "intro"  # spec order, display-only fields included


def test_show_if_cycle_does_not_loop() -> None:
    spec = FormSpec.model_validate({"slug": "loop", "fields": [
        {"key": "a", "type": "text", "show_if": {"field": "b", "op": "not_empty"}},
        {"key": "b", "type": "text", "show_if": {"field": "a", "op": "not_empty"}},
        {"key": "c", "type": "text"},
    ]})
    assert [f.key for f in visible_fields(spec, {"a": "x", "b": "y"})] == ["c"]


def test_condition_with_an_alternative_visible_controller() -> None:
    spec = FormSpec.model_validate({"slug": "alt", "fields": [
        {"key": "kind", "type": "select", "choices": [{"value": "a"}, {"value": "b"}]},
        {"key": "detail", "type": "text", "show_if": {"field": "kind", "op": "equals", "value": "a"}},
        {"key": "extra", "type": "text", "show_if": {"any": [
            {"field": "detail", "op": "equals", "value": "more"}, {"field": "kind", "op": "equals", "value": "b"}]}},
    ]})
    assert [f.key for f in visible_fields(spec, {"kind": "b", "detail": "more"})] == ["kind", "extra"]
    assert [f.key for f in visible_fields(spec, {"kind": "a", "detail": "more"})] == ["kind", "detail", "extra"]
    # a stale value of the hidden `detail` does not make `extra` visible
    assert [f.key for f in visible_fields(spec, {"kind": None, "detail": "more"})] == ["kind"]


# --- choices -------------------------------------------------------------------------------------
def test_inactive_choice_refused_for_new_values_but_kept_on_edit() -> None:
    _, errors = validate(SPEC, good(liaison_point="lp02"), CTX)
    assert errors["liaison_point"].code == "field.choice_inactive"
    assert "海滨村" in errors["liaison_point"].message("zh")
    edit = ValidationContext(today=TODAY, choice_lists=LISTS, allow_inactive={"lp02"})
    clean, errors = validate(SPEC, good(liaison_point="lp02"), edit)
    assert errors == {} and clean["liaison_point"] == "lp02"


# --- ID numbers: document type and sex -----------------------------------------------------------
def test_sex_mismatch_is_an_error_on_the_id_field() -> None:
    _, errors = validate(SPEC, good(sex="female"), CTX)
    assert {k: p.code for k, p in errors.items()} == {"id_no": "id.sex_mismatch"}
    assert "男" in errors["id_no"].message("zh")


def test_no_sex_given_no_sex_check() -> None:
    clean, errors = validate(SPEC, good(sex=None), CTX)
    assert errors == {} and clean["id_no"] == APPLICANT


def test_a_wrong_sex_value_is_reported_on_the_sex_field_only() -> None:
    _, errors = validate(SPEC, good(sex="x"), CTX)
    assert {k: p.code for k, p in errors.items()} == {"sex": "field.choice"}


@pytest.mark.parametrize(
    ("doc_type", "number", "stored", "code"),
    [
        (None, APPLICANT, APPLICANT, None),
        ("resident_id", APPLICANT[:-1] + ("1" if APPLICANT[-1] == "0" else "0"), None, "id.checksum"),
        ("resident_id", make_id("440803", "19900230", 123), None, "id.birth_date"),
        ("resident_id", make_id("440803", "20300101", 123), None, "id.future"),
        ("resident_id", "440803900101124", "440803900101124", None),  # legacy, female
        ("passport", "e1234 5678", "E12345678", None),
        ("passport", "E12", None, "id.passport"),
        ("other", "ab", None, "id.other"),
        ("hk_macau_permit", "H12345678", "H12345678", None),
        ("hk_macau_permit", "12345678", None, "id.hk_macau_permit"),
        ("military", "军字第00123号", "军字第00123号", None),  # not a known type: checked as "other"
    ],
)
def test_document_types(doc_type: str | None, number: str, stored: str | None, code: str | None) -> None:
    clean, errors = validate(SPEC, good(doc_type=doc_type, id_no=number, sex="female"), CTX)
    if code is None:
        # only a resident ID is checked against the sex field
        expected = {"id_no": "id.sex_mismatch"} if number == APPLICANT else {}
        assert {k: p.code for k, p in errors.items()} == expected
        if not expected:
            assert clean["id_no"] == stored
    else:
        assert errors["id_no"].code == code
        assert "id_no" not in clean


def test_id_number_without_doc_type_field_is_checked_at_once() -> None:
    spec = FormSpec.model_validate({"slug": "s", "fields": [{"key": "id", "type": "id_number"}]})
    _, errors = validate(spec, {"id": make_id("440803", "19900230", 1)}, CTX)
    assert errors["id"].code == "id.birth_date"
    assert "1990-02-30" in errors["id"].message("zh")


# --- derive --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("birth", "age", "groups"),
    [
        (date(1966, 3, 15), 60, ["elderly"]),
        (date(1966, 3, 16), 59, []),
        (date(2008, 3, 15), 18, []),
        (date(2008, 3, 16), 17, ["minor"]),
        (date(1940, 1, 1), 86, ["elderly"]),
    ],
)
def test_derive_age_groups(birth: date, age: int, groups: list[str]) -> None:
    number = make_id("440803", birth, 124)
    facts = derive(SPEC, {"id_no": number}, today=TODAY)
    assert facts == {"id_no": {"birth_date": birth.isoformat(), "sex": "female", "age": age, "groups": groups}}


def test_derive_skips_other_documents_and_bad_values() -> None:
    assert derive(SPEC, {"id_no": "E12345678", "doc_type": "passport"}, today=TODAY) == {}
    assert derive(SPEC, {"id_no": "junk"}, today=TODAY) == {}
    assert derive(SPEC, {}, today=TODAY) == {}


def test_derive_legacy_and_several_id_fields() -> None:
    facts = derive(SPEC, {"id_no": "440803580720123", "agent_id": AGENT}, today=TODAY)
    assert facts["id_no"]["birth_date"] == "1958-07-20" and facts["id_no"]["groups"] == ["elderly"]
    assert facts["agent_id"]["sex"] == "female" and facts["agent_id"]["age"] == 45
