"""Users, passwords, login lockout and login-cookie validity. Pure Python: no streamlit here.

- Passwords are bcrypt (cost 12). Policy: at least 10 characters, at least one letter and one digit,
  at most 72 UTF-8 bytes (bcrypt 5 refuses longer ones), no leading/trailing spaces (the login
  widget strips them).
- `verify_login` always runs exactly one bcrypt check, against a dummy hash for unknown usernames,
  so the time taken does not tell whether a user exists. Unknown user, wrong password and a locked
  account all get the same message. After MAX_FAILED failures in a row an account is locked for
  LOCKOUT_MINUTES (env LAC_MAX_FAILED_LOGINS / LAC_LOCKOUT_MINUTES).
- The login cookie of streamlit-authenticator is not revoked by the library on logout; the app asks
  `cookie_still_valid(user, issued_at)`: a cookie issued before the user's last logout or password
  change, or of a deactivated user, is refused.
- Every change is audited (engine.audit) and bumps the "users" change stamp, in one transaction.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

import bcrypt
from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from engine import audit, messages, stamps
from engine.access import ROLE_ABILITIES, Actor
from engine.db import is_postgres, session_scope
from engine.errors import EngineError, NotFound, PermissionDenied
from models.tables import User, utcnow

BCRYPT_COST = 12
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_BYTES = 72
MAX_FAILED = 5
LOCKOUT_MINUTES = 15
COOKIE_EXPIRY_DAYS = 1.0
ROLES: tuple[str, ...] = tuple(ROLE_ABILITIES)  # admin, manager, staff, outreach, viewer
LANGUAGES = ("zh", "en")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")

messages.register(
    {
        "auth.login_failed": {
            "zh": "用户名或密码不正确；如连续输错多次，账户会被暂时锁定，请稍后再试或联系管理员。",
            "en": "Wrong username or password. After repeated failures an account is locked for a while: "
            "try again later or ask an administrator.",
        },
        "auth.inactive": {
            "zh": "此账户已停用，请联系管理员。",
            "en": "This account has been deactivated. Please contact an administrator.",
        },
        "auth.password_too_short": {
            "zh": "密码至少需要 {min} 个字符。",
            "en": "The password must have at least {min} characters.",
        },
        "auth.password_letters_digits": {
            "zh": "密码必须同时包含字母和数字。",
            "en": "The password must contain both letters and digits.",
        },
        "auth.password_too_long": {
            "zh": "密码过长：最多 {max} 字节（UTF-8 编码，一个汉字占 3 字节），当前为 {bytes} 字节。",
            "en": "The password is too long: at most {max} bytes in UTF-8 (a Chinese character takes 3), "
            "this one has {bytes}.",
        },
        "auth.password_spaces": {
            "zh": "密码的开头和结尾不能是空格。",
            "en": "The password must not start or end with a space.",
        },
        "auth.password_is_username": {
            "zh": "密码不能与用户名相同。",
            "en": "The password must not be the username.",
        },
        "auth.password_wrong_current": {
            "zh": "当前密码不正确。",
            "en": "The current password is wrong.",
        },
        "auth.username_invalid": {
            "zh": "用户名须为 2–32 位小写英文字母、数字或 . _ -，并以字母或数字开头。",
            "en": "A username has 2–32 lower-case letters, digits or . _ - and starts with a letter or digit.",
        },
        "auth.username_taken": {
            "zh": "用户名「{username}」已被使用。",
            "en": "The username '{username}' is already taken.",
        },
        "auth.user_not_found": {
            "zh": "用户「{username}」不存在。",
            "en": "There is no user '{username}'.",
        },
        "auth.role_invalid": {
            "zh": "未知角色「{role}」。",
            "en": "Unknown role '{role}'.",
        },
        "auth.language_invalid": {
            "zh": "不支持的语言「{language}」。",
            "en": "Unsupported language '{language}'.",
        },
        "auth.forbidden": {
            "zh": "您的角色无权管理用户。",
            "en": "Your role may not manage users.",
        },
        "auth.last_admin": {
            "zh": "至少要保留一名启用状态的管理员。",
            "en": "At least one active administrator must remain.",
        },
        "auth.not_self": {
            "zh": "不能停用自己的账户。",
            "en": "You cannot deactivate your own account.",
        },
        "auth.setup_done": {
            "zh": "系统已经有用户，初始设置不能再次进行。",
            "en": "Users already exist: the first-run setup cannot run again.",
        },
        "auth.required": {
            "zh": "请先登录。",
            "en": "Please log in first.",
        },
        "auth.bad_env": {
            "zh": "环境变量 {name} 应为正数，当前为「{value}」。",
            "en": "Environment variable {name} must be a positive number, not '{value}'.",
        },
    }
)


class LoginStatus(enum.Enum):
    OK = "ok"
    BAD = "bad"  # unknown user or wrong password (the caller cannot tell which)
    LOCKED = "locked"
    INACTIVE = "inactive"


@dataclass(frozen=True)
class UserInfo:
    """A user without the password hash (what pages may show)."""

    id: int
    username: str
    display_name: str
    email: str
    role: str
    form_editor: bool
    active: bool
    failed_logins: int
    locked_until: datetime | None
    language: str
    password_changed_at: datetime
    last_logout_at: datetime | None
    created_at: datetime

    @property
    def name(self) -> str:
        return self.display_name or self.username

    def locked(self, now: datetime | None = None) -> bool:
        return self.locked_until is not None and self.locked_until > (now or utcnow())

    def actor(self) -> Actor:
        return Actor(self.username, self.role, self.form_editor, self.language)


@dataclass(frozen=True)
class LoginResult:
    status: LoginStatus
    user: UserInfo | None = None  # set only when status is OK
    code: str = "auth.login_failed"  # message code for the person at the login form
    params: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is LoginStatus.OK

    def message(self, lang: str = "zh") -> str:
        return messages.render(self.code, lang, **self.params)


# --- settings ---------------------------------------------------------------------------------
def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if value <= 0:
        raise EngineError("auth.bad_env", name=name, value=raw)
    return value


def max_failed() -> int:
    return int(_env_number("LAC_MAX_FAILED_LOGINS", MAX_FAILED))


def lockout_minutes() -> float:
    return _env_number("LAC_LOCKOUT_MINUTES", LOCKOUT_MINUTES)


def cookie_expiry_days() -> float:
    return _env_number("LAC_COOKIE_EXPIRY_DAYS", COOKIE_EXPIRY_DAYS)


def bcrypt_rounds() -> int:
    """12. Only a test run (LAC_TEST_MODE=1) may lower it with LAC_BCRYPT_ROUNDS, for speed."""
    if os.environ.get("LAC_TEST_MODE") == "1" and os.environ.get("LAC_BCRYPT_ROUNDS", "").strip():
        return min(max(int(_env_number("LAC_BCRYPT_ROUNDS", BCRYPT_COST)), 4), 31)
    return BCRYPT_COST


# --- passwords --------------------------------------------------------------------------------
def normalize_username(username: str) -> str:
    """What the login widget does to a username (it lower-cases and strips)."""
    return (username or "").strip().lower()


def password_problem(password: str, username: str = "") -> EngineError | None:
    """The first way `password` breaks the policy, or None."""
    size = len(password.encode("utf-8"))
    if size > MAX_PASSWORD_BYTES:
        return EngineError("auth.password_too_long", max=MAX_PASSWORD_BYTES, bytes=size)
    if password != password.strip():
        return EngineError("auth.password_spaces")
    if len(password) < MIN_PASSWORD_CHARS:
        return EngineError("auth.password_too_short", min=MIN_PASSWORD_CHARS)
    if not (any(c.isalpha() for c in password) and any(c.isdigit() for c in password)):
        return EngineError("auth.password_letters_digits")
    if username and password.lower() == normalize_username(username):
        return EngineError("auth.password_is_username")
    return None


def check_password_policy(password: str, username: str = "") -> None:
    problem = password_problem(password, username)
    if problem is not None:
        raise problem


def hash_password(password: str) -> str:
    """bcrypt hash (cost 12, see bcrypt_rounds). Callers check the policy first."""
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise EngineError("auth.password_too_long", max=MAX_PASSWORD_BYTES, bytes=len(password.encode("utf-8")))
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(bcrypt_rounds())).decode("ascii")


@cache
def _dummy_hash(rounds: int) -> bytes:
    """Compared against when there is no stored hash: same cost as real ones, so the same time."""
    return bcrypt.hashpw(b"no-such-user-0000", bcrypt.gensalt(rounds))


def _password_matches(password: str, hashed: str | None) -> bool:
    """One bcrypt check, always (a dummy one when there is nothing to compare with)."""
    data = (password or "").encode("utf-8")
    target = hashed.encode("ascii") if hashed else _dummy_hash(bcrypt_rounds())
    if len(data) > MAX_PASSWORD_BYTES or not hashed:
        bcrypt.checkpw(b"x" * min(len(data), MAX_PASSWORD_BYTES), target)
        return False
    try:
        return bcrypt.checkpw(data, target)
    except ValueError:  # a malformed stored hash
        return False


# --- reading ----------------------------------------------------------------------------------
def _info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id or 0,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        role=user.role,
        form_editor=user.form_editor,
        active=user.active,
        failed_logins=user.failed_logins,
        locked_until=_aware(user.locked_until),
        language=user.language,
        password_changed_at=_aware(user.password_changed_at),
        last_logout_at=_aware(user.last_logout_at),
        created_at=_aware(user.created_at),
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def has_users(engine: Engine) -> bool:
    with session_scope(engine, write=False) as s:
        return s.exec(select(User.id).limit(1)).first() is not None


def get_user(engine: Engine, username: str) -> UserInfo | None:
    with session_scope(engine, write=False) as s:
        user = _find(s, username)
        return _info(user) if user else None


def list_users(engine: Engine) -> list[UserInfo]:
    with session_scope(engine, write=False) as s:
        return [_info(u) for u in s.exec(select(User).order_by(User.username)).all()]


def authenticator_credentials(engine: Engine) -> dict:
    """The credentials dict streamlit-authenticator wants, built from the database rows."""
    with session_scope(engine, write=False) as s:
        rows = s.exec(select(User)).all()
        return {
            "usernames": {
                u.username: {
                    "name": u.display_name or u.username,
                    "email": u.email,
                    "password": u.password_hash,
                    "roles": [u.role],
                }
                for u in rows
            }
        }


def _find(session: Session, username: str, *, for_update: bool = False) -> User | None:
    stmt = select(User).where(User.username == normalize_username(username))
    if for_update:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


def _require(session: Session, username: str) -> User:
    user = _find(session, username, for_update=True)
    if user is None:
        raise NotFound("auth.user_not_found", username=username)
    return user


def _may_manage(actor: Actor) -> None:
    if not actor.can("users"):
        raise PermissionDenied("auth.forbidden")


def _changed(session: Session, actor: Actor | str, action: str, user: User, detail: dict | None = None) -> None:
    """Audit a change to a user row and bump the "users" stamp. `action` is an audit action, or a
    kind of user update (recorded as action "user_update" with detail["change"])."""
    if action not in audit.ACTIONS:
        detail = {"change": action, **(detail or {})}
        action = "user_update"
    audit.record(session, actor, action, "user", user.username, detail=detail)
    stamps.bump(session, "users")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise EngineError("auth.role_invalid", role=role)


def _active_admins(session: Session) -> int:
    stmt = select(func.count()).select_from(User).where(User.role == "admin", User.active == True)  # noqa: E712
    return int(session.exec(stmt).one())


# --- creating users ---------------------------------------------------------------------------
def _new_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    display_name: str,
    *,
    form_editor: bool,
    email: str,
    language: str,
) -> User:
    name = normalize_username(username)
    if not USERNAME_RE.match(name):
        raise EngineError("auth.username_invalid")
    _check_role(role)
    if language not in LANGUAGES:
        raise EngineError("auth.language_invalid", language=language)
    check_password_policy(password, name)
    if _find(session, name) is not None:
        raise EngineError("auth.username_taken", username=name)
    user = User(
        username=name,
        display_name=(display_name or "").strip()[:128] or name,
        email=(email or "").strip()[:256],
        password_hash=hash_password(password),
        role=role,
        form_editor=form_editor,
        language=language,
    )
    session.add(user)
    session.flush()
    return user


def create_user(
    engine: Engine,
    username: str,
    password: str,
    role: str,
    display_name: str,
    actor: Actor,
    *,
    form_editor: bool = False,
    email: str = "",
    language: str = "zh",
) -> UserInfo:
    """A new user (admins only). Raises EngineError with a coded, bilingual message."""
    _may_manage(actor)
    with session_scope(engine) as s:
        user = _new_user(
            s, username, password, role, display_name, form_editor=form_editor, email=email, language=language
        )
        _changed(s, actor, "user_create", user, {"role": role, "form_editor": form_editor})
        return _info(user)


def create_first_admin(
    engine: Engine, username: str, password: str, display_name: str = "", *, language: str = "zh"
) -> UserInfo:
    """First-run setup: the first administrator. Refused once any user exists."""
    with session_scope(engine) as s:
        if is_postgres(engine):
            s.exec(text("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"))  # two setups at once: one wins
        if s.exec(select(User.id).limit(1)).first() is not None:
            raise EngineError("auth.setup_done")
        user = _new_user(
            s, username, password, "admin", display_name, form_editor=True, email="", language=language
        )
        _changed(s, user.username, "user_create", user, {"role": "admin", "first_run": True})
        return _info(user)


# --- login, logout, cookies -------------------------------------------------------------------
def verify_login(engine: Engine, username: str, password: str, *, now: datetime | None = None) -> LoginResult:
    """Check a login attempt; count failures, lock, audit. Same message for every kind of failure
    except a deactivated account with the right password."""
    now = now or utcnow()
    name = normalize_username(username)[:64]
    with session_scope(engine, write=False) as s:
        user = _find(s, name)
        stored = user.password_hash if user else None
    matches = _password_matches(password, stored)  # outside any transaction: bcrypt is slow
    size = len((password or "").encode("utf-8"))
    bad = (("auth.password_too_long", {"max": MAX_PASSWORD_BYTES, "bytes": size}) if size > MAX_PASSWORD_BYTES
           else ("auth.login_failed", {}))

    with session_scope(engine) as s:
        user = _find(s, name, for_update=True) if stored else None
        if user is None:
            audit.record(s, name or "-", "login_failed", "user", name, detail={"reason": "unknown_user"})
            return LoginResult(LoginStatus.BAD, code=bad[0], params=bad[1])
        locked_until = _aware(user.locked_until)
        if locked_until is not None and locked_until > now:
            audit.record(s, name, "login_failed", "user", name, detail={"reason": "locked"})
            return LoginResult(LoginStatus.LOCKED)
        if not matches:
            user.failed_logins = (user.failed_logins or 0) + 1
            user.locked_until = None  # a lock that has run out
            detail: dict = {"reason": "wrong_password", "failed": user.failed_logins}
            if user.failed_logins >= max_failed():
                user.locked_until = now + timedelta(minutes=lockout_minutes())
                user.failed_logins = 0  # after the lock: MAX_FAILED more tries
                detail["locked_until"] = user.locked_until.isoformat()
            s.add(user)
            _changed(s, name, "login_failed", user, detail)
            return LoginResult(LoginStatus.BAD, code=bad[0], params=bad[1])
        if not user.active:
            audit.record(s, name, "login_failed", "user", name, detail={"reason": "inactive"})
            return LoginResult(LoginStatus.INACTIVE, code="auth.inactive")
        if user.failed_logins or user.locked_until is not None:
            user.failed_logins = 0
            user.locked_until = None
            s.add(user)
            _changed(s, name, "login", user)
        else:
            audit.record(s, name, "login", "user", name)
        return LoginResult(LoginStatus.OK, user=_info(user), code="")


def _timestamp(value: datetime | float | int) -> float:
    if isinstance(value, datetime):
        return _aware(value).timestamp()
    return float(value)


def session_still_valid(user: UserInfo | None, logged_in_at: datetime | float) -> bool:
    """A live session: the user exists, is active and has not changed password since it began."""
    if user is None or not user.active:
        return False
    return _timestamp(logged_in_at) >= user.password_changed_at.timestamp()


def cookie_still_valid(user: UserInfo | None, issued_at: datetime | float) -> bool:
    """A login cookie: refused if issued before the user's last logout or password change, or if
    the user is inactive or gone."""
    if not session_still_valid(user, issued_at):
        return False
    return user.last_logout_at is None or _timestamp(issued_at) >= user.last_logout_at.timestamp()


def cookie_issued_at(exp_date: float, expiry_days: float | None = None) -> float:
    """The issue time of a streamlit-authenticator cookie: its exp_date minus the expiry."""
    days = cookie_expiry_days() if expiry_days is None else expiry_days
    return float(exp_date) - days * 86400.0


def record_logout(engine: Engine, username: str) -> None:
    """The user logged out: every cookie issued before now stops working."""
    with session_scope(engine) as s:
        user = _find(s, username, for_update=True)
        if user is None:
            return
        user.last_logout_at = utcnow()
        s.add(user)
        _changed(s, user.username, "logout", user)


# --- changing users ---------------------------------------------------------------------------
def set_password(engine: Engine, username: str, new_password: str, actor: Actor) -> None:
    """An administrator sets a new password (also unlocks). Older cookies and sessions end."""
    _may_manage(actor)
    with session_scope(engine) as s:
        user = _require(s, username)
        check_password_policy(new_password, user.username)
        user.password_hash = hash_password(new_password)
        user.password_changed_at = utcnow()
        user.failed_logins = 0
        user.locked_until = None
        s.add(user)
        _changed(s, actor, "password_reset", user)


def change_own_password(engine: Engine, actor: Actor, current: str, new_password: str) -> None:
    """The logged-in user changes their own password (current one required)."""
    with session_scope(engine, write=False) as s:
        user = _find(s, actor.username)
        if user is None:
            raise NotFound("auth.user_not_found", username=actor.username)
        stored = user.password_hash
    if not _password_matches(current, stored):
        raise EngineError("auth.password_wrong_current")
    check_password_policy(new_password, actor.username)
    new_hash = hash_password(new_password)
    with session_scope(engine) as s:
        user = _require(s, actor.username)
        user.password_hash = new_hash
        user.password_changed_at = utcnow()
        s.add(user)
        _changed(s, actor, "password_change", user)


def set_role(engine: Engine, username: str, role: str, actor: Actor, *, form_editor: bool | None = None) -> None:
    _may_manage(actor)
    _check_role(role)
    with session_scope(engine) as s:
        user = _require(s, username)
        before = {"role": user.role, "form_editor": user.form_editor}
        if user.role == "admin" and role != "admin" and user.active and _active_admins(s) <= 1:
            raise EngineError("auth.last_admin")
        user.role = role
        if form_editor is not None:
            user.form_editor = form_editor
        after = {"role": user.role, "form_editor": user.form_editor}
        if after == before:
            return
        s.add(user)
        _changed(s, actor, "role_change", user, {"before": before, "after": after})


def set_active(engine: Engine, username: str, active: bool, actor: Actor) -> None:
    """Deactivate (the user is logged out at their next action) or reactivate a user."""
    _may_manage(actor)
    with session_scope(engine) as s:
        user = _require(s, username)
        if user.active == active:
            return
        if not active:
            if user.username == actor.username:
                raise EngineError("auth.not_self")
            if user.role == "admin" and _active_admins(s) <= 1:
                raise EngineError("auth.last_admin")
        user.active = active
        s.add(user)
        _changed(s, actor, "activate" if active else "deactivate", user)


def unlock(engine: Engine, username: str, actor: Actor) -> None:
    _may_manage(actor)
    with session_scope(engine) as s:
        user = _require(s, username)
        user.failed_logins = 0
        user.locked_until = None
        s.add(user)
        _changed(s, actor, "unlock", user)


def set_language(engine: Engine, username: str, language: str, actor: Actor) -> None:
    """A user's UI language (their own, or anyone's for an administrator)."""
    if actor.username != normalize_username(username):
        _may_manage(actor)
    if language not in LANGUAGES:
        raise EngineError("auth.language_invalid", language=language)
    with session_scope(engine) as s:
        user = _require(s, username)
        if user.language == language:
            return
        before = user.language
        user.language = language
        s.add(user)
        _changed(s, actor, "language", user, {"before": before, "after": language})
