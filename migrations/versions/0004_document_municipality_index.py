"""document: (municipality_id, id) index for the municipality's id-ordered list

Revision ID: 4d0c5e1b7a21
Revises: a9e60a6b87cf
Create Date: 2026-11-25 11:10:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '4d0c5e1b7a21'
down_revision = 'a9e60a6b87cf'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        # CONCURRENTLY (outside the migration's transaction): documents are written while the index builds.
        with op.get_context().autocommit_block():
            op.create_index('ix_document_municipality_id_id', 'document', ['municipality_id', 'id'],
                            postgresql_concurrently=True, if_not_exists=True)
        return
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.create_index('ix_document_municipality_id_id', ['municipality_id', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.drop_index('ix_document_municipality_id_id')
