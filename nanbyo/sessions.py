"""Server-side login sessions: the cookie holds a random token, the database decides whether it is still valid.

Starting, ending and revoking sessions are changes: the caller holds the unit of work (database.begin_write) and
commits them with their log entry.
"""
import hashlib
import secrets
from datetime import timedelta

from flask import current_app, g, request, session
from flask_login import login_user, logout_user
from sqlalchemy import update

from models._types import utcnow
from models.accounts import User, UserSession
from nanbyo import database
from nanbyo.extensions import db

TOKEN_KEY = "nanbyo_sid"
TOUCH_EVERY = timedelta(seconds=30)  # writes of last_seen_at are throttled; the idle check stays exact enough
TIMED_OUT_NOTICE_FOR = timedelta(hours=1)  # how long after an idle timeout this browser is told about it


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(user: User) -> None:
    """A fresh session at login: nothing of the pre-login session survives (no fixation)."""
    session.clear()
    token = secrets.token_urlsafe(32)
    db.session.add(UserSession(token_digest=_digest(token), user_id=user.id,
                               remote_addr=(request.remote_addr or "")[:64]))
    session[TOKEN_KEY] = token
    session.permanent = True
    login_user(user)


def current_record() -> UserSession | None:
    token = session.get(TOKEN_KEY)
    if not token:
        return None
    return db.session.execute(db.select(UserSession).filter_by(token_digest=_digest(token))).scalar_one_or_none()


def load_user(user_id: str) -> User | None:
    """Flask-Login user loader: the user only if this browser's server-side session is live."""
    record = current_record()
    if record is None or str(record.user_id) != str(user_id):
        return None
    now = utcnow()
    if record.revoked_at is not None:
        if record.end_reason == "expired" and now - record.revoked_at < TIMED_OUT_NOTICE_FOR:
            g.timed_out_user_id = record.user_id
        return None
    idle = now - record.last_seen_at
    if idle > current_app.config["NANBYO_IDLE_TIMEOUT"] or idle > TOUCH_EVERY:
        database.begin_write()
        if record.revoked_at is not None:  # ended by another request meanwhile
            return None
        idle = now - record.last_seen_at
        if idle > current_app.config["NANBYO_IDLE_TIMEOUT"]:
            from nanbyo import audit
            record.revoked_at, record.end_reason = now, "expired"
            audit.record("session_expired", target=record.user, actor=record.user)
            g.timed_out_user_id = record.user_id
            return None
        record.last_seen_at = now
        db.session.commit()
    user = db.session.get(User, record.user_id)
    if user is None or not user.is_active:
        return None
    return user


def timed_out_user_id():
    """The user whose session in this browser ended by the idle timeout (lately), else None."""
    return g.get("timed_out_user_id")


def touch() -> bool:
    """Keep this browser's session alive (the user is working on a page); False when it has ended."""
    if current_record() is None:
        return False
    database.begin_write()
    record = current_record()
    if record is None or record.revoked_at is not None:
        return False
    record.last_seen_at = utcnow()
    db.session.commit()
    return True


def end() -> None:
    """Logout: revoke the server-side record, then forget the cookie."""
    record = current_record()
    if record is not None and record.revoked_at is None:
        record.revoked_at, record.end_reason = utcnow(), "logout"
    logout_user()
    session.clear()


def revoke_all(user: User, keep_current: bool = False) -> None:
    """Every session of this user ends now, on every browser (with keep_current, all but this browser's)."""
    query = update(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    current = current_record() if keep_current else None
    if current is not None:
        query = query.where(UserSession.id != current.id)
    db.session.execute(query.values(revoked_at=utcnow(), end_reason="revoked"))
