"""KCIDB output (release/kcidb.py) checked with KernelCI's own schema
package (kcidb-io); the e2e boot test writes it for real builds and boots."""
import json

import kcidb_io
import pytest

from kernels import build, matrix
from lab.boot.variant import boot_results_path
from release import kcidb


@pytest.fixture
def line(tmp_path, monkeypatch):
    monkeypatch.setenv("LTSP_MOSIX_BUILD_DIR", str(tmp_path / "build"))
    return matrix.load_line("linux-6.1")


def _record(line, variant, sha="ab" * 32) -> dict:
    record = {"line": line.name, "kernel": line.kernel, "kernel_release": "6.1.192", "variant": variant.name,
              "source": "verified",
              "sources": [{"name": "linux", "file": "linux-source-6.1.tar.xz", "sha256": "cd" * 32,
                           "trust": "debian package linux-source-6.1"}],
              "patches": [{"name": "0001-a.patch", "sha256": "01" * 32}, {"name": "0002-b.patch", "sha256": "02" * 32}],
              "config_sha256": "ef" * 32, "bzImage": {"sha256": sha, "size": 1335808},
              "toolchain": {"name": "gcc12-i386", "gcc": "gcc (Debian 12.2.0-14) 12.2.0"},
              "source_date_epoch": 1670792400, "build_seconds": 130.5, "seeded_from": None}
    out = build.out_dir(line, variant)
    out.mkdir(parents=True)
    (out / "build.json").write_text(json.dumps(record))
    return record


def _boots(line, variant, sha, verdicts) -> None:
    boots = [{"name": f"{line.name}-{variant.name}-e1000-{512 * (i + 1)}M-pxe", "line": line.name,
              "variant": variant.name, "cpu": variant.cpu, "nic": "e1000", "boot_nic": "e1000",
              "mem_mb": 512 * (i + 1), "path": "pxe", "firmware": "ipxe", "verdict": verdict,
              "seconds": 3.1, "kind": None if verdict == "pass" else "timeout", "console_line": None,
              "tries": [], "high_initrd": False}
             for i, verdict in enumerate(verdicts)]
    path = boot_results_path(line, variant)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"kernel_sha256": sha, "initrd_sha256": "00" * 32, "boots": boots}))


def test_builds_and_boots_validate_against_kernelcis_schema(line):
    pentium, athlon = line.variant("pentium"), line.variant("athlon")
    _record(line, pentium)
    _boots(line, pentium, "ab" * 32, ["pass", "hang", "infra-error"])
    _record(line, athlon)
    document = kcidb.kcidb_report(line, line.variants())
    kcidb_io.schema.V5_3.validate(document)
    assert len(document["checkouts"]) == 1 and len(document["builds"]) == 2
    checkout = document["checkouts"][0]
    assert checkout["patchset_hash"] == kcidb.patchset_hash([{"sha256": "01" * 32}, {"sha256": "02" * 32}])
    assert checkout["tree_name"] == "linux-6.1" and checkout["id"].startswith("ltsp_mosix:linux-6.1-")
    assert [t["status"] for t in document["tests"]] == ["PASS", "FAIL", "ERROR"]
    assert all(t["origin"] == "ltsp_mosix" and t["id"].startswith("ltsp_mosix:") for t in document["tests"])
    assert document["tests"][0]["path"] == "boot.pxe_ipxe.e1000.512M"


def test_patchset_hash_is_kcidbs_definition():
    import hashlib
    patches = [{"sha256": "01" * 32}, {"sha256": "02" * 32}]
    expected = hashlib.sha256(("01" * 32 + "\n" + "02" * 32 + "\n").encode()).hexdigest()
    assert kcidb.patchset_hash(patches) == expected
    assert kcidb.patchset_hash([]) == ""


def test_boots_of_another_kernel_are_left_out(line):
    pentium = line.variant("pentium")
    _record(line, pentium, sha="ab" * 32)
    _boots(line, pentium, "99" * 32, ["pass"])
    document = kcidb.kcidb_report(line, [pentium])
    assert document["tests"] == [] and len(document["builds"]) == 1


def test_write_kcidb_writes_a_valid_file(line):
    pentium = line.variant("pentium")
    _record(line, pentium)
    out = kcidb.write_kcidb(line, [pentium])
    kcidb_io.schema.V5_3.validate(json.loads(out.read_text()))


@pytest.mark.parametrize("line_name, variant_name, arch, binary", [
    ("linux-6.1", "p4", "i386", "qemu-system-i386"),
    ("linux-6.1-x86_64", "haswell", "x86_64", "qemu-system-x86_64")])
def test_architecture_and_environment_come_from_the_line_and_cpu_data(tmp_path, monkeypatch, line_name,
                                                                       variant_name, arch, binary):
    monkeypatch.setenv("LTSP_MOSIX_BUILD_DIR", str(tmp_path / "build"))
    line = matrix.load_line(line_name)
    variant = line.variant(variant_name)
    _record(line, variant)
    _boots(line, variant, "ab" * 32, ["pass"])
    document = kcidb.kcidb_report(line, [variant])
    kcidb_io.schema.V5_3.validate(document)
    (built,) = document["builds"]
    (test,) = document["tests"]
    assert built["architecture"] == arch == line.arch
    assert test["environment"]["comment"].startswith(f"QEMU {arch} TCG ({binary}), -cpu for {variant.cpu}")
