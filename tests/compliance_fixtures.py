"""A complete, publishable notice and a wired ConsentService for the compliance tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

BASE_NOTICE: dict[str, Any] = {
    "version": 1,
    "language": "zh-CN",
    "published_at": "2026-11-01T00:00:00+00:00",
    "handler": {"name": "Sky Airline Co., Ltd.", "contact": "privacy@airline.example", "uscc": "91310000MA1FL0000X"},
    "purposes": {
        "loyalty.core": {
            "description": "Keep your miles: earn, redeem, expire, tiers.",
            "pi_categories": ["identity.pseudonym", "loyalty.balance", "loyalty.transactions"],
            "methods": ["storage", "computation"],
            "retention": "while the account is open, then 3 years",
            "at_expiry": "deleted, or anonymised for statistics",
        },
        "points_exchange:": {
            "description": "Move points to a partner brand you name.",
            "pi_categories": ["identity.pseudonym", "loyalty.transactions"],
            "methods": ["provision"],
            "retention": "3 years after the exchange",
            "at_expiry": "deleted",
        },
        "joint_modeling": {
            "description": "Train alliance churn models without sharing raw data.",
            "pi_categories": ["identity.pseudonym", "loyalty.transactions"],
            "methods": ["fl_training"],
            "retention": "1 year",
            "at_expiry": "excluded from training and deleted",
        },
        "personalization": {
            "description": "Offers chosen for you.",
            "pi_categories": ["loyalty.balance", "loyalty.transactions"],
            "methods": ["adm"],
            "retention": "1 year",
            "at_expiry": "tags deleted",
        },
        "marketing": {
            "description": "News and offers by message.",
            "pi_categories": ["contact.basic"],
            "methods": ["contact"],
            "retention": "until you withdraw",
            "at_expiry": "deleted",
        },
    },
    "rights": {
        "access": "POST /v1/me/access-requests",
        "get_copy": "GET /v1/me/access-requests/{id}",
        "transfer": "POST /v1/me/transfer",
        "correct": "POST /v1/me/corrections",
        "delete": "POST /v1/me/erasure",
        "restrict": "POST /v1/me/consents (withdraw)",
        "close_account": "POST /v1/me/erasure",
        "withdraw_consent": "POST /v1/me/consents/withdraw",
        "complaint": "privacy@airline.example",
    },
    "pi_collected": ["identity.pseudonym", "contact.basic", "loyalty.balance", "loyalty.transactions"],
    "pi_shared": [],
}


def notice_data(**changes: Any) -> dict[str, Any]:
    """A deep copy of the base notice with top-level fields replaced."""
    data = copy.deepcopy(BASE_NOTICE)
    data.update(changes)
    return data


def now() -> datetime:
    return datetime.now(UTC)


PIA: dict[str, Any] = {
    "title": "Points exchange with partner brands",
    "features": ["points_exchange"],
    "purposes": ["points_exchange:"],
    "legitimacy": "Separate consent per recipient brand (PIPL Art. 23).",
    "necessity": "Only a pairwise pseudonym and the points moved are sent.",
    "impact": "Cross-brand linkage if exchange records were combined.",
    "likelihood": "low",
    "risk_level": "medium",
    "measures": ["Pairwise pseudonyms, the consent gate, audited transfers."],
}


def consent_service(directory: Any, audit: Any = None, signer: Any = None) -> Any:
    """A ConsentService on a fresh SQLite file in ``directory``, with the base notice published."""
    from compliance.fieldcrypt import FieldCipher
    from compliance.notices import parse_notice
    from compliance.pseudonyms import Keyring
    from compliance.service import ConsentService
    from compliance.store import ComplianceStore
    from ledger import note
    from ledger.storage import create_engine

    engine = create_engine(f"sqlite:///{directory / 'c.db'}")
    cipher = FieldCipher.generate()
    store = ComplianceStore(engine, cipher)
    store.create_schema()
    keyring = Keyring(engine, "airline.example", cipher)
    keyring.create_schema()
    signer = signer or note.Signer.generate("airline.example")
    svc = ConsentService(store, keyring, signer, audit or (lambda *a, **k: None))
    svc.publish_notice(parse_notice(notice_data()))
    return svc
