"""Message catalog for engine errors, in zh-CN and en.

Each engine module registers its own codes at import time with `register({...})`; every code
must carry both languages (checked here, and by tests/unit/test_messages.py).
"""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, dict[str, str]] = {}


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def register(messages: dict[str, dict[str, str]]) -> None:
    for code, texts in messages.items():
        missing = [lang for lang in ("zh", "en") if not texts.get(lang)]
        if missing:
            raise ValueError(f"message {code!r} lacks {missing}")
        MESSAGES[code] = texts


def render(code: str, lang: str = "zh", **params: Any) -> str:
    texts = MESSAGES.get(code)
    if texts is None:
        return code if not params else f"{code} {params}"
    template = texts.get(lang) or texts["zh"]
    return template.format_map(_Missing({k: v for k, v in params.items()}))


register(
    {
        "where.form": {"zh": "表单「{form}」", "en": "form '{form}'"},
        "where.field": {"zh": "字段「{field}」", "en": "field '{field}'"},
        "where.row": {"zh": "第 {row} 行", "en": "row {row}"},
        "where.sheet": {"zh": "工作表「{sheet}」", "en": "sheet '{sheet}'"},
        "record.invalid": {
            "zh": "表单「{form}」有 {count} 处填写有误，请按提示修改。",
            "en": "Form '{form}' has {count} problem(s); please correct them.",
        },
    }
)
