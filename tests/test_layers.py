"""The layers, read from the source: every product module imports only its
own layer or the ones below it, and never a project package from inside a
function (the way imports used to dodge cycles).  README.md's "The house"
table says the same in prose."""
import ast
import re
from pathlib import Path

from tests.conftest import ROOT

# From the ground up; a package may import its own layer and those below.
LAYERS = ("common", "kernels", "initrd", "rootfs", "lab", "release")
RANK = {package: rank for rank, package in enumerate(LAYERS)}


def product_modules() -> list[Path]:
    return sorted(p for package in LAYERS for p in (ROOT / package).rglob("*.py"))


def project_imports(path: Path):
    """(imported package, line, inside a function?) for each import of a
    project package in the module."""
    tree = ast.parse(path.read_text(), str(path))
    nested = {id(node) for function in ast.walk(tree)
              if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
              for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module] if node.module and not node.level else []
        else:
            continue
        for name in names:
            package = name.split(".")[0]
            if package in RANK:
                yield package, node.lineno, id(node) in nested


def test_every_layer_package_exists():
    assert [p for p in LAYERS if not (ROOT / p / "__init__.py").is_file()] == []


def test_no_module_imports_a_layer_above_its_own_or_inside_a_function():
    problems = []
    for path in product_modules():
        own = path.relative_to(ROOT).parts[0]
        for package, line, inside_function in project_imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if RANK[package] > RANK[own]:
                problems.append(f"{where}: {own} (layer {RANK[own]}) imports {package} "
                                f"(layer {RANK[package]}), a layer above it")
            if inside_function:
                problems.append(f"{where}: imports {package} inside a function")
    assert problems == []


def test_no_package_outside_the_layers():
    """A new product package must be placed in LAYERS (and the README)."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages == set(LAYERS)


def test_the_checker_catches_an_upward_and_a_nested_import(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("from lab.boot import qemu\n\ndef f():\n    import release.gates\n")
    assert sorted(project_imports(module)) == [("lab", 1, False), ("release", 4, True)]


def test_the_build_system_is_asked_of_its_object_only():
    """Kbuild and CML1 each own what differs (kernels/buildsystem.py): no
    other module compares a line's config_system, and every value the
    line data accepts has its object."""
    from kernels import buildsystem, matrix
    assert set(buildsystem.SYSTEMS) == set(matrix.CONFIG_SYSTEMS)
    offenders = []
    for path in sorted(ROOT.glob("*/*.py")) + [ROOT / "dodo.py"]:
        if path.parts[-2] in ("tests", ".venv") or path.name == "buildsystem.py":
            continue
        for number, text in enumerate(path.read_text().splitlines(), 1):
            if "config_system" in text and ("==" in text or "!=" in text):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {text.strip()}")
    assert offenders == []


def test_the_house_table_lists_every_module():
    """docs/house.md names every product module once, and none that is gone."""
    listed = re.findall(r"^\| [^|]+ \| `([^`]+)` \|", (ROOT / "docs" / "house.md").read_text(), flags=re.M)
    modules = sorted(p.relative_to(ROOT).as_posix() for p in product_modules())
    assert sorted(listed) == modules, (sorted(set(modules) - set(listed)), sorted(set(listed) - set(modules)))
