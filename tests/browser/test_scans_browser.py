"""In Chromium: a municipality clerk uploads two scans; the operator downloads them as a ZIP and sends one back with
a reason; the clerk reads the reason and deletes the scan sent back."""
import pytest
from playwright.sync_api import expect

from tests.browser.helpers import assert_fits, download_every_scan, key_path, log_in
from tests.files.test_scans import PDF, PNG
from tests.helpers import TOKYO, gen_municipality, gen_user

pytestmark = pytest.mark.browser


def test_scans_from_the_municipality_to_the_operator_and_back(app, live_server, browser, tmp_path):
    tokyo = gen_municipality(TOKYO)
    clerk, operator = gen_user("municipality_user", municipality=tokyo), gen_user("operator_user")
    (tmp_path / "申請書1.pdf").write_bytes(PDF)
    (tmp_path / "申請書2.png").write_bytes(PNG)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, live_server, clerk, key_path(tmp_path, clerk))
    page.get_by_role("link", name="取込").click()  # the menu
    page.get_by_role("link", name="スキャンファイル").click()
    page.set_input_files("input[name=files]", [str(tmp_path / "申請書1.pdf"), str(tmp_path / "申請書2.png")])
    page.select_option("select[name=kind]", "nanbyo")
    page.select_option("select[name=application_kind]", "new")
    page.fill("input[name=reception_no]", "R2026-00001")
    with page.expect_navigation():
        page.click("#scan-upload-submit")
    expect(page.locator(".alert-success")).to_contain_text("2 件をアップロードしました")
    expect(page.locator("#scans tr.scan-waiting")).to_have_count(2)
    assert_fits(page, tmp_path, "scans-municipality-1280")
    page.close()

    page = browser.new_page(viewport={"width": 1024, "height": 900})
    log_in(page, live_server, operator, key_path(tmp_path, operator))
    assert sorted(download_every_scan(page, live_server).values()) == sorted([PDF, PNG])
    page.reload()
    expect(page.locator("#scans tr.scan-downloaded")).to_have_count(2)
    first = page.locator("#scans tr.scan-downloaded").first
    scan_id = first.get_attribute("data-scan")
    first.locator(".scan-return-link").click()
    page.fill(f"#reason-{scan_id}", "2枚目が読めません。もう一度スキャンしてください。")
    with page.expect_navigation():
        page.locator(f"#return-{scan_id} button").click()
    expect(page.locator(".alert-success")).to_contain_text("差し戻しました")
    assert_fits(page, tmp_path, "scans-operator-1024")
    page.close()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, live_server, clerk, key_path(tmp_path, clerk))
    page.goto(f"{live_server}/admin/scans/")
    returned = page.locator(f'#scans tr[data-scan="{scan_id}"]')
    expect(returned.locator(".scan-reason")).to_contain_text("2枚目が読めません")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        returned.locator(".scan-delete").click()
    expect(page.locator(".alert-success")).to_contain_text("削除しました")
    expect(page.locator(f'#scans tr[data-scan="{scan_id}"]')).to_have_count(0)
