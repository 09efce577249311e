"""Server-side sessions: logout and replay, a new session at login, idle timeout, disabling, key file reissue."""
from datetime import timedelta

from sqlalchemy import select

from models._types import utcnow
from models.accounts import UserSession
from nanbyo import auth, sessions
from nanbyo.extensions import db
from tests.helpers import fresh, log_entries, PASSWORD, gen_institution, gen_user, login, logout, post_form

COOKIE = "nanbyo_session"




def user_sessions(user):
    db.session.expire_all()
    return db.session.execute(select(UserSession).filter_by(user_id=user.id).order_by(UserSession.id)).scalars().all()


def is_login_redirect(response):
    return response.status_code == 302 and response.headers["Location"].split("?")[0].endswith("/login")


def cookie_value(client):
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def browser_with_cookie(app, value):
    browser = app.test_client()
    browser.set_cookie(COOKIE, value)
    return browser


def session_data(app, value):
    return app.session_interface.get_signing_serializer(app).loads(value)


def doctor():
    return gen_user("designated_doctor", institution=gen_institution())


# --- logout -----------------------------------------------------------------------------------------------------

def test_session_cookie_replay_after_logout_fails(app, client):
    user = doctor()
    assert login(client, user).status_code == 302
    stolen = cookie_value(client)
    # Before logout the copied cookie is a working session (so the replay below tests the logout, nothing else).
    assert browser_with_cookie(app, stolen).get("/admin/").status_code == 200
    assert is_login_redirect(logout(client))
    assert is_login_redirect(client.get("/admin/"))
    replay = browser_with_cookie(app, stolen)
    response = replay.get("/admin/")
    assert response.status_code != 200
    assert is_login_redirect(response)
    assert is_login_redirect(replay.get("/admin/account/"))
    [record] = user_sessions(user)
    assert record.revoked_at is not None


def test_logout_ends_only_this_browser(app, client):
    user = doctor()
    other = app.test_client()
    login(client, user)
    login(other, user)
    logout(client)
    assert is_login_redirect(client.get("/admin/"))
    assert other.get("/admin/").status_code == 200


# --- a new session at login -------------------------------------------------------------------------------------

def test_login_issues_a_new_session(app, client):
    user = doctor()
    client.get("/login")
    before = cookie_value(client)
    assert before is not None  # the login form's CSRF token lives in a pre-login session
    assert login(client, user).status_code == 302
    after = cookie_value(client)
    assert after != before
    assert sessions.TOKEN_KEY not in session_data(app, before)
    assert sessions.TOKEN_KEY in session_data(app, after)
    # Nothing of the pre-login session is carried over: the pre-login CSRF token is replaced too.
    assert session_data(app, after).get("csrf_token") != session_data(app, before).get("csrf_token")
    # The cookie from before login does not open admin pages afterwards.
    planted = browser_with_cookie(app, before)
    assert is_login_redirect(planted.get("/admin/"))
    assert client.get("/admin/").status_code == 200


def test_fixated_cookie_is_not_upgraded_by_the_victims_login(app):
    """An attacker plants a pre-login cookie in the victim's browser; the victim logs in; the attacker's copy of
    that cookie stays anonymous."""
    user = doctor()
    attacker = app.test_client()
    attacker.get("/login")
    planted = cookie_value(attacker)
    victim = browser_with_cookie(app, planted)
    assert login(victim, user).status_code == 302
    assert victim.get("/admin/").status_code == 200
    assert cookie_value(victim) != planted
    assert is_login_redirect(attacker.get("/admin/"))


def test_each_login_gets_its_own_token(app):
    user = doctor()
    first, second = app.test_client(), app.test_client()
    login(first, user)
    login(second, user)
    tokens = {session_data(app, cookie_value(c))[sessions.TOKEN_KEY] for c in (first, second)}
    assert len(tokens) == 2
    records = user_sessions(user)
    assert len(records) == 2 and len({r.token_digest for r in records}) == 2
    # The server keeps only a digest of the token.
    assert not any(r.token_digest in tokens for r in records)


# --- idle timeout -----------------------------------------------------------------------------------------------

def _age_session(user, minutes):
    record = user_sessions(user)[-1]
    record.last_seen_at = utcnow() - timedelta(minutes=minutes)
    db.session.commit()
    return record.id


def test_idle_session_expires_after_30_minutes(app, client):
    user = doctor()
    login(client, user)
    assert client.get("/admin/").status_code == 200
    record_id = _age_session(user, 31)
    response = client.get("/admin/")
    assert is_login_redirect(response)
    expired = log_entries("session_expired")
    assert len(expired) == 1 and expired[0].target_id == str(user.id) and expired[0].actor_id == user.id
    db.session.expire_all()
    assert db.session.get(UserSession, record_id).revoked_at is not None
    # Expired for good: making the record look fresh again does not revive it.
    _age_session(user, 0)
    assert is_login_redirect(client.get("/admin/"))
    # A new login works.
    assert login(client, user).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_session_used_within_30_minutes_stays(app, client):
    user = doctor()
    login(client, user)
    record_id = _age_session(user, 29)
    assert client.get("/admin/").status_code == 200
    assert not log_entries("session_expired")
    db.session.expire_all()
    record = db.session.get(UserSession, record_id)
    assert record.revoked_at is None
    # The request counted as activity: the idle clock restarted.
    assert utcnow() - record.last_seen_at < timedelta(minutes=1)


def test_idle_timeout_follows_configuration(app, client):
    app.config["NANBYO_IDLE_TIMEOUT"] = timedelta(minutes=5)
    user = doctor()
    login(client, user)
    _age_session(user, 6)
    assert is_login_redirect(client.get("/admin/"))


# --- disabling, lockout and key reissue end or change access ----------------------------------------------------

def test_disabling_a_user_ends_their_live_session(app, client):
    victim = doctor()
    victim_browser = app.test_client()
    assert login(victim_browser, victim).status_code == 302
    assert victim_browser.get("/admin/").status_code == 200
    login(client, gen_user("operator_admin"))
    response = post_form(client, "/admin/user/action/", {"action": "disable", "rowid": str(victim.id)})
    assert response.status_code == 302
    assert fresh(victim).status == "disabled"
    assert is_login_redirect(victim_browser.get("/admin/"))
    assert all(r.revoked_at is not None for r in user_sessions(victim))
    assert [e.target_id for e in log_entries("disable")] == [str(victim.id)]
    # Re-enabling does not bring the old session back; the user logs in anew.
    post_form(client, "/admin/user/action/", {"action": "enable", "rowid": str(victim.id)})
    assert fresh(victim).status == "active"
    assert is_login_redirect(victim_browser.get("/admin/"))
    assert login(victim_browser, victim).status_code == 302
    # The operator's own session was not touched.
    assert client.get("/admin/").status_code == 200


def test_disable_of_another_user_leaves_other_sessions(app, client):
    victim, bystander = doctor(), doctor()
    bystander_browser = app.test_client()
    login(bystander_browser, bystander)
    login(client, gen_user("operator_admin"))
    post_form(client, "/admin/user/action/", {"action": "disable", "rowid": str(victim.id)})
    assert bystander_browser.get("/admin/").status_code == 200


def test_key_reset_by_manager_ends_sessions_and_requires_new_key(app, client):
    inst = gen_institution()
    staff = gen_user("institution_staff", institution=inst)
    staff_browser = app.test_client()
    login(staff_browser, staff)
    login(client, gen_user("designated_doctor", institution=inst, manager=True))
    response = post_form(client, f"/admin/institution-users/{inst.id}/key/{staff.id}", {},
                         token_page="/admin/institution-users/")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    assert fresh(staff).key_digest is None
    assert is_login_redirect(staff_browser.get("/admin/"))
    # The old key file no longer counts, and the password alone is not a way in (tests/test_key_reissue.py).
    assert login(staff_browser, staff).status_code == 200
    assert login(staff_browser, staff, key_file=b"").status_code == 200
    assert is_login_redirect(staff_browser.get("/admin/"))


def test_password_change_keeps_this_session_and_ends_the_others(app, client):
    user = doctor()
    other = app.test_client()
    login(other, user)
    login(client, user)
    response = post_form(client, "/admin/account/password",
                         {"current_password": PASSWORD, "new_password": "Sakura-Mochi-Kyoto-58",
                          "new_password_confirm": "Sakura-Mochi-Kyoto-58"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert is_login_redirect(other.get("/admin/"))
    assert [r.revoked_at is None for r in user_sessions(user)] == [False, True]


def test_deleting_an_id_ends_its_sessions(app, client):
    victim = doctor()
    victim_browser = app.test_client()
    login(victim_browser, victim)
    login(client, gen_user("municipality_admin"))
    post_form(client, "/admin/user/delete/", {"id": str(victim.id)})
    assert fresh(victim).status == "deleted"
    assert is_login_redirect(victim_browser.get("/admin/"))
    assert all(r.revoked_at is not None for r in user_sessions(victim))


def test_key_reissue_replaces_the_key_file(app, client):
    user = doctor()
    old_key = user.key_file
    login(client, user)
    response = post_form(client, "/admin/account/key", {"current_password": PASSWORD})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    new_key = response.data
    assert new_key.startswith(auth.KEY_FILE_MAGIC.encode()) and new_key != old_key
    assert [e.target_id for e in log_entries("key_issue")] == [str(user.id)]
    logout(client)
    browser = app.test_client()
    response = login(browser, user, key_file=old_key)
    assert response.status_code == 200 and auth.LOGIN_FAILED_MESSAGE in response.get_data(as_text=True)
    assert is_login_redirect(browser.get("/admin/"))
    response = login(browser, user, key_file=new_key)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200


def test_key_reissue_needs_the_current_password(app, client):
    user = doctor()
    digest = user.key_digest
    login(client, user)
    response = post_form(client, "/admin/account/key", {"current_password": "not-my-password-1"})
    assert response.status_code == 400
    assert "現在のパスワードが正しくありません" in response.get_data(as_text=True)
    assert not response.data.startswith(auth.KEY_FILE_MAGIC.encode())
    assert fresh(user).key_digest == digest
    logout(client)
    assert login(app.test_client(), user).status_code == 302  # the old key still works
