"""The check tool (nanbyo.xmlio.check, python -m nanbyo.check): every form's valid document passes; each violation
is reported in Japanese with its line, XPath, item and how to fix it; text, JSON and JUnit output; exit codes."""
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import pytest
from lxml import etree

from nanbyo.xmlio import check
from tests.data.hostile.make import FILES
from tests.xmlio import samples

TODAY = date(2026, 12, 6)
ROOT = Path(__file__).resolve().parent.parent.parent


def problems_of(data):
    result = check.check_bytes("x.xml", data, today=TODAY)
    return [*result.problems, *(p for d in result.documents for p in d.problems)]


def one(data):
    found = problems_of(data)
    assert len(found) >= 1, found
    return found


@pytest.mark.parametrize("kind,code", samples.disease_codes())
def test_every_forms_valid_document_passes(kind, code):
    data = samples.xml(samples.element(kind, code))
    result = check.check_bytes("x.xml", data, today=TODAY)
    assert result.ok, [p.text("x.xml") for d in result.documents for p in d.problems]
    assert result.documents[0].content.items == samples.content(kind, code).items


def edited(change, kind="nanbyo", code="6", **content):
    """A valid document changed by `change(document element)`, as file bytes."""
    document = samples.element(kind, code, **content)
    change(document)
    return samples.xml(document)


def set_text(path, text):
    return lambda d: setattr(d.find(path), "text", text)


def set_attr(path, name, value):
    return lambda d: d.find(path).set(name, value)


def drop(path):
    return lambda d: d.find(path).getparent().remove(d.find(path))


# (what, file bytes, XPath ending, item label, message fragment)
VIOLATIONS = [
    ("unknown kind", edited(set_text("kind", "other")), "/kind", "書類の種類", "選択肢にない値です"),
    ("unknown 申請区分", edited(set_text("application_kind", "renew")), "/application_kind", "申請区分", "選択肢にない"),
    ("軽症者登録 for 小慢", edited(set_text("application_kind", "mild"), "shoman", "01_01_001"), "/application_kind",
     "申請区分", "小児慢性特定疾病 医療意見書の申請区分は"),
    ("unknown 告示番号", edited(set_text("disease", "999")), "/disease", "疾病（告示番号／疾病コード）",
     "告示番号 999 はマスタにありません"),
    ("bad disease shape", edited(set_text("disease", "6a")), "/disease", "疾病（告示番号／疾病コード）", "形式が正しくありません"),
    ("date format", edited(set_text("written_on", "2026/11/02")), "/written_on", "作成年月日", "YYYY-MM-DD"),
    ("date with a time zone", edited(set_text("written_on", "2026-11-02+09:00")), "/written_on", "作成年月日",
     "形式が正しくありません"),
    ("written in the future", edited(set_text("written_on", "2027-01-01")), "/written_on", "作成年月日", "未来"),
    ("diagnosed after written", edited(set_text("diagnosed_on", "2026-11-03")), "/diagnosed_on", "診断年月日",
     "作成年月日以前"),
    ("explanation declined", edited(set_attr("explanation", "answer", "declined")), "/explanation/@answer",
     "説明への回答", "紙の臨床調査個人票"),
    ("no explanation date", edited(lambda d: d.find("explanation").attrib.pop("on")), "/explanation", "説明（DB登録）",
     "属性 on がありません"),
    ("doctor number shape", edited(set_attr("doctor", "number", "13 N 0101")), "/doctor/@number", "指定医番号",
     "形式が正しくありません"),
    ("institution code shape", edited(set_attr("institution", "code", "131000001")), "/institution/@code",
     "医療機関コード", "形式が正しくありません"),
    ("sex", edited(set_text("patient/sex", "F")), "/patient/sex", "性別", "選択肢にない値です"),
    ("birth date", edited(set_text("patient/birth_date", "1980-13-01")), "/patient/birth_date", "生年月日", "YYYY-MM-DD"),
    ("kana", edited(set_text("patient/family_kana", "yamada")), "/patient/family_kana", "カナ（姓）", "カタカナ"),
    ("missing family name", edited(drop("patient/family_name")), "/patient/family_name", "氏名（姓）", "を入力してください"),
    ("postal code", edited(set_text("patient/postal_code", "160")), "/patient/postal_code", "郵便番号", "7桁"),
    ("insurance on a form without it", edited(lambda d: d.find("patient").append(etree.fromstring(
        "<insurance_kind>national</insurance_kind>"))), "/patient/insurance_kind", "保険の種別", "欄がありません"),
    ("小慢 新規 at 18", edited(set_text("patient/birth_date", "2008-04-01"), "shoman", "01_01_001"),
     "/patient/birth_date", "生年月日", "18歳未満"),
    ("unknown form", edited(set_attr("items", "form", "nanbyo-999")), "/items/@form", "様式コード", "はありません"),
    ("another disease's form", edited(lambda d: d.find("items").attrib.update({"form": "nanbyo-002", "version": "1"})),
     "/items/@form",
     "様式コード", "様式は nanbyo-006"),
    ("a shoman form for nanbyo", edited(lambda d: d.find("items").attrib.update({"form": "shoman-general", "version": "1"})),
     "/items/@form",
     "様式コード", "医療意見書の様式"),
    ("unknown item", edited(lambda d: d.find("items").append(etree.fromstring('<item id="zzz" type="text">x</item>'))),
     "/items/item[@id='zzz']", "", "ありません"),
    ("unknown element", edited(lambda d: d.insert(3, etree.fromstring("<comment>x</comment>"))), "/comment", "comment",
     "ここに置けません"),
    ("version 2", samples.xml(samples.element("nanbyo", "6")).replace(b'version="1"', b'version="2"', 1),
     "/documents/@version", "XMLの版", "版 '2' のXMLには対応していません"),
    ("no documents", b'<documents version="1"/>', "/documents", "書類ファイル", "1件もありません"),
    ("another root", b"<root/>", "", "", "ルート要素は documents"),
    ("a DOCTYPE", FILES["xxe_file.xml"], "/", "", "DOCTYPE"),
]


@pytest.mark.parametrize("what,data,xpath,label,message", VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_each_violation_is_reported_where_it_is(what, data, xpath, label, message):
    found = one(data)
    match = [p for p in found if message in p.message]
    assert match, (what, [p.text("x") for p in found])
    problem = match[0]
    assert problem.path.endswith(xpath) and problem.label == label, (what, problem)
    assert problem.line is not None or problem.path == "/", what


def test_an_item_required_by_its_condition_is_named():
    kind, code = "nanbyo", "6"
    definition = samples.content(kind, code).definition
    required = next(item for item in definition.items if item.required and not item.when)
    data = edited(lambda d: d.find("items").remove(d.find(f"items/item[@id='{required.id}']")), kind, code)
    problem = next(p for p in one(data) if p.label == required.label)
    assert problem.path.endswith(f"items/item[@id='{required.id}']") and "入力" in problem.message


def test_documents_are_numbered_and_lines_point_into_the_file():
    good, bad = samples.element("nanbyo", "6"), samples.element("nanbyo", "6")
    bad.find("written_on").text = "2027-01-01"
    data = samples.xml(good, bad)
    result = check.check_bytes("x.xml", data, today=TODAY)
    assert [d.ok for d in result.documents] == [True, False]
    problem = result.documents[1].problems[0]
    assert problem.path.startswith("/documents/document[2]")
    assert data.decode().splitlines()[problem.line - 1].strip().startswith("<written_on>2027-01-01")


def test_shift_jis_and_utf8_check_alike():
    data = samples.xml(samples.element("nanbyo", "6"))
    sjis = data.decode().replace("encoding='UTF-8'", "encoding='Shift_JIS'").encode("cp932")
    assert check.check_bytes("u.xml", data, today=TODAY).ok and check.check_bytes("s.xml", sjis, today=TODAY).ok


# --- the command line ------------------------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path):
    (tmp_path / "ok.xml").write_bytes(samples.xml(samples.element("nanbyo", "6"), samples.element("shoman", "01_01_001")))
    bad = samples.element("nanbyo", "6")
    bad.find("patient/sex").text = "F"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.xml").write_bytes(samples.xml(bad))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("in-zip.xml", samples.xml(samples.element("nanbyo", "2")))
    (tmp_path / "batch.zip").write_bytes(out.getvalue())
    return tmp_path


def run_tool(*args, cwd):
    """python -m nanbyo.check as a hospital PC runs it: no database, no instance, another working folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANBYO_")} | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nanbyo.check", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_the_tool_checks_files_folders_and_zips(folder, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    ok = run_tool(str(folder / "ok.xml"), str(folder / "batch.zip"), cwd=elsewhere)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "すべて問題ありません" in ok.stdout and "[OK]" in ok.stdout and "in-zip.xml" in ok.stdout
    everything = run_tool(str(folder), cwd=elsewhere)
    assert everything.returncode == 1
    assert "[NG]" in everything.stdout and "bad.xml:" in everything.stdout and "「性別」選択肢にない値です" in everything.stdout
    assert not list(elsewhere.iterdir()), "the tool writes nothing"


def test_json_and_junit_output(folder):
    result = run_tool(str(folder), "--format", "json", cwd=folder)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["ok"] is False and len(report["files"]) == 3
    bad = next(f for f in report["files"] if f["file"].endswith("bad.xml"))
    assert bad["documents"][0]["problems"][0]["item"] == "性別"
    junit = etree.fromstring(run_tool(str(folder), "--format", "junit", cwd=folder).stdout.encode())
    failures = junit.findall(".//failure")
    assert len(junit.findall("testsuite")) == 3 and len(failures) == 1 and "性別" in failures[0].text


def test_usage_errors_exit_2(tmp_path):
    assert run_tool(cwd=tmp_path).returncode == 2
    assert run_tool(str(tmp_path / "x.xml"), "--format", "pdf", cwd=tmp_path).returncode == 2
    missing = run_tool(str(tmp_path / "nothing.xml"), cwd=tmp_path)
    assert missing.returncode == 1 and "ファイルがありません" in missing.stdout


def test_the_flask_command_checks_with_the_servers_masters(app, runner, folder):
    ok = runner.invoke(args=["nanbyo", "check", str(folder / "ok.xml")])
    assert ok.exit_code == 0 and "すべて問題ありません" in ok.output
    bad = runner.invoke(args=["nanbyo", "check", str(folder), "--format", "json"])
    assert bad.exit_code == 1 and json.loads(bad.output)["ok"] is False


def test_the_check_needs_no_database_or_web_framework():
    """What a hospital PC runs: importing the check loads no database layer, web framework or key handling."""
    code = ("import sys, nanbyo.xmlio.check, nanbyo.xmlio.cli; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'flask', 'flask_sqlalchemy', 'sqlalchemy', 'models', 'psycopg', 'cryptography', 'openpyxl'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    """`make checktool`'s wheel unpacked beside lxml alone: what a hospital PC has after `pip install` of it."""
    from nanbyo.xmlio import checktool
    out = tmp_path_factory.mktemp("wheel")
    wheel = checktool.build(out)
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    import lxml
    os.symlink(Path(lxml.__file__).parent, site / "lxml")
    return wheel, site


def run_installed(site, *args, cwd):
    """The wheel's tool in an interpreter without site-packages (-S) or the environment (-E): only the wheel and
    lxml can be imported."""
    code = ("import sys; sys.path[:0] = [sys.argv.pop(1)]; from nanbyo.xmlio.cli import main; rc = main(sys.argv[1:]);"
            " from nanbyo.resources import resource; print('data:', resource('xsd'));"
            " print('loaded:', sorted({m.split('.')[0] for m in sys.modules} & {'flask', 'wtforms', 'sqlalchemy',"
            " 'cryptography', 'models', 'views', 'forms'})); sys.exit(rc)")
    return subprocess.run([sys.executable, "-S", "-E", "-c", code, str(site), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_the_wheel_checks_on_its_own_with_lxml_alone(installed_wheel, folder, tmp_path_factory):
    wheel, site = installed_wheel
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert [line for line in metadata.splitlines() if line.startswith("Requires-Dist")] == ["Requires-Dist: lxml>=5.3"]
    assert "nanbyo-check = nanbyo.xmlio.cli:main" in entry_points
    assert {"nanbyo/package_data/xsd/documents-1.xsd", "nanbyo/package_data/data/masters/nanbyo_diseases.csv",
            "nanbyo/package_data/data/masters/README.md", "nanbyo/package_data/formdefs/nanbyo-006.json"} <= names
    assert not {n for n in names if n.startswith(("nanbyo/views", "nanbyo/tasks", "nanbyo/crypto", "models/"))}
    elsewhere = tmp_path_factory.mktemp("hospital-pc")
    ok = run_installed(site, str(folder / "ok.xml"), str(folder / "batch.zip"), cwd=elsewhere)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "すべて問題ありません" in ok.stdout and "loaded: []" in ok.stdout
    assert f"data: {site}/nanbyo/package_data/xsd" in ok.stdout  # its own schemas, not the repository's
    bad = run_installed(site, str(folder), cwd=elsewhere)
    # The same messages as the server's check of the same folder.
    assert bad.returncode == 1 and "「性別」選択肢にない値です" in bad.stdout
    assert bad.stdout.split("data:")[0] == run_tool(str(folder), cwd=elsewhere).stdout
