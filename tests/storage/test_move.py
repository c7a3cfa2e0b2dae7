"""Moving the database (engine.move / `move-database`): from a seeded SQLite file to a fresh
PostgreSQL database (and to a new SQLite file, so the test also runs where no server is set).

The source: the built-in forms, demo data at a small scale (records, sign-ups with parents, tablet
tallies, a settings row), users (one logged out, one deactivated), a form with two versions and
records on both, a soft-deleted record, an edited reference list, a tap and its undo, a sequence,
a decision, a forward self-reference (a record whose parent has a larger id), a JSON null next to a
SQL NULL, and Chinese text everywhere. After the move:
- every table verifies (rows + SHA-256) and the target holds the same counts;
- the CSV export of every form is byte-for-byte the same from both databases;
- the source file is unchanged (hash before / after), its WAL empty or absent;
- the target works on its own: new records, taps and users get fresh ids (sequences fixed).
A non-empty target is refused and left exactly as it was; so are the same database, a missing file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from engine import auth, tally
from engine.access import SYSTEM, Actor
from engine.backup import table_counts, tables
from engine.db import dispose_engine, get_engine, session_scope
from engine.move import MoveError, move_database, open_source, table_digest
from models.tables import Sequence, Setting, Submission, TallyEvent, utcnow

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "Admin-Pass-2026"


@pytest.fixture(autouse=True)
def _quick_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAC_TEST_MODE", "1")
    monkeypatch.setenv("LAC_BCRYPT_ROUNDS", "4")


@dataclass
class Source:
    path: Path
    url: str
    counts: dict[str, int]
    forward_child: int  # a record whose parent_id is a larger id
    forward_parent: int


def _seed(url: str) -> tuple[int, int]:
    from engine.demo import seed_demo
    from engine.forms import get_spec, init_database, publish, rename_choice
    from engine.storage import create, soft_delete

    eng = get_engine(url)
    init_database(eng)
    seed_demo(eng, scale=0.05, years=1, seed=7)
    admin = auth.create_first_admin(eng, "admin", ADMIN_PASSWORD, "管理员老周").actor()
    auth.create_user(eng, "li.gan", "Staff-Pass-2026", "staff", "李干事", admin)
    auth.create_user(eng, "zhang.xc", "Outreach-Pass-2026", "outreach", "张宣传", admin)
    auth.record_logout(eng, "li.gan")
    auth.set_active(eng, "zhang.xc", False, admin)

    # a second version of a form, with records on both versions
    spec = get_spec(eng, "integrity_check").to_dict()
    spec["fields"] = [*spec["fields"], {"key": "remark_2026", "type": "text",
                                         "label": {"zh": "备注（二〇二六）", "en": "Remark"}}]
    publish(eng, spec, actor=admin, note="加一个备注字段")
    checked = _first_record(eng, "integrity_check")
    newer = create(eng, "integrity_check", {**_copy_data(eng, checked), "remark_2026": "第二版的记录"}, actor=admin)
    assert newer.form_version == 2
    soft_delete(eng, _first_record(eng, "intake"), actor=admin)

    rename_choice(eng, "courts", _first_value(eng, "courts"), {"zh": "某某区人民法院（新名）", "en": "Renamed court"},
                  actor=admin)

    event_id = _first_record(eng, "outreach_event")
    first = tally.tap(eng, event_id, "brochures", 3, actor=Actor("admin", "admin"), device="平板-1")
    tally.undo_last(eng, event_id, "brochures", actor=Actor("admin", "admin"), device="平板-1")
    assert first.counted

    with session_scope(eng) as s:
        for name, scope, last in (("intake", "2026", 12_000), ("intake", "2025", 731), ("Intake-B", "2026", 1)):
            s.merge(Sequence(name=name, scope=scope, last=last))  # the demo's intake cases made some already
        s.add(Setting(key="json_null", value=None))  # stored as the JSON value null
        s.add(Setting(key="office", value={"名称": "某区法律援助处", "emoji": "⚖️", "n": [1, 2.5, None]}))
    with session_scope(eng) as s:  # a SQL NULL next to it
        s.execute(text("INSERT INTO settings (key, value, updated_at) VALUES ('sql_null', NULL, :at)"),
                  {"at": utcnow()})

    try:
        from models.decisions import Decision
    except ImportError:  # pragma: no cover - before the decisions table
        Decision = None
    if Decision is not None:
        with session_scope(eng) as s:
            s.add(Decision(submission_id=_first_record(eng, "intake"), kind="eligibility", subject="eligibility",
                           outcome="grant", reason="经济困难，符合条件", username="admin", data={"score": 3}))

    # a record pointing to a record with a larger id (made by hand: the app links child → parent)
    child = _first_record(eng, "consultation")
    created = create(eng, "consultation", _copy_data(eng, child), actor=admin)
    with session_scope(eng) as s:
        s.execute(update(Submission).where(Submission.id == child).values(parent_id=int(created.id)))
    return child, int(created.id)


def _copy_data(eng, sub_id: int) -> dict:
    with session_scope(eng, write=False) as s:
        return dict(s.get(Submission, sub_id).data)


def _first_value(eng, name: str) -> str:
    from engine.forms import get_choice_list

    return get_choice_list(eng, name).items[0].value


def _first_record(eng, slug: str) -> int:
    from engine.forms import form_ref

    form_id = form_ref(eng, slug).id
    with session_scope(eng, write=False) as s:
        return int(s.exec(select(func.min(Submission.id)).where(Submission.form_id == form_id)).one()[0])


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    mp = pytest.MonkeyPatch()
    mp.setenv("LAC_TEST_MODE", "1")
    mp.setenv("LAC_BCRYPT_ROUNDS", "4")
    try:
        path = tmp_path_factory.mktemp("move") / "console.db"
        url = f"sqlite:///{path}"
        child, parent = _seed(url)
        counts = table_counts(get_engine(url))
        dispose_engine(url)  # closes the file: the WAL is folded in
    finally:
        mp.undo()
    return Source(path, url, counts, child, parent)


def _file_state(path: Path) -> dict[str, str | None]:
    """Hashes of the database file and its WAL (None when absent; an empty WAL counts as absent)."""
    out: dict[str, str | None] = {}
    for suffix in ("", "-wal"):
        p = Path(str(path) + suffix)
        out[suffix or "db"] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() and p.stat().st_size else None
    return out


def _digests(url: str) -> dict[str, tuple[int, str]]:
    """(rows, sha256) per table, computed like the move does, read-only."""
    from sqlalchemy import inspect

    from engine.move import _plan

    eng = open_source(url)
    try:
        with eng.connect() as conn:
            names = set(inspect(conn).get_table_names())
            out = {}
            for t in tables():
                if t.name in names:
                    cols = {c["name"] for c in inspect(conn).get_columns(t.name)}
                    out[t.name] = table_digest(conn, _plan(t, cols, cols))
            return out
    finally:
        eng.dispose()


def _exports(url: str) -> dict[str, bytes]:
    from engine.exporters import export_records
    from engine.forms import list_forms

    eng = get_engine(url)
    out = {}
    for info in list_forms(eng, include_archived=True):
        buf = io.BytesIO()
        export_records(eng, info.slug, buf, "csv", actor=SYSTEM, reveal=True, lang="zh")
        out[info.slug] = buf.getvalue()
    return out


@pytest.fixture(params=["sqlite", "postgres"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'target' / 'moved.db'}"
        yield url
        dispose_engine(url)
    else:
        yield request.getfixturevalue("pg_url")


# --- the move -----------------------------------------------------------------------------------
def test_move_copies_everything_verifies_and_leaves_the_source_alone(source: Source, target_url: str,
                                                                     tmp_path: Path) -> None:
    before = _file_state(source.path)
    seen: list[tuple[int, int]] = []
    summary = move_database(source.url, target_url, progress=lambda done, total: seen.append((done, total)),
                            batch=97)  # many pages per table: keyset paging and forward references

    # the source was not written
    assert _file_state(source.path) == before

    # every table of the models, verified by rows and checksum; the same counts as the source
    assert summary.ok, summary.describe("en")
    assert [t.table for t in summary.tables] == [t.name for t in tables()]
    assert {t.table: t.source_rows for t in summary.tables} == source.counts
    assert {t.table: t.target_rows for t in summary.tables} == source.counts
    assert table_counts(get_engine(target_url)) == source.counts
    assert source.counts["submissions"] > 400 and source.counts["tally_events"] > 1000
    assert source.counts["form_versions"] > source.counts["forms"]
    assert seen[-1] == (sum(source.counts.values()), sum(source.counts.values()))
    # an independent read of both sides agrees with the summary
    target_digests = _digests(target_url)
    assert target_digests == _digests(source.url)
    assert {t.table: (t.target_rows, t.target_sha256) for t in summary.tables} == target_digests
    text_ = summary.describe("zh")
    assert "submissions" in text_ and "一致" in text_ and "不一致" not in text_

    # details a plain copy could get wrong
    eng = get_engine(target_url)
    with session_scope(eng, write=False) as s:
        nulls = set(s.execute(text("SELECT key FROM settings WHERE value IS NULL")).scalars())
        assert nulls == {"sql_null"}  # the JSON null stayed a JSON null
        assert s.get(Setting, "office").value == {"名称": "某区法律援助处", "emoji": "⚖️", "n": [1, 2.5, None]}
        assert s.get(Submission, source.forward_child).parent_id == source.forward_parent
        assert s.get(Sequence, ("intake", "2025")).last == 731
    assert auth.get_user(eng, "li.gan").last_logout_at is not None
    assert auth.get_user(eng, "zhang.xc").active is False
    assert auth.verify_login(eng, "admin", ADMIN_PASSWORD).ok  # the password hash came along

    # identical exports of every form
    copy = tmp_path / "source-copy.db"  # exports audit a reveal: make them on a copy of the source
    shutil.copy(source.path, copy)
    try:
        src_exports = _exports(f"sqlite:///{copy}")
    finally:
        dispose_engine(f"sqlite:///{copy}")
    dst_exports = _exports(target_url)
    assert set(src_exports) == set(dst_exports) and len(src_exports) >= 9
    for slug, data in src_exports.items():
        assert data == dst_exports[slug], f"export of {slug} differs"
        assert data.count(b"\r\n") >= 1

    # the copy works on its own: new rows get new ids (PostgreSQL sequences were set)
    from engine.storage import create

    max_sub = _max_id(eng, Submission)
    max_tap = _max_id(eng, TallyEvent)
    new = create(eng, "consultation", _copy_data(eng, source.forward_child), actor=SYSTEM)
    assert new.id == max_sub + 1
    event_id = _first_record(eng, "outreach_event")
    before_total = tally.total(eng, event_id, "brochures")
    tap = tally.tap(eng, event_id, "brochures", 1, actor=SYSTEM, device="新平板")
    assert tap.event_id == max_tap + 1 and tap.total == before_total + 1
    auth.create_user(eng, "new.staff", "Another-Pass-2026", "staff", "新同事", SYSTEM)


def _max_id(eng, model) -> int:
    with session_scope(eng, write=False) as s:
        return int(s.exec(select(func.max(model.id))).one()[0])


def test_keyset_pages_of_one_row_over_text_and_composite_keys(tmp_path: Path) -> None:
    from engine.forms import init_database

    src = f"sqlite:///{tmp_path / 'small.db'}"
    dst = f"sqlite:///{tmp_path / 'small-moved.db'}"
    try:
        init_database(get_engine(src))
        with session_scope(get_engine(src)) as s:
            for name, scope in [("b", "1"), ("a", "2"), ("a", "10"), ("B", "1"), ("案", "2026")]:
                s.add(Sequence(name=name, scope=scope, last=len(name + scope)))
        counts = table_counts(get_engine(src))
        dispose_engine(src)
        summary = move_database(src, dst, batch=1)
        assert summary.ok
        assert table_counts(get_engine(dst)) == counts
        assert summary.table("sequences").target_rows == 5
    finally:
        dispose_engine(src)
        dispose_engine(dst)


# --- refusals ------------------------------------------------------------------------------------
def test_refuses_a_non_empty_target_and_changes_nothing_there(source: Source, target_url: str) -> None:
    from engine.forms import init_database

    if target_url.startswith("sqlite"):
        Path(target_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    init_database(get_engine(target_url))  # the console was started on it: built-in forms loaded
    dispose_engine(target_url)
    before = _digests(target_url)
    assert before["forms"][0] > 0
    src_before = _file_state(source.path)
    with pytest.raises(MoveError) as caught:
        move_database(source.url, target_url)
    assert caught.value.code == "move.target_not_empty"
    assert "forms=" in caught.value.describe("en") and "目标数据库不是空的" in caught.value.describe("zh")
    assert _digests(target_url) == before
    assert _file_state(source.path) == src_before


def test_refuses_the_same_database_and_a_missing_source(source: Source, tmp_path: Path) -> None:
    with pytest.raises(MoveError) as same:
        move_database(source.url, f"sqlite:///{source.path.parent}/../{source.path.parent.name}/console.db")
    assert same.value.code == "move.same_database"
    with pytest.raises(MoveError) as missing:
        move_database(f"sqlite:///{tmp_path / 'nope.db'}", f"sqlite:///{tmp_path / 'new.db'}")
    assert missing.value.code == "move.source_missing"
    assert not (tmp_path / "nope.db").exists()
    with pytest.raises(MoveError) as bad:
        move_database(source.url, "mysql://root@localhost/lac")
    assert bad.value.code == "move.unsupported"


def test_refuses_a_source_that_is_not_a_console_database(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    before = path.read_bytes()
    with pytest.raises(MoveError) as caught:
        move_database(f"sqlite:///{path}", f"sqlite:///{tmp_path / 'new.db'}")
    assert caught.value.code == "move.source_not_console"
    assert path.read_bytes() == before


# --- the command ---------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAC_LANG": "zh"}
    env.pop("LAC_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "engine.cli_move", *args], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)


def test_command_asks_first_refuses_clearly_and_moves(source: Source, tmp_path: Path) -> None:
    target = tmp_path / "cli" / "moved.db"
    # no terminal to confirm on, no --yes: nothing happens
    asked = _cli("--database-url", source.url, "--to", f"sqlite:///{target}")
    assert asked.returncode == 1
    assert "--yes" in asked.stderr and "Traceback" not in asked.stderr + asked.stdout
    assert not target.exists()

    done = _cli("--database-url", source.url, "--to", f"sqlite:///{target}", "--yes")
    assert done.returncode == 0, done.stderr
    assert "一致" in done.stdout and "DATABASE_URL" in done.stdout and "不一致" not in done.stdout
    dispose_engine(f"sqlite:///{target}")
    assert table_counts(get_engine(f"sqlite:///{target}")) == source.counts
    dispose_engine(f"sqlite:///{target}")

    again = _cli("--database-url", source.url, "--to", f"sqlite:///{target}", "--yes", "--lang", "en")
    assert again.returncode == 1
    assert "Traceback" not in again.stderr + again.stdout
    lines = again.stderr.strip().splitlines()
    assert "target database is not empty" in lines[0] and "目标数据库不是空的" in lines[1]  # chosen language first

    unreachable = _cli("--database-url", source.url, "--to", "postgresql://nobody@127.0.0.1:1/none", "--yes")
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert "无法连接" in unreachable.stderr and "Cannot connect" in unreachable.stderr


def test_add_commands_registers_without_bringing_the_source_up_to_date() -> None:
    from engine.cli_move import MoveDatabaseCommand, add_commands

    registered = {}

    def command(name, help, *, init_db=True):
        def wrap(cls):
            registered[name] = (cls, init_db)
            return cls

        return wrap

    add_commands(command)
    assert registered == {"move-database": (MoveDatabaseCommand, False)}

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["move-database", "--to", "postgresql://lac@db/lac", "--yes"])
    assert args.to_url == "postgresql://lac@db/lac" and args.yes and args.func is MoveDatabaseCommand.run

    manage = pytest.importorskip("manage")
    if "move-database" in manage.COMMANDS:  # once wired into manage.py
        assert manage.COMMANDS["move-database"].init_db is False
