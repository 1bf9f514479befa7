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


#: Which optional part of the install brings each package a command may need (pyproject's extras).
EXTRA_OF_PACKAGE = {
    "torch": "learning",
    "opacus": "learning",
    "flwr": "learning",
    "numpy": "learning",
    "web3": "chain",
    "eth_tester": "chain",
    "eth_utils": "chain",
    "vyper": "chain",
    "lifetimes": "demo",
    "pandas": "demo",
}


def missing_extra(exc: BaseException) -> str | None:
    """The one line to show when ``exc`` is a package of an extra that is not installed (else None)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    extra = EXTRA_OF_PACKAGE.get(exc.name.split(".")[0])
    if extra is None:
        return None
    return f"this needs {exc.name.split('.')[0]}, part of the [{extra}] extra: pip install 'alliance-node[{extra}]'"
