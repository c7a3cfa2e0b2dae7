"""UI strings in zh-CN and en.

Catalogs live in ui/locales/<namespace>.yaml, each mapping a key to {zh: ..., en: ...}:

    # ui/locales/records.yaml
    title: {zh: 记录, en: Records}
    count: {zh: "共 {n} 条", en: "{n} records"}

`t("records.title")` looks up key `title` in namespace `records` for the current language.
tests/unit/test_i18n.py fails when any key lacks either language, and when code uses a key that is
not in a catalog. This module has no Streamlit import so that it can be tested alone; the current
language comes from `ui.state.lang()` when Streamlit is running.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
LANGS = ("zh", "en")


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@cache
def catalog(namespace: str) -> dict[str, dict[str, str]]:
    path = LOCALES_DIR / f"{namespace}.yaml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): {str(lk): str(lv) for lk, lv in v.items()} for k, v in data.items()}


def all_catalogs() -> dict[str, dict[str, dict[str, str]]]:
    return {p.stem: catalog(p.stem) for p in sorted(LOCALES_DIR.glob("*.yaml"))}


def translate(key: str, lang: str, **params: Any) -> str:
    namespace, _, name = key.partition(".")
    texts = catalog(namespace).get(name)
    if texts is None:
        return key  # a missing key shows itself; the i18n test catches it before release
    template = texts.get(lang) or texts.get("zh", key)
    return template.format_map(_Missing(params)) if params else template


def t(key: str, **params: Any) -> str:
    """Translate for the current user's language (zh when no Streamlit session is running)."""
    try:
        from ui.state import lang

        current = lang()
    except Exception:
        current = "zh"
    return translate(key, current, **params)
