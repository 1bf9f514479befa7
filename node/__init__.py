"""The alliance node: one brand's server, CLI and demo, built on :mod:`ledger`, :mod:`compliance`,
:mod:`federation` and :mod:`contracts`.

Wings by capability, each importing only those below it (``tests/test_dependencies.py``):
``cli`` → ``demo`` → ``api`` / ``clientapp`` → ``runtime`` (the composition root) →
``learning`` / ``chain`` → ``settlement`` → ``exchange`` → ``peers`` → ``wallet`` → ``core``.
See docs/architecture.md.
"""


def package_version() -> str:
    """The installed alliance-node's version (``0+unknown`` in a checkout that was never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("alliance-node")
    except PackageNotFoundError:
        return "0+unknown"
