"""engine.auth and engine.secrets on a real database (SQLite file; PostgreSQL too when configured)."""

from __future__ import annotations

import os
import stat
import statistics
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from engine import auth, stamps
from engine import secrets as lac_secrets
from engine.access import Actor
from engine.db import session_scope
from engine.errors import EngineError, NotFound, PermissionDenied
from models.tables import AuditEvent, User, utcnow

ADMIN_PW = "Admin-Pass-2026"
STAFF_PW = "Staff-Pass-2026"


@pytest.fixture(autouse=True)
def fast_bcrypt(monkeypatch):
    """bcrypt cost 4 (allowed in test mode only), so that the suite stays quick."""
    monkeypatch.setenv("LAC_TEST_MODE", "1")
    monkeypatch.setenv("LAC_BCRYPT_ROUNDS", "4")


@pytest.fixture
def real_cost(fast_bcrypt, monkeypatch):
    """The production cost (12), for the tests about it."""
    monkeypatch.delenv("LAC_BCRYPT_ROUNDS")


@pytest.fixture
def admin(engine) -> Actor:
    return auth.create_first_admin(engine, "admin", ADMIN_PW, "管理员").actor()


@pytest.fixture
def staff(engine, admin) -> auth.UserInfo:
    return auth.create_user(engine, "li.si", STAFF_PW, "staff", "李四", admin)


def audit_rows(engine, action: str | None = None) -> list[AuditEvent]:
    with session_scope(engine, write=False) as s:
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            stmt = stmt.where(AuditEvent.action == action)
        return list(s.exec(stmt).all())


# --- password policy ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Ab1", "auth.password_too_short"),
        ("abcdefghij", "auth.password_letters_digits"),
        ("1234567890", "auth.password_letters_digits"),
        (" Abcdefgh12", "auth.password_spaces"),
        ("Abcdefgh12 ", "auth.password_spaces"),
        ("li.si", "auth.password_too_short"),
        ("密" * 24 + "a", "auth.password_too_long"),  # 73 bytes
        ("a1" * 40, "auth.password_too_long"),
    ],
)
def test_weak_or_unusable_passwords_are_refused_with_a_coded_message(engine, admin, password, code):
    with pytest.raises(EngineError) as err:
        auth.create_user(engine, "li.si", password, "staff", "李四", admin)
    assert err.value.code == code
    assert err.value.message("zh") and err.value.message("en")
    assert auth.get_user(engine, "li.si") is None


def test_a_73_byte_password_gets_a_clear_message_in_both_languages(engine, admin):
    password = "密码" * 12 + "a"  # 24 Chinese characters (72 bytes) + 1 = 73 bytes, 25 characters
    assert len(password.encode()) == 73
    with pytest.raises(EngineError) as err:
        auth.create_user(engine, "li.si", password, "staff", "李四", admin)
    zh, en = err.value.message("zh"), err.value.message("en")
    assert "72" in zh and "73" in zh and "字节" in zh
    assert "72" in en and "73" in en and "bytes" in en


def test_a_72_byte_password_with_chinese_characters_works(engine, admin):
    password = "密" * 23 + "ab1"  # 69 + 3 = 72 bytes
    assert len(password.encode()) == 72
    auth.create_user(engine, "wang", password, "staff", "王", admin)
    assert auth.verify_login(engine, "wang", password).ok
    assert not auth.verify_login(engine, "wang", password[:-1] + "2").ok


def test_password_equal_to_username_is_refused(engine, admin):
    with pytest.raises(EngineError) as err:
        auth.create_user(engine, "zhang2026ab", "ZHANG2026AB", "staff", "张", admin)
    assert err.value.code == "auth.password_is_username"


@pytest.mark.parametrize("username", ["", "a", "有中文", "bad name", "-dash", "x" * 33])
def test_bad_usernames_are_refused(engine, admin, username):
    with pytest.raises(EngineError) as err:
        auth.create_user(engine, username, STAFF_PW, "staff", "", admin)
    assert err.value.code == "auth.username_invalid"


def test_usernames_are_lower_cased_like_the_login_widget_does(engine, admin):
    user = auth.create_user(engine, "  Li.Si ", STAFF_PW, "staff", "李四", admin)
    assert user.username == "li.si"
    assert auth.verify_login(engine, "LI.SI", STAFF_PW).ok
    with pytest.raises(EngineError) as err:
        auth.create_user(engine, "li.si", STAFF_PW, "staff", "", admin)
    assert err.value.code == "auth.username_taken"


def test_password_is_stored_as_bcrypt_cost_12(real_cost, engine, staff):
    with session_scope(engine, write=False) as s:
        row = s.exec(select(User).where(User.username == "li.si")).one()
    assert row.password_hash.startswith("$2b$12$")
    assert STAFF_PW not in row.password_hash


# --- who may manage users -----------------------------------------------------------------------
def test_only_admins_manage_users(engine, admin, staff):
    lesser = staff.actor()
    with pytest.raises(PermissionDenied):
        auth.create_user(engine, "zhao", STAFF_PW, "viewer", "赵", lesser)
    for call in (
        lambda: auth.set_role(engine, "admin", "viewer", lesser),
        lambda: auth.set_active(engine, "admin", False, lesser),
        lambda: auth.set_password(engine, "admin", "Other-Pass-99", lesser),
        lambda: auth.unlock(engine, "admin", lesser),
        lambda: auth.set_language(engine, "admin", "en", lesser),
    ):
        with pytest.raises(PermissionDenied):
            call()


def test_first_run_setup_is_refused_once_a_user_exists(engine):
    assert not auth.has_users(engine)
    user = auth.create_first_admin(engine, "boss", ADMIN_PW, "主任")
    assert user.role == "admin" and auth.has_users(engine)
    with pytest.raises(EngineError) as err:
        auth.create_first_admin(engine, "intruder", ADMIN_PW, "x")
    assert err.value.code == "auth.setup_done"
    assert [u.username for u in auth.list_users(engine)] == ["boss"]


def test_first_run_setup_checks_the_password_too(engine):
    with pytest.raises(EngineError) as err:
        auth.create_first_admin(engine, "boss", "password", "主任")
    assert err.value.code in {"auth.password_too_short", "auth.password_letters_digits"}
    assert not auth.has_users(engine)


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(engine, admin, staff):
    with pytest.raises(EngineError) as err:
        auth.set_role(engine, "admin", "staff", admin)
    assert err.value.code == "auth.last_admin"
    with pytest.raises(EngineError) as err:
        auth.set_active(engine, "admin", False, admin)
    assert err.value.code == "auth.not_self"
    auth.set_role(engine, "li.si", "admin", admin)
    other = auth.get_user(engine, "li.si").actor()
    auth.set_active(engine, "admin", False, other)
    assert not auth.get_user(engine, "admin").active
    with pytest.raises(EngineError) as err:
        auth.set_role(engine, "li.si", "staff", other)
    assert err.value.code == "auth.last_admin"


def test_role_and_form_editor_change(engine, admin, staff):
    auth.set_role(engine, "li.si", "manager", admin, form_editor=True)
    user = auth.get_user(engine, "li.si")
    assert (user.role, user.form_editor) == ("manager", True)
    assert user.actor().can("forms.design")
    with pytest.raises(EngineError) as err:
        auth.set_role(engine, "li.si", "boss", admin)
    assert err.value.code == "auth.role_invalid"
    with pytest.raises(NotFound):
        auth.set_role(engine, "nobody", "staff", admin)


# --- login, lockout -----------------------------------------------------------------------------
def test_login_ok_and_generic_failures(engine, staff):
    ok = auth.verify_login(engine, "li.si", STAFF_PW)
    assert ok.ok and ok.user.username == "li.si" and ok.user.role == "staff"
    wrong = auth.verify_login(engine, "li.si", "Wrong-Pass-1")
    unknown = auth.verify_login(engine, "no.such.user", STAFF_PW)
    assert wrong.status is unknown.status is auth.LoginStatus.BAD
    for lang in ("zh", "en"):
        assert wrong.message(lang) == unknown.message(lang)


def test_lockout_after_five_failures_looks_like_a_wrong_password(engine, admin, staff):
    for _ in range(auth.MAX_FAILED - 1):
        assert auth.verify_login(engine, "li.si", "Wrong-Pass-1").status is auth.LoginStatus.BAD
    assert auth.get_user(engine, "li.si").failed_logins == auth.MAX_FAILED - 1
    assert not auth.get_user(engine, "li.si").locked()
    auth.verify_login(engine, "li.si", "Wrong-Pass-1")  # the fifth
    user = auth.get_user(engine, "li.si")
    assert user.locked()
    remaining = user.locked_until - utcnow()
    assert timedelta(minutes=14) < remaining <= timedelta(minutes=15)

    locked = auth.verify_login(engine, "li.si", STAFF_PW)  # the right password, but locked
    assert locked.status is auth.LoginStatus.LOCKED and not locked.ok
    unknown = auth.verify_login(engine, "ghost", STAFF_PW)
    wrong = auth.verify_login(engine, "admin", "Wrong-Pass-1")
    for lang in ("zh", "en"):
        assert locked.message(lang) == unknown.message(lang) == wrong.message(lang)

    # the lock runs out by itself ...
    later = utcnow() + timedelta(minutes=16)
    assert auth.verify_login(engine, "li.si", STAFF_PW, now=later).ok
    assert auth.get_user(engine, "li.si").failed_logins == 0


def test_admin_unlocks_a_locked_account(engine, admin, staff):
    for _ in range(auth.MAX_FAILED):
        auth.verify_login(engine, "li.si", "Wrong-Pass-1")
    assert auth.verify_login(engine, "li.si", STAFF_PW).status is auth.LoginStatus.LOCKED
    auth.unlock(engine, "li.si", admin)
    assert not auth.get_user(engine, "li.si").locked()
    assert auth.verify_login(engine, "li.si", STAFF_PW).ok


def test_lockout_settings_come_from_the_environment(engine, admin, staff, monkeypatch):
    monkeypatch.setenv("LAC_MAX_FAILED_LOGINS", "2")
    monkeypatch.setenv("LAC_LOCKOUT_MINUTES", "1")
    auth.verify_login(engine, "li.si", "Wrong-Pass-1")
    assert not auth.get_user(engine, "li.si").locked()
    auth.verify_login(engine, "li.si", "Wrong-Pass-1")
    user = auth.get_user(engine, "li.si")
    assert user.locked() and user.locked_until - utcnow() <= timedelta(minutes=1)
    monkeypatch.setenv("LAC_MAX_FAILED_LOGINS", "zero")
    with pytest.raises(EngineError):
        auth.max_failed()


def test_a_success_resets_the_failure_count(engine, staff):
    for _ in range(auth.MAX_FAILED - 1):
        auth.verify_login(engine, "li.si", "Wrong-Pass-1")
    assert auth.verify_login(engine, "li.si", STAFF_PW).ok
    for _ in range(auth.MAX_FAILED - 1):
        auth.verify_login(engine, "li.si", "Wrong-Pass-1")
    assert not auth.get_user(engine, "li.si").locked()


def test_logins_and_failures_are_audited(engine, staff):
    auth.verify_login(engine, "li.si", STAFF_PW)
    auth.verify_login(engine, "li.si", "Wrong-Pass-1")
    auth.verify_login(engine, "ghost", "Wrong-Pass-1")
    logins = audit_rows(engine, "login")
    failed = audit_rows(engine, "login_failed")
    assert [(e.username, e.entity_id) for e in logins] == [("li.si", "li.si")]
    reasons = {(e.entity_id, (e.detail or {}).get("reason")) for e in failed}
    assert reasons == {("li.si", "wrong_password"), ("ghost", "unknown_user")}
    assert all("Wrong-Pass-1" not in str(e.detail) for e in failed)


def test_an_overlong_password_at_login_fails_with_the_length_message(engine, staff):
    result = auth.verify_login(engine, "li.si", "a1" * 40)
    assert result.status is auth.LoginStatus.BAD
    assert "72" in result.message("zh")


def test_deactivated_user_cannot_log_in(engine, admin, staff):
    auth.set_active(engine, "li.si", False, admin)
    right = auth.verify_login(engine, "li.si", STAFF_PW)
    assert right.status is auth.LoginStatus.INACTIVE and not right.ok
    wrong = auth.verify_login(engine, "li.si", "Wrong-Pass-1")
    assert wrong.status is auth.LoginStatus.BAD  # a wrong password says nothing about the account
    auth.set_active(engine, "li.si", True, admin)
    assert auth.verify_login(engine, "li.si", STAFF_PW).ok


def test_unknown_username_takes_as_long_as_a_known_one(real_cost, engine, staff, monkeypatch):
    """Behaviour, not performance: the time must not tell whether a username exists."""
    monkeypatch.setenv("LAC_MAX_FAILED_LOGINS", "1000")

    def timed(username: str) -> float:
        start = time.perf_counter()
        auth.verify_login(engine, username, "Wrong-Pass-1")
        return time.perf_counter() - start

    auth.verify_login(engine, "nobody", "Wrong-Pass-1")  # warm up (the dummy hash is made once)
    # Interleaved, so that a change in machine load affects both sides alike.
    pairs = [(timed("li.si"), timed("nobody")) for _ in range(9)]
    known = statistics.median(k for k, _ in pairs)
    unknown = statistics.median(u for _, u in pairs)
    assert 0.5 <= unknown / known <= 2.0, (known, unknown)


# --- passwords, cookies, logout ------------------------------------------------------------------
def test_admin_password_reset_and_own_password_change(engine, admin, staff):
    auth.set_password(engine, "li.si", "New-Pass-2027", admin)
    assert not auth.verify_login(engine, "li.si", STAFF_PW).ok
    assert auth.verify_login(engine, "li.si", "New-Pass-2027").ok
    me = staff.actor()
    with pytest.raises(EngineError) as err:
        auth.change_own_password(engine, me, "not-my-password1", "Third-Pass-2028")
    assert err.value.code == "auth.password_wrong_current"
    with pytest.raises(EngineError) as err:
        auth.change_own_password(engine, me, "New-Pass-2027", "short1")
    assert err.value.code == "auth.password_too_short"
    auth.change_own_password(engine, me, "New-Pass-2027", "Third-Pass-2028")
    assert auth.verify_login(engine, "li.si", "Third-Pass-2028").ok


def test_cookie_issued_before_logout_is_refused(engine, staff):
    issued = time.time()
    assert auth.cookie_still_valid(auth.get_user(engine, "li.si"), issued)
    time.sleep(0.01)
    auth.record_logout(engine, "li.si")
    user = auth.get_user(engine, "li.si")
    assert not auth.cookie_still_valid(user, issued)
    assert auth.cookie_still_valid(user, time.time() + 0.01)  # a later login's cookie works
    assert audit_rows(engine, "logout")[-1].entity_id == "li.si"


def test_cookie_and_session_issued_before_a_password_change_are_refused(engine, admin, staff):
    issued = time.time()
    time.sleep(0.01)
    auth.set_password(engine, "li.si", "New-Pass-2027", admin)
    user = auth.get_user(engine, "li.si")
    assert not auth.cookie_still_valid(user, issued)
    assert not auth.session_still_valid(user, issued)
    assert auth.cookie_still_valid(user, time.time() + 0.01)


def test_cookie_of_a_deactivated_or_deleted_user_is_refused(engine, admin, staff):
    now = time.time() + 0.01
    auth.set_active(engine, "li.si", False, admin)
    assert not auth.cookie_still_valid(auth.get_user(engine, "li.si"), now)
    assert not auth.session_still_valid(auth.get_user(engine, "li.si"), now)
    assert not auth.cookie_still_valid(None, now)


def test_cookie_issue_time_is_expiry_minus_validity():
    exp = 1_800_000_000.0
    assert auth.cookie_issued_at(exp, 1) == exp - 86400
    assert auth.cookie_issued_at(exp, 0.5) == exp - 43200


# --- language, listing, stamps --------------------------------------------------------------------
def test_language_is_stored_per_user(engine, admin, staff):
    auth.set_language(engine, "li.si", "en", staff.actor())
    assert auth.get_user(engine, "li.si").language == "en"
    assert auth.get_user(engine, "li.si").actor().language == "en"
    with pytest.raises(EngineError) as err:
        auth.set_language(engine, "li.si", "fr", staff.actor())
    assert err.value.code == "auth.language_invalid"


def test_every_change_is_audited_and_bumps_the_users_stamp(engine, admin, staff):
    before_stamp = stamps.current(engine, "users")
    before_audit = len(audit_rows(engine))
    auth.set_role(engine, "li.si", "manager", admin)
    auth.set_password(engine, "li.si", "New-Pass-2027", admin)
    auth.set_active(engine, "li.si", False, admin)
    auth.set_active(engine, "li.si", True, admin)
    auth.unlock(engine, "li.si", admin)
    auth.set_language(engine, "li.si", "en", admin)
    auth.record_logout(engine, "li.si")
    assert stamps.current(engine, "users") == before_stamp + 7
    new = audit_rows(engine)[before_audit:]
    changes = [(e.action, (e.detail or {}).get("change")) for e in new]
    assert changes == [
        ("user_update", "role_change"),
        ("user_update", "password_reset"),
        ("user_update", "deactivate"),
        ("user_update", "activate"),
        ("user_update", "unlock"),
        ("user_update", "language"),
        ("logout", None),
    ]
    assert all(e.username == "admin" for e in new[:-1])
    creates = audit_rows(engine, "user_create")
    assert [e.entity_id for e in creates] == ["admin", "li.si"]


def test_listing_and_authenticator_credentials_carry_no_surprises(engine, admin, staff):
    users = auth.list_users(engine)
    assert [u.username for u in users] == ["admin", "li.si"]
    assert not hasattr(users[0], "password_hash")
    creds = auth.authenticator_credentials(engine)
    entry = creds["usernames"]["li.si"]
    assert entry["name"] == "李四" and entry["roles"] == ["staff"]
    assert entry["password"].startswith("$2b$")


# --- the cookie key ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["", "change-me", "changeme", "secret", "short-but-random-8Hq", "CHANGE-ME"])
def test_placeholder_cookie_keys_are_refused(monkeypatch, tmp_path, value):
    monkeypatch.setenv("LAC_COOKIE_KEY", value)
    with pytest.raises(lac_secrets.SecretKeyError) as err:
        lac_secrets.cookie_key(data_dir=tmp_path)
    assert "LAC_COOKIE_KEY" in str(err.value)


def test_the_example_files_value_is_refused(monkeypatch, tmp_path):
    example = lac_secrets._example_value()
    assert example, "the example secrets file must have an [auth] cookie_key"
    monkeypatch.delenv("LAC_COOKIE_KEY", raising=False)
    real = tmp_path / "secrets.toml"
    real.write_text(f'[auth]\ncookie_key = "{example}"\n', encoding="utf-8")
    with pytest.raises(lac_secrets.SecretKeyError):
        lac_secrets.cookie_key(secrets_toml=real, data_dir=tmp_path)


def test_key_from_env_then_secrets_toml(monkeypatch, tmp_path):
    good = "k" * 20 + "Qw3rTy-uIoP_aSdFgHjKl"
    monkeypatch.setenv("LAC_COOKIE_KEY", good)
    assert lac_secrets.cookie_key(data_dir=tmp_path) == good
    monkeypatch.delenv("LAC_COOKIE_KEY")
    toml = tmp_path / "secrets.toml"
    toml.write_text(f'[auth]\ncookie_key = "{good[::-1]}"\n', encoding="utf-8")
    assert lac_secrets.cookie_key(secrets_toml=toml, data_dir=tmp_path) == good[::-1]


def test_a_key_is_generated_once_with_mode_600(monkeypatch, tmp_path):
    monkeypatch.delenv("LAC_COOKIE_KEY", raising=False)
    missing = tmp_path / "no-secrets.toml"
    first = lac_secrets.cookie_key(secrets_toml=missing, data_dir=tmp_path)
    second = lac_secrets.cookie_key(secrets_toml=missing, data_dir=tmp_path)
    assert first == second and len(first) >= 60
    path = lac_secrets.key_file(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    other = tmp_path / "other"
    assert lac_secrets.cookie_key(secrets_toml=missing, data_dir=other) != first


def test_generated_keys_live_in_a_git_ignored_folder():
    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text(encoding="utf-8")
    assert "data/secrets/" in ignored.splitlines()


def test_only_test_mode_may_lower_the_bcrypt_cost(monkeypatch):
    monkeypatch.setenv("LAC_BCRYPT_ROUNDS", "4")
    monkeypatch.delenv("LAC_TEST_MODE", raising=False)
    assert auth.bcrypt_rounds() == 12
    monkeypatch.setenv("LAC_TEST_MODE", "1")
    assert auth.bcrypt_rounds() == 4
