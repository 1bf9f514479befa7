"""The alliance's EVM chain, when configured: anchoring logs and settling windows on chain.

``config`` connects from the node's settings; ``anchoring`` posts each log's checkpoint to the
Anchor contract while serving; ``settlement`` posts statement hashes and closes windows.
"""
