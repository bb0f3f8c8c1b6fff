"""Secrets never leave through eascomfy's output: registered values and known shapes are masked."""

from __future__ import annotations

from eascomfy.redact import MASK, redact, register_secret


def test_registered_secret_is_masked_everywhere() -> None:
    register_secret("s3cr3t-value-xyz")
    assert redact("key s3cr3t-value-xyz in text, again s3cr3t-value-xyz") == f"key {MASK} in text, again {MASK}"


def test_short_secrets_are_masked_as_whole_words() -> None:
    """A secret under 6 characters (a short env value, a PIN) is masked where it stands alone, not
    inside longer words, where it would mangle every line without hiding anything."""
    register_secret("Pw4x")
    assert redact("token Pw4x, again:Pw4x.") == f"token {MASK}, again:{MASK}."
    assert redact('{"value": "Pw4x"}') == '{"value": "***"}'
    assert redact("xPw4x Pw4xy") == "xPw4x Pw4xy"
    register_secret("")
    assert redact("a b") == "a b"


def test_known_shapes_are_masked() -> None:
    url = "https://svc.console.cn-hangzhou.eas.pai-ml.com?expire=1735202661&signature=eyJhbGciOi"
    assert "eyJhbGciOi" not in redact(url)
    assert "expire=1735202661" in redact(url)
    header = "Authorization: ACS3-HMAC-SHA256 Credential=LTAIxx,SignedHeaders=host,Signature=abab90774d0dab4db460a5f2cf93"
    assert "abab90774d0dab4db460a5f2cf93" not in redact(header)
    assert "LTAIxx" not in redact(header)
    oss = "GET /b/k?OSSAccessKeyId=LTAI5t&Expires=1&Signature=abc%2Fdef"
    assert "abc%2Fdef" not in redact(oss) and "LTAI5t" not in redact(oss)
    assert "hunter22" not in redact('{"access_key_secret": "hunter22"}')


def test_plain_text_is_untouched() -> None:
    text = "eascomfy.yaml:4: resources.instances: expected an integer, got 'two'"
    assert redact(text) == text
