"""Authorization matrix: every rule of app.url_map x every role (and anonymous) x own / same institution /
other institution / other municipality rows.

The expectations below are written out by hand from DESIGN.md and the issue, independently of nanbyo.access, so a
mistake in the rules shows up here. A rule missing from the matrix fails `test_every_rule_is_in_the_matrix`.
"""
import json

import pytest

from models.accounts import Membership, User
from models.audit import OperationLog
from models.institutions import Institution, Municipality
from models.masters import NanbyoDisease, ShomanDisease, ShomanGroup
from nanbyo import audit
from nanbyo.extensions import db
from tests.test_document_access import COVERED as COVERED_DOCUMENT_ENDPOINTS
from tests.helpers import OSAKA, TOKYO, csrf_token, gen_institution, gen_municipality, gen_user, login

PRINCIPALS = ["anonymous", "op_admin", "op_user", "muni_admin", "muni_user", "manager", "doctor", "staff"]
LOGGED_IN = PRINCIPALS[1:]
CATEGORIES = ["own", "same_institution", "other_institution", "other_municipality"]
EVERY_CATEGORY = set(CATEGORIES)
NOTHING = set()

# view endpoint -> principal -> (screen permissions, categories readable, categories writable)
P_READ, P_ALL = {"list", "details"}, {"list", "details", "create", "edit", "delete", "export"}
MATRIX = {
    # A 責任者 has one screen for the institution's users (institution_users), not these lists.
    "user": {
        "op_admin": (P_ALL, EVERY_CATEGORY, EVERY_CATEGORY),
        "muni_admin": (P_ALL, {"own", "same_institution", "other_institution"},
                       {"same_institution", "other_institution"}),
    },
    "membership": {
        "op_admin": (P_ALL, EVERY_CATEGORY, EVERY_CATEGORY),
        "muni_admin": (P_ALL, {"own", "same_institution", "other_institution"},
                       {"own", "same_institution", "other_institution"}),
    },
    "institution": {
        "op_admin": (P_ALL, EVERY_CATEGORY, EVERY_CATEGORY),
        "op_user": (P_READ | {"export"}, EVERY_CATEGORY, NOTHING),
        "muni_admin": (P_ALL, {"own", "same_institution", "other_institution"},
                       {"own", "same_institution", "other_institution"}),
        "muni_user": (P_READ | {"export"}, {"own", "same_institution", "other_institution"}, NOTHING),
        "manager": (P_READ, {"own", "same_institution"}, NOTHING),
    },
    "municipality": {
        "op_admin": (P_ALL, EVERY_CATEGORY, EVERY_CATEGORY),
        "op_user": (P_READ, EVERY_CATEGORY, NOTHING),
        "muni_admin": (P_READ, {"own", "same_institution", "other_institution"}, NOTHING),
        "muni_user": (P_READ, {"own", "same_institution", "other_institution"}, NOTHING),
    },
    "operation_log": {"op_admin": (P_READ | {"export"}, EVERY_CATEGORY, NOTHING)},
}
for master in ("nanbyo_disease", "shoman_group", "shoman_disease"):
    MATRIX[master] = {p: (P_READ, EVERY_CATEGORY, NOTHING) for p in LOGGED_IN}
    MATRIX[master]["op_admin"] = (P_READ | {"export"}, EVERY_CATEGORY, NOTHING)

MODEL_OF = {"user": User, "membership": Membership, "institution": Institution, "municipality": Municipality,
            "operation_log": OperationLog, "nanbyo_disease": NanbyoDisease, "shoman_group": ShomanGroup,
            "shoman_disease": ShomanDisease}
MODEL_ENDPOINTS = {"index_view", "details_view", "edit_view", "create_view", "delete_view", "export",
                   "action_view", "ajax_lookup", "ajax_update"}
# Endpoints outside the model views, and what each principal gets.
OTHER_ENDPOINTS = {
    "static": "public", "admin.static": "public", "auth.login": "public", "auth.index": "redirect",
    "health.healthz": "public",  # tests/test_health.py
    "auth.logout": "logged_in", "auth.first_login": "logged_in", "auth.first_login_key": "logged_in",
    "admin.index": "logged_in", "account.index": "logged_in", "account.profile": "logged_in",
    "account.password": "logged_in", "account.key": "logged_in", "account.add_concurrent": "logged_in",
    "account.remove_concurrent": "logged_in", "account.keepalive": "logged_in",
    "user_import.index": "muni_admin", "user_import.template": "muni_admin", "user_import.sample": "muni_admin",
    "user_import.preview": "muni_admin", "user_import.confirm": "muni_admin", "user_import.batch": "muni_admin",
    "user_import.notices": "muni_admin", "user_import.individual": "muni_admin",
    "institution_users.index": "manager", "institution_users.add_staff": "manager",
    "institution_users.remove_concurrent": "manager", "institution_users.notice": "manager",
    "institution_users.key_reissue": "manager", "institution_users.unlock": "manager",
    "institution_users.transfer_manager": "manager",
    # The new-document form's disease search: who may create documents (op_admin, op_user, doctor, staff, and a
    # 責任者 as doctor or staff); every role: tests/test_disease_search.py.
    "diseases.search": "document_creators",
    # 認定結果データ一括取込: the municipality's roles; every other role: tests/results/test_results_import.py.
    "results_import.index": "municipality", "results_import.sample": "municipality",
    # スキャンファイル: a municipality its own, the operator all: tests/files/test_scans.py.
    "scans.index": "scans", "scans.upload": "scans", "scans.download": "scans", "scans.zip": "scans",
    "scans.send_back": "scans", "scans.delete": "scans", "scans.page": "scans",
    # 紙の書類のデータ取込: the operator's roles; every role and another operator's job: tests/xmlio/test_contractor.py.
    "paper_import.index": "operator", "paper_import.import_job_view": "operator",
    "paper_import.import_job_report_view": "operator",
    # 統計情報: operator_admin and the municipality's roles; every role: tests/stats/test_stats.py.
    "stats.index": "stats",
    # 出力ファイル: every logged-in user, their own jobs only (test_export_jobs_are_their_owners_alone below).
    "exports.index": "logged_in", "exports.status": "logged_in", "exports.download": "owner",
}
# Every document URL x every principal x every relation to the document: tests/test_document_access.py.
OTHER_ENDPOINTS |= {f"document.{name}": "documents" for name in COVERED_DOCUMENT_ENDPOINTS}
# Screens for one principal only: GET pages, and POST endpoints tried with a valid token and harmless data.
SINGLE_PRINCIPAL_PAGES = {"muni_admin": ["/admin/user-import/", "/admin/user-import/template.xlsx",
                                         "/admin/user-import/sample.csv"],
                          "manager": ["/admin/institution-users/"]}


def test_every_rule_is_in_the_matrix(app):
    unknown = []
    for rule in app.url_map.iter_rules():
        view, _, name = rule.endpoint.rpartition(".")
        if rule.endpoint in OTHER_ENDPOINTS or (view in MATRIX and name in MODEL_ENDPOINTS):
            continue
        unknown.append(f"{rule.endpoint} {rule.rule}")
    assert not unknown, f"routes without an access expectation: {unknown}"


@pytest.fixture
def world(app):
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    inst_a, inst_b, inst_c = gen_institution(tokyo), gen_institution(tokyo), gen_institution(osaka)
    users = {
        "op_admin": gen_user("operator_admin"),
        "op_user": gen_user("operator_user"),
        "muni_admin": gen_user("municipality_admin", municipality=tokyo),
        "muni_user": gen_user("municipality_user", municipality=tokyo),
        "manager": gen_user("designated_doctor", institution=inst_a, manager=True),
        "doctor": gen_user("designated_doctor", institution=inst_a),
        "staff": gen_user("institution_staff", institution=inst_a),
        "doctor_b": gen_user("designated_doctor", institution=inst_b),
        "doctor_c": gen_user("designated_doctor", institution=inst_c, issuer=osaka),
    }
    audit.record("demo", target_type="test")  # one operation-log row to look at
    return {"users": users, "tokyo": tokyo, "osaka": osaka, "a": inst_a, "b": inst_b, "c": inst_c}


def targets(world, view, principal):
    """The row standing for each category, seen from `principal`."""
    u = world["users"]
    me = u.get(principal)
    colleague = u["staff"] if principal == "doctor" else u["doctor"]
    first = lambda user: user.memberships[0]  # noqa: E731
    if view == "user":
        return {"own": me or u["op_admin"], "same_institution": colleague,
                "other_institution": u["doctor_b"], "other_municipality": u["doctor_c"]}
    if view == "membership":
        own = first(me) if me is not None and me.memberships else first(colleague)
        return {"own": own, "same_institution": first(colleague), "other_institution": first(u["doctor_b"]),
                "other_municipality": first(u["doctor_c"])}
    if view == "institution":
        return {"own": world["a"], "same_institution": world["a"], "other_institution": world["b"],
                "other_municipality": world["c"]}
    if view == "municipality":
        return {"own": world["tokyo"], "same_institution": world["tokyo"], "other_institution": world["tokyo"],
                "other_municipality": world["osaka"]}
    row = db.session.execute(db.select(MODEL_OF[view]).order_by(MODEL_OF[view].id).limit(1)).scalar_one()
    return {c: row for c in CATEGORIES}


def expectation(view, principal):
    return MATRIX[view].get(principal, (set(), NOTHING, NOTHING))


def assert_denied(response, what):
    assert not 200 <= response.status_code < 300, f"{what}: unexpected {response.status_code}"


def assert_allowed(response, what):
    assert response.status_code == 200, f"{what}: expected 200, got {response.status_code}"


def log_in(client, world, principal):
    if principal != "anonymous":
        assert login(client, world["users"][principal]).status_code == 302


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_read_matrix(app, client, world, principal):
    """GET on every model-view rule: screens by permission, rows by category; ajax and export scoped too."""
    log_in(client, world, principal)
    ids = {}
    for view in MATRIX:
        perms, readable, writable = expectation(view, principal)
        rows = targets(world, view, principal)
        ids[view] = {c: r.id for c, r in rows.items()}
        what = f"{principal} {view}"
        r = client.get(f"/admin/{view}/")
        (assert_allowed if "list" in perms else assert_denied)(r, f"{what} list")
        if "list" in perms:
            page = r.get_data(as_text=True)
            for category, row in rows.items():
                if view in ("institution", "user") and category not in readable:
                    key = row.code if view == "institution" else row.login_id
                    assert key not in page, f"{what} list shows {category}"
        r = client.get(f"/admin/{view}/new/")
        (assert_allowed if "create" in perms else assert_denied)(r, f"{what} create")
        for category, row in rows.items():
            r = client.get(f"/admin/{view}/details/?id={row.id}")
            ok = "details" in perms and category in readable
            (assert_allowed if ok else assert_denied)(r, f"{what} details {category}")
            r = client.get(f"/admin/{view}/edit/?id={row.id}")
            ok = "edit" in perms and category in writable
            (assert_allowed if ok else assert_denied)(r, f"{what} edit {category}")
        for fmt in ("csv", "xlsx", "csv_cp932"):
            r = client.get(f"/admin/{view}/export/{fmt}/")
            (assert_allowed if "export" in perms else assert_denied)(r, f"{what} export {fmt}")
        if "export" in perms and view in ("institution", "user"):
            body = client.get(f"/admin/{view}/export/csv/").get_data().decode("utf-8-sig")
            for category, row in rows.items():
                key = row.code if view == "institution" else row.login_id
                assert (key in body) == (category in readable), f"{what} export {category}"
        r = client.get(f"/admin/{view}/ajax/lookup/?name=institution&query=")
        if view == "membership" and perms & {"create", "edit"}:
            assert_allowed(r, f"{what} ajax")
            found = {item[0] for item in json.loads(r.get_data())}
            inst_rows = targets(world, "institution", principal)
            readable_inst = expectation("institution", principal)[1]
            for category, inst in inst_rows.items():
                assert (inst.id in found) == (category in readable_inst), f"{what} ajax {category}"
        else:
            assert_denied(r, f"{what} ajax lookup")


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_write_matrix(app, client, world, principal):
    """POST delete / edit / ajax_update / actions on every category: only writable rows change."""
    log_in(client, world, principal)
    token = csrf_token(client, "/admin/account/") if principal != "anonymous" else csrf_token(client, "/login")
    # Memberships first, users next, institutions last: later deletes must not be cascades of earlier ones.
    for view in ("membership", "user", "institution", "municipality", "operation_log", "nanbyo_disease"):
        perms, readable, writable = expectation(view, principal)
        model = MODEL_OF[view]
        rows = targets(world, view, principal)
        for category, row in rows.items():
            if view == "user" and category == "own":
                continue  # deleting oneself would end the session; covered by the account tests
            what = f"{principal} {view} {category}"
            row_id = row.id
            r = client.post(f"/admin/{view}/ajax/update/", data={"csrf_token": token, "list_form_pk": row_id})
            assert_denied(r, f"{what} ajax update")
            if view == "user":
                r = client.post("/admin/user/action/", data={"csrf_token": token, "action": "disable",
                                                            "rowid": row_id})
                db.session.expire_all()
                disabled = db.session.get(User, row_id).status == "disabled"
                assert disabled == ("edit" in perms and category in writable), f"{what} disable action"
            if view in ("municipality", "institution"):
                continue  # referenced rows cannot be deleted by anyone: test_referenced_rows_are_not_deleted
            # The list's mass delete action first, then the row's delete button: the same rows only.
            client.post(f"/admin/{view}/action/", data={"csrf_token": token, "action": "delete", "rowid": row_id})
            db.session.expire_all()
            row_now = db.session.get(model, row_id)
            if not (row_now is None or (view == "user" and row_now.status == "deleted")):
                client.post(f"/admin/{view}/delete/", data={"csrf_token": token, "id": row_id})
            db.session.expire_all()
            row_now = db.session.get(model, row_id)
            # Doctors and staff are kept as 削除済み (their documents' history stays readable).
            gone = row_now is None or (view == "user" and row_now.status == "deleted")
            expected_gone = "delete" in perms and category in writable
            assert gone == expected_gone, f"{what} delete: gone={gone}"
            if gone:
                break  # the other categories may share this row


def test_operator_deletes_unreferenced_municipality(client, world):
    hokkaido_id = gen_municipality("010006").id
    login(client, world["users"]["op_admin"])
    client.post("/admin/municipality/delete/", data={"csrf_token": csrf_token(client, "/admin/account/"),
                                                     "id": hokkaido_id})
    db.session.expire_all()
    assert db.session.get(Municipality, hokkaido_id) is None


def test_municipality_admin_cannot_delete_other_municipality(client, world):
    login(client, world["users"]["muni_admin"])
    client.post("/admin/municipality/delete/", data={"csrf_token": csrf_token(client, "/admin/account/"),
                                                     "id": world["tokyo"].id})
    db.session.expire_all()
    assert db.session.get(Municipality, world["tokyo"].id) is not None


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_other_endpoints(app, client, world, principal):
    log_in(client, world, principal)
    anonymous = principal == "anonymous"
    for path in ("/admin/", "/admin/account/"):
        r = client.get(path)
        if anonymous:
            assert r.status_code == 302 and "/login" in r.headers["Location"]
        else:
            assert_allowed(r, f"{principal} {path}")
    assert client.get("/").status_code == 302
    assert client.get("/login").status_code == (200 if anonymous else 302)
    assert client.get("/static/nanbyo.css").status_code == 200
    assert client.get("/admin/static/admin/css/bootstrap4/admin.css").status_code == 200
    for path in ("/first-login", "/first-login/key"):
        assert_denied(client.get(path), f"{principal} {path}")  # set-up is done: back to the home page
    for path in ("/admin/account/profile", "/admin/account/password", "/admin/account/key",
                 "/admin/account/concurrent", "/logout"):
        r = client.post(path, data={})
        assert_denied(r, f"{principal} POST {path} without token")


def _finished_job(owner, endpoint="institution"):
    """A finished export job of `owner` with its file (as nanbyo.export_jobs leaves it)."""
    from datetime import timedelta

    from models._types import utcnow
    from models.exports import ExportJob
    from nanbyo import export_jobs
    name = f"job-of-{owner.login_id}.csv"
    export_jobs.export_store().put(name, f"\ufeffowner\r\n{owner.login_id}\r\n".encode())
    now = utcnow()
    job = ExportJob(owner_id=owner.id, endpoint=endpoint, format="csv", query_args=[], status="done", rows_written=1,
                    total_rows=1, file_name=name, created_at=now, finished_at=now, expires_at=now + timedelta(hours=1))
    db.session.add(job)
    db.session.commit()
    return job.id


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_export_jobs_are_their_owners_alone(app, client, world, principal):
    """出力ファイル: every logged-in user has the page; a job's file goes to its owner only, and any other job id
    (another user's, or none at all) is the same 404."""
    owner = world["users"]["muni_user"] if principal == "op_admin" else world["users"]["op_admin"]
    others = _finished_job(owner)
    mine = _finished_job(world["users"][principal]) if principal != "anonymous" else None
    log_in(client, world, principal)
    for path in ("/admin/exports/", "/admin/exports/status"):
        (assert_denied if principal == "anonymous" else assert_allowed)(client.get(path), f"{principal} {path}")
    r = client.get(f"/admin/exports/{others}/download")
    if principal == "anonymous":
        assert r.status_code == 302 and "/login" in r.headers["Location"]
        return
    assert r.status_code == 404 and client.get(f"/admin/exports/{others + 100}/download").status_code == 404
    page = client.get("/admin/exports/").get_data(as_text=True)
    assert f"/admin/exports/{mine}/download" in page and f"/admin/exports/{others}/download" not in page
    r = client.get(f"/admin/exports/{mine}/download")
    # The file's list (institutions) must still be one the user may export: a 責任者, a doctor and staff may not.
    if principal in ("op_admin", "op_user", "muni_admin", "muni_user"):
        assert r.status_code == 200 and world["users"][principal].login_id in r.get_data(as_text=True)
    else:
        assert r.status_code == 403


@pytest.mark.parametrize("target", ["doctor_b", "own_primary"])
def test_remove_concurrent_is_own_concurrent_only(client, world, target):
    doctor = world["users"]["doctor"]
    other = world["users"]["doctor_b"].memberships[0] if target == "doctor_b" else doctor.memberships[0]
    login(client, doctor)
    client.post(f"/admin/account/concurrent/{other.id}/remove",
                data={"csrf_token": csrf_token(client, "/admin/account/")})
    db.session.expire_all()
    assert db.session.get(Membership, other.id) is not None


def test_doctor_adds_and_removes_own_concurrent(client, world):
    doctor = world["users"]["doctor"]
    login(client, doctor)
    token = csrf_token(client, "/admin/account/")
    r = client.post("/admin/account/concurrent", data={"csrf_token": token, "institution_code": world["b"].code})
    assert r.status_code == 302
    db.session.expire_all()
    added = db.session.execute(db.select(Membership).filter_by(user_id=doctor.id, institution_id=world["b"].id)
                               ).scalar_one()
    assert added.kind == "concurrent" and not added.is_manager
    added_id = added.id
    client.post(f"/admin/account/concurrent/{added_id}/remove", data={"csrf_token": token})
    db.session.expire_all()
    assert db.session.get(Membership, added_id) is None


def test_staff_cannot_add_concurrent(client, world):
    staff = world["users"]["staff"]
    login(client, staff)
    client.post("/admin/account/concurrent", data={"csrf_token": csrf_token(client, "/admin/account/"),
                                                   "institution_code": world["b"].code})
    db.session.expire_all()
    assert len(db.session.get(User, staff.id).memberships) == 1



def test_operation_log_date_filter(app, client, world, monkeypatch):
    """The operation log is searched by Japan time: 2020-01-01 00:30 JST is 2019-12-31 in UTC."""
    from datetime import datetime, timezone
    monkeypatch.setattr(audit, "utcnow", lambda: datetime(2019, 12, 31, 15, 30, tzinfo=timezone.utc))
    audit.record("update", target_type="test", target_id="old-entry")
    monkeypatch.undo()
    audit.record("update", target_type="test", target_id="new-entry")
    view = next(v for v in app.extensions["admin"][0]._views if getattr(v, "endpoint", "") == "operation_log")
    index = next(i for i, f in enumerate(view._filters)
                 if f.column is OperationLog.created_at and type(f).__name__.endswith("BetweenFilter"))
    login(client, world["users"]["op_admin"])
    page = client.get(f"/admin/operation_log/?flt0_{index}=2020-01-01+00:00:00+to+2020-01-01+23:59:59"
                      ).get_data(as_text=True)
    assert "old-entry" in page and "new-entry" not in page
    page = client.get(f"/admin/operation_log/?flt0_{index}=2019-12-31+00:00:00+to+2019-12-31+23:59:59"
                      ).get_data(as_text=True)
    assert "old-entry" not in page


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_single_principal_screens(client, world, principal):
    """The file import is the municipality admin's, the institution user screen the 責任者's; nobody else's."""
    log_in(client, world, principal)
    for owner, paths in SINGLE_PRINCIPAL_PAGES.items():
        for path in paths:
            r = client.get(path)
            (assert_allowed if principal == owner else assert_denied)(r, f"{principal} {path}")
    if principal == "anonymous":
        return
    token = csrf_token(client, "/admin/account/")
    a, b = world["a"], world["b"]
    doctor_b = world["users"]["doctor_b"]
    # Another institution's users through the 責任者 URLs: refused even for the 責任者 of A.
    for path in (f"/admin/institution-users/{b.id}/staff", f"/admin/institution-users/{b.id}/notice/{doctor_b.id}",
                 f"/admin/institution-users/{b.id}/key/{doctor_b.id}",
                 f"/admin/institution-users/{b.id}/unlock/{doctor_b.id}", f"/admin/institution-users/{b.id}/manager"):
        assert_denied(client.post(path, data={"csrf_token": token, "name": "x", "name_kana": "エックス"}), path)
    for action in ("notice", "key", "unlock"):
        r = client.post(f"/admin/institution-users/{a.id}/{action}/{doctor_b.id}", data={"csrf_token": token})
        assert_denied(r, f"{principal} {action} for a user of another institution")
    db.session.expire_all()
    untouched = db.session.get(User, doctor_b.id)
    assert untouched.must_change_password is False and untouched.key_digest is not None
    r = client.post("/admin/user-import/confirm", data={"csrf_token": token})
    assert_denied(r, f"{principal} confirm without a pending file")
