"""Change stamps: a per-scope counter in the database, bumped by every write.

Caches in any process key on `current(engine, scope)`, so several processes over one
database see each other's changes (there is no process-local truth).

Scopes: "forms", "users", "choice_lists", "data:<slug>" (records of one form) and "data"
(any record). Bumping "data:<slug>" bumps "data" too.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.db import session_scope

SCOPES: tuple[str, ...] = ("forms", "users", "choice_lists", "data")

# Same SQL on SQLite (>= 3.24) and PostgreSQL: an atomic upsert-increment. On PostgreSQL the
# row lock is held until the transaction ends, so bump late in a transaction.
_BUMP = text(
    "INSERT INTO change_stamps (scope, stamp) VALUES (:scope, 1) "
    "ON CONFLICT (scope) DO UPDATE SET stamp = change_stamps.stamp + 1"
)


def data_scope(slug: str) -> str:
    return f"data:{slug}"


def expand(scope: str) -> list[str]:
    # Specific scope first, then the global one: every writer locks in the same order.
    return [scope, "data"] if scope.startswith("data:") else [scope]


def bump(session: Session, scope: str) -> None:
    """Increment `scope` (and "data" for a "data:<slug>" scope) in the caller's transaction."""
    for name in expand(scope):
        session.execute(_BUMP, {"scope": name})


def bump_many(session: Session, scopes: Iterable[str]) -> None:
    seen: list[str] = []
    for scope in scopes:
        for name in expand(scope):
            if name not in seen:
                seen.append(name)
    for name in seen:
        session.execute(_BUMP, {"scope": name})


def current(engine: Engine, scope: str) -> int:
    """The stamp of `scope` now (0 if it was never bumped)."""
    with session_scope(engine, write=False) as session:
        value = session.execute(text("SELECT stamp FROM change_stamps WHERE scope = :scope"),
                                {"scope": scope}).scalar()
    return int(value or 0)


def current_many(engine: Engine, scopes: Iterable[str]) -> dict[str, int]:
    """Stamps of several scopes in one query (missing scopes are 0)."""
    wanted = list(dict.fromkeys(scopes))
    if not wanted:
        return {}
    params = {f"s{i}": s for i, s in enumerate(wanted)}
    marks = ", ".join(f":s{i}" for i in range(len(wanted)))
    with session_scope(engine, write=False) as session:
        rows = session.execute(text(f"SELECT scope, stamp FROM change_stamps WHERE scope IN ({marks})"), params)
        found = {scope: int(stamp) for scope, stamp in rows}
    return {s: found.get(s, 0) for s in wanted}
