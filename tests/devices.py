"""The device the training and analysis tests run on: `GROK_TUI_TEST_DEVICE` (cpu by default).

bench/gpu_check.sh sets it to cuda so the tests that train or analyse exercise the code a
GPU runs; tests that pin bit-exact CPU results keep "cpu".
"""

from __future__ import annotations

import os

TEST_DEVICE = os.environ.get("GROK_TUI_TEST_DEVICE", "").strip() or "cpu"
