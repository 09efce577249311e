"""Keeping the statistics' plain columns (document.patient_sex, patient_age, patient_key) for documents written before they
existed: `flask --app app nanbyo stats-refresh` decrypts each patient block in batches and writes the two columns
with a plain UPDATE (the document's version stays: a form open meanwhile still saves). Run it once after upgrading
to migration 0018; running it again changes nothing."""
from types import SimpleNamespace

from sqlalchemy import bindparam, select, update

from models.documents import Document
from nanbyo import database, documents
from nanbyo.extensions import db


def refresh(batch_size=1000, progress=None) -> int:
    """Every document's patient_sex and patient_age from its patient block; the number of documents read."""
    last_id, done = 0, 0
    table = Document.__table__
    statement = update(table).where(table.c.id == bindparam("document_id")).values(
        patient_sex=bindparam("sex"), patient_age=bindparam("age"), patient_key=bindparam("key"))
    while True:
        database.begin_write()  # a save between the read and the write would otherwise be overwritten
        rows = db.session.execute(select(Document.id, Document.uid, Document.patient_cipher, Document.written_on,
                                         Document.patient_index)
                                  .where(Document.id > last_id).order_by(Document.id).limit(batch_size)).all()
        if not rows:
            db.session.rollback()
            return done
        values = []
        for row in rows:
            shown = SimpleNamespace(uid=row.uid, patient_cipher=row.patient_cipher, written_on=row.written_on,
                                    patient_index=row.patient_index, patient_sex="", patient_age=None, patient_key=None)
            documents.set_statistics(shown, documents.patient_of(shown))
            values.append({"document_id": row.id, "sex": shown.patient_sex, "age": shown.patient_age,
                           "key": shown.patient_key})
        db.session.connection().execute(statement, values)
        db.session.commit()
        last_id, done = rows[-1].id, done + len(rows)
        if progress:
            progress(done)
