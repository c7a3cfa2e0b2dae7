"""Identity document numbers: PRC resident ID (GB 11643) and other document types.

- `parse_id(text, today)` checks an 18-digit (or 15-digit legacy) resident ID and returns the facts it
  carries (birth date, sex, age, region); every failure is a `FieldProblem` with its own code.
- `check_document(text, doc_type, today)` checks a number for one document type and returns it normalised.
- `mask_id(text)` hides the middle of a number for display: ``440***********123X``.
- `make_id(region, birth, seq)` builds a number with a correct check character (tests, demo data).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date
from typing import NamedTuple

from engine.fields import FieldProblem
from engine.messages import register

WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
# First two digits: provinces (11–65), Taiwan / Hong Kong / Macau (71, 81, 82, 83),
# and foreigners' permanent residence ID cards of the 2023 design (91).
PROVINCES: frozenset[str] = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
    "71", "81", "82", "83", "91",
})
EARLIEST_BIRTH = date(1900, 1, 1)
RESIDENT_ID = "resident_id"
DOC_TYPES: tuple[str, ...] = ("resident_id", "passport", "hk_macau_permit", "taiwan_permit", "other")

register(
    {
        "id.length": {
            "zh": "身份证号码应为 18 位（旧版为 15 位），现在是 {length} 位",
            "en": "A resident ID number has 18 characters (old cards: 15); this one has {length}",
        },
        "id.chars": {
            "zh": "身份证号码只能是数字，18 位号码的最后一位可以是 X",
            "en": "A resident ID number contains only digits; the last of 18 may be X",
        },
        "id.checksum": {
            "zh": "身份证号码校验位不正确，请核对最后一位及其他数字是否抄错",
            "en": "The ID number's check character is wrong: please check the last character and the digits",
        },
        "id.region": {
            "zh": "身份证号码开头的地区代码不存在，请核对前两位",
            "en": "The ID number starts with an unknown region code: please check the first two digits",
        },
        "id.birth_date": {
            "zh": "身份证号码中的出生日期（{birth}）不是有效日期",
            "en": "The birth date in the ID number ({birth}) is not a real date",
        },
        "id.too_old": {
            "zh": "身份证号码中的出生日期（{birth}）早于 1900 年，请核对",
            "en": "The birth date in the ID number ({birth}) is before 1900: please check",
        },
        "id.future": {
            "zh": "身份证号码中的出生日期（{birth}）晚于今天，请核对",
            "en": "The birth date in the ID number ({birth}) is after today: please check",
        },
        "id.sex_mismatch": {
            "zh": "身份证号码显示性别为{id_sex_zh}，与所填性别不一致",
            "en": "The ID number shows the person is {id_sex_en}, which differs from the sex entered",
        },
        "id.passport": {
            "zh": "护照号码应为 5 至 20 位字母或数字",
            "en": "A passport number has 5 to 20 letters or digits",
        },
        "id.hk_macau_permit": {
            "zh": "港澳居民来往内地通行证号码应为 H 或 M 加 8 位或 10 位数字",
            "en": "A Hong Kong / Macau permit number is H or M followed by 8 or 10 digits",
        },
        "id.taiwan_permit": {
            "zh": "台湾居民来往大陆通行证号码应为 8 位数字或 10 位字母数字",
            "en": "A Taiwan permit number has 8 digits or 10 letters/digits",
        },
        "id.other": {
            "zh": "证件号码应为 4 至 40 个字符，不含空格",
            "en": "A document number has 4 to 40 characters without spaces",
        },
        "id.doc_type": {
            "zh": "不认识的证件类型「{doc_type}」",
            "en": "Unknown document type '{doc_type}'",
        },
    }
)

_SEX_WORDS = {"male": ("男", "male"), "female": ("女", "female")}


class IdInfo(NamedTuple):
    """What a resident ID number tells about its holder (immutable)."""

    number: str  # normalised: digits and upper-case X
    birth_date: date
    sex: str  # "male" | "female"
    age: int  # full years on `today`
    region: str  # the 6-digit administrative division code
    legacy: bool  # a 15-digit number of the first-generation card


_SPACES = re.compile(r"\s+")
_SHAPE_18 = re.compile(r"[0-9]{17}[0-9X]")
_SHAPE_15 = re.compile(r"[0-9]{15}")


def normalise(text: str) -> str:
    """Full-width to ASCII, whitespace removed, upper case (so a lower-case x becomes X)."""
    text = str(text)
    if text.isalnum() and text.isascii():  # letters and digits only (the usual number): nothing to remove
        return text.upper()
    if not text.isascii():  # NFKC leaves ASCII as it is: only other text needs it
        text = unicodedata.normalize("NFKC", text)
    return _SPACES.sub("", text).upper()


def check_char(body17: str) -> str:
    """The GB 11643 check character for the first 17 digits.

    The weights are 2**(17 - i) mod 11 for the digit at place i, so the weighted sum is 2 * (the digits
    read as a base-2 number) mod 11; since 13 = 2 (mod 11), reading them in base 13 gives the same
    remainder in one call (`sum(map(operator.mul, map(int, body17), WEIGHTS)) % 11`, the definition,
    is what the tests compare it with)."""
    if len(body17) != len(WEIGHTS) or not (body17.isascii() and body17.isdigit()):
        raise ValueError(f"17 ASCII digits expected, got {body17!r}")
    return CHECK_CHARS[2 * int(body17, 13) % 11]


def make_id(region: str, birth: date | str, seq: int | str) -> str:
    """An 18-digit number with a correct check character (the birth part is not checked)."""
    birth_part = birth.strftime("%Y%m%d") if isinstance(birth, date) else str(birth)
    seq_part = f"{int(seq):03d}"
    body = f"{region}{birth_part}{seq_part}"
    if not re.fullmatch(r"\d{17}", body):
        raise ValueError(f"region (6 digits) + birth (8) + seq (3) must give 17 digits, got {body!r}")
    return body + check_char(body)


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _check_shape(number: str) -> None:
    if len(number) not in (15, 18):
        raise FieldProblem("id.length", length=len(number))
    shape = _SHAPE_18 if len(number) == 18 else _SHAPE_15
    if not shape.fullmatch(number):
        raise FieldProblem("id.chars")
    if len(number) == 18 and check_char(number[:17]) != number[17]:
        raise FieldProblem("id.checksum")
    if number[:2] not in PROVINCES:
        raise FieldProblem("id.region", region=number[:6])


def _birth(number: str, today: date) -> date:
    text = number[6:14] if len(number) == 18 else "19" + number[6:12]
    try:
        birth = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise FieldProblem("id.birth_date", birth=_shown_birth(text)) from None
    if birth < EARLIEST_BIRTH:
        raise FieldProblem("id.too_old", birth=_shown_birth(text))
    if birth > today:
        raise FieldProblem("id.future", birth=_shown_birth(text))
    return birth


def _shown_birth(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:]}"


def parse_id(text: str, today: date | None = None) -> IdInfo:
    """Check a resident ID number (18 digits, or 15-digit legacy) and return its facts."""
    number = normalise(text)
    _check_shape(number)
    today = today or date.today()
    birth = _birth(number, today)
    sex_digit = int(number[16] if len(number) == 18 else number[14])
    return IdInfo(
        number=number,
        birth_date=birth,
        sex="male" if sex_digit % 2 else "female",
        age=age_on(birth, today),
        region=number[:6],
        legacy=len(number) == 15,
    )


def _pattern_check(pattern: str, code: str) -> Callable[[str, date | None], str]:
    compiled = re.compile(pattern)

    def check(text: str, today: date | None) -> str:
        number = normalise(text)
        if not compiled.fullmatch(number):
            raise FieldProblem(code)
        return number

    return check


def _other(text: str, today: date | None) -> str:
    number = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text)))
    if not 4 <= len(number) <= 40:
        raise FieldProblem("id.other")
    return number


DOC_CHECKS: dict[str, Callable[[str, date | None], str]] = {
    "resident_id": lambda text, today: parse_id(text, today).number,
    "passport": _pattern_check(r"[A-Z0-9]{5,20}", "id.passport"),
    "hk_macau_permit": _pattern_check(r"[HM](?:[0-9]{8}|[0-9]{10})", "id.hk_macau_permit"),
    "taiwan_permit": _pattern_check(r"[0-9]{8}|[A-Z0-9]{10}", "id.taiwan_permit"),
    "other": _other,
}


def check_document(text: str, doc_type: str | None = None, today: date | None = None) -> str:
    """Check a number for a document type (default: resident ID); return it normalised."""
    kind = doc_type or RESIDENT_ID
    check = DOC_CHECKS.get(kind)
    if check is None:
        raise FieldProblem("id.doc_type", doc_type=kind)
    return check(text, today)


def loose_document(text: str) -> str:
    """Normalise a number whose document type is not known yet (validate checks it for its type later).

    Only an over-long number (more than 40 characters) is refused here.
    """
    number = normalise(text)
    if len(number) > 40:
        raise FieldProblem("id.other")
    return number


_SEX_ALIASES = {"male": "male", "m": "male", "男": "male", "female": "female", "f": "female", "女": "female"}


def sex_of(value: object) -> str | None:
    """'male' / 'female' from a sex field's value (male, m, 男 / female, f, 女), else None."""
    return _SEX_ALIASES.get(str(value).strip().lower()) if value is not None else None


def check_sex(number: str, sex_value: object, today: date | None = None) -> None:
    """Raise id.sex_mismatch when the ID's sex digit disagrees with a given sex; no sex given: no check."""
    sex = sex_of(sex_value)
    if sex is None:
        return
    info = parse_id(number, today)
    if info.sex != sex:
        zh, en = _SEX_WORDS[info.sex]
        raise FieldProblem("id.sex_mismatch", id_sex=info.sex, id_sex_zh=zh, id_sex_en=en)


def mask_id(text: str) -> str:
    """Keep the first 3 and last 4 characters of a long number (``440***********123X``), same length."""
    number = normalise(text) if text else ""
    n = len(number)
    if n >= 10:
        return number[:3] + "*" * (n - 7) + number[-4:]
    if n >= 5:
        return number[0] + "*" * (n - 4) + number[-3:]
    return "*" * n
