"""The node's foundation, which every other wing may use and which uses none of them.

Settings (``node.toml`` and ``ALLIANCE_*``), the data directory (keys, config), who is calling
(staff keys, member tokens), the database schema and its Alembic migrations, refusals (a reason
code and a message, never an HTTP status), the background loop serve runs, named crash points for
the fault tests, progress bars, and child processes on loopback.
"""
