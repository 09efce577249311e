"""The ministry notice's and the statute's rules on documents, through the screens where a person meets them:
実施主体 and 提出先, diseases in force, 指定期間, 小慢 age, form versions, 説明, 研究利用同意, 診断年月日, 軽症者登録,
lookup vs 受付, and the patient block without insurance."""
import json
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from models._types import today_jst
from models.documents import Document
from models.masters import NanbyoDisease, ShomanDisease
from nanbyo import documents, formdefs
from nanbyo.demo import sample_values
from nanbyo.extensions import db
from tests.helpers import (TOKYO, csrf_token, gen_document, gen_institution, gen_municipality, gen_patient,
                           gen_user, log_entries, login)

HACHIOJI, SETAGAYA, YOKOHAMA = "132012", "131121", "141003"


def municipality(code):
    return gen_municipality(code)


def post(client, url, data, page=None):
    return client.post(url, data={"csrf_token": csrf_token(client, page or url), **data})


def document_count():
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(Document)).scalar()


def latest():
    db.session.expire_all()
    return db.session.execute(select(Document).order_by(Document.id.desc())).scalars().first()


def reload(doc_id):
    db.session.expire_all()
    return db.session.get(Document, doc_id)


def a_disease(kind, key=None):
    if kind == "shoman":
        return db.session.execute(select(ShomanDisease).filter_by(shoman_code=key or "01_01_001")).scalars().first()
    return db.session.execute(select(NanbyoDisease).filter_by(notification_no=key or 2, is_subtype=False)).scalar_one()


def new_form(kind, institution, author, destination, **changes):
    return {"application_kind": "new", "disease": str(a_disease(kind).id), "institution": str(institution.id),
            "author": str(author.id), "municipality": str(destination.id), "explanation": "agreed", **changes}


def content(doc, patient=None, **changes):
    """What the author's edit screen posts."""
    definition = documents.definition_of(doc)
    data = {"version": str(doc.version_id), "written_on": doc.written_on.isoformat(),
            "diagnosed_on": doc.diagnosed_on.isoformat() if doc.diagnosed_on else "",
            "explained_on": doc.explained_on.isoformat() if doc.explained_on else "",
            "municipality": str(doc.municipality_id), "explanation": doc.explanation or ""}
    data.update(patient or documents.patient_of(doc))
    data.update(formdefs.form_data(definition, doc.items or sample_values(definition)))
    data.update(changes)
    return data


@pytest.fixture
def hachioji_hospital(app):
    """A hospital in 八王子市 (中核市): 東京都 for 難病, 八王子市 for 小慢."""
    return gen_institution(gen_municipality(TOKYO), shoman=municipality(HACHIOJI), name="八王子見本病院")


@pytest.fixture
def doctor(hachioji_hospital):
    return gen_user("designated_doctor", institution=hachioji_hospital, designations=("nanbyo", "shoman"))


# --- 実施主体 and 提出先 -------------------------------------------------------------------------------------------

def test_destination_choices_are_the_authorities_of_the_family(client, doctor):
    login(client, doctor)
    nanbyo_page = client.get("/admin/document/new/?kind=nanbyo").get_data(as_text=True)
    shoman_page = client.get("/admin/document/new/?kind=shoman").get_data(as_text=True)
    for page in (nanbyo_page, shoman_page):
        assert "東京都（都道府県）" in page and "横浜市（指定都市）" in page
    assert "八王子市" not in nanbyo_page and "世田谷区" not in nanbyo_page
    assert "八王子市（中核市）" in shoman_page and "世田谷区（児童相談所設置市）" in shoman_page


def test_the_institutions_authority_per_family_is_the_starting_point(client, doctor):
    login(client, doctor)
    for kind, expected in (("nanbyo", municipality(TOKYO)), ("shoman", municipality(HACHIOJI))):
        page = client.get(f"/admin/document/new/?kind={kind}").get_data(as_text=True)
        assert f'<option selected value="{expected.id}">' in page, kind


def test_a_non_authority_cannot_be_the_destination(client, hachioji_hospital, doctor):
    login(client, doctor)
    r = post(client, "/admin/document/new/?kind=nanbyo",
             new_form("nanbyo", hachioji_hospital, doctor, municipality(HACHIOJI)))
    assert r.status_code == 200 and "提出先を難病の実施主体から選択してください" in r.get_data(as_text=True)
    assert document_count() == 0


@pytest.mark.parametrize("kind, destination, address, refused", [
    ("shoman", HACHIOJI, "東京都八王子市見本町1-1", False),  # 小慢 in 八王子市 (中核市): 八王子市
    ("shoman", HACHIOJI, "東京都新宿区見本町1-1", True),     # elsewhere in 東京都: 東京都
    ("shoman", TOKYO, "東京都八王子市見本町1-1", True),
    ("nanbyo", TOKYO, "東京都八王子市見本町1-1", False),     # 難病 in 八王子市: 東京都
    ("nanbyo", TOKYO, "神奈川県横浜市中区見本町1-1", True),  # 横浜市 (指定都市) for both
    ("nanbyo", TOKYO, "見本町1-1", False),                  # the address does not say: the doctor's choice stands
])
def test_finalize_checks_the_destination_against_the_patients_address(doctor, kind, destination, address, refused):
    doc = gen_document(doctor, kind=kind, municipality=municipality(destination), patient=gen_patient(address=address))
    problems = [p for p in documents.finalize_problems(doc) if "患者の住所からみた" in p]
    assert bool(problems) == refused, problems


def test_the_author_changes_the_destination_until_the_document_is_received(client, doctor):
    doc = gen_document(doctor, kind="shoman", municipality=municipality(HACHIOJI), status="finalized",
                       patient=gen_patient(address="東京都八王子市見本町1-1"))
    login(client, doctor)
    moved = gen_patient(address="東京都世田谷区見本町2-2")
    r = post(client, f"/admin/document/edit/?id={doc.id}",
             content(doc, moved, municipality=str(municipality(SETAGAYA).id)))
    assert r.status_code == 302
    doc = reload(doc.id)
    assert doc.municipality.code == SETAGAYA
    changes = {c.field: documents.correction_values(c) for c in doc.corrections}
    assert changes["municipality"] == {"old": "八王子市", "new": "世田谷区"}
    # A non-authority of the family is refused, and nothing changes.
    r = post(client, f"/admin/document/edit/?id={doc.id}", content(doc, municipality="999999"))
    assert "提出先は小慢の実施主体から選択してください" in r.get_data(as_text=True)
    assert reload(doc.id).municipality.code == SETAGAYA


def test_the_municipality_corrects_but_never_readdresses(client, doctor):
    doc = gen_document(doctor, kind="shoman", municipality=municipality(HACHIOJI), status="received",
                       patient=gen_patient(address="東京都八王子市見本町1-1"))
    clerk = gen_user("municipality_user", municipality=municipality(HACHIOJI))
    login(client, clerk)
    page = client.get(f"/admin/document/correct/?id={doc.id}").get_data(as_text=True)
    assert 'name="municipality"' not in page
    post(client, f"/admin/document/correct/?id={doc.id}", content(doc, municipality=str(municipality(TOKYO).id)))
    assert reload(doc.id).municipality.code == HACHIOJI


# --- diseases in force, 指定期間, age ------------------------------------------------------------------------------

def test_a_disease_is_offered_from_the_day_it_became_designated(app):
    from views.documents import disease_choices
    added = db.session.execute(select(NanbyoDisease).filter_by(notification_no=348, is_subtype=False)).scalar_one()
    assert added.since == date(2025, 4, 1)
    offered = lambda on: {value for group in disease_choices("nanbyo", on).values() for value, _ in group}  # noqa
    assert str(added.id) in offered(date(2025, 4, 1)) and str(added.id) not in offered(date(2025, 3, 31))
    assert str(a_disease("nanbyo").id) in offered(date(2025, 3, 31))


def test_a_document_written_before_its_disease_was_designated_is_not_finalized(doctor):
    added = db.session.execute(select(NanbyoDisease).filter_by(notification_no=348, is_subtype=False)).scalar_one()
    doc = gen_document(doctor, disease=added)
    doc.written_on = date(2025, 3, 31)
    doc.diagnosed_on = date(2025, 3, 1)
    db.session.commit()
    assert any("指定難病ではありません" in p for p in documents.finalize_problems(doc, today=date(2026, 1, 1)))


def test_an_old_draft_keeps_its_disease(client, doctor):
    """Choices are today's; a draft written on an earlier disease list still opens with its disease."""
    doc = gen_document(doctor)
    login(client, doctor)
    assert client.get(f"/admin/document/edit/?id={doc.id}").status_code == 200
    assert reload(doc.id).nanbyo_disease_id == doc.nanbyo_disease_id


@pytest.mark.parametrize("valid_from, valid_until, allowed", [
    (None, None, True),
    (today_jst() - timedelta(days=365), today_jst() + timedelta(days=1), True),
    (today_jst() - timedelta(days=365), today_jst() - timedelta(days=1), False),
    (today_jst() + timedelta(days=1), None, False),
])
def test_a_doctor_outside_the_designation_period_cannot_create_or_finalize(client, hachioji_hospital, doctor,
                                                                          valid_from, valid_until, allowed):
    draft = gen_document(doctor)
    for d in doctor.designations:
        d.valid_from, d.valid_until = valid_from, valid_until
    db.session.commit()
    login(client, doctor)
    r = post(client, "/admin/document/new/?kind=nanbyo",
             new_form("nanbyo", hachioji_hospital, doctor, municipality(TOKYO)))
    assert (r.status_code == 302) == allowed
    if not allowed:
        assert "指定医の指定期間外です" in r.get_data(as_text=True)
    r = post(client, f"/admin/document/finalize/?id={draft.id}", {}, f"/admin/document/details/?id={draft.id}")
    assert (reload(draft.id).status == "finalized") == allowed


@pytest.mark.parametrize("application_kind, age, allowed", [
    ("new", 17, True), ("new", 18, False), ("renewal", 19, True), ("renewal", 20, False), ("change", 19, True),
])
def test_shoman_age_depends_on_the_application(doctor, application_kind, age, allowed):
    birth = date(today_jst().year - age, 1, 1)
    doc = gen_document(doctor, kind="shoman", municipality=municipality(HACHIOJI), application_kind=application_kind,
                       patient=gen_patient(birth_date=birth.isoformat(), address="東京都八王子市1-1"))
    problems = [p for p in documents.finalize_problems(doc) if "歳未満" in p]
    assert (problems == []) == allowed, problems


# --- form versions -------------------------------------------------------------------------------------------------

def test_a_draft_written_on_version_1_still_opens_on_version_1_when_version_2_arrives(
        app, client, doctor, tmp_path, monkeypatch):
    shipped = formdefs.DEFAULT_DIRECTORY
    directory = tmp_path / "formdefs"
    directory.mkdir()
    for path in shipped.glob("*.json"):
        (directory / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv("NANBYO_FORMDEFS_DIR", str(directory))
    formdefs.clear_cache()
    try:
        v1 = formdefs.definition_for("nanbyo", 2)
        doc = gen_document(doctor, disease=a_disease("nanbyo", 2))
        assert (doc.form_code, doc.form_version) == (v1.code, v1.version)
        # Version 2 of the form arrives: the old file is kept as <code>.v1.json, the new one adds an item.
        current = directory / f"{v1.code}.json"
        (directory / f"{v1.code}.v{v1.version}.json").write_bytes(current.read_bytes())
        data = json.loads(current.read_text(encoding="utf-8"))
        data["version"] = v1.version + 1
        data["sections"][0]["items"].append({"id": "new_in_v2", "label": "第2版で追加された項目", "type": "text"})
        current.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        formdefs.clear_cache()
        login(client, doctor)
        page = client.get(f"/admin/document/edit/?id={doc.id}").get_data(as_text=True)
        assert "第2版で追加された項目" not in page
        r = post(client, f"/admin/document/finalize/?id={doc.id}", {}, f"/admin/document/details/?id={doc.id}")
        assert reload(doc.id).status == "finalized" and reload(doc.id).form_version == v1.version
        # New documents take version 2.
        r = post(client, "/admin/document/new/?kind=nanbyo",
                 new_form("nanbyo", doctor.memberships[0].institution, doctor, municipality(TOKYO)))
        assert r.status_code == 302 and latest().form_version == v1.version + 1
        assert "第2版で追加された項目" in client.get(f"/admin/document/edit/?id={latest().id}").get_data(as_text=True)
    finally:
        monkeypatch.delenv("NANBYO_FORMDEFS_DIR")
        formdefs.clear_cache()


# --- 説明 and 研究利用同意 ----------------------------------------------------------------------------------------------

def test_a_declined_explanation_refuses_online_entry(client, hachioji_hospital, doctor):
    login(client, doctor)
    r = post(client, "/admin/document/new/?kind=nanbyo",
             new_form("nanbyo", hachioji_hospital, doctor, municipality(TOKYO), explanation="declined"))
    assert r.status_code == 200 and "紙の臨床調査個人票を使ってください" in r.get_data(as_text=True)
    r = post(client, "/admin/document/new/?kind=nanbyo",
             new_form("nanbyo", hachioji_hospital, doctor, municipality(TOKYO), explanation=""))
    assert r.status_code == 200 and "その回答を選択してください" in r.get_data(as_text=True)
    assert document_count() == 0


def test_the_explanation_is_recorded_with_who_and_when(client, hachioji_hospital, doctor):
    staff = gen_user("institution_staff", institution=hachioji_hospital)
    login(client, staff)
    r = post(client, "/admin/document/new/?kind=nanbyo",
             new_form("nanbyo", hachioji_hospital, doctor, municipality(TOKYO)))
    assert r.status_code == 302
    doc = latest()
    assert (doc.explanation, doc.explained_by_id, doc.explained_on) == ("agreed", staff.id, today_jst())
    assert doc.explained_at is not None
    page = client.get(f"/admin/document/details/?id={doc.id}").get_data(as_text=True)
    assert "説明済・同意" in page and staff.name in page


def test_a_patient_who_withdraws_blocks_finalizing(client, doctor):
    doc = gen_document(doctor)
    login(client, doctor)
    r = post(client, f"/admin/document/edit/?id={doc.id}", content(doc, explanation="declined", finalize="1"))
    # Saved, then refused finalizing: the form again, the problem beside its field and in the summary that links there.
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "確定できません（内容は保存されています）" in page
    assert 'href="#field-explanation"' in page and "紙の臨床調査個人票" in page
    doc = reload(doc.id)
    assert doc.status == "draft" and doc.explanation == "declined" and doc.explained_by_id == doctor.id
    assert any("紙の臨床調査個人票" in p for p in documents.finalize_problems(doc))


def test_research_consent_must_be_set_before_completion(client, doctor):
    clerk = gen_user("municipality_user", municipality=municipality(TOKYO))
    doc = gen_document(doctor, status="received")
    login(client, clerk)
    review = {"version": str(doc.version_id), "review_result": "approved", "valid_from": today_jst().isoformat(),
              "valid_until": (today_jst() + timedelta(days=30)).isoformat(), "research_consent": "", "complete": "1"}
    r = post(client, f"/admin/document/review/?id={doc.id}", review)
    assert "研究利用への同意" in r.get_data(as_text=True) and reload(doc.id).status == "received"
    r = post(client, f"/admin/document/review/?id={doc.id}", review | {"research_consent": "0"})
    doc = reload(doc.id)
    assert doc.status == "completed" and doc.research_consent is False


# --- 診断年月日 and 軽症者登録 -----------------------------------------------------------------------------------------

def test_diagnosis_date_is_required_only_where_the_form_requires_it(doctor):
    parkinson = a_disease("nanbyo", 6)
    definition = formdefs.definition_for("nanbyo", parkinson)
    mild = dict(sample_values(definition), severity_met="0")
    severe = dict(sample_values(definition), severity_met="1")
    for items, required in ((mild, False), (severe, True)):
        doc = gen_document(doctor, disease=parkinson, items=items)
        doc.diagnosed_on = None
        db.session.commit()
        missing = "「診断年月日」を入力してください。" in documents.finalize_problems(doc)
        assert missing == required


def test_mild_registration_is_a_nanbyo_application_kind(client, hachioji_hospital, doctor):
    login(client, doctor)
    assert "軽症者登録" in client.get("/admin/document/new/?kind=nanbyo").get_data(as_text=True)
    assert "軽症者登録" not in client.get("/admin/document/new/?kind=shoman").get_data(as_text=True)
    r = post(client, "/admin/document/new/?kind=nanbyo",
             new_form("nanbyo", hachioji_hospital, doctor, municipality(TOKYO), application_kind="mild"))
    assert r.status_code == 302 and latest().application_kind == "mild"
    r = post(client, "/admin/document/new/?kind=shoman",
             new_form("shoman", hachioji_hospital, doctor, municipality(HACHIOJI), application_kind="mild"))
    assert r.status_code == 200 and document_count() == 1


# --- lookup is not 受付 -------------------------------------------------------------------------------------------

def test_lookup_shows_the_document_and_receiving_is_a_separate_action(client, doctor):
    doc = gen_document(doctor, status="finalized")
    clerk = gen_user("municipality_user", municipality=municipality(TOKYO))
    login(client, clerk)
    r = post(client, "/admin/document/lookup/", {"access_key": doc.access_key})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "照会・未受付" in page and documents.patient_of(doc)["given_name"] in page
    assert reload(doc.id).status == "finalized"
    assert client.get(f"/admin/document/details/?id={doc.id}").status_code == 404, "not the clerk's before 受付"
    # Looked up but not received: the author may still change it.
    doctor_browser = client.application.test_client()
    login(doctor_browser, doctor)
    assert doctor_browser.get(f"/admin/document/edit/?id={doc.id}").status_code == 200
    # 受付 needs the key again and assigns a 受付番号.
    r = post(client, "/admin/document/receive/", {"access_key": "ABCDEFGH", "reception_no": ""},
             "/admin/document/lookup/")
    assert reload(doc.id).status == "finalized"
    r = post(client, "/admin/document/receive/", {"access_key": doc.access_key, "reception_no": ""},
             "/admin/document/lookup/")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"id={doc.id}")
    doc = reload(doc.id)
    assert doc.status == "received" and doc.received_by_id == clerk.id
    assert doc.reception_no == f"{documents.fiscal_year(today_jst())}-000001"
    assert log_entries("document_receive")[-1].target_id == str(doc.id)
    assert doctor_browser.get(f"/admin/document/edit/?id={doc.id}").status_code == 404
    # The clerk's own register number is kept as typed; a second 受付 changes nothing.
    other = gen_document(doctor, status="finalized")
    post(client, "/admin/document/receive/", {"access_key": other.access_key, "reception_no": "東京-R8-0042"},
         "/admin/document/lookup/")
    assert reload(other.id).reception_no == "東京-R8-0042"
    post(client, "/admin/document/receive/", {"access_key": other.access_key, "reception_no": "X"},
         "/admin/document/lookup/")
    assert reload(other.id).reception_no == "東京-R8-0042"


def test_fiscal_year_boundary():
    assert documents.fiscal_year(date(2027, 3, 31)) == 2026 and documents.fiscal_year(date(2027, 4, 1)) == 2027


# --- the patient block ---------------------------------------------------------------------------------------------

def test_insurance_fields_are_not_part_of_the_document(client, doctor):
    doc = gen_document(doctor)
    login(client, doctor)
    page = client.get(f"/admin/document/edit/?id={doc.id}").get_data(as_text=True)
    assert "insurer_number" not in page and "保険者番号" not in page
    post(client, f"/admin/document/edit/?id={doc.id}", content(doc, insurer_number="13999999"))
    assert "insurer_number" not in documents.patient_of(reload(doc.id))
    assert "保険者番号" not in client.get(f"/admin/document/details/?id={doc.id}").get_data(as_text=True)
