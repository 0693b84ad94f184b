"""Batch and pipelines: discovery, file lists, stdin/stdout, workers, progress, faults,
interruption and resumption."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convcli
from conftest import ROOT, write_png
from convcli.run.sources import discover, read_list

CONVCLI = shutil.which("convcli")
needs_script = pytest.mark.skipif(CONVCLI is None, reason="the convcli script is not on PATH")


@pytest.fixture
def tree(tmp_path, photos):
    """photos/a/cam.png, photos/b/cam.png (same name), photos/b/c/astro.jpg, a non-image and a
    hidden file."""
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "b" / "c").mkdir(parents=True)
    write_png(root / "a" / "cam.png", photos["camera"][:64, :80])
    write_png(root / "b" / "cam.png", photos["camera"][64:128, :80])
    Image.fromarray(photos["astronaut"][:60, :70]).save(root / "b" / "c" / "astro.jpg")
    (root / "notes.txt").write_text("not an image nor an array of numbers\n")
    write_png(root / ".hidden.png", photos["camera"][:8, :8])
    return root


def test_recursive_keeps_the_layout(cli, tree, tmp_path):
    out = tmp_path / "out"
    r = cli("apply", "-k", "box", "-r", str(tree), "-d", str(out), "-j", "1")
    assert r.exit_code == 0, r.stderr
    written = sorted(str(Path(p).relative_to(out)) for p in r.stdout.split())
    assert written == ["a/cam.box.png", "b/c/astro.box.jpg", "b/cam.box.png"]
    assert (out / "b" / "c" / "astro.box.jpg").is_file()


def test_directory_without_r_is_an_error_for_that_input(cli, tree):
    r = cli("apply", "-k", "box", str(tree))
    assert r.exit_code == 1
    assert "is a directory (give -r" in r.stderr


def test_discover_skips_hidden_and_unknown_files(tree):
    found = [s.rel.as_posix() for s in discover([str(tree)], recursive=True)]
    assert found == ["a/cam.png", "b/c/astro.jpg", "b/cam.png"]


def test_files_from_lines_and_nul(cli, tree, tmp_path):
    files = [tree / "a" / "cam.png", tree / "b" / "c" / "astro.jpg"]
    listing = "\n".join(map(str, files)).encode() + b"\n"
    r = cli("apply", "-k", "box", "--files-from", "-", "-d", str(tmp_path / "o1"), input=listing)
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.split()) == 2
    (tmp_path / "list0").write_bytes(b"\0".join(str(f).encode() for f in files) + b"\0")
    r = cli(
        "apply",
        "-k",
        "box",
        "--files-from",
        str(tmp_path / "list0"),
        "-0",
        "-d",
        str(tmp_path / "o2"),
    )
    assert r.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["astro.box.jpg", "cam.box.png"]


def test_names_with_spaces_newlines_and_non_utf8_bytes(cli, tmp_path, photos):
    odd = tmp_path / "a b\nc.png"
    write_png(odd, photos["camera"][:16, :16])
    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"  # not UTF-8
    write_png(Path(os.fsdecode(raw)), photos["camera"][:16, :16])
    listing = os.fsencode(odd) + b"\0" + raw + b"\0"
    r = cli(
        "apply", "-k", "box", "--files-from", "-", "-0", "-d", str(tmp_path / "o"), input=listing
    )
    assert r.exit_code == 0, r.stderr
    names = sorted(os.listdir(os.fsencode(tmp_path / "o")))
    assert names == [b"a b\nc.box.png", b"caf\xe9.box.png"]


def test_read_list():
    assert read_list(b"a\nb c\r\n\n", null=False) == ["a", "b c"]
    assert read_list(b"a\nb\0c\0", null=True) == ["a\nb", "c"]


def test_same_file_name_from_two_folders_clashes_instead_of_overwriting(cli, tree, tmp_path):
    r = cli(
        "apply",
        "-k",
        "box",
        str(tree / "a" / "cam.png"),
        str(tree / "b" / "cam.png"),
        "-d",
        str(tmp_path / "flat"),
        "-j",
        "1",
    )
    assert r.exit_code == 1
    assert "is also the output of" in r.stderr
    first = np.asarray(Image.open(tmp_path / "flat" / "cam.box.png"))
    want = np.rint(convcli.convolve(np.asarray(Image.open(tree / "a" / "cam.png")), "box"))
    np.testing.assert_array_equal(first, want)


def test_two_workers_give_the_same_files_as_one(cli, tree, tmp_path):
    one = cli(
        "apply", "-k", "gaussian:sigma=1.5", "-r", str(tree), "-d", str(tmp_path / "j1"), "-j", "1"
    )
    two = cli(
        "apply", "-k", "gaussian:sigma=1.5", "-r", str(tree), "-d", str(tmp_path / "j2"), "-j", "2"
    )
    assert one.exit_code == two.exit_code == 0
    assert len(two.stdout.split()) == 3
    for path in (tmp_path / "j1").rglob("*.*"):
        other = tmp_path / "j2" / path.relative_to(tmp_path / "j1")
        assert path.read_bytes() == other.read_bytes()


def test_broken_inputs_are_reported_and_the_batch_goes_on(cli, tree, tmp_path):
    (tree / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    (tree / "a" / "empty.jpg").write_bytes(b"")
    r = cli("apply", "-k", "box", "-r", str(tree), "-d", str(tmp_path / "o"), "-j", "2")
    assert r.exit_code == 1
    errors = r.stderr.splitlines()
    assert any("broken.png: " in e and e.startswith("convcli: error:") for e in errors)
    assert any("empty.jpg: empty file" in e for e in errors)
    assert len(r.stdout.split()) == 3
    assert "3 done, 0 skipped, 2 failed" in r.stderr
    assert not list((tmp_path / "o").rglob("*broken*"))


def test_fail_fast_stops_at_the_first_failure(cli, tree, tmp_path):
    (tree / "a" / "0-broken.png").write_bytes(b"junk")
    r = cli(
        "apply", "-k", "box", "-r", str(tree), "-d", str(tmp_path / "o"), "-j", "1", "--fail-fast"
    )
    assert r.exit_code == 1
    assert r.stdout == ""  # the broken file sorts first, nothing after it ran
    assert "0 done, 0 skipped, 1 failed" in r.stderr


def test_skip_existing_resumes_without_decoding(cli, tree, tmp_path, monkeypatch):
    out = tmp_path / "o"
    cli("apply", "-k", "box", "-r", str(tree), "-d", str(out))
    (out / "b" / "cam.box.png").unlink()
    (out / "b" / "c" / "astro.box.jpg").unlink()
    import convcli.run.process

    opened = []
    real = convcli.run.process.open_image
    monkeypatch.setattr(
        convcli.run.process, "open_image", lambda *a, **k: opened.append(a[0]) or real(*a, **k)
    )
    r = cli("apply", "-k", "box", "-r", str(tree), "-d", str(out), "--skip-existing", "-j", "1")
    assert r.exit_code == 0
    assert "2 done, 1 skipped, 0 failed" in r.stderr
    assert len(opened) == 2


def test_progress_bar_when_asked(cli, tree, tmp_path):
    r = cli(
        "apply", "-k", "box", "-r", str(tree), "-d", str(tmp_path / "o"), "--progress", "-j", "1"
    )
    assert "convcli" in r.stderr and "3/3" in r.stderr
    quiet = cli("apply", "-k", "box", "-r", str(tree), "-d", str(tmp_path / "q"), "-q")
    assert quiet.stderr == ""


def test_stdin_to_stdout_chain_in_process(cli, tree, tmp_path):
    data = (tree / "a" / "cam.png").read_bytes()
    first = cli("apply", "-k", "sobel", "-", "-o", "-", "--format", "png", input=data)
    assert first.exit_code == 0
    second = cli(
        "apply", "-k", "gaussian", "-", "-o", str(tmp_path / "b.png"), input=first.stdout_bytes
    )
    assert second.exit_code == 0
    assert np.asarray(Image.open(tmp_path / "b.png")).shape == (64, 80)


def test_stdin_needs_somewhere_to_write(cli, tree):
    r = cli("apply", "-k", "box", "-", input=(tree / "a" / "cam.png").read_bytes())
    assert r.exit_code == 2
    assert "give -o or -d" in r.stderr
    r = cli("apply", "-k", "box", "-", "-o", "x.png", input=b"")
    assert "stdin is empty" in r.stderr


def test_stdout_refused_on_a_terminal():
    from convcli.run.request import build_request

    with pytest.raises(convcli.UsageError, match="image bytes to the terminal"):
        build_request(["box"], output="-", format="png", stdout_is_terminal=True)
    build_request(["box"], output="-", format="png", stdout_is_terminal=False)


def test_in_place_replaces_atomically_and_keeps_the_format(cli, tree):
    target = tree / "b" / "c" / "astro.jpg"
    r = cli("apply", "-k", "box", str(target), "--in-place")
    assert r.exit_code == 0
    assert Image.open(target).format == "JPEG"
    assert sorted(p.name for p in target.parent.iterdir()) == ["astro.jpg"]
    bad = cli("apply", "-k", "box", str(target), "--in-place", "--format", "png")
    assert bad.exit_code == 2 and "keeps each file's format" in bad.stderr


def test_outputs_never_leave_the_out_dir(cli, tree, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "a").symlink_to(tmp_path / "elsewhere")  # a link inside -d pointing out of it
    r = cli("apply", "-k", "box", "-r", str(tree), "-d", str(out), "-j", "1")
    assert r.exit_code == 1
    assert "would leave the output directory" in r.stderr
    assert list((tmp_path / "elsewhere").iterdir()) == []
    r = cli(
        "apply",
        "-k",
        "box",
        str(tree / "a" / "cam.png"),
        "-d",
        str(tmp_path / "o"),
        "--name",
        "../{stem}{ext}",
    )
    assert r.exit_code == 2 and "may not contain a directory" in r.stderr
    assert not (tmp_path / "cam.png").exists()


# -- real processes: signals, kill -9, pipes ---------------------------------------------------
def _many_images(folder: Path, photos, count: int) -> None:
    folder.mkdir()
    big = np.tile(photos["astronaut"], (2, 2, 1))  # 1024x1024 RGB: slow enough to interrupt
    for i in range(count):
        Image.fromarray(np.roll(big, i * 7, axis=1)).save(
            folder / f"img{i:03d}.png", compress_level=0
        )


def _complete(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _wait_for_outputs(out: Path, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if out.exists() and len(list(out.glob("*.png"))) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("the batch never produced outputs")


def _batch_args(src: Path, out: Path, jobs: str) -> list[str]:
    """A batch slow enough (16 photos, zlib level 9) to be caught in the middle."""
    options = ["-k", "gaussian:sigma=3", "-j", jobs, "--compress", "9"]
    return [CONVCLI, "apply", *options, "-r", str(src), "-d", str(out)]


@needs_script
@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_exits_130_and_leaves_no_partial_file(tmp_path, photos, jobs):
    src, out = tmp_path / "src", tmp_path / "out"
    _many_images(src, photos, 16)
    proc = subprocess.Popen(
        _batch_args(src, out, jobs),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _wait_for_outputs(out, 2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    outputs = list(out.glob("*.png"))
    assert 0 < len(outputs) < 16
    assert all(_complete(p) for p in outputs)


@needs_script
@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_stops_with_143_and_leaves_no_partial_file(tmp_path, photos, jobs):
    """kill, timeout and service managers send SIGTERM: it stops the batch as Ctrl-C does."""
    src, out = tmp_path / "src", tmp_path / "out"
    _many_images(src, photos, 16)
    proc = subprocess.Popen(
        _batch_args(src, out, jobs), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _wait_for_outputs(out, 2)
    workers = _children(proc.pid)
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert b"Traceback" not in err
    assert not any(map(_running, workers)), "workers stayed behind"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert all(_complete(p) for p in out.glob("*.png"))


@needs_script
@pytest.mark.slow
def test_a_worker_terminated_mid_input_leaves_no_partial_file_and_the_input_is_redone(
    tmp_path, photos
):
    """A worker killed with SIGTERM removes the output it was writing; the inputs it may have
    held are done again, alone, and the batch completes."""
    src, out = tmp_path / "src", tmp_path / "out"
    _many_images(src, photos, 12)
    proc = subprocess.Popen(
        _batch_args(src, out, "2"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _wait_for_outputs(out, 2)
    os.kill(_children(proc.pid)[0], signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    outputs = list(out.glob("*.png"))
    assert len(outputs) == 12 and all(_complete(p) for p in outputs)


@needs_script
@pytest.mark.slow
def test_kill_9_mid_batch_then_skip_existing_finishes(tmp_path, photos):
    src, out = tmp_path / "src", tmp_path / "out"
    _many_images(src, photos, 16)
    args = _batch_args(src, out, "2")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_outputs(out, 3)
    workers = _children(proc.pid)
    proc.kill()
    proc.wait()
    deadline = time.time() + 120  # orphaned workers finish the file in hand, then leave
    while any(map(_running, workers)) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(map(_running, workers)), "workers stayed behind"
    visible = list(out.glob("*.png"))
    assert all(_complete(p) for p in visible)
    done = subprocess.run([*args, "--skip-existing"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(visible)} skipped" in done.stderr
    outputs = sorted(out.glob("*.png"))
    assert len(outputs) == 16 and all(_complete(p) for p in outputs)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@needs_script
@pytest.mark.slow
def test_closed_pipe_ends_quietly(tmp_path, photos):
    src = tmp_path / "src"
    _many_images(src, photos, 6)
    result = subprocess.run(
        f"'{CONVCLI}' apply -k box -r '{src}' -d '{tmp_path / 'o'}' -j 1 | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.count("\n") == 1
    assert result.stderr == ""


@needs_script
@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args, expect",
    [
        (
            "find-files-from.sh",
            ["{images}", "{out}"],
            ["astronaut.gaussian-sigma2.jpg", "coffee.gaussian-sigma2.jpg"],
        ),
        ("xargs-parallel.sh", ["{images}", "{out}"], ["astronaut.sobel.jpg", "coffee.sobel.jpg"]),
        (
            "chain-two-calls.sh",
            ["{images}", "{out}"],
            ["edges/astronaut.gaussian-sigma1.sobel.jpg", "edges/coffee.gaussian-sigma1.sobel.jpg"],
        ),
        ("stdin-stdout.sh", ["{images}/astronaut.jpg", "{out}/a.png"], ["a.png"]),
        (
            "folder-recursive.sh",
            ["{images}", "{out}"],
            ["astronaut.sharpen.jpg", "camera.sharpen.png", "coffee.sharpen.jpg"],
        ),
    ],
)
def test_example_pipelines(tmp_path, script, args, expect):
    images = ROOT / "examples" / "images"
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.format(images=images, out=out) for a in args]
    subprocess.run(
        [str(ROOT / "examples" / "pipelines" / script), *argv],
        check=True,
        capture_output=True,
        timeout=300,
    )
    for name in expect:
        assert _complete(out / name), name


def test_only_the_input_that_kills_its_worker_fails(monkeypatch):
    """The pool's bookkeeping when a worker dies: every input in flight goes round again
    alone, and only the one whose worker dies again is reported failed. (A pool round is
    simulated: forking real workers from the test process, whose OpenCV threads have run,
    could hang them; a real death is tested above.)"""
    import itertools

    from convcli.kernels.registry import get_kernel
    from convcli.run import pool
    from convcli.run.process import Outcome
    from convcli.run.request import Request
    from convcli.run.sources import Source

    rounds = []

    def pool_round(queue, request, jobs, record, setup=None, work=None):
        rounds.append(jobs)
        while taken := list(itertools.islice(queue, 2 * jobs)):
            if any(s.label == "poison" for s in taken):
                return False, taken  # the pool broke: all in flight lost
            for source in taken:
                if record(Outcome(source)):
                    return True, []
        return False, []

    monkeypatch.setattr(pool, "_pool_round", pool_round)
    labels = [f"in{i}" for i in range(10)]
    labels[5] = "poison"
    outcomes = []
    request = Request(operation=get_kernel("box"), label="box")
    summary = pool.run(
        [Source(label) for label in labels], request, jobs=2, on_outcome=outcomes.append
    )
    assert sorted(o.source.label for o in outcomes) == sorted(labels)  # each reported once
    failed = [o for o in outcomes if o.error]
    assert [o.source.label for o in failed] == ["poison"]
    assert "the worker processing it died" in failed[0].error
    assert (summary.done, summary.failed) == (9, 1)
    assert rounds == [2, 1, 1, 1, 1, 2]  # the 4 in flight alone, then the rest together
