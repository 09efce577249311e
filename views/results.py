"""認定結果データ一括取込: a municipality uploads its 認定事務システム's results for the documents it has received
(nanbyo.results.importer). Every row is checked before anything changes; then all rows or none."""
import os

from flask import Response, flash
from flask_admin import expose
from flask_login import current_user

from forms.results import ResultsUploadForm
from nanbyo.results import importer
from views.base import ProtectedBaseView

SAMPLE = ("受付番号,アクセスキー,受給者番号,審査結果,有効期間開始,有効期間終了,重症度,研究利用同意\r\n"
          "R2026-00001,,1300001,認定,2026-04-01,2027-03-31,Stage 3,同意あり\r\n"
          "R2026-00002,,,不認定,,,,同意なし\r\n")


class ResultsImportView(ProtectedBaseView):
    area = "results_import"

    @expose("/", methods=("GET", "POST"))
    def index(self):
        form = ResultsUploadForm()
        report = None
        if form.validate_on_submit():
            upload = form.file.data
            if not upload or not upload.filename:
                flash("ファイルを選択してください。", "error")
            else:
                data = upload.read(importer.MAX_BYTES + 1)
                report = importer.import_results(os.path.basename(upload.filename), data,
                                                 current_user.municipality, current_user,
                                                 dry_run=form.dry_run.data)
        return self.render("results/index.html", form=form, report=report, headings=importer.HEADINGS,
                           max_rows=importer.MAX_ROWS), (400 if report is not None and not report.ok else 200)

    @expose("/sample.csv")
    def sample(self):
        return Response(SAMPLE.encode("utf-8-sig"), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": "attachment; filename=review_results_sample.csv"})
