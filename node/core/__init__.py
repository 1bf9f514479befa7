"""The node's foundation: every other wing may use it, and it uses none of them.

``settings`` (``node.toml`` and ``ALLIANCE_*``), ``datadir`` (creating a node's directory: keys,
config, database), ``auth`` (staff keys, member tokens, who the current request acts for), ``tokens`` (member
tokens bound to one account),
``audit`` (the audit trail as services call it), ``refusals`` (a reason code and a message, never
an HTTP status), ``schema`` and ``migrations/`` (Alembic), ``periodic`` (serve's background
loops), ``faults`` (named crash points for the fault tests), ``progress`` (progress bars) and
``processes`` (nodes as child processes on loopback, free ports).
"""
