"""Importing checked XML documents as drafts (issue 12, part 4): for a doctor or the staff of an institution.

Each file is checked as the check tool checks it (nanbyo.xmlio.check, with the diseases of this server's masters);
then each valid document is matched to this server: the 指定医 by 指定医番号 (a designated doctor of the
institution holding a 指定 the document needs, with the same name), the institution by its code (the uploader's),
and the same rules as the new-document screen (documents.authoring_problems). Its 提出先 is the 実施主体 of the
patient's address, else the institution's.

The same document uploaded again (same institution, 指定医, patient by カナ and 生年月日, disease and 作成年月日) updates
its draft instead of adding one; a document already finalized or received is reported and left as it is.

Documents are committed in groups of GROUP with their log entries ("document_import"), or, with all_or_nothing, every
document of the upload in one unit of work: a single refusal imports nothing. A refused document writes nothing (every
check comes before the first change), so it never takes another with it; and when the database fails on a document,
the documents of its group before it are imported again one by one and committed before the error goes on: what
was imported before a failure stays, as when each document was its own transaction.
"""
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace

from sqlalchemy import select

from models._types import today_jst, utcnow
from models.accounts import Designation, Membership, User
from models.documents import Document
from models.masters import NanbyoDisease, ShomanDisease
from nanbyo import audit, bulk, database, documents, jurisdiction
from nanbyo.document_codes import DRAFT, IMPORT_RESULT_LABELS, NANBYO, SHOMAN
from nanbyo.crypto import keyring, patient_search_value
from nanbyo.extensions import db
from nanbyo.paper import same_name
from nanbyo.roles import DESIGNATED_DOCTOR
from nanbyo.xmlio import check, parallel

CREATED, UPDATED, KEPT, REFUSED = "created", "updated", "kept", "refused"
ARRIVED = "received"  # a paper form, received at its municipality (nanbyo.xmlio.contractor)
WRITTEN = (CREATED, UPDATED, ARRIVED)
GROUP = 250  # documents committed together (one lock, one read of the log chain's tail)
RESULT_LABELS = IMPORT_RESULT_LABELS
ALL_OR_NOTHING_REFUSED = "ほかの書類に問題があるため取り込んでいません（すべて取り込むか何も取り込まない指定）。"


@dataclass
class Outcome:
    """What became of one document (number None: the file as a whole)."""
    file: str
    number: int | None
    line: int | None
    result: str
    document_id: int | None = None
    messages: list = field(default_factory=list)

    @property
    def label(self):
        return RESULT_LABELS[self.result]


def server_diseases() -> dict:
    """{(kind, code): disease} of this server's masters, what the check matches 疾病 against: plain rows (id,
    name_ja, since, the code), not ORM objects, which every commit of the import would expire again."""
    nanbyo = db.session.execute(select(NanbyoDisease.id, NanbyoDisease.name_ja, NanbyoDisease.since,
                                       NanbyoDisease.notification_no).where(NanbyoDisease.is_subtype.is_(False)))
    # Rows as tuples: a mapping made per row (Row._asdict) cost about as much again as the rest of the read.
    out = {(NANBYO, str(no)): SimpleNamespace(id=id_, name_ja=name, since=since, notification_no=no)
           for id_, name, since, no in nanbyo.tuples()}
    shoman = db.session.execute(select(ShomanDisease.id, ShomanDisease.name_ja, ShomanDisease.shoman_code,
                                       ShomanDisease.nando_id))
    out |= {(SHOMAN, code): SimpleNamespace(since=None, id=id_, name_ja=name, shoman_code=code, nando_id=nando)
            for id_, name, code, nando in shoman.tuples() if "-" not in nando}
    return out


def _author(checked, user, institution, known):
    """(author, author's id, problems) of a checked document at `institution`; `known` keeps the answers of this
    import (the id as read once: a commit expires the author, and reading its id again would be a query)."""
    content = checked.content
    number, name = checked.doctor
    needed = documents.doctor_kinds_for(content.kind, content.application_kind)
    if checked.designation:
        needed &= {checked.designation}  # the file says which 指定 the number is: it must be that one
    key = ("author", number, name, frozenset(needed))
    if key not in known:
        author, problems = _find_author(number, name, needed, user, institution)
        known[key] = author, author.id if author is not None else None, problems
    return known[key]


def _find_author(number, name, needed, user, institution):
    candidates = db.session.execute(
        select(User).join(Designation).join(Membership, Membership.user_id == User.id)
        .where(Designation.number == number, Designation.kind.in_(needed), User.role == DESIGNATED_DOCTOR,
               Membership.institution_id == institution.id).distinct()).scalars().all()
    if len(candidates) != 1:
        return None, [f"指定医番号 {number} の指定医がこの医療機関（{institution.name}）に見つかりません。"
                      "指定医番号と書類の種類を確認してください。"]
    author = candidates[0]
    if not same_name(author.name, name):
        return None, [f"指定医番号 {number} の指定医の氏名は登録では「{author.name}」です（XMLは「{name}」）。"]
    if user.role == DESIGNATED_DOCTOR and author.id != user.id:
        return None, ["指定医は自分が作成者の書類だけを取り込めます。"]
    return author, []


def _same_document(content, author_id, institution_id, disease) -> tuple:
    """What makes an upload the same document (see the module's docstring)."""
    patient = content.patient
    return (institution_id, author_id, content.kind, disease.id, content.written_on,
            documents.patient_kana(patient), patient["birth_date"])


def _existing(content, author_id, institution_id, disease, known):
    """The same document, already in the database or written earlier in this import's open unit of work (not yet
    flushed: known holds it). What _Run.prefetch found for the file answers without a query."""
    key = ("document", *_same_document(content, author_id, institution_id, disease))
    if key in known:
        if isinstance(known[key], NewDocument) and known[key].id is not None:  # inserted since: the row now
            known[key] = db.session.get(Document, known[key].id)
        return known[key]
    institution_id, author_id, kind, disease_id, written_on, kana, birth = key[1:]
    if ("fetched", kana, birth) in known:
        return None
    column = Document.nanbyo_disease_id if kind == NANBYO else Document.shoman_disease_id
    return db.session.execute(select(Document).where(
        Document.institution_id == institution_id, Document.author_id == author_id, column == disease_id,
        Document.written_on == written_on, Document.kind == kind,
        documents.patient_criterion(kana, date.fromisoformat(birth))).order_by(Document.id)).scalars().first()


def apply(doc, content, author_id=None, ring=None, patient_index=None):
    """What the XML says, onto the document (the answer to 説明 recorded as the author's, `author_id`: a paper form
    has none). `ring`, `patient_index`: the key ring the patient block is sealed with and its blind index, when the
    caller has them (documents.set_patient)."""
    doc.application_kind = content.application_kind
    doc.form_code, doc.form_version = content.definition.code, content.definition.version
    doc.written_on, doc.diagnosed_on, doc.explained_on = content.written_on, content.diagnosed_on, content.explained_on
    if doc.explanation != content.explanation:
        doc.explanation, doc.explained_at = content.explanation, utcnow()
        doc.explained_by_id = author_id
    doc.items = dict(content.items)
    documents.set_patient(doc, content.patient, ring, patient_index)


def _authority_id(content, institution, known):
    """The 実施主体 (id) a new document is addressed to: that of the patient's address, else the institution's."""
    key = ("authority", content.kind, content.patient.get("address", ""))
    if key not in known:
        municipality = (jurisdiction.authority_for_address(content.kind, key[2])
                        or jurisdiction.institution_authority(institution, content.kind))
        known[key] = municipality.id if municipality is not None else None
    return known[key]


def refused_unless_checked(name, checked) -> Outcome:
    """A document's outcome to be: refused with the check's problems, or (checked ok) refused until it is written."""
    return Outcome(name, checked.number, checked.line, REFUSED, messages=[p.text(name) for p in checked.problems])


@dataclass(frozen=True)
class Ids:
    """What an import reads of its user and institution for every document, read once at its start: each commit
    expires the ORM objects, and reading one again is a query (several a group)."""
    user: int
    institution: int
    institution_code: str

    @classmethod
    def of(cls, user, institution):
        return cls(user.id, institution.id, institution.code)


def _import_one(name, checked, user, institution, today, known, written, ids):
    """The document's outcome; its changes are in the session (not flushed) and (outcome, document) in `written`.
    A refusal changes nothing. `ids`: Ids.of(user, institution)."""
    outcome = refused_unless_checked(name, checked)
    if not checked.ok:
        return outcome
    content = checked.content
    if checked.scans:
        outcome.messages = ["<scan> は紙の書類のデータ（運営主体が取り込む、外部委託事業者のXML）だけに書きます。"
                            "院内システムのXMLからは外してください。"]
        return outcome
    if checked.institution_code != ids.institution_code:
        outcome.messages = [f"医療機関コード {checked.institution_code} は取込先の医療機関（{ids.institution_code}）と違います。"]
        return outcome
    with db.session.no_autoflush:  # the group's documents are inserted together when it is committed
        author, author_id, problems = _author(checked, user, institution, known)
        if not problems:
            key = ("authoring", content.kind, content.application_kind, author_id)
            if key not in known:  # the same answer for every document of the author and kinds in this import
                known[key] = documents.authoring_problems(user, content.kind, content.application_kind, author,
                                                          institution, today)
            problems = list(known[key])
        if problems:
            outcome.messages = problems
            return outcome
        disease = content.disease
        existing = _existing(content, author_id, ids.institution, disease, known)
        authority_id = _authority_id(content, institution, known) if existing is None else None
    if existing is not None and existing.status != DRAFT:
        outcome.result, outcome.document_id = KEPT, existing.id
        outcome.messages = ["同じ書類が既に確定・受付されているため、変更していません。"]
        return outcome
    doc = existing
    if doc is None:
        doc = NewDocument(kind=content.kind, author_id=author_id, created_by_id=ids.user,
                          institution_id=ids.institution, municipality_id=authority_id, status=DRAFT)
        if content.kind == SHOMAN:
            doc.shoman_disease_id = disease.id
        else:
            doc.nanbyo_disease_id = disease.id
        known[("document", *_same_document(content, author_id, ids.institution, disease))] = doc
    patient, ring = content.patient, known[RING]  # the blind index, as _Run.prefetch worked it out:
    index = known.get(("index", ring.index_active, documents.patient_kana(patient), patient.get("birth_date")))
    apply(doc, content, author_id, ring, index)
    outcome.result = UPDATED if existing is not None else CREATED
    written.append((outcome, doc))
    return outcome


RING = ("keyring",)  # in `known`: the key ring of this import's unit of work


class NewDocument:
    """A new draft until its group is inserted: the columns apply() and documents.set_patient() write, as plain
    attributes. The group's drafts go in with one statement (_insert_new): the ORM's unit of work, an INSERT per
    row on SQLite, cost more than the rest of the import."""
    COLUMNS = ("uid", "kind", "application_kind", "form_code", "form_version", "nanbyo_disease_id",
               "shoman_disease_id", "patient_cipher", "patient_index", "patient_sex", "patient_age", "patient_key",
               "diagnosed_on", "written_on", "explained_on", "explanation", "explained_by_id", "explained_at",
               "items", "author_id", "created_by_id", "institution_id", "municipality_id", "status")

    def __init__(self, **values):
        self.id = None
        self.__dict__.update(dict.fromkeys(self.COLUMNS), **values)

    def row(self) -> dict:
        return {"id": self.id} | {name: getattr(self, name) for name in self.COLUMNS}


def _number_new(docs):
    """Give new drafts (NewDocument) their ids before they are inserted: their log entries, which name them, are
    then worked out while the database inserts the drafts (audit.record_many's `first`)."""
    if docs and not database.is_write_locked():  # past the ORM's flush guard: the same rule, said here
        raise database.UnitOfWorkError("new drafts are inserted after begin_write(), with their log entries")
    for doc, id_ in zip(docs, bulk.next_ids(db.session.connection(), Document.__table__, len(docs))):
        doc.id = id_


def import_uploads(uploads, user, institution, *, all_or_nothing=False, today=None, progress=None,
                   collect=None, check_aside=False) -> list[Outcome]:
    """Import the documents of `uploads` ([(file name, bytes or path)]: XML files or ZIPs of them) as `user` at
    `institution`, or (institution None) as the operator's contractor data of paper forms (nanbyo.xmlio.contractor).
    Returns one Outcome per document, and one per file refused as a whole.

    progress(files_done, outcomes), if given, is called as the import goes (after a file, after a group is
    committed) with no unit of work of the import's open, except in all-or-nothing mode, where it is called after
    each file with the one unit of work still open.
    `uploads` may be an iterator (each file read as it is reached); `collect`, a list the outcomes are added to as
    they come (what a caller keeps when the import stops half-way). check_aside: the files are checked in
    processes of their own, ahead of the writes (nanbyo.xmlio.parallel), as the background job and the CLI do."""
    today = today or today_jst()
    outcomes = [] if collect is None else collect
    run = _Run(user, institution, today, all_or_nothing, outcomes, progress)
    names = []
    diseases = server_diseases()
    uploads = _noting_names(uploads, names)
    if check_aside:
        checked_files = parallel.iter_checked(uploads, today, diseases, before_waiting=run.pause)
    else:
        checked_files = (checked for name, data in uploads
                         for checked in check.iter_upload(name, data, today, diseases))
    with closing(checked_files):  # stopped half-way (a database failure): the checking process stops too
        for checked_file in checked_files:
            run.files_done += 1
            if checked_file.problems:
                outcomes.append(Outcome(checked_file.name, None, None, REFUSED,
                                        messages=[p.text(checked_file.name) for p in checked_file.problems]))
            else:
                run.prefetch(checked_file.documents)
                for checked in checked_file.documents:
                    outcomes.append(run.document(checked_file.name, checked))
            if all_or_nothing or not run.group:
                run.report()
    run.finish()
    run.report()
    # What the upload came to, refusals included: one entry for the whole upload.
    where = {"institution": institution.code} if institution is not None else {"paper": True}
    audit.record("document_import_batch", target_type="document", actor=user,
                 result="success" if not any(o.result == REFUSED for o in outcomes) else "failure",
                 data={"files": names[:50]} | where | counts(outcomes))
    return outcomes


def _noting_names(uploads, names):
    """`uploads`, each name added to `names` as it is read (the log entry names the files)."""
    for name, data in uploads:
        names.append(name)
        yield name, data


class _Run:
    """The units of work of one import: groups of GROUP written documents, or one for all (all_or_nothing)."""

    def __init__(self, user, institution, today, all_or_nothing, outcomes, progress):
        self.user, self.institution, self.today, self.all_or_nothing = user, institution, today, all_or_nothing
        self.outcomes, self.progress, self.files_done, self.reported = outcomes, progress, 0, None
        self.known = {RING: keyring()}  # authors and 実施主体 already looked up in this import
        self.ids = Ids.of(user, institution) if institution is not None else None
        self.actor = audit.actor_as_read(user)  # who the log entries name
        self.group, self.written = [], []  # the open unit of work's documents: (name, checked), (outcome, doc)

    def prefetch(self, checked_documents):
        """The file's documents already in the database, in one query rather than one per document (_existing):
        those of the institution with any of the file's patients. What was known of the file before goes, except
        the documents written in the open unit of work. Each patient's blind indexes are kept for the file's
        documents (("index", index key, kana, birth): sealing a document needs the active key's)."""
        if self.institution is None:
            return  # a paper form is known by its scans (contractor.import_one)
        pending = {id(doc) for _outcome, doc in self.written}
        self.known = {key: value for key, value in self.known.items()
                      if key[0] not in ("document", "fetched", "index")
                      or (key[0] == "document" and id(value) in pending)}
        patients = {}
        ring = keyring()  # as it is now: a row re-indexed under a key added since the group began is found too
        for checked in checked_documents:
            patient = checked.content.patient if checked.ok and checked.content is not None else None
            if not patient or not patient.get("birth_date"):
                continue
            kana, birth = documents.patient_kana(patient), patient["birth_date"]
            value = patient_search_value(kana, date.fromisoformat(birth))
            for key_id in ring.index_keys:
                index = self.known[("index", key_id, kana, birth)] = ring.blind_index(value, key_id)
                patients[index] = (kana, birth)
        if not patients:
            return
        with db.session.no_autoflush:
            # Found by the patients' index; the institution compared as an expression (+ 0), which no index serves:
            # SQLite, and PostgreSQL while a table filled by an import has no statistics yet, would otherwise read
            # every document of the institution for each file.
            found = sorted((doc for among in database.among(Document.patient_index, patients)
                            for doc in db.session.execute(select(Document).where(
                                among, Document.institution_id + 0 == self.ids.institution)).scalars()),
                           key=lambda doc: doc.id)
        for kana, birth in patients.values():
            self.known[("fetched", kana, birth)] = True
        for doc in found:
            kana, birth = patients[doc.patient_index]
            disease_id = doc.nanbyo_disease_id if doc.kind == NANBYO else doc.shoman_disease_id
            self.known.setdefault(("document", doc.institution_id, doc.author_id, doc.kind, disease_id,
                                   doc.written_on, kana, birth), doc)  # the oldest, as _existing's query

    def pause(self):
        """The import waits for the next file's check: its open group is committed first, so that no write lock is
        held while nothing is written (all or nothing keeps its one unit of work)."""
        if not self.all_or_nothing and self.group:
            self.commit()
            self.report()

    def report(self):
        if self.progress is not None and self.reported != (self.files_done, len(self.outcomes)):
            self.reported = (self.files_done, len(self.outcomes))
            self.progress(self.files_done, self.outcomes)

    def _import(self, name, checked):
        database.begin_write()  # a no-op while the unit of work is open
        if self.institution is None:
            from nanbyo.xmlio import contractor
            return contractor.import_one(name, checked, self.user, self.today, self.known, self.written)
        return _import_one(name, checked, self.user, self.institution, self.today, self.known, self.written, self.ids)

    def document(self, name, checked) -> Outcome:
        try:
            outcome = self._import(name, checked)
        except Exception:
            if not self.all_or_nothing:
                self._again_one_by_one()
            raise
        if outcome.result in WRITTEN:
            self.group.append((name, checked))
            if not self.all_or_nothing and len(self.group) >= GROUP:
                self.commit()
                self.outcomes.append(outcome)  # counted in the progress; the caller adds it for good
                try:
                    self.report()
                finally:
                    self.outcomes.pop()
        return outcome

    def commit(self):
        """Insert the group's documents (one statement per table), then their log entries; commit. When the
        database refuses the group, its documents are imported again one by one (the one it refuses raises)."""
        try:
            self._commit_group()
        except Exception:
            if self.all_or_nothing or len(self.group) <= 1:
                raise
            self._again_one_by_one()

    def _commit_group(self):
        if self.written:
            new = list({id(doc): doc for _outcome, doc in self.written if isinstance(doc, NewDocument)}.values())
            db.session.flush()  # drafts updated, paper forms: before the new drafts are numbered after the largest id
            _number_new(new)
            entries = []
            action = "document_import" if self.institution is not None else "document_paper_import"
            for (name, checked), (outcome, doc) in zip(self.group, self.written):
                outcome.document_id = doc.id
                data = {"file": name, "number": checked.number, "result": outcome.result}
                entries.append({"action": action, "target_type": "document", "target_id": str(doc.id),
                                "data": data | ({"scans": checked.scans} if checked.scans else {})})
            audit.record_many(entries, actor=self.actor, first=(Document.__table__, [doc.row() for doc in new]))
        if database.is_write_locked():
            db.session.commit()
        self.group, self.written = [], []
        self.known[RING] = keyring()  # a key rotated meanwhile is used from the next group on

    def _again_one_by_one(self):
        """The database failed inside the group: its documents, each in a unit of its own, up to the one it fails
        on again."""
        db.session.rollback()
        group, written = self.group, self.written
        self.group, self.written = [], []
        # What was known of documents may have been rolled back with the group: asked again, one by one.
        self.known = {key: value for key, value in self.known.items() if key[0] not in ("document", "fetched")}
        for (name, checked), (outcome, _doc) in zip(group, written):
            again = self._import(name, checked)
            self.group.append((name, checked))
            self.commit()
            outcome.__dict__.update(again.__dict__)

    def finish(self):
        if self.all_or_nothing and any(o.result == REFUSED for o in self.outcomes):
            db.session.rollback()
            for outcome in self.outcomes:
                if outcome.result in WRITTEN:
                    outcome.result, outcome.document_id = REFUSED, None
                    outcome.messages = [ALL_OR_NOTHING_REFUSED]
            return
        self.commit()


def counts(outcomes) -> dict:
    """{result: number of outcomes} for every result, none left out."""
    return {result: sum(o.result == result for o in outcomes) for result in RESULT_LABELS}


def documents_in(outcomes) -> int:
    """How many of the outcomes are of documents (not of files refused as a whole)."""
    return sum(o.number is not None for o in outcomes)
