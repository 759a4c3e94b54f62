"""A list of values bound as one parameter, the way each database takes it best.

On PostgreSQL the list is one array (``column = ANY(:name)``), so a
statement has one text whatever the list's length: parsed and planned once
(psycopg prepares it), and it costs about the same for one value as for
fifty. SQLite has no arrays: there the parameter expands into ``IN (...)``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY


def one_of(column: Any, name: str, postgres: bool) -> Any:
    """``column`` is one of the values in list parameter ``name``."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))
