"""外部委託事業者が作成したデータ一括取込: the operator imports its contractor's XML of paper forms, each document
linked to the scans it was made of and received at the municipality that uploaded them (nanbyo.xmlio.contractor).
The screens are the hospital import's (views/xml_imports.py)."""
from flask_admin import expose
from flask_login import current_user

from nanbyo.xmlio import import_jobs
from views.base import ProtectedBaseView
from views.xml_imports import XmlImportScreens


class PaperImportView(XmlImportScreens, ProtectedBaseView):
    area = "paper_import"
    paper = True

    def _may_import(self):
        return import_jobs.may_import_paper(current_user)

    @expose("/", methods=("GET", "POST"))
    def index(self):
        return self.import_screen("paper_import/index.html", {"": None}, [])

    @expose("/<int:job_id>/")
    def import_job_view(self, job_id):
        return self.job_screen(job_id, ".index", "紙の書類のデータ取込の画面へ戻る")

    @expose("/<int:job_id>/report.xlsx")
    def import_job_report_view(self, job_id):
        return self.job_report(job_id)
