"""Fetch a file from the Hugging Face Hub through its own cache.

Spec: `hf:OWNER/NAME` for the repo's `full_run_data.pth`, or `hf:OWNER/NAME/PATH` for
another file (PATH may contain slashes; a Hub repo id is always exactly OWNER/NAME, so
the split is unambiguous). Model repos only, the default revision.

Everything goes through `huggingface_hub.hf_hub_download`: its cache (HF_HOME,
HF_HUB_CACHE), its progress bar, and HF_HUB_OFFLINE, under which a cached file is returned
and nothing is asked of the network. huggingface_hub is imported only when a spec is
fetched. Every failure is one RunError line; without network it names the cache directory,
so the user knows where a copy fetched elsewhere must go.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grok_tui.engine.store.runs import RunError

PREFIX = "hf:"
DEFAULT_FILENAME = "full_run_data.pth"
ARENA_SPEC = "hf:callummcdougall/grokking_full_run_data"  # the published paper run


@dataclass(frozen=True)
class HubSpec:
    repo_id: str
    filename: str


def is_hub_spec(text: str) -> bool:
    return text.startswith(PREFIX)


def parse_hub_spec(spec: str) -> HubSpec:
    """`hf:OWNER/NAME[/PATH]` -> repo id and file name (default full_run_data.pth)."""
    if not is_hub_spec(spec):
        raise RunError(f"{spec!r} is not a hub spec (expected hf:OWNER/NAME[/FILE])")
    parts = spec[len(PREFIX) :].strip("/").split("/")
    if len(parts) < 2 or not all(parts):
        raise RunError(f"bad hub spec {spec!r} (expected hf:OWNER/NAME[/FILE])")
    filename = "/".join(parts[2:]) or DEFAULT_FILENAME
    return HubSpec(f"{parts[0]}/{parts[1]}", filename)


def hub_cache_dir() -> str:
    """Where huggingface_hub keeps downloads (HF_HUB_CACHE, else HF_HOME/hub)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def fetch_hub_file(spec: str, tqdm_class: Any = None) -> Path:
    """Local path of the spec's file, downloaded into the Hugging Face cache if need be.

    `tqdm_class` replaces the Hub's progress bar (pass a quiet one inside a full-screen app).
    """
    target = parse_hub_spec(spec)
    try:
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise RunError(
            "fetching from the Hub needs huggingface_hub (pip install huggingface_hub)"
        ) from None

    where = f"{target.filename} from {target.repo_id}"
    try:
        path = hf_hub_download(target.repo_id, target.filename, tqdm_class=tqdm_class)
    except LocalEntryNotFoundError:
        # Before EntryNotFoundError, its base: not cached, and the network is off or down.
        cache = constants.HF_HUB_CACHE
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        raise RunError(
            f"cannot fetch {where}: {why} and it is not in the Hugging Face cache at {cache}"
        ) from None
    except GatedRepoError:
        raise RunError(f"cannot fetch {where}: the repo is gated (try `hf auth login`)") from None
    except RepositoryNotFoundError:
        raise RunError(f"cannot fetch {where}: no such repo on the Hub, or it is private") from None
    except RevisionNotFoundError:
        raise RunError(f"cannot fetch {where}: the repo has no default revision") from None
    except EntryNotFoundError:
        raise RunError(f"cannot fetch {where}: the repo has no such file") from None
    except HfHubHTTPError as exc:
        raise RunError(f"cannot fetch {where}: {_first_line(exc)}") from None
    except (OSError, ValueError) as exc:  # a full disk, an unwritable cache, a bad repo id
        raise RunError(f"cannot fetch {where}: {_first_line(exc)}") from None
    return Path(path)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
