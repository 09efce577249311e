"""In Chromium: a municipality clerk imports the 認定事務システム's results (a CP932 CSV), first only checking, then
for real, reads what changed, and finds the change in the document's correction history."""
import pytest
from playwright.sync_api import expect

from nanbyo.extensions import db
from tests.browser.helpers import assert_fits, key_path, log_in
from tests.helpers import TOKYO, gen_document, gen_institution, gen_municipality, gen_user

pytestmark = pytest.mark.browser


def test_a_clerk_imports_review_results(app, live_server, browser, tmp_path):
    tokyo = gen_municipality(TOKYO)
    doctor = gen_user("designated_doctor", institution=gen_institution(tokyo))
    doc = gen_document(doctor, status="received")
    doc.reception_no = "R2026-00001"
    db.session.commit()
    clerk = gen_user("municipality_user", municipality=tokyo)
    results = tmp_path / "認定結果.csv"
    results.write_bytes("受付番号,審査結果,有効期間開始,有効期間終了,研究利用同意\r\n"
                        "R2026-00001,認定,2026/4/1,2027/3/31,同意あり\r\n".encode("cp932"))

    for width in (1280, 1024):
        page = browser.new_page(viewport={"width": width, "height": 900})
        log_in(page, live_server, clerk, key_path(tmp_path, clerk))
        page.get_by_role("link", name="取込").click()  # the menu
        page.get_by_role("link", name="認定結果取込").click()
        expect(page.get_by_role("heading", name="認定結果データ一括取込")).to_be_visible()
        page.set_input_files("input[name=file]", str(results))
        if width == 1280:
            page.check("input[name=dry_run]")
            with page.expect_navigation():
                page.click("#results-submit")
            expect(page.locator("#results-dry-run")).to_contain_text("変更する書類 1件")
            expect(page.locator("#results-report")).to_contain_text("審査結果: （空欄） → 認定")
            page.set_input_files("input[name=file]", str(results))
            page.uncheck("input[name=dry_run]")
            with page.expect_navigation():
                page.click("#results-submit")
            expect(page.locator("#results-applied")).to_contain_text("1件の書類を変更しました")
        else:  # the same file again: nothing to change
            with page.expect_navigation():
                page.click("#results-submit")
            expect(page.locator("#results-applied")).to_contain_text("0件の書類を変更しました")
        assert_fits(page, tmp_path, f"results-import-{width}")
        page.close()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, live_server, clerk, key_path(tmp_path, clerk))
    page.goto(f"{live_server}/admin/document/details/?id={doc.id}")
    expect(page.locator("#corrections")).to_contain_text("審査結果")
    expect(page.locator("body")).to_contain_text("審査済")
