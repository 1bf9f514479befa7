"""A reusable RFC 6962 / RFC 9162 Merkle log library.

It knows nothing of loyalty or PIPL: hashing (:mod:`ledger.rfc6962`), compact ranges
(:mod:`ledger.compact`), proofs (:mod:`ledger.proof`), signed notes and checkpoints
(:mod:`ledger.note`, :mod:`ledger.checkpoint`), witness cosignatures
(:mod:`ledger.cosignature`, :mod:`ledger.witness`), the canonical JSON entries are made of
(:mod:`ledger.canonical`), durable storage (:mod:`ledger.storage`) and export files (:mod:`ledger.export`).
"""
