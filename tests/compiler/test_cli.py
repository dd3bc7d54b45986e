"""`lsnn compile`: listing targets, success output, one clear error line per failure."""
from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from lsnn.cli import main
from tests.factories.compiler import chain_artifact, to_torch


@pytest.fixture
def model(tmp_path):
    from lsnn.contract.artifact import save_artifact

    return save_artifact(to_torch(chain_artifact()), tmp_path / "model.pt")


def run(*args):
    return CliRunner().invoke(main, ["compile", *map(str, args)])


def test_list_targets():
    r = run("--list-targets")
    assert r.exit_code == 0
    assert [line.split()[0] for line in r.output.splitlines()] == ["loihi1", "loihi2", "tiny"]


def test_compile_success_default_paths(model, tmp_path):
    r = run(model)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "model.net").is_file() and (tmp_path / "model.report.json").is_file()
    assert "stem.conv" in r.output and "target loihi2:" in r.output
    assert f"wrote {tmp_path / 'model.net'} and {tmp_path / 'model.report.json'}" in r.output


def test_compile_output_and_report_options(model, tmp_path):
    r = run(model, "--target", "tiny", "-o", tmp_path / "out" / "x.net", "--report-json", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "x.net").is_file() and (tmp_path / "r.json").is_file()


def test_compile_also_writes_nir(model, tmp_path):
    nir = pytest.importorskip("nir")
    r = run(model, "--nir", tmp_path / "model.nir")
    assert r.exit_code == 0, r.output
    assert f"wrote {tmp_path / 'model.nir'} (NIR" in r.output
    g = nir.read(tmp_path / "model.nir")
    assert isinstance(g.nodes["stem"], nir.LIF) and isinstance(g.nodes["readout"], nir.I)
    assert ("stem", "conv1.conv") in [tuple(e) for e in g.edges]


def test_unknown_target_one_line(model):
    r = run(model, "--target", "loihi9")
    assert r.exit_code == 2
    assert r.stderr == "lsnn: error: unknown target 'loihi9' (available: loihi1, loihi2, tiny)\n"


def test_target_and_profile_conflict(model, tmp_path):
    r = run(model, "--target", "tiny", "--profile", tmp_path / "p.yaml")
    assert r.exit_code == 2 and r.stderr == "lsnn: error: give either --target or --profile, not both\n"


def test_bad_custom_profile(model, tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("version: 1\nfoo: 2\n")
    r = run(model, "--profile", p)
    assert r.exit_code == 2 and r.stderr.startswith(f"lsnn: error: {p}: unknown key 'foo'")


def test_missing_and_foreign_models(tmp_path):
    r = run(tmp_path / "none.pt")
    assert r.exit_code == 2 and r.stderr == f"lsnn: error: {tmp_path / 'none.pt'}: no such model file\n"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a zip")
    r = run(junk)
    assert r.exit_code == 2 and r.stderr.startswith(f"lsnn: error: {junk}: not a readable model file")
    assert r.stderr.count("\n") == 1


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    import torch

    p = tmp_path / "evil.pt"
    torch.save({"format": "lsnn.model", "x": Evil()}, p)
    r = run(p)
    assert r.exit_code == 2
    assert r.stderr.startswith(f"lsnn: error: {p}: refused to load") and r.stderr.count("\n") == 1
    assert not (tmp_path / "evil.net").exists()


def test_wrong_version_and_foreign_dict(tmp_path):
    import torch

    art = to_torch(chain_artifact())
    art["version"] = 2
    torch.save(art, tmp_path / "v2.pt")
    r = run(tmp_path / "v2.pt")
    assert r.exit_code == 2
    assert r.stderr == (f"lsnn: error: {tmp_path / 'v2.pt'}: artifact version 2 is not supported "
                        "(this lsnn reads version 1)\n")
    torch.save({"format": "other"}, tmp_path / "o.pt")
    r = run(tmp_path / "o.pt")
    assert r.exit_code == 2 and "not an lsnn model artifact" in r.stderr


def test_design_rule_violations_all_printed_no_output(tmp_path):
    from lsnn.contract.artifact import save_artifact

    art = chain_artifact(stem_bits=8)
    path = save_artifact(to_torch(art), tmp_path / "model.pt")
    r = run(path, "--target", "loihi1")
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert lines[0] == "lsnn: error: 2 design-rule violations for target 'loihi1':"
    assert lines[1].startswith("  [weight_bits] stem.conv: needs 9-bit mixed weights")
    assert lines[2] == "  [graded_input] input: 8-bit graded input spikes on a binary-only target"
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]


def test_missing_model_argument():
    r = run()
    assert r.exit_code == 2 and "missing argument MODEL" in r.output + (r.stderr or "")
