"""Benchmark: the XML check and import of issue 12 (not a test).

    .venv/bin/python bench/xml.py                                  # 10,000 documents; SQLite, and PostgreSQL too
    .venv/bin/python bench/xml.py --documents 2000 --zip-mb 20     # a quick look

In one run, over the same generated documents (every form in turn, 500 per file):
  raw       lxml parse + validation of each <document> against xsd/documents-1.xsd: the baseline, measured again
            before and after each figure below, which is set against the mean of the two (this machine's speed
            drifts by a tenth and more within a minute)
  check     nanbyo.xmlio.check over the files (what python -m nanbyo.check does), no database
  import    nanbyo.xmlio.importer end to end, every file as one upload (check, match to this server, a draft per
            document with its log entry, committed in groups), into a new SQLite database and, with --database-url,
            a PostgreSQL database of its own, as the background job and the CLI import (every upload above 1 MB,
            NANBYO_XML_INLINE_BYTES): the files checked aside, ahead of the writes, by a checker per core
            (nanbyo.xmlio.parallel), --runs times, each into a new database with raw measured just before and after
            it: the median ratio is the figure (all are printed). For reference, not against the targets: the same
            files checked in the importing process, as an upload of at most 1 MB (about 550 of these documents) is
            imported within its request
  zip       the check, and the import (SQLite, checked aside), of one ZIP of about --zip-mb MB read from disk, each in
            a process of its own: its peak RSS (VmHWM), and the checker's. The ZIP stores its entries (no
            compression): the generated documents are so alike that deflate packs 40 of them in a kilobyte, and
            200 MB would be millions
and prints docs/s and the ratios the targets are stated in (check ≥ 2,000 docs/s; import ≥ 500 docs/s and ≥ 25 % of
raw, checked aside; a 200 MB ZIP under 300 MB RSS, the checker's included). A figure outside its target is flagged
MISS.
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


def importer_world():
    """The institution and the doctor the generated documents name (the test factories make them)."""
    from models.accounts import User
    from nanbyo.extensions import db
    from tests import helpers
    hospital = helpers.gen_institution(helpers.gen_municipality(helpers.TOKYO), code="1310000017")
    doctor = helpers.gen_user("designated_doctor", institution=hospital, designations=("nanbyo", "shoman"),
                              name="見本 太郎")
    for designation in doctor.designations:
        designation.number = "13-N-0101"
    db.session.commit()
    return db.session.get(User, doctor.id), hospital


def time_import(files, url, instance, check_aside):
    """docs/s of one import of every file (one upload of many files, as the screen, the job and the CLI take them),
    into a new database; check_aside: as the job and the CLI import (nanbyo.xmlio.parallel)."""
    from benchdb import make_app
    from nanbyo.extensions import db
    from nanbyo.xmlio import vendor_kit
    from nanbyo.xmlio.importer import CREATED, import_uploads
    app = make_app(url, instance)
    with app.app_context():
        doctor, hospital = importer_world()
        started = time.perf_counter()
        outcomes = import_uploads(files, doctor, hospital, today=vendor_kit.SAMPLE_DAY, check_aside=check_aside)
        seconds = time.perf_counter() - started
        created = sum(o.result == CREATED for o in outcomes)
        assert created == len(outcomes), {o.result for o in outcomes}
        db.session.remove()
        db.engine.dispose()
    return created / seconds


PEAK = """
def peak_mb(reset=False):
    \"\"\"VmHWM: this process's own peak (ru_maxrss keeps the parent's); reset: from now on (Linux clear_refs 5).\"\"\"
    if reset:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
"""
ZIP_CHECK = PEAK + """
import sys, time
sys.path.insert(0, {root!r})
from nanbyo.xmlio import check, vendor_kit
start = peak_mb()
started = time.perf_counter()
results = check.check_paths([{path!r}], today=vendor_kit.SAMPLE_DAY)
print(sum(len(r.documents) for r in results), all(r.ok for r in results), time.perf_counter() - started, peak_mb(),
      start)
"""
ZIP_IMPORT = PEAK + """
import importlib.util, subprocess, sys, tempfile, threading, time
from pathlib import Path
sys.path.insert(0, {root!r})
sys.path.append({bench!r})
from benchdb import make_app
from nanbyo.xmlio import vendor_kit
from nanbyo.xmlio.importer import CREATED, import_uploads
spec = importlib.util.spec_from_file_location("bench_xml", {script!r})  # this file, not the standard library's xml
bench_xml = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_xml)
instance = tempfile.mkdtemp()
app = make_app(f"sqlite:///{{instance}}/bench.db", instance)
real_popen, checker = subprocess.Popen, [0.0]


def watch(process):
    # The checker's VmHWM, read until it ends: its own (what its parent could ask the kernel for counts the
    # parent's pages the child shared before it became the checker).
    while process.poll() is None:
        try:
            with open(f"/proc/{{process.pid}}/status") as status:
                checker[0] = next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
        except (OSError, StopIteration):
            pass
        time.sleep(0.05)


def popen(*args, **kwargs):
    global watching
    process = real_popen(*args, **kwargs)
    watching = threading.Thread(target=watch, args=(process,))
    watching.start()
    return process


subprocess.Popen = popen
with app.app_context():
    doctor, hospital = bench_xml.importer_world()
    start = peak_mb(reset=True)  # the app made, the masters loaded: what the import adds is measured
    started = time.perf_counter()
    outcomes = import_uploads([("batch.zip", Path({path!r}))], doctor, hospital, today=vendor_kit.SAMPLE_DAY,
                              check_aside=True)
    seconds = time.perf_counter() - started
    watching.join()
    print(sum(o.result == CREATED for o in outcomes), len(outcomes), seconds, peak_mb(), start, checker[0])
"""


def zip_file(files, megabytes, folder):
    """A ZIP of about `megabytes` MB: the files again and again under new names, each copy with its own patients
    (so that every document imported is a new draft), entries stored."""
    path = Path(folder) / "batch.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        n = 0
        while path.stat().st_size < megabytes * 1024 * 1024:
            for name, data in files:
                copy = "ハナコ" + "".join("アイウエオカキクケコ"[int(d)] for d in f"{n:05d}")
                archive.writestr(f"{n:05d}-{name}", data.replace("ハナコ".encode(), copy.encode()))
                n += 1
            archive.fp.flush()
    return path


def _run(script):
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=tempfile.gettempdir()).stdout.split()


def zip_rss(path):
    """The check of the ZIP at `path`, in a process of its own."""
    out = _run(ZIP_CHECK.format(root=str(ROOT), path=str(path)))
    documents, ok, seconds, peak, start = int(out[0]), out[1] == "True", float(out[2]), float(out[3]), float(out[4])
    return path.stat().st_size / 1024 / 1024, documents, ok, seconds, peak, start


def zip_import_rss(path):
    """The import (SQLite) of the ZIP at `path`, read from disk as the CLI reads it, in a process of its own."""
    out = _run(ZIP_IMPORT.format(root=str(ROOT), bench=str(Path(__file__).resolve().parent),
                                 script=str(Path(__file__).resolve()), path=str(path)))
    return int(out[0]), int(out[1]), float(out[2]), float(out[3]), float(out[4]), float(out[5])


def import_run(files, server, check_aside):
    """(ratio to raw, docs/s, raw docs/s) of one import into a new database (on `server`, else SQLite), raw measured
    just before and just after it."""
    from benchdb import server_database
    with tempfile.TemporaryDirectory() as instance:
        url = server_database(server, create=True, prefix="nanbyo_bench_xml") if server else \
            f"sqlite:///{instance}/bench.db"
        try:
            before = time_raw(files)
            rate = time_import(files, url, instance, check_aside)
            raw = (before + time_raw(files)) / 2
        finally:
            if server:
                server_database(server, create=False, prefix="nanbyo_bench_xml")
    return rate / raw, rate, raw


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--zip-mb", type=int, default=200)
    parser.add_argument("--skip-zip-import", action="store_true", help="check the ZIP only (its import takes minutes)")
    parser.add_argument("--runs", type=int, default=3,
                        help="imports checked aside per database, each into a new one: the median is the figure")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1/test",
                        help="a PostgreSQL server: a database of its own is made there and dropped ('' to skip)")
    args = parser.parse_args()
    print(f"nanbyo XML benchmark: {args.documents:,} documents in files of {PER_FILE}", flush=True)
    files = generate(args.documents)
    print(f"  generated {sum(len(d) for _n, d in files) / 1e6:.1f} MB in {len(files)} files", flush=True)
    raws = [time_raw(files)]
    checked = time_check(files)
    raws.append(time_raw(files))
    raw = sum(raws) / len(raws)
    print(f"  raw lxml parse + validate {raw:10,.0f} docs/s  (again before and after each figure: each ratio is "
          "against the mean of its two)")
    print(f"  check                     {checked:10,.0f} docs/s  {checked / raw:5.0%} of raw"
          f"{flag(checked >= CHECK_DOCS_S)}")
    targets = [("SQLite", None)] + ([("PostgreSQL", args.database_url)] if args.database_url else [])
    for label, server in targets:
        for check_aside, how in ((True, "checked aside (the job, the CLI)"),
                                 (False, "checked in process, for reference (an upload of at most 1 MB, in its "
                                         "request)")):
            runs = sorted(import_run(files, server, check_aside) for _ in range(args.runs if check_aside else 1))
            ratio, rate, raw = runs[len(runs) // 2]
            others = f" (median of {len(runs)}: {', '.join(f'{r:.0%}' for r, _rate, _raw in runs)})" \
                if len(runs) > 1 else ""
            print(f"  import ({label:10})       {rate:10,.0f} docs/s  {ratio:5.0%} of raw ({raw:,.0f} docs/s){others}, "
                  f"{how}{flag(rate >= IMPORT_DOCS_S)}{flag(ratio >= IMPORT_RAW_RATIO or not check_aside)}",
                  flush=True)
    with tempfile.TemporaryDirectory() as folder:
        path = zip_file(files, args.zip_mb, folder)
        size, documents, ok, seconds, peak, start = zip_rss(path)
        print(f"  ZIP of {size:,.0f} MB: {documents:,} documents checked {'(all pass)' if ok else '(PROBLEMS)'} in "
              f"{seconds:.0f} s, {documents / seconds:,.0f} docs/s; peak RSS {peak:,.0f} MB (at start {start:,.0f} MB)"
              f"{flag(peak <= ZIP_RSS_MB)}", flush=True)
        if not args.skip_zip_import:
            created, documents, seconds, peak, start, checker = zip_import_rss(path)
            print(f"  ZIP of {size:,.0f} MB imported (SQLite, checked aside): {created:,} of {documents:,} documents "
                  f"created in {seconds:.0f} s, {created / seconds:,.0f} docs/s; peak RSS {peak:,.0f} MB (at start "
                  f"{start:,.0f} MB) and the checker's {checker:,.0f} MB{flag(peak + checker <= ZIP_RSS_MB)}")

if __name__ == "__main__":
    main()
