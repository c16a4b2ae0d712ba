"""Duration histograms that merge by addition, so percentiles survive aggregation.

A duration falls in a bin of 1 minute below 1 hour, 15 minutes below 1 day, 1 hour below
30 days and 1 day beyond; a bin is named by its lower edge in seconds. Percentiles are
nearest-rank on the bins and answer the bin's lower edge: exact for durations on those
edges, otherwise at most one bin below the true value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

HOUR, DAY = 3600, 86400
STEPS = ((HOUR, 60), (DAY, 900), (30 * DAY, HOUR))


def bin_of(seconds: float) -> int:
    s = max(int(seconds), 0)
    for limit, step in STEPS:
        if s < limit:
            return s // step * step
    return s // DAY * DAY


def add(hist: dict[str, int], seconds: float, n: int = 1) -> None:
    key = str(bin_of(seconds))
    hist[key] = hist.get(key, 0) + n


def merge(into: dict[str, int], other: Mapping[str, int] | None) -> dict[str, int]:
    for key, n in (other or {}).items():
        into[key] = into.get(key, 0) + int(n)
    return into


def merged(hists: Iterable[Mapping[str, int] | None]) -> dict[str, int]:
    out: dict[str, int] = {}
    for h in hists:
        merge(out, h)
    return out


def count(hist: Mapping[str, int]) -> int:
    return sum(hist.values())


def percentile(hist: Mapping[str, int], p: float) -> int | None:
    """The nearest-rank ``p`` (0 < p <= 1) percentile, in seconds; None when empty."""
    total = count(hist)
    if not total:
        return None
    rank = max(math.ceil(p * total), 1)
    seen = 0
    for edge in sorted(hist, key=int):
        seen += hist[edge]
        if seen >= rank:
            return int(edge)
    return None  # unreachable: rank <= total


def share_below(hist: Mapping[str, int], seconds: int) -> float | None:
    """The share of durations under ``seconds`` (exact when ``seconds`` is a bin edge)."""
    total = count(hist)
    if not total:
        return None
    return sum(n for edge, n in hist.items() if int(edge) < seconds) / total
