"""The login gate (streamlit-authenticator 0.4.2 + engine.auth) and per-page role checks.

Order (see ../shared/STACK_NOTES.md; never `st.rerun()` right after login() or logout(), or the
cookie component is dropped before the browser runs it):

1. logged in: re-read the user from the database; a deactivated user, or a session older than the
   user's last password change, is logged out now (at the next action after the change);
2. logged in: name and role in the sidebar, then `logout(location="sidebar")`;
3. not logged in: `login(location="main")`. The library's password check is replaced, on this
   instance, by `engine.auth.verify_login` (dummy bcrypt for unknown users, lockout in the
   database, audit). A login made from the cookie is checked against the cookie's issue time
   (`exp_date - expiry`): a cookie from before the user's last logout or password change is refused.

Session state set here: "actor" (engine.access.Actor, rebuilt from the database on every run),
"lang", "lac_login_at" (epoch seconds the session's login dates from), "lac_login_code" ((message
code, params) of the last failed login); the library's own keys ("authentication_status", "username",
"name", "roles", "email", "logout").
"""

from __future__ import annotations

import os
import time
from typing import Any

import jwt
import streamlit as st
import streamlit_authenticator as stauth
from sqlalchemy.engine import Engine
from streamlit_authenticator.utilities import LoginError

from engine import auth, messages
from engine.access import Actor
from engine.secrets import SecretKeyError, cookie_key
from ui.i18n import t, translate
from ui.layout import language_switch
from ui.state import lang

COOKIE_NAME = "lac_auth"
LOGIN_KEY = "lac_login"
LOGOUT_KEY = "lac_logout"
SS_ACTOR = "actor"
SS_LOGIN_AT = "lac_login_at"
SS_LOGIN_CODE = "lac_login_code"
_SS_PASSWORD_LOGIN = "lac_password_login"  # set by the password check during this run's login()

ROLE_KEYS = {
    "admin": "common.role_admin",
    "manager": "common.role_manager",
    "staff": "common.role_staff",
    "outreach": "common.role_outreach",
    "viewer": "common.role_viewer",
}


def role_label(role: str, language: str | None = None) -> str:
    """A role's name in `language` (default: the user's). Pass the language to a format_func, so the
    function gives the same answer outside the script run (AppTest calls it from the test)."""
    key = ROLE_KEYS.get(role)
    if key is None:
        return role
    return translate(key, language) if language else t(key)


def error_text(exc: Exception) -> str:
    """An engine error in the user's language (other errors as they are)."""
    message = getattr(exc, "message", None)
    return message(lang()) if callable(message) else str(exc)


# --- page guards (defence in depth: the nav already leaves out what a role may not use) ----------
def current_actor() -> Actor | None:
    value = st.session_state.get(SS_ACTOR)
    return value if isinstance(value, Actor) else None


def refuse() -> None:
    st.error(t("common.forbidden"))
    st.stop()


def require_login() -> Actor:
    """The logged-in actor, or a refusal (and the page stops)."""
    actor = current_actor()
    if actor is None:
        refuse()
    return actor  # type: ignore[return-value]


def require_ability(ability: str) -> Actor:
    """The actor if their role has `ability`, else a refusal (and the page stops)."""
    actor = require_login()
    if not actor.can(ability):
        refuse()
    return actor


# --- the authenticator ----------------------------------------------------------------------
def test_mode() -> bool:
    return os.environ.get("LAC_TEST_MODE") == "1"


def _check_credentials(engine: Engine, username: str, password: str) -> bool:
    """Replaces AuthenticationModel.check_credentials on our instance: the database decides."""
    result = auth.verify_login(engine, username, password)
    if result.ok:
        st.session_state[SS_LOGIN_AT] = time.time()
        st.session_state[_SS_PASSWORD_LOGIN] = True
        st.session_state[SS_LOGIN_CODE] = None
        return True
    st.session_state[SS_LOGIN_CODE] = (result.code, result.params)
    return False


def build_authenticator(engine: Engine, key: str) -> stauth.Authenticate:
    options: dict[str, Any] = {"login_sleep_time": 0} if test_mode() else {}
    authenticator = stauth.Authenticate(
        auth.authenticator_credentials(engine),
        cookie_name=COOKIE_NAME,
        cookie_key=key,
        cookie_expiry_days=auth.cookie_expiry_days(),
        auto_hash=False,
        **options,
    )
    model = authenticator.authentication_controller.authentication_model
    model.check_credentials = lambda username, password: _check_credentials(engine, username, password)
    return authenticator


def _cookie_issued_at(key: str) -> float | None:
    token = st.context.cookies.get(COOKIE_NAME)
    if not token:
        return None
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"])
        return auth.cookie_issued_at(float(claims["exp_date"]))
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return None


def _cookie_unreadable(key: str) -> bool:
    """A login cookie is present but is not an HS256 token of ours with a username and an expiry
    (another algorithm, another key, garbage): the library would raise on some of these, so it is
    dropped before the library reads it."""
    token = st.context.cookies.get(COOKIE_NAME)
    if not isinstance(token, str) or not token:  # (AppTest has no cookies)
        return False
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"])
        float(claims["exp_date"])
        return not isinstance(claims.get("username"), str)
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return True


def _clear_session() -> None:
    for name in (SS_ACTOR, SS_LOGIN_AT, _SS_PASSWORD_LOGIN):
        st.session_state.pop(name, None)


def _force_logout(authenticator: stauth.Authenticate) -> None:
    """End the session and delete the cookie, without a rerun."""
    if st.session_state.get("authentication_status"):
        authenticator.logout(location="unrendered")
    else:
        st.session_state["logout"] = True  # the library then ignores the cookie in this session
        authenticator.cookie_controller.delete_cookie()
    for name in ("name", "username", "authentication_status", "email", "roles"):
        st.session_state[name] = None
    _clear_session()


def _login_fields() -> dict[str, str]:
    return {
        "Form name": t("auth.login_title"),
        "Username": t("auth.username"),
        "Password": t("auth.password"),
        "Login": t("auth.login_button"),
    }


def _login(engine: Engine, authenticator: stauth.Authenticate, key: str) -> auth.UserInfo | None:
    """The login form (or a login from the cookie). Returns the user when logged in."""
    ss = st.session_state
    ss[_SS_PASSWORD_LOGIN] = False
    if _cookie_unreadable(key):
        _force_logout(authenticator)  # the form, not an error page, for a forged or broken cookie
    try:
        authenticator.login(location="main", key=LOGIN_KEY, fields=_login_fields())
    except LoginError:  # a cookie naming a user who no longer exists
        _force_logout(authenticator)
        authenticator.login(location="main", key=LOGIN_KEY, fields=_login_fields())
    if ss.get("authentication_status"):
        user = auth.get_user(engine, ss.get("username") or "")
        if ss.pop(_SS_PASSWORD_LOGIN, False):
            return user
        issued = _cookie_issued_at(key)
        if issued is not None and auth.cookie_still_valid(user, issued):
            ss[SS_LOGIN_AT] = issued
            return user
        _force_logout(authenticator)  # an old or forged cookie: show the form instead
        authenticator.login(location="main", key=LOGIN_KEY, fields=_login_fields())
        return None
    if ss.get("authentication_status") is False:
        code, params = ss.get(SS_LOGIN_CODE) or ("auth.login_failed", {})
        st.error(messages.render(code, lang(), **params))
    return None


def _on_logout(engine: Engine) -> Any:
    def callback(info: dict) -> None:
        if info.get("username"):
            auth.record_logout(engine, info["username"])

    return callback


LOGIN_BOX = "lac_login_box"
# After a login in this run the form stays in the page until the next run (no rerun allowed right
# after login()); hide it. Only the form and heading are hidden: the cookie component must stay live.
_HIDE_LOGIN_BOX = (
    f"<style>.st-key-{LOGIN_BOX} [data-testid='stForm'], .st-key-{LOGIN_BOX} [data-testid='stHeading'],"
    f" .st-key-{LOGIN_BOX} .stRadio {{display: none;}}</style>"
)


def _sidebar(engine: Engine, authenticator: stauth.Authenticate, user: auth.UserInfo) -> bool:
    """Name, role and the logout button. False when the user just logged out."""
    st.sidebar.markdown(f"**{_md(user.name)}**  \n{role_label(user.role)}")
    authenticator.logout(
        button_name=t("auth.logout"), location="sidebar", key=LOGOUT_KEY, callback=_on_logout(engine)
    )
    return bool(st.session_state.get("authentication_status"))


def cookie_key_or_stop() -> str:
    """The cookie signing key; with a placeholder key the console shows why and goes no further."""
    try:
        return cookie_key()
    except SecretKeyError as exc:
        st.error(str(exc))
        st.stop()
        raise  # not reached: st.stop() ends the run


def gate(engine: Engine) -> Actor | None:
    """Run the login gate; the logged-in actor (also in session_state["actor"]) or None."""
    ss = st.session_state
    key = cookie_key_or_stop()
    authenticator = build_authenticator(engine, key)

    user: auth.UserInfo | None = None
    if ss.get("authentication_status"):
        user = auth.get_user(engine, ss.get("username") or "")
        if ss.get(SS_LOGIN_AT) is None:
            ss[SS_LOGIN_AT] = time.time()
        if not auth.session_still_valid(user, ss[SS_LOGIN_AT]):
            _force_logout(authenticator)
            st.warning(t("auth.session_ended"))
            user = None
        else:
            _adopt(user)
            if not _sidebar(engine, authenticator, user):
                _clear_session()
                user = None
            else:
                # The same top-level layout as the run that logged in (login box + style), so that the
                # page's element and fragment ids stay stable: a click made just after login is kept.
                st.container(key=LOGIN_BOX)
                st.html(_HIDE_LOGIN_BOX)

    if user is None:
        with st.container(key=LOGIN_BOX):
            st.title(t("common.app_name"))
            language_switch()
            user = _login(engine, authenticator, key)
        if user is None:
            _clear_session()
            return None
        st.html(_HIDE_LOGIN_BOX)
        _adopt(user)
        _sidebar(engine, authenticator, user)
    return ss[SS_ACTOR]


def _adopt(user: auth.UserInfo) -> None:
    """The session follows the database: role, form editor flag, language, name."""
    ss = st.session_state
    ss[SS_ACTOR] = user.actor()
    ss["lang"] = user.language
    ss["name"] = user.name
    ss["roles"] = [user.role]


def _md(text: str) -> str:
    from ui.widgets import md_escape

    return md_escape(text)
