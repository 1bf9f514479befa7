"""Points exchange between two brands' nodes: try / confirm / cancel with tombstones.

Pure parts: ``quotes`` (value-conserving, signed), ``protocol`` (the state machines), ``records``
(the entry both exchange logs hold). Stores: ``store`` (both sides' records, each transition with
its wallet movement) and ``links`` (link codes and pairwise link ids). Services: ``source`` (the
member's side), ``destination`` (answering a peer), ``linking``, ``exchange_log`` and ``recovery``.
"""
