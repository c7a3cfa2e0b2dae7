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
_DEFAULT_OPS = dict(LEAF_OPS)  # compiled leaves are used only while an op is still the built-in one


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


# --------------------------------------------------------------------------------------------------
# Compiled conditions: the same results as `evaluate`, with the constant side of each leaf prepared once
# --------------------------------------------------------------------------------------------------
Getter = Callable[[str], Any]  # field key -> value (None when missing)
Test = Callable[[Getter], bool]
_COLLECTION = (list, tuple, set, frozenset)


class _Const:
    """One constant operand of a leaf with everything `_same` / `_order` would compute from it.

    textual: a non-empty constant that is neither a number nor a bool, so it equals a str exactly when
    the stripped texts are equal."""

    __slots__ = ("empty", "is_bool", "flag", "number", "text", "is_str", "stripped", "textual")

    def __init__(self, value: Any) -> None:
        plain = _plain(value)
        self.empty = is_empty(plain)
        self.is_bool = isinstance(plain, bool)
        self.flag = as_bool(plain)
        self.number = _number(plain)
        self.text = str(plain).strip()
        self.is_str = isinstance(plain, str)
        self.stripped = plain.strip() if isinstance(plain, str) else None
        self.textual = not self.empty and not self.is_bool and self.number is None


def _same_const(left: Any, const: _Const) -> bool:
    """`_same(left, const.value)`; the left number is only parsed when the constant is a number."""
    kind = type(left)
    if kind is str and const.textual:
        return left.strip() == const.text
    if kind is bool and not const.empty:
        return left == const.flag
    if left is None:
        return const.empty
    left = _plain(left)
    left_empty = is_empty(left)
    if left_empty or const.empty:
        return left_empty and const.empty
    if const.is_bool or isinstance(left, bool):
        flag = as_bool(left)
        return flag is not None and flag == const.flag
    if const.number is not None:
        number = _number(left)
        if number is not None:
            return number == const.number
    return str(left).strip() == const.text


def _consts(values: Any) -> list[_Const]:
    return [_Const(v) for v in values]


def _equals_test(right: Any) -> Callable[[Any], bool]:
    if isinstance(right, _COLLECTION):
        wanted = _consts(right)
        one = _Const(right)

        def equals_many(left: Any) -> bool:
            if isinstance(left, _COLLECTION):
                return all(any(_same_const(a, c) for c in wanted) for a in left) and all(
                    any(_same_const(a, c) for a in left) for c in wanted
                )
            return _same_const(left, one)

        return equals_many
    const = _Const(right)

    def equals_one(left: Any) -> bool:
        if isinstance(left, _COLLECTION):
            members = _members(left)
            return len(members) == 1 and _same_const(members[0], const)
        return _same_const(left, const)

    return equals_one


def _in_test(right: Any) -> Callable[[Any], bool]:
    options = _consts(_members(right))
    texts = {c.text for c in options} if all(c.textual for c in options) else None

    def is_in(left: Any) -> bool:
        if texts is not None and type(left) is str:
            return left.strip() in texts
        return any(_same_const(item, c) for item in _members(left) for c in options)

    return is_in


def _contains_test(right: Any) -> Callable[[Any], bool]:
    right_text = None if isinstance(right, _COLLECTION) else str(right)
    wanted = _consts(_members(right))

    def contains(left: Any) -> bool:
        if right_text is not None and isinstance(left, str):
            return bool(right_text) and right_text in left
        members = _members(left)
        return bool(wanted) and all(any(_same_const(m, c) for m in members) for c in wanted)

    return contains


def _order_test(compare: Callable[[Any, Any], bool]) -> Callable[[Any], Callable[[Any], bool]]:
    def build(right: Any) -> Callable[[Any], bool]:
        const = _Const(right)

        def order(left: Any) -> bool:
            left = _plain(left)
            if const.empty or is_empty(left):
                return False
            if const.number is not None:
                number = _number(left)
                if number is not None:
                    return compare(number, const.number)
            if const.is_str and isinstance(left, str):
                return compare(left.strip(), const.stripped)
            return False

        return order

    return build


def _negate(build: Callable[[Any], Callable[[Any], bool]]) -> Callable[[Any], Callable[[Any], bool]]:
    def build_not(right: Any) -> Callable[[Any], bool]:
        test = build(right)
        return lambda left: not test(left)

    return build_not


_LEAF_BUILDERS: dict[str, Callable[[Any], Callable[[Any], bool]]] = {
    "equals": _equals_test,
    "not_equals": _negate(_equals_test),
    "in": _in_test,
    "not_in": _negate(_in_test),
    "empty": lambda right: is_empty,
    "not_empty": lambda right: lambda left: not is_empty(left),
    "gt": _order_test(lambda a, b: a > b),
    "lt": _order_test(lambda a, b: a < b),
    "gte": _order_test(lambda a, b: a >= b),
    "lte": _order_test(lambda a, b: a <= b),
    "contains": _contains_test,
}


def _leaf_test(op: str, right: Any) -> Callable[[Any], bool]:
    """The prepared test of one leaf; the plain LEAF_OPS entry when preparing the constant fails."""
    build = _LEAF_BUILDERS.get(op)
    if build is not None and LEAF_OPS.get(op) is _DEFAULT_OPS.get(op):
        try:
            return build(right)
        except Exception:  # an odd constant: compare it the slow way, at evaluation time as before
            pass
    return lambda left: LEAF_OPS[op](left, right)


def _compile_leaf(cond: Condition) -> Test:
    op = cond.op or ("not_empty" if cond.value is None else "equals")
    test = _leaf_test(op, cond.value)
    key = cond.field
    if not key:
        return lambda get: test(None)
    return lambda get: test(get(key))


def compile_condition(cond: Condition | None) -> Test:
    """A function of a getter (key -> value) giving `evaluate(cond, values)` with `values.get` as getter.

    The condition must not change afterwards (specs are immutable once parsed)."""
    if cond is None:
        return lambda get: True
    if cond.all is not None:
        parts = [compile_condition(sub) for sub in cond.all]
        return lambda get: all(part(get) for part in parts)
    if cond.any is not None:
        parts = [compile_condition(sub) for sub in cond.any]
        return lambda get: any(part(get) for part in parts)
    if cond.not_ is not None:
        inner = compile_condition(cond.not_)
        return lambda get: not inner(get)
    if cond.field or cond.op:
        return _compile_leaf(cond)
    return lambda get: True
