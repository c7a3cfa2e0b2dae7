"""AppTest fixtures: a fresh SQLite file per test, seeded with the built-in forms and one user per
role; helpers to make an AppTest of app.py logged in as a role (session state pre-set, as the login
would leave it) or logged out."""

from __future__ import annotations

import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from engine import auth  # noqa: E402
from engine.access import Actor  # noqa: E402
from engine.db import dispose_engine, get_engine  # noqa: E402

APP = str(ROOT / "app.py")
ROLES = ("admin", "manager", "staff", "outreach", "viewer")
PASSWORDS = {role: f"{role}-Pass-2026" for role in ROLES}
NAMES = {"admin": "管理员", "manager": "王主任", "staff": "李干事", "outreach": "张宣传", "viewer": "赵查阅"}
TIMEOUT = 60


def _set_env(monkeypatch: pytest.MonkeyPatch, url: str, data_dir: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("LAC_TEST_MODE", "1")
    monkeypatch.setenv("LAC_COOKIE_KEY", secrets.token_urlsafe(36))  # 48 characters
    monkeypatch.setenv("LAC_DATA_DIR", str(data_dir))
    monkeypatch.setenv("LAC_BCRYPT_ROUNDS", "4")  # honoured in test mode only: quick logins
    monkeypatch.delenv("LAC_BACKUP_DIR", raising=False)  # a developer's own setting must not move backups


@pytest.fixture(scope="session")
def seeded_db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the built-in forms and one user per role (bcrypt is slow: made once)."""
    from engine.forms import init_database

    path = tmp_path_factory.mktemp("seed") / "console.db"
    url = f"sqlite:///{path}"
    engine = get_engine(url)
    init_database(engine)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAC_TEST_MODE", "1")
        mp.setenv("LAC_BCRYPT_ROUNDS", "4")
        admin = auth.create_first_admin(engine, "admin", PASSWORDS["admin"], NAMES["admin"])
        for role in ROLES[1:]:
            auth.create_user(engine, role, PASSWORDS[role], role, NAMES[role], admin.actor())
    dispose_engine(url)  # closes the connections: the WAL is checkpointed into the file
    return path


@dataclass
class AppEnv:
    url: str
    engine: Engine
    tmp_path: Path

    def actor(self, role: str) -> Actor:
        return Actor(role, role, form_editor=(role == "admin"), language="zh")

    def app(self, role: str | None = None) -> AppTest:
        """An AppTest of app.py; with `role`, logged in as that role's user."""
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        if role is not None:
            login_as(at, self.actor(role), NAMES[role])
        return at

    def page(self, function, role: str | None, *args) -> AppTest:
        """An AppTest of one page function (imported inside the script), as `role`."""
        at = AppTest.from_function(function, args=args, default_timeout=TIMEOUT)
        if role is not None:
            login_as(at, self.actor(role), NAMES[role])
        return at


def open_url(at: AppTest, url_path: str) -> AppTest:
    """Ask for the page at `url_path` (what typing /<url_path> in the browser does) and run.

    AppTest.switch_page() takes files only; a st.Page's script hash is the hash of its url_path."""
    from streamlit.util import calc_hash

    at._page_hash = calc_hash(url_path)
    return at.run()


def current_url(at: AppTest) -> str | None:
    """The url_path of the page the last run showed ("" for the default page)."""
    page = at._registered_pages.get(at._finished_page_script_hash)
    return None if page is None else page.get("url_pathname")


def registered_urls(at: AppTest) -> set[str]:
    """url paths st.navigation registered in the last run (the default page is "")."""
    return {info.get("url_pathname", "") for info in at._registered_pages.values()}


def by_label(elements, label: str):
    """The one element of `elements` whose label is `label`."""
    found = [e for e in elements if e.label == label]
    assert len(found) == 1, f"{len(found)} elements labelled {label!r}: {[e.label for e in elements]}"
    return found[0]


def texts(at: AppTest) -> str:
    """All the text an AppTest run shows (markdown, titles, alerts, captions), one string."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def login_as(at: AppTest, actor: Actor, name: str) -> AppTest:
    at.session_state["authentication_status"] = True
    at.session_state["username"] = actor.username
    at.session_state["name"] = name
    at.session_state["roles"] = [actor.role]
    at.session_state["actor"] = actor
    at.session_state["lac_login_at"] = time.time()
    return at


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: Path | None) -> Iterator[AppEnv]:
    path = tmp_path / "console.db"
    if source is not None:
        shutil.copyfile(source, path)
    url = f"sqlite:///{path}"
    _set_env(monkeypatch, url, tmp_path / "data")
    engine = get_engine(url)
    if source is None:
        from engine.forms import init_database

        init_database(engine)
    yield AppEnv(url=url, engine=engine, tmp_path=tmp_path)
    dispose_engine(url)


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seeded_db_file: Path) -> Iterator[AppEnv]:
    """Built-in forms and one user per role (usernames = role names, passwords in PASSWORDS)."""
    yield from _env(monkeypatch, tmp_path, seeded_db_file)


@pytest.fixture
def empty_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[AppEnv]:
    """A migrated database with the built-in forms and no user (first run)."""
    yield from _env(monkeypatch, tmp_path, None)
