"""The built wheel is complete: installed (not editable) into a fresh virtual environment, away from
the source tree, `ramos --help` and a tiny pipeline run from it.

The fresh environment gets the heavy dependencies (torch, Lightning, ...) by a ``.pth`` line that
points at this environment's site-packages: a ``.pth`` file there is not processed from such a
line, so the editable install of this checkout stays invisible, and ``import ramos`` can only find
the wheel's copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the project (the source tree itself is left untouched)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(out), str(src)], cwd=src)
    (whl,) = out.glob("ramos-*.whl")
    return whl


def test_wheel_holds_every_module_config_and_asset(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    in_tree = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src" / "ramos").rglob("*")
               if p.is_file() and p.suffix in (".py", ".yaml", ".npz", ".txt") and "__pycache__" not in p.parts}
    missing = sorted(in_tree - names)
    assert not missing, f"not in the wheel: {missing}"
    assert any(n.startswith("ramos/configs/pipeline/") and n.endswith(".yaml") for n in names)


@pytest.mark.slow
def test_installed_wheel_runs_the_tiny_pipeline(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], cwd=tmp_path)
    fresh_site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           cwd=tmp_path).strip())
    (fresh_site / "_ramos_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "work"  # no checkout around: configs and assets can only come from the wheel
    work.mkdir()
    env = {**os.environ, "RAMOS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": ""}
    where = _run([str(py), "-c", "import ramos; print(ramos.__file__)"], cwd=work, env=env).strip()
    assert Path(where).is_relative_to(env_dir), where
    ramos = str(env_dir / "bin" / "ramos")
    assert "pipeline" in _run([ramos, "--help"], cwd=work, env=env)
    out = _run([ramos, "pipeline", "--config", "tiny", "--out", "run", "--no-progress"], cwd=work, env=env, timeout=600)
    assert "report:" in out
    assert (work / "run" / "reports" / "generation.md").is_file()
    assert (work / "run" / "samples" / "index.json").is_file()
