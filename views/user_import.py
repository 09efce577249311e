"""医療機関ユーザデータファイルの取込 (municipality admin): upload or individual form, preview, confirm, notices.

A file and the individual form (one doctor, tied to the 指定 application) go through the same userfile.plan_table
and userfile.execute; the preview, the confirm and the batch page are shared. The preview keeps the rows it read;
the confirm plans them again under the write lock (userfile.plan_records) without reading the file a second time.
Those rows wait in the file store's "uploads" area (NANBYO_UPLOAD_DIR, or object storage shared by every app server,
since the confirm may reach another one), encrypted with the data keys: they hold the doctors' personal data.
"""
import hashlib
import json
import os
import secrets
from datetime import timedelta

from flask import Response, abort, current_app, flash, redirect, request, session, url_for
from flask_admin import expose
from flask_login import current_user
from sqlalchemy.orm import selectinload

from forms.auth import ConfirmForm
from forms.user_import import IndividualForm, UploadForm
from models.accounts import BATCH_STATUS_LABELS, ImportBatch, User
from models._types import utcnow
from models.audit import OperationLog
from nanbyo import crypto, database, files, userfile
from nanbyo.extensions import db
from nanbyo.issuance import NotIssuable, reset_for_notices
from views.base import ProtectedBaseView

PENDING_KEY = "user_import_pending"
STALE_AFTER = timedelta(days=1)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHANGE_PRIMARY_FIELD = "change_primary"  # the confirm form's checkboxes: row numbers whose 主たる勤務先 moves
# Notices per PDF: each sets a new password, hashed with argon2 (about 0.1 s each), so a large batch is printed in
# parts that each fit in a request (and in a printer's tray).
NOTICES_PER_PDF = 100


def _attachment(body, mimetype, filename):
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={filename}"})


class UserImportView(ProtectedBaseView):
    area = "user_import"

    def _municipality(self):
        return current_user.municipality

    _pending_name = staticmethod(userfile.preview_name)
    _aad = staticmethod(userfile.preview_aad)

    def _forget_stale_uploads(self):
        """Files of previews nobody confirmed hold personal data: keep them a day at most."""
        files.store("uploads").remove_strays((), before=utcnow() - STALE_AFTER)

    def _render_index(self, individual=None, individual_problems=(), status=200):
        userfile.fail_stalled(current_user.municipality_id)  # a killed confirmation says 失敗 without waiting
        batches = db.session.execute(
            db.select(ImportBatch).filter_by(municipality_id=current_user.municipality_id)
            .order_by(ImportBatch.id.desc()).limit(20)).scalars().all()
        return self.render("user_import/index.html", form=UploadForm(formdata=None), status_labels=BATCH_STATUS_LABELS,
                           individual=individual or IndividualForm(formdata=None),
                           individual_problems=individual_problems, batches=batches, columns=userfile.COLUMNS,
                           max_rows=userfile.MAX_ROWS), status

    @expose("/")
    def index(self):
        return self._render_index()

    @expose("/template.xlsx")
    def template(self):
        return _attachment(userfile.template_xlsx(), XLSX, "user_data_template.xlsx")

    @expose("/sample.csv")
    def sample(self):
        return _attachment(userfile.sample_csv(), "text/csv; charset=utf-8", "user_data_sample.csv")

    def _preview(self, result, pending, status=None, confirm_refused=False):
        return self.render("user_import/preview.html", result=result, pending=pending,
                           confirm_form=ConfirmForm(formdata=None), labels=userfile.OUTCOME_LABELS,
                           change_field=CHANGE_PRIMARY_FIELD, confirm_refused=confirm_refused), \
            status or (200 if result.ok else 400)

    def _keep_pending(self, result, file_sha256, **pending):
        """The plan's parsed rows, kept under a random name until the clerk confirms (the confirm plans them again
        without reading the file twice); the digest proves the confirmed rows are these ones."""
        token = secrets.token_urlsafe(16)
        data = userfile.records_json(result)
        store = files.store("uploads")
        try:
            store.put(self._pending_name(token), crypto.keyring().encrypt(data, self._aad(token)))
        except OSError as e:
            refusal = files.refusal(e)
            if not refusal:
                raise
            current_app.logger.error("user file preview not kept by the file store %s: %s", store, e)
            flash(refusal, "error")
            return False
        session[PENDING_KEY] = dict(pending, token=token, sha256=hashlib.sha256(data).hexdigest(),
                                    file_sha256=file_sha256)
        return True

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
        pending = {"source": "file", "filename": filename, "application_ref": ""}
        if result.ok and not self._keep_pending(result, hashlib.sha256(data).hexdigest(), **pending):
            return redirect(url_for(".index"))
        return self._preview(result, pending)

    @expose("/individual", methods=["POST"])
    def individual(self):
        """個別発行（1名）: the form's doctor as the one-row table of a file, through the same checks."""
        form = IndividualForm()
        if not form.validate_on_submit():  # (a missing CSRF token is refused before: CSRFProtect)
            return self._render_index(individual=form, status=400)
        table = userfile.form_table(form.row_values())
        result = userfile.plan_table(self._municipality(), table)
        if not result.ok:
            return self._render_index(individual=form, individual_problems=result.problems, status=400)
        self._discard_pending()
        self._forget_stale_uploads()
        pending = {"source": "form", "filename": "", "application_ref": form.application_ref.data}
        cells = json.dumps({"cells": table[1][1]}, ensure_ascii=False).encode()
        if not self._keep_pending(result, hashlib.sha256(cells).hexdigest(), **pending):
            return redirect(url_for(".index"))
        return self._preview(result, pending)

    def _discard_pending(self):
        pending = session.pop(PENDING_KEY, None)
        if pending:
            files.store("uploads").discard(self._pending_name(pending["token"]))

    @staticmethod
    def _ticked_rows():
        """The row numbers ticked for 主たる勤務先の変更; None when one is not a number (or there are more than rows)."""
        values = request.form.getlist(CHANGE_PRIMARY_FIELD)
        if len(values) > userfile.MAX_ROWS:
            return None
        try:
            return {int(value) for value in values}
        except ValueError:
            return None

    @expose("/confirm", methods=["POST"])
    def confirm(self):
        form = ConfirmForm()
        pending = session.get(PENDING_KEY)
        if not form.validate_on_submit() or not pending:
            flash("確認するファイルがありません。もう一度アップロードしてください。", "error")
            return redirect(url_for(".index"))
        try:
            data = crypto.keyring().decrypt(files.store("uploads").read(self._pending_name(pending["token"])),
                                            self._aad(pending["token"]))
        except (FileNotFoundError, crypto.KeyRingError):  # gone, or kept by an older version unencrypted
            data = b""
        try:
            if hashlib.sha256(data).hexdigest() != pending["sha256"] or "file_sha256" not in pending:
                raise ValueError("not the previewed rows")
            records = userfile.records_from_json(data)
        except ValueError:  # gone, altered, or kept by an older version (the file itself)
            self._discard_pending()
            flash("確認するファイルが見つかりません。もう一度アップロードしてください。", "error")
            return redirect(url_for(".index"))
        # Recorded as 取込中 before the unit of work: a worker killed in the middle leaves the batch saying so.
        batch_id = userfile.begin_batch(
            current_user.municipality_id, filename=pending["filename"], file_sha256=pending["file_sha256"],
            institution_code=next((r["institution_code"] for r in records if r["institution_code"]), ""),
            actor=current_user)
        # The database may have changed since the preview: plan the previewed rows again, under the write lock, and
        # import only if still clean. The ticked rows must still be rows to confirm of the new plan.
        database.begin_write()
        result = userfile.plan_records(self._municipality(), records)
        self._discard_pending()
        if not result.ok:
            return self._refused(batch_id, result, pending)
        rows = self._ticked_rows()
        problems = [userfile.Problem(None, None, "主たる勤務先の変更の指定が正しくありません")] if rows is None \
            else userfile.change_primary_problems(result, rows)
        if problems:
            result.problems.extend(problems)
            return self._refused(batch_id, result, pending)
        if not (result.to_create or rows or any(r.manager for r in result.rows)):
            # A batch with nothing in it would only ask for notices that cannot be made.
            userfile.forget_batch(batch_id)
            flash("この内容では登録するものがありません（新規発行 0 件、主たる勤務先の変更 0 件）。何も登録していません。",
                  "warning")
            return redirect(url_for(".index"))
        try:
            batch = userfile.execute(result, filename=pending["filename"], file_sha256=pending["file_sha256"],
                                     actor=current_user, change_primary_rows=rows,
                                     source=pending.get("source", "file"),
                                     application_ref=pending.get("application_ref", ""), batch_id=batch_id)
        except userfile.FileRefused as e:
            result.problems.extend(userfile.Problem(None, None, p) for p in e.problems)
            return self._refused(batch_id, result, pending)
        except Exception:
            db.session.rollback()  # execute wrote nothing; the batch says so at once
            userfile.fail_batches([batch_id])
            raise
        message = f"登録しました。新規発行 {batch.created_count} 件"
        if rows:
            message += f"、主たる勤務先の変更 {len(rows)} 件"
        message += "。"
        if batch.created_count:
            message += "発行通知書を出力して各指定医へ送付してください。"
        flash(message, "success")
        return redirect(url_for(".batch", batch_id=batch.id))

    def _refused(self, batch_id, result, pending):
        """The preview again with why the rows no longer import: the batch recorded as 取込中 goes (nothing was
        imported, and the clerk is told here)."""
        userfile.forget_batch(batch_id)
        return self._preview(result, pending, confirm_refused=True)

    def _own_batch(self, batch_id):
        batch = db.session.get(ImportBatch, batch_id)
        if batch is None or batch.municipality_id != current_user.municipality_id:
            abort(404)
        return batch

    @staticmethod
    def _moved_users(batch):
        """The doctors whose 主たる勤務先 this batch moved (listed in its import log entry)."""
        entry = db.session.execute(db.select(OperationLog).filter_by(
            action="import_users", target_type=ImportBatch.__tablename__, target_id=str(batch.id))).scalars().first()
        ids = (entry.data or {}).get("primary_changed", []) if entry is not None else []
        return [user for user in (db.session.get(User, i) for i in ids) if user is not None]

    @staticmethod
    def _batch_users(batch):
        """The batch's accounts in ID order, with what the page shows of them, in a fixed number of statements."""
        return db.session.execute(db.select(User).where(User.import_batch_id == batch.id).order_by(User.id)
                                  .options(selectinload(User.designations))).scalars().all()

    @staticmethod
    def _parts(users):
        """(part number, first, last) of the notices' PDFs: NOTICES_PER_PDF accounts of the batch each."""
        per = NOTICES_PER_PDF
        return [(n, n * per + 1, min((n + 1) * per, len(users))) for n in range((len(users) + per - 1) // per)]

    @expose("/batch/<int:batch_id>")
    def batch(self, batch_id):
        batch = self._own_batch(batch_id)
        users = self._batch_users(batch)
        return self.render("user_import/batch.html", batch=batch, users=users, parts=self._parts(users),
                           moved=self._moved_users(batch), form=ConfirmForm(formdata=None))

    @expose("/batch/<int:batch_id>/notices", methods=["POST"])
    def notices(self, batch_id):
        batch = self._own_batch(batch_id)
        form = ConfirmForm()
        everyone = self._batch_users(batch)
        part = request.form.get("part", "0")
        if not part.isdigit() or int(part) >= max(len(self._parts(everyone)), 1):
            flash("出力する通知書の範囲が正しくありません。", "error")
            return redirect(url_for(".batch", batch_id=batch.id))
        part = int(part)
        in_part = everyone[part * NOTICES_PER_PDF:(part + 1) * NOTICES_PER_PDF]
        # Only accounts that have not logged in yet: a doctor who already set a password keeps it.
        users = [u for u in in_part if u.must_change_password and u.status in ("active", "locked")]
        if not form.validate_on_submit() or not users:
            flash("通知書を出力できる（初回ログイン前の）アカウントがありません。", "error")
            return redirect(url_for(".batch", batch_id=batch.id))
        try:
            pdf = reset_for_notices(users)
        except NotIssuable as e:
            flash(str(e), "error")
            return redirect(url_for(".batch", batch_id=batch.id))
        suffix = f"_{part + 1}" if len(everyone) > NOTICES_PER_PDF else ""
        return _attachment(pdf, "application/pdf", f"notices_batch_{batch.id}{suffix}.pdf")
