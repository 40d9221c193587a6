"""Tree preparation, config composition, audit and cluster check on the
fake 2.4-style tree (fast; the real trees have their own tests)."""
import subprocess

import pytest

from common.errors import UserError
from kernels import buildsystem, invariants, kconfig, tree
from kernels.fragments import read_config_values
from tests.conftest import FIXTURES

MOSIX_QUESTIONS = """\
bool 'openMosix process migration support' CONFIG_MOSIX
bool 'Support clusters with a complex network topology' CONFIG_MOSIX_TOPOLOGY
bool 'Stricter security on openMosix ports' CONFIG_MOSIX_SECUREPORTS
int 'Level of process-identity disclosure (0-3)' CONFIG_MOSIX_DISCLOSURE
bool 'openMosix File-System' CONFIG_MOSIX_FS
bool 'Direct File-System Access' CONFIG_MOSIX_DFSA
bool 'Pipe exceptions' CONFIG_MOSIX_PIPE_EXCEPTIONS
bool 'Disable OOM killer' CONFIG_openMosix_NO_OOM
bool 'Load limit' CONFIG_MOSIX_LOADLIMIT
"""


def make_patch(tmp_path, name, relpath, edit):
    """A real unified diff of one file of the fake tree, made with diff -u."""
    old = (FIXTURES / "fake24" / relpath).read_text()
    a, b = tmp_path / "a" / relpath, tmp_path / "b" / relpath
    for root, text in ((a, old), (b, edit(old))):
        root.parent.mkdir(parents=True, exist_ok=True)
        root.write_text(text)
    diff = subprocess.run(["diff", "-u", f"a/{relpath}", f"b/{relpath}"], cwd=tmp_path,
                          capture_output=True, text=True).stdout
    return diff


def add_to_series(isolated, name, text):
    folder = isolated / "patches" / "fake24"
    (folder / name).write_text(text)
    with (folder / "series").open("a") as series:
        series.write(name + "\n")


def mosix_patch(isolated):
    """Stands in for the openMosix patch: adds the Mosix questions."""
    add_to_series(isolated, "0001-mosix-questions.patch", make_patch(
        isolated, "p", "arch/i386/config.in", lambda text: text + MOSIX_QUESTIONS))


def test_prepare_copies_override_and_marks_it_unverified(fake24):
    line = fake24()
    provenance = tree.prepare(line, fetched={})
    assert not provenance.verified
    assert "unverified source" in provenance.sources[0]["trust"]
    assert (tree.src_dir(line) / "arch/i386/config.in").is_file()
    assert tree.read_provenance(line) == provenance


def test_variant_config_composes_cpu_nic_and_base(fake24):
    line = fake24()
    tree.prepare(line, fetched={})
    final = read_config_values(kconfig.configure(line, line.variant("pentium_smp-epic100")))
    assert final["CONFIG_M586TSC"] == "y" and final["CONFIG_SMP"] == "y"
    assert final["CONFIG_HIGHMEM4G"] == "y"
    assert final["CONFIG_EPIC100"] == "y" and final["CONFIG_VORTEX"] == "n"


def test_mosix_option_on_vanilla_tree_fails_the_audit(fake24):
    line = fake24(invariants="mosix.config")
    tree.prepare(line, fetched={})
    with pytest.raises(UserError) as error:
        kconfig.configure(line, line.variant("pentium"))
    message = str(error.value)
    assert "config audit failed for variant pentium" in message
    assert "CONFIG_MOSIX: requested y, final absent (asked at" in message
    assert "invariants/mosix.config:4)" in message


def test_question_no_fragment_answers_names_the_symbol(fake24, isolated):
    line = fake24()
    add_to_series(isolated, "0001-new-question.patch", make_patch(
        isolated, "p", "arch/i386/config.in", lambda text: text + "bool 'Brand new' CONFIG_BRAND_NEW\n"))
    tree.prepare(line, fetched={})
    with pytest.raises(UserError, match="asked about CONFIG_BRAND_NEW, which no fragment answers"):
        kconfig.configure(line, line.variant("athlon"))


def configure_all(line):
    return {v.name: kconfig.configure(line, v) for v in line.variants()}


def test_mosix_tree_configures_every_variant_and_check_passes(fake24, isolated):
    line = fake24(invariants="mosix.config")
    mosix_patch(isolated)
    tree.prepare(line, fetched={})
    configs = configure_all(line)
    assert len(configs) == 12
    assert "12 variants share the invariant block (9 options" in invariants.check_line(
        line.name, line.invariants, configs)


def test_one_variant_without_dfsa_fails_check_with_a_table(fake24, isolated):
    line = fake24(invariants="mosix.config")
    mosix_patch(isolated)
    tree.prepare(line, fetched={})
    configs = configure_all(line)
    hand_edited = configs["athlon-3c590"]
    hand_edited.write_text(hand_edited.read_text().replace("CONFIG_MOSIX_DFSA=y", "# CONFIG_MOSIX_DFSA is not set"))
    with pytest.raises(UserError) as error:
        invariants.check_line(line.name, line.invariants, configs)
    table = str(error.value).splitlines()
    row = next(i for i, text in enumerate(table) if text.startswith("CONFIG_MOSIX_DFSA"))
    assert "y (block)" in table[row] and "pentium_smp-epic100" in table[row]
    assert table[row + 1].split()[:3] == ["not", "set", "athlon-3c590"]
    assert not any(text.startswith("CONFIG_MOSIX_FS") for text in table)


def test_failing_hunk_names_patch_file_and_hunk(fake24, isolated):
    line = fake24()
    broken = make_patch(isolated, "p", "Makefile", lambda text: text.replace("ARCH ?= i386", "ARCH ?= x86"))
    broken = broken.replace(" oldconfig:", " oldconfig-renamed:")   # context that is not in the tree
    add_to_series(isolated, "0001-broken.patch", broken)
    with pytest.raises(UserError) as error:
        tree.prepare(line, fetched={})
    assert "0001-broken.patch does not apply" in str(error.value)
    assert "Makefile: hunk #1 FAILED" in str(error.value)
    assert not tree.src_dir(line).exists(), "no half-prepared tree is left in place"
    assert not (tree.src_dir(line).parent / "src.tmp").exists(), "nor its staging copy"


def test_already_applied_series_is_detected_not_reapplied(fake24, isolated, monkeypatch):
    line = fake24()
    mosix_patch(isolated)
    tree.prepare(line, fetched={})
    patched = isolated / "patched-override"
    subprocess.run(["cp", "-a", str(tree.src_dir(line)), str(patched)], check=True)
    monkeypatch.setenv("LTSP_MOSIX_OVERRIDE_FAKE24", str(patched))
    provenance = tree.prepare(line, fetched={})
    log = (isolated / "build" / "fake24" / "prepare.log").read_text()
    assert "0001-mosix-questions.patch: already applied, skipped" in log
    assert (tree.src_dir(line) / "arch/i386/config.in").read_text().count("CONFIG_MOSIX_DFSA") == 1
    assert provenance.patches[0]["name"] == "0001-mosix-questions.patch"


def test_series_listing_a_missing_patch_or_missing_an_existing_one(fake24, isolated):
    line = fake24()
    folder = isolated / "patches" / "fake24"
    (folder / "series").write_text("0001-ghost.patch\n")
    with pytest.raises(UserError, match="lists 0001-ghost.patch, which does not exist"):
        tree.series(line)
    (folder / "series").write_text("")
    (folder / "0002-stray.patch").write_text("")
    with pytest.raises(UserError, match="patches not in the series file: 0002-stray.patch"):
        tree.series(line)


def test_override_that_is_not_a_tree_is_refused(fake24, monkeypatch, tmp_path):
    line = fake24()
    monkeypatch.setenv("LTSP_MOSIX_OVERRIDE_FAKE24", str(tmp_path))
    with pytest.raises(UserError, match="LTSP_MOSIX_OVERRIDE_FAKE24=.*not a kernel tree"):
        tree.prepare(line, fetched={})


def test_variant_trees_are_hard_link_copies(fake24):
    line = fake24()
    tree.prepare(line, fetched={})
    variant_tree = buildsystem.Cml1().variant_tree(line, line.variant("p4"))
    original = tree.src_dir(line) / "Makefile"
    assert (variant_tree / "Makefile").stat().st_ino == original.stat().st_ino


@pytest.mark.parametrize("name", ["with space", "with:colon", "with#hash", "with$dollar"])
def test_a_build_folder_make_cannot_take_is_refused_before_any_work(tmp_path, name):
    """doit prepare as typed: exit 3 naming the folder and the character,
    before the source is fetched or unpacked (nothing in the folder)."""
    from tests.conftest import project_env, run_doit
    build = tmp_path / name
    result = run_doit("line=linux-6.1", "prepare", check=False,
                      env=project_env(LTSP_MOSIX_BUILD_DIR=str(build), LTSP_MOSIX_DL_DIR=str(tmp_path / "dl")))
    said = result.stdout + result.stderr
    assert result.returncode == 3, said[-1500:]
    assert f"build folder {build}: its path holds" in said and "Traceback" not in said
    assert not build.exists() or not any(build.rglob("src*")), sorted(build.rglob("*"))[:10]
    assert not (tmp_path / "dl").exists() or not any((tmp_path / "dl").iterdir())
