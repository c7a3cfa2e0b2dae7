"""Statistics truth: the year-end report (engine.reports) on real databases (SQLite file and, with
TEST_DATABASE_URL, PostgreSQL).

- On the seed dataset (tests/fixtures/seed_dataset.py) the report for 2023–2025 gives exactly the
  office's published figures (2158 cases, 29 hearings / 34 person-times, 13 events of which 2 for the
  elderly and 1 for migrant workers, 3200 brochures, 675 consultations) and every other figure the
  dataset was built with; the previous period (2020–2022) too.
- Edge cases on small datasets: deleted records, terminated cases, applicants in several groups,
  records of an older form version (with a choice the newer version dropped), and drill-down links
  that select exactly the records counted.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from engine.access import SYSTEM
from engine.db import dispose_engine, get_engine, session_scope, upgrade
from engine.errors import EngineError
from engine.forms import get_spec, load_builtins, publish
from engine.queries import ListQuery, json_field, list_records
from engine.reports import ACCEPTED_STATES, previous_period, year_end_report
from engine.storage import bulk_create, restore, soft_delete
from models.tables import Submission
from tests.conftest import BACKENDS, drop_pg_database, make_pg_database
from tests.fixtures.seed_dataset import PREVIOUS, RANGE, SEED_FIGURES, Case, SeedData, _intake_row, build_seed


# --- the seed dataset, built once per backend for this module (read-only tests) --------------------
@pytest.fixture(scope="module", params=BACKENDS)
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[Engine, SeedData]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('seed_report') / 'console.db'}"
    else:
        url = make_pg_database()
    engine = get_engine(url)
    upgrade(engine)
    data = build_seed(engine)
    yield engine, data
    if request.param == "sqlite":
        dispose_engine(url)
    else:
        drop_pg_database(url)


def test_report_reproduces_the_office_figures_exactly(seeded):
    engine, _data = seeded
    report = year_end_report(engine, *RANGE)
    for key, value in SEED_FIGURES.items():
        assert report.get(key) == value, key
    assert report.get("cases.accepted") == 2158
    assert report.get("hearings.sessions") == 29 and report.get("hearings.person_times") == 34
    assert report.get("outreach.events") == 13
    assert report.get("outreach.events.elderly") == 2 and report.get("outreach.events.migrant_workers") == 1
    assert report.get("outreach.brochures") == 3200 and report.get("outreach.consultations") == 675


def test_every_figure_matches_the_generation_plan(seeded):
    engine, data = seeded
    report = year_end_report(engine, *RANGE)
    wrong = {k: (v, report.get(k, "missing")) for k, v in data.expected.items() if report.get(k, "missing") != v}
    assert not wrong
    assert report.previous_from == PREVIOUS[0] and report.previous_to == PREVIOUS[1]
    prev = {k: (v, report.figure(k).previous) for k, v in data.expected_previous.items()
            if report.figure(k).previous != v}
    assert not prev
    # the category parts add up to the whole; criminal = applied + notified
    parts = sum(report.get(f"cases.accepted.{c}") for c in ("criminal", "civil", "administrative", "labour"))
    assert parts == 2158
    assert report.get("cases.criminal.applied") + report.get("cases.criminal.notified") == report.get(
        "cases.accepted.criminal")


def test_seed_edge_cases_are_in_the_data_and_counted_right(seeded):
    engine, data = seeded
    report = year_end_report(engine, *RANGE)
    # deleted cases exist in the range and are not counted
    assert len(data.deleted_ids) == 27
    with session_scope(engine, write=False) as s:
        deleted_in_range = s.execute(select(Submission.id).where(
            Submission.id.in_(data.deleted_ids), Submission.state.in_(ACCEPTED_STATES),
            json_field(engine, "application_date") >= "2023-01-01")).all()
    assert deleted_in_range
    # terminated are accepted cases, and counted as terminated
    assert data.terminated > 0 and report.get("cases.terminated") == data.terminated
    # applicants in two or more groups count once in each
    assert data.multi_group > 100
    groups_total = sum(report.get(f"groups.{g}") for g in ("elderly", "disabled", "minor", "women",
                                                           "migrant_worker", "servicemen", "low_income", "other"))
    assert groups_total == sum(len(c.groups) for c in data.cases
                               if not c.deleted and RANGE[0] <= c.day <= RANGE[1] and c.state in ACCEPTED_STATES)
    assert groups_total > report.get("cases.accepted") - 1000
    # some counted cases were stored under version 1 of the intake form, the others under version 2
    assert 0 < data.v1_accepted < 2158
    with session_scope(engine, write=False) as s:
        versions = {v for (v,) in s.execute(select(Submission.form_version).where(
            Submission.state.in_(ACCEPTED_STATES)).distinct())}
    assert {1, 2} <= versions


def test_a_single_year_compares_with_the_year_before(seeded):
    engine, data = seeded
    report = year_end_report(engine, date(2023, 1, 1), date(2023, 12, 31))
    in_2023 = sum(1 for c in data.cases if not c.deleted and c.day.year == 2023 and c.state in ACCEPTED_STATES)
    in_2022 = sum(1 for c in data.cases if not c.deleted and c.day.year == 2022 and c.state in ACCEPTED_STATES)
    fig = report.figure("cases.accepted")
    assert (fig.value, fig.previous, fig.change) == (in_2023, in_2022, in_2023 - in_2022)
    assert report.previous_label("zh") == "2022年"
    without = year_end_report(engine, date(2023, 1, 1), date(2023, 12, 31), compare=False)
    assert without.figure("cases.accepted").previous is None and without.previous_from is None


def test_drilldowns_select_exactly_the_records_counted(seeded):
    """A figure's link (form, state, dates, field filter) lists as many records as the figure says."""
    engine, _data = seeded
    report = year_end_report(engine, *RANGE)
    checked = 0
    for fig in report.figures():
        d = fig.drilldown
        if d is None or not fig.counts_records or fig.unit == "percent":
            continue
        if len(d.states) > 1 or any("," in v for _k, v in d.filters):
            continue  # several states / values: the records page reads them comma-separated
        q = ListQuery(state=d.states[0] if d.states else None, date_from=d.date_from, date_to=d.date_to,
                      filters=dict(d.filters))
        page = list_records(engine, d.slug, q, actor=SYSTEM)
        assert page.total == fig.value, fig.key
        checked += 1
    assert checked >= 20


# --- edge cases on small datasets -----------------------------------------------------------------
def _store(engine: Engine, cases: list[Case], start: int = 1) -> list[int]:
    rows = [_intake_row(i, c) for i, c in enumerate(cases, start=start)]
    bulk_create(engine, "intake", rows, actor=SYSTEM)
    nos = [r["application_no"] for r in rows]
    with session_scope(engine, write=False) as s:
        found = dict(s.execute(select(json_field(engine, "application_no"), Submission.id).where(
            json_field(engine, "application_no").in_(nos))).all())
    return [int(found[n]) for n in nos]


@pytest.fixture
def intake(engine: Engine) -> Engine:
    load_builtins(engine)
    return engine


Y = (date(2025, 1, 1), date(2025, 12, 31))


def test_deleted_cases_are_not_counted_and_restored_ones_are(intake):
    ids = _store(intake, [Case(date(2025, 3, 1), "civil", None, "closed", []),
                          Case(date(2025, 3, 2), "civil", None, "handling", ["elderly"]),
                          Case(date(2025, 3, 3), "labour", None, "archived", ["elderly"])])
    assert year_end_report(intake, *Y).get("cases.accepted") == 3
    soft_delete(intake, ids[2], actor=SYSTEM)
    r = year_end_report(intake, *Y)
    assert (r.get("cases.accepted"), r.get("cases.closed"), r.get("groups.elderly")) == (2, 1, 1)
    assert r.get("cases.accepted.labour") == 0
    restore(intake, ids[2], actor=SYSTEM)
    assert year_end_report(intake, *Y).get("cases.closed") == 2


def test_terminated_and_refused_cases_are_accepted_but_not_closed_applied_ones_are_not(intake):
    _store(intake, [Case(date(2025, 5, 1), "criminal", "notified", "terminated", []),
                    Case(date(2025, 5, 2), "civil", None, "refused", [], reason="not_in_scope"),
                    Case(date(2025, 5, 3), "civil", None, "applied", []),
                    Case(date(2025, 5, 4), "civil", None, "archived", [])])
    r = year_end_report(intake, *Y)
    assert r.get("cases.accepted") == 3
    assert r.get("cases.terminated") == 1 and r.get("cases.refused") == 1
    assert r.get("cases.refused.not_in_scope") == 1 and r.get("cases.refused.other") == 0
    assert r.get("cases.closed") == 1 and r.get("cases.closure_rate") == pytest.approx(33.3)
    assert r.get("cases.criminal.notified") == 1 and r.get("cases.criminal.applied") == 0


def test_an_applicant_in_several_groups_counts_once_in_each(intake):
    _store(intake, [Case(date(2025, 6, 1), "civil", None, "handling", ["elderly", "women", "migrant_worker"]),
                    Case(date(2025, 6, 2), "civil", None, "handling", ["elderly"]),
                    Case(date(2025, 6, 3), "civil", None, "handling", []),
                    Case(date(2025, 6, 4), "civil", None, "applied", ["elderly"])])  # not accepted
    r = year_end_report(intake, *Y)
    assert r.get("cases.accepted") == 3
    assert (r.get("groups.elderly"), r.get("groups.women"), r.get("groups.migrant_worker")) == (2, 1, 1)
    assert r.get("groups.minor") == 0
    assert r.figure("groups.elderly").drilldown.filters == (("special_groups", "elderly"),)


def test_records_of_an_older_version_count_like_new_ones(intake):
    _store(intake, [Case(date(2025, 2, 1), "administrative", None, "closed", ["other"]),
                    Case(date(2025, 2, 2), "civil", None, "closed", [])])
    spec = copy.deepcopy(get_spec(intake, "intake").to_dict())
    for f in spec["fields"]:
        if f["key"] == "case_category":  # v2 drops "administrative" and relabels the field
            f["choices"] = [c for c in f["choices"] if c["value"] != "administrative"]
            f["label"] = {"zh": "案件类型", "en": "Case type"}
    publish(intake, spec, actor=SYSTEM)
    assert get_spec(intake, "intake").field("case_category").choices[2].active is False
    _store(intake, [Case(date(2025, 2, 3), "civil", None, "closed", ["other"])], start=100)
    with session_scope(intake, write=False) as s:
        assert sorted(v for (v,) in s.execute(select(Submission.form_version))) == [1, 1, 2]
    r = year_end_report(intake, *Y)
    assert r.get("cases.accepted") == 3 and r.get("cases.closed") == 3
    assert r.get("cases.accepted.administrative") == 1 and r.get("cases.accepted.civil") == 2
    assert r.get("groups.other") == 2


def test_dates_come_from_the_date_field_and_bound_the_period(intake):
    _store(intake, [Case(date(2024, 12, 31), "civil", None, "closed", []),
                    Case(date(2025, 1, 1), "civil", None, "closed", []),
                    Case(date(2025, 12, 31), "civil", None, "closed", []),
                    Case(date(2026, 1, 1), "civil", None, "closed", [])])
    r = year_end_report(intake, *Y)
    assert r.get("cases.accepted") == 2
    assert r.figure("cases.accepted").previous == 1


def test_forms_missing_from_an_install_leave_their_sections_out(engine):
    publish(engine, {"slug": "other", "title": {"zh": "其他"}, "fields": [
        {"key": "note_text", "type": "text", "label": {"zh": "备注"}}]}, actor=SYSTEM)
    r = year_end_report(engine, *Y)
    assert r.sections == []


def test_liaison_network_counts_points_named_by_the_periods_records(intake):
    row = _intake_row(1, Case(date(2025, 4, 1), "civil", None, "handling", []))
    row.update(intake_channel="liaison_point", liaison_point="lp03")
    bulk_create(intake, "intake", [row], actor=SYSTEM)
    bulk_create(intake, "consultation", [
        {"consultation_date": "2025-04-02", "channel": "liaison_point", "liaison_point": "lp03", "topic": "labour",
         "summary": "咨询"},
        {"consultation_date": "2024-04-02", "channel": "liaison_point", "liaison_point": "lp09", "topic": "labour",
         "summary": "咨询"}], actor=SYSTEM)
    bulk_create(intake, "outreach_event", [{"title": "村居活动", "event_date": "2025-05-05", "place_type": "village",
                                            "target_group": "general", "liaison_point": "lp05"}], actor=SYSTEM)
    r = year_end_report(intake, *Y)
    assert r.get("network.points") == 71
    assert r.figure("network.active").value == 2 and r.figure("network.active").previous == 1


def test_periods():
    assert previous_period(date(2023, 1, 1), date(2025, 12, 31)) == (date(2020, 1, 1), date(2022, 12, 31))
    assert previous_period(date(2024, 1, 1), date(2024, 12, 31)) == (date(2023, 1, 1), date(2023, 12, 31))
    assert previous_period(date(2025, 3, 1), date(2025, 5, 31)) == (date(2024, 12, 1), date(2025, 2, 28))
    assert previous_period(date(2025, 3, 10), date(2025, 3, 19)) == (date(2025, 2, 28), date(2025, 3, 9))


def test_a_reversed_period_is_refused(engine):
    with pytest.raises(EngineError) as err:
        year_end_report(engine, date(2025, 2, 1), date(2025, 1, 1))
    assert err.value.code == "report.bad_range"
    assert "开始日期 2025-02-01 晚于结束日期 2025-01-01" in err.value.message("zh")


def test_report_command_writes_the_pdf(seeded, tmp_path, capsys):
    """`manage.py report --year 2023-2025 --out FILE.pdf` through engine.cli_reports (argparse wiring)."""
    import argparse
    import shutil
    import subprocess

    from engine.cli_reports import add_commands

    engine, _data = seeded
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    add_commands(parser.add_subparsers(dest="command"))
    out = tmp_path / "three-years.pdf"
    args = parser.parse_args(["--database-url", engine.url.render_as_string(hide_password=False), "report",
                              "--year", "2023-2025", "--out", str(out)])
    assert args.func(args) == 0
    assert out.read_bytes().startswith(b"%PDF")
    assert "受理案件 2158 件" in capsys.readouterr().out
    if shutil.which("pdftotext"):
        text = "".join(subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True).stdout.split())
        assert "2023—2025年法律援助工作统计报告" in text and "2,158" in text and "3,200" in text
    bad = parser.parse_args(["report", "--year", "20x5", "--out", str(out)])
    with pytest.raises(EngineError) as err:
        bad.func(bad)
    assert err.value.code == "cli.bad_year"


def test_report_command_registers_with_a_command_registry():
    from engine.cli_reports import add_commands

    registry: dict[str, tuple[str, type]] = {}

    def command(name: str, help: str):  # the shape of manage.py's registry decorator
        def wrap(cls: type) -> type:
            registry[name] = (help, cls)
            return cls
        return wrap

    add_commands(command)
    assert set(registry) == {"report", "import-records"}
    assert callable(registry["report"][1].configure) and callable(registry["report"][1].run)
