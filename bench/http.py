"""Benchmark: what people meet, through the real stack — gunicorn workers, logged-in sessions, PostgreSQL (not a test).

    .venv/bin/python bench/http.py                       # 100,000 and 1,000,000 documents, the default server
    .venv/bin/python bench/http.py --sizes 20000 --samples 10      # a quick look

For each size it creates a database of its own on the --database-url server (generated as bench/documents.py
does: institutions, doctors, documents by COPY, VACUUM ANALYZE), gives three of its users a real password and key
file — the largest 実施主体's clerk (made a 自治体 管理者), the doctor with the most documents, the operator — and
serves the app twice, each with gunicorn (--workers, the README's timeout):

  nanbyo   the application as it is;
  stock    the same application with Flask-Admin's stock list and export behaviour put back (bench/stock_app.py:
           COUNT(*) of the list, OFFSET over the eager-loaded query, the export built in memory from ORM objects).

Through HTTP it then times, after --warmup untimed requests, --samples requests of each:

  lists    every list a role uses, page 1 and the deepest page up to 500 the role has, every sort the page offers,
           every filter of the documents list with a value that matches rows, the search box;
  exports  the operator's export of every document as CSV and xlsx: rows/s, whether the file holds every row (the
           count of the operator's documents), and the peak RSS above idle of the serving processes (gunicorn
           workers, and the task-queue consumer when the export runs as a background job);
  import   a 5,000-row ユーザデータファイル uploaded, previewed and confirmed by the 自治体 管理者 (nanbyo only:
           the stock app has no importer of its own).

It prints p50/p95 in ms and the ratios the targets are stated in: nanbyo / stock, page 500 / page 1, and (with
two sizes) the largest / the smallest size. Targets (issue 11): every list p95 ≤ 100 ms at 1M, page 500 / page 1
≤ 2, 1M / 100k ≤ 1.5; export peak RSS ≤ 200 MB above idle, CSV ≥ 100,000 rows/s, xlsx ≥ 20,000 rows/s, every row;
import ≥ 2,000 rows/s. A figure outside its target is flagged MISS.
"""
import sys

# This file is named http.py (as issue 11 calls it): the standard library's http must win over it.
_BENCH_DIR = sys.path.pop(0)
import argparse  # noqa: E402
import http.client  # noqa: E402
import io
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import unescape
from pathlib import Path
from urllib.parse import urlencode, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(HERE))  # after the standard library (see above)

from benchdb import make_app, server_database  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1/test"
PASSWORD = "bench-http-password-2026"
TIMEOUT = 120  # the README's gunicorn --timeout
LIST_P95_MS, DEPTH_RATIO, SIZE_RATIO = 100.0, 2.0, 1.5
RSS_LIMIT_MB, CSV_ROWS_S, XLSX_ROWS_S, IMPORT_ROWS_S = 200.0, 100_000, 20_000, 2_000


# --- data ---------------------------------------------------------------------------------------------------------

@dataclass
class Bench:
    size: int
    url: str
    instance: str
    clerk: str = ""
    doctor: str = ""
    manager: str = ""  # the 責任者 of the institution with the most documents
    operator: str = ""
    keys: dict = field(default_factory=dict)  # login ID -> key file bytes
    total: int = 0  # the operator's documents: every row
    institution: tuple = ("", "")  # (code, name) of one of the clerk's institutions, for the import
    filters: list = field(default_factory=list)  # (label, query args) of the documents list
    sorts: list = field(default_factory=list)  # (label, query args) of the documents list
    log_filters: list = field(default_factory=list)


def people(args, size):
    """(institutions, doctors) of a database of `size` documents: as given, else in proportion to the documents (one
    institution per 500, one doctor per 50, as 2,000 and 20,000 at 1M). A doctor writes as many documents in a
    prefecture's database as in the nation's: the busiest doctor's and institution's lists are then alike at every
    size, and the largest / smallest ratio measures what the table's size costs them (with the counts fixed, the
    busiest doctor of 100,000 documents had 205 of them, and a filtered page of theirs was not full)."""
    institutions = args.institutions or max(20, size // 500)
    return institutions, args.doctors or max(institutions, size // 50)


def generate(args, size):
    """A database of `size` documents (bench/documents.py's generator) and the three bench users."""
    import documents as gen  # bench/documents.py
    from sqlalchemy import select, text
    from models.institutions import Municipality
    from nanbyo.extensions import db

    instance = tempfile.mkdtemp(prefix="nanbyo-bench-http-")
    url = server_database(args.database_url, create=True, prefix=f"nanbyo_bench_http_{size}")
    app = make_app(url, instance)
    bench = Bench(size=size, url=url, instance=instance)
    rng = random.Random(args.seed)
    with app.app_context():
        munis = gen.weighted_munis(db.session.execute(select(Municipality).where(
            Municipality.kind.in_(("prefecture", "designated_city"))).order_by(Municipality.id)).scalars().all())
        db.session.rollback()
        started = time.perf_counter()
        raw = db.engine.raw_connection()
        try:
            conn = raw.driver_connection
            with conn.cursor() as cur:
                world, ref = gen.generate_reference(cur, rng, munis, *people(args, size))
            conn.commit()
            gen.generate_documents(conn, app, rng, world, ref, size, 10, progress=False)
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
            # The load's dirty pages written before the timings, not by a checkpoint in the middle of them.
            conn.execute("CHECKPOINT")
        finally:
            raw.close()
        print(f"  generated {size:,} documents ({len(world.institutions):,} institutions, {len(world.doctors):,} doctors) "
              f"in {time.perf_counter() - started:.0f} s", flush=True)
        setup_users(bench, db, text)
        bench.filters, bench.log_filters, bench.sorts = list_filters(app, db)
        db.session.remove()
        db.engine.dispose()
    return bench


def setup_users(bench, db, text):
    """Real passwords and key files for the largest 実施主体's clerk (as 自治体 管理者), the busiest doctor and the
    operator; the other users keep the generator's dummy hash."""
    from models.accounts import User
    from nanbyo import auth
    muni_id = db.session.execute(text(
        "SELECT municipality_id FROM document GROUP BY municipality_id ORDER BY count(*) DESC LIMIT 1")).scalar()
    author_id = db.session.execute(text(
        "SELECT author_id FROM document GROUP BY author_id ORDER BY count(*) DESC LIMIT 1")).scalar()
    clerk = db.session.execute(db.select(User).where(User.municipality_id == muni_id, User.role.like("municipality%"))
                               .order_by(User.id)).scalars().first()
    clerk.role = "municipality_admin"
    doctor = db.session.get(User, author_id)
    manager = db.session.get(User, db.session.execute(text(
        "SELECT m.user_id FROM membership m JOIN document d ON d.institution_id = m.institution_id "
        "WHERE m.is_manager AND m.user_id <> :doctor GROUP BY m.user_id ORDER BY count(*) DESC LIMIT 1"),
        {"doctor": author_id}).scalar())
    operator = db.session.execute(db.select(User).filter_by(role="operator_admin")).scalars().first()
    for user in (clerk, doctor, manager, operator):
        user.password_hash = auth.hash_password(PASSWORD)
        user.must_change_password, user.email = False, f"{user.login_id}@example.jp"
        bench.keys[user.login_id] = auth.issue_key_file(user)
    bench.clerk, bench.doctor, bench.operator = clerk.login_id, doctor.login_id, operator.login_id
    bench.manager = manager.login_id
    bench.institution = db.session.execute(text(
        "SELECT code, name FROM institution WHERE municipality_id = :m ORDER BY id LIMIT 1"), {"m": muni_id}).one()
    bench.total = db.session.execute(text("SELECT count(*) FROM document")).scalar()
    db.session.commit()


def list_filters(app, db):
    """Every filter of the documents list and of the operation log, with a value that matches rows: the views'
    own filter objects (their index is what the URL carries)."""
    from sqlalchemy import text
    dates = db.session.execute(text("SELECT min(written_on), max(written_on) FROM document")).one()
    middle = dates[0] + (dates[1] - dates[0]) / 2
    samples = db.session.execute(text(
        "SELECT id, access_key FROM document WHERE access_key IS NOT NULL ORDER BY id DESC LIMIT 1")).one()
    admin = app.extensions["admin"][0]
    out = {}
    for endpoint in ("document", "operation_log"):
        view = next(v for v in admin._views if getattr(v, "endpoint", "") == endpoint)
        found = []
        for index, flt in enumerate(view._filters or ()):
            kind = type(flt).__name__
            value = None
            if flt.options:
                # The first option, but for 状態 受付: every role sees received documents (a clerk sees no draft,
                # and an empty page would not measure the list).
                value = "received" if str(flt.name) == "状態" else list(flt.options)[0][0]
            elif "DateBetween" in kind:
                value = f"{middle - timedelta(days=30):%Y-%m-%d} to {middle:%Y-%m-%d}"
            elif "Date" in kind:
                value = f"{middle:%Y-%m-%d}"
            elif "access" in str(flt.name).lower() or "アクセスキー" in str(flt.name):
                value = samples.access_key
            elif str(flt.name) in ("No.", "番号"):
                value = str(samples.id)
            if value is not None:
                found.append((f"filter {flt.name} ({kind})", {f"flt0_{index}": value}))
        out[endpoint] = found
        if endpoint == "document":
            # Flask-Admin's ?sort= is the column's position in the list; every sortable column, both ways.
            names = [name for name, _label in view._list_columns]
            sorts = [(f"sort {name}{' desc' if desc else ''}", {"sort": names.index(name), **({"desc": 1} if desc else {})})
                     for name in view._sortable_columns for desc in (False, True) if name in names]
    return out["document"], out["operation_log"], sorts


# --- serving ------------------------------------------------------------------------------------------------------

class Server:
    """gunicorn (and the task-queue consumer, if the app has one) on a free port, for one database."""

    def __init__(self, bench, factory, workers):
        self.port = free_port()
        env = dict(os.environ, NANBYO_DATABASE_URL=bench.url, NANBYO_INSTANCE_PATH=bench.instance,
                   PYTHONPATH=str(ROOT))  # never bench/: its http.py would shadow the standard library's
        self.procs = [subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "-w", str(workers), "--timeout", str(TIMEOUT), "-b",
             f"127.0.0.1:{self.port}", factory], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=open(Path(bench.instance) / f"gunicorn-{self.port}.log", "w"), start_new_session=True)]
        consumer = ROOT / ".venv/bin/huey_consumer"
        if consumer.exists() and (ROOT / "nanbyo/tasks.py").exists():
            self.procs.append(subprocess.Popen(
                [str(consumer), "nanbyo.tasks.huey", "-w", "1", "-m", "1"], cwd=ROOT, env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(Path(bench.instance) / f"consumer-{self.port}.log", "w"), start_new_session=True))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not start")

    def pids(self):
        """The processes that serve requests or run jobs: the gunicorn workers and the consumer's."""
        out = []
        for proc in self.procs:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            kids = [int(p) for p in children.read_text().split()] if children.exists() else []
            out += kids or [proc.pid]
        return out

    def stop(self):
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssPeak:
    """Samples the RSS of the serving processes every 20 ms; the largest rise of one process above its idle RSS."""

    def __init__(self, server):
        self.server, self.idle, self.peak = server, {}, {}
        self._stop = threading.Event()

    def __enter__(self):
        self.idle = {pid: rss_mb(pid) for pid in self.server.pids()}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            for pid in self.server.pids():
                self.peak[pid] = max(self.peak.get(pid, 0.0), rss_mb(pid))
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()

    @property
    def rise(self):
        return max((peak - self.idle.get(pid, peak) for pid, peak in self.peak.items()), default=0.0)


# --- a browser without a browser ----------------------------------------------------------------------------------

class Client:
    """One logged-in user over one keep-alive connection: cookies, CSRF tokens, multipart uploads."""

    def __init__(self, port):
        self.port, self.cookies = port, {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT + 30)

    def request(self, method, path, body=None, headers=None, stream=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT + 30)
                if attempt == 2:
                    raise
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        if stream is not None:
            while chunk := response.read(1 << 16):
                stream(chunk)
            return response, b""
        return response, response.read()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, fields, files=None):
        boundary = uuid.uuid4().hex
        out = io.BytesIO()
        for name, value in fields.items():
            out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, (filename, data) in (files or {}).items():
            out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                      f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
        out.write(f"--{boundary}--\r\n".encode())
        return self.request("POST", path, body=out.getvalue(),
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def login(self, login_id, key):
        _, page = self.get("/login")
        response, _ = self.post("/login", {"login_id": login_id, "password": PASSWORD, "csrf_token": csrf(page)},
                                {"key_file": (f"{login_id}.key", key)})
        if response.status != 302:
            raise RuntimeError(f"login of {login_id} failed ({response.status})")
        return self


def csrf(page):
    match = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page)
    if not match:
        raise RuntimeError("no CSRF token in the page")
    return match.group(1).decode()


# --- measurements -------------------------------------------------------------------------------------------------

def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]


def timed(client, path, samples, warmup):
    times = []
    for i in range(warmup + samples):
        started = time.perf_counter()
        response, body = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        if i >= warmup:
            times.append(elapsed)
    return percentile(times, 50), percentile(times, 95), page_rows(body)


def page_rows(body) -> int:
    """The rows of the list the page shows (Flask-Admin's model-list table, after its heading; 0 for its empty-list
    row): what a comparison of two pages must share."""
    start = body.find(b"model-list")
    if start < 0:
        return 0
    start = body.find(b"</thead>", start)
    rows = body[start:body.find(b"</table>", start)]
    return 0 if b'colspan="999"' in rows else rows.count(b"<tr")


def list_paths(bench, role, count, users=0):
    """(label, path) of the lists this role uses, at page 1 and the deepest page (≤ 500) the role's rows fill (the
    users list: ≤ 200, of `users` accounts)."""
    deepest = max(0, min(499, count // 50 - 1))
    users_deepest = max(0, min(199, users // 50 - 1))
    paths = [("documents page 1", "/admin/document/"),
             (f"documents page {deepest + 1}", f"/admin/document/?page={deepest}")]
    paths += [(f"documents {label}", f"/admin/document/?{urlencode(q)}") for label, q in bench.sorts]
    paths += [(f"documents {label}", f"/admin/document/?{urlencode(q)}") for label, q in bench.filters]
    if role == "operator":
        paths += [("operation log page 1", "/admin/operation_log/"),
                  ("operation log page 100", "/admin/operation_log/?page=99")]
        paths += [(f"operation log {label}", f"/admin/operation_log/?{urlencode(q)}") for label, q in bench.log_filters]
        paths += [("users page 1", "/admin/user/"), ("users deepest page", f"/admin/user/?page={users_deepest}"),
                  ("users search", "/admin/user/?search=doc0001")]
    if role == "clerk":
        paths += [("users page 1", "/admin/user/"), ("institutions page 1", "/admin/institution/")]
    return paths


def role_counts(bench):
    from sqlalchemy import create_engine, text
    engine = create_engine(bench.url)
    with engine.connect() as conn:
        clerk_muni = conn.execute(text("SELECT municipality_id FROM user_account WHERE login_id = :l"),
                                  {"l": bench.clerk}).scalar()
        counts = {"clerk": conn.execute(text("SELECT count(*) FROM document WHERE municipality_id = :m AND status "
                                             "NOT IN ('draft', 'finalized')"), {"m": clerk_muni}).scalar(),
                  "doctor": conn.execute(text("SELECT count(*) FROM document d JOIN user_account u ON u.id = "
                                              "d.author_id WHERE u.login_id = :l"), {"l": bench.doctor}).scalar(),
                  "manager": conn.execute(text(
                      "SELECT count(*) FROM document d, user_account u WHERE u.login_id = :l AND (d.author_id = u.id "
                      "OR d.created_by_id = u.id OR d.institution_id IN (SELECT institution_id FROM membership "
                      "WHERE user_id = u.id AND is_manager))"), {"l": bench.manager}).scalar(),
                  "operator": bench.total}
        counts["users"] = conn.execute(text("SELECT count(*) FROM user_account")).scalar()
        # Enough log entries for the operation log's deeper pages.
        entries = conn.execute(text("SELECT count(*) FROM operation_log")).scalar()
    engine.dispose()
    return counts, entries


def measure_lists(server, bench, args):
    counts, _ = role_counts(bench)
    results = {}
    for role, login_id in (("clerk", bench.clerk), ("doctor", bench.doctor), ("manager", bench.manager),
                           ("operator", bench.operator)):
        client = Client(server.port).login(login_id, bench.keys[login_id])
        for label, path in list_paths(bench, role, counts[role], counts["users"]):
            try:
                results[(role, label)] = timed(client, path, args.samples, args.warmup)
            except RuntimeError as e:
                results[(role, label)] = None
                print(f"    {role} {label}: {e}", flush=True)
    return results, counts


def measure_export(server, bench, fmt):
    """The operator's export of every document: seconds, rows in the file, peak RSS rise (MB)."""
    client = Client(server.port).login(bench.operator, bench.keys[bench.operator])
    sink = ExportSink(fmt)
    with RssPeak(server) as rss:
        started = time.perf_counter()
        response, _ = client.get(f"/admin/document/export/{fmt}/", stream=sink.write)
        if response.status in (302, 303):  # a background job: follow it to its file
            download = wait_for_job(client, response.getheader("Location"))
            sink = ExportSink(fmt)
            response, _ = client.get(download, stream=sink.write)
        seconds = time.perf_counter() - started
    if response.status != 200:
        return None
    return seconds, sink.rows(), rss.rise


def wait_for_job(client, location):
    """Poll the export-jobs page until the job's download link appears; its path."""
    path = urlsplit(location).path + (f"?{urlsplit(location).query}" if urlsplit(location).query else "")
    deadline = time.monotonic() + 3600
    job = None
    while time.monotonic() < deadline:
        _, page = client.get(path)
        # The job just asked for is the newest row (an earlier export's job may be listed below it).
        job = job or max(int(n) for n in re.findall(rb'data-job="(\d+)"', page))
        row = re.search(rb'<tr data-job="%d" class="job-(\w+)".*?</tr>' % job, page, re.S)
        if row and row.group(1) == b"failed":
            raise RuntimeError(f"the export job {job} failed")
        link = row and re.search(rb'href="([^"]*/download[^"]*)"', row.group(0))
        if link:
            return unescape(link.group(1).decode())
        time.sleep(0.2)
    raise RuntimeError("the export job did not finish within an hour")


class ExportSink:
    """Counts an export's data rows without keeping the file (xlsx: kept on disk and read in read-only mode)."""

    def __init__(self, fmt):
        self.fmt, self.lines, self.tail = fmt, 0, b""
        self.file = tempfile.TemporaryFile() if fmt == "xlsx" else None

    def write(self, chunk):
        if self.file:
            self.file.write(chunk)
        else:  # a line end split between two reads counts once, with the next read
            self.lines += (self.tail + chunk).count(b"\r\n")
            self.tail = chunk[-1:]

    def rows(self):
        if not self.file:
            return self.lines - 1  # the heading
        import zipfile
        from lxml import etree
        self.file.seek(0)
        count = 0
        with zipfile.ZipFile(self.file) as book:  # each sheet's <row> elements, less its heading (openpyxl: minutes)
            for name in book.namelist():
                if name.startswith("xl/worksheets/sheet"):
                    with book.open(name) as sheet:
                        rows = 0
                        for _event, element in etree.iterparse(sheet, tag="{*}row"):
                            rows += 1
                            element.clear()
                            while element.getprevious() is not None:
                                del element.getparent()[0]
                        count += rows - 1
        return count


def measure_import(server, bench, rows):
    import import_users  # bench/import_users.py
    code, name = bench.institution
    data = import_users.xlsx_file(import_users.doctor_rows(rows, code, name, f"H{random.randrange(10**6)}"))
    client = Client(server.port).login(bench.clerk, bench.keys[bench.clerk])
    started = time.perf_counter()
    response, page = client.get("/admin/user-import/")
    if response.status != 200:
        print(f"    import page: {response.status} {response.getheader('Location')}", flush=True)
        return None
    response, page = client.post("/admin/user-import/preview", {"csrf_token": csrf(page)},
                                 {"file": ("bench.xlsx", data)})
    if response.status != 200 or b'id="confirm-import"' not in page:
        print(f"    import preview refused ({response.status})", flush=True)
        return None
    response, _ = client.post("/admin/user-import/confirm", {"csrf_token": csrf(page)})
    seconds = time.perf_counter() - started
    if response.status != 302 or "/batch/" not in (response.getheader("Location") or ""):
        print(f"    import confirm refused ({response.status})", flush=True)
        return None
    return seconds


# --- report -------------------------------------------------------------------------------------------------------

def flag(ok):
    return "" if ok else "  MISS"


def report_size(bench, ours, stock):
    print(f"\n== {bench.size:,} documents (operator sees {bench.total:,})")
    (lists, counts), (stock_lists, _) = ours["lists"], (stock["lists"] if stock else ({}, None))
    print(f"  lists (ms; rows the role sees: clerk {counts['clerk']:,}, doctor {counts['doctor']:,}, "
          f"責任者 {counts['manager']:,}, operator {counts['operator']:,})")
    print(f"    {'role':9} {'list':58} {'p50':>7} {'p95':>7} {'stock p95':>10} {'stock/ours':>10} {'rows':>5}")
    for (role, label), figures in lists.items():
        if figures is None:
            print(f"    {role:9} {label:58} failed")
            continue
        s = stock_lists.get((role, label))
        ratio = f"{s[1] / figures[1]:9.1f}x" if s else "         -"
        print(f"    {role:9} {label[:58]:58} {figures[0]:7.1f} {figures[1]:7.1f} "
              f"{(f'{s[1]:10.1f}' if s else '         -')} {ratio} {figures[2]:5}{flag(figures[1] <= LIST_P95_MS)}")
    for role in ("clerk", "doctor", "manager", "operator"):
        first = lists.get((role, "documents page 1"))
        deep = next((v for (r, label), v in lists.items() if r == role and label.startswith("documents page ")
                     and label != "documents page 1"), None)
        if first and deep:
            print(f"    {role}: deepest page / page 1 = {deep[1] / first[1]:.2f} (p95){flag(deep[1] / first[1] <= DEPTH_RATIO)}")
    for fmt, limit in (("csv", CSV_ROWS_S), ("xlsx", XLSX_ROWS_S)):
        for name, figures in (("nanbyo", ours[fmt]), ("stock", stock[fmt] if stock else None)):
            if figures is None:
                if name == "nanbyo" or stock:
                    print(f"  export {fmt:5} {name:7} {'not measured' if fmt in ours.get('skipped', ()) else 'failed (no file)'}")
                continue
            seconds, rows, rise = figures
            complete = rows == bench.total
            line = (f"  export {fmt:5} {name:7} {seconds:7.1f} s  {rows / seconds:10,.0f} rows/s  {rows:,} of "
                    f"{bench.total:,} rows  peak RSS +{rise:,.0f} MB")
            if name == "nanbyo":
                line += flag(complete) + flag(rows / seconds >= limit) + flag(rise <= RSS_LIMIT_MB)
            print(line)
    if ours.get("import"):
        seconds = ours["import"]
        print(f"  import {IMPORT_ROWS:,} rows: {seconds:.1f} s, {IMPORT_ROWS / seconds:,.0f} rows/s"
              f"{flag(IMPORT_ROWS / seconds >= IMPORT_ROWS_S)}")


IMPORT_ROWS = 5000


def report_scaling(small, large):
    """p95 at the largest size / at the smallest, for each list measured at both. A ratio means what the table's
    size costs when both pages show the same number of rows; a page that shows more rows at the larger size (a
    one-day filter: 9 of a municipality's documents at 100k, 50 at 1M) costs their rendering too, and is reported
    beside its rows rather than judged."""
    (a, _), (b, _) = small["lists"], large["lists"]
    print(f"\n== {large['size']:,} / {small['size']:,} documents (p95)")
    for key, figures in b.items():
        if figures and a.get(key) and key[1] in [k[1] for k in a]:
            ratio, rows = figures[1] / a[key][1], (a[key][2], figures[2])
            judged = flag(ratio <= SIZE_RATIO) if rows[0] == rows[1] else f"  (rows on the page {rows[0]} → {rows[1]})"
            print(f"    {key[0]:9} {key[1][:58]:58} {ratio:6.2f}{judged}")


def run_size(args, size):
    print(f"\n-- {size:,} documents: generating", flush=True)
    bench = generate(args, size)
    figures = {}
    try:
        apps = [("nanbyo", "app:create_app()")] + ([] if args.skip_stock else
                                                    [("stock", "bench.stock_app:create_app()")])
        for name, factory in apps:
            server = Server(bench, factory, args.workers)
            try:
                print(f"  measuring {name}", flush=True)
                out = {"lists": measure_lists(server, bench, args)}
                for fmt in ("csv", "xlsx"):
                    out[fmt] = None if args.skip_exports else measure_export(server, bench, fmt)
                out["skipped"] = ("csv", "xlsx") if args.skip_exports else ()
                if name == "nanbyo" and not args.skip_import:
                    out["import"] = measure_import(server, bench, IMPORT_ROWS)
                figures[name] = out
            finally:
                server.stop()
        report_size(bench, figures["nanbyo"], figures.get("stock"))
        figures["nanbyo"]["size"] = size
        return figures["nanbyo"]
    finally:
        if not args.keep:
            server_database(args.database_url, create=False, prefix=f"nanbyo_bench_http_{size}")
            shutil.rmtree(bench.instance, ignore_errors=True)
        else:
            print(f"  kept: {bench.url} (instance {bench.instance})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100_000, 1_000_000],
                        help="document counts, comma-separated (default 100000,1000000)")
    parser.add_argument("--institutions", type=int, help="default: one per 500 documents (2,000 at 1M)")
    parser.add_argument("--doctors", type=int, help="default: one per 50 documents (20,000 at 1M)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-exports", action="store_true")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-stock", action="store_true", help="measure nanbyo alone (no stock Flask-Admin app)")
    parser.add_argument("--keep", action="store_true", help="keep the databases and instance folders")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must name a PostgreSQL server")
    print(f"nanbyo HTTP benchmark: sizes {', '.join(f'{s:,}' for s in args.sizes)}; gunicorn {args.workers} "
          f"workers, --timeout {TIMEOUT}; {args.samples} samples after {args.warmup} warm-up; {date.today()}",
          flush=True)
    results = [run_size(args, size) for size in args.sizes]
    if len(results) > 1:
        report_scaling(results[0], results[-1])


if __name__ == "__main__":
    main()
