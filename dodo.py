"""ltsp-mosix task graph.  `doit list` shows the tasks; `doit line=NAME ...`
picks the kernel line (default in configs/default.toml).  Build logic lives
in the packages; this file only wires tasks and their dependencies."""
import os
import sys

from doit import get_var
from doit.exceptions import TaskFailed
from doit.tools import config_changed

from kernels import build, kconfig, matrix, paths, pipeline, toolchain, tree
from kernels.errors import LtspError


def _load_line():
    try:
        return matrix.load_line(get_var("line", None))
    except LtspError as error:
        print(error, file=sys.stderr)
        sys.exit(2)


VARIANT_TASKS = ("config", "kernel", "boot-test")
NOT_VARIANTS = {"report"}


def _check_requested_variants(line):
    """`doit kernel:k6` would get doit's generic "not a task" answer; name
    the valid variants instead."""
    valid = {v.name for v in line.variants()}
    for arg in sys.argv[1:]:
        task, _, variant = arg.partition(":")
        if task in VARIANT_TASKS and variant and variant not in valid | NOT_VARIANTS:
            print(f"user error: unknown variant {variant!r} for line {line.name}; "
                  f"valid variants: {', '.join(sorted(valid))}", file=sys.stderr)
            sys.exit(2)


LINE = _load_line()
_check_requested_variants(LINE)
paths.build_dir().mkdir(parents=True, exist_ok=True)     # doit keeps its state there
DOIT_CONFIG = {
    "default_tasks": [f"kernel:{LINE.default_variant}"],
    "verbosity": 2,
    "dep_file": str(paths.build_dir() / f".doit-{LINE.name}.db"),
}


def _run(step, *args):
    """A doit action that reports LtspErrors as a message, not a traceback."""
    def action():
        try:
            step(*args)
        except LtspError as error:
            return TaskFailed(str(error))
        return None
    action.__name__ = step.__name__
    return action


def _line_inputs():
    files = [matrix.configs_dir() / "lines" / f"{LINE.name}.toml", LINE.hash_file]
    if LINE.series_file and LINE.series_file.exists():
        files.append(LINE.series_file)
        files += sorted(LINE.series_file.parent.glob("*.patch"))
    return [str(f) for f in files]


def task_fetch():
    """Download and verify every source of the line (sha256 pins, OpenPGP)."""
    return {"actions": [_run(pipeline.fetch_line, LINE)], "uptodate": [False]}


def task_pin():
    """Pin a source deliberately: doit pin source=NAME records its sha256."""
    return {"actions": [_run(lambda: pipeline.pin(LINE, get_var("source", "")))], "uptodate": [False]}


def task_prepare():
    """Unpack the verified source (or local override) and apply the patch series."""
    override = tree.override_dir(LINE) if not LINE.unsupported else None
    return {
        "actions": [_run(pipeline.prepare_line, LINE)],
        "file_dep": _line_inputs(),
        "targets": [str(tree.stamp_path(LINE))],
        "uptodate": [config_changed({"override": str(override)})],
    }


def task_config():
    """Compose, run the kernel's config step and audit a variant's .config."""
    for variant in LINE.variants():
        yield {
            "name": variant.name,
            "actions": [_run(pipeline.configure_variant, LINE, variant)],
            "file_dep": [str(tree.stamp_path(LINE))] + [str(f) for f in kconfig.fragment_files(LINE, variant)],
            "targets": [str(kconfig.final_config_path(LINE, variant))],
            "uptodate": [config_changed(_requested(variant))],
            "doc": f"final .config of {variant.name}",
        }


def _requested(variant):
    try:
        return kconfig.requested_options(LINE, variant).__repr__()
    except LtspError as error:
        return str(error)       # the action reports it


def task_check():
    """Fail if the cluster-invariant options differ between the line's variants."""
    return {
        "actions": [_run(pipeline.check_line, LINE)],
        "task_dep": [f"config:{v.name}" for v in LINE.variants()],
        "uptodate": [False],
    }


def task_kernel():
    """Build a variant: bzImage, System.map, .config, log and build.json."""
    for variant in LINE.variants():
        out = build.out_dir(LINE, variant)
        yield {
            "name": variant.name,
            "actions": [_run(pipeline.build_variant, LINE, variant)],
            "file_dep": [str(kconfig.final_config_path(LINE, variant)), str(tree.stamp_path(LINE))],
            "targets": [str(out / "bzImage"), str(out / "build.json")],
            "uptodate": [config_changed({"make": _make_vars(), "epoch": build.source_date_epoch(LINE)})],
            "doc": f"kernel for {variant.name}",
        }


def _make_vars():
    try:
        return list(toolchain.for_line(LINE).make_vars)
    except LtspError as error:
        return str(error)


def task_initrd():
    """Build the node initrd of the line (ext2 for 2.4, cpio for 6.1) with its tiny init."""
    from kernels import boottest
    sources = sorted(str(p) for p in (paths.PROJECT_ROOT / "initrd").glob("*.[ch]")) + \
        sorted(str(p) for p in (paths.PROJECT_ROOT / "initrd").glob("*.py"))
    return {"actions": [_run(boottest.build_initrd, LINE)], "file_dep": sources,
            "targets": [str(boottest.initrd_path(LINE))]}


def task_boot_test():
    """PXE-boot every variant under QEMU (512 MB, 2 GB, 3.5 GB; e1000, rtl8139, ne2k_pci)."""
    from kernels import boottest, release
    yield {"basename": "boot-test", "name": None, "doc": task_boot_test.__doc__.strip()}
    for variant in LINE.variants():
        yield {
            "basename": "boot-test",
            "name": variant.name,
            "actions": [_run(pipeline.boot_test_variant, LINE, variant)],
            "file_dep": [str(build.out_dir(LINE, variant) / "bzImage"), str(boottest.initrd_path(LINE))],
            "targets": [str(release.boot_results_path(LINE, variant))],
            "doc": f"boot matrix of {variant.name}",
        }
    yield {
        "basename": "boot-test",
        "name": "report",
        "actions": [_run(pipeline.boot_report, LINE)],
        "task_dep": [f"boot-test:{v.name}" for v in LINE.variants()],
        "uptodate": [False],
        "doc": "matrix table, JUnit XML and Markdown report of the line's boots",
    }


def task_release():
    """Gate, package, sum, sign and publish the line: doit release key=FPR keyring=DIR [variants=a,b]."""
    names = get_var("variants", "")
    try:
        chosen = pipeline.selected_variants(LINE, names)
    except LtspError:
        chosen = []
    return {
        "actions": [_run(pipeline.release_line, LINE, names,
                         get_var("key", os.environ.get("LTSP_MOSIX_RELEASE_KEY", "")),
                         get_var("keyring", os.environ.get("LTSP_MOSIX_RELEASE_KEYRING", "")))],
        "task_dep": ["check"] + [f"boot-test:{v.name}" for v in chosen],
        "uptodate": [False],
    }


def task_verify_release():
    """Check a published release: doit verify-release dir=DIR key=FPR [keys=DIR]."""
    return {"basename": "verify-release",
            "actions": [_run(pipeline.verify_release, get_var("dir", ""), get_var("key", ""),
                             get_var("keys", ""))],
            "uptodate": [False]}


def task_cluster_test():
    """Server + three nodes in a network namespace: PXE by MAC, NFS root, ping (doit cluster-test [cluster=FILE])."""
    name = get_var("cluster", "")
    try:
        variants = sorted({node.variant_name for node in pipeline.load_test_cluster(LINE, name).nodes})
    except LtspError:
        variants = []       # the action reports the error
    return {"basename": "cluster-test",
            "actions": [_run(pipeline.cluster_test, LINE, name)],
            "task_dep": [f"kernel:{v}" for v in variants],
            "uptodate": [False]}
