"""`datakit_contract.env`: the `DK_…` variable of every config path."""

from __future__ import annotations

import pytest

from datakit_contract import env


@pytest.mark.parametrize(
    ("path", "variable"),
    [
        (("tenant",), "DK_TENANT"),
        (("warehouse", "host"), "DK_WAREHOUSE__HOST"),
        (("source", "password"), "DK_SOURCE__PASSWORD"),
        (("spark", "kubernetes", "namespace"), "DK_SPARK__KUBERNETES__NAMESPACE"),
        (("tables", "0", "name"), "DK_TABLES__NAME"),  # list indexes have no variable
    ],
)
def test_env_name_joins_the_path_upper_case_with_double_underscores(
    path: tuple[str, ...], variable: str
) -> None:
    assert env.env_name(*path) == variable


def test_connection_env_names_every_field_of_one_section() -> None:
    assert env.connection_env(env.WAREHOUSE, host="db", port="5432", dbname="dw") == {
        "DK_WAREHOUSE__HOST": "db",
        "DK_WAREHOUSE__PORT": "5432",
        "DK_WAREHOUSE__DBNAME": "dw",
    }
    assert env.connection_env(env.SOURCE) == {}


def test_the_sections_and_fixed_variables_follow_the_same_rule() -> None:
    assert env.env_name(env.SOURCE, "host") == "DK_SOURCE__HOST"
    assert env.env_name("tenant") == env.TENANT
    assert env.env_name("config") == env.CONFIG
    assert env.env_name("log_format") == env.LOG_FORMAT
    assert env.env_name("warehouse", "password") + env.FILE_SUFFIX == (
        "DK_WAREHOUSE__PASSWORD_FILE"
    )
