"""Shared fixtures: real databases (SQLite files; PostgreSQL when TEST_DATABASE_URL is set).

`db_url` is parametrized: every test that asks for it runs on a fresh, migrated SQLite file and,
where TEST_DATABASE_URL points to a server, on a fresh PostgreSQL database too.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.db import dispose_engine, get_engine, upgrade  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PG_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


def _pg_url(dbname: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{dbname}"


def make_pg_database() -> str:
    """Create a fresh empty PostgreSQL database and return its URL."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return _pg_url(name)


def drop_pg_database(url: str) -> None:
    name = url.rpartition("/")[2]
    dispose_engine(url)
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    yield url
    dispose_engine(url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it)")
    url = make_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'console.db'}"
    else:
        url = make_pg_database()
    upgrade(get_engine(url))
    yield url
    if request.param == "sqlite":
        dispose_engine(url)
    else:
        drop_pg_database(url)


@pytest.fixture
def engine(db_url: str) -> Engine:
    return get_engine(db_url)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium per test worker, shared by every browser test folder. It must be
    defined once, here: Playwright's sync API refuses a second instance in the same thread."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests drive a real server and Chromium, and timing checks compare medians: on a busy
    machine either can miss a deadline once. They get up to two more tries; a real failure fails
    every try. Every other test has exactly one. LAC_TEST_RERUNS=0 turns the extra tries off, to
    see why a first try failed."""
    reruns = int(os.environ.get("LAC_TEST_RERUNS", "2"))
    if reruns <= 0:
        return
    for item in items:
        if item.get_closest_marker("browser") or "timing" in item.name or "takes_as_long" in item.name:
            item.add_marker(pytest.mark.flaky(reruns=reruns, reruns_delay=2))
