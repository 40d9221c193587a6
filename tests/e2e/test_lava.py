"""LAVA for real on this machine: `doit lava-jobs` for the built 6.1
pentium kernel (artifacts served on loopback), its QEMU job run by Debian's
lava-run through `doit lava-run`, LAVA's verdict imported as the variant's
lab boot; and a broken boot (no initramfs) that LAVA must fail.  The 2.4.22
job runs in tests/e2e/test_linux24.py."""
import json
import shutil

import pytest
import yaml

from tests.conftest import project_env, run_doit, session_build_dir
from tests.httpserver import serve_folder

pytestmark = pytest.mark.e2e

LINE_DIR = session_build_dir() / "linux-6.1"       # set before collection (tests/conftest.py)
LAB = LINE_DIR / "boot" / "pentium" / "lab"


@pytest.fixture(scope="module")
def lava_jobs(kernel_61):
    shutil.rmtree(LAB, ignore_errors=True)
    with serve_folder(LINE_DIR / "lava" / "artifacts") as base_url:
        result = run_doit("line=linux-6.1", "lava-jobs", "variants=pentium", f"base_url={base_url}/",
                          env=project_env())
        print(result.stdout[-1500:])
        assert "6 jobs valid for LAVA's schema" in result.stdout
        yield LINE_DIR / "lava" / "jobs" / "pentium"
    shutil.rmtree(LAB, ignore_errors=True)     # later tests release pentium from its own boots only


def test_the_qemu_job_of_a_61_kernel_passes_in_lava_run(lava_jobs):
    job = lava_jobs / "linux-6.1-pentium-qemu-512M.yaml"
    result = run_doit("line=linux-6.1", "lava-run", f"job={job}", env=project_env())
    print(result.stdout[-800:])
    assert "[lava-import] pentium: ltsp-mosix linux-6.1 pentium qemu 512M on qemu-local (qemu): pass" \
        in result.stdout
    record = json.loads((LAB / "linux-6.1-pentium-qemu-512M.json").read_text())
    built = json.loads((LINE_DIR / "variants" / "pentium" / "out" / "build.json").read_text())
    assert (record["verdict"], record["device"], record["device_type"], record["mem_mb"]) == \
        ("pass", "qemu-local", "qemu", 512)
    assert record["kernel_sha256"] == built["bzImage"]["sha256"]
    log = (LINE_DIR / "lava" / "runs" / job.stem / "lava-run.log").read_text()
    results = [line for line in log.splitlines() if '"lvl": "results"' in line]
    print("lava-run result lines:\n" + "\n".join(r[:300] for r in results))
    assert any('"case": "lava-test-monitor"' in r and '"result": "pass"' in r for r in results)
    assert any('"case": "job"' in r and '"result": "pass"' in r for r in results)
    assert "LTSP-MOSIX-BOOT-OK" in (LAB / "linux-6.1-pentium-qemu-512M.log").read_text()


def test_a_boot_without_its_initramfs_fails_in_lava(lava_jobs, tmp_path):
    job = yaml.safe_load((lava_jobs / "linux-6.1-pentium-qemu-512M.yaml").read_text())
    job["job_name"] += " no-initramfs"
    del job["actions"][0]["deploy"]["images"]["ramdisk"]
    job["timeouts"]["action"] = {"minutes": 1}
    broken = tmp_path / "no-initramfs.yaml"
    broken.write_text(yaml.safe_dump(job, sort_keys=False))
    result = run_doit("line=linux-6.1", "lava-run", f"job={broken}", env=project_env(), check=False)
    print(result.stdout[-800:], result.stderr[-800:])
    assert result.returncode != 0
    record = json.loads((LAB / "linux-6.1-pentium-qemu-512M-no-initramfs.json").read_text())
    assert record["verdict"] == "fail" and record["kind"] in ("no-init", "no-root"), record
    assert "lava-run no-initramfs.yaml: fail" in result.stderr + result.stdout
