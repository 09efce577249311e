"""The operation log's chain over time: signed checkpoints, incremental verification and archives.

A checkpoint (models.audit.AuditCheckpoint) is a point of the chain, (seq, entry_hash), signed with the instance's
Ed25519 key:
- "verify": `nanbyo audit-verify` got this far and found the chain intact (or broken, with the first problem). The
  next run starts there: it checks that the checkpoint's entry is still there with that hash, then reads only the
  entries after it, in batches (nanbyo.audit.entries_after). `--full` starts from the beginning again.
- "archive": `nanbyo audit-archive` moved the entries up to here into a file; the table's chain continues from this
  entry's hash instead of GENESIS. The database lets a DELETE through only for entries at or before it (migration
  0019), and the archive writes it first.

Why Ed25519 and not an HMAC: an archive is kept away from the server and checked by others (an auditor, the
operator's successor). With an HMAC, whoever can check an archive holds the key that forges one; with Ed25519 they
need only the public key (instance/audit-signing.pub, printed by the commands), and the private key never leaves
instance/ (mode 0600, like data-keys.json). Someone with database access alone cannot write a checkpoint that passes:
so a forged checkpoint cannot hide tampered entries behind it, and a forged anchor cannot cover deleted ones.
"""
import base64
import gzip
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app
from sqlalchemy import delete, select

from models._types import JST, utcnow
from models.audit import AuditCheckpoint, OperationLog
from nanbyo import audit, database, files
from nanbyo.config import create_once
from nanbyo.extensions import db

VERIFY, ARCHIVE = "verify", "archive"
INTACT, BROKEN = "intact", "broken"
ARCHIVE_FORMAT = "nanbyo-operation-log-archive/1"
MANIFEST_SUFFIX, DATA_SUFFIX = ".manifest.json", ".jsonl.gz"
# What a checkpoint's signature covers: every column but id and the signature.
SIGNED_COLUMNS = ("kind", "seq", "entry_hash", "created_at", "result", "problem", "entries", "archive_file",
                  "archive_sha256")


# --- the signing key ------------------------------------------------------------------------------------------------

def key_path(app=None) -> Path:
    app = app or current_app
    return Path(app.config.get("NANBYO_AUDIT_SIGNING_KEY_FILE") or Path(app.instance_path) / "audit-signing.key")


def signing_key(app=None) -> Ed25519PrivateKey:
    """The instance's private key, created on first use (mode 0600), with its public key beside it (.pub)."""
    path = key_path(app)
    if path.exists():
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    new = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    key = serialization.load_pem_private_key(create_once(path, new), password=None)  # the first one made
    path.with_suffix(".pub").write_bytes(public_pem(key.public_key()))
    return key


def public_key(app=None) -> Ed25519PublicKey | None:
    """The instance's public key; None before anything was signed (a screen never creates the key)."""
    return signing_key(app).public_key() if key_path(app).exists() else None


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path) -> Ed25519PublicKey:
    return serialization.load_pem_public_key(Path(path).read_bytes())


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _canonical(values: dict) -> bytes:
    return json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _sign(payload: dict) -> str:
    return base64.b64encode(signing_key().sign(_canonical(payload))).decode()


def _signature_holds(public: Ed25519PublicKey, payload: dict, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature, validate=True), _canonical(payload))
        return True
    except (InvalidSignature, ValueError):
        return False


# --- checkpoints ----------------------------------------------------------------------------------------------------

def _checkpoint_payload(checkpoint: AuditCheckpoint) -> dict:
    values = {name: getattr(checkpoint, name) for name in SIGNED_COLUMNS}
    values["created_at"] = checkpoint.created_at.astimezone(timezone.utc).isoformat(timespec="microseconds")
    return values


def new_checkpoint(**values) -> AuditCheckpoint:
    defaults = dict(created_at=utcnow(), problem="", entries=0, archive_file="", archive_sha256="")
    checkpoint = AuditCheckpoint(**(defaults | values))
    checkpoint.signature = _sign(_checkpoint_payload(checkpoint))
    return checkpoint


def is_signed(checkpoint: AuditCheckpoint) -> bool:
    public = public_key()
    return public is not None and _signature_holds(public, _checkpoint_payload(checkpoint), checkpoint.signature)


def _checkpoints(session, kind, result=None):
    """The checkpoints of a kind, the furthest first (the newest among equals)."""
    statement = select(AuditCheckpoint).where(AuditCheckpoint.kind == kind)
    if result:
        statement = statement.where(AuditCheckpoint.result == result)
    return session.execute(statement.order_by(AuditCheckpoint.seq.desc(), AuditCheckpoint.id.desc())).scalars()


def archive_anchor(session=None) -> AuditCheckpoint | None:
    """Where the table's chain starts: the newest archive checkpoint (None: at GENESIS)."""
    return (session or db.session).execute(
        select(AuditCheckpoint).where(AuditCheckpoint.kind == ARCHIVE)
        .order_by(AuditCheckpoint.seq.desc()).limit(1)).scalar_one_or_none()


def _tail_seq(session) -> int | None:
    return session.execute(select(OperationLog.seq).order_by(OperationLog.seq.desc()).limit(1)).scalar()


@dataclass
class ChainState:
    """What the log screen says about the chain."""
    last_seq: int  # the newest entry's number: how many entries the log has had
    archived_seq: int  # entries up to this number are in archive files
    last_check: AuditCheckpoint | None  # the newest audit-verify run
    last_check_signed: bool

    @property
    def unverified(self) -> int:
        return max(0, self.last_seq - (self.last_check.seq if self.last_check else self.archived_seq))


def chain_state(session=None) -> ChainState:
    """Two index reads and a signature check: cheap at any length of the log."""
    session = session or db.session
    anchor = archive_anchor(session)
    archived = anchor.seq if anchor else 0
    last_check = session.execute(select(AuditCheckpoint).where(AuditCheckpoint.kind == VERIFY)
                                 .order_by(AuditCheckpoint.id.desc()).limit(1)).scalar_one_or_none()
    return ChainState(last_seq=_tail_seq(session) or archived, archived_seq=archived, last_check=last_check,
                      last_check_signed=last_check is not None and is_signed(last_check))


# --- verification ---------------------------------------------------------------------------------------------------

@dataclass
class Verification:
    checkpoint: AuditCheckpoint  # the one this run recorded
    problems: list[str]
    start_seq: int  # the run read the entries after this one

    @property
    def intact(self):
        return not self.problems


def _start(session, full, problems) -> tuple[int, str]:
    """(seq, entry_hash) to read on from: the archive anchor (or GENESIS), or with `full` False the furthest intact,
    signed verify checkpoint after it whose entry is still there, unchanged."""
    anchor = archive_anchor(session)
    start = (0, audit.GENESIS)
    if anchor is not None:
        if not is_signed(anchor):
            problems.append(f"アーカイブの記録（seq={anchor.seq} まで）の署名が一致しません（改ざん）")
        start = (anchor.seq, anchor.entry_hash)
    if full:
        return start
    for checkpoint in _checkpoints(session, VERIFY, INTACT):
        if checkpoint.seq <= start[0]:
            break
        if not is_signed(checkpoint):
            problems.append(f"検証の記録（id={checkpoint.id}, seq={checkpoint.seq} まで）の署名が一致しません（改ざん）")
            continue
        columns = [OperationLog.__table__.c[name] for name in ("id", *audit.HASHED_COLUMNS, "entry_hash")]
        entry = session.execute(select(*columns).where(OperationLog.seq == checkpoint.seq)).mappings().first()
        if entry is None:
            problems.append(f"検証済みのエントリ seq={checkpoint.seq} がありません（削除）")
        elif entry["entry_hash"] != checkpoint.entry_hash or audit._hash(entry) != checkpoint.entry_hash:
            problems.append(f"検証済みのエントリ seq={checkpoint.seq} (id={entry['id']}) が検証の後に変わっています（改ざん）")
        else:
            return checkpoint.seq, checkpoint.entry_hash
        return start  # read everything again: the rest of the problems, and the real tail
    return start


def verify_chain(full=False, session=None, batch_size=audit.VERIFY_BATCH) -> Verification:
    """audit-verify: check the chain from the start `_start` chooses to the tail, in batches of `batch_size` (constant
    memory), and record the result as a new signed checkpoint (committed)."""
    session = session or db.session
    problems = []
    start = _start(session, full, problems)
    check = audit.ChainCheck(*start)
    for entry in audit.entries_after(session.connection(), start[0], batch_size):
        check.add(entry)
    problems += check.problems + ([f"ほか {check.more} 件の問題"] if check.more else [])
    session.rollback()  # end the reading transaction: the checkpoint is a unit of work of its own
    database.begin_write(session)
    checkpoint = new_checkpoint(kind=VERIFY, seq=check.seq, entry_hash=check.entry_hash,
                                result=BROKEN if problems else INTACT, problem=problems[0] if problems else "",
                                entries=check.entries)
    session.add(checkpoint)
    session.commit()
    return Verification(checkpoint, problems, start[0])


# --- archives -------------------------------------------------------------------------------------------------------

class ArchiveRefused(Exception):
    """The archive was not made; nothing changed (Japanese message)."""


@dataclass
class Archive:
    manifest_path: Path
    data_path: Path
    manifest: dict


def _cut_seq(session, before: date, tail: int) -> int:
    """The last entry to archive: the one before the first entry (in time) on or after `before` 00:00 JST, or the
    tail. The archive is a prefix of the chain, so entries written at the same instant around midnight stay in
    chain order."""
    cutoff = datetime.combine(before, time(), JST)
    first_kept = session.execute(select(OperationLog.seq).where(OperationLog.created_at >= cutoff)
                                 .order_by(OperationLog.created_at, OperationLog.id).limit(1)).scalar()
    return tail if first_kept is None else first_kept - 1


def _entry_line(entry) -> bytes:
    values = {name: entry[name] for name in ("id", *audit.HASHED_COLUMNS, "entry_hash")}
    values["created_at"] = entry["created_at"].astimezone(timezone.utc).isoformat(timespec="microseconds")
    return _canonical(values) + b"\n"


def archive(before: date, directory, session=None, batch_size=audit.VERIFY_BATCH) -> Archive | None:
    """Move the entries before `before` (JST) to a signed archive in `directory`: a gzip of JSON lines (every hashed
    column, id and entry_hash, in chain order) and a manifest (first/last seq, first prev_hash, last entry_hash,
    count, the file's SHA-256, the signature). None when there is nothing to archive.

    The file is written first, without the write lock (archived entries never change); then in one unit of work: the
    archive checkpoint, the audit_archive entry, and the delete of the archived entries (the one path that deletes
    log entries: a Core DELETE the database lets through only up to the checkpoint just written)."""
    session = session or db.session
    anchor = archive_anchor(session)
    if anchor is not None and not is_signed(anchor):
        raise ArchiveRefused("前回のアーカイブの記録の署名が一致しません。audit-verify で確認してください。")
    start_seq, start_hash = (anchor.seq, anchor.entry_hash) if anchor else (0, audit.GENESIS)
    tail = _tail_seq(session)
    if tail is None:
        return None
    cut = _cut_seq(session, before, tail)
    if cut <= start_seq:
        return None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"operation-log-{start_seq + 1:012d}-{cut:012d}"
    data_path, manifest_path = directory / (stem + DATA_SUFFIX), directory / (stem + MANIFEST_SUFFIX)
    if data_path.exists() or manifest_path.exists():
        raise ArchiveRefused(f"{data_path.name} は既にあります。別のディレクトリを指定してください。")
    check = audit.ChainCheck(start_seq, start_hash)
    try:
        with gzip.open(data_path, "wb") as out:
            for entry in audit.entries_after(session.connection(), start_seq, batch_size, until=cut):
                check.add(entry)
                out.write(_entry_line(entry))
        if not check.intact or check.seq != cut:
            raise ArchiveRefused("アーカイブする範囲のハッシュチェーンに問題があります（audit-verify で確認してください）: "
                                 + (check.problems[0] if check.problems else f"seq={cut} までのエントリがありません"))
        public = signing_key().public_key()
        manifest = {"format": ARCHIVE_FORMAT, "file": data_path.name, "file_sha256": files.sha256_of(data_path),
                    "first_seq": start_seq + 1, "last_seq": cut, "count": check.entries,
                    "first_prev_hash": start_hash, "last_entry_hash": check.entry_hash,
                    "before": before.isoformat(), "created_at": utcnow().isoformat(timespec="seconds"),
                    "key_id": key_id(public)}
        manifest["signature"] = _sign(manifest)
        manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        session.rollback()
        database.begin_write(session)
        current = archive_anchor(session)
        if (current.seq if current else 0) != start_seq:
            raise ArchiveRefused("ほかのアーカイブが同時に行われました。もう一度実行してください。")
        session.add(new_checkpoint(kind=ARCHIVE, seq=cut, entry_hash=check.entry_hash, result=INTACT,
                                   entries=check.entries, archive_file=data_path.name,
                                   archive_sha256=manifest["file_sha256"]))
        session.flush()
        # The entry first: it extends the chain from the tail, which is still in the table.
        audit.record("audit_archive", target_type="operation_log", commit=False,
                     data={"before": before.isoformat(), "first_seq": start_seq + 1, "last_seq": cut,
                           "rows": check.entries, "file": data_path.name, "file_sha256": manifest["file_sha256"]})
        table = OperationLog.__table__
        session.execute(delete(table).where(table.c.seq > start_seq, table.c.seq <= cut))
        session.commit()
    except BaseException:
        session.rollback()
        data_path.unlink(missing_ok=True)
        manifest_path.unlink(missing_ok=True)
        raise
    return Archive(manifest_path, data_path, manifest)


def _archive_paths(path) -> tuple[Path, Path]:
    """(manifest, data file) from either of them."""
    path = Path(path)
    name = path.name
    for suffix in (MANIFEST_SUFFIX, DATA_SUFFIX):
        if name.endswith(suffix):
            stem = path.with_name(name[: -len(suffix)])
            return stem.with_name(stem.name + MANIFEST_SUFFIX), stem.with_name(stem.name + DATA_SUFFIX)
    raise ArchiveRefused(f"{name}: アーカイブのファイル（*{DATA_SUFFIX} または *{MANIFEST_SUFFIX}）ではありません。")


def _archived_entry(line: bytes) -> dict:
    entry = json.loads(line)
    entry["created_at"] = datetime.fromisoformat(entry["created_at"])
    return entry


def verify_archive(path, public: Ed25519PublicKey | None = None, session=None) -> tuple[dict, list[str]]:
    """Check an archive: the manifest's signature, the file's SHA-256, every entry's hash and link, the manifest's
    figures, and — with this server's database — that it links to its archive checkpoints and to the entry after it.
    Returns (manifest, problems)."""
    manifest_path, data_path = _archive_paths(path)
    problems = []
    try:
        manifest = json.loads(manifest_path.read_text())
        payload = {k: v for k, v in manifest.items() if k != "signature"}
        first_seq, last_seq = int(manifest["first_seq"]), int(manifest["last_seq"])
        first_prev, last_hash = manifest["first_prev_hash"], manifest["last_entry_hash"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return {}, [f"マニフェスト {manifest_path.name} を読めません: {e}"]
    public = public or public_key()
    if public is None or not _signature_holds(public, payload, str(manifest.get("signature", ""))):
        problems.append("マニフェストの署名が一致しません（改ざん、または別の鍵の署名）")
    if not data_path.exists():
        return manifest, problems + [f"{data_path.name} がありません"]
    if files.sha256_of(data_path) != manifest.get("file_sha256"):
        problems.append(f"{data_path.name} の SHA-256 がマニフェストと一致しません（改ざん）")
    check = audit.ChainCheck(first_seq - 1, first_prev)
    try:
        with gzip.open(data_path, "rb") as lines:
            for line in lines:
                check.add(_archived_entry(line))
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
        problems.append(f"{data_path.name} を最後まで読めません（{check.seq} 番まで読みました）: {e}")
    problems += check.problems + ([f"ほか {check.more} 件の問題"] if check.more else [])
    if (check.seq, check.entry_hash, check.entries) != (last_seq, last_hash, manifest.get("count")):
        problems.append(f"ファイルの内容（seq={check.seq} まで {check.entries} 件）がマニフェスト（seq={last_seq} まで "
                        f"{manifest.get('count')} 件）と一致しません")
    if first_seq == 1 and first_prev != audit.GENESIS:
        problems.append("最初のエントリの前エントリハッシュが GENESIS ではありません")
    if session is not None:
        problems += _links_to_database(session, first_seq, first_prev, last_seq, last_hash)
    return manifest, problems


def _links_to_database(session, first_seq, first_prev, last_seq, last_hash) -> list[str]:
    anchors = {c.seq: c for c in _checkpoints(session, ARCHIVE) if c.seq in (first_seq - 1, last_seq)}
    problems = []
    mine = anchors.get(last_seq)
    if mine is None or mine.entry_hash != last_hash or not is_signed(mine):
        problems.append(f"このデータベースのアーカイブの記録（seq={last_seq} まで）と一致しません")
    if first_seq > 1:
        before = anchors.get(first_seq - 1)
        if before is None or before.entry_hash != first_prev:
            problems.append(f"前のアーカイブ（seq={first_seq - 1} まで）につながりません")
    following = session.execute(select(OperationLog.prev_hash).where(OperationLog.seq == last_seq + 1)).scalar()
    if following is not None and following != last_hash:
        problems.append(f"操作ログの seq={last_seq + 1} がこのアーカイブの最後のエントリにつながりません")
    return problems
