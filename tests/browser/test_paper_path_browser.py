"""In Chromium, the paper path end to end (issue 13): a municipality clerk uploads the scans of two paper forms; the
operator downloads them as a ZIP for its contractor and imports the contractor's XML; the clerk finds both documents
received, each with its scan shown beside it, and completes one in the 審査 screen."""

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from models.scans import ScanFile
from nanbyo.extensions import db
from nanbyo.xmlio.writer import file_bytes
from tests.browser.helpers import assert_fits, download_every_scan, key_path, log_in
from tests.helpers import TOKYO, gen_municipality, gen_user, scan_pdf
from tests.xmlio.test_contractor import paper

pytestmark = pytest.mark.browser


def upload_scan(page, path, kind, reception_no):
    page.set_input_files("input[name=files]", str(path))
    page.select_option("select[name=kind]", kind)
    page.select_option("select[name=application_kind]", "new")
    page.fill("input[name=reception_no]", reception_no)
    with page.expect_navigation():
        page.click("#scan-upload-submit")
    expect(page.locator(".alert-success")).to_contain_text("1 件をアップロードしました")


def test_scans_to_received_documents_and_a_completed_review(app, live_server, browser, tmp_path):
    tokyo = gen_municipality(TOKYO)
    clerk, operator = gen_user("municipality_user", municipality=tokyo), gen_user("operator_user")
    (tmp_path / "臨個票.pdf").write_bytes(scan_pdf(pages=2))
    (tmp_path / "意見書.pdf").write_bytes(scan_pdf(pages=1))

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, live_server, clerk, key_path(tmp_path, clerk))
    page.goto(f"{live_server}/admin/scans/")
    upload_scan(page, tmp_path / "臨個票.pdf", "nanbyo", "R2026-00101")
    upload_scan(page, tmp_path / "意見書.pdf", "shoman", "R2026-00102")
    expect(page.locator("#scans tr.scan-waiting")).to_have_count(2)
    page.close()
    nanbyo_scan, shoman_scan = db.session.execute(select(ScanFile).order_by(ScanFile.id)).scalars().all()

    # The operator takes both for the contractor, then imports what the contractor made of them.
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, live_server, operator, key_path(tmp_path, operator))
    assert sorted(download_every_scan(page, live_server)) == [f"{nanbyo_scan.id}_R2026-00101_臨個票.pdf",
                                                              f"{shoman_scan.id}_R2026-00102_意見書.pdf"]
    contractor = tmp_path / "contractor.xml"
    contractor.write_bytes(file_bytes([paper([nanbyo_scan.id]), paper([shoman_scan.id], "shoman", "01_01_001")]))
    page.get_by_role("link", name="取込").click()  # the menu
    page.get_by_role("link", name="紙の書類のデータ取込").click()
    page.set_input_files("input[name=files]", str(contractor))
    with page.expect_navigation():
        page.click("#import-xml-submit")
    report = page.locator("#import-xml-report")
    expect(report.locator("tr.import-received")).to_have_count(2)
    expect(page.locator("#import-xml-summary")).to_contain_text("受付（紙の書類） 2 件")
    assert_fits(page, tmp_path, "paper-import-1280")
    ids = [a.inner_text() for a in report.locator("tr.import-received a").all()]
    page.goto(f"{live_server}/admin/scans/")
    expect(page.locator("#scans tr.scan-digitized")).to_have_count(2)
    page.close()

    # The clerk: both received, each with its scan beside it; one completed.
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, live_server, clerk, key_path(tmp_path, clerk))
    page.goto(f"{live_server}/admin/document/")
    for doc_id in ids:
        expect(page.locator(f'a[href*="details/?id={doc_id}"]').first).to_be_visible()
    page.goto(f"{live_server}/admin/document/details/?id={ids[0]}")
    expect(page.locator("#document-header")).to_contain_text("受付")
    expect(page.locator("#document-header")).to_contain_text("見本 太郎（指定医番号 13-N-0101・紙の書類）")
    pages = page.locator("#scan-beside img.scan-page")
    expect(pages).to_have_count(2)
    for image in pages.all():
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    beside = pages.first.bounding_box()
    header = page.locator("#document-header").bounding_box()
    assert beside["x"] > header["x"] + header["width"] - 1, "the scan is beside the document, not below it"
    assert_fits(page, tmp_path, "paper-details-1280")

    page.click("#review-document")
    expect(page.locator("#scan-beside img.scan-page")).to_have_count(2)
    page.select_option("select[name=review_result]", "approved")
    page.fill("input[name=valid_from]", "2026-12-01")
    page.fill("input[name=valid_until]", "2027-11-30")
    page.select_option("select[name=research_consent]", "1")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#complete-review")
    expect(page.locator(".alert-success")).to_contain_text("登録完了にしました")
    expect(page.locator("#document-header")).to_contain_text("登録完了")
    assert_fits(page, tmp_path, "paper-completed-1280")
    page.goto(f"{live_server}/admin/document/details/?id={ids[1]}")
    expect(page.locator("#document-header")).to_contain_text("受付")
    expect(page.locator("#scan-beside img.scan-page")).to_have_count(1)
    page.click("#correct-document")  # the correction form, the scan beside it to read from
    expect(page.locator("#scan-beside img.scan-page")).to_have_count(1)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=page.locator("#scan-beside img.scan-page").element_handle())
    expect(page.locator("#document-form")).to_be_visible()
    assert_fits(page, tmp_path, "paper-correct-1280")
