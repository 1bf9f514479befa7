"""Settlement between brands: statements per window, swapped by signed calls, netted.

``statements`` is the pure arithmetic (obligations, fractions carried, signed statements, net
payments); ``reconcile`` compares two nodes' exchange logs (pure); ``service`` swaps statements
with peers and checks their logs through signed checkpoints; ``report`` nets statement files.
"""
