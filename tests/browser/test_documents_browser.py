"""In Chromium, the whole document lifecycle once: a designated doctor writes a 臨床調査個人票 (disease-specific form),
saves and finalizes it, prints the A4 document and the access-key sheet; a municipality clerk looks the key up,
fills in the 行政記載欄 and 審査結果 and completes the registration."""
import re
import shutil
import subprocess
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from models._types import today_jst
from models.documents import Document
from models.masters import NanbyoDisease
from nanbyo import documents, formdefs
from nanbyo.demo import sample_values
from nanbyo.extensions import db
from tests.browser.helpers import key_path, log_in
from tests.helpers import TOKYO, gen_institution, gen_municipality, gen_user

pytestmark = pytest.mark.browser

PDFTOTEXT = shutil.which("pdftotext")
NOTIFICATION_NO = 6  # パーキンソン病: has a form definition of its own (formdefs/nanbyo-006.json)


def _logout(page):
    with page.expect_navigation():
        page.get_by_role("button", name="ログアウト").click()


def _values_to_fill(definition):
    """Valid values of every required item (and of the items their conditions refer to), by nanbyo.demo."""
    samples = sample_values(definition)
    wanted = {i.id for i in definition.items if i.required}
    wanted |= {i.when["item"] for i in definition.items if i.required and i.when}
    values = {item_id: value for item_id, value in samples.items() if item_id in wanted}
    clean, problems = formdefs.validate(definition, values, finalize=True)
    assert problems == [], problems
    return clean


def _fill_item(form, item, value):
    """Type one disease item the way a doctor would, by the widget formdefs.form_fields renders for its type."""
    name = formdefs.field_name(item)
    match item.type:
        case "yesno":  # radio buttons
            form.locator(f"input[type=radio][name={name}][value='{value}']").check()
        case "choice":  # a select
            form.locator(f"select[name={name}]").select_option(value=str(value))
        case "multichoice":  # check boxes
            for code in value:
                form.locator(f"input[type=checkbox][name={name}][value='{code}']").check()
        case "textarea":
            form.locator(f"textarea[name={name}]").fill(str(value))
        case _:  # text, integer, decimal, date (type=date: YYYY-MM-DD), yearmonth (type=month: YYYY-MM)
            form.locator(f"input[name={name}]").fill(str(value))


def _pdf_text(pdf, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(pdf)
    return subprocess.run([PDFTOTEXT, "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True
                          ).stdout.decode()


def test_doctor_writes_finalizes_prints_and_clerk_looks_up_and_completes(app, live_server, browser, tmp_path):
    tokyo = gen_municipality(TOKYO)
    hospital = gen_institution(tokyo, name="東京ブラウザ病院")
    doctor = gen_user("designated_doctor", institution=hospital, designations=("nanbyo", "shoman"),
                      name="見本 指定医")
    clerk = gen_user("municipality_user", municipality=tokyo, name="東京都 審査担当")
    doctor_key, clerk_key = key_path(tmp_path, doctor), key_path(tmp_path, clerk)
    parkinson = db.session.execute(select(NanbyoDisease).filter_by(
        notification_no=NOTIFICATION_NO, is_subtype=False)).scalar_one()
    definition = formdefs.definition_for("nanbyo", parkinson)
    assert not definition.general and definition.code == "nanbyo-006"
    values = _values_to_fill(definition)
    today = today_jst()

    context = browser.new_context(locale="ja-JP", accept_downloads=True)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server + "/")
                  else route.abort())
    page = context.new_page()
    try:
        # --- 1. the doctor creates a draft -----------------------------------------------------------------
        log_in(page, live_server, doctor, doctor_key)
        page.goto(f"{live_server}/admin/document/")
        with page.expect_navigation():
            page.locator("a[href*='/admin/document/new/']").first.click()
        with page.expect_navigation():
            page.click("#new-nanbyo")
        assert "kind=nanbyo" in page.url
        new_form = page.locator("#new-document-form")
        new_form.locator("select[name=application_kind]").select_option(label="新規")
        new_form.locator("select[name=disease]").select_option(value=str(parkinson.id))
        new_form.locator("select[name=institution]").select_option(value=str(hospital.id))
        new_form.locator("select[name=municipality]").select_option(label="東京都（都道府県）")
        new_form.get_by_label("説明済・同意", exact=True).click()  # the patient's answer, with the mouse
        with page.expect_navigation():
            page.click("#create-draft")
        assert "/admin/document/edit/" in page.url, page.content()
        db.session.expire_all()
        doc = db.session.execute(select(Document)).scalar_one()
        assert (doc.kind, doc.status, doc.application_kind, doc.form_code) == ("nanbyo", "draft", "new", "nanbyo-006")
        assert (doc.author_id, doc.institution_id, doc.municipality_id) == (doctor.id, hospital.id, tokyo.id)
        assert doc.nanbyo_disease_id == parkinson.id and doc.access_key is None

        # --- 2. the patient block, the dates and the disease items; save and finalize -----------------------
        form = page.locator("#document-form")
        form.locator("input[name=family_name]").fill("見本")
        form.locator("input[name=given_name]").fill("花子")
        form.locator("input[name=family_kana]").fill("ミホン")
        form.locator("input[name=given_kana]").fill("ハナコ")
        form.locator("select[name=sex]").select_option(label="女")
        form.locator("input[name=birth_date]").fill("1961-05-12")
        form.locator("input[name=postal_code]").fill("100-0001")
        form.locator("input[name=address]").fill("東京都千代田区見本町1-1-1")
        expect(form.locator("select[name=insurance_kind]")).to_have_count(0)  # the application's, not the form's
        form.locator("input[name=diagnosed_on]").fill((today - timedelta(days=30)).isoformat())
        form.locator("input[name=written_on]").fill(today.isoformat())
        form.locator("input[name=explained_on]").fill(today.isoformat())
        for item_id, value in values.items():
            _fill_item(form, definition.item(item_id), value)
        with page.expect_navigation():
            page.click("#save-and-finalize")
        assert "/admin/document/details/" in page.url, page.locator(".alert").all_inner_texts()

        db.session.expire_all()
        doc = db.session.get(Document, doc.id)
        assert doc.status == "finalized", documents.finalize_problems(doc)
        key = doc.access_key
        assert len(key) == 8 and set(key) <= set(documents.ACCESS_KEY_ALPHABET)
        assert doc.items == values
        patient = documents.patient_of(doc)
        assert (patient["family_kana"], patient["given_kana"], patient["postal_code"]) == ("ミホン", "ハナコ", "1000001")
        assert (doc.written_on, doc.explained_on) == (today, today)

        success = page.locator(".alert-success", has_text="確定しました")
        expect(success).to_be_visible()
        shown = re.search(r"アクセスキー\s*([0-9A-Z]+)\s*を印刷", success.inner_text())
        assert shown and shown.group(1) == key and len(shown.group(1)) == 8
        header = page.locator("#document-header")
        expect(header.locator("tr", has_text="アクセスキー")).to_contain_text(key)
        expect(header.locator("tr", has_text="状態")).to_contain_text("確定")
        expect(header).to_contain_text("パーキンソン病")
        expect(page.locator("#patient-block")).to_contain_text("見本")

        # --- 3. the A4 document and the access-key sheet ------------------------------------------------------
        # Both are served inline: Chromium shows them in its PDF viewer (no download event, and the body the page
        # sees is the viewer's HTML). The button opens a PDF; the bytes are fetched with the context's session.
        details_url = page.url
        with page.expect_response(lambda r: "/admin/document/print/" in r.url) as printed:
            page.click("#print-document")
        assert printed.value.ok and printed.value.headers["content-type"] == "application/pdf"
        page.goto(details_url)
        pdfs = {}
        for button in ("#print-document", "#print-sheet"):
            response = page.request.get(live_server + page.locator(button).get_attribute("href"))
            assert response.ok and response.headers["content-type"] == "application/pdf", button
            assert response.headers["cache-control"] == "no-store", button
            pdfs[button] = response.body()
            assert pdfs[button].startswith(b"%PDF"), button
        document_pdf, sheet_pdf = pdfs["#print-document"], pdfs["#print-sheet"]
        if PDFTOTEXT:
            assert key in re.sub(r"\s", "", _pdf_text(sheet_pdf, tmp_path, "sheet.pdf"))
            assert key in re.sub(r"\s", "", _pdf_text(document_pdf, tmp_path, "document-text.pdf"))
        _logout(page)
        assert "/login" in page.url

        # --- 4. the municipality clerk looks the key up and completes the review ---------------------------
        log_in(page, live_server, clerk, clerk_key)
        page.goto(f"{live_server}/admin/document/")
        with page.expect_navigation():
            page.click("#key-lookup-link")
        assert page.url.endswith("/admin/document/lookup/")
        typed = f"{key[:4].lower()}-{key[4:].lower()}"
        page.fill("input[name=access_key]", typed)
        with page.expect_navigation():
            page.click("#lookup-submit")
        # The lookup shows the document read-only; it is not received yet.
        expect(page.locator("h2")).to_contain_text("照会・未受付")
        expect(page.locator("#patient-block")).to_contain_text("見本")
        expect(page.locator("#patient-block")).to_contain_text("花子")
        db.session.expire_all()
        assert db.session.get(Document, doc.id).status == "finalized"
        dialogs = []
        page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.click("#receive-document")
        page.wait_for_timeout(300)
        assert dialogs and "受付しますか" in dialogs[0]
        db.session.expire_all()
        assert db.session.get(Document, doc.id).status == "finalized", "dismissed: not received"
        page.once("dialog", lambda d: d.accept())
        with page.expect_navigation():
            page.click("#receive-document")
        assert f"/admin/document/details/?id={doc.id}" in page.url, page.locator(".alert").all_inner_texts()
        expect(page.locator(".alert-success", has_text="受付しました")).to_be_visible()
        db.session.expire_all()
        doc = db.session.get(Document, doc.id)
        assert (doc.status, doc.received_by_id) == ("received", clerk.id)
        assert doc.reception_no == f"{documents.fiscal_year(today)}-000001"

        with page.expect_navigation():
            page.click("#review-document")
        review = page.locator("#review-form")
        valid_until = date(today.year + 1, today.month, 1) - timedelta(days=1)
        review.locator("input[name=reception_no]").fill("R-2026-0001")
        review.locator("input[name=recipient_no]").fill("1234567")
        review.locator("input[name=application_received_on]").fill(today.isoformat())
        review.locator("select[name=research_consent]").select_option(label="同意あり")
        review.locator("select[name=review_result]").select_option(label="認定")
        review.locator("input[name=valid_from]").fill(today.isoformat())
        review.locator("input[name=valid_until]").fill(valid_until.isoformat())
        review.locator("input[name=severity]").fill("Hoehn-Yahr 3度")
        page.once("dialog", lambda d: d.accept())  # 登録完了 asks first
        with page.expect_navigation():
            page.click("#complete-review")
        assert f"/admin/document/details/?id={doc.id}" in page.url, page.locator(".alert").all_inner_texts()
        expect(page.locator(".alert-success", has_text="登録完了にしました")).to_be_visible()
        expect(page.locator("#document-header tr", has_text="状態")).to_contain_text("登録完了")
        admin_block = page.locator("#admin-block")
        expect(admin_block).to_contain_text("1234567")
        expect(admin_block).to_contain_text("認定")

        db.session.expire_all()
        doc = db.session.get(Document, doc.id)
        assert (doc.status, doc.review_result, doc.research_consent) == ("completed", "approved", True)
        assert (doc.reception_no, doc.recipient_no, doc.severity) == ("R-2026-0001", "1234567", "Hoehn-Yahr 3度")
        assert (doc.application_received_on, doc.valid_from, doc.valid_until) == (today, today, valid_until)
        assert doc.completed_at is not None and doc.access_key == key
    finally:
        context.close()
