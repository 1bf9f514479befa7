"""A vertical run's apps on the Deployment Engine: the label holder's ServerApp, the partners' ClientApp.

The private set intersection runs first, over signed peer calls (``federate vertical --deployment``
does it from the label holder's node); what these apps read is the alignment each side keeps in
its database. The ServerApp opens the label holder's node from the run config's ``data-dir`` and
leads the run (:func:`node.learning.vertical_run.lead`), printing a line per round and the outcome;
each partner's SuperNode runs the ClientApp with ``--node-config "data-dir='…'"``. Flower starts a
process per message: the partner's run record travels in ``context.state``, its node and rows are
read again by each process.
"""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from federation.vertical_client import PartnerSite, make_partner_app
from federation.vertical_server import VerticalRound, VerticalSettings
from node.learning.rows import window_of
from node.learning.vertical_run import lead, partner_site
from node.runtime import Node

_nodes: dict[str, Node] = {}


def _node(data_dir: str) -> Node:
    if not data_dir:
        raise ValueError("the app needs the node's data directory: data-dir in the node or run config")
    if data_dir not in _nodes:
        _nodes[data_dir] = Node.open(Path(data_dir))
    return _nodes[data_dir]


def settings_of(config: dict[str, bool | float | int | str]) -> VerticalSettings:
    """The run's settings from the run config (the keys of :class:`VerticalSettings`, dashed)."""
    fields = VerticalSettings.__dataclass_fields__
    values = {k.replace("-", "_"): v for k, v in config.items() if k.replace("-", "_") in fields}
    return VerticalSettings(**values)  # type: ignore[arg-type]


def site_of(context: Context) -> PartnerSite:
    """This SuperNode's brand as a partner in the run (its privacy terms are its own settings)."""
    cfg = context.run_config
    node = _node(str(context.node_config.get("data-dir", "")))
    return partner_site(node, str(cfg.get("run", "")), window_of(cfg))


client_app = make_partner_app(site_of)
server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    """The label holder's run: progress and the outcome on stdout, one JSON object per line."""
    cfg = context.run_config
    holder = _node(str(cfg.get("data-dir", "")))

    def on_round(r: VerticalRound) -> None:
        print(json.dumps({"round": r.round, "auc": r.auc, "epsilon": r.epsilon, "refused": r.refused}), flush=True)

    outcome = lead(holder, grid, settings_of(cfg), window_of(cfg), on_round)
    print(json.dumps({"report": outcome.to_json()}), flush=True)
