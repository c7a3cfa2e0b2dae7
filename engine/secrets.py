"""The login-cookie signing key. Never a committed default.

Where it comes from, first found wins:
1. env `LAC_COOKIE_KEY`;
2. `.streamlit/secrets.toml`, table `[auth]`, `cookie_key`;
3. `data/secrets/cookie_key` (under LAC_DATA_DIR), generated on first start with
   `secrets.token_urlsafe(48)` and written with mode 600 (data/secrets/ is git-ignored).

A key that is a placeholder ("change-me", "secret", the example file's value, ...) or shorter than
32 characters is refused with `SecretKeyError`: anyone who knows the key can forge a login cookie
for any user, so the console does not start with a guessable one.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path

from engine.config import DATA_DIR, ROOT

ENV_NAME = "LAC_COOKIE_KEY"
MIN_KEY_CHARS = 32
PLACEHOLDERS = frozenset({"", "change-me", "changeme", "change_me", "secret", "some_key", "your-secret-key"})
SECRETS_TOML = ROOT / ".streamlit" / "secrets.toml"
EXAMPLE_TOML = ROOT / ".streamlit" / "secrets.toml.example"


class SecretKeyError(RuntimeError):
    """The configured cookie key is unusable; the message says what to do (zh and en)."""


def _toml_key(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SecretKeyError(f"{path} 无法读取 / cannot be read: {exc}") from exc
    value = (data.get("auth") or {}).get("cookie_key")
    return None if value is None else str(value)


def _example_value() -> str | None:
    try:
        return _toml_key(EXAMPLE_TOML)
    except SecretKeyError:
        return None


def check_key(key: str, source: str) -> str:
    """`key` if it is usable, else SecretKeyError naming `source`."""
    stripped = key.strip()
    lowered = stripped.lower()
    example = _example_value()
    placeholder = lowered in PLACEHOLDERS or lowered.startswith("change-me") or (example and stripped == example)
    if placeholder or len(stripped) < MIN_KEY_CHARS:
        raise SecretKeyError(
            f"登录 Cookie 签名密钥（来自 {source}）是占位值或少于 {MIN_KEY_CHARS} 个字符，系统拒绝启动。"
            f"请删除该设置以自动生成密钥，或设置一个随机值，例如 "
            f"python -c \"import secrets; print(secrets.token_urlsafe(48))\"。\n"
            f"The login-cookie signing key (from {source}) is a placeholder or shorter than {MIN_KEY_CHARS} "
            f"characters; refusing to start. Remove the setting to have one generated, or set a random value, "
            f"e.g. python -c \"import secrets; print(secrets.token_urlsafe(48))\"."
        )
    return stripped


def key_file(data_dir: Path | None = None) -> Path:
    return Path(data_dir or DATA_DIR) / "secrets" / "cookie_key"


def _generated_key(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first (or it was there already)
        return check_key(path.read_text(encoding="utf-8"), str(path))
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_urlsafe(48))
    os.chmod(path, 0o600)
    return check_key(path.read_text(encoding="utf-8"), str(path))


def cookie_key(*, secrets_toml: Path | None = None, data_dir: Path | None = None) -> str:
    """The cookie signing key (see the module docstring for where it comes from)."""
    env = os.environ.get(ENV_NAME)
    if env is not None:
        return check_key(env, f"env {ENV_NAME}")
    toml_path = secrets_toml or SECRETS_TOML
    configured = _toml_key(toml_path)
    if configured is not None:
        return check_key(configured, f"{toml_path} [auth] cookie_key")
    return _generated_key(key_file(data_dir))
