"""The alliance node: one brand's server, CLI and demo, built on :mod:`ledger`, :mod:`compliance`,
:mod:`federation` and :mod:`contracts`.

Wings by capability, each importing only those below it (``tests/test_dependencies.py``):
``cli`` → ``demo`` → ``api`` / ``clientapp`` → ``runtime`` (the composition root) →
``learning`` / ``chain`` → ``settlement`` → ``exchange`` → ``peers`` → ``wallet`` → ``core``.
See docs/architecture.md.
"""
