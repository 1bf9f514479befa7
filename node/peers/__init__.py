"""Other brands' nodes: who they are, how a call to them is signed, and the one way out.

``registry`` is the alliance's list of brands (keys, URLs, regions, point values); ``signing``
signs and verifies peer calls (RFC 9421); ``nonces`` keeps the nonces of accepted calls in the
database, so a replay is refused even after a restart; ``outbound`` is the only module that sends
anything to another node, each call authorised by the egress check first; ``witnessing`` asks
peers to cosign this node's checkpoints.
"""
