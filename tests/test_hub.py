"""Hub specs go through huggingface_hub's own download and cache; offline is one clear line.

Nothing here reaches the network: every fetch runs with HF_HUB_OFFLINE, against an empty
cache or one laid out exactly as huggingface_hub lays it out, so its real lookup code runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.store.arena import import_arena_from
from grok_tui.engine.store.hub import ARENA_SPEC, DEFAULT_FILENAME, HubSpec, parse_hub_spec
from grok_tui.engine.store.runs import RunError
from tests.test_arena import write_published

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "callummcdougall/grokking_full_run_data"


def populate_cache(cache: Path, repo_id: str, filename: str, data: bytes) -> Path:
    """The huggingface_hub cache layout: blobs/, refs/main -> commit, snapshots/<commit>/file
    a relative symlink to its blob. Returns the snapshot path."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    blob = repo / "blobs" / "4f2c1e8d9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT / filename
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    return snapshot


def fetch_in_subprocess(spec: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Fetch in a fresh interpreter, where huggingface_hub reads its environment at import,
    exactly as it does under the CLI."""
    env = {
        **os.environ,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_HUB_OFFLINE": "1",
    }
    code = textwrap.dedent(
        f"""
        from grok_tui.engine.store.hub import fetch_hub_file
        from grok_tui.engine.store.runs import RunError
        try:
            print("PATH", fetch_hub_file({spec!r}))
        except RunError as exc:
            print("ERROR", exc)
        """
    )
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=120
    )


def test_specs() -> None:
    assert parse_hub_spec(ARENA_SPEC).repo_id == REPO
    assert parse_hub_spec(ARENA_SPEC) == HubSpec(REPO, DEFAULT_FILENAME)
    assert parse_hub_spec("hf:a/b/sub/x.pth") == HubSpec("a/b", "sub/x.pth")
    for bad in ("hf:", "hf:owner", "hf:/b", "hf:a//x", "callummcdougall/grokking"):
        with pytest.raises(RunError):
            parse_hub_spec(bad)


def test_offline_with_an_empty_cache_is_one_line_naming_the_cache(tmp_path) -> None:
    result = fetch_in_subprocess(ARENA_SPEC, tmp_path / "home")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR "), result.stdout
    assert "HF_HUB_OFFLINE" in lines[0]
    assert str(tmp_path / "home" / "hub") in lines[0]
    assert DEFAULT_FILENAME in lines[0] and REPO in lines[0]


def test_offline_with_the_file_cached_returns_it(tmp_path) -> None:
    home = tmp_path / "home"
    snapshot = populate_cache(home / "hub", REPO, DEFAULT_FILENAME, b"cached bytes")
    result = fetch_in_subprocess(ARENA_SPEC, home)
    assert result.returncode == 0, result.stderr
    kind, path = result.stdout.strip().split(" ", 1)
    assert kind == "PATH" and Path(path) == snapshot
    assert Path(path).read_bytes() == b"cached bytes"


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    """This interpreter's huggingface_hub pointed at an empty cache, offline."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_a_hub_spec_imports_from_the_cache(offline_cache: Path, tmp_path) -> None:
    write_published(tmp_path / "src.pth", RunConfig(p=23), [0, 10], 10, 1)
    populate_cache(offline_cache, "someone/run", "sub/run.pth", (tmp_path / "src.pth").read_bytes())
    run = import_arena_from("hf:someone/run/sub/run.pth", tmp_path / "run")
    meta = run.meta()
    assert meta.source == "arena:hf:someone/run/sub/run.pth" and meta.status == "done"
    assert run.checkpoint_epochs() == [0, 10]
    with pytest.raises(RunError, match="HF_HUB_OFFLINE is set and it is not in the Hugging"):
        import_arena_from("hf:someone/run", tmp_path / "other")  # default name: not cached


def test_a_taken_run_directory_is_refused_before_any_fetch(offline_cache: Path, tmp_path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("mine")
    with pytest.raises(RunError, match="already exists and is not empty"):
        import_arena_from(ARENA_SPEC, taken)
    assert (taken / "x").read_text() == "mine"
    assert list(offline_cache.iterdir()) == []


def test_cached_file_is_a_plain_torch_file(offline_cache: Path, tmp_path) -> None:
    """The path returned is loadable as is (a symlink into blobs/ in the real layout)."""
    from grok_tui.engine.store.hub import fetch_hub_file

    torch.save({"x": torch.ones(2)}, tmp_path / "t.pth")
    populate_cache(offline_cache, REPO, DEFAULT_FILENAME, (tmp_path / "t.pth").read_bytes())
    path = fetch_hub_file(ARENA_SPEC)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))


def test_huggingface_hub_is_imported_only_to_fetch() -> None:
    code = (
        "import sys, grok_tui.engine.store.hub, grok_tui.engine.store.arena\n"
        "import grok_tui.engine.measures.export\n"
        "print('huggingface_hub' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
