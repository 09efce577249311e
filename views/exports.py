"""出力ファイル: the logged-in user's export jobs (nanbyo.export_jobs), their progress, and their downloads.

Only a job's owner sees it: another user's job, an expired one or one not finished answers 404, the same as a job
that never existed. The page refreshes itself while a job is being written (static/export-jobs.js).
"""
from urllib.parse import urlencode

from flask import abort, current_app, jsonify, send_file, url_for
from flask_admin import expose
from flask_login import current_user, login_user
from sqlalchemy import select
from werkzeug.utils import secure_filename

from models._types import utcnow
from models.exports import JOB_DONE, JOB_FAILED, JOB_RUNNING, JOB_WAITING, ExportJob
from nanbyo import access, audit, export_jobs, exports
from nanbyo.extensions import db
from views.base import ProtectedBaseView, ScopedModelView

FORMAT_LABELS = audit.VALUE_LABELS["format"]
PENDING = (JOB_WAITING, JOB_RUNNING)


def _list_view(endpoint):
    """The list view an export job was made from (None if there is no such view any more)."""
    for admin in current_app.extensions.get("admin", []):
        for view in admin._views:
            if isinstance(view, ScopedModelView) and view.endpoint == endpoint:
                return view
    return None


def source_for_job(job, owner):
    """The job's list rebuilt as its owner sees it now, in a request of the owner's with the list's query string;
    None when the owner is no longer active or no longer allowed this export."""
    view = _list_view(job.endpoint)
    if view is None or owner is None:
        return None
    path = f"{view.url}/export/{job.format}/"
    with current_app.test_request_context(path, query_string=urlencode([tuple(pair) for pair in job.query_args])):
        # login_user refuses an account that is not active (locked, disabled, deleted).
        if not login_user(owner) or not access.allowed(owner, view.area, "export"):
            return None
        return view.export_source()


def download_name(job):
    stamp = job.created_at.astimezone(exports.JST).strftime("%Y%m%d_%H%M%S")
    return secure_filename(f"{job.endpoint}_{stamp}.{exports.FORMATS[job.format][1]}")


class ExportJobsView(ProtectedBaseView):
    area = "exports"

    def is_visible(self):
        return False  # in the user's own menu at the right of the menu bar (admin/nanbyo_base.html)

    def _jobs(self):
        export_jobs.fail_stalled(owner_id=current_user.id)  # told at once, not at the next clean-up
        return db.session.execute(select(ExportJob).where(ExportJob.owner_id == current_user.id,
                                                          ExportJob.expires_at > utcnow())
                                  .order_by(ExportJob.id.desc())).scalars().all()

    def _own(self, job_id):
        job = db.session.get(ExportJob, job_id)
        if job is None or job.owner_id != current_user.id or job.expires_at <= utcnow():
            abort(404)
        return job

    def _state(self, job):
        done = job.status == JOB_DONE and export_jobs.has_file(job)
        rows = f"{job.rows_written:,}"
        return {"id": job.id, "status": job.status, "status_label": job.status_label,
                "rows": f"{rows} / {job.total_rows:,}件" if job.total_rows is not None and not done else f"{rows}件",
                "error": job.error, "download_url": url_for(".download", job_id=job.id) if done else None}

    @expose("/")
    def index(self):
        jobs = self._jobs()
        views = {job.endpoint: _list_view(job.endpoint) for job in jobs}
        rows = [(job, self._state(job), getattr(views[job.endpoint], "name", job.endpoint)) for job in jobs]
        return self.render("exports/index.html", rows=rows, format_labels=FORMAT_LABELS,
                           pending=any(job.status in PENDING for job in jobs),
                           keep_hours=int(current_app.config["NANBYO_EXPORT_KEEP"].total_seconds() // 3600),
                           failed=JOB_FAILED)

    @expose("/status")
    def status(self):
        """The page's script: the state of each of the user's jobs."""
        return jsonify(jobs=[self._state(job) for job in self._jobs()])

    @expose("/<int:job_id>/download")
    def download(self, job_id):
        job = self._own(job_id)
        if not (job.status == JOB_DONE and export_jobs.has_file(job)):
            abort(404)
        view = _list_view(job.endpoint)
        if view is None or not access.allowed(current_user, view.area, "export"):
            abort(403)
        # Logged (and committed) before the file is sent.
        audit.record("export_download", target=job, data={"format": job.format, "rows": job.rows_written})
        store = export_jobs.export_store()
        # Streamed from the store in blocks, whatever its size.
        response = send_file(store.open(job.file_name), mimetype=exports.FORMATS[job.format][0], as_attachment=True,
                             download_name=download_name(job), conditional=False)
        response.content_length = store.size(job.file_name)
        return response
