"""Issuing an initial password or a key registration code: each exists only on its printed notice (A4 PDF) and
is stored hashed.

Issuing (or re-issuing) a notice always sets a new initial password: the previous notice stops working. Re-issuing a
key file revokes the old one and prints a one-time code that, with the password, registers the new one.
"""
from datetime import datetime

from flask import current_app, has_request_context, url_for

from nanbyo import audit, auth, database, sessions
from nanbyo.exports import JST
from nanbyo.extensions import db
from nanbyo.notices import OPERATOR_NAME, KeyNoticeEntry, NoticeEntry, render_key_notices, render_notices
from nanbyo.roles import MUNICIPALITY_ROLES, ROLE_LABELS, STATUS_ACTIVE, STATUS_LOCKED


class NotIssuable(ValueError):
    pass


def issuer_label(actor) -> str:
    """Who re-issues, as printed on a notice: the 自治体, the institution's 責任者, or the operator."""
    if actor.role in MUNICIPALITY_ROLES and actor.municipality is not None:
        return actor.municipality.name
    managed = [m.institution for m in actor.memberships if m.is_manager]
    if managed:
        return f"{managed[0].name}（責任者）"
    return OPERATOR_NAME


def login_url() -> str:
    if has_request_context():
        return url_for("auth.login", _external=True)
    return current_app.config["NANBYO_PUBLIC_URL"].rstrip("/") + "/login"


def _entry(user, password, issuer_name=None) -> NoticeEntry:
    membership = user.primary_membership or (user.memberships[0] if user.memberships else None)
    issuer = user.issuing_municipality or user.municipality
    return NoticeEntry(
        login_id=user.login_id, initial_password=password, name=user.name, name_kana=user.name_kana,
        role_label=ROLE_LABELS[user.role], designations=[str(d) for d in user.designations],
        institution_code=membership.institution.code if membership else "",
        institution_name=membership.institution.name if membership else "",
        department=membership.department if membership else "",
        issuer_name=issuer_name or (issuer.name if issuer else OPERATOR_NAME),
        issued_on=datetime.now(JST).date(), login_url=login_url(), reissued=issuer_name is not None,
        second_factor="key_file" if user.key_digest else "key_code" if user.key_code_hash else "")


def _issuable(users):
    for user in users:
        if user.status not in (STATUS_ACTIVE, STATUS_LOCKED):
            raise NotIssuable(f"{user.login_id} は無効または削除済みのため通知書を発行できません。")


def reset_for_notices(users, issuer_name=None) -> bytes:
    """New initial passwords for `users` (must change at first login; live sessions end) and their notices (PDF).
    The changes, their log entries and the PDF that carries the passwords stand or fall together. The key file
    stays: an initial password alone does not log in where a key is registered. `issuer_name`: who re-issues (the
    notice names them as its sender); by default the 自治体 that issued the ID issues the notice."""
    users = list(users)
    passwords = [auth.generate_initial_password() for _ in users]
    hashes = [auth.hash_password(p) for p in passwords]  # slow: before the lock
    database.begin_write()
    _issuable(users)  # as the accounts are now, under the lock
    entries = []
    for user, password, password_hash in zip(users, passwords, hashes):
        user.password_hash = password_hash
        user.must_change_password = True
        auth.unlock(user)
        sessions.revoke_all(user)
        entries.append(_entry(user, password, issuer_name))
    audit.record_many([dict(action="notice_issue", target=user) for user in users])  # one read of the chain's tail
    pdf = render_notices(entries)
    db.session.commit()
    return pdf


def reissue_keys(users, issuer_name) -> bytes:
    """Revoke the key files of `users`; each gets a one-time registration code on its notice (the PDF returned), so
    that a new key file is registered with password + code, never password alone. Sessions end. The changes, their
    log entries and the PDF stand or fall together."""
    users = list(users)
    codes = [auth.new_key_code() for _ in users]  # slow: before the lock
    database.begin_write()
    _issuable(users)
    entries = []
    for user, (code, code_hash) in zip(users, codes):
        expires_at = auth.reissue_key(user, code_hash)
        sessions.revoke_all(user)
        membership = user.primary_membership
        entries.append(KeyNoticeEntry(
            login_id=user.login_id, registration_code=code, expires_at=expires_at, name=user.name,
            name_kana=user.name_kana, role_label=ROLE_LABELS[user.role],
            institution_code=membership.institution.code if membership else "",
            institution_name=membership.institution.name if membership else "",
            department=membership.department if membership else "", issuer_name=issuer_name,
            issued_on=datetime.now(JST).date(), login_url=login_url(),
            designations=[str(d) for d in user.designations]))
    audit.record_many([dict(action="key_reset", target=user, data={"expires_at": entry.expires_at.isoformat()})
                       for user, entry in zip(users, entries)])
    pdf = render_key_notices(entries)
    db.session.commit()
    return pdf


def add_concurrent(user, institution, department, **log):
    """Register `institution` as a 兼務先 of `user` and log it, in the caller's unit of work (begin_write); None when
    the user already belongs there."""
    from models.accounts import Membership
    if any(m.institution_id == institution.id for m in user.memberships):
        return None
    membership = Membership(user=user, institution=institution, kind="concurrent",
                            department=(department or "").strip())
    db.session.add(membership)
    db.session.flush()
    audit.record("create", target=membership,
                 data={"kind": "concurrent", "institution_code": institution.code, **log})
    return membership
