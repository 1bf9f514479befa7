"""The demo's federated phase: the three nodes train the joint churn model together, in process.

CDNOW purchases were earned with their dates shifted so the base ends yesterday; the window is the
base's own: features up to the (shifted) end of 1997, churned = no purchase in the first half of
1998. Each brand's budget is the default; each brand trains only on members with joint_modeling
consent (60% in the demo's consent mix, less the 3% who withdrew).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from rich.console import Console

from federation.server_app import RunSettings
from node.core.progress import progress_bar
from node.demo.exchange import LAST_CDNOW_DAY
from node.learning.rows import ChurnWindow
from node.learning.run import NodesRun, federate_nodes, in_process, on_deployment_engine, print_outcomes
from node.runtime import Node

CDNOW_CUTOFF = date(1997, 12, 31)


def demo_window(today: date | None = None) -> ChurnWindow:
    """The CDNOW window (end of 1997 / first half of 1998) on the shifted dates the wallets hold."""
    shift = ((today or datetime.now(UTC).date()) - timedelta(days=1)) - LAST_CDNOW_DAY
    return ChurnWindow(CDNOW_CUTOFF + shift, LAST_CDNOW_DAY + shift)


def federation_phase(
    nodes: dict[str, Node], console: Console, rounds: int = 5, epsilon: float = 3.0, deployment: Path | None = None
) -> NodesRun:
    """Train, print each brand alone vs together, epsilon spent and remaining, contributions.

    With ``deployment`` (a work directory) the rounds run on Flower's Deployment Engine: a SuperLink
    and one SuperNode per node with TLS and SuperNode authentication; otherwise in process.
    """
    settings = RunSettings(run=f"demo-{datetime.now(UTC):%Y%m%dT%H%M%S}", rounds=rounds, epsilon=epsilon)
    window = demo_window()
    console.print(
        f"Churn window: features up to {window.cutoff} (CDNOW 1997-12-31), churned = no purchase up to "
        f"{window.horizon_end}; FedAvg over {len(nodes)} nodes, Opacus DP-SGD at epsilon {epsilon} per brand, "
        f"{rounds} rounds, "
        + (
            f"on Flower's Deployment Engine (TLS, SuperNode auth; work directory {deployment})."
            if deployment
            else "in process (`--deployment` runs the same apps on Flower's Deployment Engine)."
        )
    )
    runner = on_deployment_engine(deployment) if deployment else in_process
    with progress_bar(console) as bar:
        task = bar.add_task("federated rounds", total=rounds)
        result = federate_nodes(nodes, window, settings, lambda r: bar.advance(task), runner=runner)
    print_outcomes(result, console)
    return result
