"""Operation log service: append hash-chained entries and verify the chain.

Each entry's hash covers its own fields and the previous entry's hash, so altering a row breaks its own hash and
deleting one breaks the link of the next. Entries never carry passwords or patient data: callers pass field names,
IDs and counts, never values.
"""
import hashlib
import json
from datetime import timezone

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import insert, select

from models._types import utcnow
from models.audit import OperationLog
from nanbyo import database
from nanbyo.extensions import db

GENESIS = "0" * 64
# Keys that must never reach the log, whatever a caller passes.
FORBIDDEN_KEYS = {"password", "new_password", "password_confirm", "key_file", "secret", "csrf_token"}

ACTION_LABELS = {
    "login": "ログイン", "login_failed": "ログイン失敗", "logout": "ログアウト", "lockout": "アカウントロック",
    "unlock": "ロック解除", "session_expired": "セッション期限切れ", "password_change": "パスワード変更",
    "key_issue": "鍵ファイル発行", "key_reset": "鍵ファイル失効", "create": "登録", "update": "更新",
    "delete": "削除", "export": "エクスポート", "access_denied": "アクセス拒否", "disable": "無効化",
    "enable": "有効化", "load_masters": "マスタ読込", "demo": "デモデータ作成",
    "import_users": "ユーザデータファイル取込", "notice_issue": "発行通知書（初期パスワード設定）",
    "manager_transfer": "責任者の交代", "document_finalize": "書類の確定", "document_view": "書類の閲覧",
    "document_print": "書類の印刷", "document_review": "行政記載欄・審査結果", "key_lookup": "アクセスキー照会",
    "patient_search": "患者検索", "rotate_key": "暗号鍵のローテーション",
}


def _canonical(entry: OperationLog) -> bytes:
    created = entry.created_at.astimezone(timezone.utc).isoformat(timespec="microseconds")
    body = {
        "seq": entry.seq, "created_at": created, "actor_id": entry.actor_id, "actor_login": entry.actor_login,
        "actor_role": entry.actor_role, "remote_addr": entry.remote_addr, "action": entry.action,
        "target_type": entry.target_type, "target_id": entry.target_id, "result": entry.result,
        "data": entry.data, "prev_hash": entry.prev_hash,
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def compute_hash(entry: OperationLog) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


def _scrub(data):
    if isinstance(data, dict):
        return {k: _scrub(v) for k, v in data.items() if k not in FORBIDDEN_KEYS}
    if isinstance(data, (list, tuple)):
        return [_scrub(v) for v in data]
    return data


def _append(connection, values) -> OperationLog:
    """Extend the chain by one entry on `connection`, which holds the write lock (nanbyo.database)."""
    last = connection.execute(select(OperationLog.seq, OperationLog.entry_hash)
                              .order_by(OperationLog.seq.desc()).limit(1)).first()
    entry = OperationLog(seq=(last.seq + 1) if last else 1, prev_hash=last.entry_hash if last else GENESIS,
                         **values)
    entry.entry_hash = compute_hash(entry)
    connection.execute(insert(OperationLog.__table__).values(
        {column.key: getattr(entry, column.key) for column in OperationLog.__table__.columns if column.key != "id"}))
    return entry


def record(action, *, target=None, target_type="", target_id="", result="success", data=None, actor=None,
           commit=True):
    """Append one entry. `actor` defaults to the logged-in user; `target` may be a model instance.

    Inside a unit of work (after database.begin_write()) the entry joins its changes and, with commit=True, commits
    them together. With nothing of the caller's to commit (a read of patient data, a refused request) the entry is a
    unit of work of its own. A change made without begin_write() cannot get its entry: that raises."""
    session = db.session
    if actor is None and has_request_context() and current_user and current_user.is_authenticated:
        actor = current_user
    if target is not None:
        target_type = target_type or target.__class__.__tablename__
        target_id = target_id or str(getattr(target, "id", "") or "")
    values = dict(
        created_at=utcnow(), actor_id=getattr(actor, "id", None), actor_login=getattr(actor, "login_id", "") or "",
        actor_role=getattr(actor, "role", "") or "",
        remote_addr=(request.remote_addr or "") if has_request_context() else "cli",
        action=action, target_type=target_type, target_id=str(target_id), result=result, data=_scrub(data or {}))
    if database.is_write_locked(session):
        entry = _append(session.connection(), values)
        if commit:
            session.commit()
        return entry
    if database.has_changes(session):
        raise database.UnitOfWorkError("changes made without begin_write() cannot be committed with their entry")
    with database.separate_write() as connection:
        return _append(connection, values)


def verify(session=None):
    """Walk the chain in order. Returns a list of problems (empty when intact), each naming the entry."""
    session = session or db.session
    problems = []
    prev_hash, prev_seq = GENESIS, 0
    for entry in session.execute(select(OperationLog).order_by(OperationLog.seq)).scalars():
        if entry.seq != prev_seq + 1:
            problems.append(f"エントリ seq={prev_seq + 1}〜{entry.seq - 1} が削除されています（id={entry.id} の直前）")
        if entry.prev_hash != prev_hash:
            problems.append(f"エントリ seq={entry.seq} (id={entry.id}) の前エントリハッシュが一致しません（直前のエントリが改ざんまたは削除されています）")
        if compute_hash(entry) != entry.entry_hash:
            problems.append(f"エントリ seq={entry.seq} (id={entry.id}) の内容がハッシュと一致しません（改ざん）")
        prev_hash, prev_seq = entry.entry_hash, entry.seq
    return problems, prev_seq, prev_hash
