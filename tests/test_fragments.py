import pytest

from common.errors import UserError
from kernels.fragments import merge, parse_fragment, read_config_values, render


def write(tmp_path, text, name="frag.config"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parses_set_unset_and_comments(tmp_path):
    path = write(tmp_path, "# a comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=8192\n"
                           'CONFIG_D="x y"\nCONFIG_E=0x37FFFFFF\nCONFIG_openMosix_NO_OOM=y\n')
    options = parse_fragment(path)
    assert {n: o.value for n, o in options.items()} == {
        "CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": "8192", "CONFIG_D": '"x y"',
        "CONFIG_E": "0x37FFFFFF", "CONFIG_openMosix_NO_OOM": "y"}
    assert options["CONFIG_C"].origin == f"{path}:5"


@pytest.mark.parametrize("bad", ["CONFIG_A = y", "A=y", "CONFIG_A=yes please", "#CONFIG_A is not set",
                                 "CONFIG_A", 'CONFIG_A="unterminated'])
def test_malformed_line_names_file_and_line(tmp_path, bad):
    path = write(tmp_path, f"CONFIG_OK=y\n{bad}\n")
    with pytest.raises(UserError, match=rf"{path}:2: (not a config line|malformed .not set. line)"):
        parse_fragment(path)


def test_duplicate_with_two_values_names_both_lines(tmp_path):
    path = write(tmp_path, "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_A is not set\n")
    with pytest.raises(UserError, match=rf"{path}:3: CONFIG_A set twice.*{path}:1"):
        parse_fragment(path)


def test_same_value_twice_is_accepted(tmp_path):
    assert parse_fragment(write(tmp_path, "CONFIG_A=y\nCONFIG_A=y\n"))["CONFIG_A"].value == "y"


def test_later_fragment_wins_and_keeps_its_origin(tmp_path):
    first = parse_fragment(write(tmp_path, "CONFIG_A=y\nCONFIG_B=y\n", "1.config"))
    second = parse_fragment(write(tmp_path, "# CONFIG_A is not set\n", "2.config"))
    merged = merge(first, second)
    assert merged["CONFIG_A"].value == "n" and merged["CONFIG_A"].origin.endswith("2.config:1")
    assert render(merged) == "CONFIG_B=y\n# CONFIG_A is not set\n"


def test_kernel_written_config_is_read_leniently(tmp_path):
    path = write(tmp_path, "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 6.1 Kernel Configuration\n"
                           "CONFIG_A=y\n# CONFIG_B is not set\n")
    assert read_config_values(path) == {"CONFIG_A": "y", "CONFIG_B": "n"}
