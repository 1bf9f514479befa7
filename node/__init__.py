"""The alliance node: one brand's server, CLI and demo, built on :mod:`ledger`."""
