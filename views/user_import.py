"""医療機関ユーザデータファイルの取込 (municipality admin): upload, preview, confirm, notices."""
import hashlib
import os
import secrets
import time
from pathlib import Path

from flask import Response, abort, current_app, flash, redirect, session, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField

from forms.auth import ConfirmForm
from models.accounts import ImportBatch
from nanbyo import database, userfile
from nanbyo.extensions import db
from nanbyo.issuance import NotIssuable, reset_for_notices
from views.base import ProtectedBaseView

PENDING_KEY = "user_import_pending"
STALE_AFTER_SECONDS = 24 * 3600
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class UploadForm(FlaskForm):
    file = FileField("医療機関ユーザデータファイル（.xlsx または .csv）")


def _attachment(body, mimetype, filename):
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={filename}"})


class UserImportView(ProtectedBaseView):
    area = "user_import"

    def _municipality(self):
        return current_user.municipality

    def _upload_dir(self):
        path = Path(current_app.config["NANBYO_UPLOAD_DIR"])
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _forget_stale_uploads(self):
        """Files of previews nobody confirmed hold personal data: keep them a day at most."""
        limit = time.time() - STALE_AFTER_SECONDS
        for stale in self._upload_dir().glob("*.upload"):
            if stale.stat().st_mtime < limit:
                stale.unlink(missing_ok=True)

    @expose("/")
    def index(self):
        batches = db.session.execute(
            db.select(ImportBatch).filter_by(municipality_id=current_user.municipality_id)
            .order_by(ImportBatch.id.desc()).limit(20)).scalars().all()
        return self.render("user_import/index.html", form=UploadForm(formdata=None), batches=batches,
                           columns=userfile.COLUMNS, max_rows=userfile.MAX_ROWS)

    @expose("/template.xlsx")
    def template(self):
        return _attachment(userfile.template_xlsx(), XLSX, "user_data_template.xlsx")

    @expose("/sample.csv")
    def sample(self):
        return _attachment(userfile.sample_csv(), "text/csv; charset=utf-8", "user_data_sample.csv")

    @expose("/preview", methods=["POST"])
    def preview(self):
        form = UploadForm()
        if not form.validate_on_submit() or not form.file.data:
            flash("ファイルを選択してください。", "error")
            return redirect(url_for(".index"))
        upload = form.file.data
        filename = os.path.basename(upload.filename or "")
        data = upload.read(userfile.MAX_BYTES + 1)
        result = userfile.plan(self._municipality(), filename, data)
        self._discard_pending()
        self._forget_stale_uploads()
        if result.ok:
            # Kept under a random name until the clerk confirms; the digest proves the confirmed file is this one.
            token = secrets.token_urlsafe(16)
            (self._upload_dir() / f"{token}.upload").write_bytes(data)
            session[PENDING_KEY] = {"token": token, "filename": filename,
                                    "sha256": hashlib.sha256(data).hexdigest()}
        return self.render("user_import/preview.html", result=result, filename=filename,
                           confirm_form=ConfirmForm(formdata=None), labels=userfile.OUTCOME_LABELS), \
            200 if result.ok else 400

    def _discard_pending(self):
        pending = session.pop(PENDING_KEY, None)
        if pending:
            (self._upload_dir() / f"{pending['token']}.upload").unlink(missing_ok=True)

    @expose("/confirm", methods=["POST"])
    def confirm(self):
        form = ConfirmForm()
        pending = session.get(PENDING_KEY)
        if not form.validate_on_submit() or not pending:
            flash("確認するファイルがありません。もう一度アップロードしてください。", "error")
            return redirect(url_for(".index"))
        path = self._upload_dir() / f"{pending['token']}.upload"
        data = path.read_bytes() if path.exists() else b""
        if hashlib.sha256(data).hexdigest() != pending["sha256"]:
            self._discard_pending()
            flash("確認するファイルが見つかりません。もう一度アップロードしてください。", "error")
            return redirect(url_for(".index"))
        # The database may have changed since the preview: plan again, under the write lock, and import only if
        # still clean.
        database.begin_write()
        result = userfile.plan(self._municipality(), pending["filename"], data)
        self._discard_pending()
        if not result.ok:
            return self.render("user_import/preview.html", result=result, filename=pending["filename"],
                               confirm_form=ConfirmForm(formdata=None), labels=userfile.OUTCOME_LABELS), 400
        batch = userfile.execute(result, filename=pending["filename"], data=data, actor=current_user)
        flash(f"取り込みました。新規発行 {batch.created_count} 件。発行通知書を出力して各指定医へ送付してください。",
              "success")
        return redirect(url_for(".batch", batch_id=batch.id))

    def _own_batch(self, batch_id):
        batch = db.session.get(ImportBatch, batch_id)
        if batch is None or batch.municipality_id != current_user.municipality_id:
            abort(404)
        return batch

    @expose("/batch/<int:batch_id>")
    def batch(self, batch_id):
        batch = self._own_batch(batch_id)
        return self.render("user_import/batch.html", batch=batch, form=ConfirmForm(formdata=None))

    @expose("/batch/<int:batch_id>/notices", methods=["POST"])
    def notices(self, batch_id):
        batch = self._own_batch(batch_id)
        form = ConfirmForm()
        # Only accounts that have not logged in yet: a doctor who already set a password keeps it.
        users = [u for u in batch.users if u.must_change_password and u.status in ("active", "locked")]
        if not form.validate_on_submit() or not users:
            flash("通知書を出力できる（初回ログイン前の）アカウントがありません。", "error")
            return redirect(url_for(".batch", batch_id=batch.id))
        try:
            pdf = reset_for_notices(users)
        except NotIssuable as e:
            flash(str(e), "error")
            return redirect(url_for(".batch", batch_id=batch.id))
        return _attachment(pdf, "application/pdf", f"notices_batch_{batch.id}.pdf")
