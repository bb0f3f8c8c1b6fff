"""The one place the CLI prints: human text (rich, on stderr for progress and warnings) or the
``--output json`` envelope on stdout, and the mapping of exceptions to exit codes.

Envelope (docs/json-output.md): ``{"ok", "command", "version", "data", "warnings", "error"}``;
exactly one JSON document on stdout per run, whatever happens.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .. import __version__
from ..errors import EXIT_ERROR, EXIT_INTERRUPTED, EascomfyError, SpecError, UsageError
from ..redact import redact

from .settings import JSON, SETTINGS, TEXT

_SECRET_SLOT = "<eascomfy:secret>"  # stands for the emit_secret value until the envelope is redacted


def printable(text: str) -> str:
    """``text`` with lone surrogates (bytes of an argument or file name that were not UTF-8, as
    Python decodes them) shown as escapes: a strict UTF-8 stream refuses them, and a result must
    not be lost to a name it only echoes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class Out:
    command: str
    mode: str = TEXT
    verbose: bool = False
    quiet: bool = False
    warnings: list[str] = field(default_factory=list)
    data: Any = None
    _printed: bool = False
    _secret: str | None = None

    @property
    def json(self) -> bool:
        return self.mode == JSON

    # -- streams -------------------------------------------------------------------------------
    def _err(self, text: str) -> None:
        sys.stderr.write(printable(redact(text)) + "\n")
        sys.stderr.flush()

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if not self.json:
            self._err(f"warning: {message}")

    def info(self, message: str) -> None:
        """Progress for people; silent in JSON mode and with --quiet."""
        if not self.json and not self.quiet:
            self._err(message)

    def debug(self, message: str) -> None:
        if self.verbose and not self.json:
            self._err(f"debug: {message}")

    def emit(self, data: Any, text: str | Callable[[], None] | None = None) -> None:
        """The command's result: ``data`` in the envelope, or ``text`` (or a printer) for people."""
        self.data = data
        if self.json:
            return
        if callable(text):
            text()
        elif text is not None:
            sys.stdout.write(printable(text if text.endswith("\n") else text + "\n"))
            sys.stdout.flush()

    def emit_secret(self, data: dict[str, Any], key: str, value: str) -> None:
        """The one deliberate way to print a secret (a signed URL): ``value`` goes to stdout (alone
        in text mode, as ``data[key]`` in the JSON envelope), never to stderr or a log."""
        self._secret = value
        self.data = {**data, key: _SECRET_SLOT}
        if not self.json:
            sys.stdout.write(value + "\n")
            sys.stdout.flush()

    def console(self) -> Any:
        from rich.console import Console

        plain = not sys.stdout.isatty()
        return Console(
            no_color=not SETTINGS.color or "NO_COLOR" in os.environ,
            highlight=False,
            width=120 if plain else None,
        )

    # -- the envelope --------------------------------------------------------------------------
    def envelope(self, error: dict[str, Any] | None = None, exit_code: int = 0) -> dict[str, Any]:
        return {
            "ok": error is None,
            "command": self.command,
            "version": __version__,
            "data": self.data,
            "warnings": self.warnings,
            "error": error,
            "exit_code": exit_code,
        }

    def finish(self, error: dict[str, Any] | None = None, exit_code: int = 0) -> None:
        if self.json and not self._printed:
            self._printed = True
            text = redact(json.dumps(self.envelope(error, exit_code), indent=2, ensure_ascii=False))
            if self._secret is not None:
                text = text.replace(json.dumps(_SECRET_SLOT), json.dumps(self._secret, ensure_ascii=False))
            sys.stdout.write(printable(text) + "\n")
            sys.stdout.flush()


def fail_line(exc: EascomfyError) -> list[str]:
    lines = [f"error: {exc}"]
    if isinstance(exc, SpecError):
        lines += [f"error: {other}" for other in exc.others]
    return lines


@contextmanager
def session(command: str, output: str | None = None) -> Iterator[Out]:
    """Run one command: yields its ``Out``; maps every exception to one line and an exit code."""
    import typer

    out = Out(command, mode=output or SETTINGS.output, verbose=SETTINGS.verbose, quiet=SETTINGS.quiet)
    code = 0
    try:
        yield out
    except typer.Exit as exc:
        code = exc.exit_code
        out.finish(None if code == 0 else {"type": "exit", "message": f"exit {code}"}, code)
        raise
    except EascomfyError as exc:
        code = exc.exit_code
        from .options import flag_for, hint_for

        if exc.param:  # the library named its parameter; people know the flag
            exc.message = f"{flag_for(exc.param)}: {exc.message}"
        if exc.hint:  # the CLI's wording of it, with its flags, where it has one
            exc.hint = hint_for(getattr(exc, "code", None), exc.param) or exc.hint
        if out.json:
            out.finish(exc.to_dict(), code)
        else:
            for line in fail_line(exc):
                out._err(line)
        raise typer.Exit(code) from None
    except KeyboardInterrupt:
        out.finish({"type": "interrupted", "message": "interrupted"}, EXIT_INTERRUPTED)
        if not out.json:
            out._err("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:  # a bug: one redacted line, the traceback only with --verbose
        if isinstance(exc, UnicodeEncodeError) and "surrogate" in str(exc.reason):
            # a value that is not UTF-8 (an argument, a file name) met a protocol or file that is
            error = UsageError("an argument or file name is not valid UTF-8 text; eascomfy sends and stores UTF-8 only",
                               "rename it, or pass the value as UTF-8")
            if out.json:
                out.finish(error.to_dict(), error.exit_code)
            else:
                out._err(f"error: {error}")
            raise typer.Exit(error.exit_code) from None
        message = f"internal error: {type(exc).__name__}: {exc}"
        if out.json:
            out.finish({"type": "internal", "message": message}, EXIT_ERROR)
        else:
            if out.verbose:
                out._err("".join(traceback.format_exception(exc)))
            out._err(f"error: {message} (please report it; --verbose shows the traceback)")
        raise typer.Exit(EXIT_ERROR) from None
    else:
        out.finish()
