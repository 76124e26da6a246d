"""Damaged and hostile files: each is one clear error line, nothing runs, nothing is changed.

Through the public API only: Run.open / meta / load_checkpoint / load_resume, import_arena.
A pickle whose unpickling would write a marker file stands in for code execution; a
control shows that plain `pickle.loads` of the same kind of payload does write it.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import shutil
import struct
from pathlib import Path

import pytest
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.store.arena import import_arena
from grok_tui.engine.store.runs import Run, RunError
from tests.test_arena import random_paper_sd

CFG = RunConfig(p=7, frac_train=0.5, d_model=16, n_heads=2, d_head=8, d_mlp=32, preset="t")


class Payload:
    """Unpickling this opens (creates) `marker`: what an attacker's file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def assert_one_line(exc: pytest.ExceptionInfo[RunError], *needles: str) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg and "\x1b" not in msg, msg
    assert len(re.sub(r"/\S+", "PATH", msg)) < 200, msg  # short, whatever the paths
    for needle in needles:
        assert needle in msg, msg
    return msg


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def run(tmp_path) -> Run:
    run = Run.create(tmp_path / "run", CFG, "cpu")
    run.save_checkpoint(0, paper_init(CFG))
    return run


def test_the_marker_payload_is_live(tmp_path) -> None:
    """Control: unpickled the ordinary way, the payload does write its marker."""
    marker = tmp_path / "control-marker"
    pickle.loads(pickle.dumps({"x": Payload(marker)}))
    assert marker.exists()


# -- checkpoints -------------------------------------------------------------------------------
def valid_checkpoint_bytes(run: Run) -> bytes:
    return run.checkpoint_path(0).read_bytes()


@pytest.mark.parametrize(
    "damage",
    ["empty", "truncated", "garbage", "huge_header", "header_only"],
)
def test_damaged_checkpoints(run: Run, damage: str) -> None:
    good = valid_checkpoint_bytes(run)
    data = {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "garbage": b"\x00\xff not safetensors" * 40,
        "huge_header": struct.pack("<Q", 2**62) + b"{}",
        "header_only": good[: 8 + struct.unpack("<Q", good[:8])[0]],
    }[damage]
    path = run.checkpoint_path(100)
    path.write_bytes(data)
    before = snapshot(run.path)
    with pytest.raises(RunError) as exc:
        run.load_checkpoint(100)
    assert_one_line(exc, "epoch_0000100.safetensors")
    assert snapshot(run.path) == before


def write_weights(run: Run, epoch: int, weights: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in weights.items()}, str(run.checkpoint_path(epoch)))


def test_checkpoint_with_wrong_shape_missing_key_or_int_dtype(run: Run) -> None:
    weights = paper_init(CFG)
    wrong = dict(weights, **{"blocks.0.attn.W_Q": torch.zeros(2, 16, 9)})
    write_weights(run, 1, wrong)
    with pytest.raises(RunError) as exc:
        run.load_checkpoint(1)
    assert_one_line(exc, "'blocks.0.attn.W_Q'", "(2, 16, 9)", "(2, 16, 8)")

    missing = {k: v for k, v in weights.items() if k != "embed.W_E"}
    write_weights(run, 2, missing)
    with pytest.raises(RunError) as exc:
        run.load_checkpoint(2)
    assert_one_line(exc, "lack", "'embed.W_E'")

    ints = dict(weights, **{"unembed.W_U": torch.zeros(16, 8, dtype=torch.int32)})
    write_weights(run, 3, ints)
    with pytest.raises(RunError) as exc:
        run.load_checkpoint(3)
    assert_one_line(exc, "'unembed.W_U'", "dtype")

    with pytest.raises(RunError) as exc:
        run.load_checkpoint(4)
    assert_one_line(exc, "missing")


# -- resume.pt ---------------------------------------------------------------------------------
def test_garbage_and_empty_resume_files(run: Run) -> None:
    for data, needle in (
        (b"not a torch file at all" * 10, "cannot be loaded safely"),
        (b"", "empty or truncated"),
        (b"PK\x03\x04" + b"\x00" * 60, "cannot be loaded safely"),
    ):
        run.resume_path.write_bytes(data)
        with pytest.raises(RunError) as exc:
            run.load_resume()
        assert_one_line(exc, "resume.pt", needle)
        assert run.resume_path.read_bytes() == data


def test_resume_that_is_not_a_resume_state(run: Run) -> None:
    torch.save([1, 2, 3], run.resume_path)
    with pytest.raises(RunError) as exc:
        run.load_resume()
    assert_one_line(exc, "does not hold a resume state")


@pytest.mark.parametrize("writer", ["torch.save", "pickle-2", "pickle-5"])
def test_resume_whose_unpickling_would_run_code(run: Run, tmp_path, writer: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"epoch": 5, "weights": Payload(marker)}
    if writer == "torch.save":
        torch.save(payload, run.resume_path)
    else:
        protocol = int(writer.split("-")[1])
        run.resume_path.write_bytes(pickle.dumps(payload, protocol=protocol))
    before = snapshot(run.path)
    with pytest.raises(RunError) as exc:
        run.load_resume()
    # Protocol 5 framing is refused before the reference to `open` is even read.
    why = "not a plain torch file" if writer == "pickle-5" else "it could run code"
    assert_one_line(exc, "resume.pt", why)
    assert not marker.exists()
    assert snapshot(run.path) == before


# -- run.json ----------------------------------------------------------------------------------
def meta_json(**changes) -> dict:
    data = {"format": 1, "config": CFG.to_dict(), "created": "", "status": "done",
            "device": "cpu", "versions": {}, "message": "", "source": ""}  # fmt: skip
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (json.dumps(meta_json(config=dict(CFG.to_dict(), p="113"))), "'p'"),
        (json.dumps(meta_json(config=dict(CFG.to_dict(), p=8))), "prime"),
        (json.dumps(meta_json(config=dict(CFG.to_dict(), frac_train=True))), "'frac_train'"),
        (json.dumps(meta_json(status=7)), "status 7"),
        (json.dumps(meta_json(config=[1, 2, 3])), "config must be a JSON object"),
        (json.dumps(meta_json(format="1")), "format"),
        (json.dumps(meta_json(versions={"torch": 2})), "'versions'"),
        (json.dumps(meta_json(device=None)), "'device'"),
        (json.dumps([meta_json()]), "JSON object"),
        ('{"format": 1, "config": ', "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (
            json.dumps(meta_json(config={k: v for k, v in CFG.to_dict().items() if k != "p"})),
            "config lacks 'p'",
        ),  # not the paper's 113 by default, then a misfit of shapes
    ],
    ids=[
        "p-string",
        "p-not-prime",
        "frac-bool",
        "status-int",
        "config-list",
        "format-string",
        "versions",
        "device-null",
        "top-list",
        "torn",
        "deep",
        "p-missing",
    ],
)
def test_run_json_with_wrong_types(run: Run, text: str, needle: str) -> None:
    run.meta_path.write_text(text)
    before = snapshot(run.path)
    with pytest.raises(RunError) as exc:
        Run.open(run.path)
    assert_one_line(exc, needle)
    assert snapshot(run.path) == before


def test_run_json_that_is_not_text(run: Run) -> None:
    run.meta_path.write_bytes(b"\xff\xfe\x00binary\x80\x81")
    with pytest.raises(RunError) as exc:
        run.meta()
    assert_one_line(exc, "run.json", "UTF-8")


# -- import_arena ------------------------------------------------------------------------------
def good_file(cfg: RunConfig = CFG) -> dict:
    gen = torch.Generator().manual_seed(0)
    sds = [random_paper_sd(cfg, gen) for _ in range(2)]
    return {"state_dicts": sds, "epochs": [0, 100], "train_losses": [1.0] * 100,
            "test_losses": [2.0] * 10, "model": sds[-1]}  # fmt: skip


def broken(key: str, value) -> dict:
    data = good_file()
    if value is KeyError:
        del data[key]
    else:
        data[key] = value
    return data


def sd_with(**changes) -> dict:
    data = good_file()
    sd = dict(data["state_dicts"][1])
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is KeyError:
            del sd[key]
        else:
            sd[key] = value
    data["state_dicts"][1] = sd
    return data


CASES = {
    "not-a-dict": ([1, 2, 3], "must hold a dict"),
    "no-epochs": (broken("epochs", KeyError), "'epochs'"),
    "no-state-dicts": (broken("state_dicts", KeyError), "'state_dicts'"),
    "empty-state-dicts": (broken("state_dicts", []), "'state_dicts'"),
    "epochs-length": (broken("epochs", [0]), "'epochs' has 1 entries"),
    "epochs-order": (broken("epochs", [100, 0]), "strictly increasing"),
    "epochs-bool": (broken("epochs", [0, True]), "'epochs'[1]"),
    "epochs-float-tensor": (broken("epochs", torch.tensor([0.0, 1.0])), "'epochs'"),
    "loss-string": (broken("train_losses", [1.0, "x"]), "'train_losses'[1]"),
    "loss-none": (broken("test_losses", [None]), "'test_losses'[0]"),
    "loss-dict": (broken("test_losses", {"a": 1.0}), "'test_losses' must be a list"),
    "sd-not-dict": (broken("state_dicts", [good_file()["state_dicts"][0], [1]]), "[1] must be"),
    "wrong-shape": (
        sd_with(blocks__0__mlp__W_in=torch.zeros(32, 15)),
        "'state_dicts'[1]['blocks.0.mlp.W_in'] has shape (32, 15), expected (32, 16)",
    ),
    "missing-key": (sd_with(unembed__W_U=KeyError), "'state_dicts'[1] lacks 'unembed.W_U'"),
    "unexpected-key": (sd_with(blocks__0__ln1__w=torch.ones(16)), "'blocks.0.ln1.w'"),
    "int-weights": (
        sd_with(blocks__0__mlp__b_in=torch.zeros(32, dtype=torch.int64)),
        "'blocks.0.mlp.b_in'] has dtype torch.int64",
    ),
    "not-a-tensor": (sd_with(blocks__0__mlp__b_out=[0.0] * 16), "is not a tensor"),
    "nan-weights": (  # imported, it showed 'nan%' maps and accuracies of 0 (probing)
        sd_with(blocks__0__mlp__b_out=torch.full((16,), float("nan"))),
        "'state_dicts'[1]['blocks.0.mlp.b_out'] holds NaN or infinite values",
    ),
    "inf-weights": (
        sd_with(unembed__W_U=good_file()["state_dicts"][1]["unembed.W_U"] * float("inf")),
        "'unembed.W_U'] holds NaN or infinite values",
    ),
    "p-not-prime": (good_file(CFG.replace(p=8)), "prime"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_import_rejects_malformed_files(tmp_path, case: str) -> None:
    data, needle = CASES[case]
    src = tmp_path / "src"
    src.mkdir()
    path = src / "full_run_data.pth"
    torch.save(data, path)
    before = snapshot(tmp_path)
    with pytest.raises(RunError) as exc:
        import_arena(path, tmp_path / "out" / "run")
    assert_one_line(exc, needle)
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "out").exists()  # validated before anything is created


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_import_rejects_damaged_files(tmp_path, damage: str) -> None:
    path = tmp_path / "full_run_data.pth"
    torch.save(good_file(), path)
    good = path.read_bytes()
    path.write_bytes(
        {"empty": b"", "truncated": good[: len(good) // 3], "garbage": b"\x07" * 99}[damage]
    )
    with pytest.raises(RunError) as exc:
        import_arena(path, tmp_path / "run")
    assert_one_line(exc, "full_run_data.pth")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["top", "model", "loss"])
def test_import_of_a_file_whose_unpickling_would_run_code(tmp_path, where: str) -> None:
    marker = tmp_path / "pwned"
    data = good_file()
    if where == "top":
        data = Payload(marker)
    elif where == "model":
        data["model"] = Payload(marker)
    else:
        data["train_losses"] = [1.0, Payload(marker)]
    path = tmp_path / "full_run_data.pth"
    torch.save(data, path)
    before = snapshot(tmp_path)
    with pytest.raises(RunError) as exc:
        import_arena(path, tmp_path / "run")
    assert_one_line(exc, "full_run_data.pth", "it could run code")
    assert not marker.exists()
    assert snapshot(tmp_path) == before


def test_a_far_future_checkpoint_epoch_does_not_mean_that_many_rows(tmp_path) -> None:
    data = good_file()
    data["epochs"] = [0, 10**7]
    torch.save(data, tmp_path / "f.pth")
    rows = import_arena(tmp_path / "f.pth", tmp_path / "run").read_metrics()
    assert [r["epoch"] for r in rows] == [*range(100), 10**7]
    data["epochs"] = [0, 10**12]  # past any run's epochs: refused, in one line
    torch.save(data, tmp_path / "g.pth")
    with pytest.raises(RunError) as exc:
        import_arena(tmp_path / "g.pth", tmp_path / "run2")
    assert_one_line(exc, "g.pth", "epochs must be in 0..10,000,000")


def test_nan_losses_are_kept_as_gaps_not_errors(tmp_path) -> None:
    data = good_file()
    data["train_losses"][3] = math.nan
    torch.save(data, tmp_path / "f.pth")
    rows = import_arena(tmp_path / "f.pth", tmp_path / "run").read_metrics()
    assert math.isnan(rows[3]["train_loss"]) and rows[4]["train_loss"] == 1.0


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"root:x:0:0:root:/root:/bin/bash\n" * 20, "it is not a torch file"),  # /etc/passwd
        (b"hello\n", "it is not a torch file"),
        (b"", "the file is empty or truncated"),
    ],
    ids=["passwd", "text", "empty"],
)
def test_import_of_a_file_that_is_not_torch_says_so(tmp_path, data: bytes, needle: str) -> None:
    """Before, torch's legacy loader answered "list index out of range" (or "101")."""
    path = tmp_path / "passwd"
    path.write_bytes(data)
    with pytest.raises(RunError) as exc:
        import_arena(path, tmp_path / "run")
    assert str(exc.value) == f"passwd cannot be loaded safely: {needle}" + (
        " (neither a zip archive nor a pickle)" if "torch" in needle else ""
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", ["nan weights", "no optimizer state"])
def test_a_resume_state_that_cannot_be_resumed_changes_nothing(tmp_path, capsys, damage) -> None:
    """A finished run whose resume.pt is damaged in content, not in form: `open --resume
    --extend` says what in one line before it extends run.json, and the run's metrics and
    status stay as they were (they did not: the NaN weights trained one epoch, replaced its
    good metrics row with NaN ones and marked the run failed)."""
    from grok_tui.cli import main

    path = tmp_path / "r"
    assert main(["train", "--headless", "--p", "7", "--frac-train", "0.5", "--epochs", "4",
                 "--checkpoint-every", "2", "--run-dir", str(path)]) == 0  # fmt: skip
    state = torch.load(path / "resume.pt", weights_only=True)
    if damage == "nan weights":
        for tensor in state["weights"].values():
            tensor.fill_(math.nan)
        needle = "is not finite"
    else:
        state["optimizer"] = {}
        needle = "it has no entry 'state'"
    torch.save(state, path / "resume.pt")
    before = snapshot(path)
    capsys.readouterr()
    assert main(["open", str(path), "--resume", "--headless", "--extend", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert snapshot(path) == before


def test_an_import_refused_says_one_line_without_torchs_warning(tmp_path, capsys) -> None:
    """A pickle of protocol 4 from elsewhere: torch warns that it did not write it (two
    lines) before refusing; the one line is all the user sees."""
    from grok_tui.cli import main

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(Payload(tmp_path / "pwned"), protocol=4))
    assert main(["import", str(path), str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be loaded safely" in err, err
    assert not (tmp_path / "pwned").exists()


def test_a_checkpoints_folder_removed_by_hand_is_made_again(tmp_path, capsys) -> None:
    from grok_tui.cli import main

    path = tmp_path / "r"
    train = ["--headless", "--checkpoint-every", "2"]
    assert main(["train", *train, "--p", "7", "--frac-train", "0.5", "--epochs", "4",
                 "--run-dir", str(path)]) == 0  # fmt: skip
    for p in (path / "checkpoints").iterdir():
        p.unlink()
    (path / "checkpoints").rmdir()
    assert main(["open", str(path), "--resume", "--headless", "--extend", "2"]) == 0
    names = sorted(p.name for p in (path / "checkpoints").iterdir())
    assert names == ["epoch_0000004.safetensors", "epoch_0000006.safetensors"]


def test_a_run_error_while_training_is_its_own_line_without_an_error_log(run: Run) -> None:
    """A RunError is already the one line a user needs (a file that could not be written);
    the traceback file is for bugs."""
    from grok_tui.engine.training.writer import RunWriter

    message = "cannot write x/checkpoints/epoch_0000070.safetensors: No such file or directory"
    assert RunWriter(run).crashed(RunError(message)) == message
    assert not (run.path / "error.log").exists()
    assert RunWriter(run).crashed(ValueError("a bug")) == "ValueError: a bug (see error.log)"
    assert (run.path / "error.log").exists()


def test_an_extend_that_could_not_train_leaves_run_json_as_it_was(tmp_path, capsys, monkeypatch):
    """A file the trainer must write that this process may not (here metrics.jsonl, denied
    by os.access: as root no permission bit denies anything): one line, and run.json is not
    extended (it was, by 5 epochs per retry, with nothing trained)."""
    import os

    from grok_tui.cli import main

    path = tmp_path / "r"
    assert main(["train", "--headless", "--p", "7", "--frac-train", "0.5", "--epochs", "4",
                 "--checkpoint-every", "2", "--run-dir", str(path)]) == 0  # fmt: skip
    before = snapshot(path)
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: Path(p).name != "metrics.jsonl" and access(p, mode)
    )
    capsys.readouterr()
    assert main(["open", str(path), "--resume", "--headless", "--extend", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metrics.jsonl cannot be read and written here" in err, err
    assert snapshot(path) == before


def test_a_checkpoint_it_may_not_read_is_not_called_missing(run: Run, monkeypatch) -> None:
    import os

    path = run.checkpoint_path(0)
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != path and access(p, mode))
    with pytest.raises(RunError) as exc:
        run.load_checkpoint(0)
    assert_one_line(exc, "cannot be read here (permission denied)")


def test_a_bad_config_in_run_json_names_its_field_not_a_flag(tmp_path) -> None:
    """It said "run.json --op must be one of ..." (probing): run.json has no flags."""
    import json

    run = Run.create(tmp_path / "r", CFG, "cpu")
    data = json.loads(run.meta_path.read_text())
    data["config"]["op"] = "pow"
    data["config"]["frac_train"] = 0.5
    run.meta_path.write_text(json.dumps(data))
    with pytest.raises(RunError, match=r"run\.json config op must be one of "):
        run.meta()
    data["config"]["op"], data["config"]["frac_train"] = "add", 5.0
    run.meta_path.write_text(json.dumps(data))
    with pytest.raises(RunError, match=r"run\.json config frac_train must be in \(0, 1\)"):
        run.meta()


def test_a_file_in_place_of_the_checkpoints_folder_is_said_not_taken_for_none(tmp_path) -> None:
    """It read as "has no checkpoints yet" (probing)."""
    from grok_tui.engine.store.untrusted import RunWarning

    run = Run.create(tmp_path / "r", CFG, "cpu")
    shutil.rmtree(run.checkpoint_dir, ignore_errors=True)
    run.checkpoint_dir.write_bytes(b"not a folder")
    with pytest.warns(RunWarning, match="checkpoints cannot be listed \\(not a directory\\)"):
        assert run.checkpoint_epochs() == []
