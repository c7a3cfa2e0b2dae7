"""`make bench`: the performance benchmark (issue 7). Ratios measured in one run, never timed tests.

    .venv/bin/python bench/run.py --size 1000,10000,100000,1000000 [--database-url URL] [--jobs 2]

One database is grown through the sizes (the engine's validated bulk path; see generate.py). At
every size the cases of cases.py run in this process, and the pages (AppTest) and the export run in
a fresh subprocess each, so no st.cache_resource, engine or module cache carries over from one size
to the next. Each case is measured several times; the table shows medians. The run ends with

    RATIOS store=<x> bulk=<x> aggregate=<x> list_page=<x> dashboard_page=<x> report_page=<x> export_memory=<x>

store / bulk / aggregate at the largest size; the page ratios are the largest size over the smallest
(1k); export_memory is the largest size over 10k (else the smallest). Without --database-url the
database is a temporary SQLite file under /tmp; with a PostgreSQL server URL, a fresh database
`lac_bench_<time>` is created on that server (and dropped at the end unless --keep).
The output is also written to bench/results/<time>-<backend>.txt and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

TARGETS = {"store": 2.0, "bulk": 3.0, "aggregate": 1.2, "list_page": 1.5, "dashboard_page": 1.5,
           "report_page": 1.5, "export_memory": 2.0}
WARM_RERUNS = 15


# =====================================================================================================
# subprocess workers
# =====================================================================================================
def _worker_env(url: str, data_dir: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["LAC_DATA_DIR"] = data_dir
    os.chdir(ROOT)


def records_script() -> None:
    from pages.records import render_records

    render_records("intake")


def dashboard_script() -> None:
    from pages.dashboard import render_dashboard

    render_dashboard()


def report_script() -> None:
    from pages.report import render_report

    render_report()


def _warm(at: Any, reruns: int) -> dict[str, Any]:
    """The first run (wall seconds), then `reruns` warm reruns (wall and CPU seconds of this process)."""
    started = time.perf_counter()
    at.run()
    first = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"page failed: {at.exception[0].value}")
    wall, cpu = [], []
    for _ in range(reruns):
        w, c = time.perf_counter(), time.process_time()
        at.run()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
        if at.exception:
            raise RuntimeError(f"page failed on rerun: {at.exception[0].value}")
    return {"cold_s": first, "warm_s": wall, "warm_cpu_s": cpu}


def pages_worker(url: str, reruns: int) -> dict[str, Any]:
    """AppTest renders of the records list (first and a deep page), the dashboard and the report."""
    from cases import BENCH_ACTOR
    from streamlit.testing.v1 import AppTest

    from engine.db import get_engine
    from engine.queries import ListQuery, count_records

    def app(script: Any, **query: str) -> Any:
        at = AppTest.from_function(script, default_timeout=600)
        at.session_state["actor"] = BENCH_ACTOR
        at.session_state["lang"] = "zh"
        for k, v in query.items():
            at.query_params[k] = v
        return at

    out: dict[str, Any] = {}
    total = count_records(get_engine(url), "intake", ListQuery(), actor=BENCH_ACTOR)
    deep = max(1, (total // 20) // 2)
    at = app(records_script)
    out["list_first"] = _warm(at, reruns)
    out["list_first"]["rows"] = len(at.dataframe[0].value) if at.dataframe else 0
    at.number_input(key="records__intake__page").set_value(deep)
    out["list_deep"] = _warm(at, reruns)
    out["list_deep"].update(page=deep, rows=len(at.dataframe[0].value),
                            caption=" ".join(str(c.value) for c in at.caption)[:200])
    out["dashboard"] = _warm(app(dashboard_script, form="intake"), reruns)
    at = app(report_script)
    out["report"] = _warm(at, reruns)
    out["report"]["metrics"] = [str(m.value) for m in at.metric][:4]
    out["intake_records"] = total
    return out


class _Sink:
    """A binary stream that only counts what is written (the export's destination)."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def export_worker(url: str) -> dict[str, Any]:
    """Stream every form's records as CSV to a counting sink; peak RSS of this process."""
    from engine.access import SYSTEM
    from engine.db import get_engine
    from engine.exporters import export_records
    from engine.forms import list_forms

    engine = get_engine(url)
    infos = list_forms(engine, include_archived=True)
    forms = [f.slug for f in infos]
    smallest = min(infos, key=lambda f: f.count).slug
    export_records(engine, smallest, _Sink(), "csv", actor=SYSTEM)  # imports and caches, before the baseline
    base_rss = _rss_kb()
    base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    rows = size = 0
    for slug in forms:
        sink = _Sink()
        rows += export_records(engine, slug, sink, "csv", actor=SYSTEM).count
        size += sink.size
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rows": rows, "bytes": size, "seconds": seconds, "peak_rss_kb": peak, "baseline_rss_kb": base_rss,
            "baseline_peak_kb": base_peak, "growth_kb": max(0, peak - max(base_rss, base_peak))}


def pdf_worker(url: str) -> dict[str, Any]:
    """The year-end report PDF twice in one process: the font is parsed for the first one only."""
    from engine import pdf
    from engine.db import get_engine
    from engine.prints import report_pdf
    from engine.reports import year_end_report

    year = date.today().year - 1
    report = year_end_report(get_engine(url), date(year, 1, 1), date(year, 12, 31))
    times = []
    for _ in range(3):
        started = time.perf_counter()
        data = report_pdf(report, "zh")
        times.append(time.perf_counter() - started)
    return {"first_s": times[0], "next_s": sorted(times[1:])[0], "bytes": len(data),
            "font_templates": len(getattr(pdf, "_FONT_TEMPLATES", {}))}


def run_worker(kind: str, url: str, reruns: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lac-bench-") as data_dir:
        _worker_env(url, data_dir)
        if kind == "pages":
            return pages_worker(url, reruns)
        if kind == "export":
            return export_worker(url)
        if kind == "pdf":
            return pdf_worker(url)
    raise SystemExit(f"unknown worker {kind}")


def spawn(kind: str, url: str, reruns: int = WARM_RERUNS) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--database-url", url,
                           "--reruns", str(reruns)], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-3000:]}
    return json.loads(lines[-1])


# =====================================================================================================
# the run
# =====================================================================================================
class Output:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)


def _median(values: list[float]) -> float:
    from cases import median

    return median(values)


def _ms(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "—"
    if seconds >= 10:
        return f"{seconds:,.1f} s"
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def _human(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
        f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n))


def make_database(url: str | None, keep: bool) -> tuple[str, Any]:
    """(database URL for the run, cleanup callable)."""
    from sqlalchemy import create_engine, text

    if not url:
        path = Path(tempfile.mkdtemp(prefix="lac-bench-", dir="/tmp")) / "bench.db"
        return f"sqlite:///{path}", (lambda: None) if keep else (lambda: _remove_sqlite(path))
    if url.startswith("sqlite"):
        return url, lambda: None
    name = f"lac_bench_{datetime.now():%Y%m%d_%H%M%S}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base, _, _ = url.rpartition("/")
    bench_url = f"{base}/{name}"

    def drop() -> None:
        from engine.db import dispose_engine

        dispose_engine(bench_url)
        if keep:
            return
        eng = create_engine(url, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()

    return bench_url, drop


def _remove_sqlite(path: Path) -> None:
    for p in path.parent.glob(path.name + "*"):
        p.unlink(missing_ok=True)
    path.parent.rmdir()


def measure_size(engine: Any, url: str, size: int, args: argparse.Namespace, out: Output) -> dict[str, Any]:
    import cases

    res: dict[str, Any] = {"size": size}
    out(f"  store ({args.store_rounds} rounds of {args.store_records} records) ...")
    res["store"] = cases.store_case(engine, rounds=args.store_rounds, per_round=args.store_records)
    st = res["store"]
    out(f"    engine {_ms(st['engine_s'])}/record, DB-API {_ms(st['raw_s'])}/record ({st['metric']}), "
        f"ratio {st['ratio']:.2f} (wall {st['ratio_wall']:.2f})")
    out(f"  bulk ({args.bulk_rounds} rounds of {args.bulk_rows} rows) ...")
    res["bulk"] = cases.bulk_case(engine, rounds=args.bulk_rounds, rows=args.bulk_rows)
    bk = res["bulk"]
    out(f"    engine {bk['engine_s'] * 1e6:,.0f} µs/row, executemany {bk['raw_s'] * 1e6:,.0f} µs/row ({bk['metric']}), "
        f"ratio {bk['ratio']:.2f} (wall {bk['ratio_wall']:.2f})")
    no_index = 1 if size >= 1_000_000 else 2
    out(f"  aggregates ({args.agg_reps} reps, {no_index} without indexes) ...")
    res["aggregate"] = cases.aggregate_case(engine, reps=args.agg_reps, no_index_reps=no_index, log=out)
    agg = res["aggregate"]
    for part in ("dashboard", "report"):
        p = agg[part]
        out(f"    {part:<9}: engine {_ms(p['engine_s'])}, hand SQL {_ms(p['hand_s'])}, without indexes "
            f"{_ms(p['noindex_s'])}; ratio {p['ratio']:.2f}, vs no index {p['vs_noindex']:.3f}")
    out(f"    both     : engine {_ms(agg['engine_s'])}, hand SQL {_ms(agg['hand_s'])}, without indexes "
        f"{_ms(agg['noindex_s'])} ({agg['metric']}); "
        f"ratio {agg['ratio']:.2f}, vs no index {agg['vs_noindex']:.3f}; "
        + ("numbers equal" if not agg["mismatches"] else f"MISMATCH {agg['mismatches'][:3]}"))
    engine.dispose()
    out("  pages (AppTest in a subprocess) ...")
    res["pages"] = spawn("pages", url, args.reruns)
    if "error" in res["pages"]:
        out("    FAILED: " + res["pages"]["error"][-1500:])
    else:
        for k in ("list_first", "list_deep", "dashboard", "report"):
            v = res["pages"][k]
            out(f"    {k:<11} first run {_ms(v['cold_s'])}; warm reruns: median {_ms(_median(v['warm_s']))} wall, "
                f"{_ms(_median(v['warm_cpu_s']))} CPU")
    out("  export (subprocess) ...")
    res["export"] = spawn("export", url)
    if "error" in res["export"]:
        out("    FAILED: " + res["export"]["error"][-1500:])
    else:
        ex = res["export"]
        out(f"    {ex['rows']:,} rows, {ex['bytes'] / 1e6:,.1f} MB in {ex['seconds']:.1f} s; peak RSS "
            f"{ex['peak_rss_kb'] / 1024:,.0f} MiB (growth {ex['growth_kb'] / 1024:,.1f} MiB)")
    return res


def _page_time(result: dict[str, Any], key: str, metric: str) -> float:
    page = result["pages"][key]
    return _median(page["warm_cpu_s"] if metric == "cpu" else page["warm_s"])


def ratios(results: list[dict[str, Any]], metric: str) -> dict[str, float | None]:
    largest, smallest = results[-1], results[0]
    ten_k = next((r for r in results if r["size"] == 10_000), smallest)

    def page(key: str) -> float | None:
        try:
            return _page_time(largest, key, metric) / _page_time(smallest, key, metric)
        except (KeyError, ZeroDivisionError):
            return None

    def list_page() -> float | None:
        first, deep = page("list_first"), page("list_deep")
        return None if first is None or deep is None else max(first, deep)

    try:
        export = largest["export"]["peak_rss_kb"] / ten_k["export"]["peak_rss_kb"]
    except (KeyError, ZeroDivisionError):
        export = None
    return {
        "store": largest["store"]["ratio"],
        "bulk": largest["bulk"]["ratio"],
        "aggregate": largest["aggregate"]["ratio"],
        "list_page": list_page(),
        "dashboard_page": page("dashboard"),
        "report_page": page("report"),
        "export_memory": export,
    }


def table(results: list[dict[str, Any]], backend: str, metric: str) -> list[str]:
    sizes = [_human(r["size"]) for r in results]
    rows: list[tuple[str, list[str]]] = []
    unit = "CPU" if metric == "cpu" else "wall"

    def row(label: str, fn: Any) -> None:
        cells = []
        for r in results:
            try:
                cells.append(fn(r))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("—")
        rows.append((label, cells))

    row(f"store: engine per record ({unit})", lambda r: _ms(r["store"]["engine_s"]))
    row(f"store: DB-API per record ({unit})", lambda r: _ms(r["store"]["raw_s"]))
    row("store ratio", lambda r: f"{r['store']['ratio']:.2f}")
    row(f"bulk: engine per row ({unit})", lambda r: f"{r['bulk']['engine_s'] * 1e6:,.0f} µs")
    row(f"bulk: executemany per row ({unit})", lambda r: f"{r['bulk']['raw_s'] * 1e6:,.0f} µs")
    row("bulk ratio", lambda r: f"{r['bulk']['ratio']:.2f}")
    row(f"aggregates: engine ({unit})", lambda r: _ms(r["aggregate"]["engine_s"]))
    row(f"aggregates: hand SQL ({unit})", lambda r: _ms(r["aggregate"]["hand_s"]))
    row(f"aggregates: hand SQL, no index ({unit})", lambda r: _ms(r["aggregate"]["noindex_s"]))
    row("aggregate ratio", lambda r: f"{r['aggregate']['ratio']:.2f}")
    row("aggregate / no index", lambda r: f"{r['aggregate']['vs_noindex']:.3f}")
    for part in ("dashboard", "report"):
        row(f"  {part}: engine ({unit})", lambda r, p=part: _ms(r["aggregate"][p]["engine_s"]))
        row(f"  {part}: hand SQL, no index ({unit})", lambda r, p=part: _ms(r["aggregate"][p]["noindex_s"]))
        row(f"  {part}: ratio / no index", lambda r, p=part: f"{r['aggregate'][p]['ratio']:.2f} / "
            f"{r['aggregate'][p]['vs_noindex']:.3f}")
    for key, label in (("list_first", "records list, page 1"), ("list_deep", "records list, deep page"),
                       ("dashboard", "dashboard page"), ("report", "year-end report page")):
        row(f"{label} (warm, {unit})", lambda r, k=key: _ms(_page_time(r, k, metric)))
        if metric == "cpu":
            row(f"{label} (warm, wall)", lambda r, k=key: _ms(_page_time(r, k, "wall")))
        row(f"{label} (first run, wall)", lambda r, k=key: _ms(r["pages"][k]["cold_s"]))
    row("export: rows", lambda r: f"{r['export']['rows']:,}")
    row("export: time (wall)", lambda r: _ms(r["export"]["seconds"]))
    row("export: peak RSS", lambda r: f"{r['export']['peak_rss_kb'] / 1024:,.0f} MiB")
    row("export: RSS growth", lambda r: f"{r['export']['growth_kb'] / 1024:,.1f} MiB")
    row("data generation (wall)", lambda r: f"{r['generation']['rows_per_s']:,.0f} rows/s"
        if r["generation"]["added"] else "—")
    width = max(len(label) for label, _ in rows) + 2
    col = max(12, *(len(c) + 2 for _, cells in rows for c in cells))
    head = f"{'case (' + backend + ', medians)':<{width}}" + "".join(f"{s:>{col}}" for s in sizes)
    lines = [head, "-" * len(head)]
    lines += [f"{label:<{width}}" + "".join(f"{c:>{col}}" for c in cells) for label, cells in rows]
    return lines


def fmt_ratio(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1000,10000,100000,1000000", help="comma-separated sizes (submissions)")
    ap.add_argument("--database-url", default=None, help="PostgreSQL server URL (default: a SQLite file in /tmp)")
    ap.add_argument("--jobs", type=int, default=2, help="data-generation worker processes")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark database")
    ap.add_argument("--reruns", type=int, default=WARM_RERUNS, help="warm AppTest reruns per page")
    # 100 records a round: SQLite writes its WAL back into the database file every ~1,000 pages (~20
    # saves of an intake record); in rounds of 40 that happened once or twice per round, which alone
    # moved a round's ratio by up to 0.3. In rounds of 100 it happens ~5 times on both sides.
    ap.add_argument("--store-rounds", type=int, default=11)
    ap.add_argument("--store-records", type=int, default=100)
    ap.add_argument("--bulk-rounds", type=int, default=3)
    ap.add_argument("--bulk-rows", type=int, default=5000)
    ap.add_argument("--agg-reps", type=int, default=3)
    ap.add_argument("--pdf", action="store_true", help="also check the PDF font is parsed once per process")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.database_url, args.reruns), default=str))
        return 0

    import generate

    from engine.db import get_engine

    sizes = sorted({int(s.replace("_", "")) for s in args.size.split(",") if s.strip()})
    out = Output()
    started = time.perf_counter()
    url, cleanup = make_database(args.database_url, args.keep)
    engine = get_engine(url)
    backend = engine.dialect.name
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}-{backend}"
    out(f"bench: {backend}, sizes {', '.join(_human(s) for s in sizes)}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, {datetime.now():%Y-%m-%d %H:%M}")
    out(f"database: {engine.url.render_as_string(hide_password=True)}")
    results: list[dict[str, Any]] = []
    today = date.today()
    try:
        generate.prepare(engine)
        base = generate.seed_base(engine, sizes[0], today)
        out(f"demo seed: {base:,} records")
        for size in sizes:
            step = time.perf_counter()
            out(f"\n== {size:,} submissions ==")
            gen = generate.grow(engine, url, size, today=today, jobs=args.jobs, log=lambda s: None)
            generate.analyze(engine)
            out(f"  generated {gen['added']:,} rows in {gen['seconds']:.1f} s "
                f"({gen['rows_per_s']:,.0f} rows/s, validated bulk path, {args.jobs} processes; "
                f"{gen.get('cpu_seconds', 0.0):.0f} CPU s)")
            res = measure_size(engine, url, generate.count_submissions(engine), args, out)
            res["size"] = size
            res["generation"] = gen
            res["seconds"] = time.perf_counter() - step
            results.append(res)
            out(f"  ({res['seconds']:.0f} s at this size, {time.perf_counter() - started:.0f} s so far)")
            _save(stamp, out, results)  # what is measured so far survives an interrupted run
        if args.pdf:
            res = spawn("pdf", url)
            out(f"\npdf: {res}")
        out("")
        metric = "wall" if backend == "postgresql" else "cpu"
        for line in table(results, backend, metric):
            out(line)
        r = ratios(results, metric)
        out("")
        out(f"ratios from {'CPU time of the measuring process' if metric == 'cpu' else 'wall time'}; targets: "
            + ", ".join(f"{k} <= {v}" for k, v in TARGETS.items())
            + f"; aggregate / no index at {_human(sizes[-1])}: "
            + fmt_ratio(results[-1]["aggregate"]["vs_noindex"]))
        missed = [k for k, v in r.items() if v is None or v > TARGETS[k]]
        out("missed: " + (", ".join(missed) if missed else "none"))
        out(f"total time: {time.perf_counter() - started:.0f} s")
        out("RATIOS " + " ".join(f"{k}={fmt_ratio(v)}" for k, v in r.items()))
    finally:
        engine.dispose()
        cleanup()
    _save(stamp, out, results)
    return 0


def _save(stamp: str, out: Output, results: list[dict[str, Any]]) -> None:
    results_dir = BENCH / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / f"{stamp}.txt").write_text("\n".join(out.lines) + "\n", encoding="utf-8")
    (results_dir / f"{stamp}.json").write_text(json.dumps(results, default=str, indent=1), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
