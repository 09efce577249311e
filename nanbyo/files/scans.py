"""Scans of paper forms (issue 13): the municipality uploads, the operator downloads them for its contractor or
sends one back with a reason.

A scan is PDF, TIFF, JPEG or PNG, known by its first bytes (and named with a matching extension); a file that also
reads as markup in its first KB (an HTML or SVG polyglot) is refused. The bytes are stored encrypted with the data
keys (AES-GCM, the scan's random stored name as associated data) in the file store's "scans" area
(nanbyo.files.storage: NANBYO_SCAN_DIR outside the web root, or object storage), under that random name; the name
the municipality gave is only shown. Every upload, download, send-back and deletion is logged, committed with its
change. Who sees which scan is access.row_filter's (a municipality its own, the operator all).
"""
import hashlib
import os
import re
import secrets
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

from flask import current_app
from sqlalchemy import select

from models._types import utcnow
from models.scans import SCAN_DOWNLOADED, SCAN_RETURNED, SCAN_WAITING, ScanFile
from nanbyo import access, audit, crypto, database, files
from nanbyo.document_codes import APPLICATION_KINDS, KIND_LABELS, application_kind_label
from nanbyo.extensions import db

MAX_FILES = 20  # per upload
EXTENSIONS = {".pdf": "pdf", ".tif": "tiff", ".tiff": "tiff", ".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}
MAGIC = (("pdf", (b"%PDF-",)), ("tiff", (b"II*\x00", b"MM\x00*")), ("jpeg", (b"\xff\xd8\xff",)),
         ("png", (b"\x89PNG\r\n\x1a\n",)))
MARKUP = re.compile(rb"<\s*(html|script|svg|body|iframe|!doctype)", re.I)
DELETABLE = (SCAN_WAITING, SCAN_RETURNED)  # the operator has not taken it (or sent it back)


def scan_store():
    return files.store("scans")


def max_bytes() -> int:
    return current_app.config["NANBYO_SCAN_MAX_BYTES"]


def shown_name(name: str) -> str:
    """The file's own name without any folder (either kind of slash), control characters or NUL: for display."""
    name = PureWindowsPath(PurePosixPath(name or "").name).name
    name = "".join(c for c in unicodedata.normalize("NFC", name) if unicodedata.category(c)[0] != "C")
    return name.strip()[-200:] or "scan"


def file_type(name: str, data: bytes) -> tuple[str | None, str | None]:
    """(type, None) of a scan's bytes, or (None, why not) in Japanese."""
    extension = os.path.splitext(shown_name(name))[1].lower()
    if extension not in EXTENSIONS:
        return None, "PDF・TIFF・JPEG・PNG のファイル（拡張子 .pdf .tif .tiff .jpg .jpeg .png）を選んでください。"
    found = next((kind for kind, magics in MAGIC if data.startswith(magics)), None)
    if found is None:
        return None, "ファイルの中身が PDF・TIFF・JPEG・PNG ではありません。"
    if found != EXTENSIONS[extension]:
        return None, f"拡張子（{extension}）と中身（{found.upper()}）が違います。"
    if MARKUP.search(data[:1024]):
        return None, "ファイルの先頭に HTML・SVG などの記述があります。スキャナで作ったファイルを選んでください。"
    return found, None


def meta_problems(meta: dict) -> list[str]:
    problems = []
    kind, application_kind = meta.get("kind"), meta.get("application_kind")
    if kind not in KIND_LABELS:
        problems.append("書類の種類を選んでください。")
    elif application_kind not in APPLICATION_KINDS[kind]:
        allowed = "・".join(application_kind_label(kind, k) for k in APPLICATION_KINDS[kind])
        problems.append(f"{KIND_LABELS[kind]}の申請区分は {allowed} のいずれかです。")
    if not meta.get("reception_no"):
        problems.append("受付番号を入力してください。")
    for key, label, limit in (("reception_no", "受付番号", 30), ("disease_code", "疾病", 20), ("reference", "自治体の整理番号", 100)):
        if len(meta.get(key) or "") > limit:
            problems.append(f"{label}は{limit}文字以内で入力してください。")
    return problems


def upload(user, uploads, meta) -> tuple[list[ScanFile], list[str]]:
    """Store every file of `uploads` ([(name, bytes)]) with `meta` for the user's municipality: all, or none when any
    is refused (the problems say which). One unit of work with a log entry per scan."""
    problems = meta_problems(meta)
    if not uploads:
        problems.append("ファイルを選んでください。")
    if len(uploads) > MAX_FILES:
        problems.append(f"一度に送れるファイルは {MAX_FILES} 件までです。")
    typed = []
    for name, data in uploads[:MAX_FILES]:
        if len(data) > max_bytes():
            problems.append(f"{shown_name(name)}: ファイルが大きすぎます（1ファイル {max_bytes() // (1024 * 1024)}MB まで）。")
            continue
        if not data:
            problems.append(f"{shown_name(name)}: ファイルが空です。")
            continue
        kind, problem = file_type(name, data)
        if problem:
            problems.append(f"{shown_name(name)}: {problem}")
        typed.append((name, data, kind))
    if problems:
        return [], problems
    store = scan_store()
    ring, written, scans = crypto.keyring(), [], []
    database.begin_write()
    try:
        for name, data, kind in typed:
            stored = secrets.token_hex(16)
            store.put(stored, ring.encrypt(data, _aad(stored)))
            written.append(stored)
            scan = ScanFile(municipality_id=user.municipality_id, uploaded_by_id=user.id, uploaded_at=utcnow(),
                            kind=meta["kind"], application_kind=meta["application_kind"],
                            reception_no=meta["reception_no"], disease_code=meta.get("disease_code") or "",
                            reference=meta.get("reference") or "", original_name=shown_name(name), file_type=kind,
                            size=len(data), sha256=hashlib.sha256(data).hexdigest(), stored_name=stored,
                            status=SCAN_WAITING)
            db.session.add(scan)
            scans.append(scan)
        db.session.flush()
        audit.record_many([{"action": "scan_upload", "target": scan, "data": {"kind": scan.kind,
                                                                              "reception_no": scan.reception_no,
                                                                              "bytes": scan.size}}
                           for scan in scans], actor=user)
        db.session.commit()
    except BaseException as e:
        db.session.rollback()
        store.discard(*written)
        refusal = files.refusal(e)
        if refusal:
            current_app.logger.error("scan upload refused by the file store %s: %s", store, e)
            return [], [refusal]
        raise
    return scans, []


def _aad(stored_name) -> bytes:
    return f"scan:{stored_name}".encode()


def reencrypt(ring) -> int:
    """Every scan's file under the ring's active key (the key rotation), rewritten in place under its name (bound
    into the ciphertext); scans uploaded meanwhile are met too (by id). The number rewritten."""
    store, last_id, done = scan_store(), 0, 0
    while True:
        rows = db.session.execute(select(ScanFile.id, ScanFile.stored_name).where(ScanFile.id > last_id)
                                  .order_by(ScanFile.id).limit(100)).all()
        db.session.rollback()
        if not rows:
            return done
        for scan_id, stored_name in rows:
            if files.reencrypt_stored(store, stored_name, _aad(stored_name), ring):
                done += 1
                if db.session.execute(select(ScanFile.id).where(ScanFile.id == scan_id)).first() is None:
                    store.discard(stored_name)  # deleted meanwhile: the rewrite must not bring the file back
                db.session.rollback()
        last_id = rows[-1][0]


def content(scan) -> bytes:
    """The scan's bytes (decrypted; the digest checked)."""
    return stored_content(scan.stored_name, scan.sha256)


def stored_content(stored_name, sha256) -> bytes:
    """content() by the stored name and digest alone (a streamed response outlives the request's session)."""
    data = crypto.keyring().decrypt(scan_store().read(stored_name), _aad(stored_name))
    if hashlib.sha256(data).hexdigest() != sha256:
        raise crypto.KeyRingError("スキャンファイルが壊れています。")
    return data


def scoped(user, purpose="read"):
    return select(ScanFile).where(access.row_filter(user, ScanFile, purpose))


def pages_of(user, document_id) -> list[tuple[ScanFile, int, str]]:
    """The scans a document was made of that the user may see: (scan, page count, why it cannot be shown)."""
    from nanbyo.files import scan_pages
    shown = []
    for scan in db.session.execute(scoped(user).where(ScanFile.document_id == document_id)
                                   .order_by(ScanFile.id)).scalars():
        try:
            shown.append((scan, scan_pages.page_count(content(scan), scan.file_type), ""))
        except (scan_pages.ScanPageError, crypto.KeyRingError, OSError) as e:
            shown.append((scan, 0, str(e) if isinstance(e, scan_pages.ScanPageError) else "スキャンファイルを読めません。"))
    return shown


def visible(user, ids) -> list[ScanFile]:
    """The scans of `ids` the user may see (in the order of ids); the others are simply not there."""
    pks = [int(i) for i in ids if str(i).isdigit()]
    found = {s.id: s for s in db.session.execute(scoped(user).where(ScanFile.id.in_(pks))).scalars()}
    return [found[i] for i in dict.fromkeys(pks) if i in found]


def record_downloads(user, scans, how):
    """Each downloaded scan logged (committed) before its bytes are sent; the operator's first download marks it
    ダウンロード済."""
    database.begin_write()  # the scans are read again under the lock
    now, taken = utcnow(), access.allowed(user, "scans", "operate")
    for scan in scans:
        if taken and scan.status == SCAN_WAITING:
            scan.status, scan.downloaded_at = SCAN_DOWNLOADED, now
    audit.record_many([{"action": "scan_download", "target": scan, "data": {"method": how}} for scan in scans],
                      actor=user)
    db.session.commit()


def send_back(user, scan, reason) -> str | None:
    """The operator returns a scan to its municipality with a reason it reads; a problem, or None. A scan that is
    (or is being made) a document is not sent back."""
    if scan.document_id is not None:
        return f"スキャンファイル No.{scan.id} は書類 No.{scan.document_id} になっているため、差し戻せません。"
    reason = " ".join((reason or "").split())
    if not reason:
        return "差戻しの理由を入力してください。"
    if len(reason) > 500:
        return "差戻しの理由は500文字以内で入力してください。"
    database.begin_write()
    scan.status, scan.returned_reason, scan.returned_at = SCAN_RETURNED, reason, utcnow()
    audit.record("scan_return", target=scan, actor=user, data={"reason": reason[:100]})
    return None


def delete(user, scan) -> str | None:
    """The municipality takes back a scan the operator has not taken: row and file go. A problem, or None."""
    database.begin_write()  # the scan is read again under the lock
    if scan.status not in DELETABLE:
        db.session.rollback()
        return "運営主体がダウンロードしたスキャンファイルは削除できません。"
    if scan.document_id is not None:
        db.session.rollback()
        return f"スキャンファイル No.{scan.id} は運営主体が書類 No.{scan.document_id} に入力しているため、削除できません。"
    stored_name = scan.stored_name
    db.session.delete(scan)
    audit.record("scan_delete", target_type="scan_file", target_id=str(scan.id), actor=user,
                 data={"reception_no": scan.reception_no})
    scan_store().discard(stored_name)  # after the commit: the row never names a file that is gone
    return None


