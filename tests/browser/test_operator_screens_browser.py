"""In Chromium, with the demo data: the operator's screens this work added or changed — 紙の書類のデータ取込, the
new-document form for a paper form (typed with the keyboard, its scan chosen), the paper document with its scan
beside it, 統計 and the operation log with its chain state — fit 1280 and 1024 px, the menu on one line."""
import pytest
from playwright.sync_api import expect

from nanbyo.demo import create_demo
from tests.browser.helpers import DEMO_PASSWORD, assert_fits, log_in

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [1280, 1024])
def test_the_operators_new_screens_fit(app, live_server, browser, tmp_path, width):
    keys = dict(create_demo(tmp_path / "demo-keys", DEMO_PASSWORD))
    page = browser.new_page(viewport={"width": width, "height": 900})
    log_in(page, live_server, "operator", keys["operator"], DEMO_PASSWORD)

    page.get_by_role("link", name="取込").click()
    page.get_by_role("link", name="紙の書類のデータ取込").click()
    expect(page.get_by_role("heading", name="紙の書類のデータ取込（外部委託事業者のXML）")).to_be_visible()
    assert_fits(page, tmp_path, f"paper-import-{width}")

    page.goto(f"{live_server}/admin/scans/?status=waiting")
    waiting = page.locator("#scans tr.scan-waiting").first.get_attribute("data-scan")
    page.goto(f"{live_server}/admin/document/new/?kind=nanbyo")
    expect(page.locator("#paper-entry-help")).to_be_visible()
    page.fill("input[name=scans]", waiting)
    page.fill("input[name=doctor_number]", "13-N-0998")
    page.fill("input[name=doctor_name]", "紙野 二郎")
    page.fill("input[name=institution_code]", "1310000998")
    page.fill("input[name=institution_name]", "見本第二診療所")
    page.get_by_text("説明済・同意", exact=True).click()  # the option's label takes the click
    assert_fits(page, tmp_path, f"paper-new-{width}")
    with page.expect_navigation():
        page.click("#create-draft")
    expect(page.locator(".alert-danger, .alert-error")).to_contain_text("疾病を選択してください")  # none chosen yet

    page.goto(f"{live_server}/admin/scans/?status=digitized")
    with page.expect_navigation():
        page.locator("#scans a.scan-document").first.click()
    expect(page.locator("#document-header")).to_contain_text("紙の書類")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=page.locator("#scan-beside img.scan-page").first.element_handle())
    assert_fits(page, tmp_path, f"paper-details-{width}")

    page.get_by_role("link", name="統計").click()
    page.select_option("select[name=by1]", "status")
    with page.expect_navigation():
        page.click("#stats-submit")
    expect(page.locator("#stats-table tbody tr").first).to_be_visible()
    assert_fits(page, tmp_path, f"stats-operator-{width}")

    page.goto(f"{live_server}/admin/operation_log/")
    expect(page.locator("body")).to_contain_text("統計情報の表示")
    assert_fits(page, tmp_path, f"log-{width}")
