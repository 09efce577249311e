"""スキャンファイル: a municipality uploads the scans of paper forms it received; the operator downloads them (one,
or a ZIP of a selection) for its contractor, or sends one back with a reason (nanbyo.files.scans). Every URL takes
its scans through access.row_filter: another municipality's scan answers 404, like one that never was."""
import io
import re
import zipfile

from flask import Response, abort, flash, redirect, request, stream_with_context, url_for
from flask_admin import expose
from flask_login import current_user
from sqlalchemy import func, select

from forms.scans import ScanReturnForm, ScanSelectionForm, ScanUploadForm
from models.scans import SCAN_STATUS_LABELS, SCAN_TYPES, ScanFile
from nanbyo import access, audit
from nanbyo.document_codes import APPLICATION_KINDS, KIND_LABELS, application_kind_label
from nanbyo.extensions import db
from nanbyo.files import scan_pages, scans
from views.base import ProtectedBaseView

LISTED = 200  # newest first; older scans by their status filter


class _Chunks(io.RawIOBase):
    """Where a streamed ZIP is written: what was written since the last take() goes out as one chunk."""

    def __init__(self):
        self.parts = []

    def writable(self):
        return True

    def write(self, data):
        self.parts.append(bytes(data))
        return len(data)

    def take(self):
        out, self.parts = b"".join(self.parts), []
        return out


def _entry_name(scan):
    safe = re.sub(r'[\\/:*?"<>|]', "_", f"{scan.id}_{scan.reception_no}_{scan.original_name}")
    return safe[:150]


def _zip_chunks(entries):
    """[(entry name, stored name, digest)] as a ZIP, one scan decrypted at a time (stored: scans are compressed
    already)."""
    sink = _Chunks()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
        for name, stored_name, sha256 in entries:
            with archive.open(name, "w", force_zip64=True) as entry:
                entry.write(scans.stored_content(stored_name, sha256))
            yield sink.take()
    yield sink.take()


class ScanView(ProtectedBaseView):
    area = "scans"

    def _may(self, permission):
        return access.allowed(current_user, self.area, permission)

    def _scan(self, scan_id):
        found = scans.visible(current_user, [scan_id])
        if not found:
            abort(404)
        return found[0]

    @expose("/")
    def index(self, upload_form=None, problems=(), status=200):
        status_filter = request.args.get("status", "")
        query = scans.scoped(current_user)
        if status_filter in SCAN_STATUS_LABELS:
            query = query.where(ScanFile.status == status_filter)
        rows = db.session.execute(query.order_by(ScanFile.id.desc()).limit(LISTED)).scalars().all()
        counts = dict(db.session.execute(select(ScanFile.status, func.count()).where(
            access.row_filter(current_user, ScanFile, "read")).group_by(ScanFile.status)).all())
        form = upload_form or ScanUploadForm(formdata=None)
        form.application_kind.choices = [("", "（選択）")] + [
            (code, f"{KIND_LABELS[kind]}: {application_kind_label(kind, code)}") for kind in KIND_LABELS
            for code in APPLICATION_KINDS[kind]]
        return self.render("scans/index.html", rows=rows, counts=counts, statuses=SCAN_STATUS_LABELS,
                           status_filter=status_filter, form=form, problems=problems,
                           may_upload=self._may("upload"), may_operate=self._may("operate"),
                           selection=ScanSelectionForm(formdata=None), return_form=ScanReturnForm(formdata=None),
                           max_files=scans.MAX_FILES, max_mb=scans.max_bytes() // (1024 * 1024),
                           kinds=KIND_LABELS, application_kind_label=application_kind_label), status

    @expose("/upload", methods=("POST",))
    def upload(self):
        if not self._may("upload"):
            abort(403)
        form = ScanUploadForm()
        if not form.validate_on_submit():
            abort(400)
        uploads = [(f.filename or "", f.read(scans.max_bytes() + 1)) for f in form.files.data or [] if f and f.filename]
        meta = {"kind": form.kind.data, "application_kind": form.application_kind.data,
                "reception_no": (form.reception_no.data or "").strip(),
                "disease_code": (form.disease_code.data or "").strip(), "reference": (form.reference.data or "").strip()}
        saved, problems = scans.upload(current_user, uploads, meta)
        if problems:
            return self.index(upload_form=form, problems=problems, status=400)
        flash(f"スキャンファイル {len(saved)} 件をアップロードしました（暗号化して保管しています）。", "success")
        return redirect(url_for(".index"))

    @expose("/<int:scan_id>/download")
    def download(self, scan_id):
        scan = self._scan(scan_id)
        scans.record_downloads(current_user, [scan], "file")
        return Response(scans.content(scan), mimetype=SCAN_TYPES[scan.file_type], headers={
            "Content-Disposition": f"attachment; filename=scan_{scan.id}.{scan.file_type}",
            "Cache-Control": "no-store"})

    @expose("/<int:scan_id>/page/<int:page>.png")
    def page(self, scan_id, page):
        """One page of the scan as a PNG made here (the uploaded bytes are never served inline), for the screen
        that shows the scan beside its document. Logged like a download."""
        scan = self._scan(scan_id)
        try:
            image = scan_pages.render_page(scans.content(scan), scan.file_type, page)
        except scan_pages.ScanPageError as e:
            return Response(str(e), status=404, mimetype="text/plain")
        audit.record("scan_view", target=scan, data={"page": page})
        return Response(image, mimetype="image/png", headers={
            "Content-Disposition": f"inline; filename=scan_{scan.id}_{page}.png", "Cache-Control": "no-store"})

    @expose("/zip", methods=("POST",))
    def zip(self):
        form = ScanSelectionForm()
        if not form.validate_on_submit():
            abort(400)
        selected = scans.visible(current_user, request.form.getlist("ids"))
        if not selected:
            flash("ダウンロードするスキャンファイルを選んでください。", "error")
            return redirect(url_for(".index"))
        entries = [(_entry_name(scan), scan.stored_name, scan.sha256) for scan in selected]
        scans.record_downloads(current_user, selected, "zip")
        return Response(stream_with_context(_zip_chunks(entries)), mimetype="application/zip", headers={
            "Content-Disposition": "attachment; filename=scans.zip", "Cache-Control": "no-store"})

    @expose("/<int:scan_id>/return", methods=("POST",))
    def send_back(self, scan_id):
        if not self._may("operate"):
            abort(403)
        scan = self._scan(scan_id)
        form = ScanReturnForm()
        if not form.validate_on_submit():
            abort(400)
        problem = scans.send_back(current_user, scan, form.reason.data)
        flash(problem or f"スキャンファイル No.{scan.id} を差し戻しました。", "error" if problem else "success")
        return redirect(url_for(".index"))

    @expose("/<int:scan_id>/delete", methods=("POST",))
    def delete(self, scan_id):
        if not self._may("upload"):
            abort(403)
        scan = self._scan(scan_id)
        if not ScanSelectionForm().validate_on_submit():
            abort(400)
        problem = scans.delete(current_user, scan)
        flash(problem or f"スキャンファイル No.{scan_id} を削除しました。", "error" if problem else "success")
        return redirect(url_for(".index"))
