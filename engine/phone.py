"""Mainland China phone numbers: mobile and landline.

- mobile ``1[3-9]`` + 9 digits; spaces, dashes and a +86 / 0086 / 86 prefix are accepted and removed:
  stored as 11 digits (``13812345678``).
- landline: area code (010 and 02x have 3 digits, all others 4) + 7 or 8 digits, optionally with an
  extension (``转123``, ``ext 123``, ``-123``): stored as ``0759-1234567`` or ``0759-1234567-123``.
"""

from __future__ import annotations

import re
import unicodedata

from engine.fields import FieldProblem
from engine.messages import register

register(
    {
        "phone.invalid": {
            "zh": "电话号码格式不正确：手机号为 11 位（如 13812345678），固定电话需带区号（如 0759-1234567）",
            "en": "Not a phone number: a mobile has 11 digits (13812345678); a landline needs its area code "
            "(0759-1234567)",
        },
        "phone.mobile": {
            "zh": "手机号码应为 11 位数字，以 13 至 19 开头",
            "en": "A mobile number has 11 digits and starts with 13 to 19",
        },
    }
)

_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_SEPARATORS = re.compile(r"[\s\-()]")
_EXTENSION = re.compile(r"(?P<main>.+?)\s*(?:转|分机|ext\.?|x|#)\s*(?P<ext>[0-9]{1,6})", re.IGNORECASE)
_LANDLINE = re.compile(r"(?:\((0[0-9]{2,3})\)|(0[0-9]{2,3}))[-\s]?([0-9]{7,8})")


def _prepare(text: str) -> str:
    return unicodedata.normalize("NFKC", str(text)).strip()


def _mobile(text: str) -> str | None:
    digits = _SEPARATORS.sub("", text)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix):]
            break
    else:
        if len(digits) == 13 and digits.startswith("86"):
            digits = digits[2:]
    return digits if _MOBILE.fullmatch(digits) else None


def _landline_main(text: str) -> str | None:
    match = _LANDLINE.fullmatch(text.strip())
    if not match:
        return None
    digits = (match.group(1) or match.group(2)) + match.group(3)
    area_len = 3 if digits.startswith(("010", "02")) else 4
    area, local = digits[:area_len], digits[area_len:]
    return f"{area}-{local}" if 7 <= len(local) <= 8 else None


def _landline(text: str) -> str | None:
    number = _landline_main(text)
    if number:
        return number
    match = _EXTENSION.fullmatch(text)
    if match:
        main, ext = match["main"], match["ext"]
    else:
        main, _, ext = text.rpartition("-")
        if not re.fullmatch(r"[0-9]{1,6}", ext.strip()):
            return None
    number = _landline_main(main)
    return f"{number}-{ext.strip()}" if number else None


def check_phone(text: str) -> str:
    """Return the normalised number, or raise FieldProblem (phone.mobile / phone.invalid)."""
    prepared = _prepare(text)
    number = _mobile(prepared) or _landline(prepared)
    if number:
        return number
    raise FieldProblem("phone.mobile" if _looks_mobile(prepared) else "phone.invalid")


def _looks_mobile(text: str) -> bool:
    """A mobile prefix (13x–19x) with too few / many digits, or a 1 with nearly 11 digits."""
    digits = _SEPARATORS.sub("", text).removeprefix("+86")
    return bool(re.fullmatch(r"1[3-9][0-9]{3,}|1[0-9]{9,11}", digits))


def is_mobile(number: str) -> bool:
    return bool(_MOBILE.fullmatch(number))


def mask_phone(text: str) -> str:
    """``138****5678`` for a mobile; area code + stars + last 4 for a landline (``0759-***4567``)."""
    if type(text) is str and _MOBILE.fullmatch(text):  # a stored mobile: already as check_phone gives it
        return text[:3] + "****" + text[-4:]
    try:
        number = check_phone(text)
    except FieldProblem:
        raw = _prepare(text) if text else ""
        return "*" * max(len(raw) - 4, 0) + raw[-4:] if len(raw) > 4 else "*" * len(raw)
    if is_mobile(number):
        return number[:3] + "****" + number[-4:]
    area, local = number.split("-")[:2]
    return f"{area}-" + "*" * (len(local) - 4) + local[-4:]
