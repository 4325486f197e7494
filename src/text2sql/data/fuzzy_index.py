"""Bounded fuzzy look-up: which of many stored strings a short query string spells, at a cost that
does not grow with how many strings are stored.

A dense query × keys score matrix costs memory and time in proportion to the number of keys (100k
keys × a long question's spans is gigabytes). Instead the keys are indexed by their character
trigrams (each key padded with a space at both ends, so its first and last letters count too): a
query visits the posting lists of its rarest trigrams only, up to `max_postings` entries, ranks the
keys found by the share of trigrams they have in common with it, and scores only the best
`max_candidates` with rapidfuzz. Two strings whose `fuzz.ratio` passes a high cutoff share most of
their trigrams, so the true matches rank first.

Small problems are scored directly instead (`best_scores`): when queries × keys stay within
DIRECT_COMPARISONS, rapidfuzz's vectorised `cdist` scores every pair, exactly and in well under a
millisecond for a typical question against a few thousand values, where the index's per-query Python
overhead would cost more. Either way the work per call is bounded.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_POSTINGS = 4096  # posting-list entries one query visits: bounds its time and memory whatever the key count
MAX_CANDIDATES = 16  # keys one query scores with rapidfuzz
# Queries × keys scored directly, every pair (4 bytes each: 4 MB at most); past it, the index.
DIRECT_COMPARISONS = 1_000_000


@dataclass
class SearchStats:
    """What look-ups cost, summed over the queries they answered: the bound tests assert on."""

    queries: int = 0
    postings: int = 0  # posting-list entries visited
    comparisons: int = 0  # rapidfuzz scores computed


def trigrams(text: str) -> set[str]:
    """The character trigrams of `text` padded with a space at both ends."""
    padded = f" {text} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


class FuzzyIndex:
    """Keys (already folded as queries are) found by `fuzz.ratio` at or above a cutoff."""

    def __init__(self, keys: Sequence[str]):
        import numpy as np

        self.keys = list(keys)
        ids: dict[str, int] = {}
        grams, owners = array("i"), array("i")
        counts = array("i")
        for k, key in enumerate(self.keys):
            found = trigrams(key)
            counts.append(len(found))
            for gram in found:
                grams.append(ids.setdefault(gram, len(ids)))
                owners.append(k)
        gram_of = np.frombuffer(grams, dtype=np.int32) if grams else np.zeros(0, dtype=np.int32)
        order = np.argsort(gram_of, kind="stable")
        owner_of = np.frombuffer(owners, dtype=np.int32) if owners else np.zeros(0, dtype=np.int32)
        self._ids = ids
        self._postings = owner_of[order]  # keys holding trigram g: _postings[_starts[g]:_starts[g + 1]]
        self._starts = np.concatenate([[0], np.cumsum(np.bincount(gram_of, minlength=len(ids)))]).astype(np.int64)
        self._grams = np.frombuffer(counts, dtype=np.int32) if counts else np.zeros(0, dtype=np.int32)
        self._lengths = np.fromiter((len(k) for k in self.keys), dtype=np.int32, count=len(self.keys))

    def __len__(self) -> int:
        return len(self.keys)

    def best_scores(
        self, queries: Sequence[str], cutoff: float, *, stats: SearchStats | None = None
    ) -> dict[int, float]:
        """key index -> best `fuzz.ratio` of any query against it, for keys scoring at least `cutoff`:
        every pair scored when that stays within DIRECT_COMPARISONS, else each query through `search`."""
        import numpy as np
        from rapidfuzz import fuzz, process

        stats = stats if stats is not None else SearchStats()
        if not queries or not self.keys:
            return {}
        if len(queries) * len(self.keys) <= DIRECT_COMPARISONS:
            stats.queries += len(queries)
            stats.comparisons += len(queries) * len(self.keys)
            scores = process.cdist(queries, self.keys, scorer=fuzz.ratio, score_cutoff=cutoff, workers=1)
            best = scores.max(axis=0)
            return {k: float(best[k]) for k in np.nonzero(best >= cutoff)[0].tolist()}
        found: dict[int, float] = {}
        for query in queries:
            for k, score in self.search(query, cutoff, stats=stats):
                found[k] = max(found.get(k, 0.0), score)
        return found

    def search(
        self,
        query: str,
        cutoff: float,
        *,
        max_postings: int = MAX_POSTINGS,
        max_candidates: int = MAX_CANDIDATES,
        stats: SearchStats | None = None,
    ) -> list[tuple[int, float]]:
        """(key index, `fuzz.ratio` score) of keys scoring at least `cutoff` (0-100) against `query`,
        among at most `max_candidates` scored after at most `max_postings` posting entries visited."""
        import numpy as np
        from rapidfuzz import fuzz

        stats = stats if stats is not None else SearchStats()
        stats.queries += 1
        known = [self._ids[g] for g in trigrams(query) if g in self._ids]
        if not known:
            return []
        sizes = [(int(self._starts[g + 1] - self._starts[g]), g) for g in known]
        sizes.sort()
        parts: list[Any] = []
        visited = 0
        for size, g in sizes:  # rarest trigrams first: they tell keys apart
            if visited and visited + size > max_postings:
                break
            take = min(size, max_postings - visited)
            parts.append(self._postings[self._starts[g] : self._starts[g] + take])
            visited += take
        stats.postings += visited
        found, shared = np.unique(np.concatenate(parts), return_counts=True)
        # fuzz.ratio = 200·LCS/(len(a)+len(b)) ≤ 200·min/(len(a)+len(b)): lengths too far apart cannot pass.
        length = len(query)
        other = self._lengths[found]
        fits = 200 * np.minimum(other, length) >= cutoff * (other + length)
        found, shared = found[fits], shared[fits]
        if len(found) > max_candidates:
            share = shared / (self._grams[found] + len(sizes))
            best = np.argsort(-share, kind="stable")[:max_candidates]
            found = found[np.sort(best)]
        out = []
        for k in found.tolist():
            stats.comparisons += 1
            score = fuzz.ratio(query, self.keys[k], score_cutoff=cutoff)
            if score >= cutoff:
                out.append((k, float(score)))
        return out
