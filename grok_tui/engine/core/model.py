"""The paper's one-layer transformer as plain weights, and an exact fast forward for training.

Weights live under the classic HookedTransformer names and shapes (`embed.W_E`,
`blocks.0.attn.W_Q`, ...), the names ARENA notebooks and TransformerLens 3 load. Analysis
builds a real TransformerLens model from them (`grok_tui.engine.core.tl`); training does not:
the loss reads one position only, and `grok_tui.engine.core.fastpath` computes it exactly from
per-token tables. `GrokModel` is one model on that path (a member axis of length 1);
`tests/test_model.py` pins it to the TransformerLens forward and gradients.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import einops
import torch
from torch import nn

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.fastpath import (
    InputPlan,
    LastPosition,
    Tables,
    last_logits,
    last_position,
    member_tables,
)
from grok_tui.errors import UserError

__all__ = ["CLASSIC_NAMES", "GrokModel", "InputPlan", "LastPosition", "Tables", "WeightsError"]

# Short attribute name -> classic HookedTransformer state-dict name.
CLASSIC_NAMES: dict[str, str] = {
    "W_E": "embed.W_E",
    "W_pos": "pos_embed.W_pos",
    "W_Q": "blocks.0.attn.W_Q",
    "b_Q": "blocks.0.attn.b_Q",
    "W_K": "blocks.0.attn.W_K",
    "b_K": "blocks.0.attn.b_K",
    "W_V": "blocks.0.attn.W_V",
    "b_V": "blocks.0.attn.b_V",
    "W_O": "blocks.0.attn.W_O",
    "b_O": "blocks.0.attn.b_O",
    "W_in": "blocks.0.mlp.W_in",
    "b_in": "blocks.0.mlp.b_in",
    "W_out": "blocks.0.mlp.W_out",
    "b_out": "blocks.0.mlp.b_out",
    "W_U": "unembed.W_U",
    "b_U": "unembed.b_U",
}

# The paper's model has biases in the MLP only; attention and unembed biases stay zero.
PAPER_TRAINED = (
    "W_E",
    "W_pos",
    "W_Q",
    "W_K",
    "W_V",
    "W_O",
    "W_in",
    "b_in",
    "W_out",
    "b_out",
    "W_U",
)


class WeightsError(UserError, ValueError):
    """A state dict that does not fit the model: the message names the key."""


def param_shapes(cfg: RunConfig) -> dict[str, tuple[int, ...]]:
    """Classic shapes for each short name."""
    d, h, e, m, v = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.d_vocab
    return {
        "W_E": (v, d),
        "W_pos": (cfg.n_ctx, d),
        "W_Q": (h, d, e),
        "b_Q": (h, e),
        "W_K": (h, d, e),
        "b_K": (h, e),
        "W_V": (h, d, e),
        "b_V": (h, e),
        "W_O": (h, e, d),
        "b_O": (d,),
        "W_in": (d, m),
        "b_in": (m,),
        "W_out": (m, d),
        "b_out": (d,),
        "W_U": (d, v),
        "b_U": (v,),
    }


def paper_to_classic(paper: Mapping[str, torch.Tensor], n_heads: int) -> dict[str, torch.Tensor]:
    """Convert weights in the paper's own layout (Nanda's `Transformer`) to classic names.

    W_U and W_pos keep their layout; W_O goes `d_model (n_heads d_head) -> n_heads d_head
    d_model`; every other W_* is transposed on its last two axes. The paper has no attention
    or unembed biases, so those are zero.
    """
    try:
        w_e = paper["embed.W_E"].T
        w_u = paper["unembed.W_U"]
        out = {
            "embed.W_E": w_e,
            "pos_embed.W_pos": paper["pos_embed.W_pos"],
            "unembed.W_U": w_u,
            "blocks.0.attn.W_O": einops.rearrange(
                paper["blocks.0.attn.W_O"], "d (h e) -> h e d", h=n_heads
            ),
            "blocks.0.mlp.W_in": paper["blocks.0.mlp.W_in"].T,
            "blocks.0.mlp.b_in": paper["blocks.0.mlp.b_in"],
            "blocks.0.mlp.W_out": paper["blocks.0.mlp.W_out"].T,
            "blocks.0.mlp.b_out": paper["blocks.0.mlp.b_out"],
        }
        for w in ("W_Q", "W_K", "W_V"):
            out[f"blocks.0.attn.{w}"] = paper[f"blocks.0.attn.{w}"].transpose(-1, -2)
    except KeyError as missing:
        raise WeightsError(f"paper-layout weights lack {missing.args[0]!r}") from None
    except Exception as exc:  # einops / shape errors from a foreign file
        raise WeightsError(f"paper-layout weights have the wrong shapes: {exc}") from None
    n_heads, d_head = out["blocks.0.attn.W_Q"].shape[0], out["blocks.0.attn.W_Q"].shape[2]
    d_model = w_e.shape[1]
    for name in ("b_Q", "b_K", "b_V"):
        out[f"blocks.0.attn.{name}"] = torch.zeros(n_heads, d_head, dtype=w_e.dtype)
    out["blocks.0.attn.b_O"] = torch.zeros(d_model, dtype=w_e.dtype)
    out["unembed.b_U"] = torch.zeros(w_u.shape[1], dtype=w_e.dtype)
    return {k: v.contiguous() for k, v in out.items()}


def classic_to_paper(classic: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `paper_to_classic` (biases the paper lacks are dropped)."""
    w_o = classic["blocks.0.attn.W_O"]
    out = {
        "embed.W_E": classic["embed.W_E"].T,
        "pos_embed.W_pos": classic["pos_embed.W_pos"],
        "unembed.W_U": classic["unembed.W_U"],
        "blocks.0.attn.W_O": einops.rearrange(w_o, "h e d -> d (h e)"),
        "blocks.0.mlp.W_in": classic["blocks.0.mlp.W_in"].T,
        "blocks.0.mlp.b_in": classic["blocks.0.mlp.b_in"],
        "blocks.0.mlp.W_out": classic["blocks.0.mlp.W_out"].T,
        "blocks.0.mlp.b_out": classic["blocks.0.mlp.b_out"],
    }
    for w in ("W_Q", "W_K", "W_V"):
        out[f"blocks.0.attn.{w}"] = classic[f"blocks.0.attn.{w}"].transpose(-1, -2)
    return {k: v.contiguous() for k, v in out.items()}


def paper_init(cfg: RunConfig) -> dict[str, torch.Tensor]:
    """The paper's initialisation, drawn in the paper's parameter order and layout.

    Every W ~ randn / sqrt(d_model) except W_U ~ randn / sqrt(d_vocab); biases zero. Drawing
    in the paper's order from `torch.manual_seed(seed)` reproduces its weights for a seed.
    """
    d, h, e, m, v = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.d_vocab
    g = torch.Generator().manual_seed(cfg.seed)
    scale = math.sqrt(d)

    def randn(*shape: int, std_div: float = scale) -> torch.Tensor:
        return torch.randn(*shape, generator=g) / std_div

    paper = {
        "embed.W_E": randn(d, v),
        "pos_embed.W_pos": randn(cfg.n_ctx, d),
        "blocks.0.attn.W_K": randn(h, e, d),
        "blocks.0.attn.W_Q": randn(h, e, d),
        "blocks.0.attn.W_V": randn(h, e, d),
        "blocks.0.attn.W_O": randn(d, h * e),
        "blocks.0.mlp.W_in": randn(m, d),
        "blocks.0.mlp.b_in": torch.zeros(m),
        "blocks.0.mlp.W_out": randn(d, m),
        "blocks.0.mlp.b_out": torch.zeros(d),
        "unembed.W_U": randn(d, v, std_div=math.sqrt(v)),
    }
    return paper_to_classic(paper, n_heads=h)


def check_weights(cfg: RunConfig, classic: Mapping[str, torch.Tensor]) -> None:
    """Raise WeightsError unless `classic` has every name with the right shape, finite values."""
    for short, shape in param_shapes(cfg).items():
        name = CLASSIC_NAMES[short]
        if name not in classic:
            raise WeightsError(f"weights lack {name!r}")
        tensor = classic[name]
        if not isinstance(tensor, torch.Tensor):
            raise WeightsError(f"{name!r} is not a tensor")
        if tuple(tensor.shape) != shape:
            raise WeightsError(f"{name!r} has shape {tuple(tensor.shape)}, expected {shape}")
        if not tensor.is_floating_point():
            raise WeightsError(f"{name!r} has dtype {tensor.dtype}, expected a float type")


class GrokModel(nn.Module):
    """The weights as parameters (short names), with the exact last-position forward."""

    def __init__(self, cfg: RunConfig, train_biases: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        trained = set(CLASSIC_NAMES) if train_biases else set(PAPER_TRAINED)
        for short, shape in param_shapes(cfg).items():
            zeros = torch.zeros(shape)
            if short in trained:
                self.register_parameter(short, nn.Parameter(zeros))
            else:
                self.register_buffer(short, zeros)

    @classmethod
    def from_classic(
        cls, cfg: RunConfig, classic: Mapping[str, torch.Tensor], train_biases: bool = False
    ) -> GrokModel:
        model = cls(cfg, train_biases=train_biases)
        model.load_classic(classic)
        return model

    def load_classic(self, classic: Mapping[str, torch.Tensor]) -> None:
        check_weights(self.cfg, classic)
        with torch.no_grad():
            for short, name in CLASSIC_NAMES.items():
                getattr(self, short).copy_(classic[name])

    def classic_state(self) -> dict[str, torch.Tensor]:
        """Detached CPU copies under classic names (what checkpoints hold)."""
        return {
            name: getattr(self, short).detach().to("cpu", copy=True).contiguous()
            for short, name in CLASSIC_NAMES.items()
        }

    def last_logits(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logits at the last position for inputs [x, y, =], shape (batch, d_vocab)."""
        plan = InputPlan(x, y, self.cfg.p, self.cfg.n_heads)
        return self.plan_logits(self.tables(), plan)

    def tables(self) -> Tables:
        """Everything before the per-example work: O(p) rows, shared by any set of inputs."""
        return member_tables(
            {short: getattr(self, short)[None] for short in CLASSIC_NAMES}, self.cfg.p
        )

    def plan_logits(self, tables: Tables, plan: InputPlan) -> torch.Tensor:
        """Per-example work for a fixed input set: softmax over 3 keys, MLP, unembed."""
        return last_logits(tables, plan)

    def plan_activations(self, tables: Tables, plan: InputPlan) -> LastPosition:
        """`plan_logits` keeping what the analysis reads at the last position (no gradients).

        The values TransformerLens caches as hook_pattern[:, :, -1], mlp.hook_pre[:, -1],
        mlp.hook_post[:, -1] and logits[:, -1]; tests/test_analysis.py pins them to it.
        """
        return last_position(tables, plan)
