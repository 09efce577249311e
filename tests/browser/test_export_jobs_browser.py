"""In Chromium: 出力ファイル follows a job as it is written (its script runs under the CSP: by nonce, no inline
handlers) and offers the download when the job is done, without a reload."""
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from models._types import utcnow
from models.exports import ExportJob
from nanbyo import export_jobs
from nanbyo.extensions import db
from tests.browser.helpers import key_path, log_in
from tests.helpers import gen_municipality, gen_user

pytestmark = pytest.mark.browser


def test_the_page_follows_a_job_until_its_download(app, live_server, browser, tmp_path):
    clerk = gen_user("municipality_user", municipality=gen_municipality())
    now = utcnow()
    job = ExportJob(owner_id=clerk.id, endpoint="document", format="csv", query_args=[], status="running",
                    rows_written=0, total_rows=120_000, created_at=now, expires_at=now + timedelta(hours=1))
    db.session.add(job)
    db.session.commit()
    page = browser.new_page(viewport={"width": 1024, "height": 800})
    refused = []
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
            else None)
    log_in(page, live_server, clerk, key_path(tmp_path, clerk))
    page.goto(f"{live_server}/admin/exports/")
    row = page.locator(f'tr[data-job="{job.id}"]')
    expect(row.locator(".job-status")).to_have_text("作成中")
    expect(row.locator(".job-rows")).to_have_text("0 / 120,000件")

    job.rows_written = 50_000
    db.session.commit()
    expect(row.locator(".job-rows")).to_have_text("50,000 / 120,000件", timeout=10_000)

    export_jobs.export_store().put("done.csv", b"\xef\xbb\xbfNo.\r\n")
    job.status, job.rows_written, job.file_name, job.finished_at = "done", 120_000, "done.csv", utcnow()
    db.session.commit()
    link = row.get_by_role("link", name="ダウンロード")
    expect(link).to_be_visible(timeout=10_000)
    expect(row.locator(".job-status")).to_have_text("完了")
    expect(row.locator(".job-rows")).to_have_text("120,000件")
    assert link.get_attribute("href") == f"/admin/exports/{job.id}/download"
    page.screenshot(path=str(tmp_path / "export-jobs.png"))
    assert refused == []
