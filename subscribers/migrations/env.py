"""Alembic's entry point: runs the migrations on the connection that
``subscribers.db`` hands it, inside that connection's transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from subscribers.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    # Run from the alembic command line with sqlalchemy.url in its config.
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set sqlalchemy.url in the Alembic config to run migrations directly")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
