"""Import contracts: the engine is a library in strata without a UI, the UI does no maths,
and heavy imports stay lazy.

The contracts live in pyproject.toml ([tool.importlinter]); `lint-imports` checks them, and
so does this test. The engine's strata (core, store, training | measures, lab) each import
only the ones below. The UI may import only the engine modules in UI_MAY_IMPORT (direct
imports; what those import in turn, such as torch under the trainer, is theirs): the
contract forbids the whole engine and lets these through, so a new engine module is
forbidden to the UI until it is added in both places. test_import_cycles.py forbids loops.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import grok_tui.engine
from grok_tui.ui import panes as ui_panes

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
STRATA = ["lab", "training | measures", "store", "core"]  # top to bottom
# The run directory, its follower, the background services and the trainer's controls; the
# sweep screen and compare read summaries (sweep, sweep_status, phase_grid, compare) and
# train a sweep (backends.train_sweep): plain data and controls, while the maths behind
# them (stepper, fastpath, progress) stays forbidden.
UI_MAY_IMPORT = {
    "grok_tui.engine.core.config",
    "grok_tui.engine.core.threads",
    "grok_tui.engine.store.runs",
    "grok_tui.engine.store.run_meta",
    "grok_tui.engine.store.metrics_reader",
    "grok_tui.engine.store.follow",
    "grok_tui.engine.training.train",
    "grok_tui.engine.measures.services",
    "grok_tui.engine.measures.ablate_service",
    "grok_tui.engine.measures.llc_service",
    "grok_tui.engine.measures.compare",
    "grok_tui.engine.lab.sweep",
    "grok_tui.engine.lab.backends",
    "grok_tui.engine.lab.sweep_status",
    "grok_tui.engine.lab.phase_grid",
}
UI_CONTRACT = "the UI imports no torch and of the engine only its allowed modules"


def engine_modules() -> list[str]:
    """Every module of the engine, in its strata (core, store, training, measures, lab)."""
    found = pkgutil.walk_packages(grok_tui.engine.__path__, prefix="grok_tui.engine.")
    return [m.name for m in found if not m.ispkg]


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["name"]: c for c in config["contracts"]}


def test_import_contracts_hold() -> None:
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


def test_one_layers_contract_states_every_stratum() -> None:
    (layers,) = [c for c in contracts().values() if c["type"] == "layers"]
    assert layers["containers"] == ["grok_tui.engine"]
    assert layers["layers"] == STRATA
    assert layers["exhaustive"] is True  # a new subpackage of the engine must be placed
    strata = {m.name for m in pkgutil.iter_modules(grok_tui.engine.__path__)}
    assert strata == {s.strip() for layer in STRATA for s in layer.split("|")}


def test_the_ui_contract_forbids_the_engine_but_the_allowed_modules() -> None:
    ui = contracts()[UI_CONTRACT]
    assert set(ui["forbidden_modules"]) == {"torch", "transformer_lens", "grok_tui.engine"}
    assert set(ui["ignore_imports"]) == {f"grok_tui.ui.** -> {m}" for m in UI_MAY_IMPORT}
    assert ui["allow_indirect_imports"] is True
    assert set(engine_modules()) >= UI_MAY_IMPORT  # a rename leaves no stale allowance


def test_the_pane_contract_covers_every_pane() -> None:
    panes = {f"grok_tui.ui.panes.{m.name}" for m in pkgutil.iter_modules(ui_panes.__path__)}
    independent = set(contracts()["no pane imports another pane"]["modules"])
    assert independent == panes - {"grok_tui.ui.panes.base"}


def test_engine_never_imports_textual_and_defers_transformer_lens() -> None:
    modules = engine_modules()
    assert "grok_tui.engine.training.train" in modules
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print('textual' in sys.modules, 'transformer_lens' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_help_loads_no_torch() -> None:
    """`grok-tui --help` answers at once: the CLI imports the engine only on use."""
    code = (
        "import sys, contextlib, io\n"
        "from grok_tui.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "print('torch' in sys.modules, 'textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
