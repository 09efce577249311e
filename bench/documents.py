"""Benchmark: the document queries at national scale, on PostgreSQL (not a test).

    .venv/bin/python bench/documents.py                                  # 1,000,000 documents, the default server
    .venv/bin/python bench/documents.py --documents 20000 --database-url postgresql+psycopg://postgres@127.0.0.1/x

DESIGN.md "Scale to plan for": about 1,000,000 臨個票 a year, 67 難病 municipalities, tens of thousands of
institutions, ~100k doctors. The benchmark creates a database of its own on the server --database-url names,
nanbyo_bench_docs_<pid> (the named database is not touched), runs the migrations, loads the masters and generates

  reference data  2,000 institutions spread over the 67 難病 実施主体 by population (東京都 has ~25x
                  鳥取県), sizes skewed (Pareto); 20,000 designated doctors (primary membership, 10% with a 兼務先,
                  the first doctor of each institution its 責任者), one staff user per institution, one municipality
                  user per municipality and an operator. Passwords are a fixed dummy hash (no argon2).
  documents       --documents rows through COPY: authors skewed (Pareto), 85% submitted to the institution's own
                  municipality; newest documents mostly draft/finalized, older ones mostly completed; an access key
                  for every finalized-or-later document; ~N/3 patients (~3 documents each, one municipality) whose
                  block is encrypted with the real KeyRing (AAD = the document uid) and indexed with the real
                  keyring blind index. Then VACUUM ANALYZE (the steady state autovacuum keeps).

and times, with --samples random samples each (after --warmup untimed ones, so psycopg's automatic prepared
statements are in their steady state), the exact statements the application runs:

  baseline        SELECT * FROM document WHERE id = :random  (the floor: one primary-key fetch)
  list            the documents list view: select(Document).where(access.row_filter(user, Document, "read"))
                  + the joinedloads of column_select_related_list, ORDER BY id DESC LIMIT 50 (page 1), for a random
                  municipality user / the largest municipality's user / a doctor / an institution 責任者 / the operator
  key lookup      nanbyo.documents.lookup_key's query: access_key + municipality_id + status, existing keys
  patient search  the patient search view: documents.patient_criterion(kana, birth) within a municipality user's
                  rows, ORDER BY id DESC LIMIT 100, for random existing patients

Each sample is one session.execute(...).all() through the ORM (objects built, as the view does), then the session
is rolled back and emptied, as at the end of a request. It prints p50/p95/p99 in ms, p95 over the baseline's p95,
and EXPLAIN (the plan only) of each measurement's first sample; a Seq Scan on document or a p95 over 50 ms is
flagged WARN.
"""
import argparse
import bisect
import gc
import itertools
import json
import math
import random
import shutil
import sys
import tempfile
import time
import unicodedata
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, bench/ comes first on the path, and bench/http.py would shadow the standard library's http.
    sys.path.append(sys.path.pop(0))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchdb import make_app, server_database  # noqa: E402  (bench/ is the script's folder)

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1/test"
P95_LIMIT_MS = 50.0
DUMMY_HASH = "bench-dummy-not-an-argon2-hash"

# 2020 census, 10,000s: prefectures (by prefecture_no) and the 20 指定都市 (a city's share is taken from its
# prefecture, as its residents apply to the city).
PREFECTURE_POPULATION = [522, 124, 121, 230, 96, 107, 183, 287, 193, 194, 734, 628, 1405, 924, 220, 103, 113, 77, 81,
                         205, 198, 363, 754, 177, 141, 258, 884, 547, 132, 92, 55, 67, 189, 280, 134, 72, 95, 133, 69,
                         514, 81, 131, 174, 112, 107, 159, 147]
CITY_POPULATION = {"札幌市": 197, "仙台市": 110, "さいたま市": 132, "千葉市": 97, "横浜市": 378, "川崎市": 154,
                   "相模原市": 72, "新潟市": 79, "静岡市": 69, "浜松市": 79, "名古屋市": 233, "京都市": 146,
                   "大阪市": 275, "堺市": 83, "神戸市": 153, "岡山市": 72, "広島市": 120, "北九州市": 94,
                   "福岡市": 161, "熊本市": 74}

FAMILY = [("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
          ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
          ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"),
          ("井上", "イノウエ"), ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ"),
          ("山崎", "ヤマザキ"), ("森", "モリ"), ("池田", "イケダ"), ("橋本", "ハシモト"), ("阿部", "アベ"),
          ("石川", "イシカワ"), ("山下", "ヤマシタ"), ("中島", "ナカジマ"), ("石井", "イシイ"), ("小川", "オガワ")]
GIVEN = [("太郎", "タロウ", "1"), ("健一", "ケンイチ", "1"), ("大輔", "ダイスケ", "1"), ("翔太", "ショウタ", "1"),
         ("拓也", "タクヤ", "1"), ("誠", "マコト", "1"), ("浩", "ヒロシ", "1"), ("蓮", "レン", "1"),
         ("陽翔", "ハルト", "1"), ("悠真", "ユウマ", "1"), ("隆", "タカシ", "1"), ("修", "オサム", "1"),
         ("茂", "シゲル", "1"), ("湊", "ミナト", "1"), ("颯太", "ソウタ", "1"),
         ("花子", "ハナコ", "2"), ("恵子", "ケイコ", "2"), ("美咲", "ミサキ", "2"), ("陽菜", "ヒナ", "2"),
         ("結衣", "ユイ", "2"), ("真由美", "マユミ", "2"), ("幸子", "サチコ", "2"), ("愛", "アイ", "2"),
         ("さくら", "サクラ", "2"), ("葵", "アオイ", "2"), ("直美", "ナオミ", "2"), ("裕子", "ユウコ", "2"),
         ("芽依", "メイ", "2"), ("凛", "リン", "2"), ("京子", "キョウコ", "2")]

DOC_COLUMNS = ("id", "uid", "kind", "application_kind", "form_code", "nanbyo_disease_id", "shoman_disease_id",
               "patient_cipher", "patient_index", "diagnosed_on", "written_on", "explained_on", "items", "author_id",
               "created_by_id", "institution_id", "municipality_id", "status", "access_key", "created_at",
               "updated_at", "finalized_at", "received_at", "received_by_id", "reviewed_at", "completed_at",
               "reception_no", "recipient_no", "application_received_on", "research_consent", "review_result",
               "valid_from", "valid_until", "severity", "review_note", "version_id", "patient_sex", "patient_age",
               "patient_key")


# --- database -----------------------------------------------------------------------------------------------------

def copy_rows(cur, table, columns, rows):
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def reset_sequences(cur, tables):
    for table in tables:
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")


def pad(text, width):
    """Left-align for a terminal: 全角 characters take two columns."""
    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(0, width - used)


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


# --- data generation ----------------------------------------------------------------------------------------------

class World:
    """What generation made and the measurements sample from (ids only: objects are loaded later)."""
    munis: list  # (id, code, name, weight)
    muni_user: dict  # municipality id -> user id
    operator_id: int
    institutions: list  # (id, municipality id)
    doctors: list  # user ids
    managers: list  # user ids of the 責任者 (one per institution)
    keys: list  # (access_key, municipality id) of sampled documents
    patients: list  # (kana, birth date, municipality id) of sampled patients with a document the municipality sees
    biggest_muni: int


def weighted_munis(munis):
    city_by_pref = {}
    for m in munis:
        if m.kind == "designated_city":
            city_by_pref.setdefault(m.prefecture_no, 0)
            city_by_pref[m.prefecture_no] += CITY_POPULATION.get(m.name, 80)
    out = []
    for m in munis:
        if m.kind == "designated_city":
            weight = CITY_POPULATION.get(m.name, 80)
        else:
            weight = PREFECTURE_POPULATION[int(m.prefecture_no) - 1] - city_by_pref.get(m.prefecture_no, 0)
        out.append((m.id, m.code, m.name, m.prefecture_no, max(weight, 10)))
    return out


def generate_reference(cur, rng, munis, n_institutions, n_doctors):
    world = World()
    world.munis = munis
    muni_cum = list(itertools.accumulate(m[4] for m in munis))
    now = datetime.now(timezone.utc)

    # Institutions: a municipality by population, a size by Pareto (a few university hospitals, many clinics).
    institutions, sizes, codes = [], [], set()
    for i in range(1, n_institutions + 1):
        muni = munis[bisect.bisect_left(muni_cum, rng.random() * muni_cum[-1])]
        code = None
        while code is None or code in codes:
            code = f"{int(muni[3]):02d}1{rng.randrange(10**7):07d}"
        codes.add(code)
        institutions.append((i, code, f"見本病院{i:05d}", f"{muni[2]}見本町{i}", muni[0], muni[0]))
        sizes.append(min(rng.paretovariate(1.16), 200.0))
    copy_rows(cur, "institution", ("id", "code", "name", "address", "municipality_id", "shoman_municipality_id"),
              institutions)
    world.institutions = [(row[0], row[4]) for row in institutions]
    inst_muni = {row[0]: row[4] for row in institutions}

    users, memberships, designations = [], [], []

    def user(uid, login, name, role, muni=None, issuing=None):
        users.append((uid, login, name, "ケンサ", None, "", role, "active", 0, DUMMY_HASH, False, None, None, muni,
                      issuing, now, None))

    user(1, "operator", "運営 管理者", "operator_admin")
    world.operator_id = 1
    world.muni_user = {}
    next_id = 2
    for m in munis:
        user(next_id, f"muni{m[1]}", f"{m[2]} 担当", "municipality_user", muni=m[0])
        world.muni_user[m[0]] = next_id
        next_id += 1

    # Doctors: one per institution first (its 責任者), the rest by institution size; 10% with a 兼務先.
    size_cum = list(itertools.accumulate(sizes))
    world.doctors, world.managers = [], []
    doctor_inst, doctor_kind, doctor_weight = {}, {}, {}
    membership_id = 1
    for d in range(n_doctors):
        inst = institutions[d][0] if d < n_institutions else \
            institutions[bisect.bisect_left(size_cum, rng.random() * size_cum[-1])][0]
        uid = next_id
        next_id += 1
        user(uid, f"doc{d:06d}", f"医師{d}", "designated_doctor", issuing=inst_muni[inst])
        memberships.append((membership_id, uid, inst, "primary", d < n_institutions, ""))
        membership_id += 1
        if rng.random() < 0.10:
            other = institutions[rng.randrange(n_institutions)][0]
            if other != inst:
                memberships.append((membership_id, uid, other, "concurrent", False, ""))
                membership_id += 1
        kind = "shoman" if rng.random() < 0.10 else "nanbyo"
        designations.append((len(designations) + 1, uid, kind, f"{d:08d}", date(2024, 4, 1), date(2029, 3, 31)))
        world.doctors.append(uid)
        if d < n_institutions:
            world.managers.append(uid)
        doctor_inst[uid], doctor_kind[uid] = inst, kind
        doctor_weight[uid] = min(rng.paretovariate(1.5), 100.0)

    staff = {}
    for inst, _ in world.institutions:
        uid = next_id
        next_id += 1
        user(uid, f"staff{inst:05d}", f"事務{inst}", "institution_staff", issuing=inst_muni[inst])
        memberships.append((membership_id, uid, inst, "primary", False, ""))
        membership_id += 1
        staff[inst] = uid

    copy_rows(cur, "user_account", ("id", "login_id", "name", "name_kana", "email", "phone", "role", "status",
                                    "failed_logins", "password_hash", "must_change_password", "key_digest",
                                    "key_issued_at", "municipality_id", "issuing_municipality_id", "created_at",
                                    "last_login_at"), users)
    copy_rows(cur, "membership", ("id", "user_id", "institution_id", "kind", "is_manager", "department"),
              memberships)
    copy_rows(cur, "designation", ("id", "user_id", "kind", "number", "valid_from", "valid_until"), designations)
    reset_sequences(cur, ("institution", "user_account", "membership", "designation"))
    return world, dict(inst_muni=inst_muni, doctor_inst=doctor_inst, doctor_kind=doctor_kind,
                       doctor_weight=doctor_weight, staff=staff, n_users=len(users), n_memberships=len(memberships))


def status_for(rng, frac):
    """Newest documents are mostly still with the doctor; older ones mostly completed."""
    r = rng.random()
    if frac > 0.97:
        table = ((0.35, "draft"), (0.70, "finalized"), (0.90, "received"), (1.0, "reviewed"))
    elif frac > 0.90:
        table = ((0.08, "draft"), (0.20, "finalized"), (0.50, "received"), (0.80, "reviewed"), (1.0, "completed"))
    else:
        table = ((0.01, "draft"), (0.03, "finalized"), (0.05, "received"), (0.10, "reviewed"), (1.0, "completed"))
    return next(status for limit, status in table if r < limit)


def generate_documents(conn, app, rng, world, ref, n, samples, chunk=50_000, progress=sys.stdout.isatty()):
    """COPY n documents; fills world.keys and world.patients with samples for the measurements."""
    from sqlalchemy import select
    from models.masters import NanbyoDisease, ShomanDisease
    from nanbyo import formdefs
    from nanbyo.content_rules import age_on
    from nanbyo.crypto import keyring, patient_search_value
    from nanbyo.documents import ACCESS_KEY_ALPHABET, ACCESS_KEY_LENGTH, patient_key
    from nanbyo.extensions import db

    ring = keyring(app)
    nanbyo = db.session.execute(select(NanbyoDisease.id, NanbyoDisease.notification_no)
                                .where(NanbyoDisease.is_subtype.is_(False)).order_by(NanbyoDisease.id)).all()
    shoman = db.session.execute(select(ShomanDisease.id, ShomanDisease.shoman_code).order_by(ShomanDisease.id)).all()
    db.session.rollback()
    diseases = {"nanbyo": nanbyo, "shoman": shoman}
    # A few diseases are common (パーキンソン病, 潰瘍性大腸炎, ...): Zipf over a shuffled master.
    disease_cum = {}
    for kind, rows in diseases.items():
        rng.shuffle(rows)
        disease_cum[kind] = list(itertools.accumulate(1 / (r + 1) for r in range(len(rows))))
    form_codes = {}

    def form_code(kind, key):
        if (kind, key) not in form_codes:
            form_codes[kind, key] = formdefs.definition_for(kind, key).code
        return form_codes[kind, key]

    # Who writes each document, where it goes.
    t0 = time.perf_counter()
    doctors = world.doctors
    weight_cum = list(itertools.accumulate(ref["doctor_weight"][d] for d in doctors))
    muni_cum = list(itertools.accumulate(m[4] for m in world.munis))
    author = [doctors[bisect.bisect_left(weight_cum, rng.random() * weight_cum[-1])] for _ in range(n)]
    muni = []
    for a in author:
        if rng.random() < 0.85:
            muni.append(ref["inst_muni"][ref["doctor_inst"][a]])
        else:
            muni.append(world.munis[bisect.bisect_left(muni_cum, rng.random() * muni_cum[-1])][0])

    # Patients: within each municipality, documents taken in random order in groups of 1-5 (mean 3).
    by_muni = {}
    for i, m in enumerate(muni):
        by_muni.setdefault(m, []).append(i)
    patient_of = [0] * n
    patients = []  # (family index, given index, birth ordinal, muni)
    for m, idx in by_muni.items():
        rng.shuffle(idx)
        pos = 0
        while pos < len(idx):
            size = rng.choices((1, 2, 3, 4, 5), (15, 20, 30, 20, 15))[0]
            pid = len(patients)
            first = idx[pos]
            child = ref["doctor_kind"][author[first]] == "shoman"
            age_days = rng.randrange(365, 17 * 365) if child else rng.randrange(20 * 365, 90 * 365)
            patients.append((rng.randrange(len(FAMILY)), rng.randrange(len(GIVEN)),
                             date.today().toordinal() - age_days, m))
            for i in idx[pos:pos + size]:
                patient_of[i] = pid
            pos += size
    plaintexts, indexes = [], []
    for fam, giv, birth, m in patients:
        family, given = FAMILY[fam], GIVEN[giv]
        birth_date = date.fromordinal(birth)
        plaintexts.append(json.dumps({
            "family_name": family[0], "given_name": given[0], "family_kana": family[1], "given_kana": given[1],
            "sex": given[2], "birth_date": birth_date.isoformat(), "postal_code": "1000001",
            "address": "見本県見本市見本町1-2-3", "insurance_kind": "national", "insurer_number": "123456",
        }, ensure_ascii=False, sort_keys=True).encode())
        indexes.append(ring.blind_index(patient_search_value(family[1] + given[1], birth_date)))
    plan_s = time.perf_counter() - t0

    # The rows, COPY'd in chunks.
    keys_seen = set()
    start = datetime.now(timezone.utc) - timedelta(days=730)
    span = timedelta(days=730)
    sample_every = max(1, n // (samples * 4))
    world.keys, world.patients = [], []
    counts = {}
    t1 = time.perf_counter()
    encrypt_s = 0.0
    with conn.cursor() as cur:
        for lo in range(0, n, chunk):
            rows = []
            for i in range(lo, min(n, lo + chunk)):
                doc_id = i + 1
                frac = i / n
                a = author[i]
                inst = ref["doctor_inst"][a]
                kind = ref["doctor_kind"][a]
                d_id, d_key = diseases[kind][bisect.bisect_left(disease_cum[kind],
                                                                rng.random() * disease_cum[kind][-1])]
                status = status_for(rng, frac)
                created = start + span * frac + timedelta(seconds=rng.randrange(3600))
                written = created.date()
                uid = f"{rng.getrandbits(128):032x}"
                pid = patient_of[i]
                e0 = time.perf_counter()
                cipher = ring.encrypt(plaintexts[pid], f"document:{uid}".encode())
                encrypt_s += time.perf_counter() - e0
                key = finalized_at = received_at = received_by = reviewed_at = completed_at = None
                review_result = valid_from = valid_until = app_received = None
                if status != "draft":
                    while key is None or key in keys_seen:
                        key = "".join(rng.choices(ACCESS_KEY_ALPHABET, k=ACCESS_KEY_LENGTH))
                    keys_seen.add(key)
                    finalized_at = created + timedelta(hours=rng.randrange(1, 72))
                if status in ("received", "reviewed", "completed"):
                    received_at = finalized_at + timedelta(days=rng.randrange(1, 30))
                    received_by = world.muni_user[muni[i]]
                    app_received = received_at.date()
                if status in ("reviewed", "completed"):
                    reviewed_at = received_at + timedelta(days=rng.randrange(7, 60))
                    review_result = rng.choices(("approved", "rejected", "pending"), (90, 7, 3))[0]
                    if review_result == "approved":
                        valid_from, valid_until = written, written + timedelta(days=365)
                if status == "completed":
                    completed_at = reviewed_at + timedelta(days=rng.randrange(1, 14))
                    if review_result == "pending":
                        review_result = "approved"
                        valid_from, valid_until = written, written + timedelta(days=365)
                created_by = ref["staff"][inst] if rng.random() < 0.2 else a
                counts[status] = counts.get(status, 0) + 1
                rows.append((
                    doc_id, uid, kind, rng.choices(("new", "renewal", "change"), (30, 65, 5))[0],
                    form_code(kind, d_key), d_id if kind == "nanbyo" else None, d_id if kind == "shoman" else None,
                    cipher, indexes[pid], written - timedelta(days=rng.randrange(0, 3650)), written, written, "{}",
                    a, created_by, inst, muni[i], status, key, created,
                    completed_at or reviewed_at or received_at or finalized_at or created,
                    finalized_at, received_at, received_by, reviewed_at, completed_at,
                    "", "", app_received, None if received_at is None else rng.random() < 0.8, review_result,
                    valid_from, valid_until, "", "", 1, GIVEN[patients[pid][1]][2],
                    age_on(date.fromordinal(patients[pid][2]), written), patient_key(indexes[pid])))
                if i % sample_every == 0:
                    if key is not None:
                        world.keys.append((key, muni[i]))
                    if received_at is not None:
                        fam, giv, birth, m = patients[pid]
                        world.patients.append((FAMILY[fam][1] + GIVEN[giv][1], date.fromordinal(birth), m))
            copy_rows(cur, "document", DOC_COLUMNS, rows)
            conn.commit()
            if progress:
                done = min(n, lo + chunk)
                rate = done / (time.perf_counter() - t1)
                print(f"  documents {done:>9,} / {n:,}  {rate:8,.0f} rows/s", end="\r", flush=True)
        reset_sequences(cur, ("document",))
    conn.commit()
    if progress:
        print(" " * 60, end="\r")
    copy_s = time.perf_counter() - t1
    return dict(plan_s=plan_s, copy_s=copy_s, encrypt_s=encrypt_s, counts=counts, patients=len(patients),
                by_muni={m: len(idx) for m, idx in by_muni.items()})


# --- measurements -------------------------------------------------------------------------------------------------

def list_statement(user):
    """The documents list view's query, page 1 (Flask-Admin get_list with DocumentView's settings)."""
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload
    from models.documents import Document
    from nanbyo import access
    from views.documents import DocumentView
    stmt = select(Document).where(access.row_filter(user, Document, "read"))
    for attr in DocumentView.column_select_related_list:
        stmt = stmt.options(joinedload(attr))
    return stmt.order_by(Document.id.desc()).limit(DocumentView.page_size)


def lookup_statement(user, key):
    """nanbyo.documents.lookup_key's query."""
    from sqlalchemy import select
    from models.documents import Document
    from nanbyo.document_codes import KEY_LOOKUP_STATUSES
    return select(Document).where(Document.access_key == key, Document.municipality_id == user.municipality_id,
                                  Document.status.in_(KEY_LOOKUP_STATUSES))


def search_statement(user, kana, birth):
    """The patient search view's query (DocumentView.patient_search_view)."""
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload
    from models.documents import Document
    from nanbyo import access, documents
    from views.documents import SEARCH_LIMIT
    return (select(Document).where(access.row_filter(user, Document, "read"))
            .options(joinedload(Document.institution), joinedload(Document.author), joinedload(Document.municipality))
            .where(documents.patient_criterion(kana, birth)).order_by(Document.id.desc()).limit(SEARCH_LIMIT))


def explain(session, stmt):
    from sqlalchemy import text
    sql = str(stmt.compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}))
    plan = [r[0] for r in session.execute(text("EXPLAIN " + sql))]
    session.rollback()
    return plan


def timed_samples(session, statements, warmup):
    """ms per statement (execute + ORM objects), each followed by rollback + expunge as at a request's end."""
    times, rows = [], 0
    gc.collect()
    gc.disable()  # a collection pause is Python's, not the query's
    try:
        for n, stmt in enumerate(statements):
            t0 = time.perf_counter()
            result = session.execute(stmt).all()
            elapsed = (time.perf_counter() - t0) * 1000
            session.expunge_all()
            session.rollback()
            if n >= warmup:
                times.append(elapsed)
                rows += len(result)
    finally:
        gc.enable()
    return sorted(times), rows / max(1, len(times))


def timed_sql(session, statements, warmup):
    """ms per statement as bare SQL through the psycopg cursor (no ORM): the database's share of the time."""
    dialect = session.get_bind().dialect
    compiled = [stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}) for stmt in statements]
    times = []
    gc.collect()
    gc.disable()
    try:
        with session.connection().connection.driver_connection.cursor() as cur:
            for n, c in enumerate(compiled):
                t0 = time.perf_counter()
                cur.execute(c.string, c.params)
                cur.fetchall()
                if n >= warmup:
                    times.append((time.perf_counter() - t0) * 1000)
    finally:
        gc.enable()
        session.rollback()
    return sorted(times)


def measure(app, world, n_samples, warmup, rng):
    from sqlalchemy import select, text
    from sqlalchemy.orm import selectinload
    from models.accounts import User
    from nanbyo.extensions import db

    session = db.session
    total = n_samples + warmup
    n_docs = session.execute(text("SELECT max(id) FROM document")).scalar()

    def users(ids):
        wanted = set(ids)
        loaded = session.execute(select(User).where(User.id.in_(wanted))
                                 .options(selectinload(User.memberships))).scalars().all()
        return {u.id: u for u in loaded}

    muni_users = users(world.muni_user.values())
    by_muni = {u.municipality_id: u for u in muni_users.values()}
    doctor_ids = [rng.choice(world.doctors) for _ in range(total)]
    doctors = users(doctor_ids)
    manager_ids = [rng.choice(world.managers) for _ in range(total)]
    managers = users(manager_ids)
    operator = users([world.operator_id])[world.operator_id]
    assert all(m.is_manager for m in managers.values())

    pk = text("SELECT * FROM document WHERE id = :id")
    keys = [rng.choice(world.keys) for _ in range(total)]
    patients = [rng.choice(world.patients) for _ in range(total)]
    biggest = by_muni[world.biggest_muni]
    cases = [
        ("baseline: SELECT * WHERE id = :random", [pk.bindparams(id=rng.randint(1, n_docs)) for _ in range(total)]),
        ("list: municipality user (random)", [list_statement(rng.choice(list(muni_users.values())))
                                               for _ in range(total)]),
        (f"list: municipality user ({biggest.municipality.name})", [list_statement(biggest)] * total),
        ("list: designated doctor (random)", [list_statement(doctors[i]) for i in doctor_ids]),
        ("list: institution 責任者 (random)", [list_statement(managers[i]) for i in manager_ids]),
        ("list: operator (unscoped)", [list_statement(operator)] * total),
        ("key lookup (existing keys)", [lookup_statement(by_muni[m], k) for k, m in keys]),
        ("patient search (blind index)", [search_statement(by_muni[m], kana, birth) for kana, birth, m in patients]),
    ]
    plans = [(name, explain(session, stmts[warmup])) for name, stmts in cases]
    session.expunge_all()
    session.rollback()

    results = []
    for name, stmts in cases:
        times, avg_rows = timed_samples(session, stmts, warmup)
        results.append((name, times, avg_rows, timed_sql(session, stmts, warmup)))
    return results, plans


# --- report -------------------------------------------------------------------------------------------------------

def report(results, plans):
    base_p95 = percentile(results[0][1], 95)
    header = (f"{'measurement':44} {'n':>4} {'rows':>5} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} "
              f"{'p95/base':>8} | {'SQL p50':>7} {'SQL p95':>7} {'SQL p99':>7}")
    print(header)
    print("-" * len(header))
    warnings = []
    seq = {name for name, plan in plans if any("Seq Scan on document" in line for line in plan)}
    for name, times, avg_rows, sql in results:
        p50, p95, p99 = (percentile(times, p) for p in (50, 95, 99))
        flags = []
        if p95 > P95_LIMIT_MS:
            flags.append(f"p95 > {P95_LIMIT_MS:.0f} ms")
        if name in seq:
            flags.append("Seq Scan on document")
        if flags:
            warnings.append(f"WARN {name}: {', '.join(flags)}")
        print(f"{pad(name, 44)} {len(times):4d} {avg_rows:5.1f} {p50:7.2f} {p95:7.2f} {p99:7.2f} {times[-1]:7.2f} "
              f"{p95 / base_p95:7.1f}x | {percentile(sql, 50):7.2f} {percentile(sql, 95):7.2f} "
              f"{percentile(sql, 99):7.2f}{'  WARN' if flags else ''}", flush=True)
    print("\nrows = rows returned per sample (average). p50..max: the statement through the ORM as the view runs it "
          "(round trip + psycopg + building the objects); p95/base = that p95 over the baseline's p95. SQL: the same "
          "SQL and values through a bare psycopg cursor, fetchall (the database's share).")
    print("\nPlans (EXPLAIN of each measurement's first timed sample, literal values):")
    for name, plan in plans:
        flag = "  WARN: Seq Scan on document" if name in seq else ""
        print(f"\n== {name}{flag}")
        for line in plan:
            print(f"   {line}")
    print()
    for w in warnings:
        print(w)
    if not warnings:
        print(f"OK: no Seq Scan on document, every p95 under {P95_LIMIT_MS:.0f} ms.")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--institutions", type=int, default=2_000)
    parser.add_argument("--doctors", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=300, help="timed samples per measurement (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed samples first (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=DEFAULT_URL,
                        help=f"a PostgreSQL server URL (default {DEFAULT_URL}): a database of its own is created "
                             "there and dropped at the end")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database (and the instance directory with its key ring) and print where")
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must name a PostgreSQL server (COPY, 1M rows)")
    if args.documents < 1000:
        parser.error("--documents must be at least 1000")
    if args.institutions > args.doctors:
        parser.error("--doctors must be at least --institutions (every institution has a 責任者)")

    tmp = tempfile.mkdtemp(prefix="nanbyo-bench-docs-")
    url = None
    try:
        url = server_database(args.database_url, create=True, prefix="nanbyo_bench_docs")
        app = make_app(url, tmp)
        with app.app_context():
            from nanbyo.extensions import db
            try:
                run(app, args)
            finally:
                db.session.remove()
                db.engine.dispose()
    finally:
        if args.keep and url:
            print(f"\nkept: {url}\n      instance (key ring): {tmp}")
        else:
            if url:
                server_database(args.database_url, create=False, prefix="nanbyo_bench_docs")
            shutil.rmtree(tmp, ignore_errors=True)


def run(app, args):
    from sqlalchemy import select, text
    from models.institutions import Municipality
    from nanbyo.extensions import db

    rng = random.Random(args.seed)
    server = db.session.execute(text("SHOW server_version")).scalar()
    shared = db.session.execute(text("SHOW shared_buffers")).scalar()
    # The 難病 実施主体 (prefectures and 指定都市): the institutions' 所管 and the documents' 提出先.
    munis = weighted_munis(db.session.execute(select(Municipality).where(
        Municipality.kind.in_(("prefecture", "designated_city"))).order_by(Municipality.id)).scalars().all())
    db.session.rollback()
    print(f"nanbyo documents benchmark: {args.documents:,} documents, {args.institutions:,} institutions, "
          f"{args.doctors:,} doctors, {len(munis)} municipalities; PostgreSQL {server} (shared_buffers {shared}), "
          f"{db.engine.url.render_as_string()}, Python {sys.version.split()[0]}", flush=True)

    raw = db.engine.raw_connection()
    try:
        conn = raw.driver_connection
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            world, ref = generate_reference(cur, rng, munis, args.institutions, args.doctors)
        conn.commit()
        ref_s = time.perf_counter() - t0
        gen = generate_documents(conn, app, rng, world, ref, args.documents, args.samples + args.warmup)
        conn.autocommit = True
        t2 = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        vacuum_s = time.perf_counter() - t2
        size = conn.execute("SELECT pg_size_pretty(pg_table_size('document')), "
                            "pg_size_pretty(pg_indexes_size('document'))").fetchone()
        conn.autocommit = False
    finally:
        raw.close()

    n = args.documents
    total_s = ref_s + gen["plan_s"] + gen["copy_s"] + vacuum_s
    print("\nGeneration")
    print(f"  reference data   {ref_s:7.1f} s  {args.institutions:,} institutions, {ref['n_users']:,} users, "
          f"{ref['n_memberships']:,} memberships")
    print(f"  plan             {gen['plan_s']:7.1f} s  authors, municipalities, {gen['patients']:,} patients "
          f"({n / max(1, gen['patients']):.2f} documents each), blind indexes")
    print(f"  COPY documents   {gen['copy_s']:7.1f} s  {n / gen['copy_s']:,.0f} rows/s "
          f"(of which AES-GCM {gen['encrypt_s']:.1f} s)")
    print(f"  VACUUM ANALYZE   {vacuum_s:7.1f} s")
    print(f"  total            {total_s:7.1f} s  document table {size[0]}, its indexes {size[1]}")
    status = ", ".join(f"{s} {gen['counts'].get(s, 0) / n:.1%}"
                       for s in ("draft", "finalized", "received", "reviewed", "completed"))
    print(f"  statuses         {status}")
    per_muni = sorted(gen["by_muni"].items(), key=lambda kv: kv[1])
    names = {m[0]: m[2] for m in munis}
    world.biggest_muni = per_muni[-1][0]
    print(f"  per municipality min {per_muni[0][1]:,} ({names[per_muni[0][0]]}), median "
          f"{per_muni[len(per_muni) // 2][1]:,}, max {per_muni[-1][1]:,} ({names[per_muni[-1][0]]})")
    per_inst = sorted(db.session.execute(text(
        "SELECT count(*) FROM document GROUP BY institution_id")).scalars())
    per_author = sorted(db.session.execute(text("SELECT count(*) FROM document GROUP BY author_id")).scalars())
    db.session.rollback()
    print(f"  per institution  median {per_inst[len(per_inst) // 2]:,}, p99 {percentile(per_inst, 99):,}, "
          f"max {per_inst[-1]:,};  per doctor median {per_author[len(per_author) // 2]:,}, "
          f"p99 {percentile(per_author, 99):,}, max {per_author[-1]:,}")
    print(flush=True)

    results, plans = measure(app, world, args.samples, args.warmup, rng)
    report(results, plans)


if __name__ == "__main__":
    main()
