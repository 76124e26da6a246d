"""Plain TransformerLens references the fast paths are tested against."""

from __future__ import annotations

import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.model import paper_init


def tl_to_classic(tl, cfg: RunConfig, what: str = "data") -> dict[str, torch.Tensor]:
    """TransformerLens parameters (or their .grad) under classic names and shapes.

    The classic -> bridge conversion only permutes entries: push a probe of distinct numbers
    through it to learn where each classic entry lands, then read the tensor there. Names
    TransformerLens does not train (its unembed bias is a buffer) are left out for grads.
    """
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    from grok_tui.engine.core.tl import _bridge_config

    tensors = tl.state_dict(keep_vars=True)
    probe = {
        name: torch.arange(t.numel(), dtype=torch.float64).reshape(t.shape)
        for name, t in paper_init(cfg).items()
    }
    where = convert_tl_checkpoint(probe, _bridge_config(cfg))
    out = {}
    for classic, bridge in zip(probe, where, strict=True):
        source = tensors[bridge]
        value = source.grad if what == "grad" else source.detach()
        if value is None:
            continue
        flat = torch.zeros(probe[classic].numel())
        flat[where[bridge].flatten().long()] = value.flatten().float()
        out[classic] = flat.reshape(probe[classic].shape)
    return out
