"""Benchmark: 医療機関ユーザデータファイル at the 5,000-row limit, as xlsx and as csv (not a test).

    .venv/bin/python bench/import_users.py                      # a temporary SQLite database
    .venv/bin/python bench/import_users.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench

For each format it times
  baseline  just reading the file: openpyxl read-only over every cell / the csv module over the decoded text
  parse     userfile.read_table + parse_rows: the importer's reading and validation, no database
  plan      userfile.plan: parse, then look every doctor up in the database (writes nothing)
  execute   userfile.execute: create the users, designations, memberships and the operation log in one transaction
  preview   through HTTP (Flask's test client, a logged-in 自治体 管理者): the upload and its preview page
  confirm   through HTTP: the confirm, which plans the previewed rows again under the write lock and imports them
  http      preview + confirm: the end-to-end figure of issue 11 (target 2,000 rows/s); a file of new doctors of
            another institution, so that it is measured as a fresh import
and prints seconds, rows/s, the ratio to baseline, and peak Python memory (tracemalloc, in a second run of
baseline, parse and plan, as tracemalloc slows the code it watches) plus the process's max RSS so far.

--database-url names a PostgreSQL server (any database on it): the benchmark creates a database of its own there,
nanbyo_bench_<pid>, and drops it at the end; the named database is not touched.
"""
import argparse
import contextvars
import csv
import gc
import io
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, bench/ comes first on the path, and bench/http.py would shadow the standard library's http.
    sys.path.append(sys.path.pop(0))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchdb import make_app, server_database  # noqa: E402  (bench/ is the script's folder)

# One file = one institution; each format gets its own institution and doctor numbers, so both are new doctors.
FORMATS = {"xlsx": ("1310000017", "東京見本病院", "X"), "csv": ("1310000025", "東京見本クリニック", "C")}
# The same through HTTP: institutions and doctor numbers of their own again.
HTTP_FORMATS = {"xlsx": ("1310000033", "東京見本医院", "HX"), "csv": ("1310000041", "東京見本診療所", "HC")}
CLERK_PASSWORD = "bench-import-password-2026"


def doctor_rows(n, code, name, tag):
    from nanbyo.userfile import LABELS
    family = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
    kana = ["サトウ", "スズキ", "タカハシ", "タナカ", "イトウ", "ワタナベ", "ヤマモト", "ナカムラ", "コバヤシ", "カトウ"]
    rows = [LABELS]
    for i in range(1, n + 1):
        rows.append(["難病指定医", f"13-{tag}-{i:05d}", code, name, "主たる勤務先", "脳神経内科", family[i % 10], f"医師{i}",
                     kana[i % 10], "イシ", f"03-1234-{i % 10000:04d}", f"doc{tag}{i}@example.jp", "2026-04-01",
                     "2031-03-31"])
    return rows


def xlsx_file(rows):
    from openpyxl import Workbook
    from nanbyo.userfile import SHEET_NAME
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(SHEET_NAME)
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def csv_file(rows):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")


def baseline(fmt, data):
    """Only reading the cells, nothing else: the floor for plan."""
    if fmt == "xlsx":
        from openpyxl import load_workbook
        wb = load_workbook(io.BytesIO(data), read_only=True)
        n = sum(1 for _ in wb.worksheets[0].iter_rows(values_only=True))
        wb.close()
        return n
    return sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def timed(fn):
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def traced_peak(fn):
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--database-url", help="a PostgreSQL server URL: a database of its own is created there and dropped (default: a temporary SQLite file)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nanbyo-bench-") as tmp:
        url = server_database(args.database_url, create=True) if args.database_url else f"sqlite:///{tmp}/bench.db"
        try:
            app = make_app(url, tmp)
            with app.app_context():
                run(app, args.rows)
                from nanbyo.extensions import db
                db.session.remove()
                db.engine.dispose()
        finally:
            if args.database_url:
                server_database(args.database_url, create=False)


def run(app, n):
    from nanbyo import userfile
    from nanbyo.extensions import db
    from models.institutions import Institution, Municipality

    tokyo = db.session.execute(db.select(Municipality).filter_by(code="130001")).scalar_one()
    for code, name, _ in (*FORMATS.values(), *HTTP_FORMATS.values()):
        db.session.add(Institution(code=code, name=name, address="", municipality=tokyo, shoman_municipality=tokyo))
    clerk, key_file = make_clerk(tokyo)
    db.session.commit()

    print(f"nanbyo user import benchmark: {n} rows, {db.engine.dialect.name} ({db.engine.url.render_as_string()}), "
          f"Python {sys.version.split()[0]}, argon2 profile {app.config['NANBYO_ARGON2_PROFILE']}")
    header = f"{'format':6} {'phase':9} {'seconds':>8} {'rows/s':>9} {'x base':>7} {'peak MB':>8} {'maxRSS MB':>10}"
    print(header)
    print("-" * len(header))
    for fmt, (code, name, tag) in FORMATS.items():
        tokyo = db.session.execute(db.select(Municipality).filter_by(code="130001")).scalar_one()
        rows = doctor_rows(n, code, name, tag)
        (data, build_s) = timed(lambda: xlsx_file(rows) if fmt == "xlsx" else csv_file(rows))
        print(f"{fmt:6} {'(file)':9} {build_s:8.2f} {'':>9} {'':>7} {len(data) / 1e6:7.2f}MB on disk")

        read, base_s = timed(lambda: baseline(fmt, data))
        assert read == n + 1, read
        base_peak = traced_peak(lambda: baseline(fmt, data))
        line(fmt, "baseline", base_s, n, None, base_peak)

        (records, problems), parse_s = timed(lambda: userfile.parse_rows(userfile.read_table(f"users.{fmt}", data)))
        assert len(records) == n and not problems, problems[:5]
        parse_peak = traced_peak(lambda: userfile.parse_rows(userfile.read_table(f"users.{fmt}", data)))
        line(fmt, "parse", parse_s, n, parse_s / base_s, parse_peak)

        result, plan_s = timed(lambda: userfile.plan(tokyo, f"users.{fmt}", data))
        assert result.ok, [str(p) for p in result.problems][:5]
        assert len(result.to_create) == n
        db.session.rollback()  # plan only reads; start the traced run from the same state
        plan_peak = traced_peak(lambda: userfile.plan(tokyo, f"users.{fmt}", data))
        db.session.rollback()
        line(fmt, "plan", plan_s, n, plan_s / base_s, plan_peak)

        result = userfile.plan(tokyo, f"users.{fmt}", data)
        batch, exec_s = timed(lambda: userfile.execute(result, filename=f"users.{fmt}", data=data))
        assert batch.created_count == n
        line(fmt, "execute", exec_s, n, None, None)
        db.session.expunge_all()

        code, name, tag = HTTP_FORMATS[fmt]
        rows = doctor_rows(n, code, name, tag)
        data = xlsx_file(rows) if fmt == "xlsx" else csv_file(rows)
        preview_s, confirm_s = through_http(app, clerk, key_file, f"users.{fmt}", data)
        line(fmt, "preview", preview_s, n, None, None)
        line(fmt, "confirm", confirm_s, n, None, None)
        line(fmt, "http", preview_s + confirm_s, n, None, None)
        db.session.expunge_all()
    print("\nrows/s = data rows / seconds; x base = seconds / baseline seconds; peak MB = tracemalloc peak of a "
          "separate run; maxRSS = the whole process so far.")


def make_clerk(municipality):
    """A 自治体 管理者 past first login: login ID and key file."""
    from models.accounts import User
    from nanbyo import auth
    from nanbyo.extensions import db
    user = User(login_id="bench-clerk", name="ベンチ 職員", name_kana="ベンチ ショクイン", role="municipality_admin",
                municipality=municipality, email="bench-clerk@example.jp", must_change_password=False,
                password_hash=auth.hash_password(CLERK_PASSWORD))
    key_file = auth.issue_key_file(user)
    db.session.add(user)
    return user.login_id, key_file


def through_http(app, login_id, key_file, filename, data):
    """Log in, upload + preview, confirm (Flask's test client: the whole request, no network). Seconds of the
    preview (with the page it fetches for its form token) and of the confirm."""
    import re
    client = app.test_client()

    def request(method, path, **kwargs):
        # A context of its own per request, as in production (the benchmark's app context stays out of it).
        response = contextvars.Context().run(getattr(client, method), path, **kwargs)
        return response, response.get_data(as_text=True)

    def token(page):
        return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)

    _, page = request("get", "/login")
    response, _ = request("post", "/login", content_type="multipart/form-data", data={
        "login_id": login_id, "password": CLERK_PASSWORD, "csrf_token": token(page),
        "key_file": (io.BytesIO(key_file), f"{login_id}.key")})
    assert response.status_code == 302 and response.location.endswith("/admin/"), response.status_code
    gc.collect()
    started = time.perf_counter()
    _, page = request("get", "/admin/user-import/")
    response, page = request("post", "/admin/user-import/preview", content_type="multipart/form-data", data={
        "csrf_token": token(page), "file": (io.BytesIO(data), filename)})
    assert response.status_code == 200 and 'id="confirm-import"' in page, page[:2000]
    previewed = time.perf_counter()
    response, _ = request("post", "/admin/user-import/confirm", data={"csrf_token": token(page)})
    assert response.status_code == 302 and "/batch/" in response.location, response.status_code
    return previewed - started, time.perf_counter() - previewed


def line(fmt, phase, seconds, n, ratio, peak):
    ratio_s = f"{ratio:6.1f}x" if ratio is not None else ""
    peak_s = f"{peak / 1024 / 1024:8.1f}" if peak is not None else ""
    print(f"{fmt:6} {phase:9} {seconds:8.2f} {n / seconds:9.0f} {ratio_s:>7} {peak_s:>8} {max_rss_mb():10.0f}",
          flush=True)


if __name__ == "__main__":
    main()
