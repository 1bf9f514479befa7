"""What a brand brings to a federated run: its rows, its privacy book, its model shelf, its audit.

The Flower apps only talk to a :class:`Site`; where the rows and records live (a node's database,
CSV files in a simulation) is behind the two small protocols below, so the same ClientApp runs in
process, in tests and on the Deployment Engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from federation.manifest import Manifest, manifest

if TYPE_CHECKING:  # the privacy module loads Opacus and torch: the node's database layer must not
    import numpy as np

    from federation.privacy import Step

# NumPy comes with the [learning] extra: a node without it still reads its privacy book and shelf
Weights = dict[str, "np.ndarray"]


@dataclass(frozen=True)
class BrandData:
    """One brand's training and held-out rows, already scaled alike across brands.

    ``members`` are the pseudonyms behind the training rows, in order; only their manifest
    (count and hash) ever leaves the site.
    """

    x_train: list[list[float]]
    y_train: list[int]
    x_test: list[list[float]]
    y_test: list[int]
    members: tuple[str, ...] = ()
    #: rows set aside from training to decide when to stop (a simulation's; a node keeps none)
    x_val: list[list[float]] = field(default_factory=list)
    y_val: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if (
            len(self.x_train) != len(self.y_train)
            or len(self.x_test) != len(self.y_test)
            or len(self.x_val) != len(self.y_val)
        ):
            raise ValueError("one label per row")

    def manifest(self) -> Manifest:
        """Count and commitment of the members trained on."""
        return manifest(self.members) if self.members else Manifest(len(self.x_train), "")


@dataclass(frozen=True)
class RunPrivacy:
    """A brand's privacy record for one run: the noise fixed at its start and the spend so far."""

    noise_multiplier: float
    history: tuple[Step, ...] = ()


class PrivacyBook(Protocol):
    """Where a brand keeps its ``joint_modeling`` budget and each run's accountant history."""

    def budget(self) -> float:
        """The total epsilon the brand allows for ``joint_modeling``."""
        ...

    def spent_before(self, run: str) -> list[Step]:
        """Accountant history of every earlier run (budgets are cumulative across runs)."""
        ...

    def run(self, run: str) -> RunPrivacy | None:
        """This run's record, or None before its first round."""
        ...

    def record_round(
        self, run: str, round_no: int, state: RunPrivacy, epsilon: float, delta: float, manifest: Manifest
    ) -> None:
        """Store the run's state after a trained round, with what it cost and on whom."""
        ...


class ModelShelf(Protocol):
    """Where a brand keeps the versioned global models it received."""

    def store(self, run: str, round_no: int, weights: Mapping[str, np.ndarray]) -> None:
        """Keep the global model of ``round_no`` of ``run``."""
        ...


@dataclass
class MemoryPrivacyBook:
    """A :class:`PrivacyBook` in memory, for simulations and tests."""

    epsilon_budget: float
    runs: dict[str, RunPrivacy] = field(default_factory=dict)
    rounds: list[dict[str, object]] = field(default_factory=list)

    def budget(self) -> float:
        """The configured budget."""
        return self.epsilon_budget

    def spent_before(self, run: str) -> list[Step]:
        """History of the other runs."""
        return [s for name, r in self.runs.items() if name != run for s in r.history]

    def run(self, run: str) -> RunPrivacy | None:
        """This run's record."""
        return self.runs.get(run)

    def record_round(
        self, run: str, round_no: int, state: RunPrivacy, epsilon: float, delta: float, manifest: Manifest
    ) -> None:
        """Remember the state and the round."""
        self.runs[run] = state
        self.rounds.append({"run": run, "round": round_no, "epsilon": epsilon, "delta": delta, **manifest.to_json()})


@dataclass
class MemoryShelf:
    """A :class:`ModelShelf` in memory."""

    models: dict[tuple[str, int], Weights] = field(default_factory=dict)

    def store(self, run: str, round_no: int, weights: Mapping[str, np.ndarray]) -> None:
        """Keep a copy."""
        import numpy as np

        self.models[(run, round_no)] = {k: np.array(v, copy=True) for k, v in weights.items()}


#: An audit hook: (event, details). The node's implementation appends to its audit log.
Audit = Callable[[str, Mapping[str, object]], None]


def _no_audit(event: str, details: Mapping[str, object]) -> None:
    """Simulations keep no audit log."""


class RoundRefused(Exception):
    """The brand may not take part now (its gate is closed); the gate has recorded why."""


def _open_gate() -> None:
    """Simulations have no feature switch."""


@dataclass
class Site:
    """A brand as seen by the ClientApp.

    ``data`` is called at the start of every round, so a member who withdrew consent since the
    last round is not in the next one.
    """

    name: str
    data: Callable[[], BrandData]
    privacy: PrivacyBook
    shelf: ModelShelf = field(default_factory=MemoryShelf)
    audit: Audit = _no_audit
    gate: Callable[[], None] = _open_gate  # raises RoundRefused when the brand may not train now
    width: int | None = None  # the feature count, if known without reading any row
    #: DP-SGD's sampling and noise from the run's seed (simulations, whose comparisons repeat); a
    #: brand's node draws them from the operating system, or the server that sends the seed could
    #: reproduce the noise and subtract it
    repeatable_noise: bool = False

    def held_out(self) -> tuple[Sequence[Sequence[float]], Sequence[int]]:
        """The rows this brand evaluates every model on."""
        d = self.data()
        return d.x_test, d.y_test
