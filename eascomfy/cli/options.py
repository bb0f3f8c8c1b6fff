"""What every command shares: the options (typed once, reused), the output session, and the
command context that loads the spec once and prints its warnings once.

Import-cheap (typer only): ``--help`` pays for nothing else. Command modules import from here,
never from ``app`` (which imports them to register them).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .settings import JSON, TEXT

if TYPE_CHECKING:
    from ..core.spec import Spec
    from .output import Out

OutputOpt = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="text (default) or json: one JSON envelope on stdout.", metavar="FORMAT"),
]
FileOpt = Annotated[
    Path, typer.Option("--file", "-f", help="The spec file.", show_default=True, metavar="FILE")
]
EnvOpt = Annotated[
    Optional[str],
    typer.Option("--env", "-e", help="Environment overlay: environments.ENV in the spec, or eascomfy.ENV.yaml beside it.", metavar="ENV"),
]
EditionOpt = Annotated[
    Optional[str],
    typer.Option("--edition", help="Override the spec's edition: standard, api, cluster, serverless.", metavar="EDITION"),
]
DEFAULT_SPEC = Path("eascomfy.yaml")
PricesOpt = Annotated[
    Optional[Path],
    typer.Option("--prices", help="Hourly prices per instance type (YAML, docs/cost.md): the API has no list price.",
                 metavar="FILE"),
]


ServiceOpt = Annotated[
    Optional[str], typer.Option("--service", help="Act on this live service instead of the spec's (needs --region).", metavar="NAME")
]
RegionOpt = Annotated[
    Optional[str], typer.Option("--region", help="Region of the service, e.g. cn-hangzhou.", metavar="REGION")
]

# Fleets (docs/gitops.md "Fleets"): which services of the project a command works on, and how.
AllOpt = Annotated[
    bool,
    typer.Option("--all", help="Every service of the fleet: eascomfy.yaml and services/*.yaml here (or the --file given), "
                 "one per region of a spec's regions."),
]
SelectServiceOpt = Annotated[
    Optional[str], typer.Option("--service", help="Fleet: only the service of this name.", metavar="NAME")
]
SelectRegionOpt = Annotated[
    Optional[str], typer.Option("--region", help="Fleet: only the services in this region.", metavar="REGION")
]
LabelOpt = Annotated[
    Optional[list[str]],
    typer.Option("--label", help="Fleet: only services whose spec labels have KEY=VALUE (repeatable, all must match).",
                 metavar="KEY=VALUE"),
]
ParallelOpt = Annotated[int, typer.Option("--parallel", help="Fleet: how many services are worked on at once.", metavar="N")]
FailFastOpt = Annotated[
    bool, typer.Option("--fail-fast", help="Fleet: after the first failure start no other service (they are reported skipped).")
]
DEFAULT_PARALLEL = 4  # control.fleet.DEFAULT_PARALLEL, spelled here so --help imports nothing


# The library names its parameters; the CLI names its flags. Errors that carry ``param`` are shown
# with the flag that sets it (``--part-size: must be ...``). Unlisted params map to --param-name.
FLAGS = {
    "spec": "--file",
    "env": "--env",
    "edition": "--edition",
    "overrides": "--set",
    "inputs": "--input",
    "out_dir": "--out",
    "url": "--service-url",
    "instance_type": "--instance-type",
    "image_version": "--image-version",
    "oss": "--oss",
    "version": "VERSION",  # update-image's and rollback's argument
}


def flag_for(param: str) -> str:
    return FLAGS.get(param, "--" + param.replace("_", "-"))


# The library's hints say what to do without naming flags; where a flag or command says it better,
# the CLI words the hint, by the error's code (or a usage error's param). Only a hint the library
# gave is reworded.
HINTS = {
    "InvalidService.NotFound": "check --service/--region, or create it with `eascomfy deploy`",
    "BeyondTheImage": "pass --allow-other-changes to apply them too; `eascomfy plan` shows what a deploy would change",
    "EnvironmentMismatch": "pass the --env the service was deployed with, or deploy the other environment first",
    "AmbiguousEnvironment": "pass --env ENV; a deploy records it on the service",
    "UnknownImageVersion": "pass --force for a version newer than eascomfy's table; a tag the registry lacks fails after the rollout",
    "ServiceLocked": "wait for that run to finish; if it is gone (a crash), the lock expires by itself, or "
    "`--force-unlock` breaks it now",
    "StalePlan": "run `eascomfy plan --out FILE` again and review it",
    "FileExists": "pass --force to replace it",
    "NoSuchBucket": "create it with `eascomfy storage init --create-bucket`",
    "plan": "write one with `eascomfy plan --out FILE`",  # a saved plan file that cannot be used
}


def hint_for(code: str | None, param: str | None) -> str | None:
    return HINTS.get(code or "") or HINTS.get(param or "")


def session(command: str, output: str | None = None):  # type: ignore[no-untyped-def]
    """The per-command output session (imported lazily: --help never pays for it)."""
    from .output import session as _session

    return _session(command, check_output(output))


def check_output(value: str | None) -> str | None:
    if value is not None and value not in (TEXT, JSON):
        raise typer.BadParameter(f"expected text or json, got {value!r}", param_hint="--output")
    return value


class SpecRef:
    """The spec a command works on: loaded at most once per command, its warnings printed once.

    Commands build one from their ``--file/--env/--edition`` options and hand it down; nothing
    else in the CLI calls ``load_spec``.
    """

    def __init__(self, out: "Out", file: Path = DEFAULT_SPEC, env: str | None = None, edition: str | None = None,
                 region: str | None = None) -> None:
        self.out, self.file, self.env, self.edition = out, Path(file), env, edition
        self.region = region  # which of a multi-region spec's regions (a single-region spec ignores it)

    @property
    def given(self) -> bool:
        """True when the user named a spec, or the default one exists."""
        return self.file != DEFAULT_SPEC or self.file.exists()

    @cached_property
    def spec(self) -> "Spec":
        from ..core.spec import load_spec

        spec = load_spec(self.file, env=self.env, edition=self.edition, region=self.region)
        return self._adopt(spec)

    def _adopt(self, spec: "Spec") -> "Spec":
        from ..redact import register_secret

        for value in spec.secrets.values:  # no log line or error may show them from here on
            register_secret(value)
        for warning in spec.warnings:
            if warning not in self.out.warnings:  # once, also for a spec's several regions
                self.out.warn(warning)
        return spec

    def every_region(self) -> "list[Spec]":
        """The spec once per region (one for a single-region spec): for checking them all."""
        from ..core.spec import load_specs

        return [self._adopt(s) for s in load_specs(self.file, env=self.env, edition=self.edition)]

    def fleet(self, service: str | None, region: str | None, labels: "list[str] | None") -> "list[Spec]":
        """The fleet's services the selectors pick (``control.fleet``): the project in the current
        folder, or the one --file named (all its regions); every spec checked before any call."""
        from ..control.fleet import choose, load_fleet
        from ..core.fleet import Selector
        from ..core.spec import load_specs

        selector = Selector.parse(service, region, labels or [])
        if self.file != DEFAULT_SPEC:
            specs = load_specs(self.file, env=self.env, edition=self.edition)
        else:
            specs = load_fleet(Path("."), env=self.env, edition=self.edition)  # paths shown relative
        return [self._adopt(s) for s in choose(specs, selector)]

    def load(self, env: str | None) -> "Spec":
        """The same file (and --edition) under another environment: the one a live service was
        deployed with (``update-image`` follows it). Only warnings not printed yet are printed."""
        from ..core.spec import load_spec

        if env == self.env:
            return self.spec
        spec = load_spec(self.file, env=env, edition=self.edition, region=self.region)
        for warning in spec.warnings:
            if warning not in self.out.warnings:
                self.out.warn(warning)
        return spec
