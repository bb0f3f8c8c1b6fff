"""eascomfy's exception tree and its stable exit codes.

Every error a user can cause or meet is one of these; the CLI maps them to an exit code and one
clear line (or a JSON envelope). Messages never carry credentials, tokens or signed URLs: the
classes that wrap cloud errors take only codes, messages and request ids.
"""

from __future__ import annotations

from dataclasses import dataclass

# Documented in docs/exit-codes.md; never renumber.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INVALID_SPEC = 3
EXIT_CLOUD = 4
EXIT_TIMEOUT = 5
EXIT_LOCKED = 6  # another run holds the service's deploy lock (control/locks.py)
EXIT_INTERRUPTED = 130
# `plan --detailed-exitcode`: 0 no changes, 2 changes (as in Terraform); only with that flag.
EXIT_PLAN_CHANGES = 2


class EascomfyError(Exception):
    """Base class: a message for people, an optional hint, an exit code and a JSON type."""

    exit_code = EXIT_ERROR
    kind = "error"

    def __init__(self, message: str, hint: str | None = None, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # The library parameter the error is about ("part_size", "env", "expire"...): the library
        # speaks in its own names and values; a front end (the CLI) names its flag for it.
        self.param = param

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"type": self.kind, "message": self.message}
        if self.hint:
            data["hint"] = self.hint
        if self.param:
            data["param"] = self.param
        return data

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(EascomfyError):
    exit_code = EXIT_USAGE
    kind = "usage"


@dataclass(frozen=True)
class Location:
    """Where in which file a spec problem is: ``file:line: path``."""

    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file


class SpecError(EascomfyError):
    """An invalid spec, overlay or edition file: file, line, field path, what was expected."""

    exit_code = EXIT_INVALID_SPEC
    kind = "invalid_spec"

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.location = location or Location()
        self.path = path
        # Further problems found in the same pass, each its own line in the output.
        self.others: list[SpecError] = []

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data.update({"file": self.location.file, "line": self.location.line, "path": self.path})
        if self.others:
            data["others"] = [o.to_dict() for o in self.others]
        return data

    def __str__(self) -> str:
        parts = []
        if str(self.location):
            parts.append(str(self.location))
        if self.path:
            parts.append(self.path)
        head = ": ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        return f"{text} ({self.hint})" if self.hint else text


class CloudError(EascomfyError):
    """An error answered by a cloud API: its code, message and request id; never credentials."""

    exit_code = EXIT_CLOUD
    kind = "cloud"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        service: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.code = code
        self.request_id = request_id
        self.service = service
        self.status = status

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data.update({"code": self.code, "request_id": self.request_id, "service": self.service})
        return data

    def __str__(self) -> str:
        bits = []
        if self.service:
            bits.append(f"service {self.service}")
        bits.append(f"{self.code}: {self.message}" if self.code else self.message)
        if self.request_id:
            bits.append(f"request id {self.request_id}")
        text = ", ".join(bits)
        return f"{text} ({self.hint})" if self.hint else text


class WaitTimeout(EascomfyError):
    exit_code = EXIT_TIMEOUT
    kind = "timeout"


class Locked(EascomfyError):
    """Another run holds the service's deploy lock (``control/locks.py``): who, since when."""

    exit_code = EXIT_LOCKED
    kind = "locked"

    def __init__(self, message: str, hint: str | None = None, *, lock: dict[str, object] | None = None) -> None:
        super().__init__(message, hint)
        self.code = "ServiceLocked"
        self.lock = lock or {}

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "lock": self.lock}
