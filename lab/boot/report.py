"""Reports of a boot matrix: the terminal table, JUnit XML for CI, a
Markdown page and an HTML page (jinja2, lab/boot/templates/) linking every
console log.  Files are written atomically.

A boot record is input (results.json can be edited or come from elsewhere),
so the pages treat it as such: a log is linked only when it lies inside the
report's folder, and every text taken from a record or a console line is
escaped so no viewer renders HTML from it."""
import html as htmllib
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import jinja2

from common.paths import atomic_write_text
from lab.boot.qemu import BootResult
from lab.boot.watcher import INFRA_ERROR

SUITE_NAME = "ltsp-mosix boot matrix"


NOT_LINKED = "log outside the report folder, not linked"
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _log_link(result: BootResult, report_dir: Path) -> str | None:
    """The log's link relative to report_dir, or None when the record's log
    path is a URL (javascript:, data:, http:) or does not resolve inside the
    report's folder (a `..` escape, an absolute path elsewhere, a link out):
    the folder is published or archived as a whole and must link nothing
    beyond it.  A relative log path is taken from the report's folder.  The
    link is percent-quoted, so a colon in a file name never reads as a
    scheme and a space or parenthesis never ends a Markdown link."""
    if _URL_SCHEME.match(str(result.log_path)):
        return None
    folder = Path(report_dir).resolve()
    target = (folder / result.log_path).resolve()
    if target == folder or not target.is_relative_to(folder):
        return None
    return urllib.parse.quote(target.relative_to(folder).as_posix())


def _row_key(result: BootResult) -> tuple[str, str, str, str]:
    return (result.line, result.variant, result.nic, result.route)


def _cell(result: BootResult | None) -> str:
    if result is None:
        return "-"
    seconds = f" {result.seconds:.1f}s" if result.seconds is not None else ""
    if result.passed:
        return f"pass{seconds}"
    return f"{result.verdict} {result.kind}" if result.kind else result.verdict


def _matrix(results: list[BootResult]) -> tuple[list[str], list[list[str]]]:
    """Rows: line x variant x NIC x route (direct, pxe/ipxe, pxe/rom);
    columns: memory sizes."""
    mems = sorted({r.mem_mb for r in results})
    cells: dict[tuple, dict[int, BootResult]] = {}
    for result in results:
        cells.setdefault(_row_key(result), {})[result.mem_mb] = result
    header = ["line", "variant", "nic", "route"] + [f"{mem} MB" for mem in mems]
    rows = [list(key) + [_cell(by_mem.get(mem)) for mem in mems]
            for key, by_mem in cells.items()]
    return header, rows


def summary(results: list[BootResult]) -> str:
    counts = Counter(r.verdict for r in results)
    infra = f", {counts[INFRA_ERROR]} infra-error" if counts[INFRA_ERROR] else ""
    return (f"{len(results)} boots: {counts['pass']} pass, {counts['fail']} fail, "
            f"{counts['hang']} hang{infra}")


def format_table(results: list[BootResult]) -> str:
    """The matrix as aligned text, for the end of a run."""
    header, rows = _matrix(results)
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip()
             for row in [header] + rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines + ["", summary(results)]) + "\n"


def _failure_message(result: BootResult) -> str:
    return f"{result.kind}: {result.console_line or ''}".strip()


def junit_xml(results: list[BootResult]) -> str:
    """One <testsuite> per line (its name whole: a dot in "linux-6.1" must
    not become a package separator), one testcase per boot: classname = the
    variant, name = NIC, memory and path.  A kernel/test failure (fail or
    hang) is a <failure>, an infrastructure failure (lab.boot.watcher.INFRA_KINDS)
    an <error>; message = kind + console line; system-out = the log path."""
    root = ET.Element("testsuites", name=SUITE_NAME)
    for line in sorted({r.line for r in results}):
        mine = [r for r in results if r.line == line]
        errors = [r for r in mine if r.infra_failure]
        suite = ET.SubElement(root, "testsuite", name=line, tests=str(len(mine)),
                              failures=str(sum(not r.passed for r in mine) - len(errors)),
                              errors=str(len(errors)),
                              time=f"{sum(r.seconds or 0 for r in mine):.3f}")
        for result in mine:
            case = ET.SubElement(suite, "testcase", classname=result.variant,
                                 name=result.name.removeprefix(f"{line}-{result.variant}-"),
                                 time=f"{result.seconds or 0:.3f}")
            if not result.passed:
                tag = "error" if result.infra_failure else "failure"
                element = ET.SubElement(case, tag, message=_failure_message(result),
                                        type=result.kind or result.verdict)
                tries = [f"try {n}: {t['verdict']} {t['kind']}: {t['console_line'] or ''} (log {t['log_path']})"
                         for n, t in enumerate(result.tries, start=1)]
                element.text = "\n".join([_failure_message(result), *tries, *result.notes])
            ET.SubElement(case, "system-out").text = str(result.log_path)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _md_escape(text: str) -> str:
    """A table cell from a record or a console line: HTML-escaped (Markdown
    passes raw HTML through, so a console's <script> or <img onerror=...>
    would run in a viewer), brackets escaped (no [text](javascript:...)
    link), and \\ and | escaped so the table holds."""
    text = htmllib.escape(text, quote=True).replace("\\", "\\\\")
    return re.sub(r"([|\[\]])", r"\\\1", text).replace("\r", " ").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(row) + " |" for row in rows])


def markdown(results: list[BootResult], report_dir: Path, title: str = SUITE_NAME) -> str:
    """The report page; log links are relative to report_dir so the folder
    can be published or archived as a whole."""
    header, rows = _matrix(results)
    out = [f"# {title}", "", summary(results), "", "## Matrix", ""]
    out += _md_table(header, [[_md_escape(c) for c in row] for row in rows])
    out += ["", "## Boots", ""]
    details = []
    for r in results:
        link = _log_link(r, report_dir)
        details.append([
            _md_escape(r.name), _md_escape(r.route), _md_escape(r.verdict),
            f"{r.seconds:.1f}" if r.seconds is not None else "-",
            _md_escape(r.kind or ""), _md_escape(r.console_line or "") if not r.passed else "",
            _md_escape(" ".join(r.interfaces)),
            f"{r.mem_total_kb} kB" if r.mem_total_kb else "",
            _md_escape("; ".join(r.notes)),
            f"[log]({link})" if link else NOT_LINKED,
        ])
    out += _md_table(["boot", "route", "verdict", "seconds", "kind", "line", "interfaces",
                      "MemTotal", "notes", "console"], details)
    return "\n".join(out) + "\n"


_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("lab.boot", "templates"),
                                autoescape=jinja2.select_autoescape(["html", "j2"]),
                                undefined=jinja2.StrictUndefined)


def html(results: list[BootResult], report_dir: Path, kernels: list[dict] = (),
         title: str = SUITE_NAME) -> str:
    """The report page people look at: the matrix coloured by verdict
    (variant x NIC x route by memory size), one row per boot with its
    seconds, first failure line and console log, and each variant's kernel,
    config and initrd sha256.  Links are relative to report_dir."""
    mems = sorted({r.mem_mb for r in results})
    cells: dict[tuple, dict[int, BootResult]] = {}
    for result in results:
        cells.setdefault(_row_key(result), {})[result.mem_mb] = result

    def cell(result: BootResult | None) -> dict | None:
        return None if result is None else {"verdict": result.verdict, "text": _cell(result),
                                            "log": _log_link(result, report_dir)}

    rows = [{"line": key[0], "variant": key[1], "nic": key[2], "route": key[3],
             "cells": [cell(by_mem.get(mem)) for mem in mems]} for key, by_mem in cells.items()]
    boots = [{"name": r.name, "route": r.route, "verdict": r.verdict, "kind": r.kind,
              "seconds": f"{r.seconds:.1f}" if r.seconds is not None else "-",
              "failure": "" if r.passed else (r.console_line or ""),
              "interfaces": " ".join(r.interfaces), "notes": "; ".join(r.notes),
              "log": _log_link(r, report_dir)} for r in results]
    return _TEMPLATES.get_template("report.html.j2").render(
        title=title, summary=summary(results), mems=mems, rows=rows, boots=boots, kernels=list(kernels),
        not_linked=NOT_LINKED)


def write_reports(results: list[BootResult], out_dir: Path, kernels: list[dict] = ()) -> dict[str, Path]:
    """Write matrix.txt, junit.xml, report.md and report.html into out_dir;
    kernels: per variant line, variant, kernel_sha256, config_sha256,
    initrd_sha256 (the HTML report lists them)."""
    out_dir = Path(out_dir)
    written = {"table": out_dir / "matrix.txt", "junit": out_dir / "junit.xml",
               "markdown": out_dir / "report.md", "html": out_dir / "report.html"}
    atomic_write_text(written["table"], format_table(results))
    atomic_write_text(written["junit"], junit_xml(results))
    atomic_write_text(written["markdown"], markdown(results, out_dir))
    atomic_write_text(written["html"], html(results, out_dir, kernels))
    return written
