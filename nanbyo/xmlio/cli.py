"""The check tool's command line: `python -m nanbyo.check PATH... [--format text|json|junit]` (and `flask --app app
nanbyo check`, the same function). Exit 0 only when every file passes, 1 when any has a problem, 2 on bad usage."""
import argparse
import json
import sys

from lxml import etree

from nanbyo.xmlio.check import check_paths, diseases_in


def as_text(results) -> str:
    lines = []
    for result in results:
        problems = [p.text(result.name) for p in result.problems]
        problems += [p.text(result.name) for d in result.documents for p in d.problems]
        documents = len(result.documents)
        passed = sum(d.ok for d in result.documents)
        status = "OK" if result.ok else "NG"
        lines.append(f"[{status}] {result.name}: 書類 {documents} 件（問題なし {passed} 件）")
        lines += [f"  {p}" for p in problems]
    total = sum(len(r.documents) for r in results)
    failed = sum(not r.ok for r in results)
    lines.append(f"ファイル {len(results)} 件・書類 {total} 件を検査しました。"
                 + ("すべて問題ありません。" if not failed else f"問題のあるファイルが {failed} 件あります。"))
    return "\n".join(lines) + "\n"


def _problem_dict(problem):
    return {"line": problem.line, "xpath": problem.path, "item": problem.label, "message": problem.message,
            "fix": problem.fix}


def as_json(results) -> str:
    return json.dumps({"ok": all(r.ok for r in results), "files": [
        {"file": r.name, "ok": r.ok, "problems": [_problem_dict(p) for p in r.problems],
         "documents": [{"number": d.number, "line": d.line, "ok": d.ok,
                        "problems": [_problem_dict(p) for p in d.problems]} for d in r.documents]}
        for r in results]}, ensure_ascii=False, indent=2) + "\n"


def as_junit(results) -> str:
    """JUnit XML: a test suite per file, a test case per document (and one for the file itself)."""
    suites = etree.Element("testsuites", name="nanbyo XML check")
    for result in results:
        cases = [("ファイル", result.problems)] + [(f"書類 {d.number}", d.problems) for d in result.documents]
        suite = etree.SubElement(suites, "testsuite", name=result.name, tests=str(len(cases)),
                                 failures=str(sum(bool(problems) for _, problems in cases)))
        for name, problems in cases:
            case = etree.SubElement(suite, "testcase", classname=result.name, name=name)
            if problems:
                failure = etree.SubElement(case, "failure", message=problems[0].message)
                failure.text = "\n".join(p.text(result.name) for p in problems)
    return etree.tostring(suites, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode()


FORMATS = {"text": as_text, "json": as_json, "junit": as_junit}


def run(paths, fmt="text", out=None, masters=None) -> int:
    """Check `paths`, write the report; the exit code. `masters`: a master CSV folder instead of the tool's own."""
    results = check_paths(paths, diseases=diseases_in(masters) if masters else None)
    (out or sys.stdout).write(FORMATS[fmt](results))
    return 0 if results and all(r.ok for r in results) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nanbyo.check",
                                     description="臨床調査個人票・医療意見書のXMLを検査します（ネットワーク・データベース不要）。")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="XMLファイル・フォルダ・ZIP")
    parser.add_argument("--format", choices=sorted(FORMATS), default="text", help="出力形式（既定: text）")
    args = parser.parse_args(argv)
    return run(args.paths, args.format)
