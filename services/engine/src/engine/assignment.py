"""Which live replica drives each partition: rendezvous hashing, bounded by the partitions' weights.

Every replica computes the same assignment from the same inputs (the live replicas and the weights recorded
in `engine_partitions`, read in one round), so no coordination beyond the database is needed.

Plain rendezvous hashing (each partition to the replica with the highest hash of (partition, replica))
moves only the partitions of a replica that comes or goes, but it balances partitions, not work: bots sit in
their market's partition, so 20 markets fill about 19 of the 64 partitions, and two replicas split them by
chance (14/6 markets in the bench). `balanced` keeps rendezvous hashing's order of preference and bounds
each replica's load ("consistent hashing with bounded loads", Mirrokni, Thorup and Zadimorghaddam 2018):
partitions are placed heaviest first, each with the first replica in its preference order that stays
within `cap` (the mean load plus a tolerance), else with the least loaded one. A partition therefore moves
only when balance asks for it, and the same live set with the same weights always gives the same answer —
a replica restarted under its name gets back exactly the partitions it had.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from trading.models import ENGINE_PARTITIONS

# A replica may carry this much over the mean load before a partition goes elsewhere for balance…
TOLERANCE = 0.05
# …and at least this many bots over it: a handful of bots never justifies moving a partition (a move costs
# a drain and a load, and keeps tests' small fleets on their rendezvous replicas).
SLACK = 50


def _score(partition: int, replica: str) -> bytes:
    return hashlib.blake2b(f"{partition}:{replica}".encode(), digest_size=8).digest()


def preference(partition: int, replicas: Iterable[str]) -> list[str]:
    """The replicas in the partition's order of preference (rendezvous hashing: highest score first)."""
    return sorted(set(replicas), key=lambda replica: _score(partition, replica), reverse=True)


def assign(partition: int, replicas: Iterable[str]) -> str | None:
    """The replica a partition goes to by rendezvous hashing alone (no weights), None when there is none."""
    return max(replicas, key=lambda replica: _score(partition, replica), default=None)


def cap(total: int, replicas: int) -> float:
    """The most load `balanced` gives a replica while another one has room."""
    mean = total / replicas
    return max(mean * (1 + TOLERANCE), mean + SLACK)


def balanced(
    weights: Mapping[int, int], replicas: Iterable[str], partitions: Iterable[int] = range(ENGINE_PARTITIONS)
) -> dict[int, str]:
    """Each partition's replica among `replicas` given the partitions' weights (bots; absent = 0); {} when
    there is no replica. Deterministic: the same inputs give the same assignment on every replica."""
    live = sorted(set(replicas))
    if not live:
        return {}
    parts = sorted(set(partitions))
    weight = {p: max(0, weights.get(p, 0)) for p in parts}
    limit = cap(sum(weight.values()), len(live))
    load = dict.fromkeys(live, 0)
    owners: dict[int, str] = {}
    # Heaviest first (ties by partition number): the large ones get their first choice, the small ones fill in.
    for partition in sorted(parts, key=lambda p: (-weight[p], p)):
        order = preference(partition, live)
        w = weight[partition]
        # An empty partition weighs nothing: it stays where rendezvous hashing puts it.
        fits = next((r for r in order if w == 0 or load[r] + w <= limit), None)
        # Too heavy for any replica's room: the least loaded (the first such in preference order) takes it.
        choice = fits if fits is not None else min(order, key=lambda r: load[r])
        owners[partition] = choice
        load[choice] += w
    return owners


def loads(weights: Mapping[int, int], owners: Mapping[int, str]) -> dict[str, int]:
    """The total weight each replica of an assignment carries."""
    total: dict[str, int] = dict.fromkeys(owners.values(), 0)
    for partition, replica in owners.items():
        total[replica] += max(0, weights.get(partition, 0))
    return total


# A partition's recorded weight follows its bots only by steps of at least this many bots and a tenth of the
# weight: a bot started or stopped must not move a partition back and forth across a balance boundary.
WEIGHT_STEP = 5


def worth_recording(recorded: int, count: int) -> bool:
    """Whether a partition's bot count has moved far enough from its recorded weight to record it."""
    return abs(count - recorded) >= max(WEIGHT_STEP, recorded // 10)
