"""In Chromium: a municipality clerk opens 統計 from the menu, counts its received documents by 種類, sees the table
(the small row masked) and its chart drawn, and downloads the table as Excel; the menu bar still fits 1024 px."""
import io

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect

from tests.browser.helpers import assert_fits, key_path, log_in
from tests.helpers import TOKYO, gen_document, gen_institution, gen_municipality, gen_patient, gen_user

pytestmark = pytest.mark.browser


def test_a_clerk_counts_documents_and_downloads_the_table(app, live_server, browser, tmp_path):
    tokyo = gen_municipality(TOKYO)
    doctor = gen_user("designated_doctor", institution=gen_institution(tokyo), designations=("nanbyo", "shoman"))
    for n in range(12):
        gen_document(doctor, status="received", patient=gen_patient(sex="1" if n % 2 else "2"))
    gen_document(doctor, kind="shoman", status="received")
    clerk = gen_user("municipality_admin", municipality=tokyo)

    page = browser.new_page(viewport={"width": 1024, "height": 900})
    log_in(page, live_server, clerk, key_path(tmp_path, clerk))
    page.get_by_role("link", name="統計").click()
    page.select_option("select[name=by1]", "kind")
    with page.expect_navigation():
        page.click("#stats-submit")
    table = page.locator("#stats-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").first).to_contain_text("12")
    expect(table.locator("tbody tr").last).to_contain_text("10未満")  # one 小慢 patient: masked for a municipality
    expect(page.locator("#stats-summary")).to_contain_text("書類 12 件")  # the total does not give the row away
    page.wait_for_function("() => Chart.getChart(document.getElementById('stats-chart')) !== undefined")
    assert page.locator("#stats-chart").bounding_box()["width"] > 300
    assert_fits(page, tmp_path, "stats-clerk-1024")
    with page.expect_download() as download:
        page.click("#stats-xlsx")
    sheet = load_workbook(io.BytesIO(open(download.value.path(), "rb").read())).active
    assert [c.value for c in sheet[1]] == ["種類", "書類数", "患者数"] and sheet.max_row == 3
    assert [c.value for c in sheet[2]] == ["難病 臨個票", 12, 12]
