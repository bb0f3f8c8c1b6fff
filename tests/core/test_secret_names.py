"""Which env names look secret: read word by word, so TOKENIZERS_PARALLELISM is not a token."""

from __future__ import annotations

import pytest

from eascomfy.core.secrets import looks_secret


@pytest.mark.parametrize(
    "name", ["HF_TOKEN", "OPENAI_API_KEY", "DB_PASSWORD", "PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "CIVITAI_APIKEY",
             "GOOGLE_APPLICATION_CREDENTIALS", "BASIC_AUTH", "hf-token", "SENTRY_DSN", "PRIVATE_KEY"],
)
def test_secret_looking_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["TZ", "TOKENIZERS_PARALLELISM", "PWD", "KEYBOARD_LAYOUT", "COMFY_DEBUG", "AUTHOR"])
def test_plain_names(name: str) -> None:
    assert not looks_secret(name)
