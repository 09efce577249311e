"""認定結果データ一括取込 (issue 13): rows matched to the uploading municipality's received documents by 受付番号 or
アクセスキー, every row checked first, all rows or none, each change in the correction history and the log, the
same file twice changing nothing, another municipality's document "not found"; CSV in CP932 as a municipal system
writes it, UTF-8 with BOM, xlsx and XML; the screen and the CLI."""
import io

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from models.documents import Document, DocumentCorrection
from nanbyo import documents
from nanbyo.extensions import db
from nanbyo.results.importer import NOT_FOUND, import_results
from tests.helpers import (OSAKA, TOKYO, csrf_token, gen_document, gen_institution, gen_municipality, gen_user,
                           log_entries, login)

HEADING = "受付番号,アクセスキー,受給者番号,審査結果,有効期間開始,有効期間終了,重症度,研究利用同意"


@pytest.fixture
def world(app):
    tokyo, osaka = gen_municipality(TOKYO), gen_municipality(OSAKA)
    doctor = gen_user("designated_doctor", institution=gen_institution(tokyo))
    osaka_doctor = gen_user("designated_doctor", institution=gen_institution(osaka), issuer=osaka)
    docs = {}
    for name, author, status, reception_no in (("a", doctor, "received", "R-001"), ("b", doctor, "received", "R-002"),
                                               ("done", doctor, "completed", "R-003"),
                                               ("finalized", doctor, "finalized", ""),
                                               ("osaka", osaka_doctor, "received", "R-001")):
        doc = gen_document(author, status=status)
        doc.reception_no = reception_no
        docs[name] = doc
    db.session.commit()
    return {"tokyo": tokyo, "osaka": osaka, "docs": {k: v.id for k, v in docs.items()},
            "keys": {k: v.access_key for k, v in docs.items()},
            "clerk": gen_user("municipality_user", municipality=tokyo),
            "osaka_clerk": gen_user("municipality_admin", municipality=osaka)}


def csv_file(*lines, encoding="cp932", bom=False):
    text = "\r\n".join((HEADING,) + lines) + "\r\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding)


def doc(world, name):
    db.session.expire_all()
    return db.session.get(Document, world["docs"][name])


def corrections():
    return db.session.execute(select(func.count()).select_from(DocumentCorrection)).scalar()


def test_a_cp932_file_sets_the_results_and_the_history(app, world):
    data = csv_file("R-001,,1300001,認定,2026/4/1,2027/3/31,Stage 3,同意あり", "R-002,,,不認定,,,,同意なし")
    report = import_results("結果.csv", data, world["tokyo"], world["clerk"])
    assert report.ok and report.applied and len(report.changed) == 2
    a, b = doc(world, "a"), doc(world, "b")
    assert (a.status, a.review_result, a.recipient_no, a.severity, a.research_consent) == \
        ("reviewed", "approved", "1300001", "Stage 3", True)
    assert (a.valid_from.isoformat(), a.valid_until.isoformat()) == ("2026-04-01", "2027-03-31")
    assert (b.status, b.review_result, b.research_consent) == ("reviewed", "rejected", False)
    history = {c.label: documents.correction_values(c) for c in a.corrections}
    assert history["審査結果"] == {"old": None, "new": "approved"} and a.corrections[0].user_id == world["clerk"].id
    entries = log_entries("document_review")
    assert {e.target_id for e in entries} == {str(a.id), str(b.id)}
    assert all(e.data["source"] == "results_import" for e in entries)
    assert log_entries("results_import")[0].data == {"file": "結果.csv", "rows": 2, "documents": 2}
    # The same file again changes nothing.
    before = corrections()
    again = import_results("結果.csv", data, world["tokyo"], world["clerk"])
    assert again.ok and again.changed == [] and corrections() == before


def test_one_bad_row_changes_nothing_and_every_problem_is_listed(app, world):
    data = csv_file("R-001,,,認定,2026-04-01,2027-03-31,,",  # fine
                    "R-002,,,認定,,,,",  # 認定 without a 有効期間
                    "R-009,,,不認定,,,,",  # no such 受付番号
                    "R-001,,,保留,,,,",  # the same document twice
                    "R-003,,,合格,,,,たぶん")  # not a result, not a consent
    report = import_results("bad.csv", data, world["tokyo"], world["clerk"])
    assert not report.ok and not report.applied
    problems = {row.number: row.problems for row in report.rows}
    assert problems[2] == [] and "有効期間" in problems[3][0] and problems[4] == [NOT_FOUND]
    assert "2行目と同じ書類" in problems[5][0]
    assert "合格" in problems[6][0] and "たぶん" in problems[6][1]
    assert doc(world, "a").review_result is None and corrections() == 0 and log_entries("results_import") == []


def test_another_municipalitys_document_is_not_found(app, world):
    """Osaka's R-001 for Osaka's clerk, Tokyo's R-001 for Tokyo's: each only ever its own."""
    report = import_results("o.csv", csv_file("R-001,,,不認定,,,,"), world["osaka"], world["osaka_clerk"])
    assert report.applied and doc(world, "osaka").review_result == "rejected"
    assert doc(world, "a").review_result is None
    by_key = import_results("k.csv", csv_file(f",{world['keys']['osaka']},,認定,2026-04-01,2027-03-31,,"),
                            world["tokyo"], world["clerk"])
    assert by_key.rows[0].problems == [NOT_FOUND] and doc(world, "osaka").review_result == "rejected"


def test_keys_the_municipality_has_not_received_are_not_found(app, world):
    """A finalized document's key, not yet received: the file is no way round the key lookup's limit."""
    report = import_results("k.csv", csv_file(f",{world['keys']['finalized']},,不認定,,,,"), world["tokyo"],
                            world["clerk"])
    assert report.rows[0].problems == [NOT_FOUND] and doc(world, "finalized").status == "finalized"


def test_key_and_reception_number_must_agree_and_recipient_numbers_must_match(app, world):
    a = doc(world, "a")
    a.recipient_no = "1300001"
    db.session.commit()
    wrong_pair = import_results("p.csv", csv_file(f"R-002,{world['keys']['a']},,不認定,,,,"), world["tokyo"],
                                world["clerk"])
    assert wrong_pair.rows[0].problems == [NOT_FOUND]
    other_recipient = import_results("r.csv", csv_file(f"R-001,{world['keys']['a']},9999999,不認定,,,,"),
                                     world["tokyo"], world["clerk"])
    assert "受給者番号" in other_recipient.rows[0].problems[0] and doc(world, "a").review_result is None


def test_a_completed_document_is_not_changed_but_the_same_values_pass(app, world):
    done = doc(world, "done")
    same = f"R-003,,,認定,{done.valid_from:%Y-%m-%d},{done.valid_until:%Y-%m-%d},,"
    assert import_results("s.csv", csv_file(same), world["tokyo"], world["clerk"]).ok
    changed = import_results("c.csv", csv_file("R-003,,,不認定,,,,"), world["tokyo"], world["clerk"])
    assert "登録完了" in changed.rows[0].problems[0] and doc(world, "done").review_result == "approved"


def test_utf8_with_bom_xlsx_and_xml_read_alike(app, world):
    utf8 = csv_file("R-001,,,保留,,,,", encoding="utf-8", bom=True)
    assert import_results("u.csv", utf8, world["tokyo"], world["clerk"]).applied
    assert doc(world, "a").review_result == "pending"
    book = Workbook()
    book.active.append(HEADING.split(","))
    book.active.append(["R-001", None, None, "不認定", None, None, None, "同意なし"])
    out = io.BytesIO()
    book.save(out)
    assert import_results("x.xlsx", out.getvalue(), world["tokyo"], world["clerk"]).applied
    assert doc(world, "a").review_result == "rejected"
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<results version="1"><result><reception_no>R-001</reception_no>'
           '<review_result>approved</review_result><valid_from>2026-04-01</valid_from>'
           '<valid_until>2027-03-31</valid_until></result></results>').encode()
    assert import_results("r.xml", xml, world["tokyo"], world["clerk"]).applied
    assert doc(world, "a").review_result == "approved"


@pytest.mark.parametrize("name, data, message", [
    ("h.csv", "受付番号,結果\r\nR-001,認定\r\n".encode("cp932"), "見出し「結果」は使えません"),
    ("k.csv", "審査結果\r\n認定\r\n".encode("cp932"), "「受付番号」か「アクセスキー」が必要"),
    ("e.csv", (HEADING + "\r\n").encode("cp932"), "データの行がありません"),
    ("t.txt", csv_file("R-001,,,認定,,,,"), "ファイルの種類"),
    ("d.xml", b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><results version="1">'
              b'<result><reception_no>&x;</reception_no></result></results>', "DOCTYPE"),
    ("v.xml", b'<results version="2"><result><reception_no>R-001</reception_no></result></results>', "version"),
    ("s.xml", b'<results version="1"><result><reception_no>R-001</reception_no><review_result>maybe</review_result>'
              b'</result></results>', "review_result"),
])
def test_files_refused_as_a_whole_change_nothing(app, world, name, data, message):
    report = import_results(name, data, world["tokyo"], world["clerk"])
    assert not report.ok and not report.applied and message in " ".join(report.problems), report.problems
    assert doc(world, "a").review_result is None and corrections() == 0


def test_dry_run_reports_and_changes_nothing(app, world):
    report = import_results("d.csv", csv_file("R-001,,,不認定,,,,"), world["tokyo"], world["clerk"], dry_run=True)
    assert report.ok and not report.applied and [r.changes for r in report.changed] == [[("審査結果", "", "不認定")]]
    assert doc(world, "a").review_result is None and corrections() == 0


def test_the_cli(app, runner, world, tmp_path):
    path = tmp_path / "results.csv"
    path.write_bytes(csv_file("R-001,,,不認定,,,,"))
    dry = runner.invoke(args=["nanbyo", "import-results", str(path), "--municipality", TOKYO, "--dry-run"])
    assert dry.exit_code == 0 and "審査結果 （空欄） → 不認定" in dry.output and doc(world, "a").review_result is None
    done = runner.invoke(args=["nanbyo", "import-results", str(path), "--municipality", TOKYO])
    assert done.exit_code == 0 and "1件の書類を変更しました" in done.output
    a = doc(world, "a")
    assert a.review_result == "rejected" and a.corrections[0].user_id is None and a.corrections[0].user_role == "cli"
    osaka = runner.invoke(args=["nanbyo", "import-results", str(path), "--municipality", OSAKA])
    assert osaka.exit_code == 0 and doc(world, "osaka").review_result == "rejected"  # Osaka's own R-001
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_file("R-404,,,不認定,,,,"))
    refused = runner.invoke(args=["nanbyo", "import-results", str(bad), "--municipality", TOKYO])
    assert refused.exit_code == 1 and "何も変更していません" in refused.output


# --- the screen ----------------------------------------------------------------------------------------------------

def post(client, data, name="results.csv", **options):
    form = {"csrf_token": csrf_token(client, "/admin/results-import/"), "file": (io.BytesIO(data), name)}
    form |= {key: "y" for key, value in options.items() if value}
    return client.post("/admin/results-import/", data=form, content_type="multipart/form-data")


def test_the_screen_imports_for_the_municipality(app, client, world):
    login(client, world["clerk"])
    assert 'href="/admin/results-import/"' in client.get("/admin/").get_data(as_text=True)
    checked = post(client, csv_file("R-001,,,不認定,,,,"), dry_run=True)
    assert checked.status_code == 200 and 'id="results-dry-run"' in checked.get_data(as_text=True)
    assert doc(world, "a").review_result is None
    done = post(client, csv_file("R-001,,,不認定,,,,"))
    page = done.get_data(as_text=True)
    assert done.status_code == 200 and 'id="results-applied"' in page and "審査結果: （空欄） → 不認定" in page
    assert doc(world, "a").review_result == "rejected"
    refused = post(client, csv_file("R-404,,,不認定,,,,"))
    assert refused.status_code == 400 and NOT_FOUND in refused.get_data(as_text=True)
    sample = client.get("/admin/results-import/sample.csv")
    assert sample.status_code == 200 and sample.data.startswith(b"\xef\xbb\xbf" + "受付番号".encode())


@pytest.mark.parametrize("role", ["operator_admin", "operator_user", "designated_doctor", "institution_staff",
                                  "manager"])
def test_the_screen_is_the_municipalitys_alone(app, client, world, role):
    if role == "manager":
        user = gen_user("designated_doctor", institution=gen_institution(world["tokyo"]), manager=True)
    elif role.startswith("operator"):
        user = gen_user(role)
    else:
        user = gen_user(role, institution=gen_institution(world["tokyo"]))
    login(client, user)
    for path in ("/admin/results-import/", "/admin/results-import/sample.csv"):
        assert client.get(path).status_code == 403, (role, path)
    token = csrf_token(client, "/admin/account/")
    response = client.post("/admin/results-import/", data={"csrf_token": token, "file": (
        io.BytesIO(csv_file("R-001,,,不認定,,,,")), "r.csv")}, content_type="multipart/form-data")
    assert response.status_code == 403 and doc(world, "a").review_result is None


def test_the_documented_samples_read_alike():
    """docs/review-results/: the CP932 and UTF-8 CSV and the XML say the same three rows."""
    from pathlib import Path

    from nanbyo.results.importer import read_rows
    folder = Path(__file__).resolve().parent.parent.parent / "docs" / "review-results"
    read = {name: read_rows(name, (folder / name).read_bytes())
            for name in ("sample-cp932.csv", "sample-utf8.csv", "sample.xml")}
    keys = {name: [(r.values.get("reception_no"), r.values.get("access_key"), r.values.get("recipient_no"))
                   for r in rows] for name, rows in read.items()}
    assert keys["sample-cp932.csv"] == keys["sample-utf8.csv"] == keys["sample.xml"] == [
        ("R2026-00001", None, "1300001"), ("R2026-00002", None, None), (None, "7KQ3WXPM", None)]
