"""XML import jobs: an upload larger than NANBYO_XML_INLINE_BYTES is imported by the task queue (nanbyo.tasks).

- create(): the job, its uploaded files (encrypted with the data keys, random names, in the file store's "imports"
  area: NANBYO_IMPORT_DIR or object storage, so that the consumer may run on another machine) and its
  log entry ("document_import_job"), committed together before the task is queued;
- run(): the task. The owner must still be active and allowed to import at the job's institution; then the importer
  runs exactly as in a request (nanbyo.xmlio.importer), the job's progress kept current (files, documents), and the
  report kept encrypted on the job. The uploaded files are deleted when the job ends, whatever its end;
- fail_stalled(): a running job whose worker stopped (killed, the machine restarted) says 失敗 after STALLED_AFTER
  without progress. What it committed stays (the importer commits documents in groups), and importing the files
  again updates those drafts instead of adding new ones. An all-or-nothing job writes its progress only at the end (its one
  unit of work holds the write lock), so it is given ALL_OR_NOTHING_STALLED_AFTER;
- delete_expired(): jobs past expires_at (their reports), and files no job names.
"""
import secrets
import time
from dataclasses import asdict
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, or_, select

from models._types import utcnow
from models.exports import JOB_DONE, JOB_FAILED, JOB_RUNNING, JOB_WAITING
from models.xml_imports import XmlImportJob
from nanbyo import access, audit, crypto, database, files
from nanbyo.extensions import db
from nanbyo.roles import DESIGNATED_DOCTOR, INSTITUTION_STAFF
from nanbyo.xmlio import check, importer

PROGRESS_EVERY = 1.0  # seconds between progress updates
STALLED_AFTER = timedelta(minutes=5)
ALL_OR_NOTHING_STALLED_AFTER = timedelta(hours=2)
FAILED = "取込の途中で問題が起きたため、止めました。取り込めた書類は取り込まれています。同じファイルをもう一度取り込むと、残りを取り込みます（取り込めた書類は重なりません）。"
STALLED = "取込が途中で止まりました。同じファイルをもう一度取り込んでください（取り込めた書類は重なりません）。"
DENIED = "取込を始めるときに確認したところ、このアカウントではこの医療機関に取り込めなくなっていたため、取り込みませんでした。"
DENIED_PAPER = "取込を始めるときに確認したところ、このアカウントでは紙の書類のデータを取り込めなくなっていたため、取り込みませんでした。"
IMPORTERS = (DESIGNATED_DOCTOR, INSTITUTION_STAFF)


class JobGone(Exception):
    """The job's row was deleted, or the job given up as stalled, while it ran."""


def import_store():
    return files.store("imports")


def _aad(job_id, stored_name) -> bytes:
    return f"xml_import_job:{job_id}:{stored_name}".encode()


def may_import(user, institution_id=None) -> bool:
    """The one rule of who imports XML: an active designated doctor or institution staff member whose role may
    create documents, into an institution of theirs (`institution_id`, or any when None)."""
    if user is None or not user.is_active or user.role not in IMPORTERS or not access.allowed(
            user, "documents", "create"):
        return False
    institutions = {m.institution_id for m in user.memberships}
    return bool(institutions) if institution_id is None else institution_id in institutions


def may_import_paper(user) -> bool:
    """The one rule of who imports the contractor's data of paper forms: an active operator account."""
    return user is not None and user.is_active and access.allowed(user, "paper_import", "use")


def create(owner, institution, uploads, all_or_nothing) -> XmlImportJob:
    """Record the job with its files and its log entry, committed together (nothing is queued yet). `institution`
    None: the contractor's data of paper forms."""
    database.begin_write()
    now = utcnow()
    job = XmlImportJob(owner_id=owner.id, institution_id=institution.id if institution is not None else None,
                       all_or_nothing=all_or_nothing,
                       status=JOB_WAITING, files=[], counts={}, created_at=now,
                       expires_at=now + current_app.config["NANBYO_IMPORT_KEEP"])
    db.session.add(job)
    db.session.flush()
    store = import_store()
    ring, stored = crypto.keyring(), []
    try:
        for name, data in uploads:
            stored_name = secrets.token_hex(16)
            store.put(stored_name, ring.encrypt(data, _aad(job.id, stored_name)))
            stored.append([name, stored_name, len(data)])
        job.files = stored
        audit.record("document_import_job", target=job, actor=owner, data={
            "files": [name for name, _stored, _size in stored][:50],
            **({"institution": institution.code} if institution is not None else {"paper": True}),
            "bytes": sum(size for _name, _stored, size in stored), "all_or_nothing": all_or_nothing})
    except BaseException:
        db.session.rollback()
        store.discard(*(stored_name for _name, stored_name, _size in stored))
        raise
    return job


def reencrypt(ring) -> dict:
    """The files of the jobs waiting or running and every kept report under the ring's active key (the key
    rotation); the files in place, under their names (bound into the ciphertext)."""
    store, counts = import_store(), {"import_files": 0, "import_reports": 0}
    pending = db.session.execute(select(XmlImportJob.id, XmlImportJob.files).where(
        XmlImportJob.status.in_((JOB_WAITING, JOB_RUNNING)))).all()
    db.session.rollback()
    for job_id, stored in pending:
        for _name, stored_name, _size in stored or ():
            counts["import_files"] += files.reencrypt_stored(store, stored_name, _aad(job_id, stored_name), ring)
    reported = db.session.execute(select(XmlImportJob.id).where(XmlImportJob.report_cipher.is_not(None))).scalars().all()
    for job_id in reported:
        database.begin_write()
        job = db.session.get(XmlImportJob, job_id)
        new = ring.reencrypted(job.report_cipher, _aad(job.id, "report")) if job and job.report_cipher else None
        if new is not None:
            job.report_cipher = new
            counts["import_reports"] += 1
        db.session.commit()
    return counts


def _uploads(job):
    """(name, bytes) of the job's files, each decrypted as it is reached."""
    ring, store = crypto.keyring(), import_store()
    for name, stored_name, _size in job.files:
        yield name, ring.decrypt(store.read(stored_name), _aad(job.id, stored_name))


def not_queued(job_id):
    """The queue refused the job (its storage is down): say so rather than leave it 待機中."""
    _finish(job_id, [], message=FAILED)


def _update(job_id, **values):
    database.begin_write()
    job = db.session.get(XmlImportJob, job_id)
    if job is None or job.status == JOB_FAILED:
        db.session.rollback()
        raise JobGone(job_id)
    for name, value in values.items():
        setattr(job, name, value)
    job.progress_at = utcnow()
    db.session.commit()


def _finish(job_id, outcomes, message=""):
    """The job's end: its report (encrypted) and counts, its files deleted; 失敗 with `message` when given. False
    when the job is gone or already ended."""
    database.begin_write()
    job = db.session.get(XmlImportJob, job_id)
    if job is None or job.status in (JOB_DONE, JOB_FAILED):
        db.session.rollback()
        return False
    now = utcnow()
    job.status, job.error, job.finished_at, job.progress_at = (JOB_FAILED if message else JOB_DONE), message, now, now
    job.counts = importer.counts(outcomes)
    job.documents_done = importer.documents_in(outcomes)
    job.report_cipher = crypto.keyring().encrypt_json([asdict(o) for o in outcomes], _aad(job.id, "report"))
    job.expires_at = now + current_app.config["NANBYO_IMPORT_KEEP"]
    uploaded = [stored_name for _name, stored_name, _size in job.files]
    if message:
        audit.record("document_import_job_failed", target=job, actor=job.owner, result="failure",
                     data={"error": message[:100]} | job.counts)
    else:
        db.session.commit()
    import_store().discard(*uploaded)  # any left: delete_expired() takes them with the job
    return True


def report(job) -> list[importer.Outcome]:
    """The outcomes of a finished job, as the import screen lists them."""
    if job.report_cipher is None:
        return []
    return [importer.Outcome(**o) for o in crypto.keyring().decrypt_json(job.report_cipher, _aad(job.id, "report"))]


def run(job_id):
    """The task: import the job's files, or say on the job why not. Runs in an app context of its own."""
    job = db.session.get(XmlImportJob, job_id)
    if job is None or job.status != JOB_WAITING:
        return  # deleted meanwhile, or already run
    owner, institution = job.owner, job.institution
    if not (may_import(owner, job.institution_id) if institution is not None else may_import_paper(owner)):
        db.session.rollback()
        _finish(job_id, [], message=DENIED if institution is not None else DENIED_PAPER)
        return
    outcomes = []
    try:
        total = sum(check.upload_file_count(data) for _name, data in _uploads(job))
        _update(job_id, status=JOB_RUNNING, started_at=utcnow(), files_total=total)
        progress = None if job.all_or_nothing else _Progress(job_id)
        outcomes = importer.import_uploads(_uploads(job), owner, institution, all_or_nothing=job.all_or_nothing,
                                           progress=progress, collect=outcomes, check_aside=True)
        _finish(job_id, outcomes)
    except JobGone:
        db.session.rollback()
    except Exception:
        current_app.logger.exception("XML import job %s failed", job_id)
        db.session.rollback()
        _finish(job_id, outcomes, message=FAILED)


class _Progress:
    """importer.import_uploads's progress: the job's counts kept current every PROGRESS_EVERY s."""

    def __init__(self, job_id):
        self.job_id, self.reported = job_id, time.monotonic()

    def __call__(self, files_done, outcomes):
        if time.monotonic() - self.reported >= PROGRESS_EVERY:
            _update(self.job_id, files_done=files_done, documents_done=importer.documents_in(outcomes),
                    counts=importer.counts(outcomes))
            self.reported = time.monotonic()


def fail_stalled(owner_id=None, now=None):
    """Running jobs (of `owner_id`, or all) silent for longer than they may be become 失敗. Returns their ids."""
    now = now or utcnow()
    last_sign = func.coalesce(XmlImportJob.progress_at, XmlImportJob.started_at, XmlImportJob.created_at)
    silent = select(XmlImportJob.id).where(XmlImportJob.status == JOB_RUNNING, or_(
        (XmlImportJob.all_or_nothing.is_(False)) & (last_sign < now - STALLED_AFTER),
        last_sign < now - ALL_OR_NOTHING_STALLED_AFTER))
    if owner_id is not None:
        silent = silent.where(XmlImportJob.owner_id == owner_id)
    stalled = [job_id for job_id in db.session.execute(silent).scalars().all() if _finish(job_id, [], STALLED)]
    db.session.rollback()
    return stalled


def delete_expired(now=None):
    """Delete the jobs past their expiry (with their reports and any files left), and files no job names that are
    older than the keep time. Returns the ids of the deleted jobs."""
    now = now or utcnow()
    store = import_store()
    database.begin_write()
    expired = db.session.execute(select(XmlImportJob.id, XmlImportJob.files)
                                 .where(XmlImportJob.expires_at <= now)).all()
    if expired:
        ids = [job_id for job_id, _files in expired]
        db.session.execute(delete(XmlImportJob).where(XmlImportJob.id.in_(ids)))
        audit.record("document_import_job_expire", target_type="xml_import_job", data={"jobs": ids})
        store.remove(*(stored for _id, job_files in expired for _name, stored, _size in job_files))
    else:
        db.session.rollback()
    named = {stored for job_files in db.session.execute(select(XmlImportJob.files)).scalars()
             for _name, stored, _size in job_files}
    store.remove_strays(named, before=now - current_app.config["NANBYO_IMPORT_KEEP"])
    return [job_id for job_id, _files in expired]
