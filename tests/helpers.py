"""Plain factory functions for test data (CTFd's gen_* style) and a login helper."""
import itertools
import re
from io import BytesIO

from models.accounts import Designation, Membership, User
from models.audit import OperationLog
from models.institutions import Institution, Municipality
from nanbyo import auth
from nanbyo.extensions import db
from nanbyo.roles import DESIGNATED_DOCTOR, INSTITUTION_ROLES, MUNICIPALITY_ROLES

PASSWORD = "correct-horse-battery-9"
TOKYO, OSAKA = "130001", "270008"
_counter = itertools.count(1)


def gen_municipality(code=TOKYO):
    """Municipalities come from the loaded masters."""
    return db.session.execute(db.select(Municipality).filter_by(code=code)).scalar_one()


def gen_institution(municipality=None, code=None, name=None, shoman=None):
    """An institution answering to `municipality` for 難病 and to `shoman` (default: the same) for 小慢."""
    municipality = municipality or gen_municipality()
    n = next(_counter)
    code = code or f"{municipality.prefecture_no}1{n:07d}"
    inst = Institution(code=code, name=name or f"テスト病院{n}", address="テスト住所", municipality=municipality,
                       shoman_municipality=shoman or municipality)
    db.session.add(inst)
    db.session.commit()
    return inst


def gen_user(role, login_id=None, *, municipality=None, issuer=None, institution=None, kind="primary",
             manager=False, designations=("nanbyo",), password=PASSWORD, setup_done=True, name=None):
    """A user; `user.key_file` holds the key file bytes when setup is done (like a user past first login)."""
    n = next(_counter)
    user = User(login_id=login_id or f"user{n}", name=name or f"テスト 利用者{n}", name_kana="テスト リヨウシャ",
                role=role, password_hash=auth.hash_password(password),
                email=f"user{n}@example.jp" if setup_done else None, must_change_password=not setup_done)
    if role in MUNICIPALITY_ROLES:
        user.municipality = municipality or gen_municipality()
    if role in INSTITUTION_ROLES:
        user.issuing_municipality = issuer or (institution.municipality if institution else gen_municipality())
    if role == DESIGNATED_DOCTOR:
        for d in designations:
            user.designations.append(Designation(kind=d, number=f"{d}-{n}"))
    if institution is not None:
        user.memberships.append(Membership(institution=institution, kind=kind, is_manager=manager))
    user.key_file = auth.issue_key_file(user) if setup_done else None
    db.session.add(user)
    db.session.commit()
    return user


def csrf_from(html):
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no csrf_token in page"
    return match.group(1)


def csrf_token(client, path="/login"):
    return csrf_from(client.get(path).get_data(as_text=True))


def login(client, user_or_id, password=PASSWORD, key_file=None, follow_redirects=False):
    """Log in through the real form (CSRF token, multipart key file upload)."""
    if isinstance(user_or_id, User):
        login_id, key_file = user_or_id.login_id, key_file if key_file is not None else user_or_id.key_file
    else:
        login_id = user_or_id
    data = {"login_id": login_id, "password": password, "csrf_token": csrf_token(client, "/login")}
    if key_file is not None:
        data["key_file"] = (BytesIO(key_file), f"{login_id}.key")
    return client.post("/login", data=data, content_type="multipart/form-data", follow_redirects=follow_redirects)


def logout(client):
    token = csrf_token(client, "/admin/account/")
    return client.post("/logout", data={"csrf_token": token})


def post_form(client, path, data, token_page=None):
    """POST with a CSRF token taken from a page of the same session."""
    data = dict(data)
    data.setdefault("csrf_token", csrf_token(client, token_page or "/admin/account/"))
    return client.post(path, data=data)



def fresh(user):
    """The user row as the database has it now (drop what the test's session remembers)."""
    db.session.expire_all()
    return db.session.get(User, user.id)


def log_entries(action):
    db.session.expire_all()
    return db.session.execute(db.select(OperationLog).filter_by(action=action).order_by(OperationLog.seq)
                              ).scalars().all()


# --- documents ---------------------------------------------------------------------------------------------------

_patients = itertools.count(1)
KANA_DIGITS = "アイウエオカキクケコ"


def gen_patient(**changes):
    """A fictional patient with a カナ of its own (so a blind-index search finds exactly this one)."""
    n = next(_patients)
    tag = "".join(KANA_DIGITS[int(c)] for c in str(n))
    patient = {"family_name": "見本", "given_name": f"患者{n}", "family_kana": "ミホン", "given_kana": f"カンジャ{tag}",
               "sex": "2", "birth_date": "2015-04-01", "postal_code": "1000001", "address": "東京都千代田区見本町1-1"}
    patient.update(changes)
    return patient


def gen_document(author, *, institution=None, municipality=None, kind="nanbyo", status="draft", created_by=None,
                 application_kind="new", patient=None, disease=None, items=None):
    """A document that passes the finalize checks, brought to `status` the way the screens would."""
    from datetime import timedelta

    from models._types import today_jst, utcnow
    from models.documents import Document
    from models.masters import NanbyoDisease, ShomanDisease
    from nanbyo import database, documents, formdefs
    from nanbyo.demo import sample_values

    institution = institution or author.primary_membership.institution
    municipality = municipality or institution.municipality
    if disease is None:
        model, order = (ShomanDisease, ShomanDisease.shoman_code) if kind == "shoman" else \
            (NanbyoDisease, NanbyoDisease.notification_no)
        disease = db.session.execute(db.select(model).order_by(order, model.id).limit(1)).scalar_one()
    definition = formdefs.definition_for(kind, disease)
    today = today_jst()
    doc = Document(kind=kind, application_kind=application_kind, form_code=definition.code,
                   form_version=definition.version, author=author, created_by_id=(created_by or author).id,
                   institution=institution, municipality=municipality, status="draft", written_on=today,
                   diagnosed_on=today - timedelta(days=10), explained_on=today, explanation="agreed",
                   explained_by_id=(created_by or author).id, explained_at=utcnow(),
                   items=sample_values(definition) if items is None else items)
    if kind == "shoman":
        doc.shoman_disease = disease
    else:
        doc.nanbyo_disease = disease
    db.session.add(doc)
    # The patient lives where the document goes (the 提出先 follows the residence).
    documents.set_patient(doc, patient or gen_patient(address=f"{municipality.name}見本町1-1"))
    db.session.commit()
    if status != "draft":
        assert documents.finalize_problems(doc) == [], documents.finalize_problems(doc)
        database.begin_write()
        documents.finalize(doc, author)
    if status in ("received", "reviewed", "completed"):
        doc.status, doc.received_at = "received", utcnow()
    if status in ("reviewed", "completed"):
        doc.status, doc.review_result = status, "approved"
        doc.valid_from, doc.valid_until = today, today + timedelta(days=365)
    db.session.commit()
    return doc


def scan_pdf(pages=1) -> bytes:
    """A real PDF of A4 pages, as a scanner would send one (what the scan viewer renders)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas
    out = BytesIO()
    sheet = canvas.Canvas(out, pagesize=A4)
    for page in range(pages):
        sheet.rect(100, 400, 300, 300, fill=1)
        sheet.drawString(100, 750, f"scanned page {page + 1}")
        sheet.showPage()
    sheet.save()
    return out.getvalue()


def gen_scan(uploader, *, kind="nanbyo", application_kind="new", reception_no=None, name="scan.pdf", data=None):
    """A scan uploaded by a municipality user, as the upload screen stores it (encrypted under NANBYO_SCAN_DIR)."""
    from nanbyo.files import scans
    meta = {"kind": kind, "application_kind": application_kind,
            "reception_no": reception_no or f"R-{next(_patients):05d}"}
    saved, problems = scans.upload(uploader, [(name, data if data is not None else scan_pdf())], meta)
    assert not problems, problems
    return saved[0]
