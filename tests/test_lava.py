"""LAVA jobs for every variant of the lines, checked with LAVA's own schema
(Debian's lava-common, for real); the boot monitor's pattern against the
recorded consoles; reading lava-run logs and LAVA server results; the
import's refusals.  A real lava-run of 6.1 and 2.4 jobs is in
tests/e2e/test_lava.py and tests/e2e/test_linux24.py."""
import json
import re

import pytest
import yaml

from common.errors import InfraError, UserError
from common.hashing import sha256_file
from initrd.build import initrd_path
from kernels import build, matrix
from lab import lava
from lab.boot.patterns import classify_line
from lab.boot.watcher import BOOT_MARKER
from tests.conftest import FIXTURES
from tests.lava_results import server_results, write_server_results

CONSOLES = FIXTURES / "consoles"
BASE_URL = "http://lab-server.example/ltsp-mosix"


def fake_built(line, variant, kernel: bytes = b"HdrS") -> str:
    out = build.out_dir(line, variant)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bzImage").write_bytes(kernel + variant.name.encode())
    sha = sha256_file(out / "bzImage")
    (out / "build.json").write_text(json.dumps({"bzImage": {"sha256": sha}}))
    initrd = initrd_path(line)
    initrd.parent.mkdir(parents=True, exist_ok=True)
    if not initrd.exists():
        initrd.write_bytes(b"initrd")
    return sha


@pytest.mark.parametrize("line_name, count", [("linux-6.1", 12 * 3 + 4 * (3 + 1 + 1)),
                                              ("linux-2.4.22", 12 * 3 + 4 * (3 + 1 + 1)),
                                              ("linux-6.1-x86_64", 2 * 2 + 2 * 3)])
def test_every_variants_jobs_validate_with_lavas_schema(isolated, line_name, count):
    line = matrix.load_line(line_name)
    for variant in line.variants():
        fake_built(line, variant)
    written = lava.write_jobs(line, line.variants(), BASE_URL)
    cards = {name: len(matrix.nic_profile(name).boot_nics) for name in matrix.nic_profiles()}
    expected = sum(len(line.boot.memory_mb) + cards[v.nic] for v in line.variants())
    assert len(written) == expected == count
    jobs = {p.name: yaml.safe_load(p.read_text()) for p in written}
    # written files are what was validated: check them again, as a lab would on submission
    lava.validate_jobs(jobs)
    first = line.variants()[0].name
    assert (lava.artifacts_dir(line) / first / "bzImage").read_bytes() == b"HdrS" + first.encode()


def test_the_qemu_and_node_jobs_carry_the_matrix(isolated):
    line = matrix.load_line("linux-2.4.22")
    variant = line.variant("pentium_smp-3c590")
    sha = fake_built(line, variant)
    jobs = {lava.job_file_name(j): j for j in lava.jobs_for(line, variant, BASE_URL + "/")}
    assert sorted(jobs) == ["linux-2.4.22-pentium_smp-3c590-qemu-2048M.yaml",
                            "linux-2.4.22-pentium_smp-3c590-qemu-3584M.yaml",
                            "linux-2.4.22-pentium_smp-3c590-qemu-512M.yaml",
                            "linux-2.4.22-pentium_smp-3c590-x86-3c59x.yaml"]
    qemu = jobs["linux-2.4.22-pentium_smp-3c590-qemu-2048M.yaml"]
    assert qemu["context"] == {"arch": "i386", "cpu": "pentium", "memory": 2048,
                               "extra_options": ["-smp 2,sockets=2,cores=1,threads=1"]}
    deploy = qemu["actions"][0]["deploy"]
    assert deploy["images"]["kernel"] == {
        "image_arg": '-kernel {kernel} -append "console=ttyS0,115200 panic=1 root=/dev/ram0 init=/sbin/init"',
        "url": f"{BASE_URL}/pentium_smp-3c590/bzImage", "sha256sum": sha}
    node = jobs["linux-2.4.22-pentium_smp-3c590-x86-3c59x.yaml"]
    assert node["device_type"] == "x86" and node["tags"] == ["3c59x"]
    assert node["actions"][1]["boot"] == {"method": "ipxe", "commands": "ramdisk", "timeout": {"minutes": 5}}
    assert node["context"] == {"extra_kernel_args": "panic=1 root=/dev/ram0 init=/sbin/init"}
    assert node["metadata"]["ltsp_mosix.card"] == "3c590"
    assert node["metadata"]["ltsp_mosix.kernel_sha256"] == sha
    monitor = node["actions"][2]["test"]["monitors"][0]
    assert (monitor["start"], monitor["end"]) == ("Linux version", BOOT_MARKER)


def test_an_invalid_job_is_refused_by_lavas_schema_naming_it():
    job = {"job_name": "broken", "device_type": "qemu", "visibility": "public",
           "timeouts": {"job": {"minutes": 1}}, "priority": "medium",
           "actions": [{"boot": {"method": "qemu", "media": "floppy"}}]}
    with pytest.raises(InfraError, match=r"LAVA rejects generated jobs.*\n  broken: .*media"):
        lava.validate_jobs({"broken": job})


def test_lava_jobs_need_a_base_url_and_built_kernels(isolated):
    line = matrix.load_line("linux-6.1")
    with pytest.raises(UserError, match="base_url ''"):
        lava.write_jobs(line, [line.variant("pentium")], "")
    with pytest.raises(UserError, match=r"bzImage missing: run doit kernel:pentium"):
        lava.write_jobs(line, [line.variant("pentium")], BASE_URL)
    assert not lava.jobs_dir(line).exists()


def monitor_regex(line_name: str, variant: str, hardware: bool) -> re.Pattern:
    line = matrix.load_line(line_name)
    return re.compile(lava.monitor(line, line.variant(variant), hardware=hardware)["pattern"])


def stream(name: str) -> str:
    """A recorded console as LAVA's pexpect sees it through QEMU's pty:
    lines end \\r\\r\\n (the kernel's \\r\\n, and the pty's own \\r)."""
    return (CONSOLES / name).read_text(errors="replace").replace("\r", "").replace("\n", "\r\r\n")


@pytest.mark.parametrize("name", ["good-6.1-pxe.log", "good-6.1-direct.log", "good-2.4.22-direct.log",
                                  "good-2.4.22-smp-pxe.log", "warning-then-pass-6.1.log"])
def test_the_monitor_sees_no_failure_before_the_marker_of_a_good_boot(name):
    text = stream(name)
    marker = text.index(BOOT_MARKER)
    regex = monitor_regex("linux-6.1" if "6.1" in name else "linux-2.4.22",
                          "pentium_smp" if "smp" in name else "pentium", hardware=False)
    found = regex.search(text)
    assert found is None or found.start() > marker, found


@pytest.mark.parametrize("name, kind", [("no-root-2.4.log", "no-root"), ("kernel-panic-6.1.log", "kernel-panic"),
                                        ("oops-null-2.4.log", "oops"), ("gpf-6.1.log", "oops"),
                                        ("init-died-6.1.log", "init-died"),
                                        ("initrd-beyond-memory-2.4.log", "initrd-beyond-memory"),
                                        ("cpu-mismatch-6.1.log", "cpu-mismatch"),
                                        ("smp-on-one-cpu-2.4.log", None)])
def test_the_monitor_fails_the_recorded_bad_boots(name, kind):
    smp = "smp" in name
    regex = monitor_regex("linux-6.1" if "6.1" in name else "linux-2.4.22",
                          "pentium_smp" if smp else "pentium", hardware=False)
    found = regex.search(stream(name))
    assert found, name
    text = found.group("test_case_id")
    assert found.group("result") == ""            # fixupdict {"": fail}
    if kind:
        assert classify_line(text).kind == kind
    else:
        assert text.startswith("ltsp-mosix: cpus: 1")


def test_a_hardware_job_fails_a_node_whose_card_was_not_bound():
    """QEMU boots of a 3c590 kernel find no card (QEMU has none): the node
    job for the same kernel must not pass that way."""
    bound = stream("good-2.4.22-direct.log")
    assert "ltsp-mosix: interfaces: lo eth0\r\r\n" in bound
    unbound = bound.replace("interfaces: lo eth0\r", "interfaces: lo\r")
    assert monitor_regex("linux-2.4.22", "pentium-3c590", hardware=False).search(unbound) is None
    found = monitor_regex("linux-2.4.22", "pentium-3c590", hardware=True).search(unbound)
    assert found and found.group("test_case_id") == "ltsp-mosix: interfaces: lo"
    assert monitor_regex("linux-2.4.22", "pentium-3c590", hardware=True).search(bound) is None


def test_the_qemu_device_dictionary_follows_the_job_context(isolated):
    line = matrix.load_line("linux-6.1")
    variant = line.variant("pentium_smp")
    fake_built(line, variant)
    job = lava.jobs_for(line, variant, BASE_URL)[1]
    device = lava.device_dictionary(job)
    options = device["actions"]["boot"]["methods"]["qemu"]["parameters"]["options"]
    assert options[:2] == ["-cpu pentium", "-m 2048"] and options[-1] == "-smp 2,sockets=2,cores=1,threads=1"
    node = lava.jobs_for(line, variant, BASE_URL)[-1]
    with pytest.raises(UserError, match="device type 'x86': only 'qemu' jobs run here"):
        lava.device_dictionary(node)


def imported(line, variant, tmp_path, **kwargs):
    sha = fake_built(line, variant)
    job = next(j for j in lava.jobs_for(line, variant, BASE_URL) if j["device_type"] == "x86")
    job_path = tmp_path / "job.yaml"
    job_path.write_text(yaml.safe_dump(job))
    results = write_server_results(tmp_path / "results.yaml", job_path, job_id=4711, **kwargs)
    return sha, job_path, results


def test_server_results_import_as_a_lab_pass_with_the_device(isolated, tmp_path):
    line = matrix.load_line("linux-6.1")
    variant = line.variant("p4-epic100")
    sha, job_path, results = imported(line, variant, tmp_path)
    record = json.loads(lava.import_results(line, job_path, results, "lab-node-07").read_text())
    assert {k: record[k] for k in ("variant", "device", "device_type", "card", "job_id", "verdict", "ran_on",
                                   "kernel_sha256")} == {
        "variant": "p4-epic100", "device": "lab-node-07", "device_type": "x86", "card": "epic100",
        "job_id": "4711", "verdict": "pass", "ran_on": "lab/lab-node-07", "kernel_sha256": sha}
    assert lava.lab_results(line, variant) == [record]


def test_a_failed_lab_boot_is_named_by_its_console_line(isolated, tmp_path):
    line = matrix.load_line("linux-6.1")
    variant = line.variant("p4-epic100")
    _, job_path, results = imported(line, variant, tmp_path,
                                    failure="Kernel panic - not syncing: VFS: Unable to mount root fs")
    record = json.loads(lava.import_results(line, job_path, results, "lab-node-07").read_text())
    assert (record["verdict"], record["kind"]) == ("fail", "no-root")
    assert record["failure"].startswith("Kernel panic - not syncing")


def test_import_refuses_another_kernel_another_line_and_missing_input(isolated, tmp_path):
    line = matrix.load_line("linux-6.1")
    variant = line.variant("p4-epic100")
    _, job_path, results = imported(line, variant, tmp_path, kernel_sha256="ee" * 32)
    with pytest.raises(UserError, match=r"downloaded kernel sha256 e{64}, but .*job.yaml names"):
        lava.import_results(line, job_path, results, "lab-node-07")
    _, job_path, results = imported(line, variant, tmp_path)
    fake_built(line, variant, kernel=b"rebuilt")
    with pytest.raises(UserError, match="but the current build is .*rebuilt since"):
        lava.import_results(line, job_path, results, "lab-node-07")
    with pytest.raises(UserError, match="not a job of line linux-2.4.22"):
        lava.import_results(matrix.load_line("linux-2.4.22"), job_path, results, "lab-node-07")
    with pytest.raises(UserError, match="device=NAME"):
        lava.import_results(line, job_path, results, "")
    with pytest.raises(UserError, match="results=.*nowhere.yaml: no such file"):
        lava.import_results(line, job_path, tmp_path / "nowhere.yaml", "lab-node-07")
    assert lava.lab_results(line, variant) == []


def test_results_that_are_neither_format_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("{not: [closed\n")
    with pytest.raises(UserError, match="bad.yaml:1: not valid YAML"):
        lava.read_results(bad)
    bad.write_text("job: 1\n")
    with pytest.raises(UserError, match="must be a list of test cases"):
        lava.read_results(bad)


def test_a_server_long_extra_list_is_read(tmp_path):
    """A server exports a long `extra` as a list of one-key mappings."""
    job = {"actions": [{"deploy": {"kernel": {"sha256sum": "aa" * 32}, "ramdisk": {"sha256sum": "bb" * 32}}}]}
    entries = yaml.safe_load(server_results(job, job_id=1))
    entries[0]["metadata"]["extra"] = [{"label": "kernel"}, {"sha256sum": "aa" * 32}]
    path = tmp_path / "results.yaml"
    path.write_text(yaml.safe_dump(entries))
    results = lava.read_results(path)
    assert lava._download_sha256(results, "kernel") == "aa" * 32
    assert lava.judge(results)["verdict"] == "pass"
