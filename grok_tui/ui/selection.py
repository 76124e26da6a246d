"""What the shared keys do, the same in every pane: h head, n neuron, c cluster.

The selection (head, neuron, cluster) belongs to the run screen; panes show it. These
functions say how a key moves it, given the snapshot on screen:

  head     the next/previous attention head (wrapping);
  neuron   the next/previous neuron of the selected cluster's list (all neurons by index,
           or one cluster's by fraction explained), wrapping;
  cluster  the next/previous entry of all -> each key frequency -> unclustered; the neuron
           moves to the best neuron of that cluster (the first of its list), and stays
           where it is back at "all".
"""

from __future__ import annotations

from typing import Any

import numpy as np

SHARED = ("head", "neuron", "cluster")


def step_head(snap: Any, head: int, step: int) -> int:
    return (head + step) % snap.n_heads


def step_neuron(snap: Any, neuron: int, cluster: int | None, step: int) -> int:
    listed = snap.neurons_in(cluster)
    if len(listed) == 0:
        return (neuron + step) % snap.d_mlp
    where = np.flatnonzero(listed == neuron)
    pos = int(where[0]) + step if where.size else (0 if step > 0 else len(listed) - 1)
    return int(listed[pos % len(listed)])


def step_cluster(snap: Any, cluster: int | None, neuron: int, step: int) -> tuple[int | None, int]:
    """(the next cluster, its best neuron); back at "all" or at an empty cluster the neuron
    stays."""
    choices = snap.cluster_choices()
    pos = choices.index(cluster) if cluster in choices else 0
    cluster = choices[(pos + step) % len(choices)]
    listed = snap.neurons_in(cluster)
    return cluster, (int(listed[0]) if cluster is not None and len(listed) else neuron)


def clamp(snap: Any, head: int, neuron: int) -> tuple[int, int]:
    """A head and neuron valid for this snapshot (another run may have fewer)."""
    return min(max(head, 0), snap.n_heads - 1), min(max(neuron, 0), snap.d_mlp - 1)
