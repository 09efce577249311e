"""The check in a process of its own (nanbyo.xmlio.parallel), as the background job and the CLI import: it gives
what the check in the importing process gives, file by file, hostile files included; a checker that fails stops the
import with the reason; an import stopped half-way leaves no checker running; the checker gets no configuration."""
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from models.documents import Document
from nanbyo import database
from nanbyo.extensions import db
from nanbyo.xmlio import check, importer, parallel, vendor_kit
from nanbyo.xmlio.importer import CREATED, REFUSED, UPDATED, import_uploads
from tests.data.hostile.make import FILES, ZIPS, zipped
from tests.xmlio import samples
from tests.xmlio.test_import import two_documents, world

DAY = vendor_kit.SAMPLE_DAY


def mixed_uploads(tmp_path):
    """Every kind of upload: good documents, a document with problems, hostile files, ZIPs (one read from disk,
    one holding a refused entry), a ZIP with no XML in it."""
    broken = samples.xml(samples.element("nanbyo", "6", written_on=None), vendor_kit.sample_element("shoman",
                                                                                                     "01_01_001"))
    on_disk = tmp_path / "on-disk.zip"
    on_disk.write_bytes(zipped([("a.xml", two_documents()), ("b.xml", FILES["billion_laughs.xml"])]))
    return [("good.xml", two_documents()), ("broken.xml", broken), ("laughs.xml", FILES["billion_laughs.xml"]),
            ("slip.zip", ZIPS["zip_slip.zip"]), ("on-disk.zip", on_disk),
            ("empty.zip", zipped([("readme.txt", b"no XML here")])), ("last.xml", two_documents())]


def test_files_checked_aside_are_those_checked_in_process(tmp_path):
    uploads = mixed_uploads(tmp_path)
    diseases = check.diseases_in()
    here = [checked for name, data in uploads for checked in check.iter_upload(name, data, DAY, diseases)]
    aside = list(parallel.iter_checked(iter(uploads), DAY, diseases))
    assert aside == here  # every problem, line and XPath, and what each document says
    assert [(f.name, f.ok) for f in aside] == [
        ("good.xml", True), ("broken.xml", False), ("laughs.xml", False), ("slip.zip", False),
        ("on-disk.zip/a.xml", True), ("on-disk.zip/b.xml", False), ("empty.zip/readme.txt", False), ("last.xml", True)]
    assert all(a.documents[0].content.definition is h.documents[0].content.definition
               for a, h in zip(aside, here) if a.ok)  # the catalogue's own definition, not a copy


@pytest.fixture
def started(monkeypatch):
    """The processes the test starts (the checkers), as they are started."""
    processes, real_popen = [], subprocess.Popen

    def popen(*args, **kwargs):
        processes.append(real_popen(*args, **kwargs))
        return processes[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)
    return processes


@pytest.mark.parametrize("checkers", [1, 3])
def test_uploads_shared_by_several_checkers_come_back_in_their_order(tmp_path, started, checkers):
    uploads = mixed_uploads(tmp_path) * 2
    diseases = check.diseases_in()
    here = [checked for name, data in uploads for checked in check.iter_upload(name, data, DAY, diseases)]
    assert list(parallel.iter_checked(iter(uploads), DAY, diseases, checkers=checkers)) == here
    assert len(started) == checkers and all(checker.poll() == 0 for checker in started)
    # No more checkers than uploads.
    assert len(list(parallel.iter_checked([("good.xml", two_documents())], DAY, diseases, checkers=3))) == 1
    assert len(started) == checkers + 1


def test_an_import_starts_a_checker_per_core_up_to_a_limit(monkeypatch):
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(2)))
    assert parallel.checker_count() == 2
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert parallel.checker_count() == parallel.MAX_CHECKERS


def test_an_import_checked_aside_writes_what_one_checked_in_process_writes(app, tmp_path):
    w = world()
    uploads = mixed_uploads(tmp_path)
    aside = import_uploads(uploads, w["doctor"], w["hospital"], today=DAY, check_aside=True)
    # The same two documents come in three files (the later ones update them) and once more beside a broken one.
    assert [o.result for o in aside if o.result != REFUSED] == [CREATED, CREATED] + [UPDATED] * 5
    written = {o.document_id for o in aside if o.result != REFUSED}
    # The same files again, checked in process: the same outcomes, each document found again (not a new one).
    here = import_uploads(uploads, w["doctor"], w["hospital"], today=DAY)
    assert [(o.file, o.number, o.result, o.messages) for o in aside if o.result == REFUSED] == \
        [(o.file, o.number, o.result, o.messages) for o in here if o.result == REFUSED]
    assert [o.result for o in here if o.result != REFUSED] == [UPDATED] * 7
    assert {o.document_id for o in here if o.result != REFUSED} == written and len(written) == 2
    assert db.session.execute(select(func.count()).select_from(Document)).scalar() == 2


def test_a_checker_that_fails_stops_the_import_and_says_why(app, monkeypatch):
    w = world()
    monkeypatch.setattr(parallel, "_command", lambda: [sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(parallel.CheckerFailed, match="終了コード 3"):
        import_uploads([("good.xml", two_documents())], w["doctor"], w["hospital"], today=DAY, check_aside=True)
    db.session.rollback()
    assert db.session.execute(select(func.count()).select_from(Document)).scalar() == 0


def test_a_checker_error_comes_back_as_its_traceback():
    # An upload the checker cannot take apart as (name, data): its error, raised in the other process, is told.
    with pytest.raises(parallel.CheckerFailed, match="ValueError: too many values to unpack"):
        list(parallel.iter_checked([("x.xml", b"<documents/>", "extra")], DAY, check.diseases_in()))


def test_an_import_stopped_half_way_leaves_no_checker_running(app, monkeypatch, started):
    w = world()
    failing = iter([("good.xml", two_documents()), ("again.xml", two_documents())])

    def prefetch(self, checked_documents):
        raise RuntimeError("database gone")

    monkeypatch.setattr(importer._Run, "prefetch", prefetch)
    with pytest.raises(RuntimeError, match="database gone"):
        import_uploads(failing, w["doctor"], w["hospital"], today=DAY, check_aside=True)
    assert started and all(checker.poll() is not None for checker in started)


def test_the_checker_gets_no_configuration_of_the_server(app, monkeypatch):
    monkeypatch.setenv("NANBYO_DATABASE_URL", "postgresql://secret@db/nanbyo")
    monkeypatch.setenv("NANBYO_SECRET_KEY", "secret")
    environments = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        environments.append(kwargs["env"])
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    assert list(parallel.iter_checked([("good.xml", two_documents())], DAY, check.diseases_in()))[0].ok
    assert set(environments[0]) <= {"NANBYO_FORMDEFS_DIR", "PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH"}
    assert "secret" not in repr(environments[0])


@pytest.mark.parametrize("ready", [False, True])
def test_no_write_lock_is_held_while_the_import_waits_for_the_checker(app, monkeypatch, ready):
    """When the next file's check is not there yet, the documents written so far are committed before waiting; when
    it is, they go on into the open group (committed every importer.GROUP documents, and at the end)."""
    w = world()
    monkeypatch.setattr(parallel, "_ready", lambda stream: ready)
    commits = []
    real_commit = importer._Run.commit

    def commit(self):
        commits.append((self.files_done, len(self.group), database.is_write_locked()))
        real_commit(self)

    monkeypatch.setattr(importer._Run, "commit", commit)
    uploads = [("a.xml", two_documents()), ("b.xml", two_documents(**{"patient/given_kana": "ジロウ"})),
               ("c.xml", two_documents(**{"patient/given_kana": "サブロウ"}))]
    outcomes = import_uploads(uploads, w["doctor"], w["hospital"], today=DAY, check_aside=True)
    assert [o.result for o in outcomes] == [CREATED] * 6
    if ready:
        assert commits == [(3, 6, True)]  # one group, committed at the end
    else:
        assert commits == [(1, 2, True), (2, 2, True), (3, 2, True)]  # each file's before waiting for the next
    assert not database.is_write_locked()
    assert db.session.execute(select(func.count()).select_from(Document)).scalar() == 6
