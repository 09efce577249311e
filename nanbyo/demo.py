"""Demo data: two 自治体, three 医療機関 and one account per role, past first login, with key files on disk."""
import os
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, select

from models._types import today_jst, utcnow
from models.accounts import Designation, Membership, User
from models.documents import Document
from models.institutions import Institution, Municipality
from models.masters import NanbyoDisease, ShomanDisease
from nanbyo import auth, database, documents, formdefs
from nanbyo.document_codes import AGREED, COMPLETED, DRAFT, FINALIZED, NANBYO, NEW, RECEIVED, REVIEWED, SHOMAN
from nanbyo.extensions import db
from nanbyo.roles import (DESIGNATED_DOCTOR, INSTITUTION_STAFF, MUNICIPALITY_ADMIN, OPERATOR_ADMIN)

DEFAULT_PASSWORD = "nanbyo-demo-2026"
MUNICIPALITIES = [("130001", "東京都", "13"), ("270008", "大阪府", "27")]
INSTITUTIONS = [  # code, name, address, municipality code
    ("1310000017", "東京見本病院", "東京都千代田区見本町1-1", "130001"),
    ("1310000025", "東京見本クリニック", "東京都新宿区見本2-2", "130001"),
    ("2710000019", "大阪見本病院", "大阪府大阪市北区見本3-3", "270008"),
]
# login_id, name, kana, role, municipality, issuer, designations, [(institution, kind, manager)]
ACCOUNTS = [
    ("operator", "運営 管理者", "ウンエイ カンリシャ", OPERATOR_ADMIN, None, None, [], []),
    ("muni-tokyo", "東京都 担当者", "トウキョウト タントウシャ", MUNICIPALITY_ADMIN, "130001", None, [], []),
    ("muni-osaka", "大阪府 担当者", "オオサカフ タントウシャ", MUNICIPALITY_ADMIN, "270008", None, [], []),
    ("manager", "見本 責任者", "ミホン セキニンシャ", DESIGNATED_DOCTOR, None, "130001",
     [("nanbyo", "13-N-0001")], [("1310000017", "primary", True)]),
    ("doctor", "見本 医師", "ミホン イシ", DESIGNATED_DOCTOR, None, "130001",
     [("nanbyo", "13-N-0002"), ("shoman", "13-S-0002")],
     [("1310000017", "primary", False), ("1310000025", "concurrent", False)]),
    ("doctor-osaka", "大阪 医師", "オオサカ イシ", DESIGNATED_DOCTOR, None, "270008",
     [("nanbyo", "27-N-0001")], [("2710000019", "primary", True)]),
    ("staff", "見本 事務", "ミホン ジム", INSTITUTION_STAFF, None, "130001", [], [("1310000017", "primary", False)]),
]


class DemoRefused(RuntimeError):
    pass


def _municipality(code, name, pref):
    m = db.session.execute(select(Municipality).filter_by(code=code)).scalar_one_or_none()
    if m is None:
        m = Municipality(code=code, name=name, prefecture_no=pref, kind="prefecture")
        db.session.add(m)
    return m


def database_has_data() -> bool:
    """Masters do not count: only accounts, institutions and memberships."""
    return any(db.session.execute(select(func.count()).select_from(model)).scalar()
               for model in (User, Institution, Membership))


def create_demo(keys_dir, password=DEFAULT_PASSWORD):
    """Fill an empty database. Returns [(login_id, key path)]."""
    if database_has_data():
        raise DemoRefused("データベースに既にデータがあります。デモデータは空のデータベースにだけ作成できます。")
    problems = auth.password_problems(password)
    if problems:
        raise DemoRefused(" ".join(problems))
    database.begin_write()
    munis = {code: _municipality(code, name, pref) for code, name, pref in MUNICIPALITIES}
    insts = {}
    for code, name, address, muni in INSTITUTIONS:
        insts[code] = Institution(code=code, name=name, address=address, municipality=munis[muni],
                                  shoman_municipality=munis[muni])
        db.session.add(insts[code])
    password_hash = auth.hash_password(password)
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for login_id, name, kana, role, muni, issuer, designations, memberships in ACCOUNTS:
        user = User(login_id=login_id, name=name, name_kana=kana, role=role, email=f"{login_id}@example.jp",
                    password_hash=password_hash, must_change_password=False, password_changed_at=utcnow(),
                    municipality=munis.get(muni), issuing_municipality=munis.get(issuer))
        for kind, number in designations:
            user.designations.append(Designation(kind=kind, number=number, valid_from=date(2026, 4, 1),
                                                 valid_until=date(2031, 3, 31)))
        for inst, kind, manager in memberships:
            user.memberships.append(Membership(institution=insts[inst], kind=kind, is_manager=manager))
        key = auth.issue_key_file(user)
        db.session.add(user)
        path = keys_dir / auth.key_file_name(user)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        written.append((login_id, path))
    db.session.commit()
    create_demo_documents(db.session.execute(select(User).filter_by(login_id="doctor")).scalar_one(),
                          insts["1310000017"], munis["130001"],
                          db.session.execute(select(User).filter_by(login_id="muni-tokyo")).scalar_one())
    create_demo_paper(db.session.execute(select(User).filter_by(login_id="muni-tokyo")).scalar_one(),
                      db.session.execute(select(User).filter_by(login_id="operator")).scalar_one())
    return written


# --- documents ---------------------------------------------------------------------------------------------------

# Fictional patients (見本 = sample): カナ starts with ミホン so that nobody mistakes them for real people.
DEMO_PATIENTS = {
    SHOMAN: [("見本", "花子", "ミホン", "ハナコ", "2", date(2016, 5, 12)),
             ("見本", "太郎", "ミホン", "タロウ", "1", date(2012, 9, 3)),
             ("見本", "さくら", "ミホン", "サクラ", "2", date(2019, 1, 20)),
             ("見本", "健太", "ミホン", "ケンタ", "1", date(2009, 7, 7)),
             ("見本", "陽菜", "ミホン", "ヒナ", "2", date(2014, 11, 30))],
    NANBYO: [("見本", "一郎", "ミホン", "イチロウ", "1", date(1958, 4, 1)),
             ("見本", "和子", "ミホン", "カズコ", "2", date(1949, 2, 14)),
             ("見本", "次郎", "ミホン", "ジロウ", "1", date(1975, 10, 10)),
             ("見本", "美咲", "ミホン", "ミサキ", "2", date(1990, 6, 18)),
             ("見本", "三郎", "ミホン", "サブロウ", "1", date(1966, 12, 24))],
}


def sample_values(definition) -> dict:
    """Values that pass the definition's finalize checks: the first code of every choice, the minimum of every
    number, so that conditional items that apply get filled too (items are in order)."""
    values = {}
    for item in definition.items:
        if item.type in ("choice", "yesno"):
            values[item.id] = item.codes[0][0] if item.codes else "1"
        elif item.type == "multichoice":
            values[item.id] = [item.codes[0][0]]
        elif item.type in ("integer", "decimal"):
            values[item.id] = str(item.min if item.min is not None else 1)
        elif item.type == "date":
            values[item.id] = "2026-04-01"
        elif item.type == "yearmonth":
            values[item.id] = "2025-04"
        else:
            values[item.id] = "見本の記載"
    clean, problems = formdefs.validate(definition, values, finalize=True)
    if problems:
        raise DemoRefused(f"{definition.code}: 見本の値が検査を通りません: {problems}")
    return clean


def _demo_disease(kind):
    """A disease that has its own form, so the demo shows a disease-specific definition."""
    for definition in formdefs.load_definitions().values():
        if definition.kind == kind and definition.diseases:
            key = definition.diseases[0]
            model, column = (NanbyoDisease, NanbyoDisease.notification_no) if kind == NANBYO else \
                (ShomanDisease, ShomanDisease.shoman_code)
            found = db.session.execute(select(model).where(column == key).order_by(model.id).limit(1)).scalar()
            if found:
                return found
    raise DemoRefused("疾病マスタが読み込まれていません（nanbyo load-masters）。")


def create_demo_documents(doctor, institution, municipality, clerk):
    """Both kinds in every status, written by `doctor` at `institution`, addressed to `municipality`."""
    today = today_jst()
    for kind in (SHOMAN, NANBYO):
        disease = _demo_disease(kind)
        definition = formdefs.definition_for(kind, disease)
        for status, patient in zip((DRAFT, FINALIZED, RECEIVED, REVIEWED, COMPLETED), DEMO_PATIENTS[kind]):
            family, given, family_kana, given_kana, sex, birth = patient
            database.begin_write()
            doc = Document(kind=kind, application_kind=NEW, form_code=definition.code,
                           form_version=definition.version, author=doctor, created_by_id=doctor.id,
                           institution=institution, municipality=municipality, status=DRAFT, written_on=today,
                           diagnosed_on=today - timedelta(days=30), explained_on=today, explanation=AGREED,
                           explained_by_id=doctor.id, explained_at=utcnow(), items=sample_values(definition))
            doc.shoman_disease, doc.nanbyo_disease = (disease, None) if kind == SHOMAN else (None, disease)
            db.session.add(doc)
            documents.set_patient(doc, {
                "family_name": family, "given_name": given, "family_kana": family_kana, "given_kana": given_kana,
                "sex": sex, "birth_date": birth.isoformat(), "postal_code": "1000001",
                "address": "東京都千代田区見本町1-1-1"})
            db.session.flush()
            if status == DRAFT:
                continue
            problems = documents.finalize_problems(doc)
            if problems:
                raise DemoRefused(f"見本の書類を確定できません: {problems}")
            documents.finalize(doc, doctor)  # commits, with its log entry
            if status == FINALIZED:
                continue
            database.begin_write()
            doc.status, doc.received_at, doc.received_by_id = RECEIVED, utcnow(), clerk.id
            doc.reception_no = f"R{today:%Y}-{doc.id:05d}"
            if status in (REVIEWED, COMPLETED):
                documents.save_review(doc, {"application_received_on": today.isoformat(),
                                            "review_result": "approved", "research_consent": "1",
                                            "valid_from": today.isoformat(),
                                            "valid_until": date(today.year + 1, today.month, 1).isoformat(),
                                            "severity": "重症度分類 該当", "recipient_no": f"{doc.id:07d}"},
                                      clerk, complete=status == COMPLETED)
            db.session.commit()


# --- paper forms -------------------------------------------------------------------------------------------------

def demo_scan_pdf(title) -> bytes:
    """A one-page A4 PDF standing for a scanned paper form (reportlab's built-in Japanese font: nothing downloaded)."""
    import io

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas
    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiKakuGo-W5"))
    out = io.BytesIO()
    sheet = canvas.Canvas(out, pagesize=A4)
    sheet.setFont("HeiseiKakuGo-W5", 16)
    sheet.drawString(60, 780, title)
    sheet.setFont("HeiseiKakuGo-W5", 11)
    for n, line in enumerate(("（見本のスキャンファイル: デモデータ）", "指定医: 紙野 一郎（13-N-0999）",
                              "医療機関: 見本診療所（1310000999）", "患者: 見本の患者（架空）")):
        sheet.drawString(60, 740 - 22 * n, line)
    sheet.rect(60, 300, 475, 320)
    sheet.showPage()
    sheet.save()
    return out.getvalue()


def create_demo_paper(clerk, operator):
    """Two scans from 東京都: one waiting for the operator, one the contractor's data made a received document."""
    from nanbyo.files import scans
    from nanbyo.xmlio import vendor_kit
    from nanbyo.xmlio.contractor import paper_element
    from nanbyo.xmlio.importer import import_uploads
    from nanbyo.xmlio.writer import file_bytes
    saved = []
    for n, kind in enumerate((NANBYO, NANBYO), start=1):
        found, problems = scans.upload(clerk, [(f"paper-{n}.pdf", demo_scan_pdf("臨床調査個人票（紙）"))],
                                       {"kind": kind, "application_kind": NEW, "reception_no": f"P2026-{n:05d}"})
        if problems:
            raise DemoRefused(f"見本のスキャンファイルを保存できません: {problems}")
        saved += found
    # A doctor and an institution without accounts here: what most paper comes from.
    element = vendor_kit.sample_element(NANBYO, "6")
    element.find("doctor").attrib.update({"number": "13-N-0999", "name": "紙野 一郎"})
    element.find("institution").set("code", "1310000999")
    for path, text in (("patient/family_name", "見本"), ("patient/family_kana", "ミホン")):  # as every demo patient
        element.find(path).text = text
    data = file_bytes([paper_element(element, [saved[1].id], "見本診療所")])
    outcomes = import_uploads([("demo-contractor.xml", data)], operator, None, today=vendor_kit.SAMPLE_DAY)
    if any(o.result != "received" for o in outcomes):
        raise DemoRefused(f"見本の紙の書類を取り込めません: {[o.messages for o in outcomes]}")
