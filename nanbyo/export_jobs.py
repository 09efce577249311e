"""Export jobs: a list export above NANBYO_EXPORT_INLINE_ROWS rows is written to a file by the task queue
(nanbyo.tasks) and downloaded from 出力ファイル by its owner alone.

- create(): the job and its "export" log entry (what was asked), one unit of work, before the task is queued;
- run(): the task. It rebuilds the list as the owner sees it now (the views register that in
  app.extensions[SOURCE_BUILDER]: the owner must still be active and allowed the export), counts and writes the rows
  from one snapshot, keeps rows_written current, and logs the result with the number of rows ("export_file");
- delete_expired(): the periodic clean-up of jobs and files older than NANBYO_EXPORT_KEEP ("export_expire");
- fail_stalled(): a job the writer stopped writing (its worker killed, the machine restarted) says 失敗 after
  STALLED_AFTER without progress, rather than 作成中 until it expires.

The files are kept in the file store's "exports" area (NANBYO_EXPORT_DIR, or object storage: the consumer that writes
a file and the web server that sends it may then be different machines). They carry no patient data (the lists
export none) and are not encrypted by the application.
"""
import secrets
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from models._types import utcnow
from models.exports import JOB_DONE, JOB_FAILED, JOB_RUNNING, JOB_WAITING, ExportJob
from nanbyo import audit, database, exports, files
from nanbyo.extensions import db

SOURCE_BUILDER = "nanbyo_export_source"  # app.extensions key: (job, owner) -> ExportSource, or None if refused
PROGRESS_EVERY = 1.0  # seconds between updates of rows_written
DENIED = "作成時に確認したところ、このアカウントではこの一覧を出力できなくなっていたため、作成しませんでした。"
FAILED = "出力ファイルを作成できませんでした。時間をおいてもう一度出力してください。"
STALLED = "出力ファイルの作成が途中で止まりました。もう一度出力してください。"
# Progress is written every PROGRESS_EVERY s; only the final save of a large xlsx (compressing the sheet) goes a
# minute or so without it.
STALLED_AFTER = timedelta(minutes=5)


class JobGone(Exception):
    """The job's row was deleted while it was written (expired, or its account deleted)."""


def export_store():
    return files.store("exports")


def has_file(job) -> bool:
    """Whether the finished file of `job` is there."""
    return bool(job.file_name) and export_store().exists(job.file_name)


def asked(fmt, query_args) -> dict:
    """What an "export" log entry says was asked: the format, and the list's conditions when there are any."""
    data = {"format": fmt}
    if query_args:
        data["query"] = {name: value for name, value in query_args}
    return data


def create(owner, endpoint, target_type, fmt, query_args) -> ExportJob:
    """Queue nothing yet: record the job and its log entry, committed together."""
    database.begin_write()
    now = utcnow()
    job = ExportJob(owner_id=owner.id, endpoint=endpoint, format=fmt, query_args=[list(p) for p in query_args],
                    status=JOB_WAITING, created_at=now, expires_at=now + current_app.config["NANBYO_EXPORT_KEEP"])
    db.session.add(job)
    db.session.flush()
    audit.record("export", target_type=target_type, data=asked(fmt, query_args) | {"job": job.id})
    return job


def not_queued(job_id, owner):
    """The queue refused the job (its storage is down): say so on the job rather than leave it 待機中."""
    _finish(job_id, owner, result="failure", message=FAILED)


def _update(job_id, **values):
    """A short unit of work on the job's row (status, progress). Raises JobGone when the row is no more, or when
    the job was given up as stalled meanwhile."""
    database.begin_write()
    job = db.session.get(ExportJob, job_id)
    if job is None or job.status == JOB_FAILED:
        db.session.rollback()
        raise JobGone(job_id)
    for name, value in values.items():
        setattr(job, name, value)
    job.progress_at = utcnow()
    db.session.commit()
    return job


def _finish(job_id, owner, *, result, message="", **values):
    """The job's outcome and its log entry, one unit of work. False (nothing written) when the job is gone or was
    already given up."""
    database.begin_write()
    job = db.session.get(ExportJob, job_id)
    if job is None or job.status in (JOB_DONE, JOB_FAILED):
        db.session.rollback()
        return False
    now = utcnow()
    job.status = JOB_DONE if result == "success" else JOB_FAILED
    job.error = message
    job.finished_at = now
    job.expires_at = now + current_app.config["NANBYO_EXPORT_KEEP"]
    for name, value in values.items():
        setattr(job, name, value)
    data = {"format": job.format, "job": job.id}
    if result == "success":
        data["rows"] = job.rows_written
    audit.record("export_file", target=job, actor=owner, result=result, data=data)
    return True


def run(job_id):
    """The task: write the job's file, or say on the job why not. Runs in an app context of its own."""
    job = db.session.get(ExportJob, job_id)
    if job is None or job.status != JOB_WAITING:
        return  # deleted meanwhile, or already run
    owner, fmt = job.owner, job.format
    store = export_store()
    name = f"{secrets.token_hex(16)}.{exports.FORMATS[fmt][1]}"
    try:
        source = current_app.extensions[SOURCE_BUILDER](job, owner)
        if source is None:
            _finish(job_id, owner, result="denied", message=DENIED)
            return
        with exports.Snapshot(db.engine) as snapshot:
            total = snapshot.count(source.statement)
            _update(job_id, status=JOB_RUNNING, started_at=utcnow(), total_rows=total, rows_written=0)
            progress = _Progress(job_id)
            with store.writer(name) as out:  # the file appears whole when this ends, or not at all
                if fmt == "xlsx":
                    exports.write_xlsx(out, source.headers, exports.cell_chunks(source, snapshot, progress.add),
                                       rows=total)
                else:
                    for data in exports.csv_file(fmt, source, snapshot, progress.add):
                        out.write(data)
        if not _finish(job_id, owner, result="success", rows_written=progress.written, file_name=name):
            store.remove(name)  # given up as stalled while the file was being finished
    except JobGone:
        db.session.rollback()
    except Exception:
        current_app.logger.exception("export job %s failed", job_id)
        db.session.rollback()
        store.discard(name)
        _finish(job_id, owner, result="failure", message=FAILED)


class _Progress:
    """The rows of a job counted as they are read, the job's rows_written kept current (every PROGRESS_EVERY s)."""

    def __init__(self, job_id):
        self.job_id, self.written, self.reported = job_id, 0, time.monotonic()

    def add(self, rows):
        self.written += rows
        if time.monotonic() - self.reported >= PROGRESS_EVERY:
            _update(self.job_id, rows_written=self.written)
            self.reported = time.monotonic()


def fail_stalled(owner_id=None, now=None):
    """Running jobs (of `owner_id`, or all) without progress for STALLED_AFTER become 失敗, each with its
    "export_file" failure entry. Returns their ids."""
    now = now or utcnow()
    silent = select(ExportJob.id).where(ExportJob.status == JOB_RUNNING, func.coalesce(
        ExportJob.progress_at, ExportJob.started_at, ExportJob.created_at) < now - STALLED_AFTER)
    if owner_id is not None:
        silent = silent.where(ExportJob.owner_id == owner_id)
    stalled = []
    for job_id in db.session.execute(silent).scalars().all():
        job = db.session.get(ExportJob, job_id)
        if _finish(job_id, job.owner, result="failure", message=STALLED):  # committed with its entry
            stalled.append(job_id)
    db.session.rollback()
    return stalled


def delete_expired(now=None):
    """Delete the jobs past their expiry and their files; and files no job names that are older than the keep time
    (left by a run that stopped, or by the jobs of a deleted account). Returns the ids of the deleted jobs."""
    now = now or utcnow()
    store = export_store()
    database.begin_write()
    expired = db.session.execute(select(ExportJob.id, ExportJob.file_name)
                                 .where(ExportJob.expires_at <= now)).all()
    if expired:
        ids = [job_id for job_id, _name in expired]
        db.session.execute(delete(ExportJob).where(ExportJob.id.in_(ids)))
        audit.record("export_expire", target_type="export_job", data={"jobs": ids})
        store.remove(*(name for _id, name in expired if name))
    else:
        db.session.rollback()
    named = set(db.session.execute(select(ExportJob.file_name).where(ExportJob.file_name.is_not(None))).scalars())
    store.remove_strays(named, before=now - current_app.config["NANBYO_EXPORT_KEEP"])
    return [job_id for job_id, _name in expired]
