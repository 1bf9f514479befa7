"""Members' points at this brand: the append-only journal, tiers and earning.

``journal`` is the pure logic (lots, oldest-expiring first, expiry, balance derived); ``store``
keeps it in the database, each movement under the member's account lock; ``tiers`` are the
status rules; ``purchases`` records each purchase id once per brand, on a sane day; ``loyalty``
earns points on purchases and shows a member their wallet.
"""
