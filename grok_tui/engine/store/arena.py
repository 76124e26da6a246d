"""Import and export the published paper run, `full_run_data.pth` (ARENA chapter 1.5).

The file (Hugging Face model repo `callummcdougall/grokking_full_run_data`, made by Neel
Nanda's training Colab for Nanda et al. 2023) is one `torch.save`d dict:

    state_dicts   list of 501 `Transformer.state_dict()`s, epochs 0, 100, ..., 50,000: the
                  11 weights in the paper's own layout (`model.paper_to_classic` says
                  which) plus the causal-mask buffer `blocks.0.attn.mask` (n_ctx, n_ctx);
                  the paper's model is float32 (any float dtype is accepted)
    epochs        the 501 checkpoint epochs (index i <-> state_dicts[i])
    train_losses  50,000 floats: train_losses[e] is the train loss at epoch e
    test_losses   5,000 floats: test_losses[i] is the test loss at epoch 10 * i
    model         not needed here and ignored (any plain data loads)

ARENA plots `train_losses[::10]` against `test_losses` on `x = 10 * arange(5000)` and the
checkpoint metrics against `x = epochs`, which fixes both alignments; the paper's notebook
loads each state dict strictly into its `Transformer`, which fixes the keys. The data split
is not stored: the paper's is regenerated (`data.split_indices`, seed 0, frac 0.3). Also
accepted: `epochs` as a range or integer tensor, losses as tensors, a test loss every epoch
(as many test as train losses), and a `config` dict (ours, or the paper's Config fields).

Reading never unpickles arbitrary objects: only `torch.load(weights_only=True)` (plus the
harmless `range`), so a file whose unpickling would run code is refused before anything
runs; and the sizes its zip directory declares are checked first, so a small deflated file
cannot declare gigabytes and exhaust memory (`untrusted.check_zip_sizes`). Files this
module exports also carry `config` (`RunConfig.to_dict()`), so a round trip keeps the split
and recipe.

An imported run has checkpoints and metrics but no `resume.pt` (no optimiser state): it can
be analysed, not trained further; `Run.ensure_resumable()` says so in one line.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grok_tui.engine.core.config import ConfigError, RunConfig, max_tensor_elements
from grok_tui.engine.core.model import (
    CLASSIC_NAMES,
    GrokModel,
    InputPlan,
    WeightsError,
    classic_to_paper,
    paper_to_classic,
    param_shapes,
)
from grok_tui.engine.store.atomic import temp_beside
from grok_tui.engine.store.run_meta import RunMeta
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.store.tensor_files import describe_load_error, load_plain
from grok_tui.engine.store.untrusted import FileProblem, check_zip_sizes

SOURCE_PREFIX = "arena:"
TEST_EVERY = 10  # the published file records the test loss every 10 epochs
MASK_KEY = "blocks.0.attn.mask"
# The paper's module order (Embed, PosEmbed, Attention, MLP, Unembed), as its state_dict().
PAPER_KEYS = (
    "embed.W_E",
    "pos_embed.W_pos",
    "blocks.0.attn.W_K",
    "blocks.0.attn.W_Q",
    "blocks.0.attn.W_V",
    "blocks.0.attn.W_O",
    "blocks.0.mlp.W_in",
    "blocks.0.mlp.b_in",
    "blocks.0.mlp.W_out",
    "blocks.0.mlp.b_out",
    "unembed.W_U",
)
# Biases the paper's model lacks: exporting a run whose biases moved would change the model.
_ABSENT_BIASES = ("b_Q", "b_K", "b_V", "b_O", "b_U")


@dataclass
class ArenaFile:
    """A validated file: paper-layout state dicts (converted one at a time) and losses."""

    name: str
    config: RunConfig
    epochs: list[int]
    state_dicts: list[dict[str, torch.Tensor]]  # paper layout, float32
    train_losses: list[float]  # index = epoch
    test_losses: list[float]  # index * test_every = epoch
    test_every: int

    def classic(self, index: int) -> dict[str, torch.Tensor]:
        return paper_to_classic(self.state_dicts[index], n_heads=self.config.n_heads)


# -- reading ---------------------------------------------------------------------------------
def load_arena_file(path: Path | str) -> ArenaFile:
    """Load and validate a file in the published format; RunError names the first bad key."""
    path = Path(path)
    name = path.name
    if not path.exists():
        raise RunError(f"no such file: {path}")
    if not path.is_file():
        raise RunError(f"{path} is not a file")
    try:  # before torch inflates anything: a small file must not declare gigabytes
        check_zip_sizes(path, 8 * max_tensor_elements())
    except FileProblem as exc:
        raise RunError(str(exc)) from None
    try:
        with _harmless_globals():
            data = load_plain(path)
    except Exception as exc:  # refused global, truncated zip, not a torch file, ...
        raise RunError(f"{name} cannot be loaded safely: {describe_load_error(exc)}") from None
    if not isinstance(data, Mapping):
        raise RunError(f"{name} must hold a dict, got {type(data).__name__}")
    for key in ("state_dicts", "epochs", "train_losses", "test_losses"):
        if key not in data:
            raise RunError(f"{name} lacks the key {key!r} (not a full_run_data file)")

    raw_sds = data["state_dicts"]
    if not isinstance(raw_sds, (list, tuple)) or not raw_sds:
        raise RunError(f"{name}: 'state_dicts' must be a non-empty list of state dicts")
    epochs = _int_list(data["epochs"], f"{name}: 'epochs'")
    if len(epochs) != len(raw_sds):
        raise RunError(
            f"{name}: 'epochs' has {len(epochs)} entries but 'state_dicts' has {len(raw_sds)}"
        )
    if epochs[0] < 0 or any(b <= a for a, b in itertools.pairwise(epochs)):
        raise RunError(f"{name}: 'epochs' must be non-negative and strictly increasing")
    train_losses = _float_list(data["train_losses"], f"{name}: 'train_losses'")
    test_losses = _float_list(data["test_losses"], f"{name}: 'test_losses'")
    # Equal lengths mean a test loss every epoch (the paper's later Trainer); the published
    # file has one every 10 (5,000 against 50,000).
    test_every = 1 if len(test_losses) == len(train_losses) > 1 else TEST_EVERY

    first = raw_sds[0]
    if not isinstance(first, Mapping):
        raise RunError(f"{name}: 'state_dicts'[0] must be a dict, got {type(first).__name__}")
    config = _infer_config(first, data.get("config"), epochs, f"{name}: 'state_dicts'[0]", name)
    expected = paper_shapes(config)
    state_dicts = [
        _checked_state_dict(sd, expected, f"{name}: 'state_dicts'[{i}]")
        for i, sd in enumerate(raw_sds)
    ]
    return ArenaFile(name, config, epochs, state_dicts, train_losses, test_losses, test_every)


def _harmless_globals() -> contextlib.AbstractContextManager[object]:
    """Allow `range` too (an `epochs` saved as a range): building one cannot run code."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    return safe_globals([range]) if safe_globals else contextlib.nullcontext()


def paper_shapes(cfg: RunConfig) -> dict[str, tuple[int, ...]]:
    """Shapes in the paper's layout, derived from the classic ones through the one converter."""
    meta = {CLASSIC_NAMES[k]: torch.empty(s, device="meta") for k, s in param_shapes(cfg).items()}
    return {k: tuple(v.shape) for k, v in classic_to_paper(meta).items()}


def _infer_config(
    sd: Mapping[str, Any], extra: Any, epochs: list[int], where: str, name: str
) -> RunConfig:
    """Shapes from the weights; the rest from a `config` dict if the file has one, else the
    paper's recipe (frac 0.3, data seed 0, lr 1e-3, weight decay 1)."""
    dims = {}
    for key, ndim in (("embed.W_E", 2), ("blocks.0.attn.W_Q", 3), ("blocks.0.mlp.W_in", 2)):
        tensor = sd.get(key)
        if not isinstance(tensor, torch.Tensor):
            raise RunError(f"{where} lacks the tensor {key!r}")
        if tensor.dim() != ndim:
            raise RunError(f"{where}[{key!r}] has shape {tuple(tensor.shape)}, expected {ndim}-D")
        dims[key] = tuple(tensor.shape)
    d_model, d_vocab = dims["embed.W_E"]
    n_heads, d_head, _ = dims["blocks.0.attn.W_Q"]
    d_mlp = dims["blocks.0.mlp.W_in"][0]
    spacing = 0
    for a, b in itertools.pairwise(epochs):
        spacing = math.gcd(spacing, b - a)
    values: dict[str, Any] = {}
    if extra is not None:
        values = _config_values(extra, name)
    shapes = {"p": d_vocab - 1, "d_model": d_model, "n_heads": n_heads, "d_head": d_head,
              "d_mlp": d_mlp}  # fmt: skip
    for key, value in shapes.items():
        if key in values and values[key] != value:
            raise RunError(f"{name}: config {key!r} is {values[key]!r} but the weights say {value}")
    values.update(shapes)
    # The run ends at its last checkpoint, whatever the file's config planned.
    values["epochs"] = epochs[-1]
    values["checkpoint_every"] = spacing or values.get("checkpoint_every", 100)
    values.setdefault("preset", "arena")
    try:
        return RunConfig.from_dict(values)
    except ConfigError as exc:
        raise RunError(f"{name}: {exc}") from None


def _config_values(extra: Any, name: str) -> dict[str, Any]:
    """RunConfig fields from a file's `config` dict (ours, or the paper's Config as a dict)."""
    if not isinstance(extra, Mapping):
        raise RunError(f"{name}: 'config' must be a dict, got {type(extra).__name__}")
    for key, ok in (
        ("fn_name", "add"),
        ("act_type", "ReLU"),
        ("num_layers", 1),
        ("use_ln", False),
        ("n_ctx", 3),
    ):
        if key in extra and extra[key] != ok:
            raise RunError(f"{name}: config {key!r} is {extra[key]!r}; only {ok!r} is supported")
    values = {k: v for k, v in extra.items() if isinstance(k, str)}
    # The paper's Config has one `seed` for init and split; ours keeps them apart.
    if "seed" in values and "data_seed" not in values:
        values["data_seed"] = values["seed"]
    return values


def _checked_state_dict(
    sd: Any, expected: dict[str, tuple[int, ...]], where: str
) -> dict[str, torch.Tensor]:
    if not isinstance(sd, Mapping):
        raise RunError(f"{where} must be a dict, got {type(sd).__name__}")
    out = {}
    for key in sd:
        if not isinstance(key, str):
            raise RunError(f"{where} has a non-string key {key!r}")
        # Buffers and hook entries carry no weights: the causal mask, TransformerLens's IGNORE.
        if key in expected or key.endswith((".mask", ".IGNORE")) or ".hook_" in key:
            continue
        raise RunError(f"{where} has the unexpected key {key!r} (not the paper's model)")
    for key, shape in expected.items():
        if key not in sd:
            raise RunError(f"{where} lacks {key!r}")
        tensor = sd[key]
        if not isinstance(tensor, torch.Tensor):
            raise RunError(f"{where}[{key!r}] is not a tensor")
        if tuple(tensor.shape) != shape:
            raise RunError(f"{where}[{key!r}] has shape {tuple(tensor.shape)}, expected {shape}")
        if not tensor.is_floating_point():
            raise RunError(f"{where}[{key!r}] has dtype {tensor.dtype}, expected a float type")
        out[key] = tensor.to(torch.float32)  # the run format is float32 throughout
        if not bool(torch.isfinite(out[key]).all()):  # imported, it analysed as 'nan%' maps
            raise RunError(f"{where}[{key!r}] holds NaN or infinite values: not trained weights")
    return out


def _int_list(value: Any, where: str) -> list[int]:
    if isinstance(value, torch.Tensor):
        if value.dim() != 1 or value.is_floating_point() or value.is_complex():
            raise RunError(f"{where} must be a 1-D integer tensor or a list of ints")
        return [int(v) for v in value.tolist()]
    if not isinstance(value, (list, tuple, range)):
        raise RunError(f"{where} must be a list of ints, got {type(value).__name__}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, torch.Tensor) and v.dim() == 0 and not v.is_floating_point():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise RunError(f"{where}[{i}] must be an int, got {v!r}")
        out.append(v)
    return out


def _float_list(value: Any, where: str) -> list[float]:
    if isinstance(value, torch.Tensor):
        if value.dim() != 1 or value.is_complex():
            raise RunError(f"{where} must be a 1-D tensor or a list of numbers")
        return [float(v) for v in value.tolist()]
    if not isinstance(value, (list, tuple)):
        raise RunError(f"{where} must be a list of numbers, got {type(value).__name__}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_complex():
            v = v.item()  # some trainers append 0-d loss tensors
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise RunError(f"{where}[{i}] must be a number, got {v!r}")
        out.append(float(v))
    return out


# -- importing -------------------------------------------------------------------------------
def import_arena(
    pth_path: Path | str,
    run_dir: Path | str,
    source: str | None = None,
    device: str = "cpu",
    on_progress: Callable[[int, int], None] | None = None,
    evaluate: bool = True,
) -> Run:
    """Make a finished run directory from a `full_run_data.pth`-format file.

    Metrics: a row per epoch with the file's train loss and (every 10th epoch) test loss;
    at each checkpoint the accuracies, and any loss the file lacks, are computed from the
    weights on the regenerated split (about half the import time on two CPU cores for the
    published 501 checkpoints; `evaluate=False` leaves them null). The directory is built
    beside `run_dir` and renamed into place at the end, so a crash or a bad file never
    leaves a half run, and an existing non-empty directory is never touched. `source`
    defaults to "arena:<file name>"; `on_progress(done, total)` follows the checkpoints.
    """
    run_path = Path(run_dir)
    _refuse_non_empty(run_path)
    arena = load_arena_file(pth_path)  # validate everything before writing anything
    label = source or f"{SOURCE_PREFIX}{arena.name}"
    try:
        run_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_path.name}.import-", dir=run_path.parent))
    except OSError as exc:
        raise RunError(f"cannot create {run_path}: {exc.strerror}") from None
    try:
        run = Run.create(tmp, arena.config, device, source=label)
        _write_run(run, arena, device if evaluate else None, on_progress)
        try:
            os.rename(tmp, run_path)  # replaces an empty directory, never a non-empty one
        except OSError:
            raise RunError(f"run directory {run_path} already exists and is not empty") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Run(run_path)


def import_arena_from(
    spec_or_path: str | Path,
    run_dir: Path | str,
    device: str = "cpu",
    on_progress: Callable[[int, int], None] | None = None,
    evaluate: bool = True,
) -> Run:
    """`import_arena` from a local file or a hub spec such as
    `hf:callummcdougall/grokking_full_run_data` (fetched through the Hugging Face cache)."""
    from grok_tui.engine.store.hub import fetch_hub_file, is_hub_spec

    text = str(spec_or_path)
    if is_hub_spec(text):
        _refuse_non_empty(Path(run_dir))  # before a download of half a gigabyte
        path = fetch_hub_file(text)
        source = f"{SOURCE_PREFIX}{text}"
        return import_arena(path, run_dir, source, device, on_progress, evaluate)
    return import_arena(text, run_dir, None, device, on_progress, evaluate)


def _refuse_non_empty(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise RunError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        raise RunError(f"run directory {path} already exists and is not empty")


class _Evaluator:
    """Loss and accuracy of one checkpoint on the regenerated split, by the fast forward."""

    def __init__(self, cfg: RunConfig, device: str) -> None:
        from grok_tui.engine.core.data import make_dataset

        data = make_dataset(cfg).to(device)
        self.model = GrokModel(cfg).to(device)
        x, y = data.x, data.y
        self.plans = [
            (InputPlan(x[idx], y[idx], cfg.p, cfg.n_heads), data.labels[idx])
            for idx in (data.train_idx, data.test_idx)
        ]

    def __call__(self, classic: Mapping[str, torch.Tensor]) -> list[float]:
        """[train_loss, test_loss, train_acc, test_acc]."""
        from grok_tui.engine.core.loss import loss_and_accuracy

        self.model.load_classic(classic)
        with torch.no_grad():
            tables = self.model.tables()
            (tr_loss, tr_acc), (te_loss, te_acc) = (
                loss_and_accuracy(self.model.plan_logits(tables, plan), labels)
                for plan, labels in self.plans
            )
            values = torch.stack([tr_loss, te_loss, tr_acc, te_acc])
        return [float(v) for v in values.tolist()]


def _write_run(
    run: Run, arena: ArenaFile, device: str | None, on_progress: Callable[[int, int], None] | None
) -> None:
    """Checkpoints, then metrics, then status done. device None: measure nothing."""
    evaluate = None
    if device is not None:
        try:
            evaluate = _Evaluator(arena.config, device)
        except (RuntimeError, ValueError) as exc:  # an unusable device string
            raise RunError(f"cannot evaluate on device {device!r}: {exc}") from None
    measured: dict[int, list[float]] = {}
    total = len(arena.epochs)
    for i, epoch in enumerate(arena.epochs):
        classic = arena.classic(i)
        try:
            run.save_checkpoint(epoch, classic)
            if evaluate is not None:
                measured[epoch] = evaluate(classic)
        except WeightsError as exc:
            raise RunError(f"{arena.name}: 'state_dicts'[{i}]: {exc}") from None
        if on_progress is not None:
            on_progress(i + 1, total)

    # A row for every epoch something is known about (not range(last epoch): a file is
    # untrusted, and one with a checkpoint at epoch 10**12 must not mean 10**12 rows).
    known = set(range(len(arena.train_losses))) | set(arena.epochs)
    known.update(range(0, len(arena.test_losses) * arena.test_every, arena.test_every))
    nan = math.nan
    rows = []
    for epoch in sorted(known):
        # The file's own losses are the record; the weights fill in only what it lacks.
        train = arena.train_losses[epoch] if epoch < len(arena.train_losses) else None
        k, r = divmod(epoch, arena.test_every)
        test = arena.test_losses[k] if r == 0 and k < len(arena.test_losses) else None
        m_train = m_test = train_acc = test_acc = nan
        if epoch in measured:
            m_train, m_test, train_acc, test_acc = measured[epoch]
        rows.append(
            {"epoch": epoch, "train_loss": m_train if train is None else train,
             "test_loss": m_test if test is None else test, "train_acc": train_acc,
             "test_acc": test_acc, "lr": nan, "wall_s": nan}
        )  # fmt: skip
    run.append_metrics(rows)
    run.update_meta(
        status="done",
        message=f"imported {total} checkpoints; no optimiser state, so it cannot be resumed",
    )


# -- resuming ------------------------------------------------------------------------------
def is_imported(meta: RunMeta) -> bool:
    """Whether the run came from an ARENA/paper file (and so has no optimiser state)."""
    return meta.source.startswith(SOURCE_PREFIX)


# -- exporting -----------------------------------------------------------------------------
def export_arena(run: Run, out_path: Path | str) -> Path:
    """Write a run as a `full_run_data.pth`-format file that ARENA notebooks load.

    Plain tensors, lists, numbers and dicts only (loadable with weights_only=True): the
    checkpoints in the paper layout with the causal mask, their epochs, a train loss per
    epoch, a test loss every 10 epochs (NaN where the run has none), `model` (the last
    checkpoint) and `config` (the RunConfig as a dict). Written to a temp file, then renamed
    (the temp file has the final name, in a temp folder: torch names the archive after it).
    """
    out = run.export_target(out_path)
    cfg = run.meta().config
    epochs = run.checkpoint_epochs()
    if not epochs:
        raise RunError(f"{run.path} has no checkpoints to export")
    mask = torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx))
    state_dicts = []
    for epoch in epochs:
        classic = run.load_checkpoint(epoch, cfg)
        for short in _ABSENT_BIASES:
            if bool(classic[CLASSIC_NAMES[short]].ne(0).any()):
                raise RunError(
                    f"cannot export {run.path}: checkpoint {epoch} has a non-zero {short}, "
                    "which the paper's model (and this format) does not have"
                )
        paper = classic_to_paper(classic)
        sd = {}
        for key in PAPER_KEYS:
            sd[key] = paper[key].to("cpu", torch.float32).contiguous().clone()
            if key == "blocks.0.attn.W_O":
                sd[MASK_KEY] = mask.clone()  # the paper's module order puts the buffer here
        state_dicts.append(sd)

    # One train loss per epoch up to the last checkpoint or row, whichever is later (a
    # stopped run's newest checkpoint has no row yet: its losses are NaN). Rows beyond what
    # the config plans are not the trainer's: they must not size these lists.
    bound = max(cfg.epochs, epochs[-1])
    by_epoch = {}
    for r in run.read_metrics(whole=True):  # rows missing are named, not skipped past
        if r["epoch"] > bound:
            run.warn_once(f"metrics.jsonl has a row for epoch {int(r['epoch']):,}, past this run's "
                 f"{bound:,} epochs: left out of the export")  # fmt: skip
            continue
        by_epoch[int(r["epoch"])] = r
    last = max([epochs[-1], *by_epoch])
    train_losses = [float(by_epoch.get(e, {}).get("train_loss", math.nan)) for e in range(last + 1)]
    test_losses = [
        float(by_epoch.get(e, {}).get("test_loss", math.nan))
        for e in range(0, last + 1, TEST_EVERY)
    ]
    payload = {
        "state_dicts": state_dicts,
        "epochs": list(epochs),
        "train_losses": train_losses,
        "test_losses": test_losses,
        "model": state_dicts[-1],
        "config": cfg.to_dict(),
    }
    # torch names the archive inside after the file it writes: a temp file of the final
    # name, in a temp folder beside it, so the archive is `full_run_data/`, as published.
    tmp_dir = temp_beside(out)
    tmp = tmp_dir / out.name
    try:
        tmp_dir.mkdir()
        torch.save(payload, tmp)
        os.replace(tmp, out)
    except OSError as exc:
        raise RunError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return out
