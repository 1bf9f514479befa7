"""Smart contracts that anchor the alliance's ledgers and settlement windows on an EVM chain.

Vyper sources in ``sources/``, their compiled ABI and bytecode in ``build/`` (reproducible with
``python -m contracts.build``), and a web3.py client in :mod:`contracts.client`. Optional per
alliance: nothing else in the node needs a chain.
"""
