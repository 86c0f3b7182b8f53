import pytest
import yaml

from phosjax._yaml import read_file, safe_load


def test_a_mapping_anchored_where_it_is_merged_reads_as_pyyaml_reads_it_when_aliased_again():
    text = "run: {<<: &fit {<<: {lr: 0.1}, lr: 0.2}, steps: 3}\nagain: *fit\n"
    assert (
        safe_load(text)
        == yaml.safe_load(text)
        == {
            "run": {"lr": 0.2, "steps": 3},
            "again": {"lr": 0.2},
        }
    )


def test_a_key_twice_in_a_mapping_only_merged_is_refused():
    with pytest.raises(yaml.YAMLError, match="found the key 'lr' twice"):
        safe_load("run: {<<: {lr: 0.1, lr: 0.2}}\n")


@pytest.mark.parametrize("text", ["1e3", "1.5e3", ".5e3", "-.5E3", "+.5e-3", "1_000e-3"])
def test_a_number_with_an_exponent_reads_as_pythons_float_reads_it(text):
    assert safe_load(f"lr: {text}\n") == {"lr": float(text)}


@pytest.mark.parametrize("text", [".inf", "-.inf", ".5", "1e3.5", ".e3", "_1e3", "1e3x"])
def test_other_scalars_read_as_pyyaml_reads_them(text):
    assert safe_load(f"lr: {text}\n") == yaml.safe_load(f"lr: {text}\n")


def test_a_path_in_the_home_directory_is_read(tmp_path, monkeypatch):
    """``~/cfg.yaml`` was said not to exist: ``~`` was read as a folder's name."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "cfg.yaml").write_text("lr: 1e-3\n")
    assert read_file("~/cfg.yaml") == {"lr": 1e-3}


def test_keys_of_a_list_are_refused_as_unhashable_not_as_the_same_key():
    """``{[1]: a, [2]: b}`` was said to name the key ``[]`` twice (its lists not yet filled)."""
    with pytest.raises(yaml.YAMLError, match="found unhashable key"):
        safe_load("{[1]: a, [2]: b}\n")
