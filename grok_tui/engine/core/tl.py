"""The one place that knows which TransformerLens class holds the model.

TransformerLens 4 removed `HookedTransformer`; its `TransformerBridge.boot_native` builds
the same small model from a config, with the classic hook names
(`blocks.0.attn.hook_pattern`, `blocks.0.mlp.hook_post`, ...) and weight views
(`model.W_E`, `model.W_Q`, ... with a leading layer axis). Its own state-dict names differ
(`blocks.0.attn.q.weight`, ...), so run files keep the classic names and this module
converts with TransformerLens's own `convert_tl_checkpoint`.

`import transformer_lens` takes ~3 s, so it happens here, on first use, never at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.model import check_weights


def _bridge_config(cfg: RunConfig) -> Any:
    from transformer_lens.config import TransformerBridgeConfig

    return TransformerBridgeConfig(
        n_layers=1,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp,
        d_vocab=cfg.d_vocab,
        d_vocab_out=cfg.d_vocab,
        n_ctx=cfg.n_ctx,
        act_fn="relu",
        normalization_type=None,
        init_weights=False,
        default_prepend_bos=False,
    )


def hooked_model(
    cfg: RunConfig, classic: Mapping[str, torch.Tensor], device: str | torch.device = "cpu"
) -> Any:
    """A TransformerLens model (hooks, `run_with_cache`) holding the given classic weights."""
    import transformer_lens.model_bridge.sources.native  # noqa: F401  (attaches boot_native)
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    check_weights(cfg, classic)
    bridge_cfg = _bridge_config(cfg)
    model = TransformerBridge.boot_native(bridge_cfg)
    state = {k: v.detach().to(torch.float32) for k, v in classic.items()}
    model.load_state_dict(convert_tl_checkpoint(state, bridge_cfg), strict=True)
    return model.to(device).eval()
