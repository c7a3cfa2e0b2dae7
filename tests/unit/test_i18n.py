"""UI catalogs: every key in both languages, and every key the code uses exists.

Scans app.py, pages/ and ui/ for literal calls `t("namespace.key", ...)` and
`translate("namespace.key", lang, ...)`: a key used by any page (anyone's) must be in
ui/locales/<namespace>.yaml with non-empty zh and en texts.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
import yaml

from ui.i18n import LANGS, LOCALES_DIR, all_catalogs, translate

ROOT = Path(__file__).resolve().parents[2]
KEY_CALL = re.compile(r"""(?<![\w.])(?:t|translate)\(\s*(?P<q>["'])(?P<ns>[a-z_][a-z0-9_]*)\.(?P<key>[A-Za-z0-9_]+)(?P=q)""")


def source_files() -> list[Path]:
    files = [ROOT / "app.py"] if (ROOT / "app.py").exists() else []
    for folder in ("pages", "ui"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def used_keys() -> list[tuple[str, str, str]]:
    """(file:line, namespace, key) of every literal t()/translate() call."""
    found = []
    for path in source_files():
        text = path.read_text(encoding="utf-8")
        for match in KEY_CALL.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match["ns"], match["key"]))
    return found


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_catalog_files_parse_as_mappings_of_key_to_zh_en():
    for path in sorted(LOCALES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        assert isinstance(data, dict), path.name
        for key, texts in data.items():
            assert isinstance(key, str), f"{path.name}: key {key!r} is not a string (quote yes/no/on/off)"
            assert isinstance(texts, dict), f"{path.name}: {key} must map to {{zh: ..., en: ...}}"


def test_every_catalog_key_has_both_languages():
    missing = [
        f"{ns}.{key} [{lang}]"
        for ns, cat in all_catalogs().items()
        for key, texts in cat.items()
        for lang in LANGS
        if not str(texts.get(lang, "")).strip()
    ]
    assert not missing, "keys without a text: " + ", ".join(missing)


def test_zh_and_en_use_the_same_placeholders():
    differ = [
        f"{ns}.{key}: zh {sorted(placeholders(texts['zh']))} en {sorted(placeholders(texts['en']))}"
        for ns, cat in all_catalogs().items()
        for key, texts in cat.items()
        if placeholders(texts.get("zh", "")) != placeholders(texts.get("en", ""))
    ]
    assert not differ, "\n".join(differ)


def test_every_key_used_in_code_exists():
    catalogs = all_catalogs()
    used = used_keys()
    assert used, "the scan found no t() call at all: the pattern is broken"
    unknown = [f"{where}: {ns}.{key}" for where, ns, key in used if key not in catalogs.get(ns, {})]
    assert not unknown, "keys used but not in ui/locales:\n" + "\n".join(unknown)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ('t("auth.login_title")', [("auth", "login_title")]),
        ("translate('nav.home', lang)", [("nav", "home")]),
        ('st.write(t( "common.app_name", x=1))', [("common", "app_name")]),
        ('ltext(x) + t(key) + format("a.b")', []),
    ],
)
def test_the_scanner_finds_literal_keys_only(code, expected):
    assert [(m["ns"], m["key"]) for m in KEY_CALL.finditer(code)] == expected


def test_translation_falls_back_and_fills_params():
    assert translate("auth.setup_created", "en", username="boss").endswith("Please log in with it.")
    assert "boss" in translate("auth.setup_created", "zh", username="boss")
    assert translate("nosuch.key", "zh") == "nosuch.key"
