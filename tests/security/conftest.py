"""Security test fixtures.

- `sec_env`: a fresh SQLite file per test (a copy of one made per session) with the built-in forms,
  one user per role (usernames = role names, passwords in PASSWORDS, bcrypt cost 4 in test mode) and
  one valid record of every built-in form. The intake record holds known sensitive values (SECRETS):
  an ID number, a phone and an address that a role without the reveal right must never be shown.
- `snapshot(engine)`: row counts and a SHA-256 of every table (before/after checks: "nothing changed").
- the AppTest helpers of tests/app/conftest.py and the browser fixtures of tests/e2e/conftest.py
  (one device: desktop), reused as they are.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

from engine.access import SYSTEM, Actor  # noqa: E402
from engine.db import dispose_engine, get_engine  # noqa: E402
from engine.idnumber import make_id  # noqa: E402
from tests.app.conftest import (  # noqa: E402,F401  (fixtures re-exported for this folder)
    NAMES,
    PASSWORDS,
    ROLES,
    AppEnv,
    _env,
    seeded_db_file,
)
from tests.e2e.conftest import form_login as browser_login  # noqa: E402,F401  (used by this folder's tests)
from tests.e2e.conftest import new_context, server, wait_idle, wait_loaded  # noqa: E402,F401

SAMPLES = yaml.safe_load((ROOT / "tests" / "fixtures" / "sample_records.yaml").read_text(encoding="utf-8"))

# The sensitive values planted in the intake record (and in the phone fields of the other forms).
SECRET_ID = make_id("440803", "19710203", 517)  # 18 digits, valid GB 11643
SECRET_PHONE = "13977708216"
SECRET_ADDRESS = "霞山区机密巷十七号之三"
CONSULT_PHONE = "13977708217"
SIGNUP_PHONE = "13977708218"
SECRETS = (SECRET_ID, SECRET_PHONE, SECRET_ADDRESS, CONSULT_PHONE, SIGNUP_PHONE)


def secret_fragments() -> list[str]:
    """Every string whose presence means a masked value leaked: the whole values, and the hidden part
    of each next to what the mask keeps (a mask keeps the ID's first 3 and last 4 characters and a
    mobile's first 3 and last 4 digits)."""
    out = [SECRET_ID, SECRET_ID[3:-4], SECRET_ADDRESS, SECRET_ADDRESS[1:]]
    for phone in (SECRET_PHONE, CONSULT_PHONE, SIGNUP_PHONE):
        out += [phone, phone[3:]]
    return out


def leaks(text: str) -> list[str]:
    return [s for s in secret_fragments() if s in text]


@dataclass
class Seeded:
    """Ids of the records made in the template database."""

    ids: dict[str, int]  # slug -> id of its record (intake: the one with SECRETS)
    staff_intake: int  # an intake record created by the staff user (staff may edit their own)
    deleted: int  # a soft-deleted consultation (only admins may see it)

    def all_ids(self) -> dict[int, str]:
        """record id -> its form's slug (every seeded record, the deleted one included)."""
        out = {i: slug for slug, i in self.ids.items()}
        out[self.staff_intake] = "intake"
        out[self.deleted] = "consultation"
        return out


def _valid(slug: str) -> dict[str, Any]:
    return copy.deepcopy(SAMPLES["records"][slug]["valid"][0]["data"])


def seed_records(engine: Engine) -> Seeded:
    from engine.forms import list_forms, save_choice_list
    from engine.storage import create

    for name, items in SAMPLES.get("extra_choices", {}).items():
        save_choice_list(engine, name, name, items, actor=SYSTEM)
    admin = Actor("admin", "admin", True)
    intake = _valid("intake")
    intake.update(id_number=SECRET_ID, phone=SECRET_PHONE, residence=SECRET_ADDRESS, birth_date="1971-02-03",
                  sex="male", special_groups=["women"], application_no="霞援申字〔2026〕第0777号")
    ids: dict[str, int] = {"intake": int(create(engine, "intake", intake, actor=admin).id)}
    staff_raw = _valid("intake")
    staff_raw.update(id_number=make_id("440803", "19650506", 123), phone="13800000001",
                     residence="某街道一号", birth_date="1965-05-06", sex="male", special_groups=[],
                     application_no="霞援申字〔2026〕第0778号")
    staff_intake = int(create(engine, "intake", staff_raw, actor=Actor("staff", "staff")).id)
    for info in sorted(list_forms(engine), key=lambda f: f.parent is not None):
        if info.slug in ids or info.slug not in SAMPLES["records"]:
            continue
        raw = _valid(info.slug)
        from engine.forms import get_spec

        spec = get_spec(engine, info.slug)
        for f in spec.fields:
            if f.reference_form == "intake" and f.key in raw:
                raw[f.key] = ids["intake"]
        if info.slug == "consultation" and "phone" in raw:
            raw["phone"] = CONSULT_PHONE
        if info.slug == "event_signup":
            raw["phone"] = SIGNUP_PHONE
        parent = ids.get(spec.parent) if spec.parent else None
        ids[info.slug] = int(create(engine, info.slug, raw, actor=admin, parent_id=parent).id)
    from engine.storage import soft_delete

    gone = _valid("consultation")
    gone["phone"] = "13800000002"
    deleted = int(create(engine, "consultation", gone, actor=admin).id)
    soft_delete(engine, deleted, actor=admin)
    return Seeded(ids=ids, staff_intake=staff_intake, deleted=deleted)


_SEEDED: dict[str, Seeded] = {}


@pytest.fixture(scope="session")
def secure_db_file(tmp_path_factory: pytest.TempPathFactory, seeded_db_file: Path) -> Path:  # noqa: F811
    path = tmp_path_factory.mktemp("secure") / "console.db"
    shutil.copyfile(seeded_db_file, path)
    url = f"sqlite:///{path}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAC_DATA_DIR", str(path.parent / "data"))
        _SEEDED[str(path)] = seed_records(get_engine(url))
    dispose_engine(url)
    return path


@dataclass
class SecEnv(AppEnv):
    seeded: Seeded | None = None

    @property
    def ids(self) -> dict[str, int]:
        assert self.seeded is not None
        return self.seeded.ids


@pytest.fixture
def sec_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secure_db_file: Path) -> Iterator[SecEnv]:
    for env in _env(monkeypatch, tmp_path, secure_db_file):
        yield SecEnv(url=env.url, engine=env.engine, tmp_path=env.tmp_path, seeded=_SEEDED[str(secure_db_file)])


@pytest.fixture
def device() -> str:
    """The browser tests here run on one device size (the e2e folder covers desktop and tablet)."""
    return "desktop"


# --- "nothing changed" ---------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def snapshot(engine: Engine, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, str]]:
    """table -> (row count, SHA-256 of every row in primary-key order). Equal snapshots: nothing changed."""
    import models.tables  # noqa: F401  (registers the tables)

    out: dict[str, tuple[int, str]] = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            if table.name in skip:
                continue
            digest = hashlib.sha256()
            n = 0
            order = list(table.primary_key.columns) or list(table.columns)
            for row in conn.execute(select(table).order_by(*order)):
                digest.update(json.dumps([_plain(v) for v in row], ensure_ascii=False, sort_keys=True,
                                         default=str).encode("utf-8"))
                n += 1
            out[table.name] = (n, digest.hexdigest())
    return out


def diff(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> dict[str, Any]:
    return {name: (before.get(name), after.get(name)) for name in set(before) | set(after)
            if before.get(name) != after.get(name)}


# --- one seeded console server for the browser tests of this folder -------------------------------
@dataclass
class SecServer:
    url: str
    db_url: str
    cookie_key: str
    seeded: Seeded
    process: Any
    log: Path

    @property
    def engine(self) -> Engine:
        return get_engine(self.db_url)


@pytest.fixture(scope="session")
def sec_server(tmp_path_factory: pytest.TempPathFactory, secure_db_file: Path) -> Iterator[SecServer]:
    """A real `streamlit run app.py` on a copy of the seeded database (users with the PASSWORDS,
    one record per form), shared by the browser tests here. Tests change only what they make."""
    import os
    import secrets as pysecrets
    import subprocess

    from tests.e2e.conftest import _free_port, _stop, _wait_healthy

    tmp = tmp_path_factory.mktemp("sec_server")
    path = tmp / "console.db"
    shutil.copyfile(secure_db_file, path)
    db_url = f"sqlite:///{path}"
    key = pysecrets.token_urlsafe(36)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "LAC_TEST_MODE": "1", "LAC_COOKIE_KEY": key,
           "LAC_DATA_DIR": str(tmp / "data"), "PYTHONUNBUFFERED": "1"}
    env.pop("LAC_BCRYPT_ROUNDS", None)
    log = tmp / "streamlit.log"
    streamlit = str(Path(sys.executable).parent / "streamlit")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [streamlit, "run", "app.py", "--server.headless", "true", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    srv = SecServer(url=url, db_url=db_url, cookie_key=key, seeded=_SEEDED[str(secure_db_file)], process=process,
                    log=log)
    try:
        _wait_healthy(url, process, log)
        yield srv
    finally:
        _stop(process)
        dispose_engine(db_url)


# --- what was tried: counts collected by the tests (STATS dicts), printed at the end of a run ----------
def pytest_terminal_summary(terminalreporter: Any) -> None:
    merged: dict[str, Any] = {}
    here = str(Path(__file__).resolve().parent)
    for module in list(sys.modules.values()):
        path = str(getattr(module, "__file__", "") or "")
        stats = getattr(module, "STATS", None)
        if path.startswith(here) and isinstance(stats, dict):
            merged.update({f"{Path(path).stem}.{k}": v for k, v in stats.items()})
    if merged:
        terminalreporter.write_sep("-", "security: attempts made")
        for name in sorted(merged):
            terminalreporter.write_line(f"{name}: {merged[name]}")
