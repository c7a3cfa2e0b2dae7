"""Concurrent writers on one database (SQLite file / PostgreSQL), and SQL that indexes can serve."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text

from engine import stamps
from engine.db import is_postgres, session_scope
from engine.errors import ValidationFailed
from engine.queries import ListQuery, json_field, list_records
from engine.storage import create
from models.tables import Submission
from tests.storage.conftest import ADMIN, STAFF, STAFF2, audit_rows, submissions

THREADS, EACH = 8, 15


def test_concurrent_creates_from_eight_threads_all_land(cases):
    stamp = stamps.current(cases, "data:case")
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def work(t: int) -> None:
        barrier.wait()
        try:
            for i in range(EACH):
                actor = STAFF if t % 2 else STAFF2
                create(cases, "case", {"name": f"线程{t}-{i}", "id_no": f"T{t:02d}{i:03d}", "kind": "civil"},
                       actor=actor)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert submissions(cases) == THREADS * EACH
    assert len(audit_rows(cases, "create")) == THREADS * EACH
    assert stamps.current(cases, "data:case") == stamp + THREADS * EACH
    assert list_records(cases, "case", ListQuery(), actor=ADMIN).total == THREADS * EACH


def test_concurrent_duplicates_of_a_unique_value_store_once(cases):
    barrier = threading.Barrier(THREADS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        barrier.wait()
        try:
            create(cases, "case", {"name": f"抢{t}", "id_no": "SAME-ID"}, actor=STAFF)
            outcome = "stored"
        except ValidationFailed as exc:
            outcome = exc.errors["id_no"].code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["record.duplicate"] * (THREADS - 1) + ["stored"]
    assert submissions(cases) == 1


def test_json_field_matches_an_expression_index(cases):
    for i in range(30):
        create(cases, "case", {"name": f"人{i}", "kind": ["civil", "criminal", "labour"][i % 3]}, actor=STAFF)
    expr = json_field(cases, "kind")
    stmt = select(Submission.id).where(expr == ("civil"))
    with session_scope(cases) as s:
        if is_postgres(cases):
            s.execute(text("CREATE INDEX ix_test_kind ON submissions ((data ->> 'kind'))"))
            s.execute(text("SET LOCAL enable_seqscan = off"))
            sql = str(stmt.compile(cases, compile_kwargs={"literal_binds": True}))
            plan = " ".join(r[0] for r in s.execute(text("EXPLAIN " + sql)))
        else:
            s.execute(text("CREATE INDEX ix_test_kind ON submissions (json_extract(data, '$.\"kind\"'))"))
            sql = str(stmt.compile(cases, compile_kwargs={"literal_binds": True}))
            plan = " ".join(str(r[-1]) for r in s.execute(text("EXPLAIN QUERY PLAN " + sql)))
        assert "ix_test_kind" in plan, plan
        assert len(s.execute(stmt).all()) == 10


@pytest.mark.parametrize("key", ["name", "id_no", "applied_on"])
def test_json_field_sql_is_a_literal_path(cases, key):
    sql = str(json_field(cases, key).compile(cases))
    if is_postgres(cases):
        assert "->>" in sql
    else:
        assert f"'$.\"{key}\"'" in sql and "?" not in sql
