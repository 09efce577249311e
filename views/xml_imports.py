"""The XML import screens, shared by the hospital import (views/documents.py: into one of the user's institutions)
and the operator's import of its contractor's paper-form data (views/paper_import.py: no institution). The upload,
the inline report, the background job's page and its xlsx report are the same; what differs is who may import
(_may_import) and where the documents go (the destinations given to import_screen)."""
from flask import Response, abort, current_app, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from forms.documents import XmlImportForm
from models._types import utcnow
from models.exports import JOB_DONE, JOB_FAILED, JOB_RUNNING, JOB_WAITING
from models.xml_imports import XmlImportJob
from nanbyo import exports
from nanbyo.extensions import db
from nanbyo.xmlio import import_jobs
from nanbyo.xmlio.importer import RESULT_LABELS, counts, import_uploads


def import_summary(outcomes):
    """(result label, count) of an import, in the importer's order, the results present only."""
    found = counts(outcomes)
    return [(label, found[result]) for result, label in RESULT_LABELS.items() if found[result]]


class XmlImportScreens:
    """Mixed into an admin view that defines _may_import() and exposes import_job_view / import_job_report_view.
    `paper`: the view's jobs are imports of paper-form data (no institution), not a hospital's."""
    paper = False

    def _may_import(self) -> bool:
        raise NotImplementedError

    def import_screen(self, template, destinations, choices):
        """The upload form and its report. `destinations`: {form value: institution, or None for paper data};
        `choices`: the form's 取込先 choices (none: the only destination is taken)."""
        if not self._may_import():
            abort(403)
        form = XmlImportForm()
        form.institution.choices = choices
        outcomes = None
        if form.validate_on_submit():
            uploads = [(f.filename or "upload.xml", f.read()) for f in form.files.data or [] if f and f.filename]
            key = form.institution.data if choices else next(iter(destinations), None)
            if not uploads or key not in destinations:
                flash("取込先の医療機関とファイルを選んでください。" if choices else "ファイルを選んでください。", "error")
            elif sum(len(data) for _name, data in uploads) > current_app.config["NANBYO_XML_INLINE_BYTES"]:
                return self._import_job(uploads, destinations[key], form.all_or_nothing.data)
            else:
                outcomes = import_uploads(uploads, current_user, destinations[key],
                                          all_or_nothing=form.all_or_nothing.data)
                if form.report_xlsx.data:
                    return self._import_report(outcomes)
        return self.render(template, form=form, outcomes=outcomes, summary=import_summary, jobs=self._import_jobs(),
                           inline_bytes=current_app.config["NANBYO_XML_INLINE_BYTES"])

    def _import_job(self, uploads, institution, all_or_nothing):
        """An upload above NANBYO_XML_INLINE_BYTES is imported by the task queue; its page shows the progress."""
        from nanbyo import files, tasks
        try:
            job = import_jobs.create(current_user, institution, uploads, all_or_nothing)
        except OSError as e:
            refusal = files.refusal(e)
            if not refusal:
                raise
            current_app.logger.error("XML import job refused by the file store: %s", e)
            flash(refusal, "error")
            return redirect(request.url)
        try:
            tasks.run_xml_import(job.id)
        except Exception:
            current_app.logger.exception("XML import job %s could not be queued", job.id)
            import_jobs.not_queued(job.id)
        flash(f"ファイルが大きいため、バックグラウンドで取り込みます（XML取込 No.{job.id}）。この画面で進み具合と結果を"
              "確かめられます。", "info")
        return redirect(url_for(".import_job_view", job_id=job.id))

    def _import_jobs(self):
        """The user's own background imports whose reports are kept."""
        import_jobs.fail_stalled(owner_id=current_user.id)  # told at once, not at the next clean-up
        return db.session.execute(select(XmlImportJob).where(XmlImportJob.owner_id == current_user.id,
                                                             XmlImportJob.expires_at > utcnow(), self._kind())
                                  .order_by(XmlImportJob.id.desc()).limit(20)).scalars().all()

    def _own_import_job(self, job_id):
        """The user's own job, or 404 (another user's, an expired one and one that never was look the same)."""
        if not self._may_import():
            abort(403)
        job = db.session.get(XmlImportJob, job_id)
        if (job is None or job.owner_id != current_user.id or job.expires_at <= utcnow()
                or (job.institution_id is None) != self.paper):
            abort(404)
        return job

    def _kind(self):
        column = XmlImportJob.institution_id
        return column.is_(None) if self.paper else column.is_not(None)

    def job_screen(self, job_id, back_endpoint, back_label):
        import_jobs.fail_stalled(owner_id=current_user.id)
        job = self._own_import_job(job_id)
        outcomes = import_jobs.report(job) if job.status in (JOB_DONE, JOB_FAILED) else None
        return self.render("documents/import_job.html", job=job, outcomes=outcomes, summary=import_summary,
                           pending=job.status in (JOB_WAITING, JOB_RUNNING), failed=JOB_FAILED,
                           result_labels=RESULT_LABELS, back_endpoint=back_endpoint, back_label=back_label)

    def job_report(self, job_id):
        job = self._own_import_job(job_id)
        if job.report_cipher is None:
            abort(404)
        return self._import_report(import_jobs.report(job), f"xml_import_{job.id}_report.xlsx")

    def _import_report(self, outcomes, filename="xml_import_report.xlsx"):
        headers = ["ファイル", "書類", "行", "結果", "No.", "内容"]
        rows = [[o.file, o.number or "", o.line or "", o.label, o.document_id or "", "\n".join(o.messages)]
                for o in outcomes]
        return Response(exports.render("xlsx", headers, rows), mimetype=exports.FORMATS["xlsx"][0],
                        headers={"Content-Disposition": f"attachment; filename={filename}", "Cache-Control": "no-store"})
