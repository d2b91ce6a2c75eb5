"""The HTTP runner's config: auth kinds name what they miss; resources agree; secrets masked."""

from __future__ import annotations

import pytest

from datakit_core.errors import ConfigError
from datakit_core.settings import load_config
from datakit_http.config import HttpRunnerConfig

BASE = {
    "DK_WAREHOUSE__HOST": "127.0.0.1",
    "DK_WAREHOUSE__DBNAME": "wh",
    "DK_WAREHOUSE__USER": "loader",
    "DK_SOURCE__NAME": "api",
    "DK_SOURCE__BASE_URL": "https://api.example.com/v1",
}


def test_auth_kind_lists_the_fields_it_needs() -> None:
    with pytest.raises(ConfigError, match=r"auth kind `basic` needs `username`, `password`"):
        load_config(HttpRunnerConfig, environ={**BASE, "DK_SOURCE__AUTH__KIND": "basic"})


def test_a_parent_must_be_a_resource() -> None:
    resources = '[{"name": "lines", "path": "/orders/{id}/lines", "parent": "orders"}]'
    with pytest.raises(ConfigError, match="has parent `orders`, which is not a resource"):
        load_config(HttpRunnerConfig, environ={**BASE, "DK_SOURCE__RESOURCES": resources})


def test_secret_from_a_file_is_secret(tmp_path: pytest.TempPathFactory) -> None:
    secret = tmp_path / "token"  # type: ignore[operator]
    secret.write_text("Tok-from-file-123\n")
    config = load_config(
        HttpRunnerConfig,
        environ={
            **BASE,
            "DK_SOURCE__AUTH__KIND": "bearer",
            "DK_SOURCE__AUTH__TOKEN_FILE": str(secret),
        },
    )
    token = config.source.auth.token
    assert token is not None and token.get_secret_value() == "Tok-from-file-123"
    assert "Tok-from-file" not in repr(config)
