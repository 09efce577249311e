"""The chain over time: signed checkpoints, incremental audit-verify, the chain state on the log screen, and
audit-archive / audit-verify-archive (nanbyo.audit_chain)."""
import gzip
import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from models.audit import AuditCheckpoint, OperationLog
from nanbyo import audit, audit_chain
from nanbyo.extensions import db
from tests.helpers import gen_user, login
from tests import test_audit
from tests.test_audit import dialect

attacker = test_audit.attacker  # the fixture: SQL run by someone who got the append-only triggers out of the way


def add_entries(n, when=None, monkeypatch=None):
    """n entries (at `when`, UTC, if given); returns their seqs."""
    if when is not None:
        monkeypatch.setattr(audit, "utcnow", lambda: when)
    seqs = [audit.record("update", target_type="test", target_id=f"t{i}").seq for i in range(n)]
    if when is not None:
        monkeypatch.undo()
    return seqs


def run(runner, *args):
    db.session.commit()  # nothing of the test's own transaction may hide from (or block) the command
    return runner.invoke(args=["nanbyo", *args])


def seqs_in_table():
    db.session.expire_all()
    return list(db.session.execute(select(OperationLog.seq).order_by(OperationLog.seq)).scalars())


def checkpoints(kind):
    db.session.expire_all()
    return list(db.session.execute(select(AuditCheckpoint).filter_by(kind=kind).order_by(AuditCheckpoint.id))
                .scalars())


# --- incremental audit-verify ---------------------------------------------------------------------------------------

def test_verify_records_a_signed_checkpoint_and_the_next_run_reads_only_what_follows(app, runner):
    add_entries(5)
    first = run(runner, "audit-verify")
    assert first.exit_code == 0, first.output
    [checkpoint] = checkpoints("verify")
    assert (checkpoint.seq, checkpoint.result, checkpoint.entries) == (5, "intact", 5)
    assert checkpoint.entry_hash in first.output and audit_chain.is_signed(checkpoint)

    add_entries(3)
    second = run(runner, "audit-verify")
    assert second.exit_code == 0, second.output
    latest = checkpoints("verify")[-1]
    assert (latest.seq, latest.entries) == (8, 3)  # only the three new entries were read
    assert "seq=6 から 3 件を検証" in second.output

    full = run(runner, "audit-verify", "--full")
    assert full.exit_code == 0 and checkpoints("verify")[-1].entries == 8


def test_batches_read_the_same_chain_as_one_walk(app):
    add_entries(7)
    result = audit_chain.verify_chain(full=True, batch_size=2)
    assert result.intact and (result.checkpoint.seq, result.checkpoint.entries) == (7, 7)
    assert result.checkpoint.entry_hash == audit.verify()[2]


def test_tampering_after_the_checkpoint_is_found_incrementally_and_before_it_with_full(app, runner, attacker):
    add_entries(4)
    assert run(runner, "audit-verify").exit_code == 0
    add_entries(2)
    attacker("UPDATE operation_log SET actor_login = 'mallory' WHERE seq = 6")
    result = run(runner, "audit-verify")
    assert result.exit_code == 1 and "seq=6" in result.output
    latest = checkpoints("verify")[-1]
    assert latest.result == "broken" and "seq=6" in latest.problem

    # An entry before the last good checkpoint: the nightly run does not read it, --full does.
    attacker("UPDATE operation_log SET target_id = 'x' WHERE seq = 2")
    assert "seq=2" not in run(runner, "audit-verify").output
    full = run(runner, "audit-verify", "--full")
    assert full.exit_code == 1 and "seq=2" in full.output and "seq=6" in full.output


def test_the_checkpoints_own_entry_changed_or_cut_off_is_found(app, runner, attacker):
    add_entries(4)
    assert run(runner, "audit-verify").exit_code == 0
    attacker("UPDATE operation_log SET result = 'failure' WHERE seq = 4")
    result = run(runner, "audit-verify")
    assert result.exit_code == 1 and "検証済みのエントリ seq=4" in result.output

    # Cutting the tail off below a verified checkpoint: the chain alone could not see it, the checkpoint does.
    attacker("DELETE FROM operation_log WHERE seq >= 3")
    result = run(runner, "audit-verify")
    assert result.exit_code == 1 and "検証済みのエントリ seq=4 がありません" in result.output


def test_a_forged_or_altered_checkpoint_is_reported_and_not_trusted(app, runner, attacker):
    add_entries(3)
    assert run(runner, "audit-verify").exit_code == 0
    add_entries(2)
    attacker("UPDATE operation_log SET target_id = 'x' WHERE seq = 5")
    # Someone with database access writes a checkpoint past the altered entry, copying a real signature.
    real = checkpoints("verify")[0]
    db.session.add(AuditCheckpoint(kind="verify", seq=5, entry_hash=real.entry_hash, created_at=real.created_at,
                                   result="intact", problem="", entries=5, archive_file="", archive_sha256="",
                                   signature=real.signature))
    db.session.commit()
    result = run(runner, "audit-verify")
    assert result.exit_code == 1
    assert "seq=5 まで）の署名が一致しません" in result.output and "seq=5 (id=" in result.output


# --- the chain state on the log screen ------------------------------------------------------------------------------

def chain_box(client):
    page = client.get("/admin/operation_log/").get_data(as_text=True)
    start = page.index('id="chain-state"')
    return page[start:page.index("</div></div>", start)]


def test_the_log_screen_shows_entries_last_check_and_its_result(app, client, runner, attacker):
    operator = gen_user("operator_admin")
    login(client, operator)
    box = chain_box(client)
    assert "エントリ 1 件" in box and "未検証" in box  # the login

    assert run(runner, "audit-verify").exit_code == 0
    box = chain_box(client)
    assert "正常" in box and "番号 1 まで" in box and "未検証" not in box

    add_entries(2)
    assert "未検証 2 件" in chain_box(client)

    attacker("UPDATE operation_log SET data = CAST(:d AS {})".format("json" if dialect() == "postgresql" else "TEXT")
             + " WHERE seq = 2", d='{"x": 1}')
    run(runner, "audit-verify")
    box = chain_box(client)
    assert "異常" in box and "seq=2" in box and "改ざん" in box

    attacker("UPDATE audit_checkpoint SET result = 'intact'")
    assert "署名が一致しません" in chain_box(client)


# --- archives -------------------------------------------------------------------------------------------------------

JAN, FEB = datetime(2026, 1, 10, 3, tzinfo=timezone.utc), datetime(2026, 2, 10, 3, tzinfo=timezone.utc)


@pytest.fixture
def dated_log(app, monkeypatch):
    """3 entries in January, 2 in February, 2 now."""
    return add_entries(3, JAN, monkeypatch), add_entries(2, FEB, monkeypatch), add_entries(2)


def archive_files(folder):
    return sorted(folder.glob("*.jsonl.gz")), sorted(folder.glob("*.manifest.json"))


def test_archive_moves_old_entries_to_a_signed_file_and_the_rest_stays_verifiable(app, runner, dated_log, tmp_path):
    january, february, now = dated_log
    folder = tmp_path / "archive"
    result = run(runner, "audit-archive", "--before", "2026-02-01", "--dir", str(folder))
    assert result.exit_code == 0, result.output
    [data], [manifest_path] = archive_files(folder)
    manifest = json.loads(manifest_path.read_text())
    assert (manifest["first_seq"], manifest["last_seq"], manifest["count"]) == (1, 3, 3)
    assert manifest["first_prev_hash"] == audit.GENESIS
    lines = [json.loads(line) for line in gzip.open(data)]
    assert [line["seq"] for line in lines] == january
    assert set(lines[0]) == {"id", *audit.HASHED_COLUMNS, "entry_hash"}

    # The rest: February, now, and the archive's own entry, which names the file.
    assert seqs_in_table() == february + now + [8]
    logged = db.session.execute(select(OperationLog).filter_by(action="audit_archive")).scalars().all()
    assert len(logged) == 1
    assert logged[0].data | {} == {"before": "2026-02-01", "first_seq": 1, "last_seq": 3, "rows": 3,
                                   "file": data.name, "file_sha256": manifest["file_sha256"]}
    [anchor] = checkpoints("archive")
    assert (anchor.seq, anchor.entry_hash) == (3, manifest["last_entry_hash"])

    for args in (["audit-verify", "--full"], ["audit-verify"], ["audit-verify-archive", str(data)],
                 ["audit-verify-archive", str(manifest_path)]):
        result = run(runner, *args)
        assert result.exit_code == 0, (args, result.output)
    assert "seq=4 から 5 件を検証" in run(runner, "audit-verify", "--full").output


def test_archiving_twice_loses_no_entry(app, runner, dated_log, tmp_path):
    folder = tmp_path / "archive"
    assert run(runner, "audit-archive", "--before", "2026-02-01", "--dir", str(folder)).exit_code == 0
    again = run(runner, "audit-archive", "--before", "2026-02-01", "--dir", str(folder))
    assert again.exit_code == 0 and "ありません" in again.output
    assert run(runner, "audit-archive", "--before", "2026-03-01", "--dir", str(folder)).exit_code == 0
    data_files, _manifests = archive_files(folder)
    archived = [json.loads(line)["seq"] for path in data_files for line in gzip.open(path)]
    assert archived == [1, 2, 3, 4, 5]
    assert seqs_in_table() == [6, 7, 8, 9]  # now, and the two archive entries
    for path in data_files:
        assert run(runner, "audit-verify-archive", str(path)).exit_code == 0
    assert run(runner, "audit-verify", "--full").exit_code == 0
    # Everything up to the tail: the new entry is the only one left, and still chains on.
    assert run(runner, "audit-archive", "--before", "2100-01-01", "--dir", str(folder)).exit_code == 0
    assert seqs_in_table() == [10]
    add_entries(1)
    assert run(runner, "audit-verify", "--full").exit_code == 0


def rewrite_gzip(path, change):
    lines = gzip.open(path).read().decode().splitlines()
    with gzip.open(path, "wb") as out:
        out.write(("\n".join(change(lines)) + "\n").encode())


def test_tampering_with_the_archive_is_detected(app, runner, dated_log, tmp_path):
    folder = tmp_path / "archive"
    run(runner, "audit-archive", "--before", "2026-02-01", "--dir", str(folder))
    [data], [manifest_path] = archive_files(folder)
    original_data, original_manifest = data.read_bytes(), manifest_path.read_text()

    rewrite_gzip(data, lambda lines: [lines[0].replace('"result":"success"', '"result":"failure"')] + lines[1:])
    result = run(runner, "audit-verify-archive", str(data))
    assert result.exit_code == 1
    assert "SHA-256" in result.output and "seq=1 (id=" in result.output and "改ざん" in result.output

    rewrite_gzip(data, lambda lines: lines[:1] + lines[2:])  # an entry removed
    result = run(runner, "audit-verify-archive", str(data))
    assert result.exit_code == 1 and "seq=2〜2 が削除されています" in result.output

    data.write_bytes(original_data)
    manifest = json.loads(original_manifest)
    manifest_path.write_text(json.dumps(manifest | {"last_seq": 2, "count": 2}))  # a shorter story, unsigned
    result = run(runner, "audit-verify-archive", str(data))
    assert result.exit_code == 1 and "署名が一致しません" in result.output

    manifest_path.write_text(original_manifest)
    assert run(runner, "audit-verify-archive", str(data)).exit_code == 0
    other_key = tmp_path / "other.pub"
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    other_key.write_bytes(audit_chain.public_pem(Ed25519PrivateKey.generate().public_key()))
    result = run(runner, "audit-verify-archive", str(data), "--public-key", str(other_key))
    assert result.exit_code == 1 and "署名が一致しません" in result.output


def test_tampering_with_a_remaining_entry_or_the_anchor_is_detected(app, runner, dated_log, tmp_path, attacker):
    folder = tmp_path / "archive"
    run(runner, "audit-archive", "--before", "2026-02-01", "--dir", str(folder))
    [data], _ = archive_files(folder)
    attacker("UPDATE operation_log SET actor_login = 'mallory' WHERE seq = 4")
    result = run(runner, "audit-verify", "--full")
    assert result.exit_code == 1 and "seq=4" in result.output
    # The remaining chain no longer links to the archive's last entry.
    attacker("UPDATE operation_log SET prev_hash = :h WHERE seq = 4", h="0" * 64)
    result = run(runner, "audit-verify-archive", str(data))
    assert result.exit_code == 1 and "seq=4 がこのアーカイブの最後のエントリにつながりません" in result.output
    # An anchor moved forward to cover deleted entries: its signature no longer holds.
    attacker("UPDATE audit_checkpoint SET seq = 5 WHERE kind = 'archive'")
    result = run(runner, "audit-verify", "--full")
    assert result.exit_code == 1 and "アーカイブの記録（seq=5 まで）の署名が一致しません" in result.output


def test_the_database_deletes_only_archived_entries(app, runner, dated_log, tmp_path):
    run(runner, "audit-archive", "--before", "2026-02-01", "--dir", str(tmp_path))
    before = seqs_in_table()
    for sql in ("DELETE FROM operation_log WHERE seq = 4", "DELETE FROM operation_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(sql))
        db.session.rollback()
    assert seqs_in_table() == before


def test_archive_refuses_a_broken_chain_and_changes_nothing(app, runner, dated_log, tmp_path, attacker):
    attacker("UPDATE operation_log SET target_id = 'x' WHERE seq = 2")
    result = run(runner, "audit-archive", "--before", "2026-02-01", "--dir", str(tmp_path / "a"))
    assert result.exit_code == 1 and "seq=2" in result.output
    assert seqs_in_table() == list(range(1, 8)) and not checkpoints("archive")
    assert archive_files(tmp_path / "a") == ([], [])
    assert db.session.execute(select(func.count()).select_from(OperationLog)
                              .where(OperationLog.action == "audit_archive")).scalar() == 0
