"""Documents through the screens: write, finalize, print, key lookup, review; the rules of each step."""
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select, text

from models._types import today_jst
from models.audit import OperationLog
from models.documents import Document, DocumentCorrection
from models.masters import NanbyoDisease, ShomanDisease
from nanbyo import documents, formdefs
from nanbyo.crypto import KeyRingError
from nanbyo.demo import sample_values
from nanbyo.extensions import db
from tests.helpers import (TOKYO, csrf_token, gen_document, gen_institution, gen_municipality, gen_patient,
                           gen_user, login, logout)


@pytest.fixture
def tokyo(app):
    return gen_municipality(TOKYO)


@pytest.fixture
def hospital(tokyo):
    return gen_institution(tokyo)


@pytest.fixture
def doctor(hospital):
    return gen_user("designated_doctor", institution=hospital, designations=("nanbyo", "shoman"))


@pytest.fixture
def clerk(tokyo):
    return gen_user("municipality_user", municipality=tokyo)


def fresh(doc_id):
    db.session.expire_all()
    return db.session.get(Document, doc_id)


def disease(kind, key):
    if kind == "shoman":
        return db.session.execute(select(ShomanDisease).filter_by(shoman_code=key)).scalar_one()
    return db.session.execute(select(NanbyoDisease).filter_by(notification_no=key, is_subtype=False)).scalar_one()


def specific(kind):
    return next(d for d in formdefs.load_definitions().values() if d.kind == kind and d.diseases)


def content_form(doc, patient=None, **changes):
    """What the edit screen posts: dates, patient block and the disease items, from the stored values."""
    definition = formdefs.definition(doc.form_code)
    data = {"version": str(doc.version_id), "written_on": doc.written_on.isoformat(),
            "diagnosed_on": doc.diagnosed_on.isoformat() if doc.diagnosed_on else "",
            "explained_on": doc.explained_on.isoformat() if doc.explained_on else ""}
    data.update(patient or documents.patient_of(doc))
    data.update(formdefs.form_data(definition, doc.items or sample_values(definition)))
    data.update(changes)
    return data


def post(client, url, data, page=None):
    return client.post(url, data={"csrf_token": csrf_token(client, page or url), **data})


def flashes(response):
    return response.get_data(as_text=True)


def log_actions(action):
    return db.session.execute(select(OperationLog).filter_by(action=action).order_by(OperationLog.seq)).scalars().all()


# --- the whole lifecycle through the screens ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["nanbyo", "shoman"])
def test_lifecycle_write_finalize_print_lookup_review(client, tokyo, hospital, doctor, clerk, kind):
    definition = specific(kind)
    chosen = disease(kind, definition.diseases[0])
    login(client, doctor)
    r = post(client, f"/admin/document/new/?kind={kind}",
             {"application_kind": "new", "disease": str(chosen.id), "institution": str(hospital.id),
              "author": str(doctor.id), "municipality": str(tokyo.id), "explanation": "agreed"})
    assert r.status_code == 302, flashes(r)
    doc = db.session.execute(select(Document).order_by(Document.id.desc())).scalars().first()
    assert (doc.kind, doc.status, doc.form_code, doc.author_id) == (kind, "draft", definition.code, doctor.id)

    # The edit screen shows the disease's own items.
    page = client.get(f"/admin/document/edit/?id={doc.id}").get_data(as_text=True)
    assert all(formdefs.field_name(i) in page for i in definition.items[:3])
    birth = "2015-06-01"
    patient = gen_patient(birth_date=birth, family_kana="ミホン", given_kana="ハナコ")
    data = content_form(doc, patient, diagnosed_on=(today_jst() - timedelta(days=5)).isoformat(),
                        explained_on=today_jst().isoformat(), finalize="1")
    data.update(formdefs.form_data(definition, sample_values(definition)))
    r = post(client, f"/admin/document/edit/?id={doc.id}", data)
    assert r.status_code == 302, flashes(client.get(f"/admin/document/edit/?id={doc.id}"))
    doc = fresh(doc.id)
    assert doc.status == "finalized" and len(doc.access_key) == 8
    assert set(doc.access_key) <= set(documents.ACCESS_KEY_ALPHABET)
    assert documents.patient_of(doc)["given_name"] == patient["given_name"]

    pdf = client.get(f"/admin/document/print/?id={doc.id}")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF") and pdf.headers["Cache-Control"] == "no-store"
    sheet = client.get(f"/admin/document/sheet/?id={doc.id}")
    assert sheet.status_code == 200 and sheet.data.startswith(b"%PDF")
    key = doc.access_key
    logout(client)

    login(client, clerk)
    assert client.get(f"/admin/document/details/?id={doc.id}").status_code == 404  # not before the lookup
    typed = f" {key[:4].lower()}-{key[4:]} "  # as typed: lower case, a hyphen, blanks
    r = post(client, "/admin/document/lookup/", {"access_key": typed})
    assert r.status_code == 200 and "照会・未受付" in flashes(r) and fresh(doc.id).status == "finalized"
    r = post(client, "/admin/document/receive/", {"access_key": key, "reception_no": "R-0"}, "/admin/document/lookup/")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"id={doc.id}")
    doc = fresh(doc.id)
    assert doc.status == "received" and doc.received_by_id == clerk.id and doc.reception_no == "R-0"
    assert patient["given_name"] in client.get(f"/admin/document/details/?id={doc.id}").get_data(as_text=True)

    review = {"version": str(doc.version_id), "reception_no": "R-1", "recipient_no": "1234567",
              "application_received_on": today_jst().isoformat(), "research_consent": "1",
              "review_result": "approved", "valid_from": today_jst().isoformat(),
              "valid_until": (today_jst() + timedelta(days=364)).isoformat(), "severity": "重症", "review_note": ""}
    r = post(client, f"/admin/document/review/?id={doc.id}", review | {"complete": "1"})
    assert r.status_code == 302
    doc = fresh(doc.id)
    assert (doc.status, doc.review_result, doc.research_consent, doc.recipient_no) == (
        "completed", "approved", True, "1234567")
    corrections = {c.field: documents.correction_values(c) for c in doc.corrections}
    assert corrections["recipient_no"] == {"old": "", "new": "1234567"}
    actions = [e.action for e in db.session.execute(select(OperationLog).where(
        OperationLog.target_type == "document", OperationLog.target_id == str(doc.id))).scalars()]
    assert {"create", "update", "document_finalize", "document_print", "key_lookup", "document_receive",
            "document_review"} <= set(actions)


# --- who may write what --------------------------------------------------------------------------------------------

def test_staff_drafts_only_the_doctor_finalizes(client, hospital, doctor):
    staff = gen_user("institution_staff", institution=hospital)
    login(client, staff)
    r = post(client, "/admin/document/new/?kind=nanbyo",
             {"application_kind": "new", "disease": str(disease("nanbyo", 2).id), "institution": str(hospital.id),
              "author": str(doctor.id), "municipality": str(hospital.municipality_id), "explanation": "agreed"})
    assert r.status_code == 302
    doc = db.session.execute(select(Document)).scalar_one()
    assert (doc.author_id, doc.created_by_id) == (doctor.id, staff.id)
    today = today_jst().isoformat()
    r = post(client, f"/admin/document/edit/?id={doc.id}",
             content_form(doc, gen_patient(), diagnosed_on=today, explained_on=today, finalize="1"))
    assert r.status_code == 302 and fresh(doc.id).status == "draft"  # saved, not finalized
    assert "save-and-finalize" not in client.get(f"/admin/document/edit/?id={doc.id}").get_data(as_text=True)
    assert post(client, f"/admin/document/finalize/?id={doc.id}", {}, "/admin/account/").status_code == 403
    logout(client)
    login(client, doctor)
    r = post(client, f"/admin/document/finalize/?id={doc.id}", {}, f"/admin/document/details/?id={doc.id}")
    assert r.status_code == 302 and fresh(doc.id).status == "finalized", documents.finalize_problems(fresh(doc.id))


@pytest.mark.parametrize("kind, application_kind, designations, refused", [
    ("nanbyo", "new", ("nanbyo_kyoryoku",), "協力難病指定医は更新の臨床調査個人票だけ"),
    ("nanbyo", "change", ("nanbyo_kyoryoku",), "臨床調査個人票は難病指定医"),
    ("nanbyo", "renewal", ("nanbyo_kyoryoku",), None),
    ("shoman", "new", ("nanbyo",), "小慢の医療意見書は小慢指定医だけ"),
    ("shoman", "new", ("shoman",), None),
    ("nanbyo", "new", ("shoman",), "臨床調査個人票は難病指定医"),
])
def test_who_may_write_which_document(client, hospital, kind, application_kind, designations, refused):
    author = gen_user("designated_doctor", institution=hospital, designations=designations)
    login(client, author)
    chosen = disease(kind, "01_01_001" if kind == "shoman" else 2)
    r = post(client, f"/admin/document/new/?kind={kind}",
             {"application_kind": application_kind, "disease": str(chosen.id), "institution": str(hospital.id),
              "author": str(author.id), "municipality": str(hospital.municipality_id), "explanation": "agreed"})
    count = db.session.execute(select(db.func.count()).select_from(Document)).scalar()
    if refused:
        assert r.status_code == 200 and refused in r.get_data(as_text=True) and count == 0
    else:
        assert r.status_code == 302 and count == 1


def test_doctor_cannot_write_as_another_doctor_or_at_a_foreign_institution(client, tokyo, hospital, doctor):
    other = gen_user("designated_doctor", institution=hospital)
    elsewhere = gen_institution(tokyo)
    login(client, doctor)
    for author, institution in ((other, hospital), (doctor, elsewhere)):
        r = post(client, "/admin/document/new/?kind=nanbyo",
                 {"application_kind": "new", "disease": str(disease("nanbyo", 2).id),
                  "institution": str(institution.id), "author": str(author.id), "municipality": str(tokyo.id),
                  "explanation": "agreed"})
        assert r.status_code == 200
    assert db.session.execute(select(db.func.count()).select_from(Document)).scalar() == 0


def paper_entry(**changes):
    """What the operator's new-document form posts for a paper form."""
    return {"application_kind": "new", "disease": str(disease("nanbyo", 6).id), "doctor_number": "13-N-5555",
            "doctor_name": "紙山 一郎", "institution_code": "1310000555", "institution_name": "紙山医院",
            "municipality": "", "explanation": "agreed", "scans": ""} | changes


def test_operator_enters_a_paper_form_of_a_doctor_without_login(app, client, tokyo, clerk):
    from models.scans import ScanFile
    from tests.helpers import gen_scan
    scan = gen_scan(clerk, reception_no="R-PAPER-1")
    operator = gen_user("operator_user")
    login(client, operator)
    r = post(client, "/admin/document/new/?kind=nanbyo", paper_entry(scans=str(scan.id)))
    assert r.status_code == 302, flashes(r)
    doc = db.session.execute(select(Document)).scalar_one()
    assert (doc.author_id, doc.institution_id, doc.created_by_id, doc.municipality_id, doc.status) == (
        None, None, operator.id, tokyo.id, "draft")
    assert (doc.paper_doctor_number, doc.paper_doctor_name, doc.paper_institution_code) == (
        "13-N-5555", "紙山 一郎", "1310000555")
    db.session.expire_all()
    assert db.session.get(ScanFile, scan.id).document_id == doc.id  # reserved for it
    # The municipality does not see a draft; the operator completes it and sends it to 受付.
    assert login(app.test_client(), clerk).status_code == 302
    page = client.get(f"/admin/document/edit/?id={doc.id}").get_data(as_text=True)
    assert "保存して受付へ送る" in page
    today = today_jst().isoformat()
    r = post(client, f"/admin/document/edit/?id={doc.id}",
             content_form(doc, gen_patient(), diagnosed_on=today, explained_on=today, finalize="1"))
    assert r.status_code == 302, flashes(client.get(f"/admin/document/edit/?id={doc.id}"))
    doc = fresh(doc.id)
    assert (doc.status, doc.reception_no, doc.access_key) == ("received", "R-PAPER-1", None)
    db.session.expire_all()
    assert db.session.get(ScanFile, scan.id).status == "digitized"
    entry = log_actions("document_paper_receive")[-1]
    assert entry.data == {"scans": [scan.id], "reception_no": "R-PAPER-1"} and entry.actor_id == operator.id
    town = app.test_client()
    login(town, clerk)
    details = town.get(f"/admin/document/details/?id={doc.id}").get_data(as_text=True)
    assert "紙山 一郎（指定医番号 13-N-5555・紙の書類）" in details and 'id="review-document"' in details
    assert town.get(f"/admin/document/review/?id={doc.id}").status_code == 200


def test_operator_paper_entry_without_a_scan_goes_to_the_chosen_municipality(client, tokyo, clerk):
    login(client, gen_user("operator_user"))
    r = post(client, "/admin/document/new/?kind=nanbyo", paper_entry(municipality=str(tokyo.id)))
    assert r.status_code == 302, flashes(r)
    doc = db.session.execute(select(Document)).scalar_one()
    today = today_jst().isoformat()
    post(client, f"/admin/document/edit/?id={doc.id}",
         content_form(doc, gen_patient(), diagnosed_on=today, explained_on=today, finalize="1"))
    doc = fresh(doc.id)
    assert doc.status == "received" and doc.reception_no == f"{documents.fiscal_year(today_jst())}-000001"


def test_operator_paper_entry_checks_what_the_paper_says(client, hospital, doctor, clerk):
    from tests.helpers import gen_scan
    number = doctor.designations[0].number
    shoman_scan = gen_scan(clerk, kind="shoman")
    login(client, gen_user("operator_user"))
    for changes, message in [
        ({"doctor_number": number, "doctor_name": "別人 二郎"}, f"指定医番号 {number} の指定医は、登録では"),
        ({"institution_code": hospital.code, "institution_name": "違う病院"}, "登録では「"),
        ({"institution_name": ""}, "医療機関名を入力してください"),
        ({"institution_code": "99"}, "医療機関コードは10桁"),
        ({"doctor_number": "番号"}, "指定医番号は英数字"),
        ({"scans": "999999"}, "No.999999 はありません"),
        ({"scans": str(shoman_scan.id)}, "として受け付けられています"),
        ({"scans": "x1"}, "数字で入力してください"),
        ({"municipality": ""}, "提出先を"),
    ]:
        r = post(client, "/admin/document/new/?kind=nanbyo", paper_entry(**changes))
        assert r.status_code == 200 and message in flashes(r), (changes, message)
    assert db.session.execute(select(db.func.count()).select_from(Document)).scalar() == 0
    # A registered doctor's number with the registered name is accepted, still as data.
    r = post(client, "/admin/document/new/?kind=nanbyo",
             paper_entry(doctor_number=number, doctor_name=doctor.name, institution_code=hospital.code,
                         institution_name="", municipality=str(hospital.municipality_id)))
    assert r.status_code == 302, flashes(r)
    doc = db.session.execute(select(Document)).scalar_one()
    assert (doc.author_id, doc.institution_id, doc.paper_institution_name) == (None, None, hospital.name)


# --- finalize checks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"explained_on": None}, "説明は確定の前に必要です"),
    ({"diagnosed_on": today_jst(), "written_on": today_jst() - timedelta(days=1)}, "診断年月日は作成年月日以前"),
    ({"written_on": today_jst() + timedelta(days=1)}, "作成年月日に未来の日付"),
    ({"diagnosed_on": None}, "「診断年月日」を入力してください"),
])
def test_finalize_checks_dates_and_explanation(doctor, change, message):
    doc = gen_document(doctor)
    for key, value in change.items():
        setattr(doc, key, value)
    db.session.commit()
    assert any(message in p for p in documents.finalize_problems(doc))


def test_shoman_new_application_must_be_under_18(doctor):
    today = today_jst()
    adult = gen_patient(birth_date=date(today.year - 20, today.month, 1).isoformat())
    doc = gen_document(doctor, kind="shoman", patient=gen_patient())
    assert documents.finalize_problems(doc) == []
    documents.set_patient(doc, adult)
    db.session.commit()
    assert any("新規の申請は18歳未満" in p for p in documents.finalize_problems(doc))


def test_required_items_and_patient_fields_block_finalizing(client, doctor):
    doc = gen_document(doctor, items={})
    definition = formdefs.definition(doc.form_code)
    required = [i for i in definition.items if i.required and not i.when]
    problems = documents.finalize_problems(doc)
    assert required and all(any(i.label in p for p in problems) for i in required)
    login(client, doctor)
    patient = documents.patient_of(doc) | {"family_kana": "yamada"}
    r = post(client, f"/admin/document/edit/?id={doc.id}", content_form(doc, patient))
    assert "カタカナで入力してください" in r.get_data(as_text=True)
    assert documents.patient_of(fresh(doc.id))["family_kana"] != "yamada"  # nothing saved
    r = post(client, f"/admin/document/finalize/?id={doc.id}", {}, f"/admin/document/details/?id={doc.id}")
    assert fresh(doc.id).status == "draft" and fresh(doc.id).access_key is None


def test_doctor_edits_until_the_municipality_receives_it_and_changes_are_recorded(client, doctor, clerk):
    doc = gen_document(doctor, status="finalized")
    login(client, doctor)
    old_address = documents.patient_of(doc)["address"]
    patient = documents.patient_of(doc) | {"address": "東京都新宿区訂正町2-2"}
    r = post(client, f"/admin/document/edit/?id={doc.id}", content_form(doc, patient))
    assert r.status_code == 302
    doc = fresh(doc.id)
    (correction,) = doc.corrections.all()
    assert (correction.field, correction.user_id) == ("patient.address", doctor.id)
    assert documents.correction_values(correction) == {"old": old_address, "new": "東京都新宿区訂正町2-2"}
    # A finalized document stays finalizable: a change that breaks the checks is refused whole.
    r = post(client, f"/admin/document/edit/?id={doc.id}", content_form(doc, explained_on="", written_on="2020-01-01",
                                                                         diagnosed_on="2020-02-01"))
    assert "確定の条件を満たす内容でだけ保存できます" in r.get_data(as_text=True)
    assert fresh(doc.id).written_on == today_jst()
    logout(client)
    login(client, clerk)
    post(client, "/admin/document/receive/", {"access_key": doc.access_key}, "/admin/document/lookup/")
    logout(client)
    login(client, doctor)
    assert client.get(f"/admin/document/edit/?id={doc.id}").status_code == 404
    assert post(client, "/admin/document/delete/", {"id": doc.id}, "/admin/account/").status_code == 302
    assert fresh(doc.id) is not None


def test_municipality_corrects_content_with_history(client, doctor, clerk):
    doc = gen_document(doctor, status="received")
    login(client, clerk)
    patient = documents.patient_of(doc) | {"given_name": "訂正後"}
    r = post(client, f"/admin/document/correct/?id={doc.id}", content_form(doc, patient))
    assert r.status_code == 302
    page = client.get(f"/admin/document/details/?id={doc.id}").get_data(as_text=True)
    assert "訂正履歴" in page and "訂正後" in page and clerk.name in page


@pytest.mark.parametrize("review, message", [
    ({"review_result": "approved", "valid_from": "", "valid_until": ""}, "有効期間（開始・終了）を入力"),
    ({"review_result": "approved", "valid_from": "2026-05-01", "valid_until": "2026-04-01"}, "開始は終了以前"),
    ({"review_result": "pending", "complete": "1"}, "保留の書類は登録完了にできません"),
    ({"review_result": "", "complete": "1"}, "審査結果を入力してください"),
    ({"review_result": "maybe"}, "選択肢にない値です"),
    ({"application_received_on": "2026-02-30"}, "正しい日付ではありません"),
])
def test_review_refuses_bad_input_and_changes_nothing(client, doctor, clerk, review, message):
    doc = gen_document(doctor, status="received")
    login(client, clerk)
    r = post(client, f"/admin/document/review/?id={doc.id}", {"version": str(doc.version_id)} | review)
    assert r.status_code == 200 and message in r.get_data(as_text=True)
    doc = fresh(doc.id)
    assert (doc.status, doc.review_result, doc.corrections.count()) == ("received", None, 0)


# --- concurrency ---------------------------------------------------------------------------------------------------

def test_two_sessions_save_the_same_version_one_gets_the_conflict(app, doctor):
    doc = gen_document(doctor)
    first, second = app.test_client(), app.test_client()
    for c in (first, second):
        login(c, doctor)
    url = f"/admin/document/edit/?id={doc.id}"
    forms = []
    for c, name in ((first, "一番目"), (second, "二番目")):
        forms.append((c, {"csrf_token": csrf_token(c, url)} | content_form(doc, documents.patient_of(doc) |
                                                                            {"given_name": name})))
    results = [c.post(url, data=data) for c, data in forms]
    assert results[0].status_code == 302
    assert results[1].status_code == 302 and results[1].headers["Location"].endswith(url.split("/admin")[1])
    conflict_page = second.get(f"/admin/document/details/?id={doc.id}").get_data(as_text=True)
    doc = fresh(doc.id)
    assert documents.patient_of(doc)["given_name"] == "一番目" and doc.version_id == 2
    assert "上書きを防ぐため保存しませんでした" in results[1].get_data(as_text=True) + conflict_page
    assert any(e.result == "conflict" for e in log_actions("update"))


def test_version_column_refuses_a_stale_write_between_read_and_commit(app, doctor):
    """Two database sessions read version 1; the second UPDATE matches no row and raises, losing nothing."""
    from sqlalchemy.orm import Session
    from sqlalchemy.orm.exc import StaleDataError
    doc = gen_document(doctor)
    with Session(db.engine) as one, Session(db.engine) as two:
        a, b = one.get(Document, doc.id), two.get(Document, doc.id)
        a.review_note, b.review_note = "A", "B"
        one.commit()
        with pytest.raises(StaleDataError):
            two.commit()
    assert fresh(doc.id).review_note == "A"


# --- encryption at rest --------------------------------------------------------------------------------------------

def raw_rows(table):
    return [dict(r._mapping) for r in db.session.execute(text(f"SELECT * FROM {table}"))]


def test_patient_block_and_corrections_hold_no_plaintext(client, doctor, clerk):
    patient = gen_patient(family_name="暗号", given_name="秘密子", given_kana="ヒミツコ", birth_date="2013-03-03",
                          address="東京都秘密区1-2-3", insurer_number="13999999")
    doc = gen_document(doctor, status="received", patient=patient)
    login(client, clerk)
    post(client, f"/admin/document/correct/?id={doc.id}", content_form(doc, patient | {"given_name": "訂正秘密"}))
    secrets_ = ["暗号", "秘密子", "ヒミツコ", "2013-03-03", "東京都秘密区", "13999999", "訂正秘密"]
    for table in ("document", "document_correction"):
        rows = raw_rows(table)
        assert rows
        dump = repr(rows).encode() + b"".join(bytes(v) for r in rows for v in r.values()
                                              if isinstance(v, (bytes, memoryview)))
        for s in secrets_:
            assert s.encode() not in dump and s not in repr(rows), (table, s)
    logs = repr([e.data for e in db.session.execute(select(OperationLog)).scalars()])
    assert not any(s in logs for s in secrets_)


def test_ciphertext_is_bound_to_its_document(doctor):
    one, two = gen_document(doctor), gen_document(doctor)
    db.session.execute(text("UPDATE document SET patient_cipher = :c WHERE id = :id"),
                       {"c": one.patient_cipher, "id": two.id})
    db.session.commit()
    with pytest.raises(KeyRingError):
        documents.patient_of(fresh(two.id))


def test_rotate_key_reencrypts_everything_and_reads_back_the_same(app, runner, client, doctor, clerk):
    import json
    from nanbyo.crypto import keys_path
    docs = [gen_document(doctor, status="received") for _ in range(3)]
    login(client, clerk)
    post(client, f"/admin/document/correct/?id={docs[0].id}",
         content_form(docs[0], documents.patient_of(docs[0]) | {"given_name": "訂正"}))
    before = {d.id: (documents.patient_of(fresh(d.id)), bytes(fresh(d.id).patient_cipher), fresh(d.id).version_id)
              for d in docs}
    corrections_before = [documents.correction_values(c) for c in db.session.execute(
        select(DocumentCorrection)).scalars()]
    old_keys = set(json.loads(keys_path(app).read_text())["keys"])
    result = runner.invoke(args=["nanbyo", "rotate-key", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    ring = json.loads(keys_path(app).read_text())
    assert set(ring["keys"]).isdisjoint(old_keys) and len(ring["keys"]) == 1 and len(ring["index_keys"]) == 1
    app.extensions.pop("nanbyo_keyring", None)  # as a new process would: read the key file again
    for doc_id, (patient, cipher, version) in before.items():
        doc = fresh(doc_id)
        assert documents.patient_of(doc) == patient and bytes(doc.patient_cipher) != cipher
        assert doc.version_id == version
    assert [documents.correction_values(c) for c in db.session.execute(
        select(DocumentCorrection)).scalars()] == corrections_before
    p = before[docs[1].id][0]
    found = db.session.execute(select(Document.id).where(documents.patient_criterion(
        p["family_kana"] + p["given_kana"], date.fromisoformat(p["birth_date"])))).scalars().all()
    assert found == [docs[1].id]
    assert log_actions("rotate_key")[-1].data == {"documents": 3, "corrections": 1, "held_forms": 0, "scans": 0,
                                                  "import_files": 0, "import_reports": 0, "previews": 0}


def test_patient_search_normalises_what_the_clerk_types(client, doctor):
    doc = gen_document(doctor, patient=gen_patient(family_kana="ミホン", given_kana="ハナコ", birth_date="2016-05-12"))
    gen_document(doctor, patient=gen_patient(family_kana="ミホン", given_kana="ハナコ", birth_date="2016-05-13"))
    login(client, doctor)
    for typed in ("ミホン ハナコ", "みほん　はなこ", "ﾐﾎﾝﾊﾅｺ"):
        r = client.get("/admin/document/patient-search/", query_string={"kana": typed, "birth_date": "2016-05-12"})
        page = r.get_data(as_text=True)
        assert f"details/?id={doc.id}\"" in page and page.count("details/?id=") == 1, typed
    r = client.get("/admin/document/patient-search/", query_string={"kana": "ミホン", "birth_date": ""})
    assert "両方を入力してください" in r.get_data(as_text=True)


# --- access keys -----------------------------------------------------------------------------------------------------

def test_access_keys_are_random_unique_and_unambiguous(doctor):
    keys = {gen_document(doctor, status="finalized").access_key for _ in range(20)}
    assert len(keys) == 20
    assert all(len(k) == 8 and not set(k) & set("01ILO") for k in keys)


@pytest.mark.parametrize("typed, message", [
    ("", "入力してください"), ("ABC", "8文字です"), ("ABCD1234", "使われない文字"), ("OOOOOOOO", "使われない文字"),
])
def test_malformed_keys_are_explained(typed, message):
    key, error = documents.normalise_access_key(typed)
    assert key is None and message in error


def test_key_lookup_brute_force_is_throttled_and_logged(app, client, tokyo, doctor, clerk):
    doc = gen_document(doctor, status="finalized")
    app.config["NANBYO_KEY_LOOKUP_MAX_FAILURES"] = 5
    login(client, clerk)
    token = csrf_token(client, "/admin/document/lookup/")
    wrong = [k for k in ("23456789", "3456789A", "456789AB", "56789ABC", "6789ABCD", "789ABCDE") if k != doc.access_key]
    for key in wrong[:5]:
        r = client.post("/admin/document/lookup/", data={"csrf_token": token, "access_key": key})
        assert "見つかりません" in r.get_data(as_text=True)
    r = client.post("/admin/document/lookup/", data={"csrf_token": token, "access_key": doc.access_key})
    assert r.status_code == 200 and "上限を超えました" in r.get_data(as_text=True)
    assert fresh(doc.id).status == "finalized"  # the right key is refused too while throttled
    entries = log_actions("key_lookup")
    assert [e.result for e in entries] == ["failure"] * 5 + ["throttled"]
    assert all(e.actor_id == clerk.id for e in entries)
    assert not any(doc.access_key in repr(e.data) or k in repr(e.data) for e in entries for k in wrong)
    # Per user: another clerk of the same municipality is not held back.
    other = gen_user("municipality_user", municipality=tokyo)
    second = app.test_client()
    login(second, other)
    r = post(second, "/admin/document/lookup/", {"access_key": doc.access_key})
    assert r.status_code == 200 and "照会・未受付" in r.get_data(as_text=True)


def test_documents_of_a_doctor_who_moved_stay_readable(client, tokyo, hospital, doctor, clerk):
    """Issue 3 item 6: the old ID is deleted by its issuer; its documents stay with the institution and 自治体."""
    manager = gen_user("designated_doctor", institution=hospital, manager=True)
    doc = gen_document(doctor, status="received")
    admin = gen_user("municipality_admin", municipality=tokyo)
    login(client, admin)
    post(client, "/admin/user/delete/", {"id": doctor.id}, "/admin/account/")
    assert fresh(doc.id).author.status == "deleted"
    for reader in (manager, clerk):
        c = client.application.test_client()
        login(c, reader)
        assert c.get(f"/admin/document/details/?id={doc.id}").status_code == 200, reader.login_id
    # The municipality can still correct it: the content checks hold, whoever wrote it.
    patient = documents.patient_of(doc) | {"address": "東京都訂正区1-1"}
    r = post(c, f"/admin/document/correct/?id={doc.id}", content_form(fresh(doc.id), patient))
    assert r.status_code == 302 and documents.patient_of(fresh(doc.id))["address"] == "東京都訂正区1-1"


def test_demo_has_both_kinds_in_every_status(runner):
    result = runner.invoke(args=["nanbyo", "demo"])
    assert result.exit_code == 0, result.output
    everything = db.session.execute(select(Document)).scalars().all()
    assert all(documents.patient_of(d)["family_kana"] == "ミホン" for d in everything)
    docs = [d for d in everything if not d.is_paper]
    assert {(d.kind, d.status) for d in docs} == {(k, s) for k in ("shoman", "nanbyo")
                                                  for s in ("draft", "finalized", "received", "reviewed", "completed")}
    assert {(d.author.login_id, d.institution.code, d.municipality.name) for d in docs} == {
        ("doctor", "1310000017", "東京都")}
    assert all(d.access_key for d in docs if d.status != "draft")
    # And a paper form of a doctor without an account, received at 東京都 with its scan; another scan waits.
    paper = [d for d in everything if d.is_paper]
    assert [(d.status, d.access_key, d.paper_doctor_number, d.municipality.name) for d in paper] == [
        ("received", None, "13-N-0999", "東京都")]
    from models.scans import ScanFile
    assert sorted((s.status, s.document_id) for s in db.session.execute(select(ScanFile)).scalars()) == [
        ("digitized", paper[0].id), ("waiting", None)]


def test_list_filters_by_status_and_key_within_the_scope(client, doctor):
    draft = gen_document(doctor)
    final = gen_document(doctor, status="finalized")
    other = gen_document(gen_user("designated_doctor", institution=gen_institution()), status="finalized")
    login(client, doctor)
    page = client.get("/admin/document/").get_data(as_text=True)
    assert "状態" in page and "アクセスキー" in page
    views = client.application.extensions["admin"][0]._views
    view = next(v for v in views if getattr(v, "endpoint", "") == "document")
    index = {f.name: i for i, f in enumerate(view._filters)}

    def listed(name, value):
        # Flask-Admin names a filter flt0_<index>=value
        html = client.get("/admin/document/", query_string={f"flt0_{index[name]}": value}).get_data(as_text=True)
        return {int(i) for i in re.findall(r"details/\?id=(\d+)", html)}
    assert listed("状態", "draft") == {draft.id}
    assert listed("状態", "finalized") == {final.id}
    assert listed("アクセスキー", final.access_key) == {final.id}
    assert listed("アクセスキー", other.access_key) == set()  # another doctor's key finds nothing here
    # No. is a number: a number finds its row (within the scope), anything else is no filter and no error (on
    # PostgreSQL `id = 'text'` was a 500).
    assert listed("No.", str(final.id)) == {final.id}
    assert listed("No.", str(other.id)) == set()
    for typed in ("abc", "1 OR 1=1", "１２"):
        response = client.get("/admin/document/", query_string={f"flt0_{index['No.']}": typed})
        assert response.status_code == 200, typed


@pytest.mark.parametrize("role, shortcut, present", [
    ("municipality_user", "home-key-lookup", True), ("designated_doctor", "home-key-lookup", False),
])
def test_home_offers_the_document_work_of_the_role(client, hospital, tokyo, role, shortcut, present):
    user = gen_user(role, municipality=tokyo) if role.startswith("municipality") else gen_user(role,
                                                                                                institution=hospital)
    login(client, user)
    assert (shortcut in client.get("/admin/").get_data(as_text=True)) == present


def test_deleting_a_paper_draft_frees_its_scan(app, client, clerk):
    from models.scans import ScanFile
    from tests.helpers import gen_scan
    scan = gen_scan(clerk)
    login(client, gen_user("operator_user"))
    assert post(client, "/admin/document/new/?kind=nanbyo", paper_entry(scans=str(scan.id))).status_code == 302
    doc_id = db.session.execute(select(Document.id)).scalar_one()
    assert post(client, "/admin/document/delete/", {"id": doc_id}, "/admin/account/").status_code == 302
    db.session.expire_all()
    assert db.session.get(Document, doc_id) is None
    assert (db.session.get(ScanFile, scan.id).document_id, db.session.get(ScanFile, scan.id).status) == (
        None, "waiting")


def test_only_the_operator_enters_paper_a_doctor_cannot_take_a_scan(client, tokyo, hospital, doctor, clerk):
    from models.scans import ScanFile
    from tests.helpers import gen_scan
    scan = gen_scan(clerk)
    login(client, doctor)
    r = post(client, "/admin/document/new/?kind=nanbyo", paper_entry(
        scans=str(scan.id), institution=str(hospital.id), author=str(doctor.id), municipality=str(tokyo.id)))
    assert r.status_code == 302, flashes(r)
    doc = db.session.execute(select(Document)).scalar_one()
    assert (doc.author_id, doc.institution_id, doc.is_paper) == (doctor.id, hospital.id, False)
    db.session.expire_all()
    assert db.session.get(ScanFile, scan.id).document_id is None  # the posted scan No. is not the doctor's to use
