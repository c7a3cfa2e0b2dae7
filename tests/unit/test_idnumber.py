"""Resident ID numbers (GB 11643), legacy 15-digit numbers, other documents, masks."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fields import FieldProblem
from engine.idnumber import (
    check_char,
    check_document,
    check_sex,
    loose_document,
    make_id,
    mask_id,
    normalise,
    parse_id,
)
from engine.messages import MESSAGES, render

TODAY = date(2026, 3, 15)
# Zhanjiang Xiashan district (the office's own district), Guangzhou Yuexiu, Beijing Dongcheng.
XIASHAN, YUEXIU, BEIJING = "440803", "440104", "110101"


def test_known_published_example_checks_out() -> None:
    # The worked example of GB 11643-1999 annex: 11010519491231002X.
    info = parse_id("11010519491231002X", TODAY)
    assert info.birth_date == date(1949, 12, 31)
    assert info.sex == "female"
    assert info.region == "110105"
    assert not info.legacy


@pytest.mark.parametrize(
    ("region", "birth", "seq", "sex"),
    [
        (XIASHAN, date(1990, 1, 1), 123, "male"),
        (XIASHAN, date(1958, 7, 20), 44, "female"),
        (YUEXIU, date(2010, 2, 28), 1, "male"),
        (BEIJING, date(2000, 2, 29), 998, "female"),
        ("820000", date(1975, 12, 31), 7, "male"),  # Macau residents' residence permit
    ],
)
def test_valid_numbers_give_birth_sex_age(region: str, birth: date, seq: int, sex: str) -> None:
    number = make_id(region, birth, seq)
    info = parse_id(number, TODAY)
    assert info.number == number
    assert info.birth_date == birth
    assert info.sex == sex
    assert info.region == region
    expected_age = TODAY.year - birth.year - ((TODAY.month, TODAY.day) < (birth.month, birth.day))
    assert info.age == expected_age


def test_age_counts_full_years_around_the_birthday() -> None:
    number = make_id(XIASHAN, date(1966, 3, 15), 11)
    assert parse_id(number, date(2026, 3, 14)).age == 59
    assert parse_id(number, date(2026, 3, 15)).age == 60


def test_check_character_x_and_lower_case_x() -> None:
    number = next(make_id(XIASHAN, date(1988, 8, 8), s) for s in range(1000) if make_id(XIASHAN, date(1988, 8, 8), s)[-1] == "X")
    assert number.endswith("X")
    assert parse_id(number.lower(), TODAY).number == number
    assert parse_id(" " + number[:6] + " " + number[6:].lower() + " ", TODAY).number == number


def test_full_width_digits_are_accepted() -> None:
    number = make_id(XIASHAN, date(1990, 1, 1), 123)
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in number)
    assert parse_id(full_width, TODAY).number == number


def _with_wrong_check(number: str) -> str:
    wrong = next(c for c in "0123456789X" if c != number[-1])
    return number[:-1] + wrong


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("44080319900101123", "id.length"),
        ("4408031990010112345", "id.length"),
        ("", "id.length"),
        ("44080319900101123A", "id.chars"),
        ("4408031990O1011234", "id.chars"),
        ("44080319900101X234", "id.chars"),
        ("44080390010112A", "id.chars"),
        (_with_wrong_check(make_id(XIASHAN, date(1990, 1, 1), 123)), "id.checksum"),
        (make_id(XIASHAN, "19900230", 123), "id.birth_date"),  # 30 February
        (make_id(XIASHAN, "19901301", 123), "id.birth_date"),  # month 13
        (make_id(XIASHAN, "20230229", 123), "id.birth_date"),  # not a leap year
        (make_id(XIASHAN, "18991231", 123), "id.too_old"),
        (make_id(XIASHAN, "20260316", 123), "id.future"),
        (make_id("990101", "19900101", 123), "id.region"),
        ("440803901301123", "id.birth_date"),  # legacy, month 13
        ("990803900101123", "id.region"),
    ],
)
def test_invalid_numbers_have_their_own_code(text: str, code: str) -> None:
    with pytest.raises(FieldProblem) as caught:
        parse_id(text, TODAY)
    assert caught.value.code == code


def test_birth_today_is_accepted_and_a_newborn_is_zero() -> None:
    assert parse_id(make_id(XIASHAN, TODAY, 2), TODAY).age == 0


def test_legacy_15_digit_number() -> None:
    info = parse_id("440803580720123", TODAY)  # YYMMDD = 1958-07-20, last digit 3: male
    assert info.legacy
    assert info.birth_date == date(1958, 7, 20)
    assert info.sex == "male"
    assert info.age == 67
    assert parse_id("440803580720124", TODAY).sex == "female"


def test_every_error_code_has_plain_words_in_both_languages() -> None:
    codes = ["id.length", "id.chars", "id.checksum", "id.region", "id.birth_date", "id.too_old", "id.future",
             "id.sex_mismatch", "id.passport", "id.hk_macau_permit", "id.taiwan_permit", "id.other", "id.doc_type"]
    for code in codes:
        assert MESSAGES[code]["zh"] and MESSAGES[code]["en"]
        assert render(code, "zh") != render(code, "en")
    assert "18" in render("id.length", "zh", length=17) and "17" in render("id.length", "en", length=17)


def test_checksum_weights() -> None:
    assert check_char("11010519491231002") == "X"
    assert check_char("44010419900101123") in "0123456789X"
    assert make_id(XIASHAN, date(1990, 1, 1), 5)[14:17] == "005"


@settings(max_examples=500, deadline=None)
@given(body=st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_the_check_character_is_the_standard_weighted_sum(body: str) -> None:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # GB 11643-1999, written out
    assert check_char(body) == "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


@pytest.mark.parametrize("body", ["1101051949123100", "110105194912310021", "1101051949123100a", "1_01051949123100",
                                  " 1101051949123100", "1101051949123100٣", "+1101051949123100"])
def test_the_check_character_needs_17_ascii_digits(body: str) -> None:
    with pytest.raises(ValueError):
        check_char(body)


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(max_size=20), st.text(alphabet="0123456789xX \t１２Ｘ", max_size=20),
                      st.from_regex(r"[0-9A-Za-z]{1,20}", fullmatch=True)))
def test_normalising_is_full_width_to_ascii_no_spaces_upper_case(text: str) -> None:
    import re
    import unicodedata

    assert normalise(text) == re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).upper()


def test_make_id_refuses_bad_parts() -> None:
    with pytest.raises(ValueError):
        make_id("4408", date(1990, 1, 1), 1)


# --- sex -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("given", ["male", "男", "M"])
def test_sex_matches(given: str) -> None:
    check_sex(make_id(XIASHAN, date(1990, 1, 1), 123), given, TODAY)  # 3: male


@pytest.mark.parametrize("given", ["female", "女", "f"])
def test_sex_mismatch(given: str) -> None:
    with pytest.raises(FieldProblem) as caught:
        check_sex(make_id(XIASHAN, date(1990, 1, 1), 123), given, TODAY)
    assert caught.value.code == "id.sex_mismatch"
    assert "男" in render("id.sex_mismatch", "zh", **caught.value.params)
    assert "male" in render("id.sex_mismatch", "en", **caught.value.params)


@pytest.mark.parametrize("given", [None, "", "unknown"])
def test_no_sex_given_means_no_check(given: str | None) -> None:
    check_sex(make_id(XIASHAN, date(1990, 1, 1), 124), given, TODAY)


# --- other documents -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("doc_type", "text", "stored"),
    [
        ("passport", "E12345678", "E12345678"),
        ("passport", "g 1234 5678", "G12345678"),
        ("passport", "AB123", "AB123"),
        ("hk_macau_permit", "H12345678", "H12345678"),
        ("hk_macau_permit", "m1234567890", "M1234567890"),
        ("taiwan_permit", "12345678", "12345678"),
        ("taiwan_permit", "1234567890", "1234567890"),
        ("taiwan_permit", "T123456789", "T123456789"),
        ("other", "军官字第123号", "军官字第123号"),
        ("other", "ab-12", "ab-12"),
        (None, make_id(XIASHAN, date(1990, 1, 1), 123).lower(), make_id(XIASHAN, date(1990, 1, 1), 123)),
        ("resident_id", "440803580720123", "440803580720123"),
    ],
)
def test_documents_valid(doc_type: str | None, text: str, stored: str) -> None:
    assert check_document(text, doc_type, TODAY) == stored


@pytest.mark.parametrize(
    ("doc_type", "text", "code"),
    [
        ("passport", "E123", "id.passport"),
        ("passport", "E1234567890123456789012", "id.passport"),
        ("passport", "E1234-5678", "id.passport"),
        ("hk_macau_permit", "H1234567", "id.hk_macau_permit"),
        ("hk_macau_permit", "K12345678", "id.hk_macau_permit"),
        ("hk_macau_permit", "H123456789", "id.hk_macau_permit"),
        ("taiwan_permit", "1234567", "id.taiwan_permit"),
        ("taiwan_permit", "123456789", "id.taiwan_permit"),
        ("other", "abc", "id.other"),
        ("other", "x" * 41, "id.other"),
        ("resident_id", "E12345678", "id.length"),
        ("driving_licence", "12345", "id.doc_type"),
    ],
)
def test_documents_invalid(doc_type: str, text: str, code: str) -> None:
    with pytest.raises(FieldProblem) as caught:
        check_document(text, doc_type, TODAY)
    assert caught.value.code == code


def test_loose_document_normalises_without_knowing_the_type() -> None:
    assert loose_document(" e1234 5678 ") == "E12345678"
    assert loose_document("ab") == "AB"  # too short for any type: validate reports it for the chosen type
    with pytest.raises(FieldProblem):
        loose_document("x" * 41)


# --- masks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("44010219900101123X", "440***********123X"),
        ("44010219900101123x", "440***********123X"),
        ("440803580720123", "440********0123"),
        ("E12345678", "E*****678"),
        ("abc", "***"),
        ("", ""),
    ],
)
def test_mask_id(text: str, masked: str) -> None:
    assert mask_id(text) == masked
    assert len(mask_id(text)) == len(text)
