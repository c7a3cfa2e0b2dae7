"""Authentication: lockout (and its audit trail), no username enumeration by message or by timing,
sessions that end at the next action when the account is deactivated or its password changed, and
login cookies (forged exactly as streamlit-authenticator writes them: an HS256 JWT
{username, exp_date} signed with the cookie key) refused when issued before a logout or a password
change, signed with a wrong key or another algorithm, expired, or naming a deactivated user.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import jwt
import pytest
from sqlmodel import select

from engine import auth
from engine.db import session_scope
from models.tables import AuditEvent, utcnow
from tests.app.conftest import PASSWORDS, by_label, texts

GENERIC_ZH = auth.LoginResult(auth.LoginStatus.BAD).message("zh")
STATS: dict[str, float] = {}


def login_form(at, username: str, password: str):
    by_label(at.text_input, "用户名").input(username)
    by_label(at.text_input, "密码").input(password)
    return by_label(at.button, "登录").click().run()


def audit_rows(engine, action: str, username: str) -> list[AuditEvent]:
    with session_scope(engine, write=False) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action,
                                                    AuditEvent.entity_id == username)).all())


def test_lockout_after_repeated_failures_is_logged_and_holds_even_with_the_right_password(sec_env):
    engine = sec_env.engine
    at = sec_env.app().run()
    limit = auth.max_failed()
    for _ in range(limit):
        login_form(at, "staff", "wrong-Pass-0000")
        assert at.session_state["actor"] is None if "actor" in at.session_state else True
        assert GENERIC_ZH in texts(at)
    user = auth.get_user(engine, "staff")
    assert user.locked(), "not locked after the failures"
    failed = audit_rows(engine, "login_failed", "staff")
    assert len(failed) == limit and failed[-1].detail.get("locked_until"), "the lock is not in the audit log"
    # the right password during the lock: refused with the very same message
    login_form(at, "staff", PASSWORDS["staff"])
    assert "actor" not in at.session_state or at.session_state["actor"] is None
    assert GENERIC_ZH in texts(at) and "退出登录" not in [b.label for b in at.button]
    assert audit_rows(engine, "login_failed", "staff")[-1].detail.get("reason") == "locked"
    # when the lock has run out, the right password works again
    later = utcnow() + timedelta(minutes=auth.lockout_minutes() + 1)
    assert auth.verify_login(engine, "staff", PASSWORDS["staff"], now=later).ok
    STATS["lockout_attempts"] = limit + 2


def test_no_username_enumeration_by_message(sec_env):
    engine = sec_env.engine
    unknown = auth.verify_login(engine, "nobody-here", "Some-Pass-2026")
    wrong = auth.verify_login(engine, "manager", "Some-Pass-2026")
    assert (unknown.code, unknown.params) == (wrong.code, wrong.params) == ("auth.login_failed", {})
    assert unknown.message("zh") == wrong.message("zh") and unknown.message("en") == wrong.message("en")
    # too long a password: the same (length) message whether the user exists or not
    long = "x" * 80
    assert auth.verify_login(engine, "nobody-here", long).message("zh") == \
        auth.verify_login(engine, "manager", long).message("zh")
    # and on screen, through the real login form
    at = sec_env.app().run()
    login_form(at, "nobody-here", "Some-Pass-2026")
    shown_unknown = [e.value for e in at.error]
    login_form(at, "viewer", "Some-Pass-2026")
    assert [e.value for e in at.error] == shown_unknown == [GENERIC_ZH]


def test_no_username_enumeration_by_timing(sec_env, monkeypatch):
    """Median login time with a wrong password, known vs unknown username, at the real bcrypt cost
    (12). Measured interleaved, so that the machine's load falls on both alike."""
    monkeypatch.setenv("LAC_BCRYPT_ROUNDS", str(auth.BCRYPT_COST))
    monkeypatch.setenv("LAC_MAX_FAILED_LOGINS", "100000")  # no lock while measuring
    engine = sec_env.engine
    from engine.access import Actor

    auth.create_user(engine, "timing", "Timing-Pass-2026", "staff", "计时", Actor("admin", "admin", True))
    assert auth.get_user(engine, "timing") is not None
    known: list[float] = []
    unknown: list[float] = []
    auth.verify_login(engine, "timing", "warm-up-0000")
    auth.verify_login(engine, "no-such-user", "warm-up-0000")
    for i in range(5):
        for name, bucket in ((("timing", known), ("no-such-user", unknown)) if i % 2 == 0
                             else (("no-such-user", unknown), ("timing", known))):
            start = time.perf_counter()
            result = auth.verify_login(engine, name, f"Wrong-Pass-{i:04d}")
            bucket.append(time.perf_counter() - start)
            assert not result.ok
    ratio = statistics.median(known) / statistics.median(unknown)
    STATS["timing_ratio"] = round(ratio, 3)
    STATS["timing_known_ms"] = round(statistics.median(known) * 1000, 1)
    STATS["timing_unknown_ms"] = round(statistics.median(unknown) * 1000, 1)
    print(f"\nlogin timing: known {STATS['timing_known_ms']} ms, unknown {STATS['timing_unknown_ms']} ms, "
          f"ratio {ratio:.3f}")
    assert 0.67 <= ratio <= 1.5, f"known/unknown login time ratio {ratio:.2f}"


@pytest.mark.parametrize("event", ["deactivate", "password_reset"])
def test_a_session_ends_at_the_next_action_after_deactivation_or_password_change(sec_env, event):
    engine = sec_env.engine
    at = sec_env.app("staff").run()
    assert at.session_state["actor"].username == "staff" and "退出登录" in [b.label for b in at.button]
    admin = sec_env.actor("admin")
    time.sleep(0.01)
    if event == "deactivate":
        auth.set_active(engine, "staff", False, admin)
    else:
        auth.set_password(engine, "staff", "Brand-New-Pass-2026", admin)
    at.run()  # the user's next action
    assert not at.exception
    assert at.session_state["actor"] is None if "actor" in at.session_state else True
    assert {ti.label for ti in at.text_input} == {"用户名", "密码"}, "the login form is not shown"
    assert "退出登录" not in [b.label for b in at.button]
    assert "intake-records" not in texts(at)
    if event == "deactivate":  # and the right password no longer lets them in
        login_form(at, "staff", PASSWORDS["staff"])
        assert "actor" not in at.session_state or at.session_state["actor"] is None


# --- login cookies, in the browser ------------------------------------------------------------------
def forge(username: str, key: str, issued_at: float, *, algorithm: str = "HS256", expiry_days: float = 1.0) -> str:
    """The cookie streamlit-authenticator writes: HS256 JWT {username, exp_date} (exp_date = issue + expiry)."""
    return jwt.encode({"username": username, "exp_date": issued_at + expiry_days * 86400}, key, algorithm=algorithm)


def _logged_in(page, base: str, cookie: str | None, context) -> bool:
    """Load the console with `cookie` set; True when it shows the logged-in console, False for the
    login form (anything else fails the test)."""
    from tests.security.conftest import wait_idle, wait_loaded

    if cookie is not None:
        context.add_cookies([{"name": "lac_auth", "value": cookie, "url": base}])
    page.goto(base)
    login = page.get_by_role("button", name="登录", exact=True)
    logout = page.get_by_role("button", name="退出登录")
    login.or_(logout).first.wait_for()
    wait_loaded(page)
    wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0, "an exception is shown"
    return logout.count() > 0 and login.count() == 0


@pytest.mark.browser
def test_login_cookies_are_refused_after_logout_password_change_wrong_key_or_deactivation(sec_server, new_context):
    from engine.access import Actor
    from tests.security.conftest import browser_login

    engine = sec_server.engine
    base = sec_server.url
    key = sec_server.cookie_key
    admin = Actor("admin", "admin", True)
    for name in ("cookie1", "cookie2", "cookie3"):
        auth.create_user(engine, name, "Cookie-Pass-2026", "staff", name, admin)
    now = time.time()
    tried = 0

    def check(cookie: str | None, expect: bool, what: str) -> None:
        nonlocal tried
        context = new_context()
        assert _logged_in(context.new_page(), base, cookie, context) is expect, what
        context.close()
        tried += 1

    # control: a cookie forged with the real key logs in (so the key is what protects the console)
    check(forge("cookie1", key, now), True, "a correctly signed cookie")
    # signed with another key / another algorithm / unsigned / garbage / expired: the login form
    check(forge("cookie1", "x" * 48, now), False, "a cookie signed with a wrong key")
    check(forge("cookie1", key, now, algorithm="HS512"), False, "a cookie signed with HS512")
    check(jwt.encode({"username": "cookie1", "exp_date": now + 86400}, None, algorithm="none"), False, "alg none")
    check(forge("cookie1", key, now - 3 * 86400), False, "an expired cookie")
    check(forge("nobody", key, now), False, "a cookie naming no user")

    # a real cookie, from a real login, replayed after the user logged out
    context = new_context()
    page = context.new_page()
    browser_login(page, base, "cookie2", "Cookie-Pass-2026")
    real = next(c["value"] for c in context.cookies() if c["name"] == "lac_auth")
    page.get_by_role("button", name="退出登录").click()
    page.get_by_role("button", name="登录", exact=True).first.wait_for()
    context.close()
    assert auth.get_user(engine, "cookie2").last_logout_at is not None, "the logout was not recorded"
    check(real, False, "a cookie from before the logout")

    # forged with the real key but issued before a password change
    issued = time.time() - 60
    auth.set_password(engine, "cookie3", "Changed-Pass-2026", admin)
    check(forge("cookie3", key, issued), False, "a cookie from before the password change")
    check(forge("cookie3", key, time.time() + 1), True, "a cookie issued after the password change")
    # and of a deactivated user
    auth.set_active(engine, "cookie1", False, admin)
    check(forge("cookie1", key, time.time()), False, "a cookie of a deactivated user")
    STATS["cookie_attempts"] = tried
