"""医療機関ユーザデータファイル: the rules of the notice, preview then confirm, all or nothing, notices, CLI."""
import io
import re

from models.accounts import ImportBatch, Membership
from models.audit import OperationLog
from nanbyo import userfile
from nanbyo.extensions import db
from tests.helpers import OSAKA, TOKYO, csrf_token, gen_institution, gen_municipality, gen_user, login
from tests.userfile_helpers import counts, csv_bytes, doctor_row, xlsx_bytes


def plan(municipality, rows, filename="users.csv", data=None):
    return userfile.plan(municipality, filename, data if data is not None else csv_bytes(rows))


def test_new_doctors_are_planned_then_created_with_first_as_manager(tokyo, hospital):
    result = plan(tokyo, [doctor_row(1), doctor_row(2)])
    assert result.ok, result.problems
    assert [r.outcome for r in result.rows] == ["create", "create"]
    assert [r.manager for r in result.rows] == [True, False]
    before = counts()
    batch = userfile.execute(result, filename="users.csv", data=csv_bytes([doctor_row(1), doctor_row(2)]))
    assert counts()[0] == before[0] + 2
    first, second = batch.users
    assert first.role == "designated_doctor" and first.must_change_password and first.issuing_municipality == tokyo
    assert first.primary_membership.institution == hospital and first.primary_membership.is_manager
    assert not second.primary_membership.is_manager
    assert first.designations[0].kind == "nanbyo" and first.designations[0].number == "13-N-0001"
    assert str(first.designations[0].valid_from) == "2026-04-01"
    assert first.name == "見本 医師1" and first.name_kana == "ミホン イシ" and first.phone == "03-1234-5678"
    assert re.fullmatch(r"d\d{8}", first.login_id)
    actions = [e.action for e in db.session.query(OperationLog).order_by(OperationLog.seq)]
    assert actions.count("create") == 2 and actions[-1] == "import_users"


def test_existing_manager_is_kept(tokyo, hospital):
    gen_user("designated_doctor", institution=hospital, manager=True)
    result = plan(tokyo, [doctor_row(1)])
    assert result.ok and not result.rows[0].manager


def test_unregistered_institution_is_created_from_the_file(tokyo):
    result = plan(tokyo, [doctor_row(1, 医療機関コード="1310000099", 医療機関名="新規見本医院")])
    assert result.ok and result.institution is None
    batch = userfile.execute(result, filename="u.csv", data=b"x")
    assert batch.institution.code == "1310000099" and batch.institution.municipality == tokyo


def test_unregistered_institution_without_name_is_refused(tokyo):
    result = plan(tokyo, [doctor_row(1, 医療機関コード="1310000099", 医療機関名="")])
    assert not result.ok and "未登録" in str(result.problems[0])


def test_institution_of_another_municipality_is_refused(tokyo):
    gen_institution(gen_municipality(OSAKA), code="2710000019")
    result = plan(tokyo, [doctor_row(1, 医療機関コード="2710000019")])
    assert not result.ok and "大阪府の所管" in str(result.problems[0])


def test_concurrent_row_is_refused(tokyo, hospital):
    result = plan(tokyo, [doctor_row(1), doctor_row(2, 勤務区分="兼務")])
    assert [str(p) for p in result.problems] == [
        "3行目 勤務区分: 兼務の指定医は記載できません（兼務先は指定医本人が自アカウント管理で追加します）"]


def test_mixed_kinds_and_institutions_are_refused(tokyo, hospital):
    result = plan(tokyo, [doctor_row(1), doctor_row(2, 指定医区分="小慢指定医")])
    assert any("混在" in str(p) for p in result.problems)
    result = plan(tokyo, [doctor_row(1), doctor_row(2, 医療機関コード="1310000025")])
    assert any("1つの医療機関" in str(p) for p in result.problems)


def test_kyoryoku_and_nanbyo_may_share_a_file(tokyo, hospital):
    assert plan(tokyo, [doctor_row(1), doctor_row(2, 指定医区分="協力難病指定医")]).ok


def test_every_problem_is_reported_with_row_and_column(tokyo, hospital):
    rows = [doctor_row(1, 医療機関コード="13100000"), doctor_row(2),
            doctor_row(3, **{"カナ 姓": "みほん", "メールアドレス": "not-mail", "指定期間 開始": "2026-13-01",
                             "氏名 名": ""})]
    result = plan(tokyo, rows)
    messages = [str(p) for p in result.problems]
    assert "2行目 医療機関コード: 10桁の数字ではありません" in messages
    assert "4行目 カナ 姓: 全角カタカナで入力してください" in messages
    assert "4行目 メールアドレス: メールアドレスの形式が正しくありません" in messages
    assert "4行目 指定期間 開始: 日付（YYYY-MM-DD）ではありません" in messages
    assert "4行目 氏名 名: 必須項目です" in messages


def test_zenkaku_digits_and_spaces_are_normalised(tokyo, hospital):
    result = plan(tokyo, [doctor_row(1, 医療機関コード="１３１０００００１７", 指定医番号="１３－Ｎ－０００１",
                                    **{"氏名 姓": "　見本　", "カナ 名": "ｲｼ"})])
    assert result.ok, result.problems
    values = result.rows[0].values
    assert values["institution_code"] == "1310000017" and values["family_name"] == "見本"
    assert values["given_kana"] == "イシ"


def test_duplicate_rows_are_refused(tokyo, hospital):
    result = plan(tokyo, [doctor_row(1), doctor_row(2), doctor_row(1)])
    assert [str(p) for p in result.problems] == ["4行目 指定医番号: 2行目と同じ指定医が重複しています"]


def test_already_registered_doctor_is_reported_not_duplicated(tokyo, hospital):
    existing = gen_user("designated_doctor", institution=hospital, issuer=tokyo)
    existing.designations[0].number = "13-N-0001"
    db.session.commit()
    result = plan(tokyo, [doctor_row(1), doctor_row(2)])
    assert result.rows[0].outcome == "registered" and "登録不要" in result.rows[0].message
    before = counts()[0]
    userfile.execute(result, filename="u.csv", data=b"x")
    assert counts()[0] == before + 1


def test_doctor_registered_elsewhere_in_same_municipality_needs_primary_change(tokyo, hospital):
    clinic = gen_institution(tokyo)
    existing = gen_user("designated_doctor", institution=clinic, issuer=tokyo)
    existing.designations[0].number = "13-N-0001"
    existing.memberships.append(Membership(institution=hospital, kind="concurrent"))
    db.session.commit()
    row = plan(tokyo, [doctor_row(1)]).rows[0]
    assert row.outcome == "change_primary" and "主たる勤務先の変更" in row.message


def test_doctor_issued_by_another_municipality_must_be_deleted_there_first(tokyo, hospital):
    osaka = gen_municipality(OSAKA)
    existing = gen_user("designated_doctor", institution=gen_institution(osaka), issuer=osaka)
    existing.designations[0].number = "13-N-0001"
    db.session.commit()
    row = plan(tokyo, [doctor_row(1)]).rows[0]
    assert row.outcome == "other_issuer" and "大阪府が削除してから再発行" in row.message


def test_upload_preview_confirm_and_notices_through_the_screens(client, tokyo, hospital):
    clerk = gen_user("municipality_admin", municipality=tokyo)
    login(client, clerk)
    token = csrf_token(client, "/admin/user-import/")
    data = xlsx_bytes([doctor_row(1), doctor_row(2)])
    before = counts()
    r = client.post("/admin/user-import/preview", data={"csrf_token": token,
                                                         "file": (io.BytesIO(data), "users.xlsx")},
                    content_type="multipart/form-data")
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "新規発行" in page and "見本 医師1" in page
    assert counts() == before, "the preview writes nothing"
    r = client.post("/admin/user-import/confirm", data={"csrf_token": token})
    assert r.status_code == 302
    batch = db.session.query(ImportBatch).one()
    assert counts()[0] == before[0] + 2 and batch.created_count == 2
    assert client.post("/admin/user-import/confirm", data={"csrf_token": token}).status_code == 302
    assert counts()[0] == before[0] + 2, "a second confirm imports nothing"
    r = client.post(f"/admin/user-import/batch/{batch.id}/notices", data={"csrf_token": token})
    assert r.status_code == 200 and r.mimetype == "application/pdf" and r.data.startswith(b"%PDF")
    # The notice set a password: the doctor logs in with it (first-login setup follows).
    db.session.expire_all()
    assert all(u.must_change_password for u in batch.users)


def test_refused_upload_shows_all_problems_and_writes_nothing(client, tokyo, hospital):
    clerk = gen_user("municipality_admin", municipality=tokyo)
    login(client, clerk)
    token = csrf_token(client, "/admin/user-import/")
    before = counts()
    data = csv_bytes([doctor_row(1, 医療機関コード="abc"), doctor_row(2, 勤務区分="兼務")])
    r = client.post("/admin/user-import/preview", data={"csrf_token": token, "file": (io.BytesIO(data), "u.csv")},
                    content_type="multipart/form-data")
    page = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "2行目 医療機関コード: 10桁の数字ではありません" in page and "3行目 勤務区分" in page
    assert client.post("/admin/user-import/confirm", data={"csrf_token": token}).status_code == 302
    assert counts() == before


def test_other_municipality_cannot_see_a_batch(client, tokyo, hospital):
    result = plan(tokyo, [doctor_row(1)])
    batch = userfile.execute(result, filename="u.csv", data=b"x")
    osaka_clerk = gen_user("municipality_admin", municipality=gen_municipality(OSAKA))
    login(client, osaka_clerk)
    token = csrf_token(client, "/admin/user-import/")
    assert client.get(f"/admin/user-import/batch/{batch.id}").status_code == 404
    assert client.post(f"/admin/user-import/batch/{batch.id}/notices", data={"csrf_token": token}).status_code == 404


def test_template_and_sample_downloads_are_accepted_formats(client, tokyo, hospital):
    login(client, gen_user("municipality_admin", municipality=tokyo))
    template = client.get("/admin/user-import/template.xlsx")
    assert template.status_code == 200
    refused = userfile.plan(tokyo, "template.xlsx", template.data)
    assert [str(p) for p in refused.problems] == ["データ行がありません"]
    sample = client.get("/admin/user-import/sample.csv")
    assert sample.data.startswith(b"\xef\xbb\xbf")
    assert userfile.plan(tokyo, "sample.csv", sample.data).ok


def test_cli_import_dry_run_then_real(runner, tokyo, hospital, tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes(csv_bytes([doctor_row(1), doctor_row(2)]))
    before = counts()
    result = runner.invoke(args=["nanbyo", "import-users", str(path), "--municipality", TOKYO, "--dry-run"])
    assert result.exit_code == 0 and "新規発行" in result.output and counts() == before
    notices = tmp_path / "notices.pdf"
    result = runner.invoke(args=["nanbyo", "import-users", str(path), "--municipality", TOKYO,
                                 "--notices", str(notices)])
    assert result.exit_code == 0, result.output
    assert counts()[0] == before[0] + 2 and notices.read_bytes().startswith(b"%PDF")


def test_cli_refused_file_exits_non_zero(runner, tokyo, hospital, tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes(csv_bytes([doctor_row(1, 勤務区分="兼務")]))
    before = counts()
    result = runner.invoke(args=["nanbyo", "import-users", str(path), "--municipality", TOKYO])
    assert result.exit_code == 1 and "2行目 勤務区分" in result.output and counts() == before
    result = runner.invoke(args=["nanbyo", "import-users", str(path), "--municipality", "999999"])
    assert result.exit_code == 2


def test_published_definition_matches_the_importer():
    """docs/user-data-file.md is what hospital vendors read: every column, in order, with its flags."""
    from pathlib import Path
    doc = (Path(__file__).parent.parent / "docs" / "user-data-file.md").read_text(encoding="utf-8")
    rows = [line for line in doc.splitlines() if line.startswith("| ") and "---" not in line][1:len(userfile.COLUMNS) + 1]
    assert rows == [f"| {c.label} | {'必須' if c.required else '任意'} | {c.example} | {c.description} |"
                    for c in userfile.COLUMNS]


def test_unconfirmed_uploads_are_removed_after_a_day(client, app, tokyo, hospital):
    import os
    import time
    from pathlib import Path
    login(client, gen_user("municipality_admin", municipality=tokyo))
    token = csrf_token(client, "/admin/user-import/")
    upload_dir = Path(app.config["NANBYO_UPLOAD_DIR"])
    upload_dir.mkdir(parents=True, exist_ok=True)
    stale, fresh_file = upload_dir / "old.upload", upload_dir / "new.upload"
    stale.write_bytes(b"x")
    fresh_file.write_bytes(b"y")
    os.utime(stale, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    client.post("/admin/user-import/preview", data={"csrf_token": token,
                                                     "file": (io.BytesIO(csv_bytes([doctor_row(1)])), "u.csv")},
                content_type="multipart/form-data")
    assert not stale.exists() and fresh_file.exists()
    stored = [p for p in upload_dir.glob("*.upload") if p.name not in ("new.upload",)]
    assert len(stored) == 1 and len(stored[0].stem) >= 20, "the pending file has a random name"
