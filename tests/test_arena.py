"""The published-run format (`full_run_data.pth`): export, import, alignment, refusals.

`paper_forward` re-implements the paper's own `Transformer` (Nanda et al. 2023, the
progress-measures-paper repo's transformers.py) on a raw state dict, so the layout is
checked against the model that wrote the published file, not against our own converter.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import all_tokens
from grok_tui.engine.core.loss import reference_cross_entropy
from grok_tui.engine.core.model import GrokModel
from grok_tui.engine.store.arena import (
    MASK_KEY,
    PAPER_KEYS,
    export_arena,
    import_arena,
    is_imported,
)
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.training.train import Trainer

TRAINED = RunConfig(
    p=23,
    frac_train=0.5,
    lr=3e-3,
    weight_decay=1.0,
    epochs=300,
    checkpoint_every=50,
    preset="t",
)


def paper_forward(sd: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """Logits (batch, pos, d_vocab) of the paper's Transformer on a paper-layout state dict."""
    x = torch.einsum("dbp -> bpd", sd["embed.W_E"][:, tokens])
    x = x + sd["pos_embed.W_pos"][: x.shape[-2]]
    w_k, w_q, w_v = (sd[f"blocks.0.attn.{n}"] for n in ("W_K", "W_Q", "W_V"))
    k = torch.einsum("ihd,bpd->biph", w_k, x)
    q = torch.einsum("ihd,bpd->biph", w_q, x)
    v = torch.einsum("ihd,bpd->biph", w_v, x)
    scores = torch.einsum("biph,biqh->biqp", k, q)
    n = x.shape[-2]
    mask = torch.tril(torch.ones(n, n))
    masked = torch.tril(scores) - 1e10 * (1 - mask)
    attn = torch.softmax(masked / math.sqrt(w_k.shape[1]), dim=-1)
    z = torch.einsum("biph,biqp->biqh", v, attn)
    z_flat = z.permute(0, 2, 1, 3).reshape(z.shape[0], n, -1)  # b i q h -> b q (i h)
    x = x + torch.einsum("df,bqf->bqd", sd["blocks.0.attn.W_O"], z_flat)
    pre = torch.einsum("md,bpd->bpm", sd["blocks.0.mlp.W_in"], x) + sd["blocks.0.mlp.b_in"]
    post = torch.relu(pre)
    x = x + torch.einsum("dm,bpm->bpd", sd["blocks.0.mlp.W_out"], post) + sd["blocks.0.mlp.b_out"]
    return x @ sd["unembed.W_U"]


def paper_split(p: int, frac: float, seed: int) -> tuple[list[int], list[int]]:
    """The paper's gen_train_test, written out again: shuffle (x, y, =) triples, cut at frac."""
    pairs = [(i, j, p) for i in range(p) for j in range(p)]
    random.seed(seed)
    random.shuffle(pairs)
    div = int(frac * len(pairs))
    flat = [i * p + j for i, j, _ in pairs]
    return flat[:div], flat[div:]


def random_paper_sd(cfg: RunConfig, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Paper-layout weights as the paper initialises them (biases random here, to be seen)."""
    d, h, e, m, v = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.d_vocab

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) / math.sqrt(d)

    return {
        "embed.W_E": r(d, v),
        "pos_embed.W_pos": r(3, d),
        "blocks.0.attn.W_K": r(h, e, d),
        "blocks.0.attn.W_Q": r(h, e, d),
        "blocks.0.attn.W_V": r(h, e, d),
        "blocks.0.attn.W_O": r(d, h * e),
        MASK_KEY: torch.tril(torch.ones(3, 3)),
        "blocks.0.mlp.W_in": r(m, d),
        "blocks.0.mlp.b_in": r(m),
        "blocks.0.mlp.W_out": r(d, m),
        "blocks.0.mlp.b_out": r(d),
        "unembed.W_U": torch.randn(d, v, generator=gen) / math.sqrt(v),
    }


def logits_of(
    cfg: RunConfig, weights: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    tokens = all_tokens(cfg.p)
    model = GrokModel(cfg).to(dtype)
    model.load_classic(weights)
    with torch.no_grad():
        return model.last_logits(tokens[:, 0], tokens[:, 1])


def in_float64(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.double() for k, v in sd.items()}


# Layout checks compare two different forwards (ours, the paper's einsums) on the same
# weights. In float32 they round differently, by an amount that depends on which GEMM kernel
# the CPU picks (1.3e-5 on an Intel Xeon against 1e-5 on the AMD EPYC the test was written on).
# In float64 both are exact to a few ulps of the largest partial sum: each logit is two
# chained dot products of length <= 512, whose rounding error is bounded by
# 512 * 2**-53 * sum|terms| ~ 6e-14 * sum|terms|, and sum|terms| is below 1e3 for these
# weights: far below LAYOUT_TOL, while a layout error (a transposed or swapped matrix) moves
# logits by O(1).
LAYOUT_TOL = 1e-9


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Run:
    run = Run.create(tmp_path_factory.mktemp("trained") / "run", TRAINED, "cpu")
    assert Trainer(run, "cpu").train().status == "done"
    return run


def test_export_writes_the_published_layout(trained: Run, tmp_path) -> None:
    path = export_arena(trained, tmp_path / "full_run_data.pth")
    data = torch.load(path, weights_only=True)
    epochs = list(range(0, 301, 50))
    assert data["epochs"] == epochs
    assert len(data["state_dicts"]) == len(epochs)
    assert len(data["train_losses"]) == 301 and len(data["test_losses"]) == 31
    assert all(isinstance(v, float) for v in data["train_losses"] + data["test_losses"])
    rows = trained.read_metrics()
    assert data["train_losses"] == [r["train_loss"] for r in rows]
    assert data["test_losses"] == [r["test_loss"] for r in rows[::10]]
    tokens = all_tokens(TRAINED.p)
    for epoch, sd in zip(epochs, data["state_dicts"], strict=True):
        assert list(sd) == [*PAPER_KEYS[:6], MASK_KEY, *PAPER_KEYS[6:]]
        assert torch.equal(sd[MASK_KEY], torch.tril(torch.ones(3, 3)))
        # The paper's own forward on the exported weights is our model's forward.
        ours = logits_of(TRAINED, trained.load_checkpoint(epoch), torch.float64)
        theirs = paper_forward(in_float64(sd), tokens)[:, -1]
        torch.testing.assert_close(theirs, ours, atol=LAYOUT_TOL, rtol=LAYOUT_TOL)
    assert data["model"].keys() == data["state_dicts"][-1].keys()
    assert data["config"] == TRAINED.to_dict()


def test_the_exported_archive_is_named_after_the_file_not_the_temp_file(
    trained: Run, tmp_path
) -> None:
    """torch names the zip's inner folder after the file it writes: it was
    `.full_run_data.pth.PID.tmp/`; the published file's is `full_run_data/`."""
    import zipfile

    path = export_arena(trained, tmp_path / "full_run_data.pth")
    with zipfile.ZipFile(path) as archive:
        folders = {name.split("/")[0] for name in archive.namelist()}
    assert folders == {"full_run_data"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full_run_data.pth"]  # no temp left


def test_export_then_import_gives_the_same_run(trained: Run, tmp_path) -> None:
    path = export_arena(trained, tmp_path / "exported.pth")
    seen: list[tuple[int, int]] = []
    run = import_arena(path, tmp_path / "imported", on_progress=lambda i, n: seen.append((i, n)))
    assert seen[-1] == (7, 7)

    meta = run.meta()
    assert meta.config == TRAINED
    assert meta.status == "done" and meta.source == "arena:exported.pth" and is_imported(meta)
    assert run.checkpoint_epochs() == trained.checkpoint_epochs()
    tokens = all_tokens(TRAINED.p)
    labels = (tokens[:, 0] + tokens[:, 1]) % TRAINED.p
    for epoch in run.checkpoint_epochs():
        mine, theirs = run.load_checkpoint(epoch), trained.load_checkpoint(epoch)
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
        a, b = logits_of(TRAINED, mine), logits_of(TRAINED, theirs)
        assert torch.equal(a, b)
        assert reference_cross_entropy(a, labels) == reference_cross_entropy(b, labels)

    old, new = trained.read_metrics(), run.read_metrics()
    assert [r["epoch"] for r in new] == [r["epoch"] for r in old]
    for o, n in zip(old, new, strict=True):
        e = n["epoch"]
        assert n["train_loss"] == o["train_loss"]
        if e % 10 == 0:
            assert n["test_loss"] == o["test_loss"]
        else:
            assert math.isnan(n["test_loss"])
        if e % 50 == 0:  # measured from the weights on the split the config names
            assert n["train_acc"] == pytest.approx(o["train_acc"], abs=1e-6)
            assert n["test_acc"] == pytest.approx(o["test_acc"], abs=1e-6)
        else:
            assert math.isnan(n["train_acc"]) and math.isnan(n["test_acc"])
        assert math.isnan(n["lr"]) and math.isnan(n["wall_s"])


def test_imported_runs_cannot_be_resumed(trained: Run, tmp_path) -> None:
    trained.ensure_resumable()  # trained here: has resume.pt
    run = import_arena(export_arena(trained, tmp_path / "f.pth"), tmp_path / "imp")
    assert not run.resume_path.exists()
    with pytest.raises(RunError, match="no optimiser state") as info:
        run.ensure_resumable()
    assert "\n" not in str(info.value) and "f.pth" in str(info.value)


def write_published(path, cfg: RunConfig, epochs: list[int], n_train: int, n_test: int, **extra):
    """A file in exactly the published shape: paper-layout state dicts with the mask,
    `epochs`, float lists of losses, `model` = the last state dict."""
    gen = torch.Generator().manual_seed(7)
    sds = [random_paper_sd(cfg, gen) for _ in epochs]
    data = {
        "state_dicts": sds,
        "epochs": epochs,
        "train_losses": [1000.0 + e for e in range(n_train)],
        "test_losses": [2000.0 + i for i in range(n_test)],
        "model": sds[-1],
        **extra,
    }
    torch.save(data, path)
    return sds


def test_a_published_format_file_imports_with_the_paper_config_and_alignment(tmp_path) -> None:
    cfg = RunConfig()  # p = 113, the paper's model
    # As published: a checkpoint every 100 epochs up to the last one, a train loss for each
    # epoch before it, a test loss every 10 epochs (50,000 / 5,000 there; 200 / 20 here).
    sds = write_published(tmp_path / "full_run_data.pth", cfg, [0, 100, 200], 200, 20)
    run = import_arena(tmp_path / "full_run_data.pth", tmp_path / "run")
    meta = run.meta()
    assert meta.config == RunConfig(epochs=200, checkpoint_every=100, preset="arena")
    assert meta.source == "arena:full_run_data.pth"

    tokens = all_tokens(cfg.p)
    labels = (tokens[:, 0] + tokens[:, 1]) % cfg.p
    train_idx, test_idx = paper_split(cfg.p, 0.3, 0)
    measured = {}
    for epoch, sd in zip([0, 100, 200], sds, strict=True):
        reference = paper_forward(sd, tokens)[:, -1]
        ours = logits_of(cfg, run.load_checkpoint(epoch), torch.float64)
        exact = paper_forward(in_float64(sd), tokens)[:, -1]
        torch.testing.assert_close(ours, exact, atol=LAYOUT_TOL, rtol=LAYOUT_TOL)
        right = reference.argmax(-1) == labels
        measured[epoch] = (
            reference_cross_entropy(reference[train_idx], labels[train_idx]).item(),
            reference_cross_entropy(reference[test_idx], labels[test_idx]).item(),
            right[train_idx].float().mean().item(),
            right[test_idx].float().mean().item(),
        )

    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == list(range(201))
    for r in rows:
        e = r["epoch"]
        if e < 200:
            assert r["train_loss"] == 1000.0 + e  # train_losses[e] belongs to epoch e
        if e % 10 == 0 and e < 200:
            assert r["test_loss"] == 2000.0 + e // 10  # test_losses[i] belongs to epoch 10 i
        elif e != 200:
            assert math.isnan(r["test_loss"])
        if e in measured:
            *_, train_acc, test_acc = measured[e]
            assert r["train_acc"] == pytest.approx(train_acc, abs=1e-6)
            assert r["test_acc"] == pytest.approx(test_acc, abs=1e-6)
        else:
            assert math.isnan(r["train_acc"]) and math.isnan(r["test_acc"])
    # The file has no losses for its last checkpoint: they come from the weights.
    assert rows[200]["train_loss"] == pytest.approx(measured[200][0], rel=1e-4)
    assert rows[200]["test_loss"] == pytest.approx(measured[200][1], rel=1e-4)


def test_import_without_evaluation_keeps_only_the_files_numbers(tmp_path) -> None:
    write_published(tmp_path / "f.pth", RunConfig(p=23), [0, 10], 10, 1)
    rows = import_arena(tmp_path / "f.pth", tmp_path / "r", evaluate=False).read_metrics()
    assert [r["train_loss"] for r in rows[:10]] == [1000.0 + e for e in range(10)]
    assert rows[0]["test_loss"] == 2000.0
    assert all(math.isnan(r["train_acc"]) and math.isnan(r["test_acc"]) for r in rows)
    assert math.isnan(rows[10]["train_loss"])  # the last checkpoint's loss is not in the file


def test_a_config_dict_in_the_file_is_honoured_and_checked(tmp_path) -> None:
    cfg = RunConfig(p=23)
    paper_style = {"p": 23, "frac_train": 0.4, "seed": 5, "lr": 3e-3, "fn_name": "add"}
    write_published(tmp_path / "a.pth", cfg, [0, 10, 20], 20, 2, config=paper_style)
    meta = import_arena(tmp_path / "a.pth", tmp_path / "a").meta()
    assert (meta.config.frac_train, meta.config.data_seed, meta.config.lr) == (0.4, 5, 3e-3)
    assert (meta.config.epochs, meta.config.checkpoint_every) == (20, 10)

    write_published(tmp_path / "b.pth", cfg, [0], 1, 1, config={"fn_name": "subtract"})
    with pytest.raises(RunError, match="'fn_name'"):
        import_arena(tmp_path / "b.pth", tmp_path / "b")
    write_published(tmp_path / "c.pth", cfg, [0], 1, 1, config={"d_mlp": 7})
    with pytest.raises(RunError, match="'d_mlp' is 7 but the weights say 512"):
        import_arena(tmp_path / "c.pth", tmp_path / "c")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_epochs_may_be_a_range_and_losses_tensors(tmp_path) -> None:
    """Other writers of the format: `epochs` as a range, losses as tensors (0-d or 1-D)."""
    cfg = RunConfig(p=23)
    write_published(tmp_path / "f.pth", cfg, [0, 10], 10, 1)
    data = torch.load(tmp_path / "f.pth", weights_only=True)
    data["epochs"] = range(0, 11, 10)
    data["train_losses"] = torch.arange(10, dtype=torch.float64)
    data["test_losses"] = [torch.tensor(5.0)]
    torch.save(data, tmp_path / "g.pth")
    rows = import_arena(tmp_path / "g.pth", tmp_path / "r").read_metrics()
    assert [r["train_loss"] for r in rows[:10]] == [float(e) for e in range(10)]
    assert rows[0]["test_loss"] == 5.0


def test_a_test_loss_every_epoch_is_read_as_such(tmp_path) -> None:
    cfg = RunConfig(p=23)
    write_published(tmp_path / "f.pth", cfg, [0, 5], 6, 6)
    rows = import_arena(tmp_path / "f.pth", tmp_path / "r").read_metrics()
    assert [r["test_loss"] for r in rows] == [2000.0 + e for e in range(6)]


def test_import_never_touches_an_existing_directory_and_leaves_nothing_on_failure(
    trained: Run, tmp_path
) -> None:
    path = export_arena(trained, tmp_path / "f.pth")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="already exists and is not empty"):
        import_arena(path, taken)
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]
    assert (taken / "notes.txt").read_text() == "mine"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert import_arena(path, empty).meta().status == "done"  # an empty directory is fine

    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RunError):
        import_arena(tmp_path / "taken" / "notes.txt", tmp_path / "bad")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run, no temp directory


def test_export_refuses_biases_the_paper_model_lacks(trained: Run, tmp_path) -> None:
    run = Run.create(tmp_path / "biased", TRAINED, "cpu")
    weights = trained.load_checkpoint(0)
    weights["blocks.0.attn.b_Q"] = torch.full_like(weights["blocks.0.attn.b_Q"], 0.5)
    run.save_checkpoint(0, weights)
    with pytest.raises(RunError, match="non-zero b_Q"):
        export_arena(run, tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()
