"""manage.py end to end: each command in a subprocess against a temporary SQLite file.

What an operator sees: exit status, the message on stdout / stderr (zh and en, never a traceback),
and what the command did to the database and the files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "manage.py"
PASSWORD = "Haibin2026pass"

VISIT_LOG = {
    "slug": "visit_log",
    "title": {"zh": "来访登记", "en": "Visit log"},
    "fields": [
        {"key": "visitor", "type": "text", "label": {"zh": "来访人", "en": "Visitor"}, "required": True},
        {"key": "topic", "type": "text", "label": {"zh": "事由", "en": "Topic"}},
        {
            "key": "id_number",
            "type": "id_number",
            "label": {"zh": "身份证号", "en": "ID number"},
            "sensitive": True,
        },
        {"key": "note", "type": "textarea", "label": {"zh": "备注", "en": "Note"}},
    ],
}


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.db = tmp_path / "console.db"
        self.url = f"sqlite:///{self.db}"
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LAC_LANG", "LAC_DEBUG")}
        self.env["LAC_DATA_DIR"] = str(tmp_path / "data")

    def __call__(
        self, *args: str, input: str | None = None, lang: str | None = None
    ) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(MANAGE), "--database-url", self.url]
        if lang:
            cmd += ["--lang", lang]
        proc = subprocess.run(
            [*cmd, *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.tmp,
            timeout=300,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stdout, proc.stdout
        return proc

    def engine(self):
        from engine.db import get_engine

        return get_engine(self.url)


@pytest.fixture
def cli(tmp_path: Path):
    from engine.db import dispose_engine
    from engine.forms import clear_caches

    c = Cli(tmp_path)
    yield c
    dispose_engine(c.url)
    clear_caches()


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def failed(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stderr


def bilingual(text: str) -> bool:
    has_zh = any("\u4e00" <= ch <= "\u9fff" for ch in text)
    has_en = any("a" <= ch.lower() <= "z" for ch in text.replace("[", " "))
    return has_zh and has_en


# --------------------------------------------------------------------------------------------
# create-user


def test_create_user_reads_the_password_from_stdin_and_the_user_can_log_in(cli: Cli) -> None:
    from engine.auth import verify_login

    out = ok(
        cli(
            "create-user",
            "wangfang",
            "--role",
            "staff",
            "--display-name",
            "王芳",
            "--password-stdin",
            input=PASSWORD + "\n",
        )
    ).stdout
    assert "wangfang" in out
    assert verify_login(cli.engine(), "wangfang", PASSWORD).ok
    assert not verify_login(cli.engine(), "wangfang", PASSWORD + "x").ok


def test_create_user_refuses_a_weak_password_with_a_readable_message(cli: Cli) -> None:
    err = failed(cli("create-user", "lina", "--role", "staff", "--password-stdin", input="short\n"))
    assert "auth.password_too_short" in err and bilingual(err)
    from engine.auth import get_user

    assert get_user(cli.engine(), "lina") is None


def test_create_user_never_takes_a_password_argument_and_needs_a_terminal_to_prompt(cli: Cli) -> None:
    err = failed(cli("create-user", "lina", "--role", "staff", "--password", PASSWORD), code=2)
    assert "--password" in err and bilingual(err)
    assert PASSWORD not in err  # a stray argument is never echoed
    err = failed(cli("create-user", "lina", "--role", "staff"))  # stdin is a pipe: cannot prompt
    assert "--password-stdin" in err


def test_create_user_twice_says_the_name_is_taken(cli: Cli) -> None:
    ok(cli("create-user", "chenli", "--role", "manager", "--password-stdin", input=PASSWORD + "\n"))
    err = failed(cli("create-user", "chenli", "--role", "staff", "--password-stdin", input=PASSWORD + "\n"))
    assert "chenli" in err and bilingual(err)


# --------------------------------------------------------------------------------------------
# list-forms, import-form, export-form


def test_list_forms_shows_builtins_with_version_and_count(cli: Cli) -> None:
    out = ok(cli("list-forms")).stdout
    assert "intake" in out and "法律援助申请登记" in out
    line = next(line for line in out.splitlines() if line.startswith("intake "))
    assert line.split()[-2:] == ["1", "0"]
    out_en = ok(cli("list-forms", lang="en")).stdout
    assert "Legal aid application" in out_en


def test_import_form_from_yaml_then_json_publishes_new_versions(cli: Cli) -> None:
    from engine.forms import get_spec

    src = cli.tmp / "visit_log.yaml"
    src.write_text(yaml.safe_dump(VISIT_LOG, allow_unicode=True), encoding="utf-8")
    assert "version 1" in ok(cli("import-form", str(src), lang="en")).stdout
    assert "visit_log" in ok(cli("list-forms")).stdout

    changed = json.loads(json.dumps(VISIT_LOG))
    changed["fields"].append({"key": "phone", "type": "phone", "label": {"zh": "电话"}})
    src_json = cli.tmp / "visit_log.json"
    src_json.write_text(json.dumps(changed, ensure_ascii=False), encoding="utf-8")
    out = ok(cli("import-form", str(src_json), "--note", "add phone")).stdout
    assert "第 2 版" in out and "phone" in out
    assert get_spec(cli.engine(), "visit_log").field("phone") is not None
    # the same file again is no new version
    assert "第 2 版" in ok(cli("import-form", str(src_json))).stdout


def test_import_form_from_excel(cli: Cli) -> None:
    pytest.importorskip("engine.xlsform")
    from engine.forms import get_spec
    from engine.spec import parse_spec
    from engine.xlsform import export_xlsform

    book = cli.tmp / "visit_log.xlsx"
    book.write_bytes(export_xlsform(parse_spec(VISIT_LOG)))
    ok(cli("import-form", str(book)))
    spec = get_spec(cli.engine(), "visit_log")
    assert [f.key for f in spec.fields] == ["visitor", "topic", "id_number", "note"]
    assert spec.field("id_number").sensitive


def test_an_unsafe_form_change_is_refused_with_the_coded_message(cli: Cli) -> None:
    from engine.forms import get_spec

    src = cli.tmp / "visit_log.yaml"
    src.write_text(yaml.safe_dump(VISIT_LOG, allow_unicode=True), encoding="utf-8")
    ok(cli("import-form", str(src)))
    unsafe = json.loads(json.dumps(VISIT_LOG))
    unsafe["fields"][1]["type"] = "integer"  # topic: text -> integer would misread stored answers
    src.write_text(yaml.safe_dump(unsafe, allow_unicode=True), encoding="utf-8")
    err = failed(cli("import-form", str(src)))
    assert "version.type_changed" in err and "topic" in err and bilingual(err)
    assert get_spec(cli.engine(), "visit_log").field("topic").type == "text"


def test_import_form_with_a_broken_file_lists_the_problems(cli: Cli) -> None:
    src = cli.tmp / "broken.yaml"
    src.write_text("slug: broken\nfields:\n  - key: a\n    type: nonsense\n", encoding="utf-8")
    err = failed(cli("import-form", str(src)))
    assert "broken" in err and "nonsense" in err
    err = failed(cli("import-form", str(cli.tmp / "missing.yaml")))
    assert "missing.yaml" in err and bilingual(err)
    other = cli.tmp / "form.txt"
    other.write_text("x", encoding="utf-8")
    assert ".xlsx" in failed(cli("import-form", str(other)))


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_form_round_trips(cli: Cli, fmt: str) -> None:
    from engine.forms import get_spec
    from engine.spec import parse_spec

    out = ok(cli("export-form", "intake", "--format", fmt)).stdout
    assert parse_spec(out, fmt=fmt) == get_spec(cli.engine(), "intake")
    target = cli.tmp / f"intake.{fmt}"
    ok(cli("export-form", "intake", "--format", fmt, "--out", str(target)))
    assert "第 1 版" in ok(cli("import-form", str(target))).stdout  # unchanged: still version 1


def test_export_form_as_excel_round_trips(cli: Cli) -> None:
    pytest.importorskip("engine.xlsform")
    from engine.forms import get_spec
    from engine.xlsform import import_xlsform

    target = cli.tmp / "intake.xlsx"
    ok(cli("export-form", "intake", "--format", "xlsx", "--out", str(target)))
    spec, problems, _warnings = import_xlsform(target.read_bytes())
    assert not problems
    assert spec == get_spec(cli.engine(), "intake")


def test_export_form_of_an_unknown_form_fails_cleanly(cli: Cli) -> None:
    err = failed(cli("export-form", "nope"))
    assert "nope" in err and bilingual(err)


# --------------------------------------------------------------------------------------------
# export-records


def _publish_visit_log(cli: Cli, spec: dict) -> None:
    src = cli.tmp / f"{spec['slug']}.json"
    src.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    ok(cli("import-form", str(src)))


def _read_csv(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "CSV for Excel starts with a UTF-8 BOM"
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def test_export_records_keeps_a_retired_fields_data(cli: Cli) -> None:
    from engine.access import SYSTEM
    from engine.storage import create

    _publish_visit_log(cli, VISIT_LOG)
    old = create(cli.engine(), "visit_log", {"visitor": "陈伟", "topic": '=HYPERLINK("x")'}, actor=SYSTEM)
    v2 = json.loads(json.dumps(VISIT_LOG))
    v2["fields"] = [f for f in v2["fields"] if f["key"] != "topic"]  # remove: the field is retired
    _publish_visit_log(cli, v2)
    new = create(cli.engine(), "visit_log", {"visitor": "李娜"}, actor=SYSTEM)

    out = cli.tmp / "visits.csv"
    ok(cli("export-records", "visit_log", "--format", "csv", "--out", str(out), "--keys"))
    rows = _read_csv(out)
    head = rows[0]
    assert "topic" in head and {"id", "number", "state", "created_by", "created_at", "form_version"} <= set(
        head
    )
    by_id = {r[head.index("id")]: dict(zip(head, r, strict=True)) for r in rows[1:]}
    assert by_id[str(old.id)]["topic"] == '\'=HYPERLINK("x")'  # kept, and neutralised for Excel
    assert by_id[str(old.id)]["form_version"] == "1"
    assert by_id[str(new.id)]["topic"] == "" and by_id[str(new.id)]["form_version"] == "2"

    labelled = cli.tmp / "visits_zh.csv"
    ok(cli("export-records", "visit_log", "--format", "csv", "--out", str(labelled)))
    assert "事由（已停用）" in _read_csv(labelled)[0]


def test_export_records_masks_unless_a_user_who_may_reveal_asks(cli: Cli) -> None:
    from engine.access import SYSTEM
    from engine.idnumber import make_id
    from engine.storage import create

    _publish_visit_log(cli, VISIT_LOG)
    number = make_id("440803", "19800101", 123)
    create(cli.engine(), "visit_log", {"visitor": "陈伟", "id_number": number}, actor=SYSTEM)
    for role, name in (("manager", "boss"), ("staff", "clerk")):
        ok(cli("create-user", name, "--role", role, "--password-stdin", input=PASSWORD + "\n"))
    out = cli.tmp / "v.csv"

    masked = ok(cli("export-records", "visit_log", "--out", str(out), "--keys", lang="en")).stdout
    assert "masked" in masked
    assert number not in out.read_text(encoding="utf-8-sig")

    err = failed(cli("export-records", "visit_log", "--out", str(out), "--reveal"), code=2)
    assert "--user" in err and bilingual(err)
    err = failed(cli("export-records", "visit_log", "--out", str(out), "--reveal", "--user", "clerk"))
    assert "export.reveal_forbidden" in err and bilingual(err)

    ok(cli("export-records", "visit_log", "--out", str(out), "--reveal", "--user", "boss"))
    assert number in out.read_text(encoding="utf-8-sig")


def test_export_records_as_xlsx(cli: Cli) -> None:
    from openpyxl import load_workbook

    from engine.access import SYSTEM
    from engine.storage import create

    _publish_visit_log(cli, VISIT_LOG)
    create(cli.engine(), "visit_log", {"visitor": "+陈伟", "note": "第一行\n第二行"}, actor=SYSTEM)
    out = cli.tmp / "v.xlsx"
    ok(cli("export-records", "visit_log", "--format", "xlsx", "--out", str(out), "--keys"))
    ws = load_workbook(out).active
    rows = list(ws.iter_rows(values_only=True))
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record["visitor"] == "'+陈伟" and record["note"] == "第一行\n第二行"


def test_export_records_of_an_unknown_form_leaves_no_file(cli: Cli) -> None:
    out = cli.tmp / "nothing.csv"
    err = failed(cli("export-records", "nope", "--out", str(out)))
    assert "nope" in err and bilingual(err)
    assert not out.exists() and not list(cli.tmp.glob(".nothing.csv*"))


# --------------------------------------------------------------------------------------------
# backup, restore, check, errors


def _count(db: Path, slug: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT count(*) FROM submissions s JOIN forms f ON f.id = s.form_id WHERE f.slug = ?", (slug,)
        ).fetchone()[0]


def test_backup_then_restore_brings_the_data_back(cli: Cli) -> None:
    from engine.access import SYSTEM
    from engine.db import dispose_engine
    from engine.storage import create

    _publish_visit_log(cli, VISIT_LOG)
    create(cli.engine(), "visit_log", {"visitor": "陈伟"}, actor=SYSTEM)
    dest = cli.tmp / "backups"
    out = ok(cli("backup", "--dest", str(dest))).stdout
    files = list(dest.glob("console-*.db"))
    assert len(files) == 1 and str(files[0]) in out

    create(cli.engine(), "visit_log", {"visitor": "李娜"}, actor=SYSTEM)
    assert _count(cli.db, "visit_log") == 2
    dispose_engine(cli.url)
    out = ok(cli("restore", str(files[0]))).stdout
    assert "submissions: 1" in out
    assert _count(cli.db, "visit_log") == 1
    assert (cli.tmp / "console.db.bak").exists() and _count(cli.tmp / "console.db.bak", "visit_log") == 2
    ok(cli("check"))
    # the default destination is data/backups under LAC_DATA_DIR
    ok(cli("backup"))
    assert list((cli.tmp / "data" / "backups").glob("console-*.db"))


def test_restore_refuses_files_that_are_not_our_backups(cli: Cli) -> None:
    ok(cli("list-forms"))
    junk = cli.tmp / "junk.db"
    junk.write_bytes(b"not a database at all")
    err = failed(cli("restore", str(junk)))
    assert "restore.not_sqlite" in err and bilingual(err)
    foreign = cli.tmp / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    assert "restore.not_ours" in failed(cli("restore", str(foreign)))
    assert "restore.no_file" in failed(cli("restore", str(cli.tmp / "gone.db")))
    assert "intake" in ok(cli("list-forms")).stdout  # nothing was touched


def test_check_reports_a_damaged_record(cli: Cli) -> None:
    from engine.access import SYSTEM
    from engine.storage import create

    _publish_visit_log(cli, VISIT_LOG)
    sub = create(cli.engine(), "visit_log", {"visitor": "陈伟"}, actor=SYSTEM)
    assert "未发现问题" in ok(cli("check")).stdout
    with sqlite3.connect(cli.db) as conn:
        conn.execute(
            "UPDATE submissions SET data = json_set(data, '$.id_number', '12345', '$.ghost', 1) WHERE id = ?",
            (sub.id,),
        )
    proc = cli("check", lang="en")
    assert proc.returncode == 1
    assert "check.bad_value" in proc.stdout and "check.unknown_key" in proc.stdout and "ghost" in proc.stdout
    assert "2 problem(s)" in proc.stderr
    with sqlite3.connect(cli.db) as conn:
        conn.execute("DELETE FROM audit_events WHERE action = 'create' AND entity_id = ?", (str(sub.id),))
    proc = cli("check", lang="en")
    assert proc.returncode == 1 and "check.audit_missing" in proc.stdout and "visit_log" in proc.stdout


def test_errors_are_bilingual_without_traceback(cli: Cli) -> None:
    err = failed(cli("no-such-command"), code=2)
    assert bilingual(err)
    bad = Cli(cli.tmp)
    bad.url = "postgresql+psycopg://nobody@127.0.0.1:1/nothing"
    err = failed(bad("list-forms"))
    assert bilingual(err)
    assert "127.0.0.1" in err
