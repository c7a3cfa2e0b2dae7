"""Property: whatever sequence of edits a form goes through, every field key, option value and checklist item
that ever existed in an accepted version is still in the latest accepted spec, with the same type or a
compatible widening, so a record stored under any earlier version can be read and exported completely."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.spec import check_spec, parse_spec
from engine.versioning import WIDENINGS, plan_publish
from models.spec import FormSpec

TYPES = ("text", "textarea", "integer", "decimal", "rating", "select", "multiselect", "date", "boolean", "checklist")
CHOICE_POOL = tuple(f"c{i}" for i in range(8))
ITEM_POOL = tuple(f"item{i}" for i in range(6))
OPS = ("add", "remove", "relabel", "choices", "reorder", "help", "readd", "retype")


def readable(stored: str, current: str) -> bool:
    """Can a value stored under type `stored` be read under `current` (through widenings)?"""
    seen, todo = {stored}, [stored]
    while todo:
        t = todo.pop()
        for a, b in WIDENINGS:
            if a == t and b not in seen:
                seen.add(b)
                todo.append(b)
    return current in seen


def new_field(draw: Any, key: str, type_: str) -> dict[str, Any]:
    field: dict[str, Any] = {"key": key, "type": type_, "label": {"zh": f"字段 {key}"}}
    if type_ in ("select", "multiselect"):
        values = draw(st.lists(st.sampled_from(CHOICE_POOL), min_size=1, max_size=5, unique=True))
        field["choices"] = [{"value": v, "label": f"选项 {v}"} for v in values]
    if type_ == "checklist":
        keys = draw(st.lists(st.sampled_from(ITEM_POOL), min_size=1, max_size=4, unique=True))
        field["items"] = [{"key": k, "label": f"项 {k}"} for k in keys]
    return field


START = {
    "slug": "props",
    "title": "性质测试",
    "fields": [
        {"key": "name", "type": "text", "label": "姓名"},
        {"key": "age", "type": "integer", "label": "年龄"},
        {"key": "sex", "type": "select", "label": "性别", "choices": ["c0", "c1", "c2"]},
        {"key": "topics", "type": "multiselect", "label": "事项", "choices": ["c3", "c4"]},
        {"key": "files", "type": "checklist", "label": "材料", "items": [{"key": "item0", "label": "一"}]},
        {"key": "score", "type": "rating", "label": "评分"},
    ],
}


class History:
    """What any accepted version ever held."""

    def __init__(self) -> None:
        self.types: dict[str, set[str]] = defaultdict(set)
        self.choices: dict[str, set[str]] = defaultdict(set)
        self.items: dict[str, set[str]] = defaultdict(set)

    def record(self, spec: FormSpec) -> None:
        for f in spec.fields:
            self.types[f.key].add(f.type)
            self.choices[f.key] |= {c.value for c in f.choices or []}
            self.items[f.key] |= {i.key for i in f.items or []}

    def assert_readable(self, spec: FormSpec) -> None:
        for key, types in self.types.items():
            field = spec.field(key)
            assert field is not None, f"field {key} was lost"
            for t in types:
                assert readable(t, field.type), f"{key}: values stored as {t} misread as {field.type}"
            assert self.choices[key] <= {c.value for c in field.choices or []}, f"{key}: options lost"
            assert self.items[key] <= {i.key for i in field.items or []}, f"{key}: checklist items lost"


def edit(draw: Any, accepted: FormSpec, counter: list[int]) -> tuple[dict[str, Any], str, str | None]:
    """One user edit on a draft of the accepted spec. Returns (draft, op, key touched)."""
    data = accepted.to_dict()
    if not draw(st.booleans()):  # the designer may show retired fields (as in an export) or hide them
        data["fields"] = [f for f in data["fields"] if not f.get("retired")]
    fields: list[dict[str, Any]] = data["fields"]
    active = [f for f in fields if not f.get("retired")]
    retired_keys = [f.key for f in accepted.fields if f.retired]
    op = draw(st.sampled_from(OPS))
    key: str | None = None
    if op == "add" or (op in ("remove", "relabel", "help", "choices") and not active):
        op = "add"
        counter[0] += 1
        key = f"f{counter[0]}"
        fields.insert(draw(st.integers(0, len(fields))), new_field(draw, key, draw(st.sampled_from(TYPES))))
    elif op == "remove":
        victim = draw(st.sampled_from(active))
        key = victim["key"]
        fields.remove(victim)
    elif op == "relabel":
        target = draw(st.sampled_from(active))
        key = target["key"]
        target["label"] = {"zh": draw(st.sampled_from(["新名称", "改名", "姓名"])), "en": "New"}
    elif op == "help":
        target = draw(st.sampled_from(active))
        key = target["key"]
        target["help"] = draw(st.sampled_from(["说明", "请如实填写", ""]))
    elif op == "choices":
        targets = [f for f in active if f["type"] in ("select", "multiselect", "checklist")]
        if targets:
            target = draw(st.sampled_from(targets))
            key = target["key"]
            attr, name, pool = (("items", "key", ITEM_POOL) if target["type"] == "checklist"
                                else ("choices", "value", CHOICE_POOL))
            kept = [c for c in target[attr] if draw(st.booleans())]
            added = [v for v in draw(st.lists(st.sampled_from(pool), max_size=3, unique=True))
                     if v not in {c[name] for c in target[attr]}]
            merged = kept + [{name: v, "label": f"新 {v}"} for v in added]
            for c in merged:
                if draw(st.booleans()):
                    c["label"] = {"zh": "改过的名称"}
                if attr == "choices" and not c.get("active", True) and draw(st.booleans()):
                    c["active"] = True
            target[attr] = draw(st.permutations(merged)) if merged else [{name: pool[0], "label": "唯一"}]
    elif op == "reorder":
        data["fields"] = fields = list(draw(st.permutations(fields)))
    elif op == "readd":
        if retired_keys:
            key = draw(st.sampled_from(retired_keys))
            old = accepted.field(key).model_dump(mode="json", by_alias=True, exclude_defaults=True)
            old.pop("retired", None)
            fields[:] = [f for f in fields if f["key"] != key]
            fields.insert(draw(st.integers(0, len(fields))), old)
    elif op == "retype":
        key = draw(st.sampled_from([f.key for f in accepted.fields]))
        old_type = accepted.field(key).type
        new_type = draw(st.sampled_from([t for t in TYPES if t != old_type]))
        replacement = new_field(draw, key, new_type)
        at = next((i for i, f in enumerate(fields) if f["key"] == key), len(fields))
        fields[at:at + 1] = [replacement]
    return data, op, key


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_nothing_ever_accepted_is_lost_or_misread(data):
    accepted = parse_spec(START)
    history = History()
    history.record(accepted)
    counter = [0]
    for _ in range(data.draw(st.integers(1, 15), label="steps")):
        draft, op, key = edit(data.draw, accepted, counter)
        new, problems = check_spec(draft)
        assert problems == [], [p.describe("en") for p in problems]  # every edit here is a valid spec
        plan = plan_publish(accepted, new)

        checked, problems = check_spec(plan.spec)
        assert problems == [], [p.describe("en") for p in problems]
        assert checked == plan.spec

        if op == "retype":
            old_type = accepted.field(key).type
            if readable(old_type, new.field(key).type) and (old_type, new.field(key).type) in WIDENINGS:
                assert plan.ok, [p.describe("en") for p in plan.problems]
            else:
                assert [p.code for p in plan.problems] == ["version.type_changed"]
        else:
            assert plan.ok, [p.describe("en") for p in plan.problems]

        if plan.ok:
            accepted = plan.spec
            history.record(accepted)
        history.assert_readable(accepted)
        # active fields keep the draft's order; publishing the accepted spec again is a no-op
        assert [f.key for f in accepted.active_fields] == [f.key for f in new.active_fields] or not plan.ok
        again = plan_publish(accepted, accepted)
        assert again.ok and again.changes == [] and again.spec == accepted
