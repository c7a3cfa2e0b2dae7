"""The benchmark cases: each one times the engine and its hand-written baseline in the same run.

- `store_case`: `storage.create` (validate + insert + audit, one transaction per record) against a
  DB-API insert of the same two rows (the record and its audit event) per transaction.
- `bulk_case`: `storage.bulk_create(validate=True)` against a DB-API `executemany` of the same rows.
- `aggregate_case`: the intake dashboard and the year-end report computed by the engine (caches
  cleared) against hand-written SQL for the same numbers on the same indexes (the numbers are
  compared), and the same SQL with this module's expression indexes dropped (in a transaction that
  is rolled back).

Baselines use a plain DB-API connection (sqlite3 with the engine's PRAGMAs, or psycopg). Rows the
cases add are deleted again and the form's change stamp is bumped, so the data keeps its size and
no cache serves numbers from before.
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy.engine import Engine  # noqa: E402

from engine.access import Actor  # noqa: E402

BENCH_ACTOR = Actor("bench", "manager", language="zh")
SUB_COLS = ("form_id", "form_version", "data", "number", "state", "state_since", "due_at", "paused_at",
            "parent_id", "created_by", "created_at", "updated_by", "updated_at", "revision", "deleted_at",
            "deleted_by")
AUDIT_COLS = ("at", "username", "action", "entity", "entity_id", "form_slug", "detail")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def metric_for(engine: Engine) -> str:
    """What the ratios are taken from. SQLite: the process's CPU time, since every bit of the work (the
    database included) runs in this process and CPU time does not move with other processes' load.
    PostgreSQL: wall time, since the server's share of the work runs in other processes."""
    return "wall" if engine.dialect.name == "postgresql" else "cpu"


class Meter:
    """Wall and CPU seconds of repeated measurements (per item when `n` is given)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    @contextmanager
    def __call__(self, n: int = 1) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall.append((time.perf_counter() - wall) / n)
        self.cpu.append((time.process_time() - cpu) / n)

    def medians(self) -> dict[str, float]:
        return {"wall": median(self.wall), "cpu": median(self.cpu)}


def paired(mine: list[float], base: list[float]) -> float:
    """The median of the per-round ratios: each engine round against the baseline round measured right
    after it, so a machine that speeds up or slows down between rounds changes both sides alike."""
    return median([a / b for a, b in zip(mine, base, strict=True) if b > 0])


def compare(engine: Engine, mine: Meter, base: Meter, **extra: Any) -> dict[str, Any]:
    m = metric_for(engine)
    a, b = mine.medians(), base.medians()
    if len(mine.cpu) == len(base.cpu):  # rounds in pairs: the median of the paired ratios
        ratios = {"wall": paired(mine.wall, base.wall), "cpu": paired(mine.cpu, base.cpu)}
    else:
        ratios = {k: a[k] / b[k] for k in ("wall", "cpu")}
    return {"metric": m, "engine_s": a[m], "raw_s": b[m], "ratio": ratios[m], "engine": a, "raw": b,
            "ratio_wall": ratios["wall"], "ratio_cpu": ratios["cpu"], **extra}


# --- a plain DB-API connection ------------------------------------------------------------------------
class Raw:
    """A DB-API connection to the engine's database, set up as the engine sets up its own."""

    def __init__(self, engine: Engine) -> None:
        self.pg = engine.dialect.name == "postgresql"
        if self.pg:
            import psycopg

            url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.conn: Any = psycopg.connect(url, autocommit=True)
            self.mark = "%s"
        else:
            self.conn = sqlite3.connect(str(engine.url.database), isolation_level=None, timeout=30)
            for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL", "foreign_keys=ON"):
                self.conn.execute(f"PRAGMA {pragma}")
            self.mark = "?"

    def sql(self, text: str) -> str:
        """This module writes `?` placeholders; for psycopg they become `%s` (not inside quotes)."""
        if not self.pg:
            return text
        out, quoted = [], False
        for ch in text:
            if ch == "'":
                quoted = not quoted
            out.append("%s" if ch == "?" and not quoted else ("%%" if ch == "%" else ch))
        return "".join(out)

    def execute(self, text: str, params: tuple | list = ()) -> list[tuple]:
        cur = self.conn.execute(self.sql(text), params)
        try:
            return list(cur.fetchall()) if cur.description else []
        finally:
            cur.close()

    def begin(self) -> None:
        self.conn.execute("BEGIN" if self.pg else "BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def insert_sql(self, table: str, cols: tuple[str, ...]) -> str:
        return self.sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})")

    def adapt(self, row: tuple, cols: tuple[str, ...]) -> tuple:
        """Values read back from the table, ready to insert again (PostgreSQL: JSON as Jsonb)."""
        if not self.pg:
            return row
        from psycopg.types.json import Jsonb

        return tuple(Jsonb(v) if c in ("data", "detail") and v is not None else v for c, v in zip(cols, row, strict=True))


def _bump(engine: Engine, slug: str) -> None:
    from engine import stamps
    from engine.db import session_scope

    with session_scope(engine) as s:
        stamps.bump(s, stamps.data_scope(slug))


def _cleanup(engine: Engine, raw: Raw, first_sub: int, first_audit: int, slug: str) -> None:
    raw.begin()
    raw.execute("DELETE FROM audit_events WHERE id > ?", (first_audit,))
    raw.execute("DELETE FROM submissions WHERE id > ?", (first_sub,))
    raw.commit()
    _bump(engine, slug)


def _max_ids(raw: Raw) -> tuple[int, int]:
    sub = raw.execute("SELECT COALESCE(MAX(id), 0) FROM submissions")[0][0]
    aud = raw.execute("SELECT COALESCE(MAX(id), 0) FROM audit_events")[0][0]
    return int(sub), int(aud)


def intake_rows(engine: Engine, n: int, seed: int, today: date) -> list[dict[str, Any]]:
    """`n` raw intake records as the entry page or an import would submit them (no meta columns)."""
    from engine.access import SYSTEM
    from engine.demo import Seeder

    seeder = Seeder(engine, years=3, seed=seed, scale=0, today=today, actor=SYSTEM, progress=None)
    rng = random.Random(seed)
    start = today - timedelta(days=3 * 365)
    rows = []
    for _ in range(n):
        day = start + timedelta(days=rng.randrange(3 * 365))
        while day.weekday() >= 5:
            day -= timedelta(days=1)
        rows.append({k: v for k, v in seeder.intake.row(day).items() if not k.startswith("_")})
    return rows


def _renumber(row: tuple) -> tuple:
    """The same row with its application number made distinct (the number column is unique)."""
    i = SUB_COLS.index("number")
    return row if row[i] is None else (*row[:i], f"{row[i]}-b", *row[i + 1:])


# --- store ------------------------------------------------------------------------------------------
def store_case(engine: Engine, *, rounds: int = 5, per_round: int = 30, today: date | None = None) -> dict[str, Any]:
    """Seconds per record: engine create vs hand-written insert of the same record + audit rows."""
    from engine.storage import create

    today = today or date.today()
    raw = Raw(engine)
    mine, base = Meter(), Meter()
    try:
        rows = intake_rows(engine, per_round + 5, seed=101, today=today)
        for r in range(-1, rounds):  # round -1 warms both paths (caches, statements); not counted
            first_sub, first_audit = _max_ids(raw)
            batch = rows[:5] if r < 0 else rows[5:]
            meter = mine if r >= 0 else Meter()
            with meter(len(batch)):
                for values in batch:
                    create(engine, "intake", values, actor=BENCH_ACTOR)
            subs = raw.execute(f"SELECT {', '.join(SUB_COLS)} FROM submissions WHERE id > ? ORDER BY id", (first_sub,))
            audits = raw.execute(f"SELECT {', '.join(AUDIT_COLS)} FROM audit_events WHERE id > ? ORDER BY id",
                                 (first_audit,))
            assert len(subs) == len(audits) == len(batch), (len(subs), len(audits))
            pairs = [(raw.adapt(_renumber(s), SUB_COLS), raw.adapt(a, AUDIT_COLS))
                     for s, a in zip(subs, audits, strict=True)]
            ins_sub, ins_audit = raw.insert_sql("submissions", SUB_COLS), raw.insert_sql("audit_events", AUDIT_COLS)
            meter = base if r >= 0 else Meter()
            with meter(len(pairs)):
                for sub, aud in pairs:
                    raw.begin()
                    raw.conn.execute(ins_sub, sub)
                    raw.conn.execute(ins_audit, aud)
                    raw.commit()
            _cleanup(engine, raw, first_sub, first_audit, "intake")
    finally:
        raw.close()
    return compare(engine, mine, base, rounds=rounds, per_round=per_round)


# --- bulk -------------------------------------------------------------------------------------------
def bulk_case(engine: Engine, *, rounds: int = 3, rows: int = 5000, today: date | None = None) -> dict[str, Any]:
    """Seconds per row: bulk_create(validate=True) vs a DB-API executemany of the same stored rows."""
    from engine.storage import bulk_create

    today = today or date.today()
    raw = Raw(engine)
    mine, base = Meter(), Meter()
    try:
        source = intake_rows(engine, rows, seed=202, today=today)
        for r in range(-1, rounds):
            batch = source[:200] if r < 0 else source
            first_sub, first_audit = _max_ids(raw)
            with (mine if r >= 0 else Meter())(len(batch)):
                bulk_create(engine, "intake", batch, actor=BENCH_ACTOR, validate=True)
            stored = [raw.adapt(_renumber(s), SUB_COLS) for s in raw.execute(
                f"SELECT {', '.join(SUB_COLS)} FROM submissions WHERE id > ? ORDER BY id", (first_sub,))]
            assert len(stored) == len(batch)
            mid_sub, _mid_audit = _max_ids(raw)
            ins = raw.insert_sql("submissions", SUB_COLS)
            with (base if r >= 0 else Meter())(len(stored)):
                raw.begin()
                if raw.pg:
                    with raw.conn.cursor() as cur:
                        cur.executemany(ins, stored)
                else:
                    raw.conn.executemany(ins, stored)
                raw.commit()
            assert _max_ids(raw)[0] > mid_sub
            _cleanup(engine, raw, first_sub, first_audit, "intake")
    finally:
        raw.close()
    return compare(engine, mine, base, rounds=rounds, rows=rows)


# --- aggregates -------------------------------------------------------------------------------------
@dataclass
class HandQueries:
    """Hand-written SQL for the intake dashboard and the year-end report (one dialect)."""

    pg: bool
    forms: dict[str, int]
    now_bound: Any
    queries: list[tuple[str, str, tuple]] = field(default_factory=list)

    def j(self, key: str, alias: str = "") -> str:
        col = f"{alias}data" if alias else "data"
        return f"({col} ->> '{key}')" if self.pg else f"json_extract({col}, '$.\"{key}\"')"

    def num(self, key: str) -> str:
        j = self.j(key)
        if self.pg:
            return f"CASE WHEN {j} ~ '^[-+]?[0-9]+([.][0-9]+)?$' THEN CAST({j} AS NUMERIC) END"
        return f"CAST({j} AS FLOAT)"

    def live(self, slug: str, alias: str = "") -> tuple[str, tuple]:
        a = f"{alias}" if alias else ""
        return f"{a}form_id = ? AND {a}deleted_at IS NULL", (self.forms[slug],)

    def dated(self, slug: str, key: str | None, lo: date, hi: date, alias: str = "") -> tuple[str, tuple]:
        where, params = self.live(slug, alias)
        if key:
            j = self.j(key, alias)
            return f"{where} AND {j} >= ? AND {j} < ?", (*params, lo.isoformat(), (hi + timedelta(days=1)).isoformat())
        return where, params

    def list_counts(self, slug: str, key: str, where: str, params: tuple) -> str:
        """Records per distinct list (folded into items by `fold_lists`), on the list's expression index."""
        if self.pg:
            value = f"(s.data -> '{key}')"
            return (f"SELECT {value}, count(*) FROM submissions s WHERE {where} "
                    f"AND jsonb_typeof({value}) = 'array' GROUP BY {value}")
        path = f"'$.\"{key}\"'"
        return (f"SELECT json_extract(s.data, {path}), count(*) FROM submissions s WHERE {where} "
                f"AND json_type(s.data, {path}) = 'array' GROUP BY json_extract(s.data, {path})")


def fold_lists(rows: list[tuple]) -> dict[str, int]:
    """{item: records} from (list, records) rows."""
    out: dict[str, int] = {}
    for found, n in rows:
        items = json.loads(found) if isinstance(found, str) else found
        if isinstance(items, list):
            for item in {str(i) for i in items if i is not None}:
                out[item] = out.get(item, 0) + int(n)
    return out


def fold_months(rows: list[tuple]) -> list[tuple[str, int]]:
    months: dict[str, int] = {}
    for day, n in rows:
        if day is not None:
            months[str(day)[:7]] = months.get(str(day)[:7], 0) + int(n)
    return sorted(months.items())


def hand_queries(engine: Engine, now: datetime, year: int, with_network: bool) -> HandQueries:
    from sqlalchemy import select

    from engine import reports
    from models.tables import Form, Submission

    with engine.connect() as conn:
        forms = {s: int(i) for s, i in conn.execute(select(Form.slug, Form.id))}
    bind = Submission.__table__.c.due_at.type._cached_bind_processor(engine.dialect)  # type: ignore[attr-defined]
    hq = HandQueries(engine.dialect.name == "postgresql", forms, bind(now) if bind else now)
    q = hq.queries
    j = hq.j
    # the intake dashboard
    w, p = hq.live("intake")
    # records per day on the date's index, folded into months; their sum (days or none) is the total
    day = j("application_date")
    q.append(("dash.by_month", f"SELECT {day}, count(*) FROM submissions WHERE {w} GROUP BY {day}", p))
    for key in ("case_category", "intake_channel", "case_cause", "service_type"):
        q.append((f"dash.{key}", f"SELECT {j(key)}, count(*) FROM submissions WHERE {w} GROUP BY {j(key)}", p))
    ws, ps = hq.live("intake", "s.")
    q.append(("dash.special_groups", hq.list_counts("intake", "special_groups", ws, ps), ps))
    late = "CASE WHEN due_at IS NOT NULL AND due_at < ? AND paused_at IS NULL THEN 1 ELSE 0 END"
    q.append(("dash.funnel", f"SELECT state, count(*), COALESCE(SUM({late}), 0) FROM submissions WHERE {w} "
                             f"GROUP BY state", (hq.now_bound, *p)))
    # the year-end report: this year and the one before
    accepted = ", ".join(f"'{s}'" for s in reports.ACCEPTED_STATES)
    for tag, y in (("cur", year), ("prev", year - 1)):
        lo, hi = date(y, 1, 1), date(y, 12, 31)
        w, p = hq.dated("intake", "application_date", lo, hi)
        g = f"{j('case_category')}, {j('criminal_route')}, state"
        q.append((f"{tag}.intake", f"SELECT {g}, count(*) FROM submissions WHERE {w} GROUP BY {g}", p))
        q.append((f"{tag}.refusal", f"SELECT {j('refusal_reason')}, count(*) FROM submissions WHERE {w} "
                                    f"AND state = 'refused' GROUP BY {j('refusal_reason')}", p))
        ws, ps = hq.dated("intake", "application_date", lo, hi, "s.")
        q.append((f"{tag}.groups", hq.list_counts("intake", "special_groups", f"{ws} AND s.state IN ({accepted})",
                                                  ps), ps))
        w, p = hq.dated("consultation", "consultation_date", lo, hi)
        q.append((f"{tag}.consult", f"SELECT {j('channel')}, count(*) FROM submissions WHERE {w} "
                                    f"GROUP BY {j('channel')}", p))
        w, p = hq.dated("outreach_event", "event_date", lo, hi)
        q.append((f"{tag}.events", f"SELECT {j('target_group')}, count(*) FROM submissions WHERE {w} "
                                   f"GROUP BY {j('target_group')}", p))
        ws, ps = hq.dated("outreach_event", "event_date", lo, hi, "s.")
        q.append((f"{tag}.tally", f"SELECT t.counter, COALESCE(SUM(t.delta), 0) FROM tally_events t JOIN submissions s "
                                  f"ON s.id = t.submission_id WHERE {ws} GROUP BY t.counter", ps))
        w, p = hq.dated("hearing_observation", "hearing_date", lo, hi)
        q.append((f"{tag}.hearings", f"SELECT count(*), COALESCE(SUM({hq.num('observer_count')}), 0) "
                                     f"FROM submissions WHERE {w}", p))
        w, p = hq.dated("return_visit", "visit_date", lo, hi)
        g = f"{j('reached')}, {j('satisfaction')}"
        q.append((f"{tag}.visits", f"SELECT {g}, count(*) FROM submissions WHERE {w} GROUP BY {g}", p))
        w, p = hq.live("integrity_check")
        m = j("month")
        q.append((f"{tag}.integrity", f"SELECT {m}, count(DISTINCT {j('staff')}) FROM submissions WHERE {w} "
                                      f"AND {m} >= ? AND {m} <= ? GROUP BY {m}", (*p, f"{y:04d}-01", f"{y:04d}-12")))
        w, p = hq.dated("archive_checklist", "archived_on", lo, hi)
        q.append((f"{tag}.archive", f"SELECT {j('complete')}, count(*) FROM submissions WHERE {w} "
                                    f"GROUP BY {j('complete')}", p))
        q.append((f"{tag}.grades", f"SELECT {j('grade')}, count(*) FROM submissions WHERE {w} "
                                   f"GROUP BY {j('grade')}", p))
        if with_network:
            parts, params = [], []
            for slug, key in (("intake", "application_date"), ("consultation", "consultation_date"),
                              ("outreach_event", "event_date")):
                w, p = hq.dated(slug, key, lo, hi)
                parts.append(f"SELECT {j('liaison_point')} AS lp FROM submissions WHERE {w} "
                             f"AND {j('liaison_point')} IS NOT NULL")
                params += p
            q.append((f"{tag}.network", f"SELECT count(*) FROM ({' UNION '.join(parts)}) u", tuple(params)))
    return hq


def run_hand(raw: Raw, hq: HandQueries) -> dict[str, list[tuple]]:
    """Every hand-written query, with the Python folds a hand-written report would do too."""
    out = {name: raw.execute(sql, params) for name, sql, params in hq.queries}
    for name in out:
        if name.endswith("groups"):
            fold_lists(out[name])
        elif name == "dash.by_month":
            fold_months(out[name])
    return out


def _unordered(rows: Any) -> Any:
    return sorted(map(repr, rows)) if isinstance(rows, list) else rows


def _norm(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if v is not None and not isinstance(v, int | str):
        try:
            f = float(v)
            return int(f) if f.is_integer() else f
        except (TypeError, ValueError):
            return str(v)
    return v


def check_numbers(hand: dict[str, list[tuple]], dash: Any, report: Any) -> list[str]:
    """Figures where the engine and the hand-written SQL disagree (empty: all equal)."""
    from engine import reports

    bad: list[str] = []

    def same(name: str, a: Any, b: Any) -> None:
        if a != b:
            bad.append(f"{name}: engine {a!r} != hand {b!r}")

    same("dashboard.total", dash.total, sum(int(n) for _day, n in hand["dash.by_month"]))
    same("dashboard.by_month", sorted(dash.by_month), fold_months(hand["dash.by_month"]))
    by_key = {b.key: {_norm(bar.value): bar.count for bar in b.bars if bar.count} for b in dash.breakdowns}
    for key in ("case_category", "intake_channel", "case_cause", "service_type", "special_groups"):
        found = hand[f"dash.{key}"]
        rows = fold_lists(found) if key == "special_groups" else {_norm(v): int(n) for v, n in found}
        if key in by_key and not any(b.truncated for b in dash.breakdowns if b.key == key):
            same(f"dashboard.{key}", by_key[key], {k: v for k, v in rows.items() if v})
    funnel = {s.state: (s.count, s.overdue) for s in dash.funnel if s.count}
    terminal = {s.state for s in dash.funnel if s.terminal}
    hand_funnel = {st: (int(n), 0 if st in terminal else int(o)) for st, n, o in hand["dash.funnel"] if st is not None}
    same("dashboard.funnel", funnel, hand_funnel)

    cur = {"intake": {(_norm(c), _norm(r), s): int(n) for c, r, s, n in hand["cur.intake"]}}
    acc = sum(n for (_c, _r, s), n in cur["intake"].items() if s in reports.ACCEPTED_STATES)
    closed = sum(n for (_c, _r, s), n in cur["intake"].items() if s in reports.CLOSED_STATES)
    same("cases.accepted", report.get("cases.accepted"), acc)
    same("cases.closed", report.get("cases.closed"), closed)
    same("cases.refused", report.get("cases.refused"),
         sum(n for (_c, _r, s), n in cur["intake"].items() if s == "refused"))
    for value, n in fold_lists(hand["cur.groups"]).items():
        same(f"groups.{value}", report.get(f"groups.{value}"), int(n))
    same("consultations.total", report.get("consultations.total"), sum(int(n) for _v, n in hand["cur.consult"]))
    same("outreach.events", report.get("outreach.events"), sum(int(n) for _v, n in hand["cur.events"]))
    for counter, n in hand["cur.tally"]:
        same(f"outreach.{counter}", report.get(f"outreach.{counter}"), int(n))
    sessions, persons = hand["cur.hearings"][0]
    same("hearings.sessions", report.get("hearings.sessions"), int(sessions))
    same("hearings.person_times", report.get("hearings.person_times"), int(round(float(persons or 0))))
    same("visits.total", report.get("visits.total"), sum(int(n) for *_k, n in hand["cur.visits"]))
    same("archive.total", report.get("archive.total"), sum(int(n) for _v, n in hand["cur.archive"]))
    same("integrity.checks", report.get("integrity.checks"), sum(int(n) for _m, n in hand["cur.integrity"]))
    if "cur.network" in hand and report.get("network.active") is not None:
        same("network.active", report.get("network.active"), int(hand["cur.network"][0][0]))
    return bad


def engine_dashboard(engine: Engine, now: datetime) -> Any:
    """The intake dashboard, computed (its caches emptied first)."""
    from engine import dashboards

    dashboards.clear_cache()
    return dashboards.form_dashboard(engine, "intake", actor=BENCH_ACTOR, now=now)


def engine_report(engine: Engine, year: int) -> Any:
    """The year-end report of `year` compared with the year before, computed (cache emptied first)."""
    from engine import reports

    clear = getattr(reports, "clear_cache", None)
    if clear is not None:
        clear()
    return reports.year_end_report(engine, date(year, 1, 1), date(year, 12, 31), compare=True)


PARTS = ("dashboard", "report")


def _part(name: str) -> str:
    return "dashboard" if name.startswith("dash.") else "report"


def aggregate_case(engine: Engine, *, reps: int = 3, no_index_reps: int = 1,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Engine aggregates vs hand-written SQL (same indexes), and vs that SQL without the indexes;
    the intake dashboard and the year-end report also apart."""
    from engine import reports

    now = datetime.now(UTC)
    year = date.today().year - 1  # the report page's default: last year
    with_network = hasattr(reports, "_raw_network")
    hq = hand_queries(engine, now, year, with_network)
    split = {part: HandQueries(hq.pg, hq.forms, hq.now_bound, [q for q in hq.queries if _part(q[0]) == part])
             for part in PARTS}
    raw = Raw(engine)
    mine = {part: Meter() for part in PARTS}
    hand_m = {part: Meter() for part in PARTS}
    plain_m = {part: Meter() for part in PARTS}
    try:
        dash, report = engine_dashboard(engine, now), engine_report(engine, year)  # warm-up; numbers checked
        hand = run_hand(raw, hq)
        mismatches = check_numbers(hand, dash, report)
        for _ in range(reps):
            with mine["dashboard"]():
                engine_dashboard(engine, now)
            with mine["report"]():
                engine_report(engine, year)
            for part in PARTS:
                with hand_m[part]():
                    run_hand(raw, split[part])
        for _ in range(no_index_reps):
            raw.begin()
            try:
                dropped = drop_indexes_raw(raw)
                plain: dict[str, list[tuple]] = {}
                for part in PARTS:
                    with plain_m[part]():
                        plain.update(run_hand(raw, split[part]))
            finally:
                raw.rollback()
            differ = sorted(name for name in hand if _unordered(plain.get(name)) != _unordered(hand[name]))
            if differ:  # (row order may differ: a GROUP BY without ORDER BY follows the plan)
                mismatches.append(f"hand SQL without indexes gave other numbers: {', '.join(differ)}")
            log(f"    (no-index run: {len(dropped)} expression indexes dropped in a rolled-back transaction)")
    finally:
        raw.close()
    metric = metric_for(engine)

    def total(meters: dict[str, Meter]) -> Meter:
        both = Meter()
        both.wall = [a + b for a, b in zip(meters["dashboard"].wall, meters["report"].wall, strict=True)]
        both.cpu = [a + b for a, b in zip(meters["dashboard"].cpu, meters["report"].cpu, strict=True)]
        return both

    out = compare(engine, total(mine), total(hand_m), queries=len(hq.queries), mismatches=mismatches, year=year)
    plain_total = total(plain_m)
    n = plain_total.medians()[metric] if plain_total.wall else float("nan")
    out.update({"hand_s": out["raw_s"], "noindex_s": n, "noindex": plain_total.medians(),
                "vs_noindex": out["engine_s"] / n if n == n else None})
    for part in PARTS:
        e, h = mine[part].medians()[metric], hand_m[part].medians()[metric]
        p = plain_m[part].medians()[metric] if plain_m[part].wall else float("nan")
        out[part] = {"engine_s": e, "hand_s": h, "noindex_s": p, "ratio": e / h,
                     "vs_noindex": e / p if p == p else None}
    return out


def drop_indexes_raw(raw: Raw) -> list[str]:
    if raw.pg:
        names = [r[0] for r in raw.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'submissions' AND indexname LIKE 'ixf\\_%'")]
    else:
        names = [r[0] for r in raw.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ixf\\_%' ESCAPE '\\'")]
    for name in names:
        raw.execute(f'DROP INDEX "{name}"')
    return names


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


__all__ = ["BENCH_ACTOR", "Meter", "Raw", "aggregate_case", "bulk_case", "intake_rows", "median", "metric_for",
           "store_case"]
