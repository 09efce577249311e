"""`flask --app app nanbyo load-masters` and `nanbyo demo`, through Flask's CLI runner."""
import shutil
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models.accounts import Membership, User
from models.audit import OperationLog
from models.institutions import Institution, Municipality
from models.masters import NanbyoCategory, NanbyoDisease, ShomanDisease, ShomanGroup
from nanbyo import access
from nanbyo.extensions import db
from nanbyo.roles import INSTITUTION_MANAGER
from tests.helpers import gen_municipality, gen_user, login

MASTERS = Path(__file__).resolve().parent.parent / "data" / "masters"
MASTER_MODELS = (Municipality, NanbyoCategory, NanbyoDisease, ShomanGroup, ShomanDisease)
DEMO_PASSWORD = "kagi-to-pasu-2026"
DEMO_ACCOUNTS = {"operator", "muni-tokyo", "muni-osaka", "manager", "doctor", "doctor-osaka", "staff"}


def invoke(runner, *args):
    db.session.commit()
    result = runner.invoke(args=["nanbyo", *args])
    db.session.expire_all()
    return result


def counts():
    return {m.__tablename__: db.session.execute(select(func.count()).select_from(m)).scalar() for m in MASTER_MODELS}


def municipality_name(code):
    return db.session.execute(select(Municipality.name).filter_by(code=code)).scalar_one()


def disease_name(nando_id):
    return db.session.execute(select(NanbyoDisease.name_ja).filter_by(nando_id=nando_id)).scalar_one()


@pytest.fixture
def masters_copy(tmp_path, restore_masters):
    """A writable copy of data/masters and a small editor for its CSV files."""
    directory = tmp_path / "masters"
    shutil.copytree(MASTERS, directory)

    def edit(name, old, new, count=1):
        path = directory / name
        content = path.read_text(encoding="utf-8")
        assert content.count(old) >= count, f"{old!r} not in {name}"
        path.write_text(content.replace(old, new, count), encoding="utf-8")

    def line_of(name, start):
        lines = (directory / name).read_text(encoding="utf-8").splitlines()
        return next(i for i, line in enumerate(lines, start=1) if line.startswith(start))

    edit.dir, edit.line_of = directory, line_of
    return edit


# --- load-masters ----------------------------------------------------------------------------------------------------

def test_load_masters_refuses_a_bad_check_digit_and_changes_nothing(runner, masters_copy):
    before = counts()
    osaka_line = masters_copy.line_of("municipalities.csv", "270008,")
    masters_copy("municipalities.csv", "270008,大阪府", "270009,大阪府")  # the check digit of 27000 is 8
    masters_copy("municipalities.csv", "130001,東京都", "130001,東京都（改）")
    masters_copy("municipalities.csv", "010006,北海道,01,prefecture\n",
                 "010006,北海道,01,prefecture\n131016,千代田区,13,other\n")
    masters_copy("nanbyo_diseases.csv", "\n1,1,0,1,球脊髄性筋萎縮症,", "\n1,1,0,1,改名された病名,")

    result = invoke(runner, "load-masters", str(masters_copy.dir))

    assert result.exit_code != 0
    # +1: the inserted 千代田区 row comes before 大阪府
    assert f"municipalities.csv {osaka_line + 1}行目" in result.output
    assert "検査数字が正しくありません" in result.output
    assert "Traceback" not in result.output
    assert counts() == before
    assert municipality_name("130001") == "東京都"
    assert disease_name("1") == "球脊髄性筋萎縮症"
    assert db.session.execute(select(Municipality).filter_by(code="270009")).scalar_one_or_none() is None
    assert db.session.execute(select(OperationLog).filter_by(action="load_masters")).first() is None


def test_load_masters_is_all_or_nothing_when_a_later_file_fails(runner, masters_copy):
    """Municipalities and 難病 are upserted before 小慢 is read: a bad 小慢 file must undo them too."""
    before = counts()
    masters_copy("municipalities.csv", "130001,東京都", "130001,東京都（改）")
    masters_copy("nanbyo_diseases.csv", "\n1,1,0,1,球脊髄性筋萎縮症,", "\n1,1,0,1,改名された病名,")
    masters_copy("shoman_diseases.csv", "group_id,notification_no,name_ja", "group_id,notification_no,disease")

    result = invoke(runner, "load-masters", str(masters_copy.dir))

    assert result.exit_code != 0
    assert "shoman_diseases.csv" in result.output and "name_ja" in result.output
    assert counts() == before
    assert municipality_name("130001") == "東京都"
    assert disease_name("1") == "球脊髄性筋萎縮症"


def test_load_masters_names_file_and_row_of_a_non_numeric_value(runner, masters_copy):
    before = counts()
    line = masters_copy.line_of("nanbyo_diseases.csv", "2,2,0,1,")
    masters_copy("nanbyo_diseases.csv", "\n2,2,0,1,", "\n2,二,0,1,")
    masters_copy("municipalities.csv", "130001,東京都", "130001,東京都（改）")

    result = invoke(runner, "load-masters", str(masters_copy.dir))

    assert result.exit_code != 0
    assert f"nanbyo_diseases.csv {line}行目" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)
    assert counts() == before
    assert municipality_name("130001") == "東京都"


@pytest.mark.parametrize("missing", ["municipalities.csv", "nanbyo_diseases.csv", "shoman_groups.csv"])
def test_load_masters_reports_a_missing_file(runner, masters_copy, missing):
    before = counts()
    masters_copy("municipalities.csv", "130001,東京都", "130001,東京都（改）")
    (masters_copy.dir / missing).unlink()

    result = invoke(runner, "load-masters", str(masters_copy.dir))

    assert result.exit_code != 0
    assert f"{missing} がありません" in result.output
    assert str(masters_copy.dir) in result.output
    assert counts() == before
    assert municipality_name("130001") == "東京都"


def test_load_masters_reports_a_missing_directory(runner, tmp_path):
    result = invoke(runner, "load-masters", str(tmp_path / "no-such-dir"))
    assert result.exit_code != 0
    assert "がありません" in result.output and "no-such-dir" in result.output


def test_load_masters_rerun_adds_nothing(runner):
    before = counts()
    result = invoke(runner, "load-masters")
    assert result.exit_code == 0, result.output
    for name in ("municipalities.csv", "nanbyo_categories.csv", "nanbyo_diseases.csv", "shoman_groups.csv",
                 "shoman_diseases.csv"):
        assert f"{name}: 追加 0 件, 更新 0 件" in result.output
    assert "CC-BY 4.0" in result.output  # the NANDO and MHLW-list attributions
    assert "136s/intractable-disease" in result.output
    # The known defects of the 小慢 snapshot (data/masters/shoman_issues.csv; tests/test_masters.py) are reported.
    assert "問題が 51 件" in result.output
    assert counts() == before
    entry = db.session.execute(select(OperationLog).filter_by(action="load_masters")).scalar_one()
    assert (entry.remote_addr, entry.result) == ("cli", "success")
    assert entry.data["defects"] == 51


def test_load_masters_reports_what_it_added_and_updated(runner, masters_copy):
    before = counts()
    masters_copy("municipalities.csv", "130001,東京都", "130001,東京都（改）")
    masters_copy("municipalities.csv", "010006,北海道,01,prefecture\n",
                 "010006,北海道,01,prefecture\n131016,千代田区,13,other\n")

    result = invoke(runner, "load-masters", str(masters_copy.dir))

    assert result.exit_code == 0, result.output
    assert "municipalities.csv: 追加 1 件, 更新 1 件" in result.output
    assert "nanbyo_diseases.csv: 追加 0 件, 更新 0 件" in result.output
    assert counts()["municipality"] == before["municipality"] + 1
    assert municipality_name("130001") == "東京都（改）"
    assert municipality_name("131016") == "千代田区"


def test_load_masters_refuses_a_duplicate_key_and_names_both_rows(runner, masters_copy):
    before = counts()
    first = masters_copy.line_of("shoman_diseases.csv", "1,01_01_001,")
    masters_copy("shoman_diseases.csv", "\n2,01_01_002,", "\n1,01_01_002,")
    masters_copy("municipalities.csv", "130001,東京都", "130001,東京都（改）")

    result = invoke(runner, "load-masters", str(masters_copy.dir))

    assert result.exit_code == 1
    assert f"shoman_diseases.csv {first + 1}行目: nando_id 1 が {first}行目と重複しています" in result.output
    assert "Traceback" not in result.output
    assert counts() == before
    assert municipality_name("130001") == "東京都"


def test_load_masters_refuses_a_disease_file_without_since(runner, masters_copy):
    """A file of the old format (no `since`) would leave the dates unknown: refused, not loaded as empty."""
    path = masters_copy.dir / "nanbyo_diseases.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n", encoding="utf-8")

    result = invoke(runner, "load-masters", str(masters_copy.dir))

    assert result.exit_code == 1
    assert "nanbyo_diseases.csv: 列 since がありません" in result.output


# --- demo ------------------------------------------------------------------------------------------------------------

@pytest.fixture
def keys_dir(app, tmp_path):
    path = tmp_path / "configured-demo-keys"
    app.config["NANBYO_DEMO_KEYS_DIR"] = str(path)
    return path


def demo_state():
    users = db.session.execute(select(User).order_by(User.login_id)).scalars().all()
    return {
        "users": [(u.login_id, u.role, u.password_hash, u.key_digest) for u in users],
        "institutions": db.session.execute(select(func.count()).select_from(Institution)).scalar(),
        "memberships": db.session.execute(select(func.count()).select_from(Membership)).scalar(),
    }


def key_files(keys_dir):
    return {p.name: p.read_bytes() for p in sorted(keys_dir.glob("*.key"))} if keys_dir.exists() else {}


def test_demo_creates_the_accounts_and_key_files(runner, keys_dir, app):
    result = invoke(runner, "demo", "--password", DEMO_PASSWORD)
    assert result.exit_code == 0, result.output

    users = {u.login_id: u for u in db.session.execute(select(User)).scalars()}
    assert set(users) == DEMO_ACCOUNTS
    assert {p.name for p in keys_dir.iterdir()} == {f"{login_id}.key" for login_id in DEMO_ACCOUNTS}
    for login_id in DEMO_ACCOUNTS:
        path = keys_dir / f"{login_id}.key"
        assert str(path) in result.output  # says where each key file went
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not users[login_id].needs_setup
    assert stat.S_IMODE(keys_dir.stat().st_mode) & 0o077 == 0
    assert {u.role for u in users.values()} >= {"operator_admin", "municipality_admin", "designated_doctor",
                                                "institution_staff"}
    assert users["muni-tokyo"].municipality.code == "130001"
    assert users["muni-osaka"].municipality.code == "270008"
    assert users["doctor-osaka"].issuing_municipality.code == "270008"
    entry = db.session.execute(select(OperationLog).filter_by(action="demo")).scalar_one()
    assert set(entry.data["accounts"]) == DEMO_ACCOUNTS
    assert DEMO_PASSWORD not in str(entry.data)


def test_manager_is_the_responsible_person_of_its_institution(runner, keys_dir):
    assert invoke(runner, "demo", "--password", DEMO_PASSWORD).exit_code == 0
    manager = db.session.execute(select(User).filter_by(login_id="manager")).scalar_one()
    managed = [m for m in manager.memberships if m.is_manager]
    assert len(managed) == 1 and managed[0].kind == "primary"
    assert managed[0].institution.code == "1310000017"
    assert INSTITUTION_MANAGER in access.principals(manager)
    doctor = db.session.execute(select(User).filter_by(login_id="doctor")).scalar_one()
    assert not doctor.is_manager
    # The one 責任者 of that institution is the manager.
    managers = db.session.execute(select(Membership).filter_by(institution_id=managed[0].institution_id,
                                                               is_manager=True)).scalars().all()
    assert [m.user_id for m in managers] == [manager.id]


@pytest.mark.parametrize("login_id", sorted(DEMO_ACCOUNTS))
def test_each_demo_account_logs_in_with_its_key_file(runner, keys_dir, app, login_id):
    assert invoke(runner, "demo", "--password", DEMO_PASSWORD).exit_code == 0
    key = (keys_dir / f"{login_id}.key").read_bytes()

    client = app.test_client()
    r = login(client, login_id, password=DEMO_PASSWORD, key_file=key)
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/"), r.get_data(as_text=True)
    assert client.get("/admin/").status_code == 200
    # The key file is a real second factor: the password alone, or another account's file, is refused.
    other = "operator" if login_id != "operator" else "staff"
    for attempt in (None, (keys_dir / f"{other}.key").read_bytes()):
        fresh = app.test_client()
        r = login(fresh, login_id, password=DEMO_PASSWORD, key_file=attempt)
        assert r.status_code == 200 and fresh.get("/admin/").status_code == 302


def test_demo_refuses_a_second_run_and_changes_nothing(runner, keys_dir):
    assert invoke(runner, "demo", "--password", DEMO_PASSWORD).exit_code == 0
    state, files = demo_state(), key_files(keys_dir)

    result = invoke(runner, "demo", "--password", "another-demo-pass-77")

    assert result.exit_code != 0
    assert "既にデータがあります" in result.output
    assert demo_state() == state
    assert key_files(keys_dir) == files  # the key files on disk still match the accounts


def test_demo_if_empty_on_a_non_empty_database_does_nothing(runner, keys_dir):
    gen_user("municipality_admin", municipality=gen_municipality())
    state = demo_state()

    result = invoke(runner, "demo", "--if-empty", "--password", DEMO_PASSWORD)

    assert result.exit_code == 0, result.output
    assert demo_state() == state
    assert key_files(keys_dir) == {}
    assert db.session.execute(select(OperationLog).filter_by(action="demo")).first() is None


def test_demo_if_empty_on_an_empty_database_creates(runner, keys_dir):
    result = invoke(runner, "demo", "--if-empty", "--password", DEMO_PASSWORD)
    assert result.exit_code == 0, result.output
    assert {u for (u, *_rest) in demo_state()["users"]} == DEMO_ACCOUNTS


@pytest.mark.parametrize("weak", ["short-pw1", "password1234", "aaaaaaaaaaaaaaaa", "abcdefghijklmnop"])
def test_demo_refuses_a_weak_password(runner, keys_dir, weak):
    result = invoke(runner, "demo", "--password", weak)
    assert result.exit_code != 0
    assert "デモデータを作成しませんでした" in result.output
    assert demo_state() == {"users": [], "institutions": 0, "memberships": 0}
    assert key_files(keys_dir) == {}


def test_create_operator_writes_a_notice_and_the_account_must_change_its_password(app, runner, tmp_path):
    from tests.helpers import log_entries
    notice = tmp_path / "notice.pdf"
    result = runner.invoke(args=["nanbyo", "create-operator", "ops-admin", "--name", "運営 太郎", "--notice",
                                 str(notice)])
    assert result.exit_code == 0, result.output
    user = db.session.execute(db.select(User).filter_by(login_id="ops-admin")).scalar_one()
    assert (user.role, user.must_change_password, user.key_digest) == ("operator_admin", True, None)
    assert notice.read_bytes().startswith(b"%PDF") and oct(notice.stat().st_mode & 0o777) == "0o600"
    assert [e.target_id for e in log_entries("create")] == [str(user.id)]
    assert [e.target_id for e in log_entries("notice_issue")] == [str(user.id)]
    again = runner.invoke(args=["nanbyo", "create-operator", "ops-admin", "--name", "x", "--notice",
                                str(tmp_path / "again.pdf")])
    assert again.exit_code == 1 and "使われています" in again.output and not (tmp_path / "again.pdf").exists()
    bad = runner.invoke(args=["nanbyo", "create-operator", "a b", "--name", "x", "--notice", str(tmp_path / "b.pdf")])
    assert bad.exit_code == 2
