"""Configuration from the environment. No secrets have defaults."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("LAC_DATA_DIR", ROOT / "data"))
FORMS_DIR = ROOT / "data" / "forms"
REFERENCE_DIR = ROOT / "data" / "reference"


def database_url() -> str:
    """`DATABASE_URL`, else the embedded SQLite file data/console.db."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DATA_DIR / 'console.db'}"
