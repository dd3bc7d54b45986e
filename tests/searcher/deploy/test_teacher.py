"""The float teacher for distillation: the soft-target loss by hand, a teacher that learns and is
reused from teacher.pt, and `distill_weight` wired through `lsnn search` (checked before any run)."""
import json
import math

import numpy as np
import pytest
import torch

from lsnn.errors import ConfigError
from lsnn.searcher.config import build_config
from lsnn.searcher.deploy.teacher import TeacherConfig, distill_loss, train_teacher
from lsnn.searcher.pipeline import run_pipeline


def test_distill_loss_by_hand():
    s = torch.tensor([[0.0, math.log(3.0)]])            # student at t = 1: softmax [1/4, 3/4]
    t = torch.tensor([[0.0, 0.0]])                       # teacher: [1/2, 1/2]
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert float(distill_loss(s, t, 1.0)) == pytest.approx(kl, rel=1e-6)
    # t = 2: student logits / 2 -> softmax [1/(1+sqrt 3), sqrt 3/(1+sqrt 3)], times t^2 = 4
    p = 1.0 / (1.0 + math.sqrt(3.0))
    kl2 = 0.5 * math.log(0.5 / p) + 0.5 * math.log(0.5 / (1.0 - p))
    assert float(distill_loss(s, t, 2.0)) == pytest.approx(4.0 * kl2, rel=1e-6)
    assert float(distill_loss(t, t, 4.0)) == pytest.approx(0.0, abs=1e-7)


def _blobs(n: int, seed: int):
    """Two classes of 1 x 8 x 8 images: vertical or horizontal stripes, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.random((n, 1, 8, 8)).astype(np.float32) * 0.3
    x[y == 0, 0, :, ::2] += 0.7
    x[y == 1, 0, ::2, :] += 0.7
    return x, y


def test_teacher_learns_and_is_reused_from_its_file(tmp_path):
    train, val = _blobs(128, 0), _blobs(64, 1)
    cfg = TeacherConfig(widths=(4, 8), epochs=5, batch_size=16, seed=0)
    net, info = train_teacher(cfg, train, val, 2, tmp_path, progress=False)
    assert info["trained"] is True and info["val_acc"] >= 0.9
    again, info2 = train_teacher(cfg, train, val, 2, tmp_path, progress=False)
    assert info2["trained"] is False and info2["val_acc"] == info["val_acc"]
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    other, info3 = train_teacher(TeacherConfig(widths=(4, 8), epochs=2, batch_size=16, seed=0), train, val, 2,
                                 tmp_path, progress=False)
    assert info3["trained"] is True                      # other settings: trained anew, not reused


def test_bad_distill_weight_fails_before_the_run_directory(tmp_path):
    out = tmp_path / "run"
    cfg = build_config("digits", {}, {"out_dir": str(out), "stage": "all", "distill_weight": 1.5})
    with pytest.raises(ConfigError, match="distill_weight"):
        run_pipeline(cfg, echo=lambda s: None)
    assert not out.exists()


@pytest.mark.slow
def test_search_with_distillation_records_its_teacher(tmp_path):
    cfg = build_config("digits", {}, {"strategy": "hand", "out_dir": str(tmp_path), "C": 4, "C_retrain": 4,
                                      "cells": 2, "reductions": [1], "T": 2, "search_epochs": 1,
                                      "retrain_epochs": 1, "train_subset": 200, "test_subset": 60,
                                      "num_threads": 1, "deploy_target": None, "distill_weight": 0.5,
                                      "teacher_epochs": 2})
    run_pipeline(cfg, echo=lambda s: None)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["teacher"]["epochs"] == 2 and 0.0 <= summary["teacher"]["val_acc"] <= 1.0
    assert (tmp_path / "teacher.pt").is_file()


def test_distillation_needs_a_trained_teacher():
    with pytest.raises(ConfigError, match="teacher_epochs"):
        build_config("digits", {}, {"distill_weight": 0.5, "teacher_epochs": 0})
