"""Real Linux 6.1 builds through doit: records, NIC proof, no-op speed
path, reproducibility, distcc."""
import json
import shutil
import subprocess
import time

import pytest

from common.errors import EXIT_USER_ERROR
from common.hashing import sha256_file
from kernels import build, matrix, toolchain
from kernels.build import nic_probes
from tests.conftest import (interrupt_doit, new_path_appears, project_env, run_doit, run_doit_killed,
                            session_build_dir, settled)

pytestmark = pytest.mark.e2e
LINE = "linux-6.1"


def line_dir():
    return session_build_dir() / LINE


def map_symbols(system_map):
    return {line.split()[-1] for line in system_map.read_text().splitlines() if line.strip()}


def test_build_outputs_and_record(kernel_61):
    out = kernel_61.parent
    assert {p.name for p in out.iterdir()} >= {"bzImage", "System.map", "config", "build.log", "build.json"}
    record = json.loads((out / "build.json").read_text())
    assert record["line"] == "linux-6.1" and record["variant"] == "pentium"
    assert record["source"] == "verified"
    (source,) = record["sources"]
    assert source["file"] == "linux-source-6.1.tar.xz" and len(source["sha256"]) == 64
    assert "debian package linux-source-6.1" in source["trust"]
    assert record["toolchain"]["gcc"].startswith("gcc")
    assert record["source_date_epoch"] == 1670792400 and record["build_seconds"] > 0
    header = kernel_61.read_bytes()[0x202:0x206]
    assert header == b"HdrS", "a real bzImage with a boot protocol header"
    assert map_symbols(out / "System.map") >= set(nic_probes().values())


def test_noop_rebuild_does_not_run_make(kernel_61):
    started = time.monotonic()
    result = run_doit("kernel:pentium", env=project_env())
    elapsed = time.monotonic() - started
    assert "-- kernel:pentium" in result.stdout, result.stdout
    assert "make bzImage" not in result.stdout + result.stderr
    print(f"no-op doit kernel:pentium: {elapsed:.2f}s")


def test_nic_specific_kernel_carries_only_its_driver(kernels):
    image = kernels(LINE, "pentium-epic100")["pentium-epic100"]
    symbols = map_symbols(image.parent / "System.map")
    probes = nic_probes()
    assert probes["CONFIG_EPIC100"] in symbols
    assert not symbols & {probes[o] for o in probes if o != "CONFIG_EPIC100"}


@pytest.fixture(scope="module")
def second_build_dir(kernel_61, tmp_path_factory):
    """A clean build of its own (reproducibility needs an independent one):
    another build folder, no ccache.  The prepared source tree is the run's
    own, hard-linked (kernels/tree.py keeps it under build/trees/; unpacking
    is proven by its sha256): what is built again is every object."""
    other = tmp_path_factory.mktemp("second") / "build"
    (other / "trees").mkdir(parents=True)
    for kept in (session_build_dir() / "trees").iterdir():
        subprocess.run(["cp", "-al", str(kept), str(other / "trees" / kept.name)], check=True)
    result = run_doit("kernel:pentium", env=project_env(LTSP_MOSIX_BUILD_DIR=str(other), LTSP_MOSIX_CCACHE="0"))
    assert "linking the tree prepared from the same sources" in result.stdout, result.stdout[-2000:]
    return other


def test_two_clean_builds_give_the_same_bzimage(kernel_61, second_build_dir):
    second = second_build_dir / LINE / "variants" / "pentium" / "out" / "bzImage"
    first_sha = sha256_file(kernel_61)
    assert sha256_file(second) == first_sha
    print(f"two clean builds of pentium: sha256 {first_sha}")


def test_a_seeded_nic_variant_is_byte_identical_to_a_clean_build(kernels, second_build_dir):
    """pentium-3c590 built from pentium's finished objects (kernels/seed.py),
    then its tree and output removed and built clean (seeding off; a clean
    build is the point, so in the second folder): the same bytes.  The clean
    build goes through ccache, whose entries come from the run's other
    folder (CCACHE_BASEDIR): cache hits from another path are the same
    bytes too."""
    kernels(LINE, "pentium-epic100")                # fills ccache with this CPU's objects
    env = project_env(LTSP_MOSIX_BUILD_DIR=str(second_build_dir), LTSP_MOSIX_CCACHE="0")
    variant_dir = second_build_dir / LINE / "variants" / "pentium-3c590"
    result = run_doit("kernel:pentium-3c590", env=env)
    assert "object tree seeded from pentium's build" in result.stdout, result.stdout[-2000:]
    seeded = json.loads((variant_dir / "out" / "build.json").read_text())
    assert seeded["seeded_from"] == "pentium"
    shutil.rmtree(variant_dir / "obj")
    shutil.rmtree(variant_dir / "out")
    run_doit("kernel:pentium-3c590", env={**env, "LTSP_MOSIX_SEED": "0", "LTSP_MOSIX_CCACHE": "1"})
    clean = json.loads((variant_dir / "out" / "build.json").read_text())
    assert clean["seeded_from"] is None
    print(f"pentium-3c590: seeded make {seeded['build_seconds']}s, clean make (ccache) "
          f"{clean['build_seconds']}s, bzImage {clean['bzImage']['sha256']}")
    assert clean["bzImage"] == seeded["bzImage"]


def test_unknown_variant_lists_the_valid_ones():
    result = run_doit("kernel:k6", env=project_env(), check=False)
    assert result.returncode == EXIT_USER_ERROR
    assert "unknown variant 'k6' for line linux-6.1; valid variants: athlon" in result.stderr


def accepts_connections(port: int) -> bool:
    import socket
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(shutil.which("distccd") is None, reason="distccd not installed (Debian package distcc)")
def test_distcc_compiles_kernel_objects_on_a_real_distccd(kernel_61, tmp_path, monkeypatch):
    """DISTCC_HOSTS switches the build to distcc: a real distccd on
    127.0.0.1 receives the kernel's compile jobs."""
    port = free_port()
    log = tmp_path / "distccd.log"
    # as root distccd drops to its own user: it logs to the stderr we opened
    log_handle = log.open("w")
    daemon = subprocess.Popen(["distccd", "--no-detach", "--daemon", "--allow", "127.0.0.1",
                               "--listen", "127.0.0.1", "--port", str(port), "--log-stderr",
                               "--log-level", "info", "--jobs", "2"], stderr=log_handle)
    try:
        assert settled(lambda: not accepts_connections(port)) is False, f"distccd never listened on {port}"
        monkeypatch.setenv("DISTCC_HOSTS", f"127.0.0.1:{port}/2")
        monkeypatch.setenv("DISTCC_FALLBACK", "0")      # fail rather than compile locally
        monkeypatch.setenv("CCACHE_DIR", str(tmp_path / "ccache"))    # cold: every object misses
        line = matrix.load_line("linux-6.1")
        chain = toolchain.for_line(line)
        assert any(v.startswith("CC=") and "gcc" in v for v in chain.make_vars)
        objdir = line_dir() / "variants" / "pentium" / "obj"
        targets = ["lib/ctype.o", "lib/cmdline.o", "lib/bcd.o"]
        for target in targets:
            (objdir / target).unlink(missing_ok=True)
        argv = ["make", *chain.make_vars, "-C", str(line_dir() / "src"), f"O={objdir}", *targets]
        result = subprocess.run(argv, env=build.reproducible_env(line), capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        served = log.read_text()
        assert served.count("COMPILE_OK") >= len(targets), served[-2000:]
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        log_handle.close()


def test_a_61_build_killed_anywhere_reruns_to_the_same_bytes(kernel_61, second_build_dir):
    """In the second folder (its own: the test removes objects): the objects
    of net/core, net/unix and net/packet removed, then `doit kernel:pentium`
    (real compiles: ccache off, the same command lines) killed -9 with its
    process group as sock.o, then af_unix.o, then af_packet.o appears, then
    run to the end: the same bzImage as the uninterrupted build."""
    reference = sha256_file(kernel_61)
    objdir = second_build_dir / LINE / "variants" / "pentium" / "obj"
    image = second_build_dir / LINE / "variants" / "pentium" / "out" / "bzImage"
    for folder in ("core", "unix", "packet"):
        shutil.rmtree(objdir / "net" / folder)
    # ccache off, as the folder's first build: the same compiler lines, so
    # make rebuilds net/ alone, with real compiles
    env = project_env(LTSP_MOSIX_BUILD_DIR=str(second_build_dir), LTSP_MOSIX_CCACHE="0")
    points = ("net/core/sock.o", "net/unix/af_unix.o", "net/packet/af_packet.o")
    outcomes = {}
    for target in points:
        run_doit("forget", "kernel:pentium", env=env)
        outcomes[target] = run_doit_killed("kernel:pentium", env=env, kill_when=new_path_appears(objdir, target))
    run_doit("forget", "kernel:pentium", env=env)
    final = run_doit("kernel:pentium", env=env)
    for target, outcome in outcomes.items():
        print(f"kill when {target} appears: {outcome}")
    assert sum(o.startswith("killed") for o in outcomes.values()) >= 2, outcomes
    assert "previous build was interrupted" in final.stdout + final.stderr
    assert sha256_file(image) == reference
    assert "packet_init" in map_symbols(image.parent / "System.map")


def test_sigterm_during_a_61_prepare_ends_at_once_and_the_next_run_cleans_up(tmp_path):
    """SIGTERM while Debian's 6.1 source unpacks (a folder of its own: an
    unpack is the point): the run ends with one line and status 143
    without deleting the half tree first (that takes a minute on a busy
    disk); src.tmp stays, unstamped, and the next prepare removes it."""
    import signal
    folder = tmp_path / "build"
    env = project_env(LTSP_MOSIX_BUILD_DIR=str(folder))
    staging = folder / "linux-6.1" / "src.tmp"
    outcome, code, output = interrupt_doit(
        "line=linux-6.1", "prepare", env=env, sig=signal.SIGTERM,
        kill_when=lambda _t: (staging / "drivers").is_dir())
    print(f"prepare {outcome}: exit {code}; {output.strip().splitlines()[-1]}")
    assert code == 143 and "interrupted by SIGTERM" in output and "Traceback" not in output, output[-2000:]
    assert staging.is_dir() and not (folder / "linux-6.1" / "src").exists()
    assert not (folder / "linux-6.1" / "prepared.json").exists()
    again = run_doit("line=linux-6.1", "prepare", env=env)
    assert "ready" in again.stdout and not staging.exists()
