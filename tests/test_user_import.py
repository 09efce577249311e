"""医療機関ユーザデータファイル: the rules of the notice, preview then confirm, all or nothing, notices, CLI; the
notice's headings, the 主たる勤務先 change and the individual path (個別発行)."""
import datetime
import io
import re

import pytest
from sqlalchemy import update

from models._types import utcnow
from models.accounts import ImportBatch, Membership
from models.institutions import Municipality
from models.audit import OperationLog
from nanbyo import userfile
from nanbyo.extensions import db
from tests.helpers import (OSAKA, TOKYO, csrf_from, csrf_token, fresh, gen_institution, gen_municipality, gen_user,
                           log_entries, login, logout)
from tests.userfile_helpers import (NOTICE_HEADINGS, counts, csv_bytes, doctor_elsewhere, doctor_row, notice_file,
                                    xlsx_bytes)


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
    assert row.outcome == "change_primary" and "主たる勤務先の変更" in row.message and not row.blocked
    assert userfile.OUTCOME_LABELS[row.outcome] == "要確認：医療機関に主たる勤務先を確認"


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


def test_a_large_batch_prints_its_notices_in_parts(client, tokyo, hospital, monkeypatch):
    """Each notice sets a password (argon2, slow): a batch above NOTICES_PER_PDF is printed in parts of that many,
    in ID order; a part resets its own accounts' passwords alone."""
    from tests.test_notices import page_count
    from views import user_import
    monkeypatch.setattr(user_import, "NOTICES_PER_PDF", 2)
    batch = userfile.execute(plan(tokyo, [doctor_row(i) for i in range(1, 6)]), filename="u.csv", data=b"x")
    clerk = gen_user("municipality_admin", municipality=tokyo)
    login(client, clerk)
    page = client.get(f"/admin/user-import/batch/{batch.id}").get_data(as_text=True)
    assert re.findall(r">([\d〜]+)件目を出力<", page) == ["1〜2", "3〜4", "5"]
    assert 'id="download-notices"' not in page
    token = csrf_from(page)
    users = sorted(batch.users, key=lambda u: u.id)
    hashes = {u.id: u.password_hash for u in users}
    r = client.post(f"/admin/user-import/batch/{batch.id}/notices", data={"csrf_token": token, "part": "1"})
    assert r.status_code == 200 and r.mimetype == "application/pdf" and page_count(r.data) == 2
    assert f"notices_batch_{batch.id}_2.pdf" in r.headers["Content-Disposition"]
    db.session.expire_all()
    changed = [u.login_id for u in users if db.session.get(type(u), u.id).password_hash != hashes[u.id]]
    assert changed == [users[2].login_id, users[3].login_id]
    issued = [e.target_id for e in db.session.query(OperationLog).filter_by(action="notice_issue")]
    assert issued == [str(users[2].id), str(users[3].id)]
    # A part that is not there changes nothing.
    for part in ("3", "-1", "x"):
        r = client.post(f"/admin/user-import/batch/{batch.id}/notices", data={"csrf_token": token, "part": part})
        assert r.status_code == 302
        assert "範囲が正しくありません" in client.get(r.headers["Location"]).get_data(as_text=True)
    assert db.session.query(OperationLog).filter_by(action="notice_issue").count() == 2


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


def test_a_confirmation_is_recorded_before_its_work_and_one_whose_worker_died_says_failed(client, tokyo, hospital):
    """begin_batch() commits the batch as 取込中 before the unit of work (the confirm screen's first step); a worker
    killed in the middle leaves it so (tests/test_worker_faults.py kills one for real). Past BATCH_STALLED_AFTER it
    becomes 失敗, logged once with who confirmed it; a recent one stays 取込中; another municipality sees neither."""
    clerk = gen_user("municipality_admin", municipality=tokyo)
    killed = userfile.begin_batch(tokyo.id, filename="users.csv", file_sha256="ab" * 32,
                                  institution_code="1310000017", actor=clerk)
    recent = userfile.begin_batch(tokyo.id, filename="later.csv", file_sha256="cd" * 32,
                                  institution_code="1310000017", actor=clerk)
    db.session.execute(update(ImportBatch).where(ImportBatch.id == killed).values(
        created_at=utcnow() - userfile.BATCH_STALLED_AFTER - datetime.timedelta(seconds=1)))
    db.session.commit()
    assert userfile.fail_stalled(gen_municipality(OSAKA).id) == []
    login(client, clerk)
    page = client.get("/admin/user-import/").get_data(as_text=True)  # the history makes it 失敗 as it is shown
    assert re.search(rf'class="batch-failed"><td><a [^>]*>{killed}</a>.*?1310000017 東京見本病院.*?<td>失敗</td>',
                     page, re.S)
    assert re.search(rf'class="batch-running"><td><a [^>]*>{recent}</a>.*?<td>取込中</td>', page, re.S)
    [entry] = log_entries("import_users_failed")
    assert entry.target_id == str(killed) and entry.actor_login == clerk.login_id and entry.result == "failure"
    assert userfile.fail_stalled() == [] and len(log_entries("import_users_failed")) == 1
    page = client.get(f"/admin/user-import/batch/{killed}").get_data(as_text=True)
    assert "この取込は失敗しました" in page and "新規発行" not in page
    token = csrf_token(client, "/admin/user-import/")
    assert client.post(f"/admin/user-import/batch/{killed}/notices", data={"csrf_token": token}).status_code == 302
    logout(client)
    login(client, gen_user("municipality_admin", municipality=db.session.query(Municipality).filter_by(
        code=OSAKA).one()))
    assert client.get(f"/admin/user-import/batch/{killed}").status_code == 404
    assert f">{killed}</a>" not in client.get("/admin/user-import/").get_data(as_text=True)


def test_a_refused_confirmation_leaves_no_batch(client, tokyo, hospital, clinic):
    doctor = doctor_elsewhere(tokyo, clinic, manager=True)
    token, _ = clerk_with_upload(client, tokyo, [doctor_row(1), doctor_row(2)])
    r = client.post("/admin/user-import/confirm", data={"csrf_token": token, "change_primary": "2"})
    assert r.status_code == 400 and db.session.query(ImportBatch).count() == 0
    assert memberships_of(doctor) == [("1310000025", "primary", True, "")]


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


def test_published_heading_names_match_the_importer():
    """The table of accepted headings in docs/user-data-file.md lists exactly the headings each column takes."""
    from pathlib import Path
    doc = (Path(__file__).parent.parent / "docs" / "user-data-file.md").read_text(encoding="utf-8")
    section = doc[doc.index("## 見出し"):doc.index("## 1ファイルの決まり")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == [f"| {c.label} | {' / '.join(c.headings)} |" for c in userfile.COLUMNS]
    assert "自治体の案内" in doc and "通知の決まりではありません" in doc


# --- the notice's headings -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_file_with_the_notice_headings_in_another_order_imports(tokyo, hospital, fmt):
    assert list(NOTICE_HEADINGS)[0] == "氏名 姓", "not the template's order"
    data = notice_file([doctor_row(1), doctor_row(2, 指定医区分="協力難病指定医", 電話="")], fmt)
    result = userfile.plan(tokyo, f"notice.{fmt}", data)
    assert result.ok, [str(p) for p in result.problems]
    batch = userfile.execute(result, filename=f"notice.{fmt}", data=data)
    first, second = batch.users
    assert (first.name, first.name_kana, first.phone, first.email) == (
        "見本 医師1", "ミホン イシ", "03-1234-5678", "doc1@example.jp")
    d = first.designations[0]
    assert (d.kind, d.number, d.valid_from, d.valid_until) == (
        "nanbyo", "13-N-0001", datetime.date(2026, 4, 1), datetime.date(2031, 3, 31))
    assert first.primary_membership.institution == hospital and first.primary_membership.department == "脳神経内科"
    assert second.designations[0].kind == "nanbyo_kyoryoku" and second.phone == ""


def test_heading_variants_are_compared_after_normalising(tokyo, hospital):
    variants = {"部署(部門・診療科)": "部署（部門/診療科）", "氏名　姓": "氏名 姓", "氏名（名）": "氏名 名",
                "フリガナ姓": "カナ 姓", "ﾒｲ": "カナ 名", "ｔｅｌ": "電話", "e−mail": "メールアドレス",
                "指定医の種類": "指定医区分", "指定医番号": "指定医番号", "医療機関コード": "医療機関コード",
                "勤務 区分": "勤務区分", "有効期間　開始": "指定期間 開始", "有効期間 終了": "指定期間 終了"}
    data = csv_bytes([doctor_row(1)], header=list(variants), keys=list(variants.values()))
    result = userfile.plan(tokyo, "u.csv", data)
    assert result.ok, [str(p) for p in result.problems]
    values = result.rows[0].values
    assert (values["department"], values["given_name"], values["given_kana"], values["phone"], values["email"]) == (
        "脳神経内科", "医師1", "イシ", "03-1234-5678", "doc1@example.jp")
    assert values["valid_until"] == datetime.date(2031, 3, 31) and values["institution_name"] == ""


def test_an_unknown_heading_is_refused_by_name(tokyo, hospital):
    header = list(NOTICE_HEADINGS) + ["備考"]
    data = csv_bytes([doctor_row(1)], header=header, keys=list(NOTICE_HEADINGS.values()) + ["備考"])
    before = counts()
    result = userfile.plan(tokyo, "u.csv", data)
    [problem] = [str(p) for p in result.problems]
    assert problem.startswith("1行目: 見出し「備考」は使えません。使える見出し: 指定医区分、指定医番号、医療機関コード")
    assert not result.rows and counts() == before


def test_a_missing_required_column_is_named(tokyo, hospital):
    header = [h for h in NOTICE_HEADINGS if h not in ("指定医番号", "フリガナ 姓")]
    data = csv_bytes([doctor_row(1)], header=header, keys=[NOTICE_HEADINGS[h] for h in header])
    assert [str(p) for p in userfile.plan(tokyo, "u.csv", data).problems] == [
        "1行目: 必須の列がありません: 指定医番号、カナ 姓"]


def test_a_column_named_twice_is_refused(tokyo, hospital):
    header = list(NOTICE_HEADINGS) + ["姓", "電話番号"]
    data = csv_bytes([doctor_row(1)], header=header, keys=list(NOTICE_HEADINGS.values()) + ["氏名 姓", "電話"])
    assert [str(p) for p in userfile.plan(tokyo, "u.csv", data).problems] == [
        "1行目: 「氏名 姓」の列が2つあります（見出し「氏名 姓」「姓」）。1列にしてください",
        "1行目: 「電話」の列が2つあります（見出し「電話」「電話番号」）。1列にしてください"]


def test_the_upload_screen_accepts_the_notice_headings(client, tokyo, hospital):
    login(client, gen_user("municipality_admin", municipality=tokyo))
    page = client.get("/admin/user-import/").get_data(as_text=True)
    assert "医療機関番号" in page and "フリガナ 姓" in page, "the accepted headings are listed"
    token = csrf_from(page)
    r = client.post("/admin/user-import/preview", data={"csrf_token": token, "file": (
        io.BytesIO(notice_file([doctor_row(1)], "xlsx")), "notice.xlsx")}, content_type="multipart/form-data")
    assert r.status_code == 200 and "新規発行" in r.get_data(as_text=True)
    assert client.post("/admin/user-import/confirm", data={"csrf_token": token}).status_code == 302
    assert db.session.query(ImportBatch).one().created_count == 1


# --- 主たる勤務先の変更 ---------------------------------------------------------------------------------------------

@pytest.fixture
def clinic(tokyo):
    return gen_institution(tokyo, code="1310000025", name="東京見本クリニック")


def upload(client, rows, token):
    return client.post("/admin/user-import/preview", data={"csrf_token": token,
                                                            "file": (io.BytesIO(csv_bytes(rows)), "users.csv")},
                       content_type="multipart/form-data")


def clerk_with_upload(client, tokyo, rows):
    login(client, gen_user("municipality_admin", municipality=tokyo))
    token = csrf_token(client, "/admin/user-import/")
    r = upload(client, rows, token)
    return token, r


def memberships_of(user):
    db.session.expire_all()
    return sorted((m.institution.code, m.kind, m.is_manager, m.department)
                  for m in db.session.execute(db.select(Membership).filter_by(user_id=user.id)).scalars())


def test_preview_asks_to_confirm_the_primary_institution(client, tokyo, hospital, clinic):
    doctor_elsewhere(tokyo, clinic)
    token, r = clerk_with_upload(client, tokyo, [doctor_row(1), doctor_row(2)])
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "要確認：医療機関に主たる勤務先を確認" in page
    assert 'name="change_primary" value="2"' in page and 'value="3"' not in page
    assert "東京見本クリニック（1310000025）" in page


def test_unticked_row_changes_nothing(client, tokyo, hospital, clinic):
    doctor = doctor_elsewhere(tokyo, clinic)
    before = memberships_of(doctor)
    token, _ = clerk_with_upload(client, tokyo, [doctor_row(1), doctor_row(2)])
    r = client.post("/admin/user-import/confirm", data={"csrf_token": token})
    assert r.status_code == 302
    assert memberships_of(doctor) == before
    assert fresh(doctor).designations[0].valid_from is None
    assert [e for e in log_entries("update") if e.target_id == str(doctor.id)] == []
    batch = db.session.query(ImportBatch).one()
    assert batch.created_count == 1 and batch.reported_count == 1


def test_ticked_row_moves_the_primary_institution(client, tokyo, hospital, clinic):
    doctor = doctor_elsewhere(tokyo, clinic)
    token, _ = clerk_with_upload(client, tokyo, [doctor_row(1), doctor_row(2)])
    users_before = counts()[0]
    r = client.post("/admin/user-import/confirm", data={"csrf_token": token, "change_primary": "2"})
    assert r.status_code == 302
    assert memberships_of(doctor) == [("1310000017", "primary", False, "脳神経内科")]
    moved = fresh(doctor)
    assert (moved.designations[0].valid_from, moved.designations[0].valid_until) == (
        datetime.date(2026, 4, 1), datetime.date(2031, 3, 31))
    assert moved.login_id == doctor.login_id and not moved.must_change_password, "same ID, same password"
    assert counts()[0] == users_before + 1, "only doctor 2 is new"
    batch = db.session.query(ImportBatch).one()
    [entry] = [e for e in log_entries("update") if e.target_id == str(doctor.id)]
    assert entry.target_type == "user_account"
    assert entry.data["primary_from"] == "1310000025" and entry.data["primary_to"] == "1310000017"
    assert entry.data["import_batch"] == batch.id and entry.data["row"] == 2 and not entry.data["from_concurrent"]
    assert log_entries("import_users")[-1].data["primary_changed"] == [doctor.id]
    page = client.get(f"/admin/user-import/batch/{batch.id}").get_data(as_text=True)
    assert "主たる勤務先を変更した指定医" in page and doctor.login_id in page


def test_ticked_row_with_a_concurrent_membership_there_makes_it_the_primary_one(client, tokyo, hospital, clinic):
    doctor = doctor_elsewhere(tokyo, clinic, concurrent_at=hospital)
    concurrent_id = next(m.id for m in doctor.memberships if m.kind == "concurrent")
    token, _ = clerk_with_upload(client, tokyo, [doctor_row(1, **{"部署（部門/診療科）": ""})])
    r = client.post("/admin/user-import/confirm", data={"csrf_token": token, "change_primary": "2"})
    assert r.status_code == 302
    assert memberships_of(doctor) == [("1310000017", "primary", False, "旧部署")], "no department: kept"
    assert db.session.get(Membership, concurrent_id).kind == "primary", "the same row, now primary"
    [entry] = [e for e in log_entries("update") if e.target_id == str(doctor.id)]
    assert entry.data["from_concurrent"] is True


def test_a_manager_at_the_old_institution_is_refused(client, tokyo, hospital, clinic):
    doctor = doctor_elsewhere(tokyo, clinic, manager=True)
    token, r = clerk_with_upload(client, tokyo, [doctor_row(1), doctor_row(2)])
    before, memberships = counts(), memberships_of(doctor)
    page = r.get_data(as_text=True)
    assert "東京見本クリニックの責任者のため、主たる勤務先を変更できません。先に責任者を交代してください" in page
    assert 'name="change_primary"' not in page, "no checkbox for a row that cannot change"
    r = client.post("/admin/user-import/confirm", data={"csrf_token": token, "change_primary": "2"})
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and "何も登録していません" in page
    assert "2行目 " in page and "責任者を交代してください" in page
    assert counts() == before and memberships_of(doctor) == memberships


@pytest.mark.parametrize("ticked", ["3", "99", "abc"])
def test_a_row_that_is_not_to_confirm_is_refused(client, tokyo, hospital, clinic, ticked):
    doctor = doctor_elsewhere(tokyo, clinic)
    token, _ = clerk_with_upload(client, tokyo, [doctor_row(1), doctor_row(2)])
    before, memberships = counts(), memberships_of(doctor)
    r = client.post("/admin/user-import/confirm", data={"csrf_token": token, "change_primary": ["2", ticked]})
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and "何も登録していません" in page
    expected = "主たる勤務先の変更の指定が正しくありません" if ticked == "abc" else \
        f"{ticked}行目 主たる勤務先の変更の対象ではありません"
    assert expected in page
    assert counts() == before and memberships_of(doctor) == memberships


def test_the_plan_is_recomputed_at_confirm(client, tokyo, hospital, clinic):
    doctor = doctor_elsewhere(tokyo, clinic)
    token, _ = clerk_with_upload(client, tokyo, [doctor_row(1)])
    # Between preview and confirm the doctor becomes 責任者 of the clinic: the tick is refused.
    db.session.get(Membership, doctor.memberships[0].id).is_manager = True
    db.session.commit()
    r = client.post("/admin/user-import/confirm", data={"csrf_token": token, "change_primary": "2"})
    assert r.status_code == 400 and "責任者を交代してください" in r.get_data(as_text=True)
    assert memberships_of(doctor) == [("1310000025", "primary", True, "")]


def test_execute_changes_the_rows_it_is_given(tokyo, hospital, clinic):
    """The CLI's --change-primary: execute(change_primary_rows=result.change_primary_rows)."""
    doctor = doctor_elsewhere(tokyo, clinic)
    other = doctor_elsewhere(tokyo, clinic, number="13-N-0003")
    rows = [doctor_row(1), doctor_row(2), doctor_row(3)]
    result = plan(tokyo, rows)
    assert result.change_primary_rows == {2, 4}
    before = counts()
    with pytest.raises(userfile.FileRefused, match="3行目 主たる勤務先の変更の対象ではありません"):
        userfile.execute(result, filename="u.csv", data=b"x", change_primary_rows={2, 3})
    assert counts() == before
    userfile.execute(plan(tokyo, rows), filename="u.csv", data=b"x",
                     change_primary_rows=plan(tokyo, rows).change_primary_rows)
    assert memberships_of(doctor)[0][:2] == memberships_of(other)[0][:2] == ("1310000017", "primary")
    assert len(log_entries("update")) == 2


def test_execute_refuses_a_manager_even_if_planned_before(tokyo, hospital, clinic):
    doctor = doctor_elsewhere(tokyo, clinic)
    result = plan(tokyo, [doctor_row(1)])
    db.session.get(Membership, doctor.memberships[0].id).is_manager = True
    db.session.commit()
    before = counts()
    with pytest.raises(userfile.FileRefused, match="責任者を交代してください"):
        userfile.execute(result, filename="u.csv", data=b"x", change_primary_rows={2})
    assert counts() == before and memberships_of(doctor) == [("1310000025", "primary", True, "")]
    assert log_entries("import_users") == []


def test_cli_report_shows_why_a_row_cannot_change(tokyo, hospital, clinic):
    doctor_elsewhere(tokyo, clinic, manager=True)
    lines = userfile.report_lines(plan(tokyo, [doctor_row(1)]))
    assert "要確認：医療機関に主たる勤務先を確認" in lines[1] and "先に責任者を交代してください" in lines[1]


# --- 個別発行（1名） ------------------------------------------------------------------------------------------------

def individual_values(**changes):
    values = {"application_ref": "R8-指定-0123", "doctor_kind": "難病指定医", "doctor_number": "13-N-0501",
              "institution_code": "1310000017", "institution_name": "", "department": "小児科",
              "family_name": "個別", "given_name": "一郎", "family_kana": "コベツ", "given_kana": "イチロウ",
              "phone": "03-1111-2222", "email": "kobetsu@example.jp", "valid_from": "2026-04-01",
              "valid_until": "2031-03-31"}
    values.update(changes)
    return values


def post_individual(client, token, **changes):
    return client.post("/admin/user-import/individual", data=dict(individual_values(**changes), csrf_token=token))


def test_individual_form_issues_one_id_tied_to_the_application(client, tokyo, hospital):
    login(client, gen_user("municipality_admin", municipality=tokyo))
    page = client.get("/admin/user-import/").get_data(as_text=True)
    assert "個別発行（1名）" in page and "指定申請の受付番号" in page
    token = csrf_from(page)
    before = counts()
    r = post_individual(client, token)
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "新規発行" in page and "個別 一郎" in page and "R8-指定-0123" in page
    assert counts() == before, "the preview writes nothing"
    assert client.post("/admin/user-import/confirm", data={"csrf_token": token}).status_code == 302
    batch = db.session.query(ImportBatch).one()
    assert (batch.source, batch.application_ref, batch.created_count, batch.filename) == ("form", "R8-指定-0123", 1, "")
    [user] = batch.users
    d = user.designations[0]
    assert (user.name, user.name_kana, user.email, d.kind, d.number, d.valid_until) == (
        "個別 一郎", "コベツ イチロウ", "kobetsu@example.jp", "nanbyo", "13-N-0501", datetime.date(2031, 3, 31))
    assert user.primary_membership.institution == hospital and user.primary_membership.department == "小児科"
    assert user.issuing_municipality == tokyo and user.must_change_password
    assert log_entries("import_users")[-1].data["source"] == "form"
    page = client.get(f"/admin/user-import/batch/{batch.id}").get_data(as_text=True)
    assert "個別発行（1名）" in page and "指定申請の受付番号: R8-指定-0123" in page
    assert "個別発行（受付番号 R8-指定-0123）" in client.get("/admin/user-import/").get_data(as_text=True)
    r = client.post(f"/admin/user-import/batch/{batch.id}/notices", data={"csrf_token": token})
    assert r.status_code == 200 and r.data.startswith(b"%PDF")


def test_individual_form_registers_a_new_institution_like_a_file(client, tokyo):
    login(client, gen_user("municipality_admin", municipality=tokyo))
    token = csrf_token(client, "/admin/user-import/")
    r = post_individual(client, token, institution_code="1310000099", institution_name="個別見本医院")
    assert r.status_code == 200 and "この取込で医療機関を新規登録します" in r.get_data(as_text=True)
    client.post("/admin/user-import/confirm", data={"csrf_token": token})
    batch = db.session.query(ImportBatch).one()
    assert batch.institution.code == "1310000099" and batch.institution.municipality == tokyo


@pytest.mark.parametrize("changes, messages", [
    ({"application_ref": "  "}, ["指定申請の受付番号を入力してください。"]),
    ({"application_ref": "R" * 41}, ["指定申請の受付番号は40文字以内で入力してください。"]),
    ({"application_ref": "R8\t1"}, ["指定申請の受付番号に使えない文字が含まれています。"]),
    ({"doctor_number": "", "family_kana": "こべつ", "email": "nope", "valid_from": "2026-13-01"},
     ["指定医番号: 必須項目です", "カナ 姓: 全角カタカナで入力してください", "メールアドレス: メールアドレスの形式が正しくありません",
      "指定期間 開始: 日付（YYYY-MM-DD）ではありません"]),
    ({"doctor_kind": "歯科医"}, ["指定医区分: 難病指定医・協力難病指定医・小慢指定医のいずれかを入力してください"]),
    ({"institution_code": "1310000099"}, ["医療機関名: 医療機関 1310000099 は未登録です。医療機関名を記載するか、"
                                          "先に医療機関を登録してください"]),
], ids=["no-ref", "long-ref", "control-ref", "fields", "kind", "unknown-institution"])
def test_individual_form_refuses_bad_input_and_changes_nothing(client, tokyo, hospital, changes, messages):
    login(client, gen_user("municipality_admin", municipality=tokyo))
    token = csrf_token(client, "/admin/user-import/")
    before = counts()
    r = post_individual(client, token, **changes)
    page = r.get_data(as_text=True)
    assert r.status_code == 400
    for message in messages:
        assert message in page
    assert "行目" not in page, "a form has no rows"
    assert 'value="個別"' in page, "the form keeps what was typed"
    assert client.post("/admin/user-import/confirm", data={"csrf_token": token}).status_code == 302
    assert counts() == before


def test_individual_form_for_a_doctor_with_an_id_elsewhere_offers_the_change(client, tokyo, hospital, clinic):
    doctor = doctor_elsewhere(tokyo, clinic, number="13-N-0501")
    login(client, gen_user("municipality_admin", municipality=tokyo))
    token = csrf_token(client, "/admin/user-import/")
    page = post_individual(client, token).get_data(as_text=True)
    assert "要確認：医療機関に主たる勤務先を確認" in page
    assert f'name="change_primary" value="{userfile.FORM_ROW}"' in page
    r = client.post("/admin/user-import/confirm", data={"csrf_token": token, "change_primary": userfile.FORM_ROW})
    assert r.status_code == 302
    assert memberships_of(doctor) == [("1310000017", "primary", False, "小児科")]
    batch = db.session.query(ImportBatch).one()
    assert batch.source == "form" and batch.created_count == 0


def test_another_municipality_cannot_issue_for_an_institution_it_does_not_have(client, tokyo, hospital):
    osaka = gen_municipality(OSAKA)
    login(client, gen_user("municipality_admin", municipality=osaka))
    token = csrf_token(client, "/admin/user-import/")
    before = counts()
    r = post_individual(client, token)
    assert r.status_code == 400
    assert "医療機関 1310000017 は難病について東京都の所管です。所管の自治体に提出してください" in r.get_data(as_text=True)
    assert client.post("/admin/user-import/confirm", data={"csrf_token": token}).status_code == 302
    assert counts() == before


@pytest.mark.parametrize("role", ["municipality_user", "designated_doctor", "operator_admin"])
def test_only_a_municipality_admin_may_use_the_individual_form(client, tokyo, hospital, role):
    user = gen_user(role, municipality=tokyo, institution=hospital if role == "designated_doctor" else None)
    login(client, user)
    before = counts()
    r = post_individual(client, csrf_token(client, "/admin/account/"))
    assert r.status_code == 403
    assert counts() == before


def test_anonymous_cannot_use_the_individual_form(client, tokyo, hospital):
    r = client.post("/admin/user-import/individual", data=individual_values())
    assert r.status_code in (302, 400) and counts()[4] == 0


def test_individual_form_without_csrf_token_changes_nothing(client, tokyo, hospital):
    login(client, gen_user("municipality_admin", municipality=tokyo))
    r = client.post("/admin/user-import/individual", data=individual_values())
    assert r.status_code in (302, 400)
    assert client.post("/admin/user-import/confirm", data={"csrf_token": csrf_token(
        client, "/admin/user-import/")}).status_code == 302
    assert counts()[4] == 0


def test_cli_changes_the_primary_institution_only_when_asked(runner, tokyo, hospital, clinic, tmp_path):
    doctor = doctor_elsewhere(tokyo, clinic)
    path = tmp_path / "users.csv"
    path.write_bytes(csv_bytes([doctor_row(1), doctor_row(2)]))
    before = memberships_of(doctor)
    result = runner.invoke(args=["nanbyo", "import-users", str(path), "--municipality", TOKYO, "--dry-run"])
    assert result.exit_code == 0 and "--change-primary" in result.output and memberships_of(doctor) == before
    result = runner.invoke(args=["nanbyo", "import-users", str(path), "--municipality", TOKYO, "--change-primary"])
    assert result.exit_code == 0, result.output
    assert memberships_of(doctor) == [("1310000017", "primary", False, "脳神経内科")]
    assert log_entries("import_users")[-1].data["primary_changed"] == [doctor.id]
