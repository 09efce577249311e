"""Documents: every URL of the document view x every principal x documents of every kind of relation.

Expectations are written out by hand from the issue and DESIGN.md (not derived from nanbyo.access). Every
`document.*` endpoint of app.url_map must be exercised here: `test_every_document_rule_is_covered` fails otherwise.
"""
import csv
import io
import json
import re

import pytest
from sqlalchemy import func

from models.audit import OperationLog
from models.documents import Document
from nanbyo.extensions import db
from nanbyo import documents
from nanbyo.xmlio import import_jobs
from tests.helpers import OSAKA, TOKYO, csrf_token, gen_document, gen_institution, gen_municipality, gen_user, login

PRINCIPALS = ["anonymous", "op_admin", "op_user", "muni_admin", "muni_user", "manager", "doctor", "staff"]
DOCS = ["own_draft", "own_finalized", "own_received", "staff_draft", "colleague", "other_institution",
        "other_municipality"]
ALL_DOCS = set(DOCS)
TOKYO_RECEIVED = {"own_received", "other_institution"}
INST_A = {"own_draft", "own_finalized", "own_received", "staff_draft", "colleague"}
DOCTORS_OWN = {"own_draft", "own_finalized", "own_received", "staff_draft"}

# principal -> {purpose: documents}; purposes: read (details, print, list, export, search), write (edit, delete),
# finalize, review (review, correct). Screen permissions are implied: an empty set means the screen is refused.
EXPECTED = {
    "op_admin": {"read": ALL_DOCS, "write": ALL_DOCS, "finalize": {"own_draft", "staff_draft"}, "review": set()},
    "op_user": {"read": ALL_DOCS, "write": ALL_DOCS, "finalize": {"own_draft", "staff_draft"}, "review": set()},
    "muni_admin": {"read": TOKYO_RECEIVED, "write": set(), "finalize": set(), "review": TOKYO_RECEIVED},
    "muni_user": {"read": TOKYO_RECEIVED, "write": set(), "finalize": set(), "review": TOKYO_RECEIVED},
    "manager": {"read": INST_A, "write": {"colleague"}, "finalize": set(), "review": set()},
    "doctor": {"read": DOCTORS_OWN, "write": {"own_draft", "own_finalized", "staff_draft"},
               "finalize": {"own_draft", "staff_draft"}, "review": set()},
    "staff": {"read": {"staff_draft"}, "write": {"staff_draft"}, "finalize": set(), "review": set()},
    "anonymous": {"read": set(), "write": set(), "finalize": set(), "review": set()},
}
CREATE = {"op_admin", "op_user", "doctor", "staff", "manager"}
LOOKUP = {"muni_admin", "muni_user"}

COVERED = {"index_view", "details_view", "create_view", "edit_view", "delete_view", "export", "action_view",
           "ajax_lookup", "ajax_update", "finalize_view", "print_view", "sheet_view", "lookup_view", "receive_view",
           "review_view", "correct_view", "patient_search_view", "xml_view", "xml_kit_view",
           "import_xml_view", "import_job_view", "import_job_report_view"}


def test_every_document_rule_is_covered(app):
    endpoints = {r.endpoint.split(".", 1)[1] for r in app.url_map.iter_rules() if r.endpoint.startswith("document.")}
    assert endpoints == COVERED


@pytest.fixture
def world(app):
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    a, b, c = gen_institution(tokyo), gen_institution(tokyo), gen_institution(osaka)
    users = {
        "op_admin": gen_user("operator_admin"), "op_user": gen_user("operator_user"),
        "muni_admin": gen_user("municipality_admin", municipality=tokyo),
        "muni_user": gen_user("municipality_user", municipality=tokyo),
        "manager": gen_user("designated_doctor", institution=a, manager=True),
        "doctor": gen_user("designated_doctor", institution=a),
        "staff": gen_user("institution_staff", institution=a),
        "doctor_b": gen_user("designated_doctor", institution=b),
        "doctor_c": gen_user("designated_doctor", institution=c, issuer=osaka),
    }
    u = users
    docs = {
        "own_draft": gen_document(u["doctor"]),
        "own_finalized": gen_document(u["doctor"], status="finalized"),
        "own_received": gen_document(u["doctor"], status="received"),
        "staff_draft": gen_document(u["doctor"], created_by=u["staff"]),
        "colleague": gen_document(u["manager"], status="finalized"),
        "other_institution": gen_document(u["doctor_b"], status="received"),
        "other_municipality": gen_document(u["doctor_c"], status="received"),
    }
    job = import_jobs.create(u["doctor"], u["doctor"].memberships[0].institution, [("a.xml", b"<documents/>")], False)
    import_jobs.run(job.id)  # refused as a whole: a report of one file
    return {"users": users, "docs": {k: v.id for k, v in docs.items()}, "import_job": job.id,
            "patients": {k: documents.patient_of(v) for k, v in docs.items()},
            "keys": {k: v.access_key for k, v in docs.items()}}


def log_in(client, world, principal):
    if principal != "anonymous":
        assert login(client, world["users"][principal]).status_code == 302


def ok(response):
    return response.status_code == 200


def listed_ids(html):
    return {int(i) for i in re.findall(r"details/\?id=(\d+)", html)}


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_url_is_scoped(client, world, principal):
    log_in(client, world, principal)
    expected = EXPECTED[principal]
    ids = world["docs"]
    by_id = {v: k for k, v in ids.items()}

    # Every logged-in role has the list and the export; the rows are what differs.
    r = client.get("/admin/document/")
    assert ok(r) == (principal != "anonymous"), principal
    if ok(r):
        assert {by_id[i] for i in listed_ids(r.get_data(as_text=True)) if i in by_id} == expected["read"]
    r = client.get("/admin/document/export/csv/")
    assert ok(r) == (principal != "anonymous"), principal
    if ok(r):
        rows = list(csv.reader(io.StringIO(r.get_data().decode("utf-8-sig"))))[1:]
        assert {by_id[int(row[0])] for row in rows} == expected["read"]
    r = client.get("/admin/document/new/?kind=nanbyo")
    assert ok(r) == (principal in CREATE), principal
    assert ok(client.get("/admin/document/xml-kit/")) == (principal in CREATE), f"{principal} xml kit"
    # XML取込: a designated doctor (a 責任者 too) or institution staff, for their institutions.
    assert ok(client.get("/admin/document/import-xml/")) == (principal in {"doctor", "staff", "manager"}), principal
    # A background XML import and its report: its uploader's alone.
    job = world["import_job"]
    assert ok(client.get(f"/admin/document/import-xml/{job}/")) == (principal == "doctor"), principal
    assert ok(client.get(f"/admin/document/import-xml/{job}/report.xlsx")) == (principal == "doctor"), principal

    for name, doc_id in ids.items():
        what = f"{principal} {name}"
        readable = name in expected["read"]
        assert ok(client.get(f"/admin/document/details/?id={doc_id}")) == readable, f"{what} details"
        print_ok = readable
        assert ok(client.get(f"/admin/document/print/?id={doc_id}")) == print_ok, f"{what} print"
        assert ok(client.get(f"/admin/document/xml/?id={doc_id}")) == print_ok, f"{what} xml"
        sheet = client.get(f"/admin/document/sheet/?id={doc_id}")
        assert ok(sheet) == (print_ok and world["keys"][name] is not None), f"{what} sheet"
        assert ok(client.get(f"/admin/document/edit/?id={doc_id}")) == (name in expected["write"]), f"{what} edit"
        for url in ("review", "correct"):
            assert ok(client.get(f"/admin/document/{url}/?id={doc_id}")) == (name in expected["review"]), \
                f"{what} {url}"
        # Ajax endpoints serve no document field: refused or empty for everyone.
        r = client.get("/admin/document/ajax/lookup/?name=author&query=")
        assert not ok(r) or json.loads(r.get_data()) == [], what
        # The patient search finds a document exactly when it is readable.
        p = world["patients"][name]
        r = client.get("/admin/document/patient-search/",
                       query_string={"kana": p["family_kana"] + p["given_kana"], "birth_date": p["birth_date"]})
        if ok(r):
            assert (f"details/?id={doc_id}\"" in r.get_data(as_text=True)) == readable, f"{what} search"
        else:
            assert not readable, f"{what} search"


@pytest.mark.parametrize("principal", PRINCIPALS[1:])
def test_posts_are_scoped(client, world, principal):
    """Finalize and delete by POST: a document outside the scope is untouched (404), inside it changes."""
    log_in(client, world, principal)
    expected = EXPECTED[principal]
    token = csrf_token(client, "/admin/account/")
    for name, doc_id in world["docs"].items():
        r = client.post(f"/admin/document/finalize/?id={doc_id}", data={"csrf_token": token})
        db.session.expire_all()
        doc = db.session.get(Document, doc_id)
        if name in expected["finalize"]:
            assert r.status_code == 302 and doc.status == "finalized" and doc.access_key, f"{principal} {name}"
        else:
            assert r.status_code in (403, 404), f"{principal} {name} finalize {r.status_code}"
    for name, doc_id in world["docs"].items():
        # The list's mass delete action and the row's delete button: the same documents only.
        client.post("/admin/document/action/", data={"csrf_token": token, "action": "delete", "rowid": doc_id})
        db.session.expire_all()
        assert (db.session.get(Document, doc_id) is None) == (name in expected["write"]), f"{principal} {name}"
        client.post("/admin/document/delete/", data={"csrf_token": token, "id": doc_id})
        db.session.expire_all()
        gone = db.session.get(Document, doc_id) is None
        assert gone == (name in expected["write"]), f"{principal} {name} delete"


@pytest.mark.parametrize("principal", PRINCIPALS[1:])
def test_mass_finalize_is_scoped(client, world, principal):
    """The list's 確定 action over every document: the drafts this user may finalize become finalized (with a key
    and a log entry each), nothing else changes."""
    log_in(client, world, principal)
    before = {name: db.session.get(Document, doc_id).status for name, doc_id in world["docs"].items()}
    logged = db.session.query(func.max(OperationLog.id)).scalar()
    token = csrf_token(client, "/admin/account/")
    client.post("/admin/document/action/", data={"csrf_token": token, "action": "finalize",
                                                 "rowid": list(world["docs"].values())})
    db.session.expire_all()
    expected = EXPECTED[principal]["finalize"]
    for name, doc_id in world["docs"].items():
        doc = db.session.get(Document, doc_id)
        if name in expected:
            assert doc.status == "finalized" and doc.access_key, f"{principal} {name}"
        else:
            assert doc.status == before[name], f"{principal} {name} mass finalize"
    finalized = [e.target_id for e in db.session.query(OperationLog).filter(
        OperationLog.action == "document_finalize", OperationLog.id > logged)]
    assert sorted(finalized) == sorted(str(world["docs"][name]) for name in expected)


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_key_lookup_only_finds_own_municipality(client, world, principal):
    log_in(client, world, principal)
    r = client.get("/admin/document/lookup/")
    assert ok(r) == (principal in LOOKUP)
    if principal not in LOOKUP:
        return
    token = csrf_token(client, "/admin/document/lookup/")
    findable = {"own_finalized", "own_received", "colleague", "other_institution"}
    for name, key in world["keys"].items():
        if key is None:
            continue
        r = client.post("/admin/document/lookup/", data={"csrf_token": token, "access_key": key})
        doc_id = world["docs"][name]
        shown = r.status_code == 200 and f"No.{doc_id}（照会・未受付）" in r.get_data(as_text=True)
        found = shown or (r.status_code == 302 and f"id={doc_id}" in r.headers["Location"])
        assert found == (name in findable), name


@pytest.mark.parametrize("principal", PRINCIPALS[1:])
def test_receive_only_with_the_key_of_a_document_addressed_to_the_own_municipality(client, world, principal):
    log_in(client, world, principal)
    token = csrf_token(client, "/admin/account/")
    for name, key in world["keys"].items():
        if key is None:
            continue
        r = client.post("/admin/document/receive/", data={"csrf_token": token, "access_key": key})
        db.session.expire_all()
        doc = db.session.get(Document, world["docs"][name])
        received_now = doc.status == "received" and doc.received_by_id == world["users"][principal].id
        assert received_now == (principal in LOOKUP and name in {"own_finalized", "colleague"}), (name, r.status_code)
