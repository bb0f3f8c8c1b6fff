"""``eascomfy cost``: what the jobs of a journal used and cost. It parses its options, reads the
journal and the prices, asks EAS only for what was not given (the current instance type, a spot
discount) and prints through ``out``; the arithmetic is ``core.cost``, the calls ``control.cost``.

Cheap to import: typer and the options only; the library loads inside the body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import DEFAULT_SPEC, EditionOpt, EnvOpt, FileOpt, OutputOpt, PricesOpt, SpecRef, session


def cost_cmd(
    journal: Annotated[Path, typer.Option("--journal", help="The job journal `eascomfy submit` wrote.", metavar="FILE")],
    instance_type: Annotated[
        Optional[str],
        typer.Option("--instance-type", help="Price the jobs on this type (default: the live service's).", metavar="TYPE"),
    ] = None,
    price: Annotated[
        Optional[float], typer.Option("--price", help="Hourly price of one instance of that type.", metavar="AMOUNT")
    ] = None,
    prices: PricesOpt = None,
    instances: Annotated[
        Optional[int],
        typer.Option("--instances", help="Instances that worked the queue (default: the live service's, or 1).", metavar="N"),
    ] = None,
    spot: Annotated[
        bool, typer.Option("--spot", help="Also the cost on spot instances (DescribeSpotDiscountHistory, newest).")
    ] = False,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    edition: EditionOpt = None,
    output: OutputOpt = None,
) -> None:
    """GPU-seconds per job and what a job costs, from a journal's timestamps.

    A job's instance time is estimated from when it was sent and when its result came, as a
    first-come first-served queue over the instances (the wait in the queue is not counted).
    With --instance-type and --price (or --prices) it works offline.

    \b
    Examples:
      eascomfy cost --journal jobs.jsonl --instance-type ml.gu7i.c16m60.1-gu30 --price 13.5
      eascomfy cost --journal jobs.jsonl --prices prices.yaml --spot -o json
    """
    with session("cost", output) as out:
        from ..control.cost import (check_instances, cost_of_jobs, current_placement, latest_spot_discount, load_prices,
                                    read_jobs)
        from ..core.cost import one_price
        from .cost_views import jobs_cost_text

        jobs = read_jobs(journal)  # bad input is refused before anything connects
        table = load_prices(prices)
        check_instances(instances)
        discount = None
        count = instances or 1
        if instance_type is None or spot:
            from ..control.deploy import connect

            spec = SpecRef(out, file, env, edition).spec
            client = connect(spec.region, out)
            if instance_type is None:
                instance_type, live_count = current_placement(spec, client)
                count = instances or live_count
            if spot:
                discount = latest_spot_discount(client, instance_type)
                if discount is None:
                    out.warn(f"{instance_type} has no spot offer in {spec.region} (DescribeSpotDiscountHistory)")
        if price is not None:
            table = one_price(instance_type, price, table.currency)
        result = cost_of_jobs(jobs, instance_type, count, table, discount)
        if not jobs:
            out.warn(f"{journal}: no finished job (a submit line and its result) to price")
        out.emit(result.to_dict(), jobs_cost_text(result))


def register(app: typer.Typer) -> None:
    """Attach the cost command to the app."""
    app.command("cost")(cost_cmd)
