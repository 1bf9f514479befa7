"""PIPL compliance: purposes, notices, consent, gates, audit trail. Knows nothing of HTTP."""
