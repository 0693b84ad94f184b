"""The built-in kernel library is found after a wheel install, an editable install and from a
source checkout; ``convcli`` and ``python -m convcli`` both work. No network: the fresh
environments borrow this environment's numpy/scipy/Pillow through a .pth file and install
convcli itself with --no-deps."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def _fresh_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, symlinks=True).create(path)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (Path(purelib) / "borrowed.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def _list_kernels(python: Path, cwd: Path) -> list[str]:
    script = python.parent / "convcli"
    out = subprocess.run(
        [script, "list-kernels", "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    names = [row["name"] for row in json.loads(out.stdout)]
    module = subprocess.run(
        [python, "-m", "convcli", "show-kernel", "sobel-x", "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(module.stdout)["matrix"][1] == [-2, 0, 2]
    return names


def test_wheel_install_outside_the_source_tree(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, ROOT],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("convcli-*.whl"))
    import zipfile

    members = zipfile.ZipFile(wheel).namelist()
    assert "convcli/kernels/library/sobel.toml" in members
    assert "convcli/kernels/library/gaussian-5x5-seed.toml" in members
    python = _fresh_venv(tmp_path / "venv")
    subprocess.run(
        # --ignore-installed: the borrowed site-packages may hold convcli already (CI
        # installs it there), which pip would otherwise take as satisfying the request
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
            "-q",
            wheel,
        ],
        check=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    names = _list_kernels(python, elsewhere)
    assert {"sobel", "gaussian", "gaussian-5x5-seed", "prewitt-1d"} <= set(names)
    where = subprocess.run(
        [python, "-c", "import convcli.kernels.registry as r; print(r.builtin_dir())"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(tmp_path / "venv"))


def test_editable_install(tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--ignore-installed",
            "-q",
            "-e",
            ROOT,
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    names = _list_kernels(python, tmp_path)
    assert "sobel" in names


def test_source_checkout(tmp_path):
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "convcli", "list-kernels", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert "sobel" in {row["name"] for row in json.loads(out.stdout)}


def test_core_dependencies_are_only_the_six():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = sorted(d.split(">")[0].split("=")[0].split("[")[0] for d in project["dependencies"])
    assert names == ["numpy", "pillow", "rich", "scipy", "tomli-w", "typer"]
    assert "scikit-image" not in str(project["dependencies"])
