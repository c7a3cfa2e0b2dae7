"""show_if conditions: every leaf operator, nesting, missing fields, type-aware comparison."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.conditions import compile_condition, evaluate
from models.spec import Condition

VALUES: dict[str, Any] = {
    "category": "criminal",
    "has_agent": True,
    "agent_kind": "",
    "household_size": 4,
    "income": "1,850.50",
    "apply_date": date(2026, 3, 15),
    "groups": ["elderly", "migrant_worker"],
    "facts": "工资被拖欠三个月",
    "score": "7",
}


def leaf(field: str, op: str, value: Any = None) -> Condition:
    return Condition(field=field, op=op, value=value)


LEAVES: list[tuple[Condition, bool]] = [
    (leaf("category", "equals", "criminal"), True),
    (leaf("category", "equals", "civil"), False),
    (leaf("category", "not_equals", "civil"), True),
    (leaf("has_agent", "equals", True), True),
    (leaf("has_agent", "equals", "是"), True),
    (leaf("has_agent", "equals", "false"), False),
    (leaf("household_size", "equals", "4"), True),
    (leaf("household_size", "equals", 4.0), True),
    (leaf("category", "in", ["criminal", "labour"]), True),
    (leaf("category", "in", ["civil"]), False),
    (leaf("category", "not_in", ["civil", "labour"]), True),
    (leaf("groups", "in", ["minor", "elderly"]), True),  # any selected value among the listed
    (leaf("groups", "in", ["minor"]), False),
    (leaf("category", "not_empty"), True),
    (leaf("agent_kind", "empty"), True),
    (leaf("agent_kind", "not_empty"), False),
    (leaf("groups", "not_empty"), True),
    (leaf("household_size", "gt", 3), True),
    (leaf("household_size", "gt", "10"), False),  # numerically, not as text ("4" > "10")
    (leaf("household_size", "gte", 4), True),
    (leaf("household_size", "lt", 4), False),
    (leaf("household_size", "lte", 4), True),
    (leaf("income", "lt", 2000), True),
    (leaf("score", "gt", 10), False),
    (leaf("apply_date", "gte", "2026-01-01"), True),  # a date widget value against ISO text
    (leaf("apply_date", "lt", "2026-03-15"), False),
    (leaf("apply_date", "equals", "2026-03-15"), True),
    (leaf("groups", "contains", "elderly"), True),
    (leaf("groups", "contains", "minor"), False),
    (leaf("groups", "contains", ["elderly", "migrant_worker"]), True),
    (leaf("groups", "contains", ["elderly", "minor"]), False),
    (leaf("facts", "contains", "工资"), True),
    (leaf("groups", "equals", ["migrant_worker", "elderly"]), True),  # same set, any order
    (leaf("groups", "equals", "elderly"), False),
    (leaf("category", "gt", 5), False),  # not comparable: false, no error
]


@pytest.mark.parametrize(("cond", "expected"), LEAVES, ids=[f"{c.field}-{c.op}-{i}" for i, (c, _) in enumerate(LEAVES)])
def test_leaf_operators(cond: Condition, expected: bool) -> None:
    assert evaluate(cond, VALUES) is expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("empty", None, True),
        ("not_empty", None, False),
        ("equals", "x", False),
        ("not_equals", "x", True),
        ("in", ["x"], False),
        ("not_in", ["x"], True),
        ("gt", 0, False),
        ("lt", 0, False),
        ("contains", "x", False),
    ],
)
def test_a_missing_field_is_empty(op: str, value: Any, expected: bool) -> None:
    assert evaluate(leaf("nowhere", op, value), VALUES) is expected
    assert evaluate(leaf("nowhere", op, value), {}) is expected


def test_no_condition_is_true() -> None:
    assert evaluate(None, {}) is True
    assert evaluate(Condition(), {}) is True


def test_all_any_not_and_nesting() -> None:
    criminal = leaf("category", "equals", "criminal")
    civil = leaf("category", "equals", "civil")
    elderly = leaf("groups", "contains", "elderly")
    assert evaluate(Condition(all=[criminal, elderly]), VALUES) is True
    assert evaluate(Condition(all=[civil, elderly]), VALUES) is False
    assert evaluate(Condition(any=[civil, elderly]), VALUES) is True
    assert evaluate(Condition(any=[civil]), VALUES) is False
    assert evaluate(Condition.model_validate({"not": {"field": "category", "op": "equals", "value": "civil"}}),
                    VALUES) is True
    nested = Condition.model_validate(
        {
            "all": [
                {"any": [{"field": "category", "op": "equals", "value": "civil"},
                         {"field": "household_size", "op": "gte", "value": 4}]},
                {"not": {"all": [{"field": "has_agent", "op": "equals", "value": True},
                                 {"field": "agent_kind", "op": "empty"}]}},
            ]
        }
    )
    assert evaluate(nested, VALUES) is False  # has_agent and agent_kind empty: the not() is false
    assert evaluate(nested, {**VALUES, "agent_kind": "statutory"}) is True
    assert evaluate(Condition(all=[]), {}) is True
    assert evaluate(Condition(any=[]), {}) is False


def test_conditions_are_data_never_code() -> None:
    hostile = leaf("category", "equals", "__import__('os').system('true')")
    assert evaluate(hostile, VALUES) is False
    assert evaluate(hostile, {"category": "__import__('os').system('true')"}) is True


# --- compiled conditions: the same answer as evaluate ---------------------------------------------
_KEYS = ("a", "b")
_POOL = [None, True, False, 0, 1, 4, 4.0, -0.0, 2.5, 10**16, float("nan"), float("inf"), Decimal("4.0"),
         Decimal("NaN"), Decimal("1E+2"), "", " ", "x", " X ", "4", " 4.0 ", "4.00", "1,234", "¥4", "1e2", "10",
         "是", "否", "true", "0", "1", "yes", "2026-03-15", "2026-01-01 ", "工资", "工资被拖欠", "abc",
         date(2026, 3, 15), datetime(2026, 3, 15, 9, 30), time(9, 30)]
_SCALARS = st.one_of(st.sampled_from(_POOL), st.text(max_size=3))
_VALUES = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=3),
    st.lists(_SCALARS, max_size=3).map(tuple),
    st.sampled_from([{"k": "v"}, {}, {"k": ""}, frozenset({"x", "4"}), set()]),
)
_OPS = ["equals", "not_equals", "in", "not_in", "not_empty", "empty", "gt", "lt", "gte", "lte", "contains", None]
_LEAVES = st.builds(
    Condition,
    field=st.sampled_from([*_KEYS, _KEYS[0], None]),
    op=st.sampled_from(_OPS),
    value=_VALUES,
)
_CONDITIONS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.builds(Condition, all=st.lists(inner, max_size=3)),
        st.builds(Condition, any=st.lists(inner, max_size=3)),
        inner.map(lambda c: Condition.model_validate({"not": c})),
    ),
    max_leaves=6,
)


_COLLECTIONS = [[], ["4"], [4, "x"], ("x", " 4.0 "), {"4", "x"}, frozenset(), [None, ""], ["是"], [" X", "abc"],
                ["工资"], [date(2026, 3, 15)], {"k": "v"}, {"k": ""}]


@pytest.mark.parametrize("op", _OPS)
def test_compiled_leaf_equals_evaluate_for_every_pair(op: str | None) -> None:
    """Every pair of sample values, both ways round: the prepared leaf answers as evaluate does."""
    samples = _POOL + _COLLECTIONS
    for right in samples:
        cond = Condition(field="a", op=op, value=right)
        test = compile_condition(cond)
        for left in samples:
            assert test({"a": left}.get) is evaluate(cond, {"a": left}), (op, right, left)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cond=st.one_of(st.none(), _CONDITIONS), values=st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=2))
def test_compiled_condition_equals_evaluate(cond: Condition | None, values: dict[str, Any]) -> None:
    assert compile_condition(cond)(values.get) is evaluate(cond, values)


def test_compiled_condition_reads_values_through_the_getter() -> None:
    cond = Condition(all=[leaf("a", "equals", "x"), leaf("b", "empty")])
    test = compile_condition(cond)
    assert test({"a": "x", "b": "y"}.get) is False
    assert test(lambda key: {"a": "x", "b": "y"}.get(key) if key != "b" else None) is True
