"""The shipped masters (data/masters) and their loader: `since`, the municipality kinds, and the defect report.

The template database of every test was built by loading data/masters (tests/conftest.py), so the tables already
hold the shipped masters here.
"""
import csv
import shutil
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models.audit import OperationLog
from models.institutions import Municipality
from models.masters import NanbyoCategory, NanbyoDisease, ShomanDisease, ShomanGroup
from nanbyo.extensions import db
from nanbyo.masters import MasterDefectsError, load_masters

# These tests load changed masters: put the shipped ones back afterwards (PostgreSQL keeps them between tests).
pytestmark = pytest.mark.usefixtures("restore_masters")

MASTERS = Path(__file__).resolve().parent.parent / "data" / "masters"
MASTER_MODELS = (Municipality, NanbyoCategory, NanbyoDisease, ShomanGroup, ShomanDisease)
ISSUES = "shoman_issues.csv"


def read_csv(directory, name):
    """[(row number as the loader counts it: header = 1), row] of a CSV file."""
    with (Path(directory) / name).open(encoding="utf-8-sig", newline="") as f:
        return list(enumerate(csv.DictReader(f), start=2))


def write_csv(directory, name, rows):
    path = Path(directory) / name
    with path.open(encoding="utf-8", newline="") as f:
        fields = next(csv.reader(f))
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def invoke(runner, *args):
    db.session.commit()
    result = runner.invoke(args=["nanbyo", *args])
    db.session.expire_all()
    return result


def counts():
    return {m.__tablename__: db.session.execute(select(func.count()).select_from(m)).scalar() for m in MASTER_MODELS}


def warnings(output):
    return [line for line in output.splitlines() if line.startswith("注意: ") and "行目" in line]


def known_issues():
    """The defects shoman_issues.csv lists, as (file, nando_id or group_id, code, issue)."""
    issues = []
    for _, r in read_csv(MASTERS, ISSUES):
        if r["issue"] == "group_has_no_diseases":
            issues.append(("shoman_groups.csv", r["group_id"], r["group_id"], r["issue"]))
        else:
            issues.append(("shoman_diseases.csv", r["nando_id"], r["shoman_code"], r["issue"]))
    return sorted(issues)


def identify(defects, directory=MASTERS):
    """The loader's defects as (file, nando_id or group_id of the row, code, kind), the row read from the file."""
    key_of = {"shoman_diseases.csv": "nando_id", "shoman_groups.csv": "group_id", "nanbyo_diseases.csv": "nando_id"}
    rows = {name: {lineno: r[key] for lineno, r in read_csv(directory, name)} for name, key in key_of.items()}
    return sorted((d.file, rows[d.file][d.row], d.code, d.kind) for d in defects)


@pytest.fixture
def clean_masters(tmp_path):
    """A copy of data/masters with every defect of shoman_issues.csv fixed, following that list (not the loader)."""
    directory = tmp_path / "clean-masters"
    shutil.copytree(MASTERS, directory)
    issues = [r for _, r in read_csv(MASTERS, ISSUES)]
    prefix_wrong = {r["nando_id"] for r in issues if r["issue"] == "code_prefix_differs_from_group_id"}
    duplicated = Counter()
    empty_groups = {r["group_id"] for r in issues if r["issue"] == "group_has_no_diseases"}

    diseases = []
    for _, r in read_csv(directory, "shoman_diseases.csv"):
        if r["nando_id"] in prefix_wrong:  # the group follows the code: 01_05_041 belongs to 1-5
            group, subgroup = r["shoman_code"].split("_")[:2]
            r["group_id"] = f"{int(group)}-{int(subgroup)}"
        diseases.append(r)
    same_code = {r["nando_id"] for r in issues if r["issue"] == "same_code_on_several_top_level_rows"}
    renumbered = {}
    for r in diseases:
        top = r["nando_id"].split("-")[0]
        if r["nando_id"] in same_code:
            duplicated[r["shoman_code"]] += 1
            if duplicated[r["shoman_code"]] > 1:  # the first row keeps the code, the others get new ones
                renumbered[top] = f"{r['shoman_code'][:6]}{900 + len(renumbered):03d}"
        if top in renumbered:  # a subtype follows its disease
            r["shoman_code"] = renumbered[top]
    write_csv(directory, "shoman_diseases.csv", diseases)

    groups = [r for _, r in read_csv(directory, "shoman_groups.csv") if r["group_id"].split("-")[0] not in empty_groups]
    write_csv(directory, "shoman_groups.csv", groups)
    return directory


# --- the known defects ----------------------------------------------------------------------------------------------

def test_issues_file_lists_the_51_known_defects():
    issues = Counter(issue for *_, issue in known_issues())
    assert issues == {"code_prefix_differs_from_group_id": 41, "group_has_no_diseases": 1,
                      "same_code_on_several_top_level_rows": 9}


def test_defects_found_in_the_shipped_masters_are_exactly_the_known_issues(app):
    _report, defects = load_masters(MASTERS)
    db.session.rollback()
    assert identify(defects) == known_issues()
    assert all(d.message for d in defects)


def test_a_clean_copy_loads_without_a_defect(runner, clean_masters):
    _report, defects = load_masters(clean_masters)
    db.session.rollback()
    assert defects == []

    result = invoke(runner, "load-masters", "--strict", str(clean_masters))
    assert result.exit_code == 0, result.output
    assert "注意" not in result.output
    entry = db.session.execute(select(OperationLog).filter_by(action="load_masters")).scalar_one()
    assert entry.data["defects"] == 0
    assert db.session.execute(select(ShomanDisease.group_id).filter_by(nando_id="85")).scalar_one() == "1-5"


def test_load_masters_warns_of_each_defect_and_still_loads(runner, masters_copy_with_renamed_tokyo):
    directory = masters_copy_with_renamed_tokyo
    result = invoke(runner, "load-masters", str(directory))

    assert result.exit_code == 0, result.output
    lines = warnings(result.output)
    assert len(lines) == len(known_issues()) == 51
    line_85 = next(n for n, r in read_csv(directory, "shoman_diseases.csv") if r["nando_id"] == "85")
    assert (f"注意: shoman_diseases.csv {line_85}行目 01_05_041: "
            "疾病コードの先頭（01_05）が大分類（1-6）と一致しません") in lines
    line_16 = next(n for n, r in read_csv(directory, "shoman_groups.csv") if r["group_id"] == "16")
    assert any(line.startswith(f"注意: shoman_groups.csv {line_16}行目 16: ") for line in lines)
    assert "問題が 51 件" in result.output
    assert db.session.execute(select(Municipality.name).filter_by(code="130001")).scalar_one() == "東京都（改）"
    entry = db.session.execute(select(OperationLog).filter_by(action="load_masters")).scalar_one()
    assert entry.data["defects"] == 51


@pytest.fixture
def masters_copy_with_renamed_tokyo(tmp_path):
    directory = tmp_path / "masters"
    shutil.copytree(MASTERS, directory)
    path = directory / "municipalities.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("130001,東京都,", "130001,東京都（改）,"),
                    encoding="utf-8")
    return directory


def test_strict_refuses_the_defects_and_changes_nothing(runner, masters_copy_with_renamed_tokyo):
    before = counts()
    result = invoke(runner, "load-masters", "--strict", str(masters_copy_with_renamed_tokyo))

    assert result.exit_code == 1
    assert len(warnings(result.output)) == 51
    assert "読み込めませんでした" in result.output and "Traceback" not in result.output
    assert counts() == before
    assert db.session.execute(select(Municipality.name).filter_by(code="130001")).scalar_one() == "東京都"
    assert db.session.execute(select(OperationLog).filter_by(action="load_masters")).first() is None


def test_strict_load_masters_raises_before_any_change(app):
    with pytest.raises(MasterDefectsError) as raised:
        load_masters(MASTERS, strict=True)
    assert identify(raised.value.defects) == known_issues()


def test_nanbyo_defects_unknown_category_and_same_number_on_top_level_rows(runner, tmp_path):
    directory = tmp_path / "masters"
    shutil.copytree(MASTERS, directory)
    rows = [r for _, r in read_csv(directory, "nanbyo_diseases.csv")]
    rows[1]["category_id"] = "99"  # 告示番号 2
    rows.append({"nando_id": "9001", "notification_no": "1", "is_subtype": "0", "category_id": "1",
                 "name_ja": "同じ告示番号の病名", "name_en": "", "since": "2015-01-01"})
    write_csv(directory, "nanbyo_diseases.csv", rows)
    line_1, line_new = 2, len(rows) + 1

    _report, defects = load_masters(directory)
    db.session.rollback()
    nanbyo = [d for d in defects if d.file == "nanbyo_diseases.csv"]
    assert sorted((d.row, d.code, d.kind) for d in nanbyo) == [
        (line_1, "1", "same_notification_no_on_several_top_level_rows"),
        (3, "2", "unknown_category"),
        (line_new, "1", "same_notification_no_on_several_top_level_rows")]

    result = invoke(runner, "load-masters", str(directory))
    assert result.exit_code == 0, result.output
    assert "注意: nanbyo_diseases.csv 3行目 2: 疾患分類 99 が nanbyo_categories.csv にありません" in result.output
    assert f"注意: nanbyo_diseases.csv {line_new}行目 1: 告示番号 1 が最上位の複数の行" in result.output
    assert "問題が 54 件" in result.output


def test_shoman_disease_in_an_unknown_group_is_a_defect(app, clean_masters):
    rows = [r for _, r in read_csv(clean_masters, "shoman_diseases.csv")]
    rows[0]["group_id"] = "1-99"
    write_csv(clean_masters, "shoman_diseases.csv", rows)
    _report, defects = load_masters(clean_masters)
    db.session.rollback()
    assert sorted((d.row, d.kind) for d in defects) == [(2, "code_prefix_differs_from_group_id"), (2, "unknown_group")]


# --- what the shipped masters load ----------------------------------------------------------------------------------

def since(notification_no):
    return set(db.session.execute(select(NanbyoDisease.since).filter_by(notification_no=notification_no)).scalars())


def test_since_is_loaded(app):
    assert since(1) == {date(2015, 1, 1)}
    assert since(3) == {date(2015, 1, 1)}  # the disease and its subtypes
    assert since(331) == {date(2018, 4, 1)}
    assert since(334) == {date(2021, 11, 1)}
    for number in range(342, 349):
        assert since(number) == {date(2025, 4, 1)}, number
    assert db.session.execute(select(func.count()).select_from(NanbyoDisease)
                              .where(NanbyoDisease.since.is_(None))).scalar() == 0


def test_numbers_1_to_348_load_once_each_with_2025_names(app):
    top = db.session.execute(select(NanbyoDisease).filter_by(is_subtype=False)).scalars().all()
    assert sorted(d.notification_no for d in top) == list(range(1, 349))
    by_number = {d.notification_no: d for d in top}
    assert by_number[18].name_ja == "脊髄小脳変性症(多系統萎縮症を除く。)"
    # added after the last NANDO release: no NANDO id in the file, keyed by the 告示番号
    assert (by_number[348].nando_id, by_number[348].name_ja, by_number[348].category_id) == ("348", "ロウ症候群", None)


def test_empty_since_is_none_and_a_bad_date_names_file_and_row(runner, tmp_path):
    directory = tmp_path / "masters"
    shutil.copytree(MASTERS, directory)
    rows = [r for _, r in read_csv(directory, "nanbyo_diseases.csv")]
    rows[0]["since"] = ""
    write_csv(directory, "nanbyo_diseases.csv", rows)
    result = invoke(runner, "load-masters", str(directory))
    assert result.exit_code == 0, result.output
    assert "nanbyo_diseases.csv: 追加 0 件, 更新 1 件" in result.output
    assert db.session.execute(select(NanbyoDisease.since).filter_by(nando_id="1")).scalar_one() is None

    rows[0]["since"] = "2015/01/01"
    write_csv(directory, "nanbyo_diseases.csv", rows)
    result = invoke(runner, "load-masters", str(directory))
    assert result.exit_code == 1
    assert "nanbyo_diseases.csv 2行目" in result.output and "YYYY-MM-DD" in result.output
    assert "Traceback" not in result.output


def test_the_138_municipalities_load_with_their_kinds(app):
    kinds = Counter(db.session.execute(select(Municipality.kind)).scalars())
    assert kinds == {"prefecture": 47, "designated_city": 20, "core_city": 62, "child_guidance_city": 9}
    by_code = {m.code: m for m in db.session.execute(select(Municipality)).scalars()}
    assert (by_code["130001"].name, by_code["130001"].kind) == ("東京都", "prefecture")
    assert (by_code["270008"].name, by_code["270008"].kind) == ("大阪府", "prefecture")
    assert (by_code["131121"].name, by_code["131121"].kind) == ("世田谷区", "child_guidance_city")
    file_rows = {r["local_government_code"]: r["kind"] for _, r in read_csv(MASTERS, "municipalities.csv")}
    assert {code: m.kind for code, m in by_code.items()} == file_rows


def test_loading_again_adds_and_changes_nothing(app):
    before = counts()
    report, defects = load_masters(MASTERS)
    assert set(report.values()) == {(0, 0)}
    assert len(defects) == 51
    db.session.commit()
    assert counts() == before
