import pytest

from common.errors import UserError
from kernels import matrix

LINES = ["linux-2.4.22", "linux-6.1", "linux-6.1-x86_64", "mosix-1.7.0", "openmosix-2"]


def test_five_lines_and_default_is_buildable_reference():
    assert matrix.line_names() == LINES
    assert matrix.default_line_name() == "linux-6.1"


def test_variants_are_cpu_times_nic_profile():
    line = matrix.load_line("linux-6.1")
    names = {v.name for v in line.variants()}
    assert len(names) == 12
    assert {"pentium", "pentium_smp", "athlon", "p4", "pentium_smp-epic100", "p4-3c590"} <= names
    assert line.variant("pentium_smp").smp and not line.variant("p4").smp


def test_unknown_line_lists_valid_names():
    with pytest.raises(UserError, match="unknown line 'linux-9'.*linux-2.4.22, linux-6.1, linux-6.1-x86_64, mosix-1.7.0, openmosix-2"):
        matrix.load_line("linux-9")


def test_unknown_variant_lists_valid_names():
    with pytest.raises(UserError, match="unknown variant 'k6'.*pentium_smp-epic100"):
        matrix.load_line("linux-6.1").variant("k6")


@pytest.mark.parametrize("name", LINES)
def test_every_line_loads_with_its_sources(name):
    line = matrix.load_line(name)
    assert line.kernel_source.file.startswith(("linux-", "linux-source"))
    assert line.hash_file.is_file()


def test_openmosix_line_has_the_upstream_patch_and_mosix_invariants():
    line = matrix.load_line("openmosix-2")
    assert [s.file for s in line.patch_sources] == ["openMosix-2.4.22-2.bz2"]
    assert line.invariants.name == "mosix.config"
    # kernel.org's signed sums listing vouches for the tarball; the revoked
    # 2.4-era .tar.sign key is not used.
    listing = line.kernel_source.listing
    assert listing.keys == ("B8868C80BA62A1FFFAF5FDA9632D3A06589DA6B1",)
    assert listing.urls[0].endswith("/v2.4/sha256sums.asc")
    assert line.kernel_source.signature is None


def test_mosix_line_is_marked_unsupported_with_a_reason():
    assert "2.4.18" in matrix.load_line("mosix-1.7.0").unsupported


def test_bad_line_file_names_the_file(isolated):
    bad = isolated / "configs" / "lines" / "broken.toml"
    bad.write_text('description = "x"\nconfig_system = "kconfig"\n')
    with pytest.raises(UserError, match=rf"{bad}: missing required key"):
        matrix.load_line("broken")
    bad.write_text("this is = = not toml")
    with pytest.raises(UserError, match=rf"{bad}: not valid TOML"):
        matrix.load_line("broken")
