"""The sandbox's own AccessKey pair. It is not a secret of anyone's: it only opens the emulators."""

SANDBOX_ACCESS_KEY_ID = "LTAI5tSandboxEasComfy00"
SANDBOX_ACCESS_KEY_SECRET = "eascomfy-sandbox-secret-0123456789abcd"

def secret_for(access_key_id: str) -> str | None:
    """Return the secret for a known AccessKey id, or None (the caller answers 'not found')."""
    return SANDBOX_ACCESS_KEY_SECRET if access_key_id == SANDBOX_ACCESS_KEY_ID else None
