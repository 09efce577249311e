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
from tests.data.violations.make import HERE as VIOLATIONS_DIR, VIOLATIONS, edited
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


def test_the_violations_on_disk_are_what_make_py_writes():
    on_disk = {p.name for p in VIOLATIONS_DIR.glob("*.xml")}
    assert on_disk == {v[0] for v in VIOLATIONS} and len(on_disk) >= 20
    for name, data, *_expected in VIOLATIONS:
        assert (VIOLATIONS_DIR / name).read_bytes() == data, name


@pytest.mark.parametrize("what,xpath,label,message", [(v[0], *v[2:]) for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS])
def test_each_violation_is_reported_where_it_is(what, xpath, label, message):
    found = one((VIOLATIONS_DIR / what).read_bytes())
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


def test_a_form_version_that_is_not_there_is_named_in_every_document_that_uses_it():
    """The file's form look-ups are kept for the file; one that fails is reported for each document naming it."""
    elements = [samples.element("nanbyo", "6") for _ in range(2)] + [samples.element("shoman", "01_01_001")]
    form = elements[0].find("items").get("form")
    for element in elements[:2]:
        element.find("items").set("version", "99")
    result = check.check_bytes("x.xml", samples.xml(*elements), today=TODAY)
    assert [d.ok for d in result.documents] == [False, False, True]
    for number in (1, 2):
        problem, = result.documents[number - 1].problems
        assert (problem.path, problem.message) == (f"/documents/document[{number}]/items/@form",
                                                   f"様式 {form} の版 99 はありません。")


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


def test_a_kyoryoku_doctor_may_write_a_renewal():
    """協力難病指定医: the 更新 臨個票 passes; the same file as 新規 does not (doctor_kyoryoku_new.xml)."""
    from tests.data.violations.make import set_attr
    result = check.check_bytes("x.xml", edited(set_attr("doctor", "designation", "nanbyo_kyoryoku"),
                                               application_kind="renewal"), today=TODAY)
    assert result.ok, [p.text("x") for d in result.documents for p in d.problems]
    assert result.documents[0].designation == "nanbyo_kyoryoku"


def garbled(kind, code, n):
    """The sample with every n-th item and patient value made wrong in one of several ways (or left out)."""
    element = samples.element(kind, code)
    odd = ["", " ", "abc", "１２３", "2024/3/1", "-0", "1,000.50", "x" * 300, "ひらがな", "99999999999999999999",
           "2026-13-01", "\t改行\n"]
    nodes = [*element.find("items").iterfind("item"), *element.find("items").iterfind("item/value"),
             *element.find("patient")]
    for i, node in enumerate(nodes):
        if i % n == 0 and node.text is not None:
            node.text = odd[i % len(odd)]
    return samples.xml(element)


def test_the_check_cleans_once_and_says_what_cleaning_twice_says(monkeypatch):
    """check_document hands content_problems what it has cleaned (content_rules.content_problems'
    patient_checks and clean_items): the problems are those of cleaning the content again, as the screen does."""
    from nanbyo import content_rules
    files = [data for _name, data, *_ in VIOLATIONS]
    files += [garbled(kind, code, n) for kind, code in samples.disease_codes() for n in (1, 2, 3, 5)]

    def reported():
        return [[(p.line, p.path, p.label, p.message, p.fix) for p in problems_of(data)] for data in files]
    once = reported()
    monkeypatch.setattr(check, "content_problems", lambda content, today, *_: content_rules.content_problems(
        content, today))
    assert reported() == once
    assert sum(map(len, once)) > 100
