"""Reading orders balanced across readers: each case at each position about equally often.

A Williams design (Williams, Aust J Sci Res 1949): the cyclic Latin square whose first row is
``0, 1, n-1, 2, n-2, ...``, so every case comes at every position once in ``n`` rows and, for an even
number of cases, follows every other case once; for an odd number the square is completed by its
mirror image (``2n`` rows). The study's seed relabels the cases and shuffles the rows, so orders are
reproducible from the seed yet unpredictable to a reader. The reader enrolled ``k``-th (0-based)
reads row ``k`` of the shuffled rows (a whole square before its mirror), cycling when there are more readers than rows: at any number of
readers, the count of a case at a position differs by at most one between cases and positions.

A crossover reader's second session reads the row half the design further on (``k + rows / 2``): for
an even number of cases another row of the same square, so no case keeps its position; for an odd
number the row of the mirror square. Readers' second sessions are then consecutive rows too, and stay
balanced the same way.
"""

from __future__ import annotations

import numpy as np


def williams_rows(cases: int) -> list[list[int]]:
    """The rows of the Williams design for ``cases`` treatments (here: cases), before relabelling."""
    first = [0]
    low, high = 1, cases - 1
    while len(first) < cases:
        first.append(low)
        low += 1
        if len(first) < cases:
            first.append(high)
            high -= 1
    rows = [[(value + shift) % cases for value in first] for shift in range(cases)]
    return rows if cases % 2 == 0 else rows + [row[::-1] for row in rows]


def balanced_order(seed: int, position: int, cases: int, second_session: bool = False) -> list[int]:
    """The order (a permutation of ``range(cases)``) of the reader enrolled ``position``-th, in their
    first session or (``second_session``, crossover studies) their second."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(cases)
    rows = williams_rows(cases)
    # Each square (the cyclic one, then for an odd count its mirror) is used whole before the next.
    squares = [square * cases + rng.permutation(cases) for square in range(len(rows) // cases)]
    shift = len(rows) // 2 if second_session else 0
    row = rows[int(np.concatenate(squares)[(position + shift) % len(rows)])]
    return [int(labels[value]) for value in row]
