"""Eligibility screen per legal ground (Legal Aid Law arts. 24, 25, 29, 31, 32, 34, 42; Guangdong economic test;
commitment route), then the admin's threshold setting and the staff decision on real databases."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from engine.access import Actor
from engine.db import session_scope
from engine.eligibility import (
    FAIL,
    GRANT,
    NA,
    PASS,
    REFUSE,
    get_threshold,
    latest_decision,
    list_thresholds,
    office,
    record_decision,
    screen,
    screen_record,
    set_office,
    set_threshold,
    threshold_from_urban_income,
)
from engine.errors import EngineError, PermissionDenied
from engine.idnumber import make_id
from models.decisions import Decision
from models.tables import AuditEvent

TODAY = date(2026, 3, 16)
ADULT_ID = make_id("440803", "19800101", 123)  # 46, male
MINOR_ID = make_id("440803", "20120505", 124)  # 13
ELDERLY_ID = make_id("440803", "19500101", 125)  # 76
T = Decimal("1200.00")


def civil(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "张三", "sex": "male", "id_doc_type": "resident_id", "id_number": ADULT_ID,
        "case_category": "civil", "legal_position": "plaintiff", "case_cause": "labour_remuneration",
        "hardship_route": "certificate", "household_size": 3, "monthly_income_total": "3000.00",
        "high_value_assets": False,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def exempt(ground: str, **changes: Any) -> dict[str, Any]:
    return civil(hardship_route="exempt", exemption_ground=ground, household_size=None, monthly_income_total=None,
                 high_value_assets=None, **changes)


def not_required(ground: str, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"hardship_route": "not_required", "not_required_ground": ground, "household_size": None,
                            "monthly_income_total": None, "high_value_assets": None, "case_cause": "other"}
    return civil(**{**base, **changes})


def criminal(route: str, ground: str, **changes: Any) -> dict[str, Any]:
    data = civil(case_category="criminal", legal_position=None, criminal_route=route, criminal_grounds=ground,
                 legal_position_criminal="defendant", case_cause="theft")
    if route == "notified":
        for key in ("hardship_route", "household_size", "monthly_income_total", "high_value_assets"):
            data.pop(key, None)
    data.update(changes)
    return data


ALL_DOCS = {k: {"answer": "yes", "note": ""} for k in ("commitment_letter", "economic_statement",
                                                       "verification_authorisation")}

CASES: list[tuple[str, dict[str, Any], Decimal | None, dict[str, str], str]] = [
    # --- economic test (Guangdong: strictly below the threshold), assets ---------------------------------------
    ("economic_below", civil(), T, {"economic": PASS, "assets": PASS, "scope": PASS}, GRANT),
    ("economic_at_threshold_fails", civil(monthly_income_total="3600.00"), T, {"economic": FAIL}, REFUSE),
    ("economic_one_fen_below", civil(monthly_income_total="3599.99"), T, {"economic": PASS}, GRANT),
    ("economic_above", civil(monthly_income_total="9000"), T, {"economic": FAIL}, REFUSE),
    ("economic_single_person", civil(household_size=1, monthly_income_total="1199.99"), T, {"economic": PASS},
     GRANT),
    ("no_threshold_configured", civil(), None, {"economic": NA, "assets": PASS}, GRANT),
    ("income_not_recorded", civil(monthly_income_total=None), T, {"economic": FAIL}, REFUSE),
    ("high_value_assets", civil(high_value_assets=True), T, {"economic": PASS, "assets": FAIL}, REFUSE),
    # --- art. 42: exempt from the check ----------------------------------------------------------------------
    ("art42_minor", exempt("no_income_minor", id_number=MINOR_ID, sex="female"), T,
     {"exempt": PASS, "economic": NA, "assets": NA}, GRANT),
    ("art42_minor_but_adult_by_id", exempt("no_income_minor"), T, {"exempt": FAIL, "economic": NA}, REFUSE),
    ("art42_elderly", exempt("no_income_elderly", id_number=ELDERLY_ID, sex="male"), T,
     {"exempt": PASS, "economic": NA}, GRANT),
    ("art42_elderly_but_46", exempt("no_income_elderly"), T, {"exempt": FAIL}, REFUSE),
    ("art42_disabled", exempt("no_income_disabled", health="disabled"), T, {"exempt": PASS}, GRANT),
    ("art42_disabled_group", exempt("no_income_disabled", special_groups=["disabled"]), T, {"exempt": PASS},
     GRANT),
    ("art42_disabled_not_recorded", exempt("no_income_disabled"), T, {"exempt": FAIL}, REFUSE),
    ("art42_social_assistance", exempt("social_assistance"), T, {"exempt": PASS, "economic": NA}, GRANT),
    ("art42_judicial_assistance", exempt("judicial_assistance"), T, {"exempt": PASS}, GRANT),
    ("art42_preferential_care", exempt("preferential_care"), T, {"exempt": PASS}, GRANT),
    ("art42_migrant_wages", exempt("migrant_worker_wages_injury", special_groups=["migrant_worker"]), T,
     {"exempt": PASS}, GRANT),
    ("art42_migrant_work_injury", exempt("migrant_worker_wages_injury", case_cause="work_injury"), T,
     {"exempt": PASS}, GRANT),
    ("art42_migrant_other_cause", exempt("migrant_worker_wages_injury", case_cause="traffic_accident"), T,
     {"exempt": FAIL}, REFUSE),
    ("art42_other_rule", exempt("other_rule"), T, {"exempt": PASS}, GRANT),
    ("art42_exempt_without_threshold", exempt("social_assistance"), None, {"exempt": PASS, "economic": NA}, GRANT),
    # --- art. 32: hardship not required ----------------------------------------------------------------------
    ("art32_heroes", not_required("heroes_reputation"), T, {"not_required": PASS, "economic": NA, "scope": NA},
     GRANT),
    ("art32_good_samaritan", not_required("good_samaritan"), T, {"not_required": PASS, "economic": NA}, GRANT),
    ("art32_acquittal_compensation", not_required("state_compensation_acquittal", case_cause="state_compensation"),
     T, {"not_required": PASS, "economic": NA, "scope": PASS}, GRANT),
    ("art32_abuse_victim", not_required("abuse_victim", case_cause="marriage_family"), T,
     {"not_required": PASS, "economic": NA}, GRANT),
    ("art32_other_rule", not_required("other_rule"), T, {"not_required": PASS}, GRANT),
    ("art32_income_ignored", not_required("good_samaritan", household_size=1, monthly_income_total="99999",
                                          high_value_assets=True), T, {"economic": NA, "assets": NA}, GRANT),
    # --- art. 25: mandatory notified defence: always grant ---------------------------------------------------
    *[(f"art25_{g}", criminal("notified", g), T, {"criminal_mandatory": PASS, "economic": NA, "assets": NA}, GRANT)
      for g in ("minor", "blind_deaf_mute", "mental_incapacity", "life_or_death_sentence", "death_penalty_review",
                "trial_in_absentia")],
    ("art25_without_threshold", criminal("notified", "life_or_death_sentence"), None, {"criminal_mandatory": PASS},
     GRANT),
    ("art25_ignores_income_and_assets", criminal("notified", "trial_in_absentia", hardship_route="certificate",
                                                 household_size=1, monthly_income_total="99999",
                                                 high_value_assets=True), T, {"economic": NA, "assets": NA}, GRANT),
    ("art25_2_other_notified", criminal("notified", "other_notified"), T, {"criminal_mandatory": PASS}, GRANT),
    ("art25_minor_by_id_on_application", criminal("applied", "hardship", id_number=MINOR_ID, sex="female",
                                                  monthly_income_total="99999"), T,
     {"criminal_mandatory": PASS, "economic": NA}, GRANT),
    # --- art. 24: on application -----------------------------------------------------------------------------
    ("art24_hardship_poor", criminal("applied", "hardship"), T,
     {"criminal_application": PASS, "criminal_mandatory": NA, "economic": PASS, "scope": NA}, GRANT),
    ("art24_hardship_not_poor", criminal("applied", "hardship", monthly_income_total="9000"), T,
     {"criminal_application": PASS, "economic": FAIL}, REFUSE),
    *[(f"art24_{g}", criminal("applied", g, monthly_income_total="99999"), T,
       {"criminal_application": PASS, "economic": NA}, GRANT)
      for g in ("co_defendants_have_counsel", "procuratorate_protest", "major_social_impact")],
    ("art24_other_applied_examined", criminal("applied", "other_applied", monthly_income_total="9000"), T,
     {"criminal_application": PASS, "economic": FAIL}, REFUSE),
    ("art24_notified_ground_on_application", criminal("applied", "blind_deaf_mute"), T,
     {"criminal_application": FAIL}, REFUSE),
    ("art29_victim_examined", criminal("applied", "", legal_position_criminal="victim", monthly_income_total="9000"),
     T, {"criminal_application": PASS, "economic": FAIL}, REFUSE),
    # --- commitment route (告知承诺) ---------------------------------------------------------------------------
    ("commitment_all_documents", civil(hardship_route="commitment", commitment_documents=ALL_DOCS), T,
     {"commitment_documents": PASS, "economic": PASS}, GRANT),
    ("commitment_documents_missing", civil(hardship_route="commitment", commitment_documents={
        "commitment_letter": {"answer": "yes"}, "economic_statement": {"answer": "no"}}), T,
     {"commitment_documents": FAIL, "economic": PASS}, REFUSE),
    ("commitment_no_checklist", civil(hardship_route="commitment"), T, {"commitment_documents": FAIL}, REFUSE),
    ("certificate_needs_no_commitment", civil(), T, {"commitment_documents": NA}, GRANT),
    # --- art. 31 scope: listed causes pass, others are for the reviewer (never an automatic refusal) -----------
    ("scope_support", civil(case_cause="support_maintenance"), T, {"scope": PASS}, GRANT),
    ("scope_not_listed", civil(case_cause="marriage_family"), T, {"scope": NA}, GRANT),
]


@pytest.mark.parametrize(("data", "threshold", "expected", "proposal"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_ground(data: dict[str, Any], threshold: Decimal | None, expected: dict[str, str], proposal: str) -> None:
    result = screen(data, threshold=threshold, today=TODAY)
    got = {key: result.criterion(key).outcome for key in expected}
    assert got == expected
    assert result.proposal == proposal
    assert [c.key for c in result.criteria] == ["criminal_mandatory", "criminal_application", "scope",
                                                "not_required", "exempt", "economic", "assets",
                                                "commitment_documents"]
    for c in result.criteria:  # every criterion explains itself in both languages
        assert c.reason_in("zh") and c.reason_in("en") and c.label_in("zh") and c.label_in("en")


def test_reasons_name_the_figures_and_the_missing_documents() -> None:
    r = screen(civil(monthly_income_total="3600.00"), threshold=T, today=TODAY).criterion("economic")
    assert "1,200.00" in r.reason_in("zh") and "不低于" in r.reason_in("zh")
    assert "not below" in r.reason_in("en")
    missing = screen(civil(hardship_route="commitment", commitment_documents={
        "commitment_letter": {"answer": "yes"}, "economic_statement": {"answer": "na"}}),
        threshold=T, today=TODAY).criterion("commitment_documents")
    assert missing.reason_in("zh") == "缺少：经济困难状况说明表、授权核查声明"
    assert "Commitment letter" not in missing.reason_in("en")
    none = screen(civil(), threshold=None, today=TODAY)
    assert "未设置" in none.criterion("economic").reason_in("zh")
    assert "threshold not configured" in none.criterion("economic").reason_in("en")
    assert none.undetermined == ["economic"]
    adult = screen(exempt("no_income_minor"), threshold=T, today=TODAY).criterion("exempt")
    assert "46" in adult.reason_in("zh")


def test_grounds_cite_the_law() -> None:
    r = screen(criminal("notified", "death_penalty_review"), threshold=None, today=TODAY)
    assert r.mandatory and any("第二十五条第一款第（五）项" in g["zh"] for g in r.grounds)
    r = screen(exempt("social_assistance"), threshold=T, today=TODAY)
    assert any("第四十二条第（二）项" in g["zh"] for g in r.grounds)
    r = screen(civil(), threshold=T, today=TODAY)
    assert any("第三十四条" in g["zh"] for g in r.grounds)


def test_age_from_the_id_number_feeds_notes() -> None:
    elderly = screen(civil(id_number=ELDERLY_ID), threshold=T, today=TODAY)
    assert any("第四十二条" in n["zh"] and "76" in n["zh"] for n in elderly.notes)
    minor = screen(civil(id_number=MINOR_ID, sex="female"), threshold=T, today=TODAY)
    assert any("未成年人" in n["zh"] for n in minor.notes)
    assert screen(civil(), threshold=T, today=TODAY).notes == []
    # a passport gives no age: the birth_date field is used instead
    passport = exempt("no_income_elderly", id_doc_type="passport", id_number="E12345678", birth_date="1950-02-01")
    assert screen(passport, threshold=T, today=TODAY).criterion("exempt").outcome == PASS


def test_threshold_entered_on_the_record_is_only_a_note() -> None:
    r = screen(civil(income_threshold="1300.00"), threshold=None, today=TODAY)
    assert r.criterion("economic").outcome == NA and any("1,300.00" in n["zh"] for n in r.notes)
    r = screen(civil(income_threshold="1300.00", monthly_income_total="3600"), threshold=T, today=TODAY)
    assert r.criterion("economic").outcome == FAIL  # the configured threshold decides
    assert any("不一致" in n["zh"] for n in r.notes)
    assert screen(civil(income_threshold="1200"), threshold=T, today=TODAY).notes == []


def test_threshold_from_the_urban_figure() -> None:
    assert threshold_from_urban_income(annual="51600") == Decimal("2150.00")
    assert threshold_from_urban_income(monthly="4300") == Decimal("2150.00")
    with pytest.raises(EngineError):
        threshold_from_urban_income(annual="-1")


# --- on a database --------------------------------------------------------------------------------------------
ADMIN = Actor("admin1", "admin")
STAFF = Actor("li", "staff")
MANAGER = Actor("boss", "manager")


@pytest.fixture
def loaded(engine):
    from engine.forms import load_builtins

    assert load_builtins(engine)["problems"] == {}
    return engine


def _intake(engine, **changes: Any) -> int:
    from engine.storage import create

    values = {"application_date": "2026-03-16", "intake_channel": "window", "service_type": "litigation_agency",
              "facts": "申请人被拖欠工资三个月，多次讨要未果。", **civil(**changes)}
    return int(create(engine, "intake", values, actor=STAFF).id)


def test_threshold_setting_is_admin_only_audited_and_per_city_year(loaded) -> None:
    with pytest.raises(PermissionDenied):
        set_threshold(loaded, "湛江市", 2026, "1200", actor=STAFF)
    for bad in ("0", "-5", "abc"):
        with pytest.raises(EngineError) as info:
            set_threshold(loaded, "湛江市", 2026, bad, actor=ADMIN)
        assert info.value.code == "eligibility.bad_threshold"
    with pytest.raises(EngineError):
        set_threshold(loaded, "湛江市", 1999, "1200", actor=ADMIN)
    set_threshold(loaded, "湛江市", 2026, "1200", actor=ADMIN, basis="2025年城镇居民人均可支配收入 28800 元")
    set_threshold(loaded, "广州市", 2026, "3400.5", actor=ADMIN)
    assert get_threshold(loaded, "湛江市", 2026) == Decimal("1200.00")
    assert get_threshold(loaded, "湛江市", 2025) is None
    assert get_threshold(loaded, "广州市", 2026) == Decimal("3400.50")
    assert [(r.city, r.year) for r in list_thresholds(loaded)] == [("广州市", 2026), ("湛江市", 2026)]
    with session_scope(loaded, write=False) as s:
        events = s.execute(select(AuditEvent).where(AuditEvent.action == "setting_update")).scalars().all()
    assert [e.entity_id for e in events] == ["eligibility_threshold", "eligibility_threshold"]
    assert events[0].username == "admin1" and events[0].detail["threshold"] == [None, "1200.00"]
    set_threshold(loaded, "广州市", 2026, None, actor=ADMIN)
    assert get_threshold(loaded, "广州市", 2026) is None


def test_record_screen_uses_the_office_city_and_the_application_year(loaded) -> None:
    rid = _intake(loaded)
    assert screen_record(loaded, rid, today=TODAY).criterion("economic").outcome == NA
    set_threshold(loaded, office(loaded)["city"], 2026, "1200", actor=ADMIN)
    assert screen_record(loaded, rid, today=TODAY).criterion("economic").outcome == PASS
    set_office(loaded, {"city": "广州市"}, actor=ADMIN)
    assert screen_record(loaded, rid, today=TODAY).criterion("economic").outcome == NA  # no threshold there


def test_decision_against_the_proposal_needs_a_reason_and_is_audited(loaded) -> None:
    set_threshold(loaded, office(loaded)["city"], 2026, "1200", actor=ADMIN)
    rid = _intake(loaded, monthly_income_total="9000")  # proposal: refuse
    assert screen_record(loaded, rid).proposal == REFUSE
    with pytest.raises(EngineError) as info:
        record_decision(loaded, rid, GRANT, "  ", STAFF)
    assert info.value.code == "eligibility.reason_required"
    assert "给予" in info.value.message("zh") and "不予" in info.value.message("zh")
    assert latest_decision(loaded, rid) is None
    with pytest.raises(PermissionDenied):
        record_decision(loaded, rid, GRANT, "x", Actor("v", "viewer"))
    with pytest.raises(EngineError):
        record_decision(loaded, rid, "maybe", "x", STAFF)

    record_decision(loaded, rid, REFUSE, None, STAFF)  # with the proposal: no reason needed
    d = record_decision(loaded, rid, GRANT, "家中有重病患者，实际支出远高于收入", MANAGER)
    latest = latest_decision(loaded, rid)
    assert latest is not None and latest.id == d.id and latest.outcome == GRANT and latest.username == "boss"
    assert latest.data["against_proposal"] is True and latest.data["proposal"] == REFUSE
    assert latest.data["criteria"]["economic"] == FAIL
    with session_scope(loaded, write=False) as s:
        events = s.execute(select(AuditEvent).where(AuditEvent.action == "eligibility_decision")
                           .order_by(AuditEvent.id)).scalars().all()
        assert s.execute(select(Decision).where(Decision.submission_id == rid)).scalars().all()
    assert [(e.username, e.detail["decision"], e.detail["against_proposal"]) for e in events] == [
        ("li", REFUSE, False), ("boss", GRANT, True)]
    assert events[1].detail["reason"].startswith("家中有重病患者") and events[1].entity_id == str(rid)


def test_the_admin_form_takes_an_amount_or_half_the_prior_year_urban_income(loaded) -> None:
    from engine.eligibility import set_threshold_from_input

    assert set_threshold_from_input(loaded, "湛江市", 2026, urban_annual=" 51600 ", actor=ADMIN) == Decimal("2150.00")
    row = next(r for r in list_thresholds(loaded) if r.city == "湛江市")
    assert row.basis == "2025 年城镇居民人均可支配收入 51600 元 × 50% ÷ 12"
    assert set_threshold_from_input(loaded, "湛江市", 2026, amount="2000", urban_annual="51600", basis="自定",
                                    actor=ADMIN) == Decimal("2000.00")
    assert next(r for r in list_thresholds(loaded) if r.city == "湛江市").basis == "自定"
    with pytest.raises(EngineError):  # neither given: refused, nothing changes
        set_threshold_from_input(loaded, "湛江市", 2026, actor=ADMIN)
    assert get_threshold(loaded, "湛江市", 2026) == Decimal("2000.00")
