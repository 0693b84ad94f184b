"""Backend selection, optional dependencies and lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import convcli
from convcli.compute import backends
from convcli.errors import BackendError


def _imported_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_help_imports_no_heavy_module():
    modules = _imported_after(
        "import sys\nfrom convcli.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass"
    )
    for heavy in ("torch", "cv2", "scipy", "numpy", "PIL", "rich"):
        assert heavy not in modules, heavy


def test_filtering_an_image_imports_no_volume_or_linear_light_code(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), (10, 200, 30)).save(tmp_path / "a.png")
    modules = _imported_after(
        "from convcli.cli import app\n"
        f"try:\n    app(['apply', '-q', '-k', 'box', {str(tmp_path / 'a.png')!r}, "
        f"'-o', {str(tmp_path / 'b.png')!r}])\nexcept SystemExit:\n    pass"
    )
    assert (tmp_path / "b.png").exists()
    assert "convcli.compute.volume" not in modules
    assert "convcli.compute.transfer" not in modules


def test_filtering_with_scipy_never_imports_torch():
    modules = _imported_after(
        "import convcli\nconvcli.convolve([[1, 2], [3, 4]], 'box', backend='scipy')"
    )
    assert "torch" not in modules
    assert "scipy.ndimage" in modules


def test_missing_backend_says_how_to_install_it(monkeypatch, cli):
    monkeypatch.setattr(backends, "available", lambda name: name == "scipy")
    backends._load.cache_clear()
    try:
        with pytest.raises(BackendError, match=r"needs torch: pip install 'convcli\[torch\]'"):
            convcli.convolve([[1.0]], "identity", backend="torch")
        r = cli("apply", "-k", "box", "[[1,2],[3,4]]", "--backend", "torch")
        assert r.exit_code == 2
        assert "pip install 'convcli[torch]'" in r.stderr
        # auto falls back to what is installed
        np.testing.assert_allclose(convcli.convolve([[1.0, 2.0]], "identity"), [[1.0, 2.0]])
    finally:
        backends._load.cache_clear()


def test_gpu_devices_need_torch(cli):
    r = cli("apply", "-k", "box", "[[1,2],[3,4]]", "--backend", "scipy", "--device", "cuda")
    assert r.exit_code == 2
    assert "--device cuda needs --backend torch" in r.stderr


def test_unknown_backend():
    with pytest.raises(BackendError, match="unknown backend 'gpu'"):
        convcli.convolve([[1.0]], "identity", backend="gpu")
