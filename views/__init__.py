"""Flask-Admin screens, grouped by who uses them; every one asks nanbyo.access."""
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from models.accounts import Membership, User
from models.audit import OperationLog
from models.documents import Document
from models.institutions import Institution, Municipality
from nanbyo import export_jobs
from nanbyo.exports import JST
from nanbyo.extensions import db
from nanbyo.security import csp_nonce


def init_views(app):
    from views.account import AccountView
    from views.audit import OperationLogView
    from views.auth import bp as auth_bp
    from views.base import HomeView
    from views.diseases import DiseaseSearchView
    from views.health import bp as health_bp
    from views.documents import DocumentView
    from views.exports import ExportJobsView, source_for_job
    from views.masters import MASTER_VIEWS
    from views.organizations import InstitutionView, MunicipalityView
    from views.paper_import import PaperImportView
    from views.results import ResultsImportView
    from views.scans import ScanView
    from views.stats import StatsView
    from views.institution_users import InstitutionUsersView
    from views.user_import import UserImportView
    from views.users import MembershipView, UserView

    app.register_blueprint(auth_bp)
    app.register_blueprint(health_bp)
    app.jinja_env.filters["jst"] = lambda dt: dt.astimezone(JST).strftime("%Y-%m-%d %H:%M") if dt else ""
    admin = Admin(app, name="難病・小慢データベース", theme=Bootstrap4Theme(base_template="admin/nanbyo_base.html", fluid=True),
                  index_view=HomeView(name="ホーム", url="/admin"), csp_nonce_generator=csp_nonce)
    org, acc, mst = "組織", "アカウント", "マスタ"
    admin.add_view(DocumentView(Document, db.session, name="書類", endpoint="document"))
    admin.add_view(StatsView(name="統計", endpoint="stats", url="/admin/stats"))
    admin.add_view(DiseaseSearchView(name="疾病検索", endpoint="diseases", url="/admin/diseases"))
    # The paper path and the 認定事務システム's results, under one menu: the clerk's menu bar fits 1024 px.
    imports = "取込"
    admin.add_view(ScanView(name="スキャンファイル", category=imports, endpoint="scans", url="/admin/scans"))
    admin.add_view(PaperImportView(name="紙の書類のデータ取込", category=imports, endpoint="paper_import",
                                   url="/admin/paper-import"))
    admin.add_view(ResultsImportView(name="認定結果取込", category=imports, endpoint="results_import",
                                     url="/admin/results-import"))
    admin.add_view(MunicipalityView(Municipality, db.session, name="自治体", category=org, endpoint="municipality"))
    admin.add_view(InstitutionView(Institution, db.session, name="医療機関", category=org, endpoint="institution"))
    admin.add_view(UserView(User, db.session, name="ユーザ", category=acc, endpoint="user"))
    admin.add_view(MembershipView(Membership, db.session, name="医療機関への所属", category=acc,
                                  endpoint="membership"))
    admin.add_view(UserImportView(name="ユーザデータファイル取込", category=acc, endpoint="user_import",
                                  url="/admin/user-import"))
    admin.add_view(InstitutionUsersView(name="医療機関ユーザ管理", category=acc, endpoint="institution_users",
                                        url="/admin/institution-users"))
    for view, model, name in MASTER_VIEWS:
        admin.add_view(view(model, db.session, name=name, category=mst, endpoint=model.__tablename__))
    admin.add_view(OperationLogView(OperationLog, db.session, name="操作ログ", endpoint="operation_log"))
    admin.add_view(AccountView(name="自アカウント管理", endpoint="account", url="/admin/account"))
    admin.add_view(ExportJobsView(name="出力ファイル", endpoint="exports", url="/admin/exports"))
    app.extensions[export_jobs.SOURCE_BUILDER] = source_for_job  # how a queued export rebuilds its list
    return admin
