"""Migrations: upgrading a database made by the previous release keeps every record.

tests/fixtures/release_0_1.db is what release 0.1 (schema revision 0001) left behind, built by
tests/reliability/make_previous_release_db.py with raw SQL (PostgreSQL: the same builder into a fresh
database). engine.forms.init_database (upgrade to head + first-start load) must then:

- keep every row of every 0.1 table, byte for byte where the schema did not change (records, audit
  events, form versions, users, reference items, tallies, counters, settings);
- leave a database engine.check.check_database finds nothing wrong with;
- read every record with engine.storage.get_record (its own form version: v1 records without the
  field v2 added), export every form's live records, and keep tally totals;
- keep working: the next intake record gets the next application number, a v1 record can be edited.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from engine.access import Actor
from engine.db import dispose_engine, get_engine
from engine.exporters import export_records
from engine.forms import init_database
from engine.storage import create, get_record, update
from models.tables import Sequence, Submission
from tests.app.entry_helpers import intake_values
from tests.conftest import PG_URL, drop_pg_database, make_pg_database
from tests.reliability.conftest import integrity_problems
from tests.reliability.make_previous_release_db import DEFAULT_PATH, RETIRED_LATER, build

ADMIN = Actor("admin", "admin")
STAFF = Actor("staff", "staff")
KEPT_TABLES = ("users", "choice_lists", "choice_items", "forms", "form_versions", "submissions", "tally_events",
               "audit_events", "sequences", "settings")


@pytest.fixture(params=["sqlite", "postgres"])
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "release_0_1.db"
        shutil.copyfile(DEFAULT_PATH, path)
        url = f"sqlite:///{path}"
        yield url
        dispose_engine(url)
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it)")
    url = make_pg_database()
    build(url)
    yield url
    drop_pg_database(url)


def _snapshot(engine: Engine) -> dict[str, list[tuple]]:
    out = {}
    with engine.connect() as conn:
        for name in KEPT_TABLES:
            cols = [c["name"] for c in conn.dialect.get_columns(conn, name)]
            order = ", ".join(c for c in ("id", "key", "name", "scope") if c in cols)
            out[name] = [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name} ORDER BY {order}"))]
    return out


def _revision(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def test_fixture_is_the_previous_release() -> None:
    """The committed file is small, at revision 0001 only, and holds the 0.1 rows."""
    import sqlite3

    assert DEFAULT_PATH.stat().st_size < 1_000_000
    conn = sqlite3.connect(f"file:{DEFAULT_PATH}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]
        assert conn.execute("SELECT count(*) FROM submissions").fetchone()[0] == 47
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "decisions" not in tables  # added by a later revision
    finally:
        conn.close()


def test_upgrade_keeps_every_record(old_db: str) -> None:
    from engine.backup import _known_revisions

    engine = get_engine(old_db)
    assert _revision(engine) == "0001"
    before = _snapshot(engine)
    init_database(engine)
    assert _revision(engine) == _known_revisions()[-1]
    after = _snapshot(engine)
    for name in KEPT_TABLES:
        kept = after[name][: len(before[name])] if name not in ("audit_events", "forms", "form_versions",
                                                                 "choice_lists", "choice_items") else after[name]
        missing = [row for row in before[name] if row not in kept]
        assert missing == [], f"{name}: {len(missing)} row(s) of 0.1 changed or lost, e.g. {missing[:1]}"
    assert integrity_problems(engine) == []

    # every record reads with its own version, deleted ones too (admin)
    with engine.connect() as conn:
        rows = conn.execute(select(Submission.id, Submission.data, Submission.form_version,
                                   Submission.deleted_at)).all()
    assert len(rows) == 47
    seen_v1 = seen_v2 = 0
    for sid, data, version, deleted_at in rows:
        rec = get_record(engine, sid, actor=ADMIN)
        assert rec.data == data and rec.version == version and rec.deleted == (deleted_at is not None)
        assert rec.history and rec.history[-1].action == "create"  # oldest event: its creation
        if rec.slug == "intake":
            has_field = rec.spec.field(RETIRED_LATER) is not None
            assert has_field == (version == 2)
            seen_v1 += version == 1
            seen_v2 += version == 2
    assert seen_v1 and seen_v2

    # every live record exports (and only those)
    for slug, expected in (("intake", 39), ("outreach_event", 1), ("event_signup", 6)):
        out = io.BytesIO()
        result = export_records(engine, slug, out, "csv", actor=ADMIN)
        table = list(csv.reader(io.StringIO(out.getvalue().decode("utf-8-sig"))))
        assert result.count == expected == len(table) - 1, (slug, result.count, len(table))
    names = {d["name"] for _i, d, _v, deleted in rows if "name" in d and deleted is None}
    assert names <= set(_intake_and_signup_names(engine))

    # tallies: totals as they were (an undo is a compensating row)
    from engine.tally import totals

    event_id = next(i for i, d, _v, _x in rows if d.get("title", "").startswith("法援惠民生"))
    assert totals(engine, event_id)["brochures"] == 24 and totals(engine, event_id)["consultations"] == 9


def _intake_and_signup_names(engine: Engine) -> list[str]:
    out = []
    for slug in ("intake", "event_signup"):
        buf = io.BytesIO()
        export_records(engine, slug, buf, "csv", actor=ADMIN, headers="key")
        out += [row["name"] for row in csv.DictReader(io.StringIO(buf.getvalue().decode("utf-8-sig")))]
    return out


def test_upgraded_database_keeps_working(old_db: str) -> None:
    engine = get_engine(old_db)
    init_database(engine)
    init_database(engine)  # a second start changes nothing
    sub = create(engine, "intake", intake_values("升级后新申请", 77, day="2025-12-01"), actor=STAFF)
    year = sub.created_at.astimezone(ZoneInfo("Asia/Shanghai")).year
    # the 0.1 counter goes on (no repeat, no gap) or a new year starts at 1
    assert sub.number == f"霞援申字〔{year}〕第{41 if year == 2025 else 1:04d}号"
    with engine.connect() as conn:
        assert conn.execute(select(Sequence.last).where(Sequence.scope == "2025")).scalar_one() == (
            41 if year == 2025 else 40)
    old: Any = get_record(engine, 1, actor=ADMIN)
    assert old.version == 1 and old.outdated
    edited = dict(old.data)
    edited["facts"] = old.data["facts"] + "（升级后补充）"
    fresh = update(engine, 1, edited, actor=ADMIN, revision=old.submission.revision)
    assert fresh.form_version == 1 and fresh.data["facts"].endswith("（升级后补充）")
    assert integrity_problems(engine) == []
