"""Conflict and duplicate check with made-up people, on SQLite and PostgreSQL: the same ID number, the same
name and birth date, near-identical names (same pinyin, one character different), an opponent who was our
client; different people are not flagged; decisions are audited and reset when the parties change."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from engine.conflicts import (
    CLEARED,
    CONFIRMED,
    check,
    compare,
    decide,
    fingerprint,
    name_similarity,
    parse_parties,
    status,
)
from engine.db import session_scope
from engine.errors import EngineError, PermissionDenied
from engine.idnumber import make_id
from engine.storage import create, get_record
from engine.storage import update as update_record
from models.tables import AuditEvent, Submission
from tests.storage.conftest import MANAGER, STAFF, VIEWER

ZHANG_WEI_ID = make_id("440803", "19800101", 123)
ZHAO_ID = make_id("440802", "19700707", 231)
CHEN_ID = make_id("440811", "19850505", 442)
LIU_ID = make_id("440803", "19900909", 555)
LIU2_ID = make_id("440803", "19921111", 557)


def _values(name: str, id_number: str, **extra: Any) -> dict[str, Any]:
    values = {"application_date": "2026-03-16", "intake_channel": "window", "name": name,
              "sex": "male" if len(id_number) == 18 and int(id_number[16]) % 2 else "female", "id_doc_type": "resident_id",
              "id_number": id_number, "case_category": "civil", "legal_position": "plaintiff",
              "service_type": "litigation_agency", "case_cause": "labour_remuneration",
              "facts": "申请人被拖欠工资三个月，多次讨要未果。", "hardship_route": "exempt",
              "exemption_ground": "social_assistance"}
    values.update(extra)
    return values


def _intake(engine, name: str, id_number: str, *, state: str | None = None, **extra: Any) -> int:
    rid = int(create(engine, "intake", _values(name, id_number, **extra), actor=STAFF).id)
    if state is not None:
        with session_scope(engine) as s:
            s.execute(update(Submission).where(Submission.id == rid).values(state=state))
    return rid


def _found(matches) -> set[tuple[int, str, str, str]]:
    return {(m.other_id, m.kind, m.strength, m.basis) for m in matches}


# --- pure pieces ----------------------------------------------------------------------------------------------
def test_opposing_parties_lines_carry_ids_and_birth_dates() -> None:
    people = parse_parties("李四 " + ZHAO_ID + "\n王五（1975年3月2日出生）\n\n被申请人：湛江市某建筑工程有限公司\n"
                           "陈六、周七\n刘八，身份证号：" + LIU_ID.lower())
    assert [(p.name, p.id_number, p.birth) for p in people] == [
        ("李四", ZHAO_ID, "1970-07-07"),
        ("王五", None, "1975-03-02"),
        ("湛江市某建筑工程有限公司", None, None),
        ("陈六", None, None),
        ("周七", None, None),
        ("刘八", LIU_ID, "1990-09-09"),
    ]


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("张伟", "张伟", "same_name"),
    ("张伟", "张玮", "same_pinyin"),
    ("张伟", "章伟", "same_pinyin"),
    ("王小明", "王晓明", "same_pinyin"),
    ("王建国", "王建华", "one_char"),
    ("张伟", "张文", "one_char"),  # two characters: the differing ones start alike (w / w)
    ("张伟", "张强", None),  # every 张X is not the same person as 张伟
    ("刘洋", "刘强", None),
    ("王建国", "李建华", None),  # two characters differ
    ("张伟", "张伟伟", None),
    ("李", "季", None),
])
def test_name_similarity(a: str, b: str, expected: str | None) -> None:
    assert name_similarity(a, b) == expected


def test_different_ids_or_birth_dates_are_different_people() -> None:
    [a] = parse_parties("张伟 " + ZHANG_WEI_ID)
    [b] = parse_parties("张伟 " + LIU_ID)
    [c] = parse_parties("张伟 1980-01-01")
    [d] = parse_parties("张伟 1980-01-02")
    [e] = parse_parties("张玮 1980年1月1日")
    assert compare(a, b) is None
    assert compare(c, d) is None
    assert compare(a, c) == ("same_name_birth", "strong")
    assert compare(a, e) == ("similar_name_birth", "strong")
    assert compare(c, parse_parties("张伟")[0]) == ("same_name", "weak")


def test_legacy_15_digit_number_is_the_same_id() -> None:
    legacy = ZHAO_ID[:6] + ZHAO_ID[8:17]
    [a] = parse_parties("李四 " + legacy)
    [b] = parse_parties("李肆 " + ZHAO_ID)
    assert compare(a, b) == ("same_id", "strong")


# --- on a database --------------------------------------------------------------------------------------------
def test_same_id_number_open_case_is_a_duplicate_finished_one_is_previous(loaded) -> None:
    open_id = _intake(loaded, "张伟", ZHANG_WEI_ID)
    done_id = _intake(loaded, "张伟", ZHANG_WEI_ID, state="archived")
    new = _intake(loaded, "张伟", ZHANG_WEI_ID)
    assert _found(check(loaded, new)) == {(open_id, "duplicate", "strong", "same_id"),
                                          (done_id, "previous", "strong", "same_id")}


def test_same_name_and_birth_date_across_document_types(loaded) -> None:
    old = _intake(loaded, "陈美玲", "E12345678", id_doc_type="passport", sex="female", birth_date="1985-05-05")
    new = _intake(loaded, "陈美玲", CHEN_ID)
    assert _found(check(loaded, new)) == {(old, "duplicate", "strong", "same_name_birth")}


def test_near_identical_names_of_an_opponent_are_possible_conflicts(loaded) -> None:
    a = _intake(loaded, "李娜", LIU_ID, opposing_parties="张玮\n王建华")
    b = _intake(loaded, "赵敏", LIU2_ID, opposing_parties="章伟 1980年1月1日")
    new = _intake(loaded, "张伟", ZHANG_WEI_ID)  # born 1980-01-01
    found = check(loaded, new)
    assert _found(found) == {(a, "conflict", "weak", "same_pinyin"), (b, "conflict", "strong", "similar_name_birth")}
    m = next(x for x in found if x.other_id == a)
    assert (m.our_role, m.our_name, m.their_role, m.their_name) == ("applicant", "张伟", "opponent", "张玮")
    other = _intake(loaded, "王建国", make_id("440803", "19660606", 771))
    assert _found(check(loaded, other)) == {(a, "conflict", "weak", "one_char")}


def test_an_opponent_who_was_our_client_is_a_conflict(loaded) -> None:
    client = _intake(loaded, "赵大海", ZHAO_ID, state="archived")
    new = _intake(loaded, "孙小梅", CHEN_ID, opposing_parties="赵大海 " + ZHAO_ID + "\n某某公司")
    [m] = check(loaded, new)
    assert (m.other_id, m.kind, m.strength, m.basis) == (client, "conflict", "strong", "same_id")
    assert (m.our_role, m.their_role, m.other_open, m.other_state) == ("opponent", "applicant", False, "archived")
    # the other way round: the old client's record now shows that its applicant is our new opponent
    assert _found(check(loaded, client)) == {(new, "conflict", "strong", "same_id")}


def test_found_by_id_number_even_when_the_name_differs(loaded) -> None:
    old = _intake(loaded, "赵大海", ZHAO_ID)
    new = _intake(loaded, "孙小梅", CHEN_ID, opposing_parties="赵海（曾用名）" + ZHAO_ID)
    assert _found(check(loaded, new)) == {(old, "conflict", "strong", "same_id")}


def test_different_people_are_not_flagged(loaded) -> None:
    _intake(loaded, "刘洋", LIU_ID, opposing_parties="湛江市某物流有限公司\n黄志明 1960-02-02")
    _intake(loaded, "张伟", ZHANG_WEI_ID, opposing_parties="张强")  # same name as below, other person (ID)
    _intake(loaded, "王芳", CHEN_ID, opposing_parties="黄志明 1961-02-02")  # other birth date
    new = _intake(loaded, "张伟", make_id("440804", "19820303", 911), opposing_parties="刘强\n黄志明 1958-02-02\n"
                  "湛江市某物流有限公司")
    assert check(loaded, new) == []  # (the same company opposing in two cases is no conflict)
    deleted = _intake(loaded, "钱多多", make_id("440804", "19820303", 913))
    with session_scope(loaded) as s:
        s.execute(update(Submission).where(Submission.id == deleted).values(deleted_at=s.get(Submission, deleted)
                                                                            .created_at))
    assert check(loaded, _intake(loaded, "钱多多", make_id("440804", "19820303", 913))) == []


def test_check_of_values_before_saving(loaded) -> None:
    old = _intake(loaded, "张伟", ZHANG_WEI_ID)
    assert _found(check(loaded, _values("张伟", ZHANG_WEI_ID))) == {(old, "duplicate", "strong", "same_id")}
    assert check(loaded, {"name": ""}) == []


def test_decisions_are_audited_shown_and_reset_when_the_parties_change(loaded) -> None:
    a = _intake(loaded, "李娜", LIU_ID, opposing_parties="张玮")
    dup = _intake(loaded, "张伟", ZHANG_WEI_ID)
    new = _intake(loaded, "张伟", ZHANG_WEI_ID, opposing_parties="王五")
    st = status(loaded, new)
    assert {(m.match.other_id, m.match.kind) for m in st.open} == {(a, "conflict"), (dup, "duplicate")}
    conflict = next(m.match for m in st.matches if m.match.other_id == a)
    duplicate = next(m.match for m in st.matches if m.match.other_id == dup)
    with pytest.raises(EngineError) as info:
        decide(loaded, new, conflict.key, CLEARED, " ", STAFF)
    assert info.value.code == "conflict.reason_required"
    with pytest.raises(EngineError):
        decide(loaded, new, "999:A:A", CLEARED, "reason", STAFF)
    with pytest.raises(EngineError):
        decide(loaded, new, conflict.key, "ignored", "reason", STAFF)
    with pytest.raises(PermissionDenied):
        decide(loaded, new, conflict.key, CLEARED, "reason", VIEWER)

    decide(loaded, new, conflict.key, CLEARED, "对方张玮为女性，与申请人不是同一人", STAFF)
    decide(loaded, new, duplicate.key, CONFIRMED, "同一人重复申请，并案处理", MANAGER)
    st = status(loaded, new)
    assert st.open == [] and st.reset == 0
    shown = {m.match.other_id: (m.decision.outcome, m.decision.username, m.decision.reason) for m in st.matches}
    assert shown[a] == (CLEARED, "li", "对方张玮为女性，与申请人不是同一人")
    assert shown[dup][:2] == (CONFIRMED, "boss")
    assert [m.match.other_id for m in st.confirmed] == [dup]
    with session_scope(loaded, write=False) as s:
        events = s.execute(select(AuditEvent).where(AuditEvent.action == "conflict_decision")
                           .order_by(AuditEvent.id)).scalars().all()
    assert [(e.entity_id, e.detail["outcome"], e.detail["other_id"]) for e in events] == [
        (str(new), CLEARED, a), (str(new), CONFIRMED, dup)]

    # editing something else keeps the decisions
    rec = get_record(loaded, new, actor=STAFF)
    sub = update_record(loaded, new, {**rec.data, "facts": "申请人被拖欠工资四个月，多次讨要未果。"}, actor=STAFF,
                        revision=rec.submission.revision)
    assert status(loaded, new).open == []
    # a new opposing party: the earlier decisions no longer apply
    update_record(loaded, new, {**sub.data, "opposing_parties": "王五\n赵六"}, actor=STAFF, revision=sub.revision)
    st = status(loaded, new)
    assert {m.match.other_id for m in st.open} == {a, dup}
    assert all(m.decision is None for m in st.matches) and st.reset == 2
    assert len(st.history) == 2


def test_fingerprint_follows_the_parties_only() -> None:
    base = _values("张伟", ZHANG_WEI_ID, opposing_parties="王五\n赵六")
    assert fingerprint(base) == fingerprint({**base, "facts": "别的", "opposing_parties": "赵六\n王五\n"})
    assert fingerprint(base) != fingerprint({**base, "opposing_parties": "王五"})
    assert fingerprint(base) != fingerprint({**base, "name": "张玮"})
