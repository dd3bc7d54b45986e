"""Every `--strategy` at toy scale on digits: it runs, writes a model.pt that compiles for loihi2,
and the same seed gives the same genotype, weights and accuracy."""
import json

import pytest
import torch

from lsnn.compiler.pipeline import compile_artifact
from lsnn.contract.artifact import load_artifact
from lsnn.hw_profiles.profile import load_profile
from lsnn.searcher.config import STRATEGIES, build_config
from lsnn.searcher.pipeline import run_pipeline

pytestmark = pytest.mark.slow


def _run(out, strategy):
    cfg = build_config("digits", {}, {"strategy": strategy, "out_dir": str(out), "C": 4, "C_retrain": 4,
                                      "cells": 2, "reductions": [1], "T": 2, "search_epochs": 1,
                                      "retrain_epochs": 1, "random_candidates": 2, "proxy_epochs": 1,
                                      "train_subset": 200, "test_subset": 60, "num_threads": 1,
                                      "deploy_target": None})
    return run_pipeline(cfg, echo=lambda s: None)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_writes_a_deployable_deterministic_model(tmp_path, strategy):
    a, b = _run(tmp_path / "a", strategy), _run(tmp_path / "b", strategy)
    assert a.genotype == b.genotype
    sa, sb = (json.loads((r.out_dir / "summary.json").read_text()) for r in (a, b))
    assert sa["strategy"] == strategy and sa["test_accuracy"] == sb["test_accuracy"]
    assert sa["search_seconds"] >= 0 and sa["retrain_seconds"] > 0
    assert 0 < sa["retrain_epoch_seconds"] <= sa["retrain_seconds"]
    assert sa["test_samples"] == 60 and sa["train_samples"] == 200 and sa["val_samples"] > 0 and sa["threads"] == 1
    assert sa["cpu"] and "cores" in sa["cpu"]
    wa, wb = load_artifact(a.model_path), load_artifact(b.model_path)
    for x, y in zip(wa["synapses"], wb["synapses"]):
        assert torch.equal(x["weight"], y["weight"]), x["name"]
    res = compile_artifact(a.model_path, load_profile(target="loihi2"), out=tmp_path / "model.net")
    assert res.report["totals"]["cores"] > 0 and (tmp_path / "model.net").is_file()
