"""Benchmark: the XML check and import of issue 12 (not a test).

    .venv/bin/python bench/xml.py                                  # 10,000 documents; SQLite, and PostgreSQL too
    .venv/bin/python bench/xml.py --documents 2000 --zip-mb 20     # a quick look

In one run, over the same generated documents (every form in turn, 500 per file):
  raw       lxml parse + validation of each <document> against xsd/documents-1.xsd: the baseline
  check     nanbyo.xmlio.check over the files (what python -m nanbyo.check does), no database
  import    nanbyo.xmlio.importer end to end (check, match to this server, a draft per document with its log entry,
            each in its own transaction), on a temporary SQLite database and, with --database-url, on a
            PostgreSQL database of its own
  zip       the check of one ZIP of about --zip-mb MB read from disk, in a process of its own: its peak RSS
and prints docs/s and the ratios the targets are stated in (check ≥ 2,000 docs/s; import ≥ 500 docs/s and ≥ 25 % of
raw; a 200 MB ZIP under 300 MB RSS). A figure outside its target is flagged MISS.
"""
import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

if __name__ == "__main__":
    sys.path.append(sys.path.pop(0))  # bench/http.py must not shadow the standard library's http
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(Path(__file__).resolve().parent))

PER_FILE = 500
CHECK_DOCS_S, IMPORT_DOCS_S, IMPORT_RAW_RATIO, ZIP_RSS_MB = 2000, 500, 0.25, 300


def flag(ok):
    return "" if ok else "  MISS"


def generate(count):
    """Files of PER_FILE documents, every form in turn, with distinct patients (so each is a new document)."""
    from nanbyo.xmlio import vendor_kit
    from nanbyo.xmlio.writer import file_bytes
    codes = vendor_kit.sample_diseases()
    contents = {code: vendor_kit.sample_content(*code) for code in codes}
    files, elements = [], []
    for i in range(count):
        code = codes[i % len(codes)]
        element = vendor_kit.sample_element(*code, content=contents[code])
        element.find("patient/given_kana").text = "ハナコ" + "".join("アイウエオカキクケコ"[int(d)] for d in f"{i:06d}")
        elements.append(element)
        if len(elements) == PER_FILE or i == count - 1:
            files.append((f"batch-{len(files) + 1:04d}.xml", file_bytes(elements)))
            elements = []
    return files


def time_raw(files):
    from lxml import etree
    from nanbyo.xmlio.contract import document_schema
    schema = document_schema()
    started, count = time.perf_counter(), 0
    for _name, data in files:
        for element in etree.fromstring(data):
            schema.validate(element)
            count += 1
    return count / (time.perf_counter() - started)


def time_check(files):
    from nanbyo.xmlio import check, vendor_kit
    started, count = time.perf_counter(), 0
    for name, data in files:
        result = check.check_bytes(name, data, today=vendor_kit.SAMPLE_DAY)
        assert result.ok, name
        count += len(result.documents)
    return count / (time.perf_counter() - started)


def time_import(files, url, instance):
    from benchdb import make_app
    from models.accounts import User
    from nanbyo.extensions import db
    from nanbyo.xmlio import vendor_kit
    from nanbyo.xmlio.importer import CREATED, import_uploads
    from tests import helpers  # the test factories make the institution and its doctor
    app = make_app(url, instance)
    with app.app_context():
        hospital = helpers.gen_institution(helpers.gen_municipality(helpers.TOKYO), code="1310000017")
        doctor = helpers.gen_user("designated_doctor", institution=hospital, designations=("nanbyo", "shoman"),
                                  name="見本 太郎")
        for designation in doctor.designations:
            designation.number = "13-N-0101"
        db.session.commit()
        doctor = db.session.get(User, doctor.id)
        started = time.perf_counter()
        outcomes = []
        for name, data in files:
            outcomes += import_uploads([(name, data)], doctor, hospital, today=vendor_kit.SAMPLE_DAY)
        seconds = time.perf_counter() - started
        created = sum(o.result == CREATED for o in outcomes)
        assert created == len(outcomes), {o.result for o in outcomes}
        db.session.remove()
        db.engine.dispose()
    return created / seconds


ZIP_CHECK = """
import resource, sys, time
sys.path.insert(0, {root!r})
from nanbyo.xmlio import check, vendor_kit
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
results = check.check_paths([{path!r}], today=vendor_kit.SAMPLE_DAY)
print(sum(len(r.documents) for r in results), all(r.ok for r in results), time.perf_counter() - started,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, before / 1024)
"""


def zip_rss(files, megabytes, folder):
    """A ZIP of about `megabytes` MB (the files repeated under new names), checked in a process of its own."""
    path = Path(folder) / "batch.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        n = 0
        while path.stat().st_size < megabytes * 1024 * 1024:
            for name, data in files:
                archive.writestr(f"{n:05d}-{name}", data)
                n += 1
            archive.fp.flush()
    out = subprocess.run([sys.executable, "-c", ZIP_CHECK.format(root=str(ROOT), path=str(path))],
                         capture_output=True, text=True, check=True).stdout.split()
    documents, ok, seconds, peak, start = int(out[0]), out[1] == "True", float(out[2]), float(out[3]), float(out[4])
    return path.stat().st_size / 1024 / 1024, documents, ok, seconds, peak, start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--zip-mb", type=int, default=200)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1/test",
                        help="a PostgreSQL server: a database of its own is made there and dropped ('' to skip)")
    args = parser.parse_args()
    print(f"nanbyo XML benchmark: {args.documents:,} documents in files of {PER_FILE}", flush=True)
    files = generate(args.documents)
    print(f"  generated {sum(len(d) for _n, d in files) / 1e6:.1f} MB in {len(files)} files", flush=True)
    raw = time_raw(files)
    checked = time_check(files)
    print(f"  raw lxml parse + validate {raw:10,.0f} docs/s")
    print(f"  check                     {checked:10,.0f} docs/s  {checked / raw:5.0%} of raw"
          f"{flag(checked >= CHECK_DOCS_S)}")
    from benchdb import server_database
    targets = [("SQLite", None)] + ([("PostgreSQL", args.database_url)] if args.database_url else [])
    for label, server in targets:
        with tempfile.TemporaryDirectory() as instance:
            url = server_database(server, create=True, prefix="nanbyo_bench_xml") if server else \
                f"sqlite:///{instance}/bench.db"
            try:
                rate = time_import(files, url, instance)
            finally:
                if server:
                    server_database(server, create=False, prefix="nanbyo_bench_xml")
        print(f"  import ({label:10})       {rate:10,.0f} docs/s  {rate / raw:5.0%} of raw"
              f"{flag(rate >= IMPORT_DOCS_S)}{flag(rate / raw >= IMPORT_RAW_RATIO)}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        size, documents, ok, seconds, peak, start = zip_rss(files, args.zip_mb, folder)
    print(f"  ZIP of {size:,.0f} MB: {documents:,} documents checked {'(all pass)' if ok else '(PROBLEMS)'} in "
          f"{seconds:.0f} s, {documents / seconds:,.0f} docs/s; peak RSS {peak:,.0f} MB (at start {start:,.0f} MB)"
          f"{flag(peak <= ZIP_RSS_MB)}")


if __name__ == "__main__":
    main()
