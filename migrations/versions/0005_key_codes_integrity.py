"""key registration codes, institution.active, membership rows keep their institution

Revision ID: 5b1e2f3c4d60
Revises: 4d0c5e1b7a21
Create Date: 2026-11-25 14:00:00

A re-issued key file is registered with password + a one-time code (its hash and expiry on the account). An
institution that documents or memberships refer to is disabled (active = false) instead of deleted, and the
database refuses to delete it with memberships (RESTRICT instead of CASCADE).
"""
import sqlalchemy as sa
from alembic import op

import models._types

# revision identifiers, used by Alembic.
revision = '5b1e2f3c4d60'
down_revision = '4d0c5e1b7a21'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_code_hash', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('key_code_expires_at', models._types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('institution', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_constraint('fk_membership_institution_id_institution', type_='foreignkey')
        batch_op.create_foreign_key('fk_membership_institution_id_institution', 'institution',
                                    ['institution_id'], ['id'], ondelete='RESTRICT')


def downgrade():
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_constraint('fk_membership_institution_id_institution', type_='foreignkey')
        batch_op.create_foreign_key('fk_membership_institution_id_institution', 'institution',
                                    ['institution_id'], ['id'], ondelete='CASCADE')
    with op.batch_alter_table('institution', schema=None) as batch_op:
        batch_op.drop_column('active')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('key_code_expires_at')
        batch_op.drop_column('key_code_hash')
