"""In Chromium: a designated doctor takes a hospital system's XML in from the documents list (XML取込), reads the
report of every document, opens an imported draft, and downloads the vendor package from the same list."""
import pytest
from playwright.sync_api import expect

from nanbyo.extensions import db
from nanbyo.xmlio import vendor_kit
from nanbyo.xmlio.writer import file_bytes
from tests.browser.helpers import assert_fits, key_path, log_in
from tests.data.hostile.make import FILES
from tests.xmlio.test_import import world

pytestmark = pytest.mark.browser


def test_a_doctor_imports_xml_and_opens_the_draft(app, live_server, browser, tmp_path):
    doctor = world()["doctor"]  # of 見本病院, 13-N-0101: the samples' 指定医
    good = tmp_path / "from-hospital.xml"
    good.write_bytes(file_bytes([vendor_kit.sample_element("nanbyo", "6"),
                                 vendor_kit.sample_element("shoman", "01_01_001")]))
    evil = tmp_path / "evil.xml"
    evil.write_bytes(FILES["xxe_file.xml"])

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, live_server, doctor, key_path(tmp_path, doctor))
    page.goto(f"{live_server}/admin/document/")
    with page.expect_download() as kit:
        page.click("#xml-kit-link")
    assert kit.value.suggested_filename == vendor_kit.FILE_NAME
    page.click("#import-xml-link")
    expect(page.get_by_role("heading", name="XML取込（院内システムから）")).to_be_visible()
    page.set_input_files("input[name=files]", [str(good), str(evil)])
    with page.expect_navigation():
        page.click("#import-xml-submit")
    report = page.locator("#import-xml-report")
    expect(report.locator("tr.import-created")).to_have_count(2)
    expect(report.locator("tr.import-refused")).to_have_count(1)
    expect(report.locator("tr.import-refused")).to_contain_text("DOCTYPE")
    expect(page.locator("#import-xml-summary")).to_contain_text("作成（下書き） 2 件")
    page.screenshot(path=str(tmp_path / "xml-import.png"), full_page=True)
    ids = [a.inner_text() for a in report.locator("tr.import-created a").all()]
    with page.expect_navigation():
        report.locator("tr.import-created a").first.click()
    expect(page.locator("body")).to_contain_text("山田")
    expect(page.locator("body")).to_contain_text("作成中")

    # Both drafts finalized at once from the list: tick them, 選択 → 確定, confirm.
    page.goto(f"{live_server}/admin/document/")
    for doc_id in ids:
        page.check(f'input.action-checkbox[value="{doc_id}"]')
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="選択", exact=True).click()
    with page.expect_navigation():
        page.get_by_role("link", name="確定", exact=True).click()
    expect(page.locator(".alert-success")).to_contain_text("2件を確定しました")
    db.session.expire_all()
    from models.documents import Document
    assert {db.session.get(Document, int(i)).status for i in ids} == {"finalized"}


def test_a_large_upload_is_imported_in_the_background(app, live_server, browser, tmp_path):
    """Above NANBYO_XML_INLINE_BYTES the upload becomes a job (run at once in the tests): its page shows the state,
    the counts, the report, and the report as xlsx."""
    app.config["NANBYO_XML_INLINE_BYTES"] = 1000
    doctor = world()["doctor"]  # of 見本病院, 13-N-0101: the samples' 指定医
    batch = tmp_path / "from-hospital.xml"
    batch.write_bytes(file_bytes([vendor_kit.sample_element("nanbyo", "6"),
                                  vendor_kit.sample_element("shoman", "01_01_001")]))

    for width in (1280, 1024):
        page = browser.new_page(viewport={"width": width, "height": 900})
        log_in(page, live_server, doctor, key_path(tmp_path, doctor))
        page.goto(f"{live_server}/admin/document/import-xml/")
        page.set_input_files("input[name=files]", [str(batch)])
        with page.expect_navigation():
            page.click("#import-xml-submit")
        expect(page.get_by_role("heading", name="XML取込 No.")).to_be_visible()
        expect(page.locator(".alert-info")).to_contain_text("バックグラウンドで取り込みます")
        expect(page.locator("#import-job-status")).to_contain_text("完了")
        expect(page.locator("#import-job-progress")).to_contain_text("書類 2 件")
        # The first upload creates both drafts; the second (same documents) updates them.
        expect(page.locator("#import-xml-report tr.import-created, #import-xml-report tr.import-updated")).to_have_count(2)
        assert_fits(page, tmp_path, f"xml-import-job-{width}")
        with page.expect_download() as report:
            page.click("#import-job-xlsx")
        assert report.value.suggested_filename.endswith("_report.xlsx")
        with page.expect_navigation():
            page.get_by_role("link", name="XML取込の画面へ戻る").click()
        expect(page.locator("#import-xml-jobs tr.job-done")).to_have_count(1 if width == 1280 else 2)
        page.close()


def test_the_job_page_follows_a_waiting_import_until_it_is_done(app, live_server, browser, tmp_path, monkeypatch):
    """The queue holds the job: its page says 待機中 and reloads itself; once the worker has run it, the page shows
    the report without the doctor touching it."""
    from models.xml_imports import XmlImportJob
    from nanbyo import tasks
    from nanbyo.xmlio import import_jobs
    monkeypatch.setattr(tasks, "run_xml_import", lambda job_id: None)
    app.config["NANBYO_XML_INLINE_BYTES"] = 1000
    doctor = world()["doctor"]  # of 見本病院, 13-N-0101: the samples' 指定医
    batch = tmp_path / "from-hospital.xml"
    batch.write_bytes(file_bytes([vendor_kit.sample_element("nanbyo", "6"),
                                  vendor_kit.sample_element("shoman", "01_01_001")]))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, live_server, doctor, key_path(tmp_path, doctor))
    page.goto(f"{live_server}/admin/document/import-xml/")
    page.set_input_files("input[name=files]", [str(batch)])
    with page.expect_navigation():
        page.click("#import-xml-submit")
    expect(page.locator("#import-job-status")).to_contain_text("待機中")
    expect(page.locator("#import-job-pending")).to_be_visible()
    db.session.expire_all()
    import_jobs.run(db.session.execute(db.select(XmlImportJob.id)).scalar_one())
    expect(page.locator("#import-job-status")).to_contain_text("完了", timeout=10_000)
    expect(page.locator("#import-xml-report tr.import-created")).to_have_count(2)
    expect(page.locator("#import-job-pending")).to_have_count(0)
