"""Run configuration: precedence of defaults, YAML and CLI values; errors name file and key."""
import pytest

from lsnn.errors import ConfigError
from lsnn.searcher.config import build_config, load_yaml_config


def test_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("dataset: cifar10\nC: 24\nsearch_epochs: 3\n")
    vals = load_yaml_config(f)
    cfg = build_config(None, vals, {"search_epochs": 1, "seed": None})
    assert cfg.dataset == "cifar10"
    assert cfg.cells == 8 and cfg.reductions == [2, 5]   # dataset default
    assert cfg.C == 24                                    # file beats default
    assert cfg.search_epochs == 1                         # CLI beats file
    assert cfg.seed == 0                                  # None on the CLI means "not given"
    assert cfg.out_dir == "runs/cifar10"


def test_unknown_key_named(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("chanels: 8\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key\(s\) chanels"):
        load_yaml_config(f)


def test_invalid_values():
    with pytest.raises(ConfigError, match="'reductions' \\[5\\] must be cell indices in \\[0, 3\\)"):
        build_config("digits", {}, {"reductions": [5]})
    with pytest.raises(ConfigError, match="stage 'retrain' needs a genotype file"):
        build_config("digits", {}, {"stage": "retrain"})
    with pytest.raises(ConfigError, match="'max_skips' must be >= 0"):
        build_config("digits", {"max_skips": -1}, {})
    with pytest.raises(ConfigError, match="'p' \\(prune rate\\) must be in \\[0, 1\\)"):
        build_config("digits", {}, {"p": 1.5})


def test_non_mapping_yaml(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml_config(f)


def test_cost_weights_and_augment_are_checked_and_resolved():
    from lsnn.searcher.stages import resolved_hparams

    cfg = build_config("digits", {}, {})
    assert cfg.cost_weights == "relative" and cfg.augment == "none" and cfg.C_retrain == 32
    assert resolved_hparams(cfg) == {"l1": 0.15, "l2": 0.01, "p": 0.5}
    assert resolved_hparams(build_config("digits", {}, {"cost_weights": "absolute"}))["l1"] == 5e-10
    assert build_config("cifar10", {"augment": True}, {}).augment == "crop_flip"     # older configs
    with pytest.raises(ConfigError, match="'cost_weights' must be 'relative' or 'absolute'"):
        build_config("digits", {}, {"cost_weights": "paper"})
    with pytest.raises(ConfigError, match="'optimizer' must be 'sgd' or 'adamw'"):
        build_config("digits", {}, {"optimizer": "lion"})
    with pytest.raises(ConfigError, match="'augment' must be one of none, shift"):
        build_config("digits", {}, {"augment": "rotate"})


def test_a_chosen_preset_brings_its_own_prune_rate():
    from lsnn.searcher.stages import resolved_hparams

    assert build_config("digits", {}, {}).p == 0.5                      # the digits default
    assert build_config("digits", {}, {"preset": "small"}).p is None     # -> the preset's 0.9
    assert build_config("digits", {"preset": "large"}, {"p": 0.7}).p == 0.7
    cfg = build_config("digits", {}, {"preset": "small"})
    assert resolved_hparams(cfg)["p"] == 0.9


def test_input_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    """data_dir, genotype and deploy_profile in a config name files beside it; out_dir stays
    relative to the working directory, and absolute paths are kept."""
    sub = tmp_path / "cfgs"
    sub.mkdir()
    f = sub / "c.yaml"
    f.write_text(f"deploy_profile: two.yaml\ngenotype: ../g/genotype.json\ndata_dir: {tmp_path / 'd'}\n"
                 "out_dir: runs/x\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    vals = load_yaml_config("cfgs/c.yaml")
    assert vals["deploy_profile"] == "cfgs/two.yaml"
    assert vals["genotype"] == "g/genotype.json"
    assert vals["data_dir"] == str(tmp_path / "d") and vals["out_dir"] == "runs/x"
    f.write_text("genotype: ~/g.json\n")
    assert load_yaml_config(f)["genotype"] == str(tmp_path / "home" / "g.json")


def test_gsc_example_names_its_profile_from_any_directory(tmp_path, monkeypatch):
    from pathlib import Path

    from lsnn.searcher.stages import readout_axon_limit

    cfg_file = Path(__file__).resolve().parents[2] / "examples" / "gsc_subset.yaml"
    monkeypatch.chdir(tmp_path)
    cfg = build_config(None, load_yaml_config(cfg_file), {})
    assert Path(cfg.deploy_profile).is_file()
    assert readout_axon_limit(cfg) == 4096
