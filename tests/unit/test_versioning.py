"""engine.versioning.plan_publish: one explicit test per rule (nothing stored is lost or misread)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from engine.messages import MESSAGES
from engine.spec import check_spec, dump_spec, parse_spec
from engine.versioning import CHANGE_KINDS, WIDENINGS, Change, PublishPlan, compatible_type, plan_publish
from models.spec import FieldSpec, FormSpec

BASE: dict[str, Any] = {
    "slug": "intake",
    "title": {"zh": "申请登记", "en": "Intake"},
    "sections": [{"key": "main", "title": "基本"}, {"key": "more", "title": "其他"}],
    "fields": [
        {"key": "name", "type": "text", "label": "姓名", "section": "main", "max_length": 50},
        {"key": "bio", "type": "textarea", "label": "简介", "section": "main"},
        {"key": "age", "type": "integer", "label": "年龄", "section": "main", "min": 0},
        {"key": "score", "type": "rating", "label": "评分", "section": "main"},
        {"key": "sex", "type": "select", "label": "性别", "section": "main",
         "choices": [{"value": "m", "label": "男"}, {"value": "f", "label": "女"}, {"value": "x", "label": "其他"}]},
        {"key": "topics", "type": "multiselect", "label": "事项", "section": "more", "choices": ["婚姻", "劳动", "债务"]},
        {"key": "files", "type": "checklist", "label": "材料", "section": "more",
         "items": [{"key": "id_copy", "label": "身份证"}, {"key": "proof", "label": "证明"}]},
        {"key": "court", "type": "select", "label": "法院", "section": "more", "choice_list": "courts"},
        {"key": "event", "type": "reference", "label": "活动", "section": "more", "reference_form": "events"},
        {"key": "phone", "type": "phone", "label": "电话", "section": "more", "sensitive": True},
        {"key": "note", "type": "text", "label": "备注", "section": "more",
         "show_if": {"field": "sex", "op": "equals", "value": "x"}},
    ],
    "workflow": {
        "initial": "applied",
        "states": [{"key": "applied", "label": "申请"}, {"key": "accepted", "label": "受理"},
                   {"key": "closed", "label": "结案", "terminal": True}],
        "transitions": [{"key": "accept", "from": ["applied"], "to": "accepted", "due_days": 7},
                        {"key": "close", "from": ["accepted"], "to": "closed"}],
    },
}


def base() -> FormSpec:
    return parse_spec(BASE)


def edited(fn: Callable[[dict[str, Any]], Any], start: FormSpec | dict | None = None) -> FormSpec:
    data = copy.deepcopy(start.to_dict() if isinstance(start, FormSpec) else (start or BASE))
    fn(data)
    return parse_spec(data)


def field_of(data: dict[str, Any], key: str) -> dict[str, Any]:
    return next(f for f in data["fields"] if f["key"] == key)


def drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def fn(data: dict[str, Any]) -> None:
        data["fields"] = [f for f in data["fields"] if f["key"] not in keys]
    return fn


def kinds(plan: PublishPlan) -> list[tuple[str, str | None]]:
    return [(c.kind, c.field) for c in plan.changes]


def codes(plan: PublishPlan) -> list[str]:
    return [p.code for p in plan.problems]


def keys(spec: FormSpec) -> list[str]:
    return [f.key for f in spec.fields]


def assert_valid(plan: PublishPlan) -> None:
    again, problems = check_spec(plan.spec)
    assert problems == [] and again == plan.spec
    assert parse_spec(dump_spec(plan.spec, "yaml")) == plan.spec


# --------------------------------------------------------------------------------------------
def test_a_new_form_adds_every_field():
    plan = plan_publish(None, base())
    assert plan.ok and plan.spec == base()
    assert kinds(plan) == [("added", k) for k in keys(base())]


def test_publishing_the_same_spec_changes_nothing():
    plan = plan_publish(base(), base())
    assert plan.ok and plan.changes == [] and plan.spec == base()


def test_a_removed_field_is_retired_at_its_old_position():
    plan = plan_publish(base(), edited(drop("age")))
    assert plan.ok
    assert keys(plan.spec) == keys(base())
    age = plan.spec.field("age")
    assert age.retired and age.type == "integer" and age.min == 0 and age.label == {"zh": "年龄"}
    assert [f.key for f in plan.spec.active_fields] == [k for k in keys(base()) if k != "age"]
    assert kinds(plan) == [("retired", "age")]
    assert plan.changes[0].detail["type"] == "integer"
    assert_valid(plan)


def test_retired_fields_follow_the_field_that_preceded_them_in_the_old_order():
    def fn(data):
        drop("name", "age", "score")(data)
        data["fields"].reverse()  # new order for active fields

    plan = plan_publish(base(), edited(fn))
    assert plan.ok
    # name was first: it stays first; age and score (both after bio) follow bio, in their old order
    assert keys(plan.spec) == ["name", "note", "phone", "event", "court", "files", "topics", "sex", "bio", "age", "score"]
    assert [f.key for f in plan.spec.fields if f.retired] == ["name", "age", "score"]
    assert ("reordered", None) in kinds(plan)
    assert_valid(plan)


def test_a_field_already_retired_stays_retired_silently():
    v2 = plan_publish(base(), edited(drop("age"))).spec
    plan = plan_publish(v2, edited(drop("age")))
    assert plan.ok and plan.changes == [] and plan.spec == v2


def test_a_field_re_added_with_the_same_type_is_restored():
    v2 = plan_publish(base(), edited(drop("age"))).spec
    plan = plan_publish(v2, base())
    assert plan.ok
    assert not plan.spec.field("age").retired
    assert kinds(plan) == [("restored", "age")]
    assert plan.spec == base()


def test_a_field_marked_retired_in_the_new_spec_is_reported_as_retired():
    plan = plan_publish(base(), edited(lambda d: field_of(d, "bio").update(retired=True)))
    assert plan.ok and kinds(plan) == [("retired", "bio")] and plan.spec.field("bio").retired


@pytest.mark.parametrize(("key", "change"), [
    ("name", {"type": "integer", "max_length": None}),
    ("age", {"type": "text", "min": None}),
    ("sex", {"type": "multiselect"}),
    ("topics", {"type": "select"}),
    ("score", {"type": "decimal"}),  # not a listed widening (rating -> integer -> decimal needs two steps)
    ("bio", {"type": "text", "max_length": 200}),  # textarea -> text only without a new max_length
    ("phone", {"type": "text", "sensitive": False}),
])
def test_keeping_a_key_with_a_different_type_is_refused(key, change):
    def fn(data):
        field = field_of(data, key)
        field.update(change)
        for attr, value in change.items():
            if value is None:
                field.pop(attr)

    plan = plan_publish(base(), edited(fn))
    assert codes(plan) == ["version.type_changed"]
    problem = plan.problems[0]
    assert (problem.form, problem.field) == ("intake", key)
    assert "new key" in problem.message("en") and "新" in problem.message("zh")


def test_re_adding_a_retired_key_with_a_different_type_is_refused():
    v2 = plan_publish(base(), edited(drop("age"))).spec
    plan = plan_publish(v2, edited(lambda d: d["fields"].append({"key": "age", "type": "date", "label": "年龄"}),
                                   start=v2.model_copy(update={"fields": v2.active_fields})))
    assert codes(plan) == ["version.type_changed"]
    assert plan.problems[0].params == {"field": "age", "old_type": "integer", "new_type": "date"}


@pytest.mark.parametrize(("key", "change"), [
    ("name", {"type": "textarea"}),
    ("bio", {"type": "text"}),
    ("age", {"type": "decimal"}),
    ("score", {"type": "integer"}),
])
def test_compatible_widenings_are_allowed_and_reported(key, change):
    plan = plan_publish(base(), edited(lambda d: field_of(d, key).update(change)))
    assert plan.ok, plan.problems
    assert plan.spec.field(key).type == change["type"]
    (c,) = plan.changed("rules_changed")
    assert c.field == key and c.detail["widened"] is True
    assert (base().field(key).type, change["type"]) in WIDENINGS
    assert_valid(plan)


def test_textarea_to_text_keeps_an_existing_max_length():
    old = edited(lambda d: field_of(d, "bio").update(max_length=500))
    assert plan_publish(old, edited(lambda d: field_of(d, "bio").update(type="text", max_length=500))).ok
    assert compatible_type(FieldSpec(key="ab", type="textarea"), FieldSpec(key="ab", type="text"))
    assert not compatible_type(FieldSpec(key="ab", type="textarea"), FieldSpec(key="ab", type="text", max_length=9))
    assert not compatible_type(FieldSpec(key="ab", type="decimal"), FieldSpec(key="ab", type="integer"))


def test_re_adding_a_retired_key_with_a_widening_restores_it():
    v2 = plan_publish(base(), edited(drop("age"))).spec
    plan = plan_publish(v2, edited(lambda d: field_of(d, "age").update(type="decimal")))
    assert plan.ok and ("restored", "age") in kinds(plan) and plan.spec.field("age").type == "decimal"


def test_a_removed_choice_is_kept_inactive_in_place():
    plan = plan_publish(base(), edited(lambda d: field_of(d, "sex").update(
        choices=[{"value": "m", "label": "男"}, {"value": "x", "label": "其他"}])))
    assert plan.ok
    choices = plan.spec.field("sex").choices
    assert [(c.value, c.active) for c in choices] == [("m", True), ("f", False), ("x", True)]
    assert choices[1].label == {"zh": "女"}
    assert kinds(plan) == [("choices_changed", "sex")]
    assert plan.changes[0].detail == {"deactivated": ["f"]}
    assert_valid(plan)


def test_multiselect_choices_removed_and_added():
    plan = plan_publish(base(), edited(lambda d: field_of(d, "topics").update(choices=["劳动", "工伤"])))
    assert plan.ok
    assert [(c.value, c.active) for c in plan.spec.field("topics").choices] == [
        ("婚姻", False), ("劳动", True), ("债务", False), ("工伤", True)]  # 债务 stays after 劳动, as before
    assert plan.changes[0].detail == {"deactivated": ["婚姻", "债务"], "added": ["工伤"]}


def test_relabelling_a_choice_is_fine():
    plan = plan_publish(base(), edited(lambda d: field_of(d, "sex")["choices"][2].update(label="未说明")))
    assert plan.ok
    assert plan.changes == [Change("choices_changed", "sex", {"relabelled": ["x"]})]
    assert [c.value for c in plan.spec.field("sex").choices] == ["m", "f", "x"]


def test_a_deactivated_choice_can_come_back():
    v2 = plan_publish(base(), edited(lambda d: field_of(d, "sex")["choices"].pop(1))).spec
    plan = plan_publish(v2, base())
    assert plan.ok and plan.spec == base()
    assert plan.changes == [Change("choices_changed", "sex", {"reactivated": ["f"]})]


def test_a_removed_checklist_item_is_carried_back_and_reported():
    plan = plan_publish(base(), edited(lambda d: field_of(d, "files").update(
        items=[{"key": "proof", "label": "证明"}, {"key": "income", "label": "收入"}])))
    assert plan.ok
    assert [i.key for i in plan.spec.field("files").items] == ["id_copy", "proof", "income"]
    assert plan.changes == [Change("choices_changed", "files", {"items_kept": ["id_copy"], "items_added": ["income"]})]


def test_changing_the_reference_list_is_allowed_and_reported():
    plan = plan_publish(base(), edited(lambda d: field_of(d, "court").update(choice_list="courts_2026")))
    assert plan.ok
    (c,) = plan.changes
    assert (c.kind, c.field) == ("rules_changed", "court")
    assert c.detail["attrs"] == {"choice_list": {"old": "courts", "new": "courts_2026"}}


@pytest.mark.parametrize(("key", "change"), [
    ("court", {"choice_list": None, "choices": ["中院", "基层"]}),
    ("sex", {"choices": None, "choice_list": "sexes"}),
])
def test_switching_between_own_options_and_a_reference_list_is_refused(key, change):
    def fn(data):
        field = field_of(data, key)
        for attr, value in change.items():
            if value is None:
                field.pop(attr)
            else:
                field[attr] = value

    plan = plan_publish(base(), edited(fn))
    assert codes(plan) == ["version.choice_source_changed"]
    assert plan.problems[0].field == key


def test_changing_a_reference_fields_target_form_is_refused():
    plan = plan_publish(base(), edited(lambda d: field_of(d, "event").update(reference_form="trainings")))
    assert codes(plan) == ["version.reference_changed"]
    assert plan.problems[0].params["old"] == "events"


def test_unmasking_a_sensitive_field_is_allowed_but_reported():
    plan = plan_publish(base(), edited(lambda d: field_of(d, "phone").update(sensitive=False)))
    assert plan.ok
    (c,) = plan.changes
    assert (c.kind, c.field) == ("rules_changed", "phone")
    assert c.detail["unmasked"] is True
    assert c.detail["attrs"] == {"sensitive": {"old": True, "new": False}}


def test_tighter_rules_are_allowed_for_new_entries_only():
    def fn(data):
        field_of(data, "name").update(required=True, max_length=20, pattern="^[^0-9]+$")
        field_of(data, "age").update(max=150)

    plan = plan_publish(base(), edited(fn))
    assert plan.ok
    by_field = {c.field: c for c in plan.changed("rules_changed")}
    assert by_field["name"].detail["tightened"] == ["required", "max_length", "pattern"]
    assert by_field["name"].detail["new_entries_only"] is True
    assert by_field["name"].detail["attrs"]["max_length"] == {"old": 50, "new": 20}
    assert by_field["age"].detail["tightened"] == ["max"]


def test_looser_rules_are_reported_without_tightening():
    plan = plan_publish(base(), edited(lambda d: field_of(d, "name").pop("max_length")))
    (c,) = plan.changes
    assert c.kind == "rules_changed" and "tightened" not in c.detail


def test_labels_help_sections_order_and_access_are_reported():
    def fn(data):
        field_of(data, "name")["label"] = {"zh": "申请人姓名", "en": "Applicant"}
        field_of(data, "bio")["help"] = "简要说明"
        field_of(data, "phone")["section"] = "main"
        data["fields"].insert(0, data["fields"].pop(2))  # age first
        data["fields"].append({"key": "email", "type": "email", "label": "邮箱"})
        data["access"] = {"view": ["admin", "manager"]}
        data["title"] = {"zh": "法律援助申请登记", "en": "Intake"}

    plan = plan_publish(base(), edited(fn))
    assert plan.ok
    got = kinds(plan)
    for expected in [("relabelled", "name"), ("help_changed", "bio"), ("reordered", "phone"), ("added", "email"),
                     ("relabelled", None), ("reordered", None), ("access_changed", None)]:
        assert expected in got
    assert set(c.kind for c in plan.changes) <= set(CHANGE_KINDS)
    access = next(c for c in plan.changes if c.kind == "access_changed")
    assert access.detail == {"view": {"old": ["admin", "manager", "staff", "viewer"], "new": ["admin", "manager"]}}
    order = next(c for c in plan.changes if c.kind == "reordered" and c.field is None)
    assert order.detail["fields"]["new"][0] == "age"


def test_removing_a_workflow_state_is_refused():
    def fn(data):
        data["workflow"]["states"] = data["workflow"]["states"][:2]
        data["workflow"]["transitions"] = data["workflow"]["transitions"][:1]

    plan = plan_publish(base(), edited(fn))
    assert codes(plan) == ["version.state_removed"]
    assert plan.problems[0].params["state"] == "closed"
    assert "terminal" in plan.problems[0].message("en")


def test_removing_the_whole_workflow_is_refused():
    plan = plan_publish(base(), edited(lambda d: d.pop("workflow")))
    assert codes(plan) == ["version.state_removed"]
    assert plan.problems[0].params["states"] == ["applied", "accepted", "closed"]


def test_other_workflow_changes_are_allowed_and_reported():
    def fn(data):
        wf = data["workflow"]
        wf["states"].insert(2, {"key": "review", "label": "审查"})
        wf["states"][1]["label"] = "已受理"
        wf["transitions"][0]["due_days"] = 3
        wf["transitions"].append({"key": "review", "from": ["accepted"], "to": "review"})

    plan = plan_publish(base(), edited(fn))
    assert plan.ok
    (c,) = plan.changes
    assert c.kind == "workflow_changed"
    assert c.detail == {"states_added": ["review"], "states_changed": ["accepted"], "transitions_added": ["review"],
                        "transitions_changed": ["accept"]}


def test_keep_due_on_a_step_is_reported_like_its_other_rules():
    def keep(data):
        data["workflow"]["transitions"][1]["keep_due"] = True

    plan = plan_publish(base(), edited(keep))
    assert plan.ok and plan.changes == [Change("workflow_changed", None, {"transitions_changed": ["close"]})]
    assert plan.spec.workflow.transitions[1].keep_due
    plan = plan_publish(edited(keep), base())  # and taking it away again
    assert plan.ok and plan.changes == [Change("workflow_changed", None, {"transitions_changed": ["close"]})]
    assert plan_publish(edited(keep), edited(keep)).changes == []


def test_adding_a_workflow_is_allowed():
    old = edited(lambda d: d.pop("workflow"))
    plan = plan_publish(old, base())
    assert plan.ok and plan.changes == [
        Change("workflow_changed", None, {"added": True, "states": ["applied", "accepted", "closed"]})]


def test_changing_the_slug_is_refused():
    plan = plan_publish(base(), edited(lambda d: d.update(slug="intake_v2")))
    assert codes(plan) == ["version.slug_changed"]
    assert plan.problems[0].params == {"old": "intake", "new": "intake_v2"}


def test_changing_the_parent_form_is_refused_but_setting_one_is_allowed():
    with_parent = edited(lambda d: d.update(parent="events"))
    plan = plan_publish(base(), with_parent)
    assert plan.ok and plan.changes[0].detail["attrs"]["parent"] == {"old": None, "new": "events"}
    plan = plan_publish(with_parent, edited(lambda d: d.update(parent="trainings")))
    assert codes(plan) == ["version.parent_changed"]


def test_a_condition_on_a_now_retired_field_is_refused():
    data = base().to_dict()
    drop("sex")(data)  # `note` still shows only when sex == x
    new = FormSpec.model_validate(data)  # e.g. built by the designer without checking
    plan = plan_publish(base(), new)
    assert codes(plan) == ["version.show_if_retired"]
    problem = plan.problems[0]
    assert (problem.field, problem.params["ref"]) == ("note", "sex")
    assert "sex" in problem.message("zh") and "retired" in problem.message("en")


def test_plan_publish_never_touches_its_arguments():
    old, new = base(), edited(drop("age", "sex", "note"))
    old_copy, new_copy = old.model_copy(deep=True), new.model_copy(deep=True)
    plan = plan_publish(old, new)
    assert old == old_copy and new == new_copy
    plan.spec.fields[0].label["zh"] = "changed"
    assert new.fields[0].label["zh"] != "changed"


def test_version_codes_and_change_texts_are_in_both_languages():
    codes_ = [c for c in MESSAGES if c.startswith(("version.", "change."))]
    assert len(codes_) >= 7 + len(CHANGE_KINDS)
    for code in codes_:
        zh, en = MESSAGES[code]["zh"], MESSAGES[code]["en"]
        assert zh and en and zh != en
        assert re.search(r"[\u4e00-\u9fff]", zh)
    plan = plan_publish(base(), edited(drop("age")))
    assert plan.changes[0].describe("zh") != plan.changes[0].describe("en")
    assert "age" in plan.changes[0].describe("en")
    assert all(Change(kind, None).describe("en") != f"change.{kind}.form" for kind in CHANGE_KINDS
               if f"change.{kind}.form" in MESSAGES)
