"""manage.py seed-demo: the office's report figures come out of the demo data, and check finds it clean."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "manage.py"


def run(db: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LAC_LANG")}
    env["LAC_DATA_DIR"] = str(db.parent / "data")
    proc = subprocess.run(
        [sys.executable, str(MANAGE), "--database-url", f"sqlite:///{db}", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        input="",
    )
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def rows(db: Path, slug: str) -> list[tuple[int, dict, str | None, int | None]]:
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "SELECT s.id, s.data, s.state, s.parent_id FROM submissions s JOIN forms f ON f.id = s.form_id "
            "WHERE f.slug = ? AND s.deleted_at IS NULL ORDER BY s.id",
            (slug,),
        ).fetchall()
    return [(i, json.loads(d), st, p) for i, d, st, p in found]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    db = tmp_path_factory.mktemp("demo") / "console.db"
    proc = run(db, "seed-demo", "--submissions", "200")
    assert proc.returncode == 0, proc.stderr
    return db, proc


def test_seed_demo_then_check_is_clean(seeded: tuple[Path, subprocess.CompletedProcess]) -> None:
    db, proc = seeded
    assert "2158" in proc.stdout and "200" in proc.stdout
    check = run(db, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "未发现问题" in check.stdout


def test_the_report_figures(seeded: tuple[Path, subprocess.CompletedProcess]) -> None:
    db, _ = seeded
    intake = rows(db, "intake")
    base = intake[:-200]  # the 200 bulk records come last
    assert sum(1 for _i, _d, state, _p in base if state != "applied") == 2158
    assert 1 <= sum(1 for _i, _d, state, _p in base if state == "applied") <= 10
    per_year: dict[int, int] = {}
    for _i, data, _s, _p in base:
        year = int(data["application_date"][:4])
        per_year[year] = per_year.get(year, 0) + 1
    assert len(per_year) in (3, 4) and max(per_year.values()) < 800  # ~720 a year over 3 x 365 days
    categories = {d["case_category"] for _i, d, _s, _p in base}
    assert categories == {"criminal", "civil", "labour", "administrative"}
    assert any(d.get("criminal_route") == "notified" for _i, d, _s, _p in base)
    assert {"accepted", "reviewing", "handling", "closed", "archived", "refused", "terminated"} <= {
        s for _i, _d, s, _p in base
    }

    hearings = rows(db, "hearing_observation")
    assert len(hearings) == 29 and sum(d["observer_count"] for _i, d, _s, _p in hearings) == 34

    events = rows(db, "outreach_event")
    groups = [d["target_group"] for _i, d, _s, _p in events]
    assert len(events) == 13 and groups.count("elderly") == 2 and groups.count("migrant_workers") == 1
    assert len({d["event_date"][:4] for _i, d, _s, _p in events}) == 1  # one campaign year
    signups = rows(db, "event_signup")
    assert signups and {p for _i, _d, _s, p in signups} <= {i for i, _d, _s, _p in events}

    with sqlite3.connect(db) as conn:
        totals = dict(
            conn.execute("SELECT counter, SUM(delta) FROM tally_events GROUP BY counter").fetchall()
        )
        taps = conn.execute("SELECT count(*), count(DISTINCT tap_id) FROM tally_events").fetchone()
    assert totals["brochures"] == 3200 and totals["consultations"] == 675
    assert taps[0] == taps[1]

    checks = rows(db, "integrity_check")
    per_person: dict[str, set[str]] = {}
    for _i, d, _s, _p in checks:
        per_person.setdefault(d["staff"], set()).add(d["month"])
    assert (
        len(per_person) >= 5 and len({len(m) for m in per_person.values()}) == 1
    )  # every month, every person
    archived = {i for i, _d, s, _p in base if s == "archived"}
    assert {d["case_ref"] for _i, d, _s, _p in rows(db, "archive_checklist")} == archived
    assert rows(db, "return_visit") and rows(db, "consultation") and rows(db, "training_record")


def test_valid_id_numbers(seeded: tuple[Path, subprocess.CompletedProcess]) -> None:
    from engine.idnumber import parse_id

    db, _ = seeded
    for _i, data, _s, _p in rows(db, "intake")[:500]:
        info = parse_id(data["id_number"])
        assert info.sex == data["sex"] and info.birth_date.isoformat() == data["birth_date"]


def test_seeding_twice_is_refused_unless_forced(seeded: tuple[Path, subprocess.CompletedProcess]) -> None:
    db, _ = seeded
    again = run(db, "seed-demo", "--scale", "0", "--submissions", "5")
    assert again.returncode == 1 and "--force" in again.stderr
    forced = run(db, "seed-demo", "--scale", "0", "--submissions", "5", "--force")
    assert forced.returncode == 0, forced.stderr


def _fingerprint(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        data = conn.execute(
            "SELECT data, state, created_at, created_by FROM submissions ORDER BY id"
        ).fetchall()
        taps = conn.execute("SELECT counter, delta, tap_id FROM tally_events ORDER BY id").fetchall()
    return hashlib.sha256(repr((data, taps)).encode()).hexdigest()


def test_same_seed_same_data(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    for db, seed in ((a, "7"), (b, "7"), (c, "8")):
        assert run(db, "seed-demo", "--scale", "0.1", "--seed", seed).returncode == 0
    assert _fingerprint(a) == _fingerprint(b) != _fingerprint(c)
