"""Build one variant: make (with ccache/distcc, fixed timestamp, user and
host), then collect bzImage, System.map, .config, the log and a JSON record
under build/<line>/variants/<variant>/out/, renamed into place at the end."""
import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from common import paths
from common.data import read_toml, require
from common.errors import KernelFailure, UserError
from common.hashing import sha256_file
from common.paths import configs_dir
from kernels import buildsystem, kconfig, seed, toolchain, tree
from kernels.fragments import read_config_values
from kernels.runner import run_logged

BUILD_USER = "ltsp-mosix"
BUILD_HOST = "ltsp-mosix"


def out_dir(line, variant) -> Path:
    return paths.variant_dir(line.name, variant.name) / "out"


def source_date_epoch(line) -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH", line.source_date_epoch))


def reproducible_env(line) -> dict[str, str]:
    epoch = source_date_epoch(line)
    stamp = datetime.fromtimestamp(epoch, timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")
    env = toolchain.build_env()
    env.update(SOURCE_DATE_EPOCH=str(epoch), KBUILD_BUILD_TIMESTAMP=stamp,
               KBUILD_BUILD_USER=BUILD_USER, KBUILD_BUILD_HOST=BUILD_HOST,
               KBUILD_BUILD_VERSION="1", LC_ALL="C", TZ="UTC")
    # 2.4's Makefile reads these through patches/linux-2.4.22/0100-*.
    env["KBUILD_BUILD_DOMAIN"] = ""
    return buildsystem.for_line(line).environment(env)


def build(line, variant) -> dict:
    chain = toolchain.for_line(line)
    chain.check()
    label = f"kernel:{variant.name}"
    workdir = paths.variant_dir(line.name, variant.name)
    log = workdir / "build.log"
    log.write_text("")
    env = reproducible_env(line)
    jobs = f"-j{toolchain.parallel_jobs()}"
    system = buildsystem.for_line(line)
    objdir = system.recovered_object_dir(line, variant, label)
    base = seed.base_variant(line, variant)
    if base is not None:
        seed.seed_object_dir(line, variant, out_dir(line, base) / "build.json", label)
    _install_config(line, variant, objdir)
    system.prepare_build(objdir)
    marker = objdir / tree.RUNNING_MARKER
    marker.write_text("")           # its mtime: anything newer is this run's output
    start = time.monotonic()
    stages = list(system.stages)
    if read_config_values(objdir / ".config").get("CONFIG_MODULES") == "y":
        stages.append("modules")
    for stage in stages:
        run_logged(system.make_argv(line, variant, jobs, stage), cwd=objdir, env=env, log=log,
                   label=label, stage=f"make {stage}", error_class=KernelFailure,
                   on_start=lambda process: tree.note_build_group(marker, process.pid))
    seconds = round(time.monotonic() - start, 1)
    verify_nic_drivers(variant, objdir / ".config", objdir / "System.map")
    verify_builtin_code(variant, objdir / ".config", objdir / "System.map")
    record = _collect(line, variant, objdir, log, seconds, chain, seed.seeded_from(objdir))
    marker.unlink()
    return record


def _install_config(line, variant, objdir: Path) -> None:
    """The audited config is the truth: put it back if the object dir was
    cleaned or its .config differs (make would otherwise silently rebuild
    from something else)."""
    final = kconfig.final_config_path(line, variant)
    if not final.is_file():
        raise UserError(f"kernel:{variant.name}: no final config at {final} (run doit config:{variant.name})")
    dot_config = objdir / ".config"
    objdir.mkdir(parents=True, exist_ok=True)
    if not dot_config.is_file() or dot_config.read_bytes() != final.read_bytes():
        shutil.copyfile(final, dot_config)


def nic_probes() -> dict[str, str]:
    path = configs_dir() / "nic" / "probes.toml"
    return require(read_toml(path), "drivers", dict, path)


def verify_nic_drivers(variant, config: Path, system_map: Path) -> dict[str, bool]:
    """Each driver's probe symbol is in System.map exactly when the config
    builds the driver in: a NIC-specific kernel carries its driver only."""
    values = read_config_values(config)
    symbols = {line.split()[-1] for line in system_map.read_text().splitlines() if line.strip()}
    found, wrong = {}, []
    for option, symbol in nic_probes().items():
        wanted = values.get(option) == "y"
        found[option] = symbol in symbols
        if wanted != found[option]:
            wrong.append(f"  {option}={'y' if wanted else 'not set'} but {symbol} "
                         f"{'absent from' if wanted else 'present in'} System.map")
    if wrong:
        raise KernelFailure(f"kernel:{variant.name}: NIC drivers do not match the config\n" + "\n".join(wrong))
    return found


def builtin_symbols() -> dict[str, list[str]]:
    path = configs_dir() / "builtin-symbols.toml"
    return require(read_toml(path), "options", dict, path)


def verify_builtin_code(variant, config: Path, system_map: Path) -> None:
    """Every option of configs/builtin-symbols.toml that the config builds
    in has one of its symbols in System.map: a kernel never ships with less
    code than its config asks for."""
    values = read_config_values(config)
    symbols = {line.split()[-1] for line in system_map.read_text().splitlines() if line.strip()}
    missing = [f"  {option}=y but none of {', '.join(wanted)} is in System.map"
               for option, wanted in builtin_symbols().items()
               if values.get(option) == "y" and not symbols.intersection(wanted)]
    if missing:
        raise KernelFailure(f"kernel:{variant.name}: the kernel lacks code its config builds in (an "
                            f"object missing from the link?)\n" + "\n".join(missing))


def _collect(line, variant, objdir: Path, log: Path, seconds: float, chain,
             seeded_from: str | None) -> dict:
    out = out_dir(line, variant)
    staging = out.with_name("out.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    image = objdir / line.image
    if not image.is_file():
        raise KernelFailure(f"kernel:{variant.name}: make finished but {image} is missing (log: {log})")
    for src, name in ((image, "bzImage"), (objdir / "System.map", "System.map"),
                      (objdir / ".config", "config"), (log, "build.log")):
        shutil.copyfile(src, staging / name)
    record = build_record(line, variant, staging, seconds, chain, kernel_release(objdir))
    record["seeded_from"] = seeded_from
    (staging / "build.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)
    print(f"[kernel:{variant.name}] bzImage {record['bzImage']['size']} bytes in {seconds}s "
          f"sha256 {record['bzImage']['sha256'][:16]}…  -> {out}", flush=True)
    return record


def kernel_release(objdir: Path) -> str:
    """6.1 writes include/config/kernel.release; 2.4 has only the Makefile."""
    release = objdir / "include" / "config" / "kernel.release"
    if release.is_file():
        return release.read_text().strip()
    fields = {}
    for text in (objdir / "Makefile").read_text().splitlines()[:6]:
        name, _, value = text.partition("=")
        fields[name.strip()] = value.strip()
    return "{VERSION}.{PATCHLEVEL}.{SUBLEVEL}{EXTRAVERSION}".format(**fields)


def build_record(line, variant, out: Path, seconds: float, chain, release: str) -> dict:
    provenance = tree.read_provenance(line)
    return {
        "line": line.name, "kernel": line.kernel, "kernel_release": release, "variant": variant.name,
        "cpu": variant.cpu, "nic_profile": variant.nic,
        "source": "verified" if provenance.verified else tree.UNVERIFIED,
        "sources": list(provenance.sources),
        "override": provenance.override,
        "patches": list(provenance.patches),
        "config_sha256": sha256_file(out / "config"),
        "bzImage": {"sha256": sha256_file(out / "bzImage"), "size": (out / "bzImage").stat().st_size},
        "toolchain": {"name": chain.name, "make_vars": list(chain.make_vars), **chain.versions()},
        "source_date_epoch": source_date_epoch(line),
        "build_user": BUILD_USER, "build_host": BUILD_HOST,
        "build_seconds": seconds,
    }
