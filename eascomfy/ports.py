"""The ports: what the library needs of the world, as Protocols the adapters and the CLI fill.

- ``Progress``: where a long operation says what it does (the CLI's ``Out``; a library caller may
  pass any object with these three methods, or ``SILENT``).
- ``Bucket``: one OSS bucket (``adapters.oss.OssClient``; the OSS sandbox in tests, over the wire).
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol


class Progress(Protocol):
    """Messages for people about work under way; never results, never secrets."""

    def info(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...


class _Silent:
    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def debug(self, message: str) -> None:
        pass


SILENT: Progress = _Silent()


class Bucket(Protocol):
    """One OSS bucket (``adapters.oss.OssClient``), as storage and workflows use it."""

    name: str
    region: str

    def head(self, key: str) -> Any: ...
    def put(self, key: str, data: bytes) -> tuple[int | None, str]: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str, delimiter: str = "") -> Iterator[tuple[str, int, bool, str]]: ...
    def init_multipart(self, key: str) -> str: ...
    def upload_part(self, key: str, upload_id: str, number: int, data: bytes | memoryview) -> tuple[str, int | None]: ...
    def list_parts(self, key: str, upload_id: str) -> dict[int, tuple[str, int]] | None: ...
    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> tuple[int | None, str]: ...
    def abort_multipart(self, key: str, upload_id: str) -> None: ...
    def bucket_region(self) -> str | None: ...
    def create_bucket(self) -> None: ...
    def download(self, key: str, dest: str) -> None: ...
