"""Reliability fixtures: real databases with the built-in forms (SQLite files, PostgreSQL when
TEST_DATABASE_URL is set) and small helpers to count rows and check a database's health.

`template_db` is made once per test session (migrations + the built-in load take seconds) and
copied for every SQLite test; PostgreSQL tests initialise their fresh database themselves.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.db import dispose_engine, get_engine, is_postgres, session_scope  # noqa: E402
from models.tables import AuditEvent, Submission  # noqa: E402
from tests.conftest import PG_URL, drop_pg_database, make_pg_database  # noqa: E402


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the built-in forms and one user per role (made once, copied per test)."""
    from tests.app.entry_helpers import make_template

    return make_template(tmp_path_factory.mktemp("reliability_tpl") / "console.db")


def fresh_sqlite(tmp_path: Path, template: Path, name: str = "console.db") -> str:
    path = tmp_path / name
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def loaded_url(request: pytest.FixtureRequest, tmp_path: Path, template_db: Path) -> Iterator[str]:
    """A database with the built-in forms: a SQLite copy of the template, or a fresh PostgreSQL one."""
    if request.param == "sqlite":
        url = fresh_sqlite(tmp_path, template_db)
        yield url
        dispose_engine(url)
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it)")
    url = make_pg_database()
    from engine.forms import init_database

    init_database(get_engine(url))
    yield url
    drop_pg_database(url)


def count(engine: Engine, model: Any, *where: Any) -> int:
    with session_scope(engine, write=False) as s:
        return int(s.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def counts(engine: Engine) -> dict[str, int]:
    """Row counts of the tables a save touches (records and their audit events)."""
    return {"submissions": count(engine, Submission), "audit": count(engine, AuditEvent)}


def create_audit_ids(engine: Engine) -> set[int]:
    """Ids of the records that have a create event in the audit log."""
    with session_scope(engine, write=False) as s:
        rows = s.execute(select(AuditEvent.entity_id).where(
            AuditEvent.action == "create", AuditEvent.entity == "submission")).scalars().all()
    return {int(r) for r in rows}


def integrity_problems(engine: Engine) -> list[str]:
    """engine.check.check_database plus, on SQLite, PRAGMA integrity_check / foreign_key_check."""
    from engine.check import check_database

    found = [p.describe("en") for p in check_database(engine)]
    with engine.connect() as conn:
        if is_postgres(engine):
            # every index agrees with its table (a scan through each unique index)
            dup = conn.execute(text("SELECT count(*) - count(DISTINCT id) FROM submissions")).scalar_one()
            if dup:
                found.append(f"duplicate submission ids: {dup}")
        else:
            rows = [r[0] for r in conn.execute(text("PRAGMA integrity_check")).fetchall()]
            if rows != ["ok"]:
                found.append("integrity_check: " + "; ".join(rows[:5]))
            fks = conn.execute(text("PRAGMA foreign_key_check")).fetchall()
            if fks:
                found.append(f"foreign_key_check: {fks[:5]}")
    return found
