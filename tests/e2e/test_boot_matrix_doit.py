"""doit boot-test as users run it: two variants at once (`doit -n 2`), the
NIC-specific kernel recorded as "driver present, no card to bind", and the
line's report (matrix, JUnit XML, Markdown with the logs linked)."""
import json
import xml.etree.ElementTree as ElementTree

import pytest

from tests.conftest import ROOT, project_env, run_doit

pytestmark = pytest.mark.e2e
BOOT = ROOT / "build" / "linux-6.1" / "boot"


def test_two_variants_boot_in_parallel_and_report(kernel_61):
    run_doit("kernel:pentium-epic100", env=project_env())
    for variant in ("pentium", "pentium-epic100"):
        (BOOT / variant / "results.json").unlink(missing_ok=True)
    result = run_doit("-n", "2", "boot-test:pentium", "boot-test:pentium-epic100", env=project_env())
    print(result.stdout[-3000:])
    plain = json.loads((BOOT / "pentium" / "results.json").read_text())
    specific = json.loads((BOOT / "pentium-epic100" / "results.json").read_text())
    assert {b["mem_mb"] for b in plain["boots"] if b["nic"] == "e1000"} == {512, 2048, 3584}
    assert all(b["verdict"] == "pass" for b in plain["boots"] + specific["boots"])
    assert {b["nic"] for b in specific["boots"]} == {"epic100"}
    assert all(b["boot_nic"] == "e1000" and b["interfaces"] in ([], ["lo"]) for b in specific["boots"])
    assert all(any("driver present, no card to bind" in note for note in b["notes"]) for b in specific["boots"])
    # Each variant keeps one boot through its NIC's PXE ROM; the others start iPXE as the kernel.
    for record in (plain, specific):
        routes = sorted(f"{b['nic']}-{b['mem_mb']}:{b['firmware']}" for b in record["boots"])
        assert [r for r in routes if r.endswith(":rom")] == [f"{record['boots'][0]['nic']}-512:rom"], routes
        assert all(b["firmware"] in ("rom", "ipxe") and b["path"] == "pxe" for b in record["boots"])

    for name in ("junit.xml", "report.md", "matrix.txt"):       # refreshed by every variant's boots
        assert (BOOT / name).is_file()
    cases = ElementTree.parse(BOOT / "junit.xml").getroot().iter("testcase")
    names = {f"{c.get('classname')}/{c.get('name')}" for c in cases}
    assert {"pentium/e1000-3584M-pxe", "pentium/e1000-512M-pxe-rom",
            "pentium-epic100/epic100-3584M-pxe", "pentium-epic100/epic100-512M-pxe-rom"} <= names
    suites = {s.get("name") for s in ElementTree.parse(BOOT / "junit.xml").getroot().iter("testsuite")}
    assert suites == {"linux-6.1"}
    assert "logs/" in (BOOT / "report.md").read_text()


def test_kcidb_of_the_booted_variants_validates(kernel_61):
    """doit kcidb after the boot test: KernelCI's schema package accepts it,
    and every boot of the two booted variants is a PASS test of its build."""
    import kcidb_io
    run_doit("kcidb", env=project_env())
    document = json.loads((ROOT / "build" / "linux-6.1" / "kcidb.json").read_text())
    kcidb_io.schema.V5_3.validate(document)
    builds = {b["config_name"]: b for b in document["builds"]}
    assert {"pentium", "pentium-epic100"} <= builds.keys()
    for variant in ("pentium", "pentium-epic100"):
        boots = json.loads((BOOT / variant / "results.json").read_text())["boots"]
        tests = [t for t in document["tests"] if t["build_id"] == builds[variant]["id"]]
        assert len(tests) == len(boots) and {t["status"] for t in tests} == {"PASS"}
    print(f"kcidb: {len(document['builds'])} builds, {len(document['tests'])} tests, "
          f"checkout {document['checkouts'][0]['id']}")
