"""Forms posted after the idle timeout: kept for their user across the re-login, then shown again, never saved.

A doctor who typed a 臨個票 for 40 minutes and then pressed 保存 meets the login page; after logging in again the form
comes back with what was typed (the page says it is not saved yet). The posted fields are encrypted with the data
key (they may hold patient data), bound to the user and the page, kept at most HOLD_FOR, and deleted when shown.
"""
from datetime import timedelta

from sqlalchemy import delete, select
from werkzeug.datastructures import MultiDict

from models._types import utcnow
from models.accounts import HeldForm
from nanbyo import database
from nanbyo.crypto import keyring
from nanbyo.extensions import db

HOLD_FOR = timedelta(hours=1)
MAX_FIELDS = 2000  # a form's fields; more is not a form of ours


def _aad(user_id, path):
    return f"held-form:{user_id}:{path}".encode()


def hold(user_id: int, path: str, formdata) -> bool:
    """Keep the posted fields (without the CSRF token) for `user_id` at `path`; False when there is nothing to keep."""
    fields = [(k, v) for k, v in formdata.items(multi=True) if k != "csrf_token"][:MAX_FIELDS]
    if not fields or len(path) > 300:
        return False
    now = utcnow()
    database.begin_write()
    db.session.execute(delete(HeldForm).where((HeldForm.expires_at < now)
                                              | ((HeldForm.user_id == user_id) & (HeldForm.path == path))))
    db.session.add(HeldForm(user_id=user_id, path=path, created_at=now, expires_at=now + HOLD_FOR,
                            cipher=keyring().encrypt_json({"fields": fields}, _aad(user_id, path))))
    db.session.commit()
    return True


def take(user, path: str) -> MultiDict | None:
    """The fields `user` posted at `path` before their session timed out, once; None when there are none."""
    if db.session.execute(select(HeldForm.id).filter_by(user_id=user.id, path=path)).first() is None:
        return None
    database.begin_write()
    held = db.session.execute(select(HeldForm).filter_by(user_id=user.id, path=path)).scalar_one_or_none()
    if held is None:
        return None
    fields = keyring().decrypt_json(held.cipher, _aad(user.id, path))["fields"] if held.expires_at > utcnow() else None
    db.session.delete(held)
    db.session.commit()
    return MultiDict([tuple(pair) for pair in fields]) if fields else None


def reencrypt(ring) -> int:
    """Every held form under the ring's active key (the key rotation); the number rewritten."""
    database.begin_write()
    done = 0
    for held in db.session.execute(select(HeldForm)).scalars():
        new = ring.reencrypted(held.cipher, _aad(held.user_id, held.path))
        if new is not None:
            held.cipher, done = new, done + 1
    db.session.commit()
    return done
