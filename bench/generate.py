"""Benchmark data: grow a database to N submissions through the engine's validated bulk path.

The first step seeds the realistic demo (`engine.demo.seed_demo`: intake cases, consultations,
outreach events with sign-ups and tablet tallies, hearings, self-checks, archive checklists, return
visits, training records); every later step tops the database up to the wanted size with more
records spread over the built-in forms, mostly intake: intake rows come from the demo's own maker
(valid ID numbers, realistic shares and workflow states), the other forms' rows are the demo rows of
that form with a new date. Every row goes through `engine.storage.bulk_create(validate=True)` in
batches of `BATCH`, from `jobs` worker processes (validation runs in parallel; each batch is one
short write transaction, so the workers share SQLite's single writer well).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from engine.access import SYSTEM  # noqa: E402
from models.tables import Form, Submission, User  # noqa: E402

CST = timezone(timedelta(hours=8))
BATCH = 5000  # rows per bulk_create call (the engine's own batch size: one insert per call)
YEARS = 3
SHARES: dict[str, float] = {  # of the rows added after the demo seed
    "intake": 0.70,
    "consultation": 0.12,
    "return_visit": 0.05,
    "archive_checklist": 0.04,
    "hearing_observation": 0.03,
    "integrity_check": 0.03,
    "event_signup": 0.02,
    "training_record": 0.01,
}
DATE_KEYS: dict[str, str] = {  # the field that dates a cloned row
    "consultation": "consultation_date",
    "return_visit": "visit_date",
    "archive_checklist": "archived_on",
    "hearing_observation": "hearing_date",
    "training_record": "training_date",
}
USERS = ("chenli", "wangfang", "liqiang", "huangwei", "linxia", "zhangmin")


def count_submissions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Submission)).scalar_one())


def prepare(engine: Engine) -> None:
    """Schema, built-in forms (and their expression indexes), a few staff users."""
    from engine.db import session_scope
    from engine.forms import init_database

    init_database(engine)
    with session_scope(engine) as s:
        have = set(s.execute(select(User.username)).scalars())
        for name in USERS:
            if name not in have:
                s.add(User(username=name, display_name=name, password_hash="!", role="staff"))
        if "bench" not in have:
            s.add(User(username="bench", display_name="bench", password_hash="!", role="manager"))


def seed_base(engine: Engine, first_size: int, today: date) -> int:
    """The demo data, scaled so that it is at most about 80% of the first size."""
    from engine.demo import seed_demo

    scale = max(0.05, min(1.0, first_size / 10_000))
    summary = seed_demo(engine, scale=scale, years=YEARS, today=today, force=True)
    return sum(summary.counts.values())


# --- workers --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    url: str
    slug: str
    count: int
    seed: int
    today: date
    templates: tuple[tuple[dict[str, Any], int | None], ...] = ()  # (data, parent id) for clones


def _day(rng: random.Random, today: date) -> date:
    start = today - timedelta(days=365 * YEARS - 1)
    d = start + timedelta(days=int(rng.random() * ((today - start).days + 1)))
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return max(d, start)


def _at(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, dtime(8, 30), CST) + timedelta(minutes=int(rng.random() * 540))


def _intake_rows(task: Task, engine: Engine) -> Callable[[], dict[str, Any]]:
    from engine.demo import Seeder

    seeder = Seeder(engine, years=YEARS, seed=task.seed, scale=0, today=task.today, actor=SYSTEM, progress=None)
    rng = seeder.rng
    return lambda: seeder.intake.row(_day(rng, task.today))


def _clone_rows(task: Task) -> Callable[[], dict[str, Any]]:
    rng = random.Random(task.seed)
    key = DATE_KEYS.get(task.slug)

    def make() -> dict[str, Any]:
        data, parent = rng.choice(task.templates)
        row = dict(data)
        day = _day(rng, task.today)
        if key and key in row:
            row[key] = day.isoformat()
        if task.slug == "integrity_check" and "month" in row:
            row["month"] = day.strftime("%Y-%m")
        if parent is not None:
            row["_parent_id"] = parent
        row["_created_at"] = _at(day, rng)
        row["_created_by"] = rng.choice(USERS)
        return row

    return make


def run_task(task: Task) -> tuple[str, int, float]:
    """Make and store `task.count` rows of one form (in a worker process). (slug, rows, CPU seconds)"""
    from engine.db import get_engine
    from engine.storage import bulk_create

    engine = get_engine(task.url)
    started = time.process_time()
    make = _intake_rows(task, engine) if task.slug == "intake" else _clone_rows(task)
    done = 0
    while done < task.count:
        n = min(BATCH, task.count - done)
        done += bulk_create(engine, task.slug, [make() for _ in range(n)], actor=SYSTEM, validate=True, batch=BATCH)
    return task.slug, done, time.process_time() - started


def _templates(engine: Engine, slug: str, limit: int = 400) -> tuple[tuple[dict[str, Any], int | None], ...]:
    with engine.connect() as conn:
        form_id = conn.execute(select(Form.id).where(Form.slug == slug)).scalar()
        if form_id is None:
            return ()
        rows = conn.execute(select(Submission.data, Submission.parent_id).where(
            Submission.form_id == form_id, Submission.deleted_at.is_(None)).order_by(Submission.id).limit(limit)).all()
    return tuple((dict(d), p) for d, p in rows)


def _split(total: int, chunk: int) -> list[int]:
    out = [chunk] * (total // chunk)
    if total % chunk:
        out.append(total % chunk)
    return out


def grow(engine: Engine, url: str, target: int, *, today: date, jobs: int = 2, seed: int = 7,
         log: Callable[[str], None] = print) -> dict[str, Any]:
    """Add records until the database holds `target` submissions. Returns what was added and how fast."""
    have = count_submissions(engine)
    missing = target - have
    if missing <= 0:
        return {"added": 0, "seconds": 0.0, "rows_per_s": 0.0}
    tasks: list[Task] = []
    rng = random.Random(seed + target)
    shares = dict(SHARES)
    templates = {slug: _templates(engine, slug) for slug in shares if slug != "intake"}
    for slug in [s for s in shares if s != "intake" and not templates[s]]:
        del shares[slug]  # nothing to clone from: intake takes its share
    plan = {slug: int(missing * share) for slug, share in shares.items() if slug != "intake"}
    plan["intake"] = missing - sum(plan.values())
    for slug, n in plan.items():
        chunk = 20_000 if slug == "intake" else 40_000
        for part in _split(n, chunk):
            tasks.append(Task(url, slug, part, rng.randrange(1 << 30), today, templates.get(slug, ())))
    started = time.perf_counter()
    added = 0
    cpu = 0.0
    if jobs <= 1 or len(tasks) == 1:
        for task in tasks:
            _slug, n, secs = run_task(task)
            added += n
            cpu += secs
    else:
        engine.dispose()  # no pooled connections are inherited by the workers
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for _slug, n, secs in pool.map(run_task, tasks):
                added += n
                cpu += secs
                log(f"  generated {have + added:,} / {target:,}")
    seconds = time.perf_counter() - started
    return {"added": added, "seconds": seconds, "rows_per_s": added / seconds if seconds else 0.0,
            "cpu_seconds": cpu, "plan": plan}


def analyze(engine: Engine) -> None:
    """Planner statistics (PostgreSQL: ANALYZE after a bulk load, as autovacuum would soon do)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


__all__ = ["BATCH", "SHARES", "analyze", "count_submissions", "grow", "prepare", "run_task", "seed_base"]
