"""The one Warp kernel both solvers' cell lists share: sorting each linked cell by particle index.

MPM's gathering P2G and SPH's neighbour search link particles into per-cell lists with
`wp.atomic_exch`, which orders a list by thread timing; sorting each list by index makes every
later sum run in a fixed order, so a scene gives the same bytes run after run.
"""

import warp as wp


@wp.kernel(module="unique", module_options={"enable_backward": False})
def sort_cells(head: wp.array(dtype=int), next: wp.array(dtype=int)):
    # Insertion sort of one cell's list (head[c], then next[p] until -1) by particle index.
    c = wp.tid()
    p = head[c]
    first = int(-1)  # noqa: UP018, RUF046
    while p >= 0:
        following = next[p]
        if first < 0 or p < first:
            next[p] = first
            first = p
        else:
            q = first
            while next[q] >= 0 and next[q] < p:
                q = next[q]
            next[p] = next[q]
            next[q] = p
        p = following
    head[c] = first
