"""Secrets: none in the repository, none in logs, none (and no stack trace or internal path) on error
pages; the console refuses to start with a placeholder cookie key."""

from __future__ import annotations

import logging
import re
import subprocess
import tomllib

import pytest

from engine.secrets import SecretKeyError, check_key
from tests.app.conftest import PASSWORDS, by_label, open_url, texts
from tests.security.conftest import ROOT, SECRET_ID, SECRETS, leaks

STATS: dict[str, int] = {}

PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
BCRYPT = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
ASSIGNED = re.compile(r"""(?ix)(?:password|passwd|pwd|secret|cookie_key|api_key|token)[a-z_]*["']?\s*[:=]\s*
                          ["']([^"'\s]{8,})["']""")
ENV_ASSIGNED = re.compile(r"(?m)^\s*#?\s*(?:LAC_COOKIE_KEY|[A-Z_]*PASSWORD[A-Z_]*|[A-Z_]*SECRET[A-Z_]*)=(\S{8,})")
URL_PASSWORD = re.compile(r"[a-z+]+://[^:/\s@]+:([^@\s/]+)@")
PLACEHOLDER = re.compile(r"(?i)change-me|example|placeholder|your[-_]|<|\.\.\.|xxx|os\.environ|getenv|secrets\.|token_urlsafe")
# Test code holds made-up passwords of made-up users (fixtures); everything else may hold none.
TEST_DIRS = ("tests/", "bench/")


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def test_no_secrets_in_the_repository():
    files = _tracked()
    found: list[str] = []
    for rel in files:
        path = ROOT / rel
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        STATS["files_scanned"] = STATS.get("files_scanned", 0) + 1
        for rx, what in ((PRIVATE_KEY, "private key"), (JWT, "JWT"), (BCRYPT, "bcrypt hash")):
            if rx.search(text) and not (what == "bcrypt hash" and rel.startswith(TEST_DIRS)):
                found.append(f"{rel}: {what}")
        if rel.startswith(TEST_DIRS):
            continue
        for m in [*ASSIGNED.finditer(text), *ENV_ASSIGNED.finditer(text), *URL_PASSWORD.finditer(text)]:
            value = m.group(1)
            line = text[text.rfind("\n", 0, m.start()) + 1: text.find("\n", m.end())]
            if PLACEHOLDER.search(value) or PLACEHOLDER.search(line) or not re.search(r"[A-Za-z0-9]{8}", value):
                continue
            if value.lower() in ("password", "secret") or (
                    re.fullmatch(r"[a-z][a-z0-9_]*", value) and re.search(r"password|secret|token|key", value)):
                continue  # a word or the name of a setting, not a value ("user:password@host", "lac_password_login")
            found.append(f"{rel}: {line.strip()[:120]}")
    assert not found, "secret-looking values in tracked files:\n" + "\n".join(found)
    # nothing that holds secrets or data is tracked, and all of it is ignored
    assert not [f for f in files if f.startswith("data/secrets/") or f in (".streamlit/secrets.toml", "data/.cookie_key")
                or (f.endswith((".db", ".lacdump", ".pem", ".key")) and not f.startswith(TEST_DIRS))]
    for probe in ("data/secrets/cookie_key", ".streamlit/secrets.toml", "data/console.db", "data/console.db-wal",
                  "data/backups/console-20260101-000000.db"):
        ignored = subprocess.run(["git", "check-ignore", "-q", probe], cwd=ROOT).returncode == 0
        assert ignored, f"{probe} is not git-ignored"
    # the example file's key is a placeholder the console refuses
    example = tomllib.loads((ROOT / ".streamlit" / "secrets.toml.example").read_text(encoding="utf-8"))
    with pytest.raises(SecretKeyError):
        check_key(example["auth"]["cookie_key"], "example")


def test_no_password_cookie_key_or_id_number_in_logs(sec_env, caplog, capfd, monkeypatch):
    """A failed login, a login, pages with sensitive records (and a reveal) and an error page, with
    every logger at DEBUG: neither the logs nor stdout / stderr hold a password, the cookie key or
    a full ID number."""
    import os

    key = os.environ["LAC_COOKIE_KEY"]
    wrong = "Wrong-Secret-Pass-9191"
    caplog.set_level(logging.DEBUG)
    at = sec_env.app().run()
    by_label(at.text_input, "用户名").input("manager")
    by_label(at.text_input, "密码").input(wrong)
    by_label(at.button, "登录").click().run()
    by_label(at.text_input, "用户名").input("manager")
    by_label(at.text_input, "密码").input(PASSWORDS["manager"])
    by_label(at.button, "登录").click().run()
    assert at.session_state["actor"].username == "manager"
    rid = sec_env.ids["intake"]
    at.query_params["id"] = str(rid)
    open_url(at, "intake-records")
    at.text_input(key=f"record__{rid}__reveal_reason").input("核对身份")
    at.button(key=f"record__{rid}__reveal").click().run()
    assert SECRET_ID in "\n".join(str(m.value) for m in at.markdown), "the reveal did not happen"
    at.query_params["id"] = "999999"
    open_url(at, "intake-records")
    assert at.error
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() + " " + str(r.args) + " " + (r.exc_text or "") for r in caplog.records)
    everything = logged + out + err
    STATS["log_records"] = len(caplog.records)
    for secret in (wrong, PASSWORDS["manager"], key, *SECRETS):
        assert secret not in everything, f"{secret[:6]}… is in the logs"


def records_page(slug: str) -> None:
    from pages.records import render_records

    render_records(slug)


def import_page() -> None:
    from pages.import_records import render_import

    render_import()


INTERNALS = re.compile(r"Traceback|File \"|/work/|\.py\b|site-packages|sqlalchemy\.|psycopg|sqlite3\.")


def test_error_pages_show_coded_messages_not_stack_traces(sec_env):
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert str(config["client"]["showErrorDetails"]).lower() in ("none", "false"), \
        "client.showErrorDetails must hide tracebacks from the browser"
    shown: list[str] = []
    # records that do not exist, ids that are not numbers, a form that does not exist
    for rid in ("999999", "abc", "1;DROP TABLE users", "-1", "1e9"):
        at = sec_env.page(records_page, "staff", "intake")
        at.query_params["id"] = rid
        at.run()
        assert not at.exception and at.error, rid
        shown += [str(e.value) for e in at.error]
    at = sec_env.page(records_page, "staff", "no_such_form").run()
    assert not at.exception and at.error
    shown += [str(e.value) for e in at.error]
    # engine errors from uploads: a broken workbook, a binary file, an empty file
    for name, data in (("broken.xlsx", b"PK\x03\x04broken"), ("bin.csv", b"\x00\xff\xfe" * 50), ("empty.csv", b"")):
        at = sec_env.page(import_page, "admin")
        at.session_state["import_form"] = "training_record"
        at.run()
        at.file_uploader(key="import_file").set_value((name, data, "text/csv")).run()
        assert not at.exception, name
        shown += [str(e.value) for e in at.error]
    assert len(shown) >= 8
    for text in shown:
        assert not INTERNALS.search(text), f"internals on an error page: {text[:200]}"
    STATS["error_pages"] = len(shown)


@pytest.mark.parametrize("key", ["change-me", "secret", "short-key-1234",
                                 "change-me-to-a-long-random-string-of-at-least-32-characters"])
def test_the_app_refuses_to_start_with_a_placeholder_cookie_key(sec_env, monkeypatch, key):
    monkeypatch.setenv("LAC_COOKIE_KEY", key)
    for role in (None, "admin"):
        at = sec_env.app(role).run()
        assert not at.exception
        assert at.error and "拒绝启动" in at.error[0].value and "refusing to start" in at.error[0].value
        assert not at.text_input, "a login form is shown"
        assert not at.button and not at.dataframe
        assert "user-admin" not in texts(at)


@pytest.mark.browser
def test_the_server_log_holds_no_password_or_cookie_key(sec_server, new_context):
    """The real server's output after logins (failed and successful) and record pages."""
    from tests.security.conftest import browser_login, wait_idle

    page = new_context().new_page()
    browser_login(page, sec_server.url, "manager", PASSWORDS["manager"])
    page.goto(f"{sec_server.url}/intake-records?id={sec_server.seeded.ids['intake']}")
    page.get_by_role("heading").first.wait_for()
    wait_idle(page)
    log = sec_server.log.read_text(encoding="utf-8", errors="replace")
    for secret in (PASSWORDS["manager"], PASSWORDS["staff"], sec_server.cookie_key, *SECRETS):
        assert secret not in log, f"{secret[:6]}… is in the server log"
    assert not leaks(log)
