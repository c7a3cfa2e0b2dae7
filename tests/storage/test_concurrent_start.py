"""Starting together: four OS processes run the first start (schema upgrade + built-in forms and
reference lists) at the same moment on an empty database, PostgreSQL and a SQLite file.

Each child imports everything first, reports "ready", and then spins until the parent creates a
"go" file; the parent creates it only when all four are ready, so the four `init_database` calls
really start together (not one after another as the interpreters happen to finish loading).
Afterwards the database holds one clean schema (alembic_version: one row, at head; every table of
the models) and exactly one copy of each built-in form (one version each) and reference list; the
row counts equal those of a single first start on a database of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text

from engine.backup import table_counts, tables
from engine.db import dispose_engine, get_engine
from models.tables import AuditEvent, ChoiceItem, ChoiceList, Form, FormVersion

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
READY_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 300.0

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from engine.db import get_engine
    from engine.forms import init_database

    url, gate, me = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    (gate / f"ready-{me}").write_text("1")
    go = gate / "go"
    deadline = time.monotonic() + 300
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.002)
    started = time.time()
    result = init_database(get_engine(url))
    print(json.dumps({"started": started, "ended": time.time(),
                      "forms": result["forms_published"], "lists": result["lists_created"],
                      "problems": result["problems"]}))
    """
)


def _builtin_slugs() -> set[str]:
    import yaml

    return {yaml.safe_load(p.read_text(encoding="utf-8"))["slug"] for p in (ROOT / "data" / "forms").glob("*.yaml")}


def _builtin_lists() -> set[str]:
    import yaml

    out = set()
    for p in (ROOT / "data" / "reference").glob("*.yaml"):
        out.add(str(yaml.safe_load(p.read_text(encoding="utf-8")).get("name") or p.stem))
    return out


def _head() -> str:
    from engine.backup import _known_revisions

    return _known_revisions()[-1]


def _start_together(url: str, gate: Path) -> list[dict]:
    gate.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, url, str(gate), str(i)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(PROCESSES)
    ]
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(list(gate.glob("ready-*"))) < PROCESSES:
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                out, err = dead[0].communicate()
                pytest.fail(f"a process ended before the start: {dead[0].returncode}\n{out}\n{err}")
            assert time.monotonic() < deadline, "the processes did not get ready in time"
            time.sleep(0.05)
        (gate / "go").write_text("go")
        results = []
        for p in procs:
            out, err = p.communicate(timeout=RUN_TIMEOUT_S)
            assert p.returncode == 0, f"a starting process failed ({p.returncode}):\n{err[-4000:]}"
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _single_start_counts(tmp_path: Path) -> dict[str, int]:
    """Row counts after one ordinary first start (the reference)."""
    from engine.forms import init_database

    url = f"sqlite:///{tmp_path / 'single.db'}"
    try:
        init_database(get_engine(url))
        return table_counts(get_engine(url))
    finally:
        dispose_engine(url)


def _check_one_clean_start(url: str, results: list[dict], expected_counts: dict[str, int]) -> None:
    slugs, lists = _builtin_slugs(), _builtin_lists()
    assert slugs and lists
    # every process started (all four were released together) and none reported a problem
    assert all(not r["problems"] for r in results), [r["problems"] for r in results]
    assert max(r["started"] for r in results) - min(r["started"] for r in results) < 5.0
    # the first-start load ran once: each form and list was created by exactly one process
    published = [s for r in results for s in r["forms"]]
    created = [n for r in results for n in r["lists"]]
    assert sorted(published) == sorted(slugs)
    assert sorted(created) == sorted(lists)
    assert sum(1 for r in results if r["forms"]) == 1, "one process loaded the built-ins, the others found them"

    eng = get_engine(url)
    with eng.connect() as conn:
        # one clean schema, at head
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [_head()]
        present = set(inspect(conn).get_table_names())
        assert {t.name for t in tables()} | {"alembic_version"} <= present
        # exactly one copy of each built-in form (one version each) and of each reference list
        form_slugs = conn.execute(select(Form.slug)).scalars().all()
        assert sorted(form_slugs) == sorted(slugs)
        per_form = dict(conn.execute(select(FormVersion.form_id, func.count()).group_by(FormVersion.form_id)).all())
        assert set(per_form.values()) == {1}
        assert sorted(conn.execute(select(ChoiceList.name)).scalars().all()) == sorted(lists)
        dupes = conn.execute(select(ChoiceItem.list_id, ChoiceItem.value, func.count())
                             .group_by(ChoiceItem.list_id, ChoiceItem.value).having(func.count() > 1)).all()
        assert dupes == []
        publishes = conn.execute(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "publish")).scalar_one()
        assert publishes == len(slugs)
    # the same rows as one ordinary first start
    assert table_counts(eng) == expected_counts


@pytest.mark.postgres
def test_four_processes_start_together_on_empty_postgres(pg_url: str, tmp_path: Path) -> None:
    expected = _single_start_counts(tmp_path)
    results = _start_together(pg_url, tmp_path / "gate")
    _check_one_clean_start(pg_url, results, expected)


def test_four_processes_start_together_on_a_new_sqlite_file(tmp_path: Path) -> None:
    expected = _single_start_counts(tmp_path)
    url = f"sqlite:///{tmp_path / 'shared' / 'console.db'}"
    (tmp_path / "shared").mkdir()
    try:
        results = _start_together(url, tmp_path / "gate")
        _check_one_clean_start(url, results, expected)
        with get_engine(url).connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    finally:
        dispose_engine(url)
