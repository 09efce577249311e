"""Benchmark: the operation log at national scale, through the real stack — gunicorn, a logged-in operator,
PostgreSQL (not a test).

    .venv/bin/python bench/audit_log.py                          # 1,000,000 and 10,000,000 entries
    .venv/bin/python bench/audit_log.py --sizes 200000 --samples 10   # a quick look

For each size it creates a database of its own (nanbyo_bench_log_<size>_<pid>, dropped at the end unless --keep),
migrated, with the masters and bench/documents.py's institutions and users (a clerk per 実施主体, doctors, staff),
and fills operation_log by COPY with a REAL hash chain: each entry's hash computed in Python as nanbyo.audit does,
streamed (the chain never held in memory), entries spread over two years with the mix of a working system (list
and detail views, logins, edits, exports, failures). The secondary indexes are dropped for the COPY and built again
after it, then VACUUM ANALYZE. A signed verify checkpoint is written at the generated tail (the chain is intact by
construction), then a day's entries (--day, 15,000: 10M over two years is ~14,000 a day) are appended after it.

It serves the app with gunicorn (--workers) and, logged in as the operator, times --samples requests (after --warmup)
of the log list: the first page, a page deep in the log by its 次へ link (keyset), and each filter with a value
that matches entries. It then times `flask --app app nanbyo audit-verify` (the incremental nightly run: the day's
entries after the checkpoint) as a process, with --full-verify the full walk too, and with --archive the archive of
the older half of the log, the archive's verification and a full verify after the cut.

Targets (issue 14): first page p95 ≤ 100 ms, filtered search p95 ≤ 200 ms at 10M entries. MISS marks a miss.
"""
import sys

# bench/http.py is named after the standard library's http: keep bench/ off the front of the path.
_BENCH_DIR = sys.path.pop(0)
import argparse  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from html import unescape  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlencode  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # popped again by bench/http.py as it loads
_spec = importlib.util.spec_from_file_location("bench_http", HERE / "http.py")
bench_http = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_http)
from benchdb import make_app, server_database  # noqa: E402

FIRST_PAGE_P95_MS, FILTER_P95_MS = 100.0, 200.0
SPAN = timedelta(days=730)
# (action, weight, target type, result): what a working system writes most.
MIX = [("document_list", 30, "document", "success"), ("document_view", 22, "document", "success"),
       ("login", 9, "user_account", "success"), ("logout", 7, "user_account", "success"),
       ("update", 9, "document", "success"), ("create", 5, "document", "success"),
       ("document_print", 5, "document", "success"), ("key_lookup", 4, "document", "success"),
       ("document_finalize", 3, "document", "success"), ("export", 1, "document", "success"),
       ("login_failed", 3, "user_account", "failure"), ("access_denied", 1, "document", "denied"),
       ("key_lookup", 1, "document", "throttled")]


class Sizes:
    """Where the generated entries came from, for the filters' values."""
    clerk_code = ""  # the busiest municipality clerk's 自治体コード
    institution_code = ""  # an institution of typical size
    login_id = ""
    address = ""
    middle = None  # a time in the middle of the log


def actors(conn):
    """(id, login_id, role, address) of every user, the weights a busy national system gives them."""
    rows = conn.execute("SELECT id, login_id, role FROM user_account ORDER BY id").fetchall()
    out, weights = [], []
    for uid, login, role in rows:
        out.append((uid, login, role, f"10.{uid // 65536 % 256}.{uid // 256 % 256}.{uid % 256}"))
        weights.append({"operator_admin": 50, "municipality_user": 400, "municipality_admin": 200}.get(role, 1))
    return out, weights


def copy_line(values):
    return "\t".join("\\N" if v is None else str(v) for v in values) + "\n"


def fill_log(app, url, size, rng, day):
    """COPY `size` chained entries (and then `day` more after a signed checkpoint); returns Sizes."""
    import psycopg
    from nanbyo import audit, audit_chain
    from nanbyo.extensions import db
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    facts = Sizes()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        people, weights = actors(conn)
        indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'operation_log' AND "
                               "indexname NOT LIKE 'pk_%' AND indexname NOT LIKE 'uq_%'").fetchall()
        for name, _definition in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        started = time.perf_counter()
        tail = write_chain(conn, people, weights, rng, 1, audit.GENESIS, size,
                           datetime.now(timezone.utc) - SPAN - timedelta(days=1), SPAN / size)
        copied = time.perf_counter() - started
        conn.execute("SET maintenance_work_mem = '512MB'")
        started = time.perf_counter()
        for _name, definition in indexes:
            conn.execute(definition)
        indexed = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE operation_log")
        print(f"  {size:,} chained entries: COPY {copied:.0f} s ({size / copied:,.0f}/s), indexes {indexed:.0f} s",
              flush=True)
        busiest = conn.execute(
            "SELECT m.code FROM user_account u JOIN municipality m ON m.id = u.municipality_id "
            "ORDER BY u.id LIMIT 1").fetchone()
        typical = conn.execute(
            "SELECT i.code FROM institution i JOIN membership ms ON ms.institution_id = i.id "
            "GROUP BY i.code ORDER BY count(*) DESC, i.code LIMIT 1 OFFSET 50").fetchone()
        facts.clerk_code, facts.institution_code = busiest[0], typical[0]
        facts.login_id, facts.address = people[1][1], people[1][3]
        facts.middle = datetime.now(timezone.utc) - SPAN / 2
    with app.app_context():
        db.session.add(audit_chain.new_checkpoint(kind="verify", seq=tail[0], entry_hash=tail[1], result="intact",
                                                  entries=size))
        db.session.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        write_chain(conn, people, weights, rng, tail[0] + 1, tail[1], day,
                    datetime.now(timezone.utc) - timedelta(days=1), timedelta(days=1) / max(day, 1))
        conn.execute("ANALYZE operation_log")
    return facts


def write_chain(conn, people, weights, rng, first_seq, prev_hash, count, start, step):
    """COPY `count` entries from `first_seq`, chained from `prev_hash`, in chunks; returns (last seq, hash)."""
    from nanbyo import audit
    columns = ("seq", "created_at", "actor_id", "actor_login", "actor_role", "remote_addr", "action", "target_type",
               "target_id", "result", "data", "prev_hash", "entry_hash")
    actions = [m for m in MIX for _ in range(m[1])]
    chosen_people = rng.choices(people, weights=weights, k=min(count, 1_000_000) or 1)
    seq = first_seq - 1
    with conn.cursor() as cur, cur.copy(f"COPY operation_log ({', '.join(columns)}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for n in range(count):
            seq += 1
            uid, login, role, address = chosen_people[n % len(chosen_people)]
            action, _weight, target_type, result = actions[rng.randrange(len(actions))]
            data = {"rows": rng.randrange(1, 51)} if action in ("document_list", "export") else {}
            values = {"seq": seq, "created_at": start + step * n, "actor_id": uid, "actor_login": login,
                      "actor_role": role, "remote_addr": address, "action": action, "target_type": target_type,
                      "target_id": str(rng.randrange(1, 2_000_000)), "result": result, "data": data,
                      "prev_hash": prev_hash}
            values["entry_hash"] = prev_hash = audit._hash(values)
            values["data"] = audit_json(data)
            values["created_at"] = values["created_at"].isoformat()
            buffer.write(copy_line(values[c] for c in columns))
            if n % 20_000 == 19_999:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())
    return seq, prev_hash


def audit_json(data):
    import json
    return json.dumps(data, ensure_ascii=False)


# --- measuring ------------------------------------------------------------------------------------------------------

def log_filters(app, facts):
    """(label, query args) of the log list: the first page, each filter with a value that matches entries."""
    view = next(v for v in app.extensions["admin"][0]._views if getattr(v, "endpoint", "") == "operation_log")

    def arg(name, kind, value, n=0):
        index = next(i for i, f in enumerate(view._filters) if str(f.name) == name and type(f).__name__ == kind)
        return {f"flt{n}_{index}": value}

    day = facts.middle.astimezone(timezone(timedelta(hours=9)))
    one_day = f"{day:%Y-%m-%d} 00:00:00 to {day:%Y-%m-%d} 23:59:59"
    return [("first page", {}),
            ("操作 = ログイン", arg("操作", "FilterEqual", "login")),
            ("操作 = 書類のXML取込 (none)", arg("操作", "FilterEqual", "document_import")),
            ("ロール = 自治体 一般ユーザ", arg("ロール", "FilterEqual", "municipality_user")),
            ("結果 = 拒否", arg("結果", "FilterEqual", "denied")),
            ("対象 = ユーザ", arg("対象", "FilterEqual", "user_account")),
            ("ログインID =", arg("ログインID", "FilterEqual", facts.login_id)),
            ("接続元 =", arg("接続元", "FilterEqual", facts.address)),
            ("医療機関（コード）", arg("医療機関（医療機関コード）", "ActorFilter", facts.institution_code)),
            ("自治体（コード）", arg("自治体（自治体コード）", "ActorFilter", facts.clerk_code)),
            ("日時: one day", arg("日時（JST）", "JSTDateTimeBetweenFilter", one_day)),
            ("日時 + 操作 = 書類の閲覧", arg("日時（JST）", "JSTDateTimeBetweenFilter", one_day)
             | arg("操作", "FilterEqual", "document_view", 1)),
            ("ロール + 結果 = 失敗", arg("ロール", "FilterEqual", "designated_doctor")
             | arg("結果", "FilterEqual", "failure", 1)),
            ("search box (login ID part)", {"search": facts.login_id[:6]})]


def deep_path(client):
    """A page deep in the log: follow 次へ from a page of a year ago (as a person would go on from a search)."""
    _, page = client.get("/admin/operation_log/")
    found = re.search(rb'id="log-next" href="([^"#]+)"', page)
    path = unescape(found.group(1).decode())
    middle = datetime.now(timezone.utc) - timedelta(days=365)
    return re.sub(r"after=[^&]+", "after=" + urlencode({"x": f"{middle.isoformat()},999999999"})[2:], path)


def time_verify(bench, full):
    return time_command(bench, "audit-verify", *(["--full"] if full else []))


def time_command(bench, *command):
    """(seconds, exit code, last line of output) of `flask --app app nanbyo COMMAND` on the bench database."""
    env = dict(os.environ, NANBYO_DATABASE_URL=bench.url, NANBYO_INSTANCE_PATH=bench.instance, PYTHONPATH=str(ROOT))
    args = [str(ROOT / ".venv/bin/flask"), "--app", "app", "nanbyo", *command]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    return elapsed, done.returncode, (done.stdout or done.stderr).strip().splitlines()[-1:]


def run_size(args, size):
    print(f"\n== {size:,} entries ==", flush=True)
    import documents as gen  # bench/documents.py
    from sqlalchemy import select
    from models.accounts import User
    from models.institutions import Municipality
    from nanbyo import auth
    from nanbyo.extensions import db
    instance = tempfile.mkdtemp(prefix="nanbyo-bench-log-")
    url = server_database(args.database_url, create=True, prefix=f"nanbyo_bench_log_{size}")
    bench = bench_http.Bench(size=size, url=url, instance=instance)
    rng = random.Random(args.seed)
    server = None
    try:
        app = make_app(url, instance)
        with app.app_context():
            munis = gen.weighted_munis(db.session.execute(select(Municipality).where(
                Municipality.kind.in_(("prefecture", "designated_city"))).order_by(Municipality.id)).scalars().all())
            raw = db.engine.raw_connection()
            try:
                with raw.driver_connection.cursor() as cur:
                    gen.generate_reference(cur, rng, munis, args.institutions, args.doctors)
                raw.driver_connection.commit()
            finally:
                raw.close()
            operator = db.session.execute(select(User).filter_by(role="operator_admin")).scalars().first()
            operator.password_hash = auth.hash_password(bench_http.PASSWORD)
            operator.must_change_password, operator.email = False, "operator@example.jp"
            bench.keys[operator.login_id] = auth.issue_key_file(operator)
            bench.operator = operator.login_id
            db.session.commit()
            db.session.remove()
        facts = fill_log(app, url, size, rng, args.day)
        with app.app_context():
            filters = log_filters(app, facts)
            db.engine.dispose()

        server = bench_http.Server(bench, "app:create_app()", args.workers)
        client = bench_http.Client(server.port).login(bench.operator, bench.keys[bench.operator])
        results = []
        for label, query in filters:
            path = "/admin/operation_log/" + (f"?{urlencode(query)}" if query else "")
            results.append((label, *bench_http.timed(client, path, args.samples, args.warmup)))
        results.append(("deep page (次へ, a year back)", *bench_http.timed(client, deep_path(client), args.samples,
                                                                         args.warmup)))
        server.stop()
        server = None

        print(f"  {'list (operator)':36s} {'p50 ms':>8s} {'p95 ms':>8s}")
        for label, p50, p95, _rows in results:
            limit = FIRST_PAGE_P95_MS if label.startswith("first") else FILTER_P95_MS
            print(f"  {label:36s} {p50:8.1f} {p95:8.1f}  {'ok' if p95 <= limit else 'MISS'} (≤ {limit:.0f})")
        elapsed, code, last = time_verify(bench, full=False)
        print(f"  audit-verify (incremental, {args.day:,} entries after the checkpoint, as a process): "
              f"{elapsed:.1f} s, exit {code}: {' '.join(last)}")
        if args.full_verify:
            elapsed, code, last = time_verify(bench, full=True)
            print(f"  audit-verify --full ({size + args.day:,} entries): {elapsed:.1f} s "
                  f"({(size + args.day) / elapsed:,.0f}/s), exit {code}: {' '.join(last)}")
        if args.archive:
            before = (datetime.now(timezone(timedelta(hours=9))) - SPAN / 2).strftime("%Y-%m-%d")
            folder = str(Path(instance) / "archive")
            elapsed, code, last = time_command(bench, "audit-archive", "--before", before, "--dir", folder)
            print(f"  audit-archive --before {before} (half the log): {elapsed:.1f} s, exit {code}: {' '.join(last)}")
            archived = next(Path(folder).glob("*.jsonl.gz"), None)
            if archived is not None:
                elapsed, code, last = time_command(bench, "audit-verify-archive", str(archived))
                print(f"  audit-verify-archive: {elapsed:.1f} s, exit {code}: {' '.join(last)}")
            elapsed, code, last = time_verify(bench, full=True)
            print(f"  audit-verify --full after the archive: {elapsed:.1f} s, exit {code}: {' '.join(last)}")
        return results
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            server_database(args.database_url, create=False, prefix=f"nanbyo_bench_log_{size}")
            shutil.rmtree(instance, ignore_errors=True)
        else:
            print(f"  kept: {url} (instance {instance})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=bench_http.DEFAULT_URL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--day", type=int, default=15_000, help="entries after the checkpoint (a day's)")
    parser.add_argument("--institutions", type=int, default=5_000)
    parser.add_argument("--doctors", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--full-verify", action="store_true", help="also time audit-verify --full")
    parser.add_argument("--archive", action="store_true",
                        help="also time audit-archive of the older half, audit-verify-archive and audit-verify --full")
    parser.add_argument("--keep", action="store_true", help="keep the databases and instance folders")
    args = parser.parse_args()
    for size in args.sizes:
        run_size(args, size)


if __name__ == "__main__":
    main()
