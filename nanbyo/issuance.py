"""Issuing an initial password: it exists only in the 発行通知書 (A4 PDF) and is stored hashed.

Issuing (or re-issuing) a notice always sets a new initial password: the previous notice stops working.
"""
from datetime import datetime

from flask import current_app, has_request_context, url_for

from nanbyo import audit, auth, sessions
from nanbyo.exports import JST
from nanbyo.extensions import db
from nanbyo.notices import NoticeEntry
from nanbyo.roles import ROLE_LABELS, STATUS_ACTIVE, STATUS_LOCKED

OPERATOR_NAME = "システム運営主体"


class NotIssuable(ValueError):
    pass


def login_url() -> str:
    if has_request_context():
        return url_for("auth.login", _external=True)
    return current_app.config["NANBYO_PUBLIC_URL"].rstrip("/") + "/login"


def _entry(user, password) -> NoticeEntry:
    membership = user.primary_membership or (user.memberships[0] if user.memberships else None)
    issuer = user.issuing_municipality or user.municipality
    return NoticeEntry(
        login_id=user.login_id, initial_password=password, name=user.name, name_kana=user.name_kana,
        role_label=ROLE_LABELS[user.role], designations=[str(d) for d in user.designations],
        institution_code=membership.institution.code if membership else "",
        institution_name=membership.institution.name if membership else "",
        department=membership.department if membership else "",
        issuer_name=issuer.name if issuer else OPERATOR_NAME,
        issued_on=datetime.now(JST).date(), login_url=login_url())


def reset_for_notices(users) -> list[NoticeEntry]:
    """New initial passwords for `users` (must change at first login; live sessions end). Logs each one."""
    users = list(users)
    for user in users:
        if user.status not in (STATUS_ACTIVE, STATUS_LOCKED):
            raise NotIssuable(f"{user.login_id} は無効または削除済みのため通知書を発行できません。")
    entries = []
    for user in users:
        password = auth.generate_initial_password()
        user.password_hash = auth.hash_password(password)
        user.must_change_password = True
        auth.unlock(user)
        sessions.revoke_all(user)
        entries.append(_entry(user, password))
        audit.record("notice_issue", target=user, commit=False)
    db.session.commit()
    return entries


def add_concurrent(user, institution, department, **log):
    """Register `institution` as a 兼務先 of `user` and log it; None when the user already belongs there."""
    from models.accounts import Membership
    if any(m.institution_id == institution.id for m in user.memberships):
        return None
    membership = Membership(user=user, institution=institution, kind="concurrent",
                            department=(department or "").strip())
    db.session.add(membership)
    db.session.commit()
    audit.record("create", target=membership,
                 data={"kind": "concurrent", "institution_code": institution.code, **log})
    return membership
