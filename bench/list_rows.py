"""Benchmark: what one more row costs a model list page, in Python (not a test; SQLite, no server).

    .venv/bin/python bench/list_rows.py                    # per-row ms of every list below
    .venv/bin/python bench/list_rows.py --profile clerk:/admin/document/     # cProfile of that page, 50 rows

A page of 50 rows and one of 20 rows of the same list are timed in turn (--samples each, after a warm-up) through
Flask's test client with a logged-in user, in CPU time of the thread (the machine may be busy with other work); the
per-row cost is the difference of the medians / 30, split into the rows' loading (get_list: the query and its ORM
objects) and the rest (rendering). The statements
each page runs are counted: they must not grow with the rows. The data: a 自治体 管理者 of Tokyo (the clerk), an
operator administrator and a doctor; 60 institutions and 60 doctors issued by Tokyo; 100 documents of the doctor,
addressed to Tokyo, every status (the clerk sees the 60 received, reviewed or completed ones).
"""
import sys

# bench/ holds http.py: the standard library's http must win over it.
sys.path.pop(0)
import argparse  # noqa: E402
import cProfile  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = [("clerk", "/admin/document/"), ("clerk", "/admin/institution/"), ("clerk", "/admin/user/"),
         ("clerk", "/admin/membership/"), ("operator", "/admin/document/"), ("operator", "/admin/user/"),
         ("operator", "/admin/institution/"), ("operator", "/admin/operation_log/"), ("doctor", "/admin/document/")]
BIG, SMALL = 50, 20


def build(instance):
    os.environ["NANBYO_INSTANCE_PATH"] = instance
    from flask_migrate import upgrade

    from app import create_app
    from nanbyo.extensions import db
    from nanbyo.masters import load_masters
    from tests.conftest import IsolatedClient
    from tests.helpers import TOKYO, gen_document, gen_institution, gen_municipality, gen_user

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance}/bench.db", "SECRET_KEY": "bench",
                      "NANBYO_ARGON2_PROFILE": "fast"})
    app.test_client_class = IsolatedClient
    users = {}
    with app.app_context():
        upgrade()
        load_masters(app.config["NANBYO_MASTERS_DIR"])
        db.session.commit()
        tokyo = gen_municipality(TOKYO)
        institutions = [gen_institution(tokyo) for _ in range(60)]
        doctors = [gen_user("designated_doctor", institution=i, designations=("nanbyo", "shoman"))
                   for i in institutions]
        statuses = ("draft", "finalized", "received", "reviewed", "completed")
        for n in range(100):
            gen_document(doctors[0], kind=("nanbyo", "shoman")[n % 2], status=statuses[n % 5])
        for name, user in (("clerk", gen_user("municipality_admin", municipality=tokyo)),
                           ("operator", gen_user("operator_admin")), ("doctor", doctors[0])):
            users[name] = (user.login_id, user.key_file)
        db.session.remove()
    return app, users


def clients(app, users):
    from tests.helpers import login
    result = {}
    for name, (login_id, key_file) in users.items():
        client = app.test_client()
        assert login(client, login_id, key_file=key_file).status_code == 302, name
        result[name] = client
    return result


class StatementCounter:
    def __init__(self, engine):
        from sqlalchemy import event
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args):
        self.count += 1


def get(client, path, rows):
    response = client.get(f"{path}?page_size={rows}")
    assert response.status_code == 200, (path, response.status_code)
    return response


class LoadTimer:
    """The CPU time spent in the views' get_list (the page's rows from the database, as ORM objects): the rest of a
    request is rendering (and the fixed work around it)."""

    def __init__(self):
        from views.base import ScopedModelView
        self.spent = 0.0
        get_list = ScopedModelView.get_list

        def timed(view, *args, **kwargs):
            start = time.thread_time()
            try:
                return get_list(view, *args, **kwargs)
            finally:
                self.spent += time.thread_time() - start
        ScopedModelView.get_list = timed


def measure(app, client, path, samples, counter, loads):
    statements, shown = {}, {}
    for rows in (SMALL, BIG):
        get(client, path, rows)
        before = counter.count
        body = get(client, path, rows).get_data(as_text=True)
        statements[rows] = counter.count - before
        shown[rows] = body.count('class="action-checkbox"') or body.count('<td class="list-buttons-column">')
    times, loading = {SMALL: [], BIG: []}, {SMALL: [], BIG: []}
    for _ in range(samples):
        for rows in (SMALL, BIG):
            loads.spent = 0.0
            start = time.thread_time()  # this thread's CPU: steadier than the clock on a shared machine
            get(client, path, rows)
            times[rows].append(time.thread_time() - start)
            loading[rows].append(loads.spent)
    small, big = (statistics.median(times[r]) * 1000 for r in (SMALL, BIG))
    load_small, load_big = (statistics.median(loading[r]) * 1000 for r in (SMALL, BIG))
    return small, big, load_big - load_small, shown, statements


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--profile", metavar="ROLE:PATH", help="cProfile this page with 50 rows instead")
    parser.add_argument("--only", metavar="ROLE:PATH", action="append", help="time only these pages")
    parser.add_argument("--dump", metavar="FILE", help="with --profile: also write the profile to FILE (pstats)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as instance:
        app, users = build(instance)
        with app.app_context():
            from nanbyo.extensions import db
            counter = StatementCounter(db.engine)
        logged_in, loads = clients(app, users), LoadTimer()
        if args.profile:
            role, path = args.profile.split(":", 1)
            for _ in range(5):
                get(logged_in[role], path, BIG)
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(20):
                get(logged_in[role], path, BIG)
            profile.disable()
            if args.dump:
                profile.dump_stats(args.dump)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(60)
            pstats.Stats(profile).sort_stats("tottime").print_stats(40)
            return
        pages = [tuple(p.split(":", 1)) for p in args.only] if args.only else PAGES
        print(f"{'role':9} {'list':24} {'rows':>7} {'stmts':>7} {'ms 20':>7} {'ms 50':>7} {'ms/row':>7} "
              f"{'load':>7} {'render':>7}")
        per_row, per_row_render = [], []
        for role, path in pages:
            small, big, load, shown, statements = measure(app, logged_in[role], path, args.samples, counter, loads)
            rows = shown[BIG] - shown[SMALL]
            cost = (big - small) / rows if rows else float("nan")
            load = load / rows if rows else float("nan")
            per_row.append(cost)
            per_row_render.append(cost - load)
            flag = "" if statements[SMALL] == statements[BIG] else "  STATEMENTS GROW"
            print(f"{role:9} {path:24} {shown[SMALL]:>3}/{shown[BIG]:<3} {statements[SMALL]:>3}/{statements[BIG]:<3} "
                  f"{small:7.1f} {big:7.1f} {cost:7.3f} {load:7.3f} {cost - load:7.3f}{flag}")
        print(f"mean per-row ms: {statistics.mean(per_row):.3f} (of which past get_list, rendering: "
              f"{statistics.mean(per_row_render):.3f})")


if __name__ == "__main__":
    main()
