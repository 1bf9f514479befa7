"""``alliance-node``: the command line. ``main`` builds the root app and adds each group;
``common`` holds what every command shares (``--data-dir``, opening the node, clear failures)."""
