"""`lsnn search` option handling: bad input gives one clear line and a non-zero exit."""
from click.testing import CliRunner

from lsnn.cli import main


def test_version():
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and "lsnn, version 0.1.0" in r.output


def test_unknown_config_key(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("epochs: 3\n")
    r = CliRunner().invoke(main, ["search", "--config", str(f)])
    assert r.exit_code == 2
    assert r.stderr.startswith(f"lsnn: error: {f}: unknown key(s) epochs")
    assert not (tmp_path / "runs").exists()


def test_retrain_stage_needs_genotype(tmp_path):
    r = CliRunner().invoke(main, ["search", "--stage", "retrain", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "stage 'retrain' needs a genotype file" in r.stderr


def test_bad_reductions_option():
    r = CliRunner().invoke(main, ["search", "--reductions", "a,b"])
    assert r.exit_code == 2
    assert "expected comma-separated cell indices" in r.stderr


def test_missing_dataset_writes_no_run_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("LSNN_DATA_DIR", raising=False)
    r = CliRunner().invoke(main, ["search", "--dataset", "cifar10", "--out", str(tmp_path / "run")])
    assert r.exit_code == 2
    assert "dataset 'cifar10' needs data_dir" in r.stderr
    assert not (tmp_path / "run").exists()
