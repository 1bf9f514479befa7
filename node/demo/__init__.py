"""``alliance-node demo`` and the local alliances the benchmarks and tests set up: three brands on
real CDNOW purchases, consent, exchange, settlement, federated learning and the chain."""
