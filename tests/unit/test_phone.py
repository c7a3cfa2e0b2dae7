"""Mainland mobile and landline numbers: normalisation, refusals, masks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fields import FieldProblem
from engine.messages import render
from engine.phone import check_phone, mask_phone


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("+8613812345678", "13812345678"),
        ("0086-13812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),  # full-width digits from a Chinese IME
        ("19912345678", "19912345678"),
        ("0759-1234567", "0759-1234567"),
        ("07591234567", "0759-1234567"),
        ("0759 1234567", "0759-1234567"),
        ("(0759)1234567", "0759-1234567"),
        ("010-12345678", "010-12345678"),
        ("02012345678", "020-12345678"),
        ("0759-1234567转123", "0759-1234567-123"),
        ("0759-1234567 ext. 8", "0759-1234567-8"),
        ("0759-1234567-123", "0759-1234567-123"),
        ("075-91234567", "0759-1234567"),  # area codes are 3 digits only for 010 and 02x
    ],
)
def test_valid_numbers_are_normalised(text: str, stored: str) -> None:
    assert check_phone(text) == stored
    assert check_phone(stored) == stored  # normalising twice changes nothing


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1381234567", "phone.mobile"),  # 10 digits
        ("138123456789", "phone.mobile"),  # 12 digits
        ("12812345678", "phone.mobile"),  # 12x is not a mobile range
        ("12348", "phone.invalid"),  # the legal-aid hotline is not a personal number
        ("1234567", "phone.invalid"),  # landline without area code
        ("1380000", "phone.mobile"),  # a mobile prefix, too short
        ("0759-123456", "phone.invalid"),  # 6-digit local number
        ("0759-123456789", "phone.invalid"),
        ("abc", "phone.invalid"),
        ("138abcd5678", "phone.invalid"),
        ("+1 415 555 0100", "phone.invalid"),
    ],
)
def test_invalid_numbers(text: str, code: str) -> None:
    with pytest.raises(FieldProblem) as caught:
        check_phone(text)
    assert caught.value.code == code


def test_messages_are_bilingual() -> None:
    for code in ("phone.invalid", "phone.mobile"):
        assert render(code, "zh") and render(code, "en") and render(code, "zh") != render(code, "en")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("13812345678", "138****5678"),
        ("+86 138 1234 5678", "138****5678"),
        ("0759-1234567", "0759-***4567"),
        ("010-12345678", "010-****5678"),
        ("0759-1234567-123", "0759-***4567"),
        ("12345", "*2345"),
        ("123", "***"),
        ("", ""),
    ],
)
def test_masks_keep_only_what_identifies_the_line(text: str, masked: str) -> None:
    assert mask_phone(text) == masked


class _Text(str):
    """A str subclass: `mask_phone` takes its general path (the stored-mobile shortcut is for plain str)."""


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(alphabet="0123456789", min_size=9, max_size=13),
                      st.from_regex(r"1[0-9]{10}", fullmatch=True), st.text(max_size=14)))
def test_a_stored_mobile_is_masked_as_any_other_number(text: str) -> None:
    assert mask_phone(text) == mask_phone(_Text(text))
