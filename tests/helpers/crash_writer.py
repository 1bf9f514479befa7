"""Child process for the crash tests: appends fixed-size batches until it is killed."""

from __future__ import annotations

import sys

from ledger.storage import LedgerStore, create_engine


def main() -> None:
    """argv: database URL, batch size, entry size. Prints 'BEGIN <size>' before every batch."""
    url, batch, entry_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = LedgerStore(create_engine(url))
    store.create_schema()
    log = store.ensure_log("audit", "crash.example/audit")
    n = 0
    while True:
        size = log.size
        print(f"BEGIN {size}", flush=True)
        log.append([(f"{size + i:012d}".encode() * (entry_size // 12 + 1))[:entry_size] for i in range(batch)])
        n += 1


if __name__ == "__main__":
    main()
