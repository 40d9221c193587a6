"""doit boot-test as users run it: two variants at once (`doit -n 2`), the
NIC-specific kernel recorded as "driver present, no card to bind", and the
line's report (matrix, JUnit XML, Markdown with the logs linked)."""
import json
import xml.etree.ElementTree as ElementTree

import pytest

from tests.conftest import project_env, run_doit, session_build_dir

pytestmark = pytest.mark.e2e


def boot_dir():
    return session_build_dir() / "linux-6.1" / "boot"


def test_two_variants_boot_in_parallel_and_report(kernels):
    kernels("linux-6.1", "pentium", "pentium-epic100")
    boots_dir = boot_dir()
    for variant in ("pentium", "pentium-epic100"):
        (boots_dir / variant / "results.json").unlink(missing_ok=True)
    result = run_doit("-n", "2", "boot-test:pentium", "boot-test:pentium-epic100", env=project_env())
    print(result.stdout[-3000:])
    plain = json.loads((boots_dir / "pentium" / "results.json").read_text())
    specific = json.loads((boots_dir / "pentium-epic100" / "results.json").read_text())
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
        assert (boots_dir / name).is_file()
    cases = ElementTree.parse(boots_dir / "junit.xml").getroot().iter("testcase")
    names = {f"{c.get('classname')}/{c.get('name')}" for c in cases}
    assert {"pentium/e1000-3584M-pxe", "pentium/e1000-512M-pxe-rom",
            "pentium-epic100/epic100-3584M-pxe", "pentium-epic100/epic100-512M-pxe-rom"} <= names
    suites = {s.get("name") for s in ElementTree.parse(boots_dir / "junit.xml").getroot().iter("testsuite")}
    assert suites == {"linux-6.1"}
    assert "logs/" in (boots_dir / "report.md").read_text()


def test_kcidb_of_the_booted_variants_validates(kernels):
    """doit kcidb after the boot test: KernelCI's schema package accepts it,
    every boot of the two booted variants is a PASS test of its build, and
    the architecture and environment are the line's (i386, QEMU i386)."""
    import kcidb_io
    kernels("linux-6.1", "pentium", "pentium-epic100")
    boots_dir = boot_dir()
    run_doit("-n", "2", "boot-test:pentium", "boot-test:pentium-epic100", env=project_env())
    run_doit("kcidb", env=project_env())
    document = json.loads((session_build_dir() / "linux-6.1" / "kcidb.json").read_text())
    kcidb_io.schema.V5_3.validate(document)
    builds = {b["config_name"]: b for b in document["builds"]}
    assert {"pentium", "pentium-epic100"} <= builds.keys()
    for variant in ("pentium", "pentium-epic100"):
        boots = json.loads((boots_dir / variant / "results.json").read_text())["boots"]
        tests = [t for t in document["tests"] if t["build_id"] == builds[variant]["id"]]
        assert len(tests) == len(boots) and {t["status"] for t in tests} == {"PASS"}
    assert {b["architecture"] for b in document["builds"]} == {"i386"}
    assert all(t["environment"]["comment"].startswith("QEMU i386 TCG") for t in document["tests"])
    print(f"kcidb: {len(document['builds'])} builds, {len(document['tests'])} tests, "
          f"checkout {document['checkouts'][0]['id']}")


def _chromium(*args: str) -> str:
    """Headless Chromium (Debian `chromium`): as root it needs --no-sandbox."""
    import shutil
    import subprocess
    binary = shutil.which("chromium")
    assert binary, "chromium is missing: ./setup.sh installs the Debian package `chromium`"
    result = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_html_report_renders_in_a_real_browser(kernels):
    """report.html as Chromium renders it: one row per boot, each log link
    pointing at a console log that exists; a screenshot is kept beside it."""
    from html.parser import HTMLParser
    from urllib.parse import unquote, urlparse

    from kernels import matrix
    from lab.tasks import write_line_report
    kernels("linux-6.1", "pentium")
    boots_dir = boot_dir()
    run_doit("boot-test:pentium", env=project_env())         # a no-op after the matrix test
    results, written = write_line_report(matrix.load_line("linux-6.1"))   # what each boot-test:<v> writes
    page = written["html"]
    assert page == boots_dir / "report.html" and results
    dom = _chromium("--dump-dom", page.as_uri())

    class Boots(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.links = 0, []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "tr" and "boot" in (attrs.get("class") or "").split():
                self.rows += 1
            if tag == "a" and attrs.get("class") == "log":
                self.links.append(attrs["href"])

    boots = Boots()
    boots.feed(dom)
    total = sum(len(json.loads(p.read_text())["boots"]) for p in boots_dir.glob("*/results.json"))
    assert boots.rows == total and len(boots.links) == total
    for href in boots.links:
        target = (page.parent / unquote(urlparse(href).path)).resolve()
        assert target.is_file() and "LTSP-MOSIX" in target.read_text(errors="replace"), href
    shot = boots_dir / "report.png"
    shot.unlink(missing_ok=True)
    _chromium(f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"report: {page} ({boots.rows} boots), screenshot {shot}")
