"""Shared fixtures: the run's own build folder (never the project's
build/), an isolated build/download/configs area per test, the fake 2.4
tree, the run's kernels (each built at most once, through doit), and the
vanilla 2.4.22 test archive, verified and unpacked once per run.

With CI=true any skip fails the run (pytest_runtest_makereport below)."""
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "tests" / "fixtures"
pytest_plugins = ["tests.net_fixtures"]     # loopback HTTP server, gpg keys
DOIT = [sys.executable, "-m", "doit"]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Build and download dirs, and a copy of configs/ and patches/ that a
    test may edit, all under tmp_path."""
    configs = tmp_path / "configs"
    patches = tmp_path / "patches"
    shutil.copytree(ROOT / "configs", configs)
    if (ROOT / "patches").is_dir():
        shutil.copytree(ROOT / "patches", patches)
    patches.mkdir(exist_ok=True)
    monkeypatch.setenv("LTSP_MOSIX_CONFIGS", str(configs))
    monkeypatch.setenv("LTSP_MOSIX_PATCHES", str(patches))
    monkeypatch.setenv("LTSP_MOSIX_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("LTSP_MOSIX_DL_DIR", str(tmp_path / "dl"))
    return tmp_path


FAKE24_LINE = textwrap.dedent("""\
    description = "fake 2.4 line for tests"
    kernel = "2.4.99"
    config_system = "cml1"
    arch = "i386"
    base_defconfig = "arch/i386/defconfig"
    base_config = "fake24.config"
    invariants = "{invariants}"
    toolchain = "gcc-m32-2.4"
    image = "arch/i386/boot/bzImage"
    package_name = "ltsp_fake"
    default_variant = "pentium"
    initrd_format = "ext2"
    patches = "fake24"
    source_date_epoch = 1061769600
    nfs_options = "v3,udp"
    map_file = "hpc.map"

    [boot]
    memory_mb = [512, 2048, 3584]
    extra_nics_at_mb = 512

    [[sources]]
    name = "linux"
    role = "kernel"
    file = "linux-2.4.99.tar.bz2"
    urls = ["http://127.0.0.1:9/linux-2.4.99.tar.bz2"]
    """)


@pytest.fixture
def fake24(isolated, monkeypatch):
    """A line 'fake24' built from tests/fixtures/fake24 through the local
    source override; its series starts empty (tests add patches)."""
    def make(invariants="none.config"):
        (isolated / "configs" / "lines" / "fake24.toml").write_text(
            FAKE24_LINE.format(invariants=invariants))
        (isolated / "configs" / "lines" / "fake24.hash").write_text("# none\n")
        shutil.copy(FIXTURES / "fake24-base.config", isolated / "configs" / "base" / "fake24.config")
        (isolated / "patches" / "fake24").mkdir(exist_ok=True)
        (isolated / "patches" / "fake24" / "series").touch()
        monkeypatch.setenv("LTSP_MOSIX_OVERRIDE_FAKE24", str(FIXTURES / "fake24"))
        from kernels import matrix
        return matrix.load_line("fake24")
    return make


# -- the run's own build folder ---------------------------------------------------------
# Every test writes below the run's folder: pytest's session temporary folder
# (pytest keeps the last three), or LTSP_MOSIX_TEST_BUILD_DIR to keep one
# between runs.  The project's build/ is fingerprinted before and after the
# run: a run that changed it fails (pytest_sessionfinish).
SESSION: dict[str, str] = {}
PROJECT_BUILD = ROOT / "build"


@pytest.hookimpl(trylast=True)         # after pytest's tmp_path plugin
def pytest_configure(config):
    chosen = os.environ.get("LTSP_MOSIX_TEST_BUILD_DIR")
    base = Path(chosen).resolve() if chosen else config._tmp_path_factory.getbasetemp()
    SESSION.update(LTSP_MOSIX_BUILD_DIR=str(base / "build"), LTSP_MOSIX_DL_DIR=str(base / "dl"))
    os.environ.update(SESSION)
    config.stash[_BUILD_BEFORE] = tree_fingerprint(PROJECT_BUILD)


_BUILD_BEFORE = pytest.StashKey[dict]()


def tree_fingerprint(top: Path) -> dict:
    """path -> (kind, size, mtime) of everything below top ({} if absent)."""
    found = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            found[str(path.relative_to(top))] = (info.st_mode >> 12, info.st_size, info.st_mtime_ns)
    return found


def pytest_sessionfinish(session, exitstatus):
    before = session.config.stash.get(_BUILD_BEFORE, None)
    if before is None:
        return
    after = tree_fingerprint(PROJECT_BUILD)
    if after != before:
        changed = sorted(set(before) ^ set(after) | {k for k in set(before) & set(after)
                                                      if before[k] != after[k]})
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (f"the test run changed the project's {PROJECT_BUILD.name}/ ({len(changed)} paths, "
                   f"first: {', '.join(changed[:5])}): tests must write below {SESSION['LTSP_MOSIX_BUILD_DIR']}")
        if reporter:
            reporter.write_line(f"FAILED: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config, items):
    """LTSP_MOSIX_TEST_ORDER=reverse or shuffle[:SEED] runs the modules in
    another order (each module's own tests keep theirs): the result must
    not depend on it."""
    order = os.environ.get("LTSP_MOSIX_TEST_ORDER", "")
    if not order:
        return
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    names = list(modules)
    if order == "reverse":
        names.reverse()
    elif order.startswith("shuffle"):
        import random
        seed = order.partition(":")[2] or str(random.randrange(10**6))
        random.Random(seed).shuffle(names)
        config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"module order shuffled with seed {seed} (LTSP_MOSIX_TEST_ORDER=shuffle:{seed} repeats it)")
    else:
        raise pytest.UsageError(f"LTSP_MOSIX_TEST_ORDER={order!r}: use reverse or shuffle[:SEED]")
    items[:] = [item for name in names for item in modules[name]]


def session_build_dir() -> Path:
    return Path(SESSION["LTSP_MOSIX_BUILD_DIR"])


def project_env(**extra) -> dict:
    """The environment of a doit run on the project's configs and patches,
    in the run's build folder: none of the caller's other LTSP_MOSIX_*
    settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTSP_MOSIX_")}
    env.update(SESSION)
    env.update(extra)
    return env


def run_doit(*args, env=None, check=True, cwd=ROOT, timeout=3000):
    result = subprocess.run(DOIT + list(args), cwd=cwd, env=env or dict(os.environ),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"doit {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def run_doit_killed(*args, env, kill_when, poll=0.02, timeout=900, sig=None) -> str:
    """Start doit in a session of its own and send its process group `sig`
    (default SIGKILL, as an operator's kill -9 or a power cut) as soon as
    kill_when(seconds) is true.  Returns "killed at N.Ns" or "finished
    first"; with another signal, also the exit status and the output:
    see interrupt_doit."""
    return interrupt_doit(*args, env=env, kill_when=kill_when, poll=poll, timeout=timeout,
                          sig=sig)[0]


def interrupt_doit(*args, env, kill_when, poll=0.02, timeout=900, sig=None):
    """(outcome, exit status, output) of a doit run signalled as above."""
    import signal
    import tempfile
    import time
    sig = sig or signal.SIGKILL
    with tempfile.TemporaryFile() as output:
        # SIGINT as a terminal's Ctrl-C delivers it: a test runner started
        # in the background (`... &`, nohup) has SIGINT ignored, and an
        # ignored signal stays ignored in every child it starts.
        proc = subprocess.Popen(DOIT + list(args), cwd=ROOT, env=env, start_new_session=True,
                                stdout=output, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        start = time.monotonic()
        outcome = "finished first"
        try:
            while proc.poll() is None:
                elapsed = time.monotonic() - start
                if kill_when(elapsed):
                    os.killpg(proc.pid, sig)
                    signalled = time.monotonic()
                    outcome = f"{signal.Signals(sig).name} at {elapsed:.1f}s"
                    if sig == signal.SIGKILL:
                        outcome = f"killed at {elapsed:.1f}s"
                    proc.wait(timeout=60)
                    if sig != signal.SIGKILL:       # how long the run took to end (reported, not judged)
                        outcome += f", ended {time.monotonic() - signalled:.2f}s later"
                    break
                if elapsed > timeout:
                    raise AssertionError(f"doit {' '.join(args)} still running after {timeout}s")
                time.sleep(poll)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        output.seek(0)
        return outcome, proc.returncode, output.read().decode(errors="replace")


def new_path_appears(root: Path, pattern: str):
    """A kill_when predicate for run_doit_killed: true once a path matching
    root.glob(pattern) exists that did not when the predicate was made (an
    observed event, never a number of seconds)."""
    before = set(root.glob(pattern))
    return lambda _elapsed: any(path not in before for path in root.glob(pattern))


def console_shows(logs: Path, needle: str):
    """A kill_when predicate: true once a console log written after the
    predicate was made holds `needle` (e.g. a kernel is booting in QEMU).
    A boot's log is <name>.log.partial while QEMU runs (lab/boot/watcher.py)."""
    import time
    made = time.time()

    def seen(_elapsed) -> bool:
        for log in logs.glob("*.log*") if logs.is_dir() else ():
            try:
                if log.stat().st_mtime >= made and needle in log.read_text(errors="replace"):
                    return True
            except FileNotFoundError:
                continue
        return False
    return seen


def settled(probe, grace: float = 10.0):
    """probe() again until it finds nothing (a process that is going away
    may take a moment), for at most `grace` seconds; its last finding."""
    import time
    deadline = time.monotonic() + grace
    while (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def qemu_processes(prefix: str) -> list[int]:
    """QEMUs whose arguments include one starting with prefix (our boots
    name theirs `-name ltsp-mosix-<boot name>`)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"qemu" in argv[0] and any(arg.startswith(prefix.encode()) for arg in argv[1:]):
                found.append(int(proc.name))
    return found


class KernelCache:
    """Each kernel built at most once per run: `doit line=L kernel:<v>` in
    the run's build folder, remembered for every module that asks again.
    A test that must see a clean build of its own says why and builds in a
    folder of its own instead."""

    def __init__(self):
        self.built: set[tuple[str, str]] = set()

    def __call__(self, line: str, *variants: str) -> dict[str, Path]:
        missing = [v for v in variants if (line, v) not in self.built]
        if missing:
            result = run_doit(f"line={line}", *(f"kernel:{v}" for v in missing), env=project_env())
            print(result.stdout[-1500:])
            self.built.update((line, v) for v in missing)
        images = {v: session_build_dir() / line / "variants" / v / "out" / "bzImage" for v in variants}
        absent = [str(image) for image in images.values() if not image.is_file()]
        assert not absent, f"built but missing: {absent}"
        return images


@pytest.fixture(scope="session")
def kernels() -> KernelCache:
    return KernelCache()


@pytest.fixture(scope="session")
def kernel_61(kernels) -> Path:
    """The default 6.1 variant (pentium), from the run's cache."""
    return kernels("linux-6.1", "pentium")["pentium"]


# -- the vanilla 2.4.22 test archive ---------------------------------------------------
# Made for tests and CI from the public tree hooao/linux-2.4.22 @ aa17aeb
# (`git archive --prefix=linux-2.4.22/ | xz -9`); NOT kernel.org's tarball.
# It lies outside the repository, in ../shared/sources/ from the project
# root (LTSP_MOSIX_TEST_SOURCES names another folder), and is never copied
# into it.
VANILLA_24 = "linux-2.4.22.tar.xz"
VANILLA_24_SIZE = 23_119_468
VANILLA_24_SHA256 = "7ed98b9601c6fc70aabfa5e0dbb7298fb1d7b67d96f72b85abb4e78df8ae5998"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def shared_sources_dir() -> Path:
    return Path(os.environ.get("LTSP_MOSIX_TEST_SOURCES", ROOT.parent / "shared" / "sources"))


@pytest.fixture(scope="session")
def vanilla_24_archive() -> Path:
    """The archive, after its size and sha256 are checked.  Missing: a skip
    on a developer's machine, a failure in CI; wrong bytes: always a failure."""
    archive = shared_sources_dir() / VANILLA_24
    if not archive.is_file():
        reason = (f"no vanilla Linux 2.4.22 archive {archive} (set LTSP_MOSIX_TEST_SOURCES to the "
                  f"folder holding {VANILLA_24})")
        if in_ci():
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    digest = hashlib.sha256()
    with archive.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    size = archive.stat().st_size
    if (size, digest.hexdigest()) != (VANILLA_24_SIZE, VANILLA_24_SHA256):
        pytest.fail(f"{archive}: {size} bytes, sha256 {digest.hexdigest()}; expected "
                    f"{VANILLA_24_SIZE} bytes, sha256 {VANILLA_24_SHA256}: not the test archive")
    return archive


@pytest.fixture(scope="session")
def vanilla_24_tree(vanilla_24_archive) -> Path:
    """The archive unpacked (safely, by the project's own unpacker) once per
    run under the build folder: the tree the local-override tests build."""
    from common import paths
    from kernels.unpack import safe_extract
    return safe_extract(vanilla_24_archive, paths.build_dir() / "test-inputs" / "linux-2.4.22",
                        strip_components=1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With CI=true any skip is a failure: CI installs every tool and has
    every input (the 2.4 archive, network namespaces, distccd), so a skip
    there would hide a capability behind a green run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: no test may skip ({reason})"


def pytest_terminal_summary(terminalreporter):
    skipped = len(terminalreporter.stats.get("skipped", []))
    terminalreporter.write_line(f"skipped: {skipped}" + (" (CI=true: a skip fails the run)" if in_ci() else ""))
