"""The idle timeout as a doctor meets it: told why they are on the login page, back on the page afterwards, and what
they typed before pressing 保存 after the timeout comes back (not saved, encrypted meanwhile, for them only)."""
from datetime import timedelta

from sqlalchemy import func, select

from models._types import utcnow
from models.accounts import HeldForm, UserSession
from models.documents import Document
from nanbyo import documents
from nanbyo.extensions import db
from tests.helpers import PASSWORD, csrf_token, gen_document, gen_institution, gen_user, login
from tests.test_document_rules import content

TIMED_OUT = "一定時間操作がなかったためログアウトしました"


def age_sessions(user, minutes=31):
    db.session.expire_all()
    for record in db.session.execute(select(UserSession).filter_by(user_id=user.id)).scalars():
        record.last_seen_at = utcnow() - timedelta(minutes=minutes)
    db.session.commit()


def login_at(client, url, user):
    """Log in on the login page the redirect pointed to (its ?next= is kept, as the browser's form post keeps it)."""
    from io import BytesIO
    data = {"login_id": user.login_id, "password": PASSWORD, "csrf_token": csrf_token(client, url),
            "key_file": (BytesIO(user.key_file), "k.key")}
    return client.post(url, data=data, content_type="multipart/form-data")


def held_count():
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(HeldForm)).scalar()


def page(response):
    return response.get_data(as_text=True)


def test_the_login_page_says_why_and_returns_to_the_page(client):
    doctor = gen_user("designated_doctor", institution=gen_institution())
    doc = gen_document(doctor)
    login(client, doctor)
    age_sessions(doctor)
    r = client.get(f"/admin/document/details/?id={doc.id}")
    assert r.status_code == 302 and "next=" in r.headers["Location"]
    login_url = r.headers["Location"]
    assert TIMED_OUT in page(client.get(login_url))
    r = login_at(client, login_url, doctor)
    assert r.status_code == 302 and r.headers["Location"] == f"/admin/document/details/?id={doc.id}"


def test_a_form_posted_after_the_timeout_comes_back_after_the_re_login(client):
    doctor = gen_user("designated_doctor", institution=gen_institution())
    doc = gen_document(doctor)
    edit = f"/admin/document/edit/?id={doc.id}"
    login(client, doctor)
    token = csrf_token(client, edit)
    typed = content(doc) | {"address": "東京都千代田区入力途中3-3", "csrf_token": token}
    age_sessions(doctor)  # the doctor typed for more than 30 minutes, then pressed 保存

    r = client.post(edit, data=typed)
    assert r.status_code == 302
    login_page = client.get(r.headers["Location"])
    assert TIMED_OUT in page(login_page) and "入力していた内容をこの画面に戻します" in page(login_page)
    assert documents.patient_of(db.session.get(Document, doc.id))["address"] != "東京都千代田区入力途中3-3"
    # Held encrypted: the typed address is nowhere in the row.
    db.session.expire_all()
    held = db.session.execute(select(HeldForm)).scalar_one()
    assert held.user_id == doctor.id and held.path == edit and "入力途中".encode() not in held.cipher

    r = login_at(client, r.headers["Location"], doctor)
    assert r.headers["Location"] == edit
    r = client.get(edit)
    assert "入力途中3-3" in page(r) and "ログアウトの前に入力していた内容を戻しました" in page(r)
    assert held_count() == 0, "shown once, then gone"
    assert "入力途中3-3" not in page(client.get(edit))
    db.session.expire_all()
    assert documents.patient_of(db.session.get(Document, doc.id))["address"] != "東京都千代田区入力途中3-3"


def test_someone_else_logging_in_does_not_get_the_held_form(app, client):
    institution = gen_institution()
    doctor = gen_user("designated_doctor", institution=institution)
    colleague = gen_user("designated_doctor", institution=institution, manager=True)
    doc = gen_document(doctor)
    edit = f"/admin/document/edit/?id={doc.id}"
    login(client, doctor)
    typed = content(doc) | {"address": "東京都見られたくない町1-1", "csrf_token": csrf_token(client, edit)}
    age_sessions(doctor)
    client.post(edit, data=typed)
    login(client, colleague)
    assert "見られたくない町" not in page(client.get(f"/admin/document/details/?id={doc.id}"))
    assert held_count() == 1
    # It expires.
    db.session.expire_all()
    held = db.session.execute(select(HeldForm)).scalar_one()
    held.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    other = app.test_client()
    login(other, doctor)
    assert "見られたくない町" not in page(other.get(edit))


def test_keepalive_restarts_the_idle_clock_and_says_when_the_session_has_ended(client):
    doctor = gen_user("designated_doctor", institution=gen_institution())
    login(client, doctor)
    token = csrf_token(client, "/admin/account/")
    age_sessions(doctor, 20)
    r = client.post("/admin/account/keepalive", data={"csrf_token": token})
    assert r.status_code == 200 and r.json == {"idle_timeout": 1800}
    db.session.expire_all()
    record = db.session.execute(select(UserSession).filter_by(user_id=doctor.id)).scalar_one()
    assert utcnow() - record.last_seen_at < timedelta(minutes=1)
    age_sessions(doctor, 31)
    r = client.post("/admin/account/keepalive", data={"csrf_token": token})
    assert r.status_code != 200
    assert client.post("/admin/account/keepalive", data={}).status_code != 200
