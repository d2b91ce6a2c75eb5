"""`datakit_postgres.config`: the source a Postgres runner reads, named and schema'd."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datakit_postgres.config import PostgresSourceSettings

SOURCE = {"name": "erp", "host": "db", "dbname": "erp", "user": "reader"}


def test_a_source_reads_schema_public_unless_told_otherwise() -> None:
    assert PostgresSourceSettings.model_validate(SOURCE).schema_ == "public"
    sales = PostgresSourceSettings.model_validate({**SOURCE, "schema": "sales"})
    assert sales.schema_ == "sales"
    assert sales.model_dump(by_alias=True)["schema"] == "sales"


@pytest.mark.parametrize("name", ["ERP", "2erp", "erp-prod", "", "e" * 42])
def test_a_source_name_must_be_usable_as_a_schema_name(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PostgresSourceSettings.model_validate({**SOURCE, "name": name})
    assert [error["loc"] for error in caught.value.errors()] == [("name",)]


def test_the_password_is_never_rendered() -> None:
    settings = PostgresSourceSettings.model_validate({**SOURCE, "password": "s3cret-pw"})
    assert settings.password is not None
    assert settings.password.get_secret_value() == "s3cret-pw"
    assert "s3cret" not in repr(settings) + settings.model_dump_json() + settings.display()
    assert settings.display() == "postgresql://reader@db:5432/erp"


def test_unknown_source_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        PostgresSourceSettings.model_validate({**SOURCE, "hostname": "db"})
