"""Application numbers (申请编号), e.g. `霞援申字〔2026〕第0001号`: unique, gap-free, never reused.

`assign_number(session, slug, year, pattern)` increments `Sequence(name=slug, scope=year)` inside the
CALLER's transaction: `INSERT ... ON CONFLICT DO NOTHING` makes sure the counter row exists, then
`UPDATE sequences SET last = last + 1 ... RETURNING last` takes the row lock (on PostgreSQL the same
lock as SELECT ... FOR UPDATE; a second creator waits for the first transaction to end and then reads
its committed value; on SQLite the write transaction, BEGIN IMMEDIATE, already serialises writers).
So a create that rolls back also rolls back its increment (no gap), two creators never get the same
number, and deleting a record (soft delete keeps the number; even a hard delete leaves the counter)
never frees a number for reuse.

The pattern is Setting "number_pattern:<slug>" (`{"pattern": ...}`), set by the admin; the intake
form's default is `霞援申字〔{year}〕第{seq:04d}号`. Placeholders are `{year}` and `{seq}`, each with an
optional format spec (`{seq:04d}`, `{year:d}`); nothing else: no attribute or index access, no
conversions, no nested fields (checked with string.Formatter; nothing is evaluated). A pattern without
`{year}` numbers across years without restarting (scope "all").

`number_hook(session, spec, submission)` is what `engine.storage.create` calls before the insert.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.access import Actor
from engine.db import session_scope
from engine.eligibility import INTAKE, read_setting, require_admin, write_setting
from engine.errors import EngineError
from engine.fields import LOCAL_TZ, is_empty
from engine.messages import register
from models.spec import FormSpec
from models.tables import Setting, Submission, utcnow

register({
    "numbering.bad_pattern": {
        "zh": "编号格式无效：{problem}。可用的占位符：{allowed}，例如 霞援申字〔{{year}}〕第{{seq:04d}}号。",
        "en": "The number pattern is not valid: {problem}. Placeholders allowed: {allowed}, "
              "e.g. 霞援申字〔{{year}}〕第{{seq:04d}}号.",
    },
    "numbering.pattern_taken": {
        "zh": "表单「{other}」已使用相同的编号格式，编号会重复。",
        "en": "Form '{other}' already uses the same pattern: numbers would repeat.",
    },
})

PATTERN_PREFIX = "number_pattern:"
DEFAULT_PATTERNS: dict[str, str] = {INTAKE: "霞援申字〔{year}〕第{seq:04d}号"}
ALLOWED = ("year", "seq")
NUMBER_FIELD = "application_no"  # a form field that shows the number too (filled when empty)
MAX_NUMBER_LENGTH = 40  # Submission.number holds 64; the intake field application_no holds 40
_FORMATTER = string.Formatter()


def _bad(problem: str) -> EngineError:
    return EngineError("numbering.bad_pattern", problem=problem, allowed="{year} {seq}")


def check_pattern(pattern: Any) -> str:
    """The pattern, or EngineError naming what is wrong (unknown placeholder, bad spec, too long...)."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise _bad("empty")
    pattern = pattern.strip()
    try:
        parts = list(_FORMATTER.parse(pattern))
    except ValueError as exc:
        raise _bad(f"braces: {exc}") from None
    names = []
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in ALLOWED:
            raise _bad(f"unknown placeholder {{{name}}}")
        if conversion is not None:
            raise _bad(f"conversion !{conversion} in {{{name}}}")
        if spec and ("{" in spec or "}" in spec):
            raise _bad(f"nested field in {{{name}}}")
        names.append(name)
    if "seq" not in names:
        raise _bad("{seq} is missing")
    try:
        sample = render(pattern, 2026, 99999)
    except (ValueError, TypeError) as exc:
        raise _bad(f"format spec: {exc}") from None
    if len(sample) > MAX_NUMBER_LENGTH:
        raise _bad(f"longer than {MAX_NUMBER_LENGTH} characters")
    return pattern


@functools.lru_cache(maxsize=64)
def checked_pattern(pattern: str) -> str:
    """`check_pattern`, remembered (a stored pattern is checked once per process, not per record)."""
    return check_pattern(pattern)


def render(pattern: str, year: int, seq: int) -> str:
    """The number for (year, seq). Only {year} / {seq} are filled (check_pattern vouches for the rest)."""
    out = []
    for literal, name, spec in _parts(pattern):
        out.append(literal)
        if name is None:
            continue
        value = {"year": int(year), "seq": int(seq)}[name]
        out.append(format(value, spec or ""))
    return "".join(out)


@functools.lru_cache(maxsize=64)
def _parts(pattern: str) -> tuple[tuple[str, str | None, str | None], ...]:
    """(literal, placeholder name, format spec) pieces of a pattern, parsed once per process."""
    return tuple((literal, name, spec) for literal, name, spec, _c in _FORMATTER.parse(pattern))


def scope_for(pattern: str, year: int) -> str:
    uses_year = any(name == "year" for _l, name, _s in _parts(pattern))
    return str(int(year)) if uses_year else "all"


def pattern_from(value: Any, slug: str) -> str | None:
    """The pattern in force, given the stored setting value of the form (None when not set)."""
    if isinstance(value, Mapping) and isinstance(value.get("pattern"), str):
        return value["pattern"]
    return DEFAULT_PATTERNS.get(slug)


def _pattern_in(session: Session, slug: str) -> str | None:
    return pattern_from(session.execute(select(Setting.value).where(Setting.key == PATTERN_PREFIX + slug)).scalar(),
                        slug)


def pattern_for(engine: Engine, slug: str) -> str | None:
    """The pattern in force for a form (configured, else the built-in default), or None: no numbers."""
    with session_scope(engine, write=False) as session:
        return _pattern_in(session, slug)


# One statement on SQLite (>= 3.35) and PostgreSQL: create the counter at k or advance it by k.
_ADVANCE = text("INSERT INTO sequences (name, scope, last) VALUES (:n, :s, :k) "
                "ON CONFLICT (name, scope) DO UPDATE SET last = sequences.last + :k RETURNING last")


def advance(session: Session, name: str, scope: str, count: int) -> int:
    """Take `count` numbers of a gap-free counter in the caller's transaction (row-locked until it
    ends); the last one taken (the first is `last - count + 1`)."""
    return int(session.execute(_ADVANCE, {"n": name, "s": scope, "k": int(count)}).scalar_one())


def next_value(session: Session, name: str, scope: str) -> int:
    """Increment a gap-free counter in the caller's transaction (row-locked until it ends)."""
    return advance(session, name, scope, 1)


def number_rows(session: Session, spec: FormSpec, rows: list[dict[str, Any]]) -> None:
    """Number new rows (column values, with `created_at` and `data`) in the caller's transaction, in
    their order, one counter step per year: imports and demo data get numbers as entry does."""
    pattern = _pattern_in(session, spec.slug)
    if pattern is None or not rows:
        return
    pattern = checked_pattern(pattern)
    by_scope: dict[str, list[tuple[dict[str, Any], int]]] = {}
    for row in rows:
        if row.get("number"):
            continue
        year = local_year(row["created_at"])
        by_scope.setdefault(scope_for(pattern, year), []).append((row, year))
    for scope, items in by_scope.items():
        first = advance(session, spec.slug, scope, len(items)) - len(items) + 1
        for i, (row, year) in enumerate(items):
            row["number"] = render(pattern, year, first + i)
            row["data"] = with_number(spec, row["data"], row["number"])


def assign_number(session: Session, form_slug: str, year: int, pattern: str) -> str:
    """The next number of `form_slug` in `year` (inside the caller's write transaction)."""
    pattern = checked_pattern(pattern)
    seq = next_value(session, form_slug, scope_for(pattern, year))
    return render(pattern, year, seq)


def local_year(now: datetime | None = None) -> int:
    return (now or utcnow()).astimezone(LOCAL_TZ).year


@dataclass(frozen=True)
class Numbered:
    """How a new record of one form in one year is numbered: its counter scope and pattern."""

    pattern: str
    year: int
    scope: str

    def render(self, seq: int) -> str:
        return render(self.pattern, self.year, seq)


def numbered(setting: Any, slug: str, now: datetime) -> Numbered | None:
    """The numbering of a record created at `now`, given the form's stored setting value (None: the
    form gives no numbers). A bad stored pattern raises numbering.bad_pattern."""
    pattern = pattern_from(setting, slug)
    if pattern is None:
        return None
    return _numbered(checked_pattern(pattern), local_year(now))


@functools.lru_cache(maxsize=64)
def _numbered(pattern: str, year: int) -> Numbered:
    return Numbered(pattern, year, scope_for(pattern, year))


def number_hook(session: Session, spec: FormSpec, submission: Submission) -> str | None:
    """Give a new record its number before the insert (storage.create calls this in its transaction).

    Forms without a configured pattern (and not intake) get none. A record that already has a number
    keeps it. The number is also written into the form's `application_no` field when it is empty.
    """
    if submission.number:
        return submission.number
    pattern = _pattern_in(session, spec.slug)
    if pattern is None:
        return None
    number = assign_number(session, spec.slug, local_year(submission.created_at), pattern)
    submission.number = number
    submission.data = with_number(spec, submission.data or {}, number)
    return number


def with_number(spec: FormSpec, data: dict[str, Any], number: str) -> dict[str, Any]:
    """`data` with the number written into the form's `application_no` text field when that is empty."""
    f = spec.field(NUMBER_FIELD)
    if f is not None and not f.retired and f.type == "text" and is_empty(data.get(NUMBER_FIELD)):
        return {**data, NUMBER_FIELD: number}
    return data


# --- admin ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PatternInfo:
    slug: str
    pattern: str | None
    configured: bool  # set by the admin (else the default)
    last: dict[str, int]  # scope -> last number given


def pattern_info(engine: Engine, slug: str) -> PatternInfo:
    from models.tables import Sequence

    value = read_setting(engine, PATTERN_PREFIX + slug)
    configured = isinstance(value, Mapping) and isinstance(value.get("pattern"), str)
    with session_scope(engine, write=False) as session:
        rows = session.execute(select(Sequence.scope, Sequence.last).where(Sequence.name == slug)).all()
    return PatternInfo(slug, value["pattern"] if configured else DEFAULT_PATTERNS.get(slug), configured,
                       {str(s): int(n) for s, n in rows})


def set_pattern(engine: Engine, slug: str, pattern: str | None, *, actor: Actor) -> str | None:
    """Set a form's pattern (None: back to the default). Admins only; audited. Numbers already given stay."""
    require_admin(actor)
    if pattern is not None:
        pattern = check_pattern(pattern)
    with session_scope(engine) as session:
        if pattern is not None:
            others = session.execute(select(Setting.key, Setting.value).where(
                Setting.key.startswith(PATTERN_PREFIX), Setting.key != PATTERN_PREFIX + slug)).all()  # type: ignore[attr-defined]
            used = {k[len(PATTERN_PREFIX):]: (v or {}).get("pattern") for k, v in others}
            used.update({s: p for s, p in DEFAULT_PATTERNS.items() if s != slug and s not in used})
            for other, other_pattern in used.items():
                if other_pattern == pattern:
                    raise EngineError("numbering.pattern_taken", other=other)
        write_setting(session, PATTERN_PREFIX + slug, {"pattern": pattern} if pattern is not None else None, actor,
                      detail={"form": slug, "pattern": pattern})
    return pattern


def preview(pattern: str, year: int | None = None, seq: int = 1) -> str:
    return render(check_pattern(pattern), year or local_year(), seq)


__all__ = [
    "DEFAULT_PATTERNS", "PatternInfo", "advance", "assign_number", "check_pattern", "checked_pattern", "next_value",
    "number_hook", "number_rows", "pattern_for", "pattern_from", "pattern_info", "preview", "render", "scope_for", "set_pattern",
    "with_number",
]
