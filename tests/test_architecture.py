"""The package's layering: the import contracts of pyproject.toml ([tool.importlinter]) hold.

Commands above stages, stages above the generic blocks (motion, mnist, diffusion, vae), utils at
the bottom; the stages meet only through files (the pipeline and the evaluation excepted); and no
two modules of a package import each other, even lazily inside a function.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_import_contracts_hold():
    # In a process of its own: import-linter reconfigures logging, which would silence other tests.
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
                           "--config", str(PYPROJECT), "--no-cache"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout
