"""The ClientApp a SuperNode runs on the Deployment Engine: each brand's node behind its loader.

Flower starts a fresh process for every message, which imports this module: the node's data
directory comes from the SuperNode's ``--node-config "data-dir='…'"`` and the churn window from the
run config (``cutoff`` and ``horizon-end``, ISO days; default the last 180 days). The app itself is
the same :func:`federation.client_app.make_client_app` the in-process Grid drives.
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context

from federation.client_app import make_client_app
from federation.site import Site
from node.learning.rows import window_of
from node.runtime import Node

_sites: dict[tuple[str, str, str], Site] = {}


def site_of(context: Context) -> Site:
    """This SuperNode's brand, opened once per process."""
    data_dir = str(context.node_config.get("data-dir", ""))
    if not data_dir:
        raise ValueError("the SuperNode needs --node-config \"data-dir='<the node's data directory>'\"")
    window = window_of(context.run_config)
    key = (data_dir, window.cutoff.isoformat(), window.horizon_end.isoformat())
    if key not in _sites:
        _sites[key] = Node.open(Path(data_dir)).learning_site(window)[0]
    return _sites[key]


app = make_client_app(site_of)
