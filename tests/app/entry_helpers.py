"""Shared pieces of the entry / records / workflow / home page tests (no mocks: real SQLite files).

A database with the built-in forms and one user per role is made once per test session (migrations
and the built-in load take seconds) and copied for every test. Users are inserted as rows with an
unusable password hash: these tests never log in through the form, they pre-set the actor.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from engine.access import Actor  # noqa: E402
from engine.db import dispose_engine, get_engine, session_scope  # noqa: E402
from models.tables import User  # noqa: E402

TIMEOUT = 60
ROLES = ("admin", "manager", "staff", "outreach", "viewer")
NAMES = {"admin": "管理员甲", "manager": "王主任", "staff": "李干事", "outreach": "张宣传", "viewer": "赵查阅",
         "staff2": "陈干事"}
USERS = {"admin": "admin", "manager": "manager", "staff": "staff", "outreach": "outreach", "viewer": "viewer",
         "staff2": "staff"}


def make_template(path: Path) -> Path:
    from engine.forms import init_database

    url = f"sqlite:///{path}"
    engine = get_engine(url)
    init_database(engine)
    with session_scope(engine) as s:
        for username, role in USERS.items():
            s.add(User(username=username, display_name=NAMES[username], password_hash="!", role=role,
                       form_editor=role == "admin"))
    dispose_engine(url)
    return path


@dataclass
class PageEnv:
    url: str
    engine: Engine

    def actor(self, username: str = "staff") -> Actor:
        return Actor(username, USERS[username], form_editor=USERS[username] == "admin", language="zh")

    def app(self, script: Any, username: str, *args: Any, lang: str = "zh", **query: Any) -> AppTest:
        """An AppTest of one page function, logged in as `username` (query params pre-set)."""
        at = AppTest.from_function(script, args=args, default_timeout=TIMEOUT)
        actor = self.actor(username)
        at.session_state["actor"] = Actor(actor.username, actor.role, actor.form_editor, lang)
        at.session_state["lang"] = lang
        for key, value in query.items():
            at.query_params[key] = str(value)
        return at


def page_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template: Path) -> Iterator[PageEnv]:
    path = tmp_path / "console.db"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("LAC_DATA_DIR", str(tmp_path / "data"))
    engine = get_engine(url)
    yield PageEnv(url=url, engine=engine)
    dispose_engine(url)


# --- page scripts (AppTest.from_function runs the function's source: imports live inside) ------------
def entry_page(slug: str) -> None:
    from pages.entry import render_entry

    render_entry(slug)


def records_page(slug: str) -> None:
    from pages.records import render_records

    render_records(slug)


def home_page() -> None:
    from pages.home import render_home

    render_home()


# --- finding things on an AppTest --------------------------------------------------------------------
def texts(at: AppTest) -> str:
    """Every text shown (markdown, captions, alerts, titles...) joined: for 'is it on the page' checks."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success",
                 "metric"):
        for el in getattr(at, kind):
            parts.append(str(getattr(el, "value", "")))
            label = getattr(el, "label", None)
            if label:
                parts.append(str(label))
    return "\n".join(parts)


def unescape(text: str) -> str:
    return text.replace("\\", "")


def button(at: AppTest, label: str):
    found = [b for b in at.button if unescape(b.label) == label]
    assert found, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return found[0]


def has_button(at: AppTest, label: str) -> bool:
    return any(unescape(b.label) == label for b in at.button)


def widget(at: AppTest, kind: str, key: str):
    return getattr(at, kind)(key=key)


def frame_text(at: AppTest) -> str:
    return "\n".join(df.value.to_string() for df in at.dataframe)


# --- records -----------------------------------------------------------------------------------------
LAWYERS = [{"value": "lw001", "label": {"zh": "陈志强", "en": "Chen Zhiqiang"}},
           {"value": "lw002", "label": {"zh": "梁晓珊", "en": "Liang Xiaoshan"}}]


def add_lawyers(engine: Engine) -> None:
    from engine.access import SYSTEM
    from engine.forms import save_choice_list

    save_choice_list(engine, "lawyers", {"zh": "律师", "en": "Lawyers"}, LAWYERS, actor=SYSTEM)


def intake_values(name: str, seq: int = 123, *, birth: str = "19800101", category: str = "civil",
                  day: str = "2026-03-16", **extra: Any) -> dict[str, Any]:
    """A valid intake record (raw values as the entry page submits them)."""
    from engine.idnumber import make_id

    values: dict[str, Any] = {
        "application_date": day,
        "intake_channel": "window",
        "name": name,
        "sex": "male" if seq % 2 else "female",
        "id_doc_type": "resident_id",
        "id_number": make_id("440803", birth, seq),
        "phone": "13802715634",
        "case_category": category,
        "service_type": "litigation_agency",
        "case_cause": "support_maintenance",
        "facts": "申请人因赡养纠纷申请法律援助，事实经过详见材料。",
        "hardship_route": "exempt",
        "exemption_ground": "social_assistance",
    }
    if category == "criminal":
        values.update({"criminal_route": "applied", "legal_position_criminal": "defendant",
                       "service_type": "criminal_defence"})
    else:
        values["legal_position"] = "plaintiff"
    values.update(extra)
    return values


def make_intake(env: PageEnv, name: str, seq: int = 123, *, username: str = "staff", **extra: Any) -> int:
    from engine.storage import create

    return int(create(env.engine, "intake", intake_values(name, seq, **extra), actor=env.actor(username)).id)
