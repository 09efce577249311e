"""The migrations make the schema the models describe: what autogenerate would write is nothing."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nanbyo.extensions import db


def test_migrated_schema_is_the_models(app):
    with db.engine.connect() as connection:
        postgresql = connection.dialect.name == "postgresql"

        def include(obj, name, type_, reflected, compare_to):
            # PostgreSQL's alone (ddl_if, which autogenerate does not read): models._types.trigram_index and the
            # statistics' covering index.
            return postgresql or not (type_ == "index" and (name.endswith("_trgm") or name == "ix_document_statistics"))
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": include})
        assert compare_metadata(context, db.metadata) == []
