"""--scheduler: a batch and a huge image on a real Dask LocalCluster (worker processes on this
machine), with the same files and failures as a local run."""

from __future__ import annotations

import numpy as np
import pytest

import convcli
from conftest import write_png

distributed = pytest.importorskip("dask.distributed")
tifffile = pytest.importorskip("tifffile")

pytestmark = pytest.mark.slow


def _local_cluster():
    """Two worker processes of one thread on this machine, quiet, without dashboards."""
    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
        silence_logs=50,
    )


@pytest.fixture(scope="module")
def cluster():
    with _local_cluster() as local:
        yield local


@pytest.fixture
def folder(tmp_path, photos):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    write_png(src / "cam.png", photos["camera"][:100, :120])
    write_png(src / "sub" / "astro.png", photos["astronaut"][:90, :80])
    (src / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return src


def test_batch_on_the_cluster_equals_a_local_run(cli, cluster, folder, tmp_path):
    local = cli(
        "apply",
        "-k",
        "gaussian:sigma=2",
        "-r",
        str(folder),
        "-d",
        str(tmp_path / "local"),
        "-j",
        "1",
    )
    remote = cli(
        "apply",
        "-k",
        "gaussian:sigma=2",
        "-r",
        str(folder),
        "-d",
        str(tmp_path / "remote"),
        "--scheduler",
        cluster.scheduler_address,
    )
    assert local.exit_code == remote.exit_code == 1
    assert sorted(remote.stdout.split()) == sorted(
        p.replace(str(tmp_path / "local"), str(tmp_path / "remote")) for p in local.stdout.split()
    )
    assert [e for e in remote.stderr.splitlines() if "error" in e] == [
        e for e in local.stderr.splitlines() if "error" in e
    ]
    for path in (tmp_path / "local").rglob("*.png"):
        twin = tmp_path / "remote" / path.relative_to(tmp_path / "local")
        assert path.read_bytes() == twin.read_bytes()
    assert not [p for p in (tmp_path / "remote").rglob(".*")]


def test_environment_variable(cli, cluster, folder, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVCLI_SCHEDULER", cluster.scheduler_address)
    r = cli("apply", "-k", "box", str(folder / "cam.png"), "-d", str(tmp_path / "o"))
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "o" / "cam.box.png").is_file()


@pytest.mark.parametrize(
    "spec, extra", [("gaussian:sigma=3", []), ("sobel-x", ["--range", "rescale"])]
)
def test_huge_image_in_chunks_on_the_cluster(cli, cluster, tmp_path, photos, spec, extra):
    big = np.tile(photos["camera"], (3, 2))  # 1536 x 1024
    tifffile.imwrite(tmp_path / "big.tif", big, tile=(128, 128))
    local = cli(
        "apply", "-k", spec, str(tmp_path / "big.tif"), "-o", str(tmp_path / "l.tif"), *extra
    )
    assert local.exit_code == 0
    remote = cli(
        "apply",
        "-k",
        spec,
        str(tmp_path / "big.tif"),
        "-o",
        str(tmp_path / "r.tif"),
        "--memory",
        "2MiB",
        "--scheduler",
        cluster.scheduler_address,
        *extra,
    )
    assert remote.exit_code == 0, remote.stderr
    np.testing.assert_array_equal(
        convcli.read_image(tmp_path / "r.tif"), convcli.read_image(tmp_path / "l.tif")
    )


@pytest.mark.parametrize("extra", [[], ["--range", "rescale", "--depth", "16"]])
def test_huge_volume_in_slabs_on_the_cluster(cli, cluster, tmp_path, extra):
    """A volume over the budget: one task a slab of z, each reading its halo; the result is
    the local in-memory one bit for bit."""
    rng = np.random.default_rng(13)
    tifffile.imwrite(tmp_path / "z.tif", (rng.random((48, 64, 64)) * 255).astype(np.uint8))
    args = ["apply", "--volume", "-k", "gaussian:sigma=1.5", str(tmp_path / "z.tif"), *extra]
    local = cli(*args, "-o", str(tmp_path / "l.tif"))
    assert local.exit_code == 0, local.stderr
    remote = cli(
        *args,
        "-o",
        str(tmp_path / "r.tif"),
        "--memory",
        "1MiB",
        "--scheduler",
        cluster.scheduler_address,
    )
    assert remote.exit_code == 0, remote.stderr
    ours, theirs = tifffile.imread(tmp_path / "r.tif"), tifffile.imread(tmp_path / "l.tif")
    assert ours.shape == (48, 64, 64) and np.array_equal(ours, theirs)


# the nanny restarts the killed worker, whose HTTP server may find another test's port taken
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")
def test_a_worker_dying_mid_batch(cli, tmp_path, photos):
    """Kill a worker while it works: its task is run again elsewhere, every output is whole."""
    import os
    import signal
    import threading
    import time

    src = tmp_path / "src"
    src.mkdir()
    big = np.tile(photos["astronaut"], (2, 2, 1))
    for i in range(8):
        write_png(src / f"i{i}.png", np.roll(big, i, axis=0))
    with _local_cluster() as local:
        with distributed.Client(local) as client:
            pids = list(client.run(os.getpid).values())

        def kill_one() -> None:
            deadline = time.time() + 60
            while time.time() < deadline and not list((tmp_path / "out").glob("*.png")):
                time.sleep(0.05)
            os.kill(pids[0], signal.SIGKILL)

        killer = threading.Thread(target=kill_one)
        killer.start()
        r = cli(
            "apply",
            "-k",
            "gaussian:sigma=4",
            "-r",
            str(src),
            "-d",
            str(tmp_path / "out"),
            "--scheduler",
            local.scheduler_address,
        )
        killer.join()
    outputs = sorted((tmp_path / "out").glob("*.png"))
    failed = [line for line in r.stderr.splitlines() if line.startswith("convcli: error:")]
    assert len(outputs) + len(failed) == 8
    assert all("the worker processing it died" in line for line in failed)
    for path in outputs:
        assert convcli.read_image(path).shape == (1024, 1024, 3)
    assert not [
        p for p in (tmp_path / "out").iterdir() if p.name.startswith(".") and not _owner_alive(p)
    ]


def _owner_alive(part) -> bool:
    import os

    pid = int(part.name.split(".")[-2].split("-")[0])
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_unreachable_scheduler(cli, folder):
    r = cli(
        "apply",
        "-k",
        "box",
        str(folder / "cam.png"),
        "-o",
        "/tmp/x.png",
        "--scheduler",
        "tcp://127.0.0.1:9",
    )
    assert r.exit_code == 2
    assert "cannot reach the Dask scheduler" in r.stderr
