"""In Chromium: before the idle timeout the page warns and offers to extend; extending keeps the session; once the
session has ended the page says so and what pressing 保存 will do."""
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from models._types import utcnow
from models.accounts import UserSession
from nanbyo.extensions import db
from tests.browser.helpers import key_path, log_in
from tests.helpers import gen_document, gen_institution, gen_user

pytestmark = pytest.mark.browser


def test_warning_extend_and_ended(app, live_server, browser, tmp_path):
    # Short enough that the five-minute warning shows within seconds.
    app.config["NANBYO_IDLE_TIMEOUT"] = timedelta(seconds=340)
    doctor = gen_user("designated_doctor", institution=gen_institution())
    doc = gen_document(doctor)
    page = browser.new_page(viewport={"width": 1024, "height": 800})
    log_in(page, live_server, doctor, key_path(tmp_path, doctor))
    page.goto(f"{live_server}/admin/document/edit/?id={doc.id}")
    banner = page.locator("#session-timeout-banner")
    expect(banner).to_contain_text("分でログアウトします", timeout=20_000)
    page.screenshot(path=str(tmp_path / "warning.png"))
    before = utcnow()
    page.get_by_role("button", name="ログインを延長").click()
    expect(banner).to_be_hidden()
    db.session.expire_all()
    record = db.session.execute(select(UserSession).filter_by(user_id=doctor.id)).scalar_one()
    assert record.last_seen_at >= before - timedelta(seconds=1) and record.revoked_at is None

    # The session ends meanwhile (as the idle timeout ends it): extending says so.
    record.revoked_at, record.end_reason = utcnow(), "expired"
    db.session.commit()
    expect(banner).to_contain_text("分でログアウトします", timeout=20_000)
    page.get_by_role("button", name="ログインを延長").click()
    expect(banner).to_contain_text("一定時間操作がなかったためログアウトしました")
    expect(banner).to_contain_text("ログインし直した後に入力していた内容をこの画面に戻します")
