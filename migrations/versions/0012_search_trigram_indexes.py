"""search trigram indexes: the search box of the users, institutions and operation log lists walks an index

Revision ID: d2b3c4d5e6f7
Revises: c1a2b3c4d5e6
Create Date: 2026-12-06 02:40:00

Flask-Admin's search is ILIKE '%term%' on each searchable column, which no B-tree serves: at national scale
(hundreds of thousands of accounts and institutions, millions of log entries) each search read the whole table. On
PostgreSQL each searchable column of those tables gets a GIN trigram index (pg_trgm, a trusted extension the
database's owner may create); SQLite gets none.
"""
from alembic import op

revision = 'd2b3c4d5e6f7'
down_revision = 'c1a2b3c4d5e6'
branch_labels = None
depends_on = None

SEARCHED = {
    'user_account': ['login_id', 'name', 'name_kana', 'email'],
    'institution': ['code', 'name'],
    'operation_log': ['actor_login', 'target_id'],
}


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    # CONCURRENTLY (outside the migration's transaction): the tables take writes while their indexes build.
    with op.get_context().autocommit_block():
        for table, columns in SEARCHED.items():
            for column in columns:
                op.create_index(f'ix_{table}_{column}_trgm', table, [column], postgresql_using='gin',
                                postgresql_ops={column: 'gin_trgm_ops'}, postgresql_concurrently=True,
                                if_not_exists=True)


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, columns in SEARCHED.items():
        for column in columns:
            op.drop_index(f'ix_{table}_{column}_trgm', table_name=table)
