"""Kernels written as convcli kernel files (``show-kernel --format toml|json``) read back, with
tomllib or json and through the registry, as the very same kernels: matrices bit for bit,
origins, offsets, names, tags and descriptions character for character."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from convcli.errors import KernelError
from convcli.kernels.formats import to_json, to_toml
from convcli.kernels.model import AnyKernel, Kernel, KernelBank, KernelChain
from convcli.kernels.registry import get_kernel

WRITERS = {"toml": to_toml, "json": to_json}
READERS = {"toml": tomllib.loads, "json": json.loads}

DESCRIPTIONS = [
    'say "hi" \\ back',
    "two\nlines\r\nand a\ttab\x7f and \x00 and \x1b",
    "unicode: \u03c3=½ → ∇², 😀, \u2028 and \ufeff",
    "\"\"\"triple\"\"\" and '''single'''",
    "ends with a newline\n",
    "see [a,   b] and [ 1 ,2 ] and {x: [ ]}",
]


def same_kernel(got: AnyKernel, want: AnyKernel) -> None:
    assert type(got) is type(want)
    assert got.name == want.name
    assert got.description == want.description
    assert got.tags == want.tags
    if isinstance(want, Kernel):
        assert got.matrix.shape == want.matrix.shape
        assert got.matrix.tobytes() == want.matrix.tobytes()  # bit for bit, -0.0 too
        assert got.origin == want.origin
        assert got.offset == want.offset
    else:
        assert got.combine == want.combine
        assert len(got.members) == len(want.members)
        for g, w in zip(got.members, want.members, strict=True):
            same_kernel(g, w)


def write_and_read(kernel: AnyKernel, fmt: str, tmp_path) -> AnyKernel:
    path = tmp_path / f"{kernel.name}.{fmt}"
    path.write_text(WRITERS[fmt](kernel), encoding="utf-8")
    return get_kernel(str(path))


KERNEL = Kernel(
    [[1, 2, 3], [4, 5, 6]],
    name="odd",
    description="a 2x3 kernel",
    tags=("test", "edge"),
    scale=0.5,
    origin=(1, 2),
    offset=-0.25,
)
BANK = KernelBank(
    (
        Kernel([[1, -1]], name="dx", tags=("edge",)),
        Kernel([[1], [-1]], name="dy", origin=(1, 0), offset=2.0),
        Kernel([0.25, 0.5, 0.25], name="row", description="1-D"),
    ),
    combine="max",
    name="grad",
    description="the larger derivative",
    tags=("bank",),
)


@pytest.mark.parametrize("fmt", ["toml", "json"])
class TestRoundTrip:
    def test_a_kernel_with_origin_offset_and_scale(self, fmt, tmp_path):
        data = READERS[fmt](WRITERS[fmt](KERNEL))
        assert data == {
            "name": "odd",
            "description": "a 2x3 kernel",
            "tags": ["test", "edge"],
            "matrix": [[0.5, 1.0, 1.5], [2.0, 2.5, 3.0]],  # the scale is applied
            "origin": [1, 2],
            "offset": -0.25,
        }
        back = write_and_read(KERNEL, fmt, tmp_path)
        same_kernel(back, KERNEL)
        assert back.matrix.tolist() == [[0.5, 1.0, 1.5], [2.0, 2.5, 3.0]]

    def test_a_bank_with_members(self, fmt, tmp_path):
        data = READERS[fmt](WRITERS[fmt](BANK))
        assert data == BANK.to_dict()
        assert [m["name"] for m in data["kernels"]] == ["dx", "dy", "row"]
        assert data["kernels"][1] == {
            "name": "dy",
            "matrix": [[1.0], [-1.0]],
            "origin": [1, 0],
            "offset": 2.0,
        }
        same_kernel(write_and_read(BANK, fmt, tmp_path), BANK)

    @pytest.mark.parametrize("name", ["sobel", "prewitt", "laplacian", "gaussian:sigma=1.5"])
    def test_builtins(self, fmt, tmp_path, name):
        kernel = get_kernel(name)
        assert READERS[fmt](WRITERS[fmt](kernel)) == kernel.to_dict()
        same_kernel(write_and_read(kernel, fmt, tmp_path), kernel)

    def test_a_bank_in_a_bank(self, fmt, tmp_path):
        outer = KernelBank((get_kernel("sobel"), BANK.members[0]), combine="sum", name="outer")
        assert READERS[fmt](WRITERS[fmt](outer)) == outer.to_dict()
        same_kernel(write_and_read(outer, fmt, tmp_path), outer)

    @pytest.mark.parametrize("description", DESCRIPTIONS)
    def test_descriptions_and_names_character_for_character(self, fmt, tmp_path, description):
        kernel = Kernel([[1.0]], name="k", description=description, tags=(description,))
        data = READERS[fmt](WRITERS[fmt](kernel))
        assert data["description"] == description
        assert data["tags"] == [description]
        back = write_and_read(kernel, fmt, tmp_path)
        assert back.description == description and back.tags == (description,)

    def test_extreme_values(self, fmt, tmp_path):
        values = [5e-324, -1.7976931348623157e308, -0.0, 0.1, 1 / 3, 2.0**53 + 2, 1e-300]
        kernel = Kernel(values, name="extremes")
        assert READERS[fmt](WRITERS[fmt](kernel))["matrix"] == values
        same_kernel(write_and_read(kernel, fmt, tmp_path), kernel)

    def test_a_chain_has_no_file_form(self, fmt):
        chain = KernelChain((get_kernel("box"), get_kernel("sharpen")))
        with pytest.raises(KernelError, match="a chain of kernels has no kernel-file form"):
            WRITERS[fmt](chain)


def test_toml_is_written_by_tomli_w():
    import tomli_w

    for kernel in (KERNEL, BANK, get_kernel("sobel")):
        assert to_toml(kernel) == tomli_w.dumps(kernel.to_dict(), indent=2)


def test_toml_layout_of_a_bank():
    text = to_toml(get_kernel("sobel"))
    assert text.startswith('name = "sobel"\n')
    assert text.count("\n[[kernels]]\n") == 2
    assert 'combine = "magnitude"\n' in text
    assert text.endswith("]\n")


def test_toml_matrix_reads_back_to_the_exact_floats(rng):
    matrix = rng.normal(size=(7, 5))
    data = tomllib.loads(to_toml(Kernel(matrix, name="r")))
    assert np.array(data["matrix"]).tobytes() == matrix.tobytes()


def test_json_keeps_each_row_on_one_line_and_strings_as_they_are():
    kernel = Kernel(
        [[1, 2], [3, 4]],
        name="see [a,   b]",
        description="see [a,   b], or [\n 1,\n 2\n]",
        tags=("x [ ]", "y"),
        origin=(0, 1),
    )
    text = to_json(kernel)
    assert text == (
        "{\n"
        '  "name": "see [a,   b]",\n'
        '  "description": "see [a,   b], or [\\n 1,\\n 2\\n]",\n'
        '  "tags": ["x [ ]", "y"],\n'
        '  "matrix": [\n'
        "    [1.0, 2.0],\n"
        "    [3.0, 4.0]\n"
        "  ],\n"
        '  "origin": [0, 1]\n'
        "}\n"
    )
    back = json.loads(text)
    assert back["name"] == "see [a,   b]"
    assert back["description"] == "see [a,   b], or [\n 1,\n 2\n]"


def test_json_layout_of_a_bank_and_a_1d_kernel():
    text = to_json(KernelBank((get_kernel("sobel-x"), Kernel([0.5, 0.5], name="h")), name="b"))
    assert text == (
        "{\n"
        '  "name": "b",\n'
        '  "combine": "stack",\n'
        '  "kernels": [\n'
        "    {\n"
        '      "name": "sobel-x",\n'
        '      "description": "Sobel derivative along x (responds to vertical edges)",\n'
        '      "tags": ["edge", "separable"],\n'
        '      "matrix": [\n'
        "        [-1.0, 0.0, 1.0],\n"
        "        [-2.0, 0.0, 2.0],\n"
        "        [-1.0, 0.0, 1.0]\n"
        "      ]\n"
        "    },\n"
        "    {\n"
        '      "name": "h",\n'
        '      "matrix": [0.5, 0.5]\n'
        "    }\n"
        "  ]\n"
        "}\n"
    )
