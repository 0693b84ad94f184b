"""The request from Python: build_request checks what apply checks, and a Request runs over a
folder through convcli.run exactly as the command line does."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convcli
from conftest import write_png
from convcli.compute.engine import Options
from convcli.run.request import Request, build_request
from convcli.run.runner import Settings, execute
from convcli.run.sources import discover
from convcli.vocabulary import Boundary, Combine, Compat, Depth, Mode


@pytest.fixture
def folder(tmp_path, photos):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    write_png(root / "cam.png", photos["camera"][:48, :64])
    write_png(root / "sub" / "cam2.png", photos["camera"][48:96, :64])
    Image.fromarray(photos["astronaut"][:40, :50]).save(root / "sub" / "astro.jpg")
    np.save(root / "numbers.npy", np.arange(30.0).reshape(5, 6))
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


CASES = [
    pytest.param(["-k", "box"], {"kernels": ["box"]}, 1, id="defaults"),
    pytest.param(
        [
            *("-k", "sobel-x", "-k", "sobel-y", "--combine", "magnitude", "--depth", "16"),
            *("--name", "{stem}-{kernel}.tif", "--format", "tiff", "--boundary", "nearest"),
        ],
        {
            "kernels": ["sobel-x", "sobel-y"],
            "combine": Combine.MAGNITUDE,
            "depth": Depth.D16,
            "name": "{stem}-{kernel}.tif",
            "format": "tiff",
            "boundary": Boundary.NEAREST,
        },
        2,
        id="bank-16-bit-tiff",
    ),
    pytest.param(
        ["-k", "gaussian:sigma=1", "--compat", "opencv", "--offset", "50%", "--memory", "64MiB"],
        {"kernels": ["gaussian:sigma=1"], "compat": "opencv", "offset": "50%", "memory": "64MiB"},
        1,
        id="compat-offset-memory",
    ),
]


@pytest.mark.parametrize("args, keywords, jobs", CASES)
def test_a_request_built_in_python_writes_what_the_cli_writes(
    cli, folder, tmp_path, args, keywords, jobs
):
    by_cli, by_python = tmp_path / "cli", tmp_path / "python"
    r = cli("apply", *args, "-r", str(folder), "-d", str(by_cli), "-j", str(jobs), "-q")
    assert r.exit_code == 0, r.stderr

    keywords = dict(keywords)
    request = build_request(keywords.pop("kernels"), out_dir=by_python, **keywords)
    outcomes = []
    summary = execute(
        list(discover([str(folder)], recursive=True)),
        request,
        Settings(jobs=jobs),
        on_outcome=outcomes.append,
    )
    assert (summary.done, summary.failed) == (4, 0)
    assert not [o.error for o in outcomes if o.error]
    written = sorted(str(Path(p).relative_to(by_python)) for o in outcomes for p in o.written)
    assert written == sorted(_files(by_python))
    assert _files(by_python) == _files(by_cli)


def test_the_request_is_typed_frozen_and_travels_to_workers():
    request = build_request(
        ["sobel-x"], mode="valid", boundary="fill", fill_value=2.0, depth="8", backend="scipy"
    )
    assert request.options == Options(mode=Mode.VALID, boundary=Boundary.FILL, fill_value=2.0)
    assert request.backend == "scipy" and request.pixels.depth == "8" and request.depth_given
    assert not any(isinstance(getattr(request, f.name), dict) for f in dataclasses.fields(request))
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.label = "other"  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(request))
    assert copy.operation.label == request.operation.label
    assert dataclasses.replace(copy, operation=request.operation) == request
    # the enums and their words make the same request
    by_enum = build_request(["box"], mode=Mode.FULL, compat=Compat.SCIPY)
    by_word = build_request(["box"], mode="full", compat="scipy")
    assert dataclasses.replace(by_enum, operation=by_word.operation) == by_word


def test_compat_presets_fill_what_is_not_given():
    pillow = build_request(["box"], compat="pillow")
    assert pillow.options.keep_edges and pillow.pixels.quantize == "half-up"
    torch = build_request(["sobel-x"], compat="torch")
    assert torch.options.correlate and torch.options.mode == Mode.VALID
    given = build_request(["sobel-x"], compat="torch", mode="same", correlate=False)
    assert not given.options.correlate and given.options.mode == Mode.SAME


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"kernels": []}, "give at least one kernel"),
        ({"output": "a.png", "out_dir": "d"}, "-o and -d conflict"),
        ({"in_place": True, "inputs": ["-"]}, "--in-place needs input files"),
        ({"output": "-", "print_result": True}, "--print and -o - both write to stdout"),
        ({"output": "o.png", "recursive": True}, "-o takes one input; use -d with -r"),
        ({"offset": "lots"}, "offset 'lots' is not a number"),
        ({"format": "nope"}, "unknown output format 'nope'"),
        ({"memory": "12 apples"}, "--memory '12 apples' is not like"),
        ({"compat": "matlab"}, "--compat 'matlab' is not one of"),
        ({"mode": "huge"}, "huge"),
        ({"kernels": ["no-such-kernel"]}, "no-such-kernel"),
        ({"name": "{nope}"}, "unknown field {nope}"),
        ({"value_range": "rescale", "offset": "3"}, "--offset has no effect with --range"),
        ({"backend": "cobol"}, "cobol"),
    ],
)
def test_build_request_refuses_what_apply_refuses(cli, keywords, message):
    keywords = dict(keywords)
    kernels = keywords.pop("kernels", ["box"])
    with pytest.raises(convcli.UsageError, match=message) as raised:
        build_request(kernels, **keywords)
    assert raised.value.exit_code == 2


def test_one_output_file_takes_one_input(folder):
    request = build_request(["box"], output=str(folder / "out.png"))
    sources = list(discover([str(folder)], recursive=True))
    with pytest.raises(convcli.UsageError, match="-o takes one input, got 4; use -d for many"):
        execute(sources, request)


def test_a_request_made_by_hand_runs_too(folder, tmp_path):
    from convcli.kernels.registry import get_kernel
    from convcli.run.naming import OutputSpec

    request = Request(
        operation=get_kernel("box"), label="box", output=OutputSpec(out_dir=tmp_path / "o")
    )
    summary = execute(list(discover([str(folder / "cam.png")])), request, Settings(jobs=1))
    assert summary.done == 1 and (tmp_path / "o" / "cam.box.png").is_file()


def test_the_readme_example(tmp_path, monkeypatch):
    """The README's build_request example runs as written."""
    import re
    import shutil

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "build_request" in b]
    (tmp_path / "photos").mkdir()
    shutil.copy(
        Path(__file__).resolve().parents[1] / "examples/images/coffee.jpg", tmp_path / "photos"
    )
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(code, scope)
    assert scope["summary"].done == 1 and scope["summary"].failed == 0
    out = convcli.read_image(tmp_path / "blurred" / "coffee.gaussian-sigma2.png")
    assert out.dtype == np.uint16 and out.shape == (400, 600, 3)
