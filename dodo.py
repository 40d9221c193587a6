"""ltsp-mosix task graph.  `doit list` shows the tasks; `doit line=NAME ...`
picks the kernel line (default in configs/default.toml).  The task bodies
live in their layers (kernels/, initrd/, qemu/, release/ tasks.py); this
file only wires tasks, their inputs and their dependencies."""
import os

from doit import get_var
from doit.tools import config_changed

from common import cli, paths
from common.errors import LtspError
from initrd import tasks as image_tasks
from initrd.build import initrd_path
from kernels import build, kconfig, matrix
from kernels import tasks as kernel_tasks
from kernels import seed, toolchain, tree
from lab.boot import variant as variant_boots
from lab import tasks as lab_tasks
from release import tasks as release_tasks

cli.install()
LINE = cli.load_or_exit(lambda: matrix.load_line(get_var("line", None)))
cli.check_requested_variants(LINE, ("config", "kernel", "boot-test"), {"report"})
paths.build_dir().mkdir(parents=True, exist_ok=True)     # doit keeps its state there
cli.hold_build_folder()
DOIT_CONFIG = {
    "default_tasks": [f"kernel:{LINE.default_variant}"],
    "verbosity": 2,
    "dep_file": str(paths.build_dir() / f".doit-{LINE.name}.db"),
}
_run = cli.action


def _or_message(compute):
    """A value for doit's up-to-date check, or the error's text: the action
    itself then reports the error."""
    try:
        return compute()
    except LtspError as error:
        return str(error)


def _line_inputs():
    files = [paths.configs_dir() / "lines" / f"{LINE.name}.toml", LINE.hash_file]
    if LINE.series_file and LINE.series_file.exists():
        files.append(LINE.series_file)
        files += sorted(LINE.series_file.parent.glob("*.patch"))
    return [str(f) for f in files]


def task_fetch():
    """Download and verify every source of the line (sha256 pins, signed listings, OpenPGP)."""
    return {"actions": [_run(kernel_tasks.fetch_line, LINE)], "uptodate": [False]}


def task_pin():
    """Pin a source deliberately: doit pin source=NAME records its sha256."""
    return {"actions": [_run(kernel_tasks.pin, LINE, get_var("source", ""))], "uptodate": [False]}


def task_prepare():
    """Unpack the verified source (or local override) and apply the patch series."""
    override = tree.override_dir(LINE) if not LINE.unsupported else None
    return {
        "actions": [_run(kernel_tasks.prepare_line, LINE)],
        "file_dep": _line_inputs(),
        "targets": [str(tree.stamp_path(LINE))],
        "uptodate": [config_changed({"override": str(override)}), _same_sources],
    }


def _same_sources(task, values):
    """doit up-to-date check, run only when prepare is considered: the
    sources are the ones the tree was prepared from (kernel_tasks.source_identity)."""
    identity = repr(_or_message(lambda: kernel_tasks.source_identity(LINE)))
    task.value_savers.append(lambda: {"sources": identity})
    return values.get("sources") == identity


def task_config():
    """Compose, run the kernel's config step and audit a variant's .config."""
    for variant in LINE.variants():
        yield {
            "name": variant.name,
            "actions": [_run(kernel_tasks.configure_variant, LINE, variant)],
            "file_dep": [str(tree.stamp_path(LINE))] + [str(f) for f in kconfig.fragment_files(LINE, variant)],
            "targets": [str(kconfig.final_config_path(LINE, variant))],
            "uptodate": [config_changed(_or_message(lambda v=variant: repr(kconfig.requested_options(LINE, v))))],
            "doc": f"final .config of {variant.name}",
        }


def task_check():
    """Fail if the cluster-invariant options differ between the line's variants."""
    return {
        "actions": [_run(kernel_tasks.check_line, LINE)],
        "task_dep": [f"config:{v.name}" for v in LINE.variants()],
        "uptodate": [False],
    }


def task_kernel():
    """Build a variant: bzImage, System.map, .config, log and build.json."""
    make_vars = _or_message(lambda: list(toolchain.for_line(LINE).make_vars))
    for variant in LINE.variants():
        out = build.out_dir(LINE, variant)
        base = seed.base_variant(LINE, variant) if seed.seeding_enabled() else None
        yield {
            "name": variant.name,
            "actions": [_run(kernel_tasks.build_variant, LINE, variant)],
            # a NIC-specific variant starts from its CPU's build (kernels/seed.py)
            "task_dep": [f"kernel:{base.name}"] if base else [],
            "file_dep": [str(kconfig.final_config_path(LINE, variant)), str(tree.stamp_path(LINE))],
            "targets": [str(out / "bzImage"), str(out / "build.json")],
            "uptodate": [config_changed({"make": make_vars, "epoch": build.source_date_epoch(LINE)})],
            "doc": f"kernel for {variant.name}",
        }


def task_initrd():
    """Build the node initrd of the line (ext2 for 2.4, cpio for 6.1) with its tiny init."""
    sources = sorted(paths.PROJECT_ROOT.glob("initrd/*.[ch]")) + sorted(paths.PROJECT_ROOT.glob("initrd/*.py"))
    return {"actions": [_run(image_tasks.build_initrd, LINE)], "file_dep": [str(p) for p in sources],
            "targets": [str(initrd_path(LINE))]}


def task_boot_test():
    """PXE-boot every variant under QEMU (the line's [boot] plan, each NIC profile's boot NICs)."""
    yield {"basename": "boot-test", "name": None, "doc": task_boot_test.__doc__.strip()}
    for variant in LINE.variants():
        yield {
            "basename": "boot-test",
            "name": variant.name,
            "actions": [_run(lab_tasks.boot_test_variant, LINE, variant)],
            "file_dep": [str(build.out_dir(LINE, variant) / "bzImage"), str(initrd_path(LINE))],
            "targets": [str(variant_boots.boot_results_path(LINE, variant))],
            "doc": f"boot matrix of {variant.name}",
        }
    yield {
        "basename": "boot-test",
        "name": "report",
        "actions": [_run(lab_tasks.boot_report, LINE)],
        "task_dep": [f"boot-test:{v.name}" for v in LINE.variants()],
        "uptodate": [False],
        "doc": "matrix table, JUnit XML and Markdown report of the line's boots",
    }


def task_release():
    """Gate, package, sum, sign and publish the line: doit release key=FPR keyring=DIR [variants=a,b] [hardware=required]."""
    names = get_var("variants", "")
    chosen = _or_message(lambda: LINE.selected(names))
    return {
        "actions": [_run(release_tasks.release_line, LINE, names,
                         get_var("key", os.environ.get("LTSP_MOSIX_RELEASE_KEY", "")),
                         get_var("keyring", os.environ.get("LTSP_MOSIX_RELEASE_KEYRING", "")),
                         get_var("hardware", os.environ.get("LTSP_MOSIX_RELEASE_HARDWARE", "")))],
        "task_dep": ["check"] + ([f"boot-test:{v.name}" for v in chosen] if isinstance(chosen, list) else []),
        "uptodate": [False],
    }


def task_kcidb():
    """The line's builds and boots as KernelCI KCIDB JSON (build/<line>/kcidb.json), schema-checked."""
    return {"actions": [_run(release_tasks.kcidb_line, LINE)], "uptodate": [False]}


def _cluster_task(basename: str, load, action) -> dict:
    """A task booting a cluster file's nodes (cluster=FILE), after their kernels."""
    name = get_var("cluster", "")
    cluster = _or_message(lambda: load(LINE, name))
    variants = sorted({node.variant_name for node in cluster.nodes}) if not isinstance(cluster, str) else []
    return {"basename": basename, "actions": [_run(action, LINE, name)],
            "task_dep": [f"kernel:{v}" for v in variants], "uptodate": [False]}


def task_migrate_test():
    """CRIU migrates a running computation between two netbooted x86-64 nodes (doit line=linux-6.1-x86_64 migrate-test)."""
    return _cluster_task("migrate-test", lab_tasks.load_migrate_cluster, lab_tasks.migrate_test)


def task_lava_jobs():
    """LAVA job definitions (QEMU device, real x86 node per card), schema-checked: doit lava-jobs base_url=URL."""
    names = get_var("variants", "")
    chosen = _or_message(lambda: LINE.selected(names))
    return {"basename": "lava-jobs",
            "actions": [_run(lab_tasks.lava_jobs, LINE, names, get_var("base_url", ""))],
            "task_dep": ([f"kernel:{v.name}" for v in chosen] + ["initrd"]) if isinstance(chosen, list) else [],
            "uptodate": [False]}


def task_lava_run():
    """Run one QEMU LAVA job here with lava-run and import its results: doit lava-run job=FILE."""
    return {"basename": "lava-run", "actions": [_run(lab_tasks.lava_run, LINE, get_var("job", ""))],
            "uptodate": [False]}


def task_lava_import():
    """A LAVA job's results into the variant's boots: doit lava-import job=FILE results=FILE device=NAME."""
    return {"basename": "lava-import",
            "actions": [_run(lab_tasks.lava_import, LINE, get_var("job", ""), get_var("results", ""),
                             get_var("device", ""), get_var("job_id", ""))],
            "uptodate": [False]}


def task_verify_release():
    """Check a published release: doit verify-release dir=DIR key=FPR [keys=DIR]."""
    return {"basename": "verify-release",
            "actions": [_run(release_tasks.verify_release, get_var("dir", ""), get_var("key", ""),
                             get_var("keys", ""))],
            "uptodate": [False]}


def task_cluster_test():
    """Server + nodes in a network namespace: PXE by MAC, NFS root, ping (doit cluster-test [cluster=FILE])."""
    return _cluster_task("cluster-test", lab_tasks.load_test_cluster, lab_tasks.cluster_test)
