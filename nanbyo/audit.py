"""Operation log service: append hash-chained entries and verify the chain.

Each entry's hash covers its own fields and the previous entry's hash, so altering a row breaks its own hash and
deleting one breaks the link of the next. Entries never carry passwords or patient data: callers pass field names,
IDs and counts, never values.
"""
import hashlib
import json
from datetime import timezone
from types import SimpleNamespace

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import insert, select

from models._types import utcnow
from models.audit import OperationLog
from nanbyo import bulk, database
from nanbyo.document_codes import (APPLICATION_KIND_LABELS, IMPORT_RESULT_LABELS, KIND_SHORT_LABELS,
                                   REVIEW_RESULT_LABELS, STATUS_LABELS as DOCUMENT_STATUS_LABELS)
from nanbyo.extensions import db
from nanbyo.roles import (DOCTOR_KIND_LABELS, MEMBERSHIP_KIND_LABELS, ROLE_LABELS,
                          STATUS_LABELS as ACCOUNT_STATUS_LABELS)

GENESIS = "0" * 64
# Keys that must never reach the log, whatever a caller passes.
FORBIDDEN_KEYS = {"password", "new_password", "password_confirm", "key_file", "secret", "csrf_token"}

# --- labels: what a person reads in the log (views/audit.py); the entries themselves keep the codes ---------------

ACTION_LABELS = {
    "login": "ログイン", "login_failed": "ログイン失敗", "logout": "ログアウト", "lockout": "アカウントロック",
    "unlock": "ロック解除", "session_expired": "セッション期限切れ", "password_change": "パスワード変更",
    "key_issue": "鍵ファイル発行", "key_reset": "暗号化鍵再発行", "create": "登録", "update": "更新",
    "delete": "削除", "export": "エクスポート", "access_denied": "アクセス拒否", "disable": "無効化",
    "enable": "有効化", "load_masters": "マスタ読込", "demo": "デモデータ作成",
    "import_users": "ユーザデータファイル取込", "import_users_failed": "ユーザデータファイル取込の失敗",
    "notice_issue": "発行通知書（初期パスワード設定）",
    "manager_transfer": "責任者の交代", "document_list": "書類一覧の表示", "document_finalize": "書類の確定",
    "document_view": "書類の閲覧", "document_print": "書類の印刷", "document_xml": "書類のXML出力",
    "document_import": "書類のXML取込", "document_paper_receive": "紙の書類の受付（運営主体の入力）",
    "document_paper_import": "紙の書類のデータ取込（外部委託事業者のXML）", "document_import_batch": "XML取込（ファイル単位の結果）",
    "document_import_job": "XML取込の受付（バックグラウンド）", "document_import_job_failed": "XML取込の失敗（バックグラウンド）",
    "document_import_job_expire": "XML取込の結果の削除（保存期間の経過）",
    "document_receive": "書類の受付", "results_import": "認定結果データ一括取込",
    "scan_upload": "スキャンファイルのアップロード", "scan_download": "スキャンファイルのダウンロード",
    "scan_view": "スキャンファイルの表示（書類の横）",
    "scan_return": "スキャンファイルの差戻し", "scan_delete": "スキャンファイルの削除",
    "document_review": "行政記載欄・審査結果", "key_lookup": "アクセスキー照会", "patient_search": "患者検索",
    "rotate_key": "暗号鍵のローテーション", "stats_view": "統計情報の表示", "stats_export": "統計情報の出力",
    "export_file": "出力ファイルの作成", "export_download": "出力ファイルのダウンロード",
    "export_expire": "出力ファイルの削除（保存期間の経過）", "audit_archive": "操作ログのアーカイブ",
    "backup": "バックアップ", "restore": "バックアップからの復元",
}

# target_type: a table name (a model's __tablename__) or a word a caller passes.
TARGET_LABELS = {
    "user_account": "ユーザ", "document": "書類", "institution": "医療機関", "membership": "医療機関への所属",
    "municipality": "自治体", "import_batch": "ユーザデータファイル取込", "masters": "マスタ",
    "database": "データベース", "designation": "指定医の指定", "user_session": "ログインセッション",
    "document_correction": "書類の訂正履歴", "operation_log": "操作ログ", "nanbyo_category": "指定難病の疾患群",
    "nanbyo_disease": "指定難病", "shoman_group": "小児慢性特定疾病の疾患群", "shoman_disease": "小児慢性特定疾病",
    "held_form": "再ログインまで保持した入力内容", "export_job": "出力ファイル",
    "xml_import_job": "XML取込（バックグラウンド）", "scan_file": "スキャンファイル",
    "audit_checkpoint": "操作ログの検証・アーカイブの記録", "statistics": "統計情報",
}

RESULT_LABELS = {"success": "成功", "failure": "失敗", "denied": "拒否", "throttled": "回数制限",
                 "conflict": "競合"}

# Keys of an entry's `data`. A key not listed is shown as it is (key: value), never dropped.
DATA_KEY_LABELS = {
    "fields": "変更した項目", "reason": "理由", "login_id": "入力されたログインID", "failed_logins": "連続失敗回数",
    "first_login": "初回ログイン", "self": "本人", "by_manager": "責任者による", "reissue": "再発行",
    "told": "状態を本人に表示", "format": "形式", "rows": "件数", "endpoint": "画面", "method": "方式",
    "path": "URL", "expires_at": "有効期限", "status": "状態", "kind": "種別", "form": "様式", "screen": "画面",
    "sheet": "印刷したもの", "ids": "書類ID", "found": "該当件数", "reception_no": "受付番号", "role": "ロール",
    "institution_code": "医療機関コード", "import_batch": "取込番号", "created": "登録件数",
    "reported": "登録済みなど（新規発行なし）の件数", "file_sha256": "ファイルのハッシュ値（SHA-256）",
    "source": "登録方法", "primary_changed": "主たる勤務先を変更したユーザ（ID）",
    "primary_from": "主たる勤務先（変更前）", "primary_to": "主たる勤務先（変更後）", "row": "行番号",
    "from_concurrent": "兼務先からの変更", "designation": "指定医区分", "valid_from": "指定期間（開始）",
    "valid_until": "指定期間（終了）", "from": "交代前の責任者", "to": "交代後の責任者",
    "files": "読み込んだファイル（登録・更新件数）", "defects": "注意事項の件数", "accounts": "作成したアカウント",
    "documents": "書類", "corrections": "訂正履歴", "department": "部署",
    "query": "一覧の条件（絞り込み・検索・並び順）", "job": "出力ファイル番号", "jobs": "出力ファイル番号",
    "bytes": "ファイルの大きさ（バイト）", "file": "ファイル", "number": "ファイル内の書類の番号", "all_or_nothing": "すべて取り込むか何も取り込まない", "error": "エラー",
    "updated": "更新件数", "kept": "変更なし件数", "refused": "取込不可件数",
    "before": "この日（JST）より前をアーカイブ", "first_seq": "最初の番号", "last_seq": "最後の番号",
    "result": "結果", "received": "受付（紙の書類）件数", "scans": "スキャンファイル", "paper": "紙の書類のデータ",
    "institution": "医療機関コード", "page": "ページ", "by": "集計項目", "research": "研究利用（同意ありのみ）",
    "masked": "少数の秘匿", "fiscal_year": "年度", "written_from": "作成年月日（から）",
    "written_until": "作成年月日（まで）", "municipality_id": "実施主体（ID）", "application_kind": "申請区分",
    "review_result": "審査結果", "command": "コマンド", "folder": "バックアップ", "keep": "残す世代数",
    "created_at": "作成日時", "revision": "スキーマの版",
    "held_forms": "保持中のフォーム", "import_files": "XML取込の待ちファイル", "import_reports": "XML取込の結果",
    "previews": "ユーザデータファイルの確認待ち",
}

# Keys that are a mark (True) rather than a value: shown as their label alone.
FLAG_KEYS = {"first_login", "self", "by_manager", "reissue", "told", "from_concurrent", "all_or_nothing", "paper"}

REASON_LABELS = {
    "bad_password": "パスワード誤り", "bad_key_file": "鍵ファイル誤り", "bad_key_code": "鍵登録コード誤り",
    "no_key_file": "鍵ファイル未登録", "unknown_login_id": "未登録のID", "locked": "ロック中", "disabled": "無効",
    "deleted": "削除済み", "format": "キーの形式誤り", "not_found": "該当なし",
}


# Values of known keys, per key (reason codes, statuses, roles, …).
VALUE_LABELS = {
    "reason": REASON_LABELS,
    "status": {**ACCOUNT_STATUS_LABELS, **DOCUMENT_STATUS_LABELS},  # accounts' and documents' codes do not overlap
    "kind": {**KIND_SHORT_LABELS, **MEMBERSHIP_KIND_LABELS},
    "role": ROLE_LABELS,
    "designation": DOCTOR_KIND_LABELS,
    "format": {"csv": "CSV（UTF-8）", "csv_cp932": "CSV（Shift_JIS）", "xlsx": "Excel（xlsx）", "json": "JSON"},
    "screen": {"edit": "編集", "correct": "訂正"},
    "sheet": {"document": "書類", "key": "アクセスキーの通知"},
    "source": {"file": "ユーザデータファイル", "form": "個別登録（画面）", "results_import": "認定結果データ一括取込"},
    "result": IMPORT_RESULT_LABELS,
    "application_kind": APPLICATION_KIND_LABELS,
    "review_result": REVIEW_RESULT_LABELS,
}

# Column names in `fields` that no screen labels (the screens' own column labels come first; views/audit.py).
FIELD_LABELS = {
    "name": "名称・氏名", "name_kana": "氏名カナ", "email": "メールアドレス", "phone": "電話番号", "role": "ロール",
    "status": "状態", "password_hash": "パスワード", "must_change_password": "初期パスワード変更待ち",
    "key_digest": "鍵ファイル", "key_issued_at": "鍵ファイル発行日時", "key_code_hash": "鍵登録コード",
    "failed_logins": "連続ログイン失敗回数", "municipality": "自治体", "issuing_municipality": "発行自治体",
    "designations": "指定医の指定", "memberships": "所属医療機関", "institution": "医療機関", "user": "ユーザ",
    "is_manager": "責任者", "department": "部署（部門/診療科）", "code": "コード", "address": "所在地",
    "active": "有効", "shoman_municipality": "所管自治体（小慢）", "items": "記載内容", "patient_cipher": "患者情報",
    "diagnosed_on": "診断年月日", "written_on": "作成年月日", "explained_on": "説明日", "explanation": "説明と同意",
    "explained_by": "説明した人", "explained_at": "説明の記録日時", "application_kind": "申請区分",
    "nanbyo_disease": "疾病（難病）", "shoman_disease": "疾病（小慢）", "form_code": "様式",
    "form_version": "様式の版", "reception_no": "受付番号", "recipient_no": "受給者番号",
    "application_received_on": "申請受付日", "research_consent": "研究利用への同意", "review_result": "審査結果",
    "valid_from": "有効期間（開始）", "valid_until": "有効期間（終了）", "severity": "重症度",
    "review_note": "審査メモ", "access_key": "アクセスキー", "kind": "種別", "number": "番号",
    "prefecture_no": "都道府県番号",
}


# What an entry's hash covers: every column but id and entry_hash.
HASHED_COLUMNS = ("seq", "created_at", "actor_id", "actor_login", "actor_role", "remote_addr", "action", "target_type",
                  "target_id", "result", "data", "prev_hash")


def _canonical(values: dict) -> bytes:
    """values: an entry's columns by name (an OperationLog's, or a row record_many is about to insert)."""
    body = {key: values[key] for key in HASHED_COLUMNS}
    body["created_at"] = values["created_at"].astimezone(timezone.utc).isoformat(timespec="microseconds")
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _hash(values: dict) -> str:
    return hashlib.sha256(_canonical(values)).hexdigest()


def compute_hash(entry: OperationLog) -> str:
    return _hash({key: getattr(entry, key) for key in HASHED_COLUMNS})


def _scrub(data):
    if isinstance(data, dict):
        return {k: _scrub(v) for k, v in data.items() if k not in FORBIDDEN_KEYS}
    if isinstance(data, (list, tuple)):
        return [_scrub(v) for v in data]
    return data


def _tail(connection):
    """(seq, entry_hash) of the newest entry, (0, GENESIS) for an empty log; read under the write lock."""
    last = connection.execute(select(OperationLog.seq, OperationLog.entry_hash)
                              .order_by(OperationLog.seq.desc()).limit(1)).first()
    return (last.seq, last.entry_hash) if last else (0, GENESIS)


def _append(connection, values) -> OperationLog:
    """Extend the chain by one entry on `connection`, which holds the write lock (nanbyo.database)."""
    seq, prev_hash = _tail(connection)
    entry = OperationLog(seq=seq + 1, prev_hash=prev_hash, **values)
    entry.entry_hash = compute_hash(entry)
    connection.execute(insert(OperationLog.__table__).values(
        {column.key: getattr(entry, column.key) for column in OperationLog.__table__.columns if column.key != "id"}))
    return entry


def actor_as_read(user):
    """What an entry records of its actor (_who), read now: for a long run of units of work, each of whose commits
    expires the user (reading it again is a query)."""
    return SimpleNamespace(id=user.id, login_id=user.login_id, role=user.role)


def _who(actor) -> dict:
    """The columns saying who, from where and when; `actor` defaults to the logged-in user."""
    if actor is None and has_request_context() and current_user and current_user.is_authenticated:
        actor = current_user
    return dict(created_at=utcnow(), actor_id=getattr(actor, "id", None),
                actor_login=getattr(actor, "login_id", "") or "", actor_role=getattr(actor, "role", "") or "",
                remote_addr=(request.remote_addr or "") if has_request_context() else "cli")


def _entry_values(action, who, *, target=None, target_type="", target_id="", result="success", data=None):
    """An entry's columns but seq and the hashes; who: _who()."""
    if target is not None:
        target_type = target_type or target.__class__.__tablename__
        target_id = target_id or str(getattr(target, "id", "") or "")
    return dict(who, action=action, target_type=target_type, target_id=str(target_id), result=result,
                data=_scrub(data or {}))


def record(action, *, target=None, target_type="", target_id="", result="success", data=None, actor=None,
           commit=True):
    """Append one entry. `actor` defaults to the logged-in user; `target` may be a model instance.

    Inside a unit of work (after database.begin_write()) the entry joins its changes and, with commit=True, commits
    them together. With nothing of the caller's to commit (a read of patient data, a refused request) the entry is a
    unit of work of its own. A change made without begin_write() cannot get its entry: that raises."""
    session = db.session
    values = _entry_values(action, _who(actor), target=target, target_type=target_type, target_id=target_id,
                           result=result, data=data)
    if database.is_write_locked(session):
        entry = _append(session.connection(), values)
        if commit:
            session.commit()
        return entry
    if database.has_changes(session):
        raise database.UnitOfWorkError("changes made without begin_write() cannot be committed with their entry")
    with database.separate_write() as connection:
        return _append(connection, values)


def record_many(entries, *, actor=None, first=None) -> list[dict]:
    """Append `entries` in order inside the caller's unit of work (after begin_write(); commits nothing): one read of
    the chain's tail, the hashes chained in memory, one insert (nanbyo.bulk). For a change of many rows at once (a
    user data file import), where record() per row would read the tail once per row.

    entries: dicts of record()'s keyword arguments action, target, target_type, target_id, result and data. They share
    `actor` (default: the logged-in user), the address and the time. first: (table, rows), the change's own rows,
    inserted before the entries with one statement (nanbyo.bulk), the entries' hashes chained while the database
    takes them. Returns the entries' rows inserted (columns by name)."""
    session = db.session
    if not database.is_write_locked(session):
        raise database.UnitOfWorkError("record_many() joins a unit of work: begin_write() must come first")
    who = _who(actor)
    rows = [_entry_values(who=who, **entry) for entry in entries]
    connection = session.connection()
    tail = _tail(connection) if rows else None

    def chain():  # no database here: it may run while the connection is busy with `first`
        seq, prev_hash = tail
        for values in rows:
            seq += 1
            values.update(seq=seq, prev_hash=prev_hash)
            values["entry_hash"] = prev_hash = _hash(values)

    if first is not None:
        bulk.insert_rows(connection, *first, meanwhile=chain if rows else None)
    elif rows:
        chain()
    if rows:
        bulk.insert_rows(connection, OperationLog.__table__, rows)  # a statement, not one per entry
    return rows


VERIFY_BATCH = 10_000  # entries read per statement: memory stays flat at any length of the log
MAX_PROBLEMS = 100  # problems kept by a check; the rest are counted


def entries_after(connection, seq, batch_size=VERIFY_BATCH, until=None):
    """The entries after `seq` (up to `until`), in chain order, as mappings of their columns: read by seq ranges
    along the seq index (keyset), never all at once."""
    table = OperationLog.__table__
    columns = [table.c[name] for name in ("id", *HASHED_COLUMNS, "entry_hash")]
    while True:
        statement = select(*columns).where(table.c.seq > seq).order_by(table.c.seq).limit(batch_size)
        if until is not None:
            statement = statement.where(table.c.seq <= until)
        rows = connection.execute(statement).mappings().all()
        if not rows:
            return
        yield from rows
        seq = rows[-1]["seq"]


class ChainCheck:
    """Entries handed in chain order, checked against the chain from (seq, entry_hash): numbering, links and
    hashes. `problems` keeps the first MAX_PROBLEMS, `more` counts the rest."""

    def __init__(self, seq=0, entry_hash=GENESIS):
        self.seq, self.entry_hash = seq, entry_hash
        self.entries, self.problems, self.more = 0, [], 0

    def _problem(self, text):
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.more += 1

    def add(self, entry):
        """entry: the columns of one entry by name (HASHED_COLUMNS, id and entry_hash)."""
        seq, id_ = entry["seq"], entry["id"]
        if seq != self.seq + 1:
            self._problem(f"エントリ seq={self.seq + 1}〜{seq - 1} が削除されています（id={id_} の直前）")
        if entry["prev_hash"] != self.entry_hash:
            self._problem(f"エントリ seq={seq} (id={id_}) の前エントリハッシュが一致しません（直前のエントリが改ざんまたは"
                          "削除されています）")
        if _hash(entry) != entry["entry_hash"]:
            self._problem(f"エントリ seq={seq} (id={id_}) の内容がハッシュと一致しません（改ざん）")
        self.seq, self.entry_hash = seq, entry["entry_hash"]
        self.entries += 1

    @property
    def intact(self):
        return not self.problems


def verify(session=None, start=(0, GENESIS)):
    """Walk the chain from `start` (seq, entry_hash: the beginning, or a checkpoint) to the tail, in batches.
    Returns (problems, last seq, last hash); problems is empty when the chain is intact. See nanbyo.audit_chain."""
    connection = (session or db.session).connection()
    check = ChainCheck(*start)
    for entry in entries_after(connection, start[0]):
        check.add(entry)
    problems = check.problems + ([f"ほか {check.more} 件の問題"] if check.more else [])
    return problems, check.seq, check.entry_hash
