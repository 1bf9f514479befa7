"""Joint models across brands: features from a node's journal, Opacus DP-SGD training, Flower apps.

Depends on ``compliance`` and ``ledger`` only; the node hands it consented, pseudonymous rows.
"""
