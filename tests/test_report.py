"""Matrix table, JUnit XML and Markdown report of boot results."""
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.boot.qemu import BootResult, progress_line
from lab.boot.report import format_table, junit_xml, markdown, write_reports


def _result(variant, nic, mem, verdict, seconds, kind=None, line=None, log_dir=Path("/r/logs"),
            firmware="ipxe", **extra):
    name = f"linux-6.1-{variant}-{nic}-{mem}M-pxe" + ("-rom" if firmware == "rom" else "")
    return BootResult(name=name, line="linux-6.1", variant=variant, cpu=variant.split("-")[0],
                      nic=nic, boot_nic=nic, mem_mb=mem, path="pxe", firmware=firmware, verdict=verdict,
                      seconds=seconds, kind=kind, console_line=line,
                      log_path=log_dir / f"{name}.log", **extra)


@pytest.fixture
def results(tmp_path):
    logs = tmp_path / "logs"
    return [
        _result("pentium", "e1000", 512, "pass", 7.2, log_dir=logs, interfaces=["lo", "eth0"],
                mem_total_kb=515396, firmware="rom"),
        _result("pentium", "e1000", 3584, "fail", 9.1, "initrd-beyond-memory",
                "initrd extends beyond end of memory (0x7ff5c000 > 0x38000000)", log_dir=logs),
        _result("athlon", "rtl8139", 512, "hang", 60.0, "timeout",
                "e1000: Copyright (c) 1999-2006 Intel Corporation.", log_dir=logs),
        _result("pentium-epic100", "epic100", 512, "pass", 6.2, log_dir=logs,
                interfaces=["lo"], notes=["driver present, no card to bind | epic100"]),
    ]


def test_table_is_variant_by_nic_by_memory(results):
    table = format_table(results)
    lines = table.splitlines()
    assert lines[0].split() == ["line", "variant", "nic", "route", "512", "MB", "3584", "MB"]
    # one row per route: the ROM boot and the iPXE-kernel boots apart
    rom = next(l for l in lines if " pentium " in l and "pxe/rom" in l)
    ipxe = next(l for l in lines if " pentium " in l and "pxe/ipxe" in l)
    assert "pass 7.2s" in rom and "fail initrd-beyond-memory" in ipxe
    athlon = next(l for l in lines if " athlon " in l)
    assert "hang timeout" in athlon and athlon.rstrip().endswith("-")   # no 3584 MB cell
    assert lines[-1] == "4 boots: 2 pass, 1 fail, 1 hang"


def test_junit_parses_and_has_one_testcase_per_boot(results):
    root = ET.fromstring(junit_xml(results))
    suite = root.find("testsuite")
    assert suite.get("name") == "linux-6.1", "the line name stays whole"
    # a hang is the kernel's failure to conclude: <failure>, as the task says
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "2", "0")
    cases = suite.findall("testcase")
    assert len(cases) == 4
    failure = cases[1].find("failure")
    assert failure.get("type") == "initrd-beyond-memory"
    assert failure.get("message") == ("initrd-beyond-memory: initrd extends beyond end of "
                                      "memory (0x7ff5c000 > 0x38000000)")
    assert cases[2].find("failure").get("type") == "timeout"
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    assert cases[0].find("system-out").text == str(results[0].log_path)
    assert cases[0].get("classname") == "pentium"
    assert cases[0].get("name") == "e1000-512M-pxe-rom"


def test_junit_files_an_infrastructure_failure_as_error(results):
    results[2].verdict, results[2].kind = "fail", "qemu-no-output"
    suite = ET.fromstring(junit_xml(results)).find("testsuite")
    assert (suite.get("failures"), suite.get("errors")) == ("1", "1")
    assert suite.findall("testcase")[2].find("error").get("type") == "qemu-no-output"


def test_markdown_links_every_log_relatively(results, tmp_path):
    text = markdown(results, tmp_path)
    for result in results:
        assert f"[log](logs/{result.log_path.name})" in text
    assert "| pentium | e1000 | pxe/rom | pass 7.2s | - |" in text
    assert "| pentium | e1000 | pxe/ipxe | - | fail initrd-beyond-memory |" in text
    # A pipe in a note must not break the table.
    assert "driver present, no card to bind \\| epic100" in text


def test_write_reports_writes_four_files_atomically(results, tmp_path):
    written = write_reports(results, tmp_path)      # the logs in logs/ below, as boot-test lays them out
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["junit.xml", "matrix.txt", "report.html",
                                                                        "report.md"]
    ET.parse(written["junit"])
    assert "[log](logs/" in written["markdown"].read_text()
    assert written["html"].read_text().startswith("<!DOCTYPE html>")
    assert 'href="logs/' in written["html"].read_text()


def test_progress_line(results):
    assert progress_line(2, 4, results[1]) == (
        "[2/4] linux-6.1-pentium-e1000-3584M-pxe (pxe/ipxe): fail 9.1s initrd-beyond-memory: "
        "initrd extends beyond end of memory (0x7ff5c000 > 0x38000000)")
    assert progress_line(1, 4, results[0]) == "[1/4] linux-6.1-pentium-e1000-512M-pxe-rom (pxe/rom): pass 7.2s"


def test_what_counts_as_infrastructure_shaped(results):
    passed, initrd_dropped, hang_in_kernel, _ = results
    assert not passed.infrastructure_shaped
    assert not initrd_dropped.infrastructure_shaped, "a kernel failure is never retried"
    hang_in_kernel.kernel_started = True
    assert not hang_in_kernel.infrastructure_shaped, "a kernel that hangs is the kernel's failure"
    hang_in_kernel.kernel_started = False
    assert hang_in_kernel.infrastructure_shaped, "nothing from the kernel yet: firmware, TFTP, DHCP"
    initrd_dropped.kind = "qemu-no-output"
    assert initrd_dropped.infrastructure_shaped


def test_html_report_has_the_coloured_matrix_every_boot_and_the_kernels(results, tmp_path):
    """report.html (jinja2, autoescaped): one matrix cell per boot coloured
    by verdict, one row per boot with its first failure line and a relative
    log link, one row per kernel with its sha256s."""
    from html.parser import HTMLParser

    from lab.boot.report import html

    kernels = [{"line": "linux-6.1", "variant": "pentium", "kernel_sha256": "ab" * 32,
                "config_sha256": "cd" * 32, "initrd_sha256": "ef" * 32}]
    page = html(results, tmp_path, kernels)

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.boots, self.links, self.cells, self.kernels = [], [], [], 0

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            classes = (attrs.get("class") or "").split()
            if tag == "tr" and "boot" in classes:
                self.boots.append(classes[1])
            if tag == "tr" and "kernel" in classes:
                self.kernels += 1
            if tag == "a" and "log" in classes:
                self.links.append(attrs["href"])
            if tag == "td" and classes and classes[0] in ("pass", "fail", "hang", "infra-error"):
                self.cells.append(classes[0])

    rows = Rows()
    rows.feed(page)
    assert rows.boots == ["pass", "fail", "hang", "pass"]
    assert sorted(rows.cells) == sorted(rows.boots)
    assert rows.links == [f"logs/{r.log_path.name}" for r in results]
    assert rows.kernels == 1 and "ab" * 32 in page
    assert "initrd extends beyond end of memory (0x7ff5c000 &gt; 0x38000000)" in page   # escaped


# -- a record is input: links stay inside the report's folder, text is escaped --

HOSTILE_LINES = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "<svg onload=alert(3)>",
                 "[click](javascript:alert(5))", 'quote " and \' & amp']


def _links(page):
    """Every href in an HTML page, and the text of its not-linked notes."""
    from html.parser import HTMLParser

    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.hrefs, self.notes, self._in_note = [], [], False

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if "href" in attrs:
                self.hrefs.append(attrs["href"])
            self._in_note = "not-linked" in (attrs.get("class") or "")

        def handle_data(self, data):
            if self._in_note:
                self.notes.append(data)
                self._in_note = False

    links = Links()
    links.feed(page)
    return links.hrefs, links.notes


@pytest.fixture
def hostile(tmp_path):
    """A report folder with one boot whose log lies inside it and hostile
    log paths and console lines in the others."""
    report = tmp_path / "report"
    inside = _result("pentium", "e1000", 512, "pass", 7.2, log_dir=report / "logs")
    escaping = [Path("../../../../etc/passwd"), tmp_path / "elsewhere" / "x.log", Path("javascript:alert(4)"),
                report / "logs" / "javascript:alert(4)", Path("data:text/html,<script>alert(6)</script>"),
                Path("http://example.org/x.log")]
    others = [_result(f"v{n}", "e1000", 512, "fail", 1.0, "panic", HOSTILE_LINES[n % len(HOSTILE_LINES)],
                      notes=[HOSTILE_LINES[(n + 1) % len(HOSTILE_LINES)]], interfaces=["<b>eth0</b>"])
              for n in range(len(escaping))]
    for result, log in zip(others, escaping):
        result.log_path = log
    return report, [inside, *others]


def test_html_links_only_logs_inside_the_report_folder(hostile):
    from lab.boot.report import NOT_LINKED, html

    report, results = hostile
    hrefs, notes = _links(html(results, report))
    inside = f"logs/{results[0].log_path.name}"
    assert hrefs.count(inside) == 2, "the log inside the folder keeps its matrix and boot links"
    # the file named javascript:alert(4) inside logs/ is linked as a path, its colon quoted
    assert set(hrefs) == {inside, "logs/javascript%3Aalert%284%29"}, hrefs
    for href in hrefs:
        assert ".." not in href and not href.startswith("/") and ":" not in href
    assert notes == [NOT_LINKED] * 5


def test_html_escapes_record_text_and_console_lines(hostile):
    from lab.boot.report import html

    report, results = hostile
    page = html(results, report)
    for raw in ("<script>", "<img", "<svg", "<b>eth0"):
        assert raw not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "quote &#34; and &#39; &amp; amp" in page


def test_markdown_escapes_html_and_links_only_inside_the_folder(hostile):
    from lab.boot.report import NOT_LINKED

    report, results = hostile
    text = markdown(results, report)
    for raw in ("<script>", "<img", "<svg", "<b>"):
        assert raw not in text, raw
    links = re.findall(r"(?<!\\)\]\(([^)]*)", text)        # targets of unescaped [..](..)
    assert sorted(links) == sorted([f"logs/{results[0].log_path.name}", "logs/javascript%3Aalert%284%29"])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;svg onload=alert(3)&gt;" in text
    assert "\\[click\\](javascript:alert(5))" in text, "no Markdown link from a console line"
    assert "quote &quot; and &#x27; &amp; amp" in text
    assert f"[log](logs/{results[0].log_path.name})" in text
    assert "[log](logs/javascript%3Aalert%284%29)" in text
    assert text.count(NOT_LINKED) == 5


def test_a_log_reached_through_a_link_out_of_the_folder_is_not_linked(tmp_path):
    """A logs/ that is a symlink to another folder resolves outside the report."""
    from lab.boot.report import NOT_LINKED

    report, elsewhere = tmp_path / "report", tmp_path / "elsewhere"
    report.mkdir()
    elsewhere.mkdir()
    (report / "logs").symlink_to(elsewhere)
    text = markdown([_result("pentium", "e1000", 512, "pass", 1.0, log_dir=report / "logs")], report)
    assert "[log](" not in text and NOT_LINKED in text


def test_doit_boot_report_on_a_hostile_results_file_escapes_and_confines(isolated):
    """`doit -s boot-test:report` (the report alone) over a results.json
    whose records carry hostile log paths and console lines: the line's
    report.html links no log outside its folder, report.md holds no raw HTML."""
    from common.records import jsonable
    from kernels import matrix
    from lab.boot import variant as variant_boots
    from tests.conftest import run_doit
    line = matrix.load_line("linux-6.1")
    variant = line.variant("pentium")
    boot = variant_boots.boot_dir(line, variant)
    results = [_result("pentium", "e1000", 512, "fail", 1.0, "panic", HOSTILE_LINES[n % len(HOSTILE_LINES)],
                       notes=[HOSTILE_LINES[(n + 1) % len(HOSTILE_LINES)]]) for n in range(3)]
    for result, log in zip(results, ["../../../../../etc/passwd", "javascript:alert(4)", str(boot / "logs/ok.log")]):
        result.log_path = Path(log)
    (boot / "logs").mkdir(parents=True)
    (boot / "logs/ok.log").write_text("LTSP-MOSIX-BOOT-OK\n")
    record = {"line": line.name, "variant": variant.name, "kernel_sha256": "0" * 64, "initrd_sha256": "0" * 64,
              "boots": jsonable(results)}
    variant_boots.boot_results_path(line, variant).write_text(json.dumps(record))
    run_doit("line=linux-6.1", "-s", "boot-test:report", env=dict(os.environ))
    folder = boot.parent
    page = (folder / "report.html").read_text()
    hrefs, _ = _links(page)
    assert hrefs and all(h.startswith("pentium/logs/") for h in hrefs), hrefs
    text = (folder / "report.md").read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text and "<script>" not in page
