"""Load test: many people at once through the real stack — gunicorn workers, logged-in sessions, PostgreSQL, locust.

    .venv/bin/python bench/load.py                                  # 100,000 documents, 50 users, 4 workers, 300 s
    .venv/bin/python bench/load.py --size 20000 --duration 30       # a quick look

It creates a database of its own on the --database-url server (bench/http.py's generate(): bench/documents.py's
generator, then VACUUM ANALYZE), gives --users distinct users a real password and key file — half of them designated
doctors (those with the most drafts), the operator, and municipality clerks for the rest (the 自治体 with the most
received documents) — serves the app with gunicorn (--workers, the README's timeout; the task-queue consumer beside
it, as bench/http.py's Server does) and, once /healthz answers, runs locust headless for --duration seconds: as a
library, in a process of its own (gevent patches the standard library there, not in this process's database work).
Each simulated user logs in (password + key file) and then, --wait seconds between operations, picks one (weights):

  doctor     list (書類一覧 page 1) 2, details of one of their documents 3, save 2: opens the edit screen of one of
             their drafts, posts the form back (CSRF token and version as the page gave them) with its 作成年月日
             moved between today and yesterday, and reads the edit screen it is sent back to, which must say 保存しました;
  clerk      list 2, details of a document their 自治体 received 3, key lookup 2: the key-lookup screen, then the
             アクセスキー of such a document posted to it, which must send the clerk to that document's details
             (opened, as a details request);
  operator   list 2, details of any document 3.

At the end each user finishes the operation it is in (no effect goes unrecorded), then stops. It prints, per
operation, the requests, the failures, p50/p95/p99 in ms and the requests per second, and every error (a non-2xx
answer, a redirect where a page was expected, a page without what it must show). Then the operation log: the entries
written during the run, per action, against the successes locust recorded (login → login, list → document_list,
details → document_view, edit screen → document_view with screen edit, save → update, key lookup → key_lookup): one
entry per effect, and no other entry. Then `flask nanbyo audit-verify --full` on the database, and the tracebacks in
the gunicorn log. The run fails (exit status 1) on any error, any difference in the log, a broken chain or a
traceback.
"""
import sys

if __name__ == "__main__" and sys.argv[1:2] == ["--users-process"]:
    # The locust process: gevent patches the standard library before anything else is imported.
    from gevent import monkey
    monkey.patch_all()

# Run as a script, bench/ comes first on the path, and bench/http.py would shadow the standard library's http.
if __name__ == "__main__":
    sys.path.pop(0)
import argparse  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1/test"  # the server; the database is the bench's own
SIZE_PREFIX = "nanbyo_bench_http_{size}"  # bench/http.py's generate() names the database so
# Operation (locust's request name) -> the operation-log entry its success writes: (action, screen of the data).
LOGGED = {"login": ("login", None), "list": ("document_list", None), "details": ("document_view", None),
          "edit screen": ("document_view", "edit"), "save": ("update", None), "key lookup": ("key_lookup", None)}
ORDER = ["login page", "login", "list", "details", "edit screen", "save", "key lookup screen", "key lookup"]


def bench_http():
    """bench/http.py (named as issue 11 calls it), loaded under another name so that the standard library's http
    stays http: its generate(), Server, PASSWORD and percentile()."""
    import importlib.util
    if "bench_http" in sys.modules:
        return sys.modules["bench_http"]
    sys.path.insert(0, str(HERE))  # bench/http.py takes the first entry of the path off (its folder, as a script)
    spec = importlib.util.spec_from_file_location("bench_http", HERE / "http.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_http"] = module
    spec.loader.exec_module(module)
    return module


# --- data: the users and what each works on ------------------------------------------------------------------------

def setup_users(bench, args, password):
    """The operator, `clerks` municipality users and `doctors` designated doctors, each with the bench password and a
    key file of their own; what each works on. Returns the users as the locust process gets them."""
    from sqlalchemy import text
    from app import create_app
    from models.accounts import User
    from nanbyo import auth
    from nanbyo.extensions import db

    doctors_n = args.users // 2
    clerks_n = args.users - 1 - doctors_n
    rng = random.Random(args.seed)
    app = create_app({"SQLALCHEMY_DATABASE_URI": bench.url, "SECRET_KEY": "bench"})
    out = []
    with app.app_context():
        def rows(sql, **params):
            return db.session.execute(text(sql), params).all()

        password_hash = auth.hash_password(password)  # one argon2 hash (salted) serves every bench user
        clerks = rows("SELECT u.id, u.municipality_id FROM user_account u JOIN document d ON d.municipality_id = "
                      "u.municipality_id WHERE u.role LIKE 'municipality%' AND d.status IN ('received', 'reviewed', "
                      "'completed') GROUP BY u.id, u.municipality_id ORDER BY count(*) DESC, u.id LIMIT :n",
                      n=clerks_n)
        doctors = rows("SELECT author_id FROM document WHERE status = 'draft' AND author_id IS NOT NULL "
                       "GROUP BY author_id ORDER BY count(*) DESC, author_id LIMIT :n", n=doctors_n)
        if len(clerks) < clerks_n or len(doctors) < doctors_n:
            raise SystemExit(f"--users {args.users}: the database has {len(clerks)} clerks with received documents "
                             f"and {len(doctors)} doctors with drafts (--size larger?)")
        operator = db.session.execute(db.select(User).filter_by(role="operator_admin").order_by(User.id)).scalar()
        work = [(operator, "operator", {"details": [r.id for r in rows(
            "SELECT id FROM document ORDER BY random() LIMIT 500")]})]
        for clerk_id, muni_id in clerks:
            found = rows("SELECT id, access_key FROM document WHERE municipality_id = :m AND status IN ('received', "
                         "'reviewed', 'completed') AND access_key IS NOT NULL ORDER BY random() LIMIT 200", m=muni_id)
            work.append((db.session.get(User, clerk_id), "clerk",
                         {"details": [r.id for r in found], "lookups": [[r.id, r.access_key] for r in found]}))
        for (doctor_id,) in doctors:
            # Drafts the doctor may write: their own, at an institution they belong to (access.row_filter "write").
            drafts = rows("SELECT d.id FROM document d JOIN membership m ON m.institution_id = d.institution_id AND "
                          "m.user_id = d.author_id WHERE d.author_id = :a AND d.status = 'draft' ORDER BY random() "
                          "LIMIT 100", a=doctor_id)
            own = rows("SELECT id FROM document WHERE author_id = :a ORDER BY random() LIMIT 200", a=doctor_id)
            work.append((db.session.get(User, doctor_id), "doctor",
                         {"details": [r.id for r in own], "drafts": [r.id for r in drafts]}))
        for user, role, items in work:
            user.password_hash, user.must_change_password = password_hash, False
            user.email = user.email or f"{user.login_id}@example.jp"
            key = auth.issue_key_file(user)
            out.append({"login_id": user.login_id, "role": role, "key": base64.b64encode(key).decode(), **items})
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    rng.shuffle(out)
    return out


def log_tail(url):
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    with engine.connect() as conn:
        seq = conn.execute(text("SELECT coalesce(max(seq), 0) FROM operation_log")).scalar()
    engine.dispose()
    return seq


def log_entries(url, after):
    """The entries after `after`: {(action, result, screen): count}."""
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(text(
            "SELECT action, result, CAST(data AS jsonb) ->> 'screen' AS screen, count(*) FROM operation_log "
            "WHERE seq > :after GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"), {"after": after}).all()
    engine.dispose()
    return {(a, r, s): n for a, r, s, n in found}


# --- the locust process ----------------------------------------------------------------------------------------------

def users_process(config_path, result_path):
    """Runs in a process of its own (gevent): locust's users against the server for the duration; writes what each
    request took and every error to `result_path`."""
    import gevent
    from locust import HttpUser, between, task
    from locust.env import Environment
    from lxml import html as lxml_html

    config = json.loads(Path(config_path).read_text())
    pools = defaultdict(list)
    for user in config["users"]:
        pools[user["role"]].append(user)
    times, failed, errors = defaultdict(list), Counter(), Counter()

    def on_request(request_type, name, response_time, response_length, exception=None, **_kw):
        if exception is not None:
            failed[name] += 1
            errors[(name, str(exception)[:300])] += 1
        else:
            times[name].append(response_time)

    def csrf(page):
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page or "")
        return match.group(1) if match else ""

    class Person(HttpUser):
        abstract = True
        wait_time = between(*config["wait"])
        role = ""

        def on_start(self):
            self.me = pools[self.role].pop()
            self.rng = random.Random(f"{config['seed']}-{self.me['login_id']}")
            page = self.page("/login", "login page")
            with self.client.post("/login", name="login", allow_redirects=False, catch_response=True,
                                  data={"login_id": self.me["login_id"], "password": config["password"],
                                        "csrf_token": csrf(page)},
                                  files={"key_file": (f"{self.me['login_id']}.key",
                                                      base64.b64decode(self.me["key"]))}) as r:
                location = r.headers.get("Location", "")
                if r.status_code != 302 or "/login" in location or "first-login" in location:
                    r.failure(f"login refused: {r.status_code} {location}")

        def page(self, path, name, must=None):
            """GET a page that must answer 200 (a redirect, to the login say, is a failure); its text or None."""
            with self.client.get(path, name=name, allow_redirects=False, catch_response=True) as r:
                if r.status_code != 200:
                    r.failure(f"{r.status_code} {r.headers.get('Location', '')}".strip())
                    return None
                if must is not None and must not in r.text:
                    r.failure(f"the page lacks {must!r}")
                    return None
                return r.text

        @task(2)
        def document_list(self):
            # A non-empty page: its rows are what the log records (document_list is written for rows shown).
            self.page("/admin/document/", "list", must="/admin/document/details/?id=")

        @task(3)
        def details(self):
            self.page(f"/admin/document/details/?id={self.rng.choice(self.me['details'])}", "details")

    class Doctor(Person):
        role, fixed_count = "doctor", len(pools["doctor"])

        @task(2)
        def save(self):
            doc_id = self.rng.choice(self.me["drafts"])
            here = f"/admin/document/edit/?id={doc_id}"
            page = self.page(here, "edit screen", must='id="document-form"')
            if page is None:
                return
            form = lxml_html.fromstring(page).get_element_by_id("document-form")
            fields = [(k, v) for k, v in form.form_values() if k != "finalize"]
            # One real change: the 作成年月日 moves by a day between two values the draft allows (today and the
            # day before: never before its 診断年月日, which the generator sets on or before it).
            values = dict(fields)
            written = values.get("written_on", "")
            today = date.fromisoformat(config["today"])
            new = (today.fromordinal(today.toordinal() - 1) if written == today.isoformat() else today).isoformat()
            fields = [(k, new if k == "written_on" else v) for k, v in fields]
            with self.client.post(here, name="save", data=fields, allow_redirects=False, catch_response=True) as r:
                location = r.headers.get("Location", "")
                if r.status_code != 302 or not location.endswith(here):
                    r.failure(f"save: {r.status_code} {location}".strip())
                    return
                after = self.page(here, "edit screen")
                if after is None:
                    r.failure("save: the edit screen after the save did not open")
                elif "保存しました。" not in after:
                    flashes = [re.sub(r"<[^>]+>|\s+", " ", f).strip()
                               for f in re.findall(r'class="alert[^"]*"[^>]*>(.*?)</div>', after, re.S)]
                    r.failure(f"save: not saved ({' / '.join(flashes)[:200]})")

    class Clerk(Person):
        role, fixed_count = "clerk", len(pools["clerk"])

        @task(2)
        def key_lookup(self):
            doc_id, key = self.rng.choice(self.me["lookups"])
            page = self.page("/admin/document/lookup/", "key lookup screen", must='name="access_key"')
            if page is None:
                return
            with self.client.post("/admin/document/lookup/", name="key lookup", allow_redirects=False,
                                  catch_response=True, data={"access_key": key, "csrf_token": csrf(page)}) as r:
                location = r.headers.get("Location", "")
                if r.status_code != 302 or not location.endswith(f"/admin/document/details/?id={doc_id}"):
                    r.failure(f"key lookup: {r.status_code} {location}".strip())
                    return
            self.page(f"/admin/document/details/?id={doc_id}", "details")  # where the lookup sends the clerk

    class Operator(Person):
        role, fixed_count = "operator", len(pools["operator"])

    classes = [c for c in (Doctor, Clerk, Operator) if c.fixed_count]
    env = Environment(user_classes=classes, host=f"http://127.0.0.1:{config['port']}",
                      stop_timeout=config["stop_timeout"])
    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    started = time.monotonic()
    runner.start(len(config["users"]), spawn_rate=config["spawn_rate"])

    def progress():
        while True:
            gevent.sleep(30)
            done = sum(len(t) for t in times.values())
            print(f"    {time.monotonic() - started:5.0f} s: {done:,} requests, {sum(failed.values())} failed, "
                  f"{runner.user_count} users", flush=True)

    reporter = gevent.spawn(progress)
    gevent.sleep(config["duration"])
    runner.quit()  # each user finishes the operation it is in (stop_timeout), then stops
    elapsed = time.monotonic() - started
    reporter.kill()
    Path(result_path).write_text(json.dumps({
        "elapsed": elapsed, "times": times, "failed": failed,
        "errors": [[name, message, n] for (name, message), n in errors.most_common()]}))


# --- report ------------------------------------------------------------------------------------------------------------

def report(result, bench_http):
    """Per operation: requests, failures, percentiles. Returns the successes per operation and the error count."""
    times, failed = result["times"], Counter(result["failed"])
    names = [n for n in ORDER if n in times or n in failed] + sorted((set(times) | set(failed)) - set(ORDER))
    print(f"\n  {'operation':20} {'requests':>9} {'failed':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'req/s':>7}")
    total = 0
    for name in names:
        values = times.get(name, [])
        count = len(values) + failed[name]
        total += count
        if values:
            p = [bench_http.percentile(values, q) for q in (50, 95, 99)]
            print(f"  {name:20} {count:9,} {failed[name]:7,} {p[0]:8.0f} {p[1]:8.0f} {p[2]:8.0f} {max(values):8.0f} "
                  f"{count / result['elapsed']:7.2f}")
        else:
            print(f"  {name:20} {count:9,} {failed[name]:7,} {'-':>8} {'-':>8} {'-':>8} {'-':>8} "
                  f"{count / result['elapsed']:7.2f}")
    errors = sum(failed.values())
    print(f"  {'all':20} {total:9,} {errors:7,} {'':8} {'':8} {'':8} {'':8} {total / result['elapsed']:7.2f}")
    print(f"  errors: {errors}" + ("" if errors else " (none)"))
    for name, message, n in result["errors"][:20]:
        print(f"    {n:6,} x {name}: {message}")
    return {name: len(values) for name, values in times.items()}, errors


def check_log(entries, effects):
    """One entry per effect: the entries written during the run against locust's successes. True when equal and
    nothing else was written."""
    print(f"\n  operation log (entries written during the run)\n  {'operation':14} {'entry':30} {'effects':>8} "
          f"{'entries':>8}")
    complete, seen = True, set()
    for name, (action, screen) in LOGGED.items():
        expected = effects.get(name, 0)
        found = entries.get((action, "success", screen), 0)
        seen.add((action, "success", screen))
        same = expected == found
        complete &= same
        label = action + (f" (screen={screen})" if screen else "")
        print(f"  {name:14} {label:30} {expected:8,} {found:8,}  {'equal' if same else 'DIFFERENT'}")
    for (action, result, screen), n in sorted(entries.items(), key=str):
        if (action, result, screen) not in seen:
            complete = False
            print(f"  {'(none)':14} {action + ' ' + result + (' ' + screen if screen else ''):30} {0:8,} {n:8,}  "
                  "UNEXPECTED")
    print(f"  one entry per effect: {'yes' if complete else 'NO'}")
    return complete


def audit_verify(bench):
    env = dict(os.environ, NANBYO_DATABASE_URL=bench.url, NANBYO_INSTANCE_PATH=bench.instance, PYTHONPATH=str(ROOT))
    done = subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "app", "nanbyo", "audit-verify", "--full"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=3600)
    print(f"\n  flask nanbyo audit-verify --full (exit {done.returncode}):")
    for line in (done.stdout + done.stderr).strip().splitlines()[-10:]:
        print(f"    {line}")
    return done.returncode == 0


def server_errors(bench, server):
    """Tracebacks in the gunicorn log (a 500's cause), first one printed."""
    log = Path(bench.instance) / f"gunicorn-{server.port}.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    tracebacks = text.count("Traceback (most recent call last)")
    print(f"\n  gunicorn log: {tracebacks} traceback(s)")
    if tracebacks:
        start = text.index("Traceback (most recent call last)")
        print("    " + "\n    ".join(text[max(0, start - 300):start + 4000].splitlines()))
    return tracebacks


# --- main ------------------------------------------------------------------------------------------------------------

def run(args):
    bh = bench_http()
    print(f"\n-- {args.size:,} documents: generating", flush=True)
    bench = bh.generate(args, args.size)
    try:
        users = setup_users(bench, args, bh.PASSWORD)
        roles = Counter(u["role"] for u in users)
        print(f"  users: {len(users)} ({roles['doctor']} doctors, {roles['clerk']} clerks, {roles['operator']} "
              "operator), each with a password and a key file of their own", flush=True)
        start_seq = log_tail(bench.url)
        server = bh.Server(bench, "app:create_app()", args.workers)
        try:
            wait_ready(server.port)
            with tempfile.TemporaryDirectory(prefix="nanbyo-bench-load-") as work:
                config, result = Path(work) / "config.json", Path(work) / "result.json"
                config.write_text(json.dumps({
                    "port": server.port, "users": users, "password": bh.PASSWORD, "duration": args.duration,
                    "wait": args.wait, "seed": args.seed, "spawn_rate": args.spawn_rate,
                    "stop_timeout": bh.TIMEOUT + 30, "today": today_jst().isoformat()}))
                print(f"  locust: {len(users)} users for {args.duration} s against gunicorn {args.workers} workers "
                      f"(port {server.port})", flush=True)
                subprocess.run([sys.executable, str(Path(__file__).resolve()), "--users-process", str(config),
                                str(result)], check=True, timeout=args.duration + 3600)
                outcome = json.loads(result.read_text())
        finally:
            server.stop()
        effects, errors = report(outcome, bh)
        complete = check_log(log_entries(bench.url, start_seq), effects)
        intact = audit_verify(bench)
        tracebacks = server_errors(bench, server)
        ok = errors == 0 and complete and intact and tracebacks == 0
        print(f"\n  result: {'PASS' if ok else 'FAIL'} ({errors} errors; operation log "
              f"{'complete' if complete else 'INCOMPLETE'}; chain {'intact' if intact else 'BROKEN'})")
        return ok
    finally:
        if not args.keep:
            bh.server_database(args.database_url, create=False, prefix=SIZE_PREFIX.format(size=args.size))
            shutil.rmtree(bench.instance, ignore_errors=True)
        else:
            print(f"  kept: {bench.url} (instance {bench.instance})")


def wait_ready(port):
    """Until /healthz answers 200 (gunicorn listens before its workers have loaded the app), then the workers' boot."""
    from urllib.request import urlopen
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:  # nosec B310 (loopback)
                if answer.status == 200:
                    break
        except OSError:
            pass
        time.sleep(0.5)
    else:
        raise RuntimeError("the server did not answer /healthz")
    time.sleep(3)


def today_jst():
    sys.path.insert(0, str(ROOT))
    from models._types import today_jst as today
    return today()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="documents generated (default 100000)")
    parser.add_argument("--users", type=int, default=50, help="concurrent users, one of them the operator (default 50)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--duration", type=int, default=300, help="seconds of load (default 300)")
    parser.add_argument("--wait", type=lambda s: [float(x) for x in s.split(",")], default=[1.0, 3.0],
                        help="seconds a user waits between operations, min,max (default 1,3)")
    parser.add_argument("--spawn-rate", type=float, default=10.0, help="users started per second (default 10)")
    parser.add_argument("--institutions", type=int, default=2_000)
    parser.add_argument("--doctors", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the database and the instance folder")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="the PostgreSQL server (a database of its own is made)")
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must name a PostgreSQL server")
    if args.users < 3:
        parser.error("--users must be at least 3 (the operator, a clerk and a doctor)")
    print(f"nanbyo load test: {args.users} users, gunicorn {args.workers} workers, {args.duration} s, {args.size:,} "
          f"documents; {date.today()}", flush=True)
    sys.exit(0 if run(args) else 1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--users-process"]:
        users_process(sys.argv[2], sys.argv[3])
    else:
        main()
