"""libsodium's ristretto255 (RFC 9496), through a maintained binding: the group PSI works in.

``pysodium`` over the system's libsodium (Debian: ``libsodium23``) when there is one; otherwise
``rbcl``, which ships libsodium inside the wheel. rbcl writes its bundled library to a temporary
file on import and never removes it; the file is unlinked here once loaded (the mapping stays), so
a process per message on the Deployment Engine leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable

from_hash: Callable[[bytes], bytes]
scalar_random: Callable[[], bytes]
scalarmult: Callable[[bytes, bytes], bytes]

try:
    import pysodium as _binding  # type: ignore[import-untyped]

    BINDING = f"pysodium over the system's libsodium {_binding.sodium.sodium_version_string().decode()}"
except (ImportError, OSError, ValueError, AttributeError):  # no system libsodium
    import rbcl as _binding  # type: ignore[import-untyped,no-redef]

    # the package's ``_sodium`` attribute is the loaded library; the module holds the file's path
    with contextlib.suppress(OSError):
        os.unlink(importlib.import_module("rbcl._sodium").lib_path)
    BINDING = "rbcl (libsodium bundled)"

from_hash = _binding.crypto_core_ristretto255_from_hash
scalar_random = _binding.crypto_core_ristretto255_scalar_random
scalarmult = _binding.crypto_scalarmult_ristretto255
