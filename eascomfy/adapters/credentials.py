"""Alibaba Cloud credentials for every adapter, from the standard chain; eascomfy stores none.

The chain's first link (``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``_SECRET`` / ``_SECURITY_TOKEN``) is read
here, at call time, without importing ``alibabacloud_credentials`` (which reads those variables
once, when it is imported, and costs ~0.2 s to import); the rest of the chain (profiles, ECS RAM
role, OIDC/RRSA, credentials URI) goes through ``alibabacloud_credentials``. Every secret found is
registered for redaction before it can reach any output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import CloudError
from ..redact import register_secret

NO_CREDENTIALS_HINT = (
    "set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, a profile (aliyun configure), "
    "an ECS RAM role, or OIDC (RRSA) in CI"
)


@dataclass(frozen=True)
class AccessKey:
    id: str
    secret: str
    token: str | None = None

    def __post_init__(self) -> None:
        register_secret(self.secret)
        register_secret(self.token)

    def __repr__(self) -> str:  # never the secret or the token
        return f"AccessKey(id={self.id!r}, secret=***{', token=***' if self.token else ''})"


def from_environment() -> AccessKey | None:
    key_id, secret = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID"), os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if key_id and secret:
        return AccessKey(key_id, secret, os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None)
    return None


def credential_client(key: AccessKey | None = None) -> Any:
    """An ``alibabacloud_credentials`` client (what the tea-openapi SDKs take): for ``key``, for the
    environment's pair, or the SDK's default chain."""
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.models import Config as CredentialConfig

    key = key or from_environment()
    if key is not None:
        kind = "sts" if key.token else "access_key"
        return CredentialClient(
            CredentialConfig(type=kind, access_key_id=key.id, access_key_secret=key.secret, security_token=key.token)
        )
    try:
        client = CredentialClient()  # profiles, ECS RAM role, OIDC (RRSA), credentials URI
        model = client.get_credential()
    except Exception as exc:
        raise CloudError("no Alibaba Cloud credentials found", code="NoCredentials", hint=NO_CREDENTIALS_HINT) from exc
    register_secret(model.access_key_secret)
    register_secret(model.security_token)
    return client


def access_key() -> AccessKey:
    """The caller's AccessKey pair (and STS token) from the chain, for clients that sign themselves."""
    key = from_environment()
    if key is not None:
        return key
    model = credential_client().get_credential()
    return AccessKey(model.access_key_id, model.access_key_secret, model.security_token or None)
