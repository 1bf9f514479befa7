"""Members' programme at one brand: points earned on purchases, the wallet they see, their tier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from compliance.service import ConsentService
from node.core.batching import Batcher
from node.wallet.journal import Entry, Kind, WalletError
from node.wallet.purchases import Purchase, Purchases, check_business_day
from node.wallet.store import WalletStore
from node.wallet.tiers import TierRules, add_months, default_rules, summarise, tier_for

FEN_PER_YUAN = 100


def points_for(amount_fen: int, points_per_yuan: int) -> int:
    """Points a purchase earns: whole yuan spent times the brand's rate, rounded down (pure)."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise WalletError("bad_amount", "a purchase amount is a positive whole number of fen")
    return amount_fen * points_per_yuan // FEN_PER_YUAN


@dataclass(frozen=True)
class WalletView:
    """What a member (or an operator) sees of a wallet."""

    balance: int
    tier: str
    lots: list[dict[str, object]]
    entries: int


@dataclass
class Loyalty:
    """Earning and the wallet view for one node."""

    consent: ConsentService
    wallets: WalletStore
    purchases: Purchases
    points_per_yuan: int
    expiry_months: int
    rules: TierRules | None = None
    _earns: Batcher[tuple[str, str, int, date | None], Entry | Exception] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # purchases posted one by one from many tills commit together (group commit: one transaction, one fsync)
        self._earns = Batcher(self.earn_purchases, max_items=256)

    def earn_purchase(
        self, member_ref: str, purchase_id: str, amount_fen: int, day: date | None, today: date | None = None
    ) -> Entry:
        """Credit a purchase's points once per node (a retry gets the first answer, another member,
        amount or stated day under the same id ``idempotency_conflict``); the lot expires by the brand's
        policy. Without ``day`` the purchase is today's (UTC)."""
        item = (member_ref, purchase_id, amount_fen, day)
        result = self._earns.submit(item) if today is None else self.earn_purchases([item], today)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def _priced(self, purchase_id: str, amount_fen: int, day: date | None, today: date) -> tuple[Purchase, int, date]:
        """The purchase (today's without ``day``), its points and its lot's expiry, or why it earns none."""
        on = day or today
        check_business_day(on, today)
        points = points_for(amount_fen, self.points_per_yuan)
        if points < 1:
            raise WalletError("too_small", "this purchase earns no points")
        return Purchase(purchase_id, amount_fen, on, day is not None), points, add_months(on, self.expiry_months)

    def earn_purchases(
        self, items: Sequence[tuple[str, str, int, date | None]], today: date | None = None
    ) -> list[Entry | Exception]:
        """Credit a till's batch of ``(member_ref, purchase_id, amount_fen, day)`` in one transaction,
        each as :meth:`earn_purchase` would: one result per item (its entry, or why it was refused),
        and one refused item never refuses the others."""
        today = today or datetime.now(UTC).date()
        results: list[Entry | Exception | None] = [None] * len(items)
        accepted: list[tuple[int, tuple[str, Purchase, int, date]]] = []
        pseudonyms = self.consent.member_pseudonyms([ref for ref, *_ in items])
        for pos, (member_ref, purchase_id, amount_fen, day) in enumerate(items):
            try:
                purchase, points, expires = self._priced(purchase_id, amount_fen, day, today)
                member = pseudonyms[member_ref]
                if isinstance(member, LookupError):
                    raise member
                accepted.append((pos, (member, purchase, points, expires)))
            except (WalletError, LookupError, ValueError) as exc:  # this item only: the others go on
                results[pos] = exc
        for (pos, _), result in zip(accepted, self.purchases.earn_many([item for _, item in accepted]), strict=True):
            results[pos] = result
        return [r for r in results if r is not None]

    def view(self, member_ref: str, today: date) -> WalletView:
        """Balance today, tier over the rules' window, and the lots still holding points."""
        member = self.consent.member_pseudonym(member_ref)
        journal = self.wallets.journal(member)
        rate = self.points_per_yuan
        purchases = [
            (e.lot.earned_on, e.points * FEN_PER_YUAN // max(rate, 1))
            for e in journal
            if e.kind is Kind.EARN and e.reason == "purchase" and e.lot is not None
        ]
        rules = self.rules or default_rules()
        tier = tier_for(rules, summarise(purchases, today, rules.window_days))
        lots = self.wallets.export_member(member)["lots"]
        return WalletView(self.wallets.balance(member, today), tier.name, lots, len(journal))  # type: ignore[arg-type]
