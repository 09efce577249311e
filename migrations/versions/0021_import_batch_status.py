"""import_batch: status (取込中 / 完了 / 失敗) and institution_code; institution_id may be empty

Revision ID: ab1c2d3e4f50
Revises: fa0d1e2f3a4b
Create Date: 2026-12-06 11:50:00

A 医療機関ユーザデータファイル is confirmed in one unit of work inside the request. Its batch is now written first, as
取込中, and becomes 完了 with the accounts: a worker killed in the middle leaves the batch saying so (失敗 once the
clean-up sees it stalled) instead of leaving nothing to show. A file that registers its institution has no
institution yet when the batch is written: the code is kept beside it. Earlier batches are 完了.
"""
import sqlalchemy as sa
from alembic import op

revision = 'ab1c2d3e4f50'
down_revision = 'fa0d1e2f3a4b'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('import_batch') as batch:
        batch.add_column(sa.Column('institution_code', sa.String(length=10), nullable=False, server_default=''))
        batch.add_column(sa.Column('status', sa.String(length=10), nullable=False, server_default='done'))
        batch.alter_column('institution_id', existing_type=sa.Integer(), nullable=True)
    op.execute("UPDATE import_batch SET institution_code = "
               "(SELECT code FROM institution WHERE institution.id = import_batch.institution_id)")


def downgrade():
    op.execute("DELETE FROM import_batch WHERE institution_id IS NULL")
    with op.batch_alter_table('import_batch') as batch:
        batch.alter_column('institution_id', existing_type=sa.Integer(), nullable=False)
        batch.drop_column('status')
        batch.drop_column('institution_code')
