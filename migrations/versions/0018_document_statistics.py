"""document: patient_sex, patient_age and patient_key, the statistics' plain columns (the patient block is encrypted)

Revision ID: d8b9c0d1e2f3
Revises: c7a8b9c0d1e2
Create Date: 2026-12-06 08:05:00

Statistics count documents by 性別 and age band at 1M rows: decrypting every patient block for that would take
minutes. The sex and the age on 作成年月日 are kept beside the block by documents.set_patient (the one place that
writes it), with the blind index as a number (patient_key: distinct patients are counted on integers); documents written before this migration get them from `flask --app app nanbyo stats-refresh`, which
decrypts in batches (until then they count as 不明).
"""
import sqlalchemy as sa
from alembic import op

revision = 'd8b9c0d1e2f3'
down_revision = 'c7a8b9c0d1e2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('document') as batch:
        batch.add_column(sa.Column('patient_sex', sa.String(length=1), nullable=False, server_default=''))
        batch.add_column(sa.Column('patient_age', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('patient_key', sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('document') as batch:
        batch.drop_column('patient_key')
        batch.drop_column('patient_age')
        batch.drop_column('patient_sex')
