"""`show_if` conditions: structured data evaluated against a record's values (never `eval`).

Leaf ``{field, op, value}``; ``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}``. A missing field is empty.
Numbers compare numerically (``"10" > 9``), dates as ISO text (``"2026-03-15" > "2026-01-01"``), yes/no
values as booleans (``True`` equals ``"是"``), multiselect lists by membership.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from engine.fields import FieldProblem, as_bool, is_empty, to_decimal
from models.spec import Condition


def _plain(value: Any) -> Any:
    """Dates and times as ISO text; everything else as given."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        return to_decimal(value)
    except (FieldProblem, ArithmeticError, ValueError):
        return None


def _same(left: Any, right: Any) -> bool:
    left, right = _plain(left), _plain(right)
    if is_empty(left) or is_empty(right):
        return is_empty(left) and is_empty(right)
    if isinstance(left, bool) or isinstance(right, bool):
        return as_bool(left) is not None and as_bool(left) == as_bool(right)
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    return str(left).strip() == str(right).strip()


def _members(value: Any) -> list[Any]:
    if is_empty(value):
        return []
    return list(value) if isinstance(value, list | tuple | set | frozenset) else [value]


def _equals(left: Any, right: Any) -> bool:
    if isinstance(left, list | tuple | set | frozenset) and isinstance(right, list | tuple | set | frozenset):
        return all(any(_same(a, b) for b in right) for a in left) and all(
            any(_same(a, b) for a in left) for b in right
        )
    if isinstance(left, list | tuple | set | frozenset):  # a multiselect equals one value: only that one
        members = _members(left)
        return len(members) == 1 and _same(members[0], right)
    return _same(left, right)


def _in(left: Any, right: Any) -> bool:
    """The value (or any member of a multiselect value) is one of the listed values."""
    options = _members(right)
    return any(_same(item, option) for item in _members(left) for option in options)


def _contains(left: Any, right: Any) -> bool:
    """A multiselect value holds the given value (or all given values); text contains a substring."""
    if isinstance(left, str) and not isinstance(right, list | tuple | set | frozenset):
        return bool(str(right)) and str(right) in left
    members = _members(left)
    wanted = _members(right)
    return bool(wanted) and all(any(_same(m, w) for m in members) for w in wanted)


def _order(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def op(left: Any, right: Any) -> bool:
        left, right = _plain(left), _plain(right)
        if is_empty(left) or is_empty(right):
            return False
        a, b = _number(left), _number(right)
        if a is not None and b is not None:
            return compare(a, b)
        if isinstance(left, str) and isinstance(right, str):
            return compare(left.strip(), right.strip())
        return False

    return op


LEAF_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": _equals,
    "not_equals": lambda left, right: not _equals(left, right),
    "in": _in,
    "not_in": lambda left, right: not _in(left, right),
    "empty": lambda left, right: is_empty(left),
    "not_empty": lambda left, right: not is_empty(left),
    "gt": _order(lambda a, b: a > b),
    "lt": _order(lambda a, b: a < b),
    "gte": _order(lambda a, b: a >= b),
    "lte": _order(lambda a, b: a <= b),
    "contains": _contains,
}


def _leaf(cond: Condition, values: Mapping[str, Any]) -> bool:
    op = cond.op or ("not_empty" if cond.value is None else "equals")
    return LEAF_OPS[op](values.get(cond.field) if cond.field else None, cond.value)


def evaluate(cond: Condition | None, values: Mapping[str, Any]) -> bool:
    """True when the condition holds for `values` (no condition: True)."""
    if cond is None:
        return True
    if cond.all is not None:
        return all(evaluate(sub, values) for sub in cond.all)
    if cond.any is not None:
        return any(evaluate(sub, values) for sub in cond.any)
    if cond.not_ is not None:
        return not evaluate(cond.not_, values)
    if cond.field or cond.op:
        return _leaf(cond, values)
    return True
