"""Demo data: two 自治体, three 医療機関 and one account per role, past first login, with key files on disk."""
import os
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from models._types import utcnow
from models.accounts import Designation, Membership, User
from models.institutions import Institution, Municipality
from nanbyo import auth
from nanbyo.extensions import db
from nanbyo.roles import (DESIGNATED_DOCTOR, INSTITUTION_STAFF, MUNICIPALITY_ADMIN, OPERATOR_ADMIN)

DEFAULT_PASSWORD = "nanbyo-demo-2026"
MUNICIPALITIES = [("130001", "東京都", "13"), ("270008", "大阪府", "27")]
INSTITUTIONS = [  # code, name, address, municipality code
    ("1310000017", "東京見本病院", "東京都千代田区見本町1-1", "130001"),
    ("1310000025", "東京見本クリニック", "東京都新宿区見本2-2", "130001"),
    ("2710000019", "大阪見本病院", "大阪府大阪市北区見本3-3", "270008"),
]
# login_id, name, kana, role, municipality, issuer, designations, [(institution, kind, manager)]
ACCOUNTS = [
    ("operator", "運営 管理者", "ウンエイ カンリシャ", OPERATOR_ADMIN, None, None, [], []),
    ("muni-tokyo", "東京都 担当者", "トウキョウト タントウシャ", MUNICIPALITY_ADMIN, "130001", None, [], []),
    ("muni-osaka", "大阪府 担当者", "オオサカフ タントウシャ", MUNICIPALITY_ADMIN, "270008", None, [], []),
    ("manager", "見本 責任者", "ミホン セキニンシャ", DESIGNATED_DOCTOR, None, "130001",
     [("nanbyo", "13-N-0001")], [("1310000017", "primary", True)]),
    ("doctor", "見本 医師", "ミホン イシ", DESIGNATED_DOCTOR, None, "130001",
     [("nanbyo", "13-N-0002"), ("shoman", "13-S-0002")],
     [("1310000017", "primary", False), ("1310000025", "concurrent", False)]),
    ("doctor-osaka", "大阪 医師", "オオサカ イシ", DESIGNATED_DOCTOR, None, "270008",
     [("nanbyo", "27-N-0001")], [("2710000019", "primary", True)]),
    ("staff", "見本 事務", "ミホン ジム", INSTITUTION_STAFF, None, "130001", [], [("1310000017", "primary", False)]),
]


class DemoRefused(RuntimeError):
    pass


def _municipality(code, name, pref):
    m = db.session.execute(select(Municipality).filter_by(code=code)).scalar_one_or_none()
    if m is None:
        m = Municipality(code=code, name=name, prefecture_no=pref, kind="prefecture")
        db.session.add(m)
    return m


def database_has_data() -> bool:
    """Masters do not count: only accounts, institutions and memberships."""
    return any(db.session.execute(select(func.count()).select_from(model)).scalar()
               for model in (User, Institution, Membership))


def create_demo(keys_dir, password=DEFAULT_PASSWORD):
    """Fill an empty database. Returns [(login_id, key path)]."""
    if database_has_data():
        raise DemoRefused("データベースに既にデータがあります。デモデータは空のデータベースにだけ作成できます。")
    problems = auth.password_problems(password)
    if problems:
        raise DemoRefused(" ".join(problems))
    munis = {code: _municipality(code, name, pref) for code, name, pref in MUNICIPALITIES}
    insts = {}
    for code, name, address, muni in INSTITUTIONS:
        insts[code] = Institution(code=code, name=name, address=address, municipality=munis[muni])
        db.session.add(insts[code])
    password_hash = auth.hash_password(password)
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for login_id, name, kana, role, muni, issuer, designations, memberships in ACCOUNTS:
        user = User(login_id=login_id, name=name, name_kana=kana, role=role, email=f"{login_id}@example.jp",
                    password_hash=password_hash, must_change_password=False, password_changed_at=utcnow(),
                    municipality=munis.get(muni), issuing_municipality=munis.get(issuer))
        for kind, number in designations:
            user.designations.append(Designation(kind=kind, number=number, valid_from=date(2026, 4, 1),
                                                 valid_until=date(2031, 3, 31)))
        for inst, kind, manager in memberships:
            user.memberships.append(Membership(institution=insts[inst], kind=kind, is_manager=manager))
        key = auth.issue_key_file(user)
        db.session.add(user)
        path = keys_dir / auth.key_file_name(user)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        written.append((login_id, path))
    db.session.commit()
    return written
