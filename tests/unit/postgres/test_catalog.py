"""`datakit_postgres.catalog`: the Bronze type of a source column, decided from the catalog row.

Types every server has travel in binary untouched; types only the source database knows (enums,
composites, extension types, arrays of them) land as text; domains land as their base type.
"""

from __future__ import annotations

import pytest

from datakit_postgres.catalog import bronze_type


@pytest.mark.parametrize(
    ("source_type", "kind", "bronze"),
    [
        # built-in: (user_type, base_type, user_base, user_element, is_array)
        ("numeric(38,10)", (False, None, None, False, False), "numeric(38,10)"),
        ("timestamp with time zone", (False, None, None, False, False), "timestamp with time zone"),
        ("integer[]", (False, None, None, False, True), "integer[]"),
        # user-defined: enum, composite, extension type
        ("mood", (True, None, None, False, False), "text"),
        # an array of a user-defined type
        ("mood[]", (False, None, None, True, True), "text[]"),
        # a domain over a built-in type, and over a user-defined one
        ("positive_int", (False, "integer", False, False, False), "integer"),
        ("happy_mood", (False, "mood", True, False, False), "text"),
    ],
    ids=["numeric", "timestamptz", "int-array", "enum", "enum-array", "domain", "domain-of-enum"],
)
def test_a_column_lands_as_a_type_the_warehouse_knows(
    source_type: str, kind: tuple[bool, str | None, bool | None, bool, bool], bronze: str
) -> None:
    assert bronze_type(source_type, *kind) == bronze
