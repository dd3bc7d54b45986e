"""Retraining phases: lr warm-up + cosine by hand, the float-then-integer LIF switch, the pruning
ramp, which epochs may be kept, and that a phased run still exports its own forward."""
from __future__ import annotations

import math

import pytest
import torch

from lsnn.errors import ConfigError
from lsnn.searcher.deploy.retrain import RetrainConfig, build_net, run_retrain
from lsnn.searcher.deploy.schedule import apply_phase, lr_at, phase_at
from tests.searcher.deploy.test_retrain import data, small_genotype


def test_warmup_then_cosine_by_hand():
    c = RetrainConfig(epochs=10, lr=0.1, lr_min=0.0, warmup_epochs=2)
    assert [lr_at(c, e) for e in (0, 1)] == pytest.approx([0.1 / 3, 0.2 / 3])
    assert lr_at(c, 2) == pytest.approx(0.1)                         # cosine starts at the peak
    assert lr_at(c, 6) == pytest.approx(0.05 * (1 + math.cos(math.pi * 4 / 8)))
    assert RetrainConfig(epochs=10, lr=0.1).lr_at(5) == pytest.approx(0.05)   # no warm-up: plain cosine


def test_phases_float_then_integer_ramp_and_freeze():
    c = RetrainConfig(epochs=10, lif_mode="lava", float_epochs=4, prune_ramp_epochs=2, freeze_epochs=2)
    ph = [phase_at(c, e) for e in range(10)]
    assert [p.lif_mode for p in ph] == ["float"] * 4 + ["lava"] * 6
    assert [p.prune_progress for p in ph] == [0.5] + [1.0] * 9
    assert [p.frozen for p in ph] == [False] * 8 + [True] * 2
    assert [p.deployable for p in ph] == [False] * 4 + [True] * 6
    # float_epochs means nothing when the run trains the float LIF anyway
    assert all(phase_at(RetrainConfig(epochs=4, lif_mode="float", float_epochs=2), e).deployable for e in range(4))


@pytest.mark.parametrize("key", ["warmup_epochs", "float_epochs", "prune_ramp_epochs"])
def test_phase_lengths_must_leave_room_for_the_frozen_epochs(key):
    with pytest.raises(ConfigError, match=key):
        RetrainConfig(epochs=10, freeze_epochs=2, **{key: 9}).validate()
    with pytest.raises(ConfigError, match="label_smoothing"):
        RetrainConfig(label_smoothing=1.0).validate()


def test_apply_phase_switches_neuron_readout_and_mask_rate():
    c = RetrainConfig(epochs=4, lif_mode="lava", float_epochs=1, prune_ramp_epochs=2, freeze_epochs=0)
    net = build_net(small_genotype(), c)
    apply_phase(net, phase_at(c, 0), learn_mask=True)
    assert net.lif_mode == "float" and not net.readout.clip_lava
    conv = net.pops[1].convs[0]
    kept = int(conv.mask().sum())
    assert kept == round(conv.weight.numel() * (1 - 0.5 * conv.prune_rate))   # half the rate at epoch 0 of 2
    apply_phase(net, phase_at(c, 1), learn_mask=True)
    assert net.lif_mode == "lava" and net.readout.clip_lava
    assert int(conv.mask().sum()) == round(conv.weight.numel() * (1 - conv.prune_rate))


def test_phased_run_keeps_a_deployable_epoch_and_ends_in_deploy_form(tmp_path):
    c = RetrainConfig(epochs=4, batch_size=8, seed=0, progress=False, freeze_epochs=1, lif_mode="lava",
                      float_epochs=2, prune_ramp_epochs=1, warmup_epochs=1, label_smoothing=0.1)
    res = run_retrain(small_genotype(), c, data(32, 0), data(8, 1), data(8, 2), tmp_path)
    assert [r["lif_mode"] for r in res.history] == ["float", "float", "lava", "lava"]
    assert res.best_epoch in (3, 4)
    assert res.net.lif_mode == "lava" and all(cv.prune_progress == 1.0 for p in res.net.pops for cv in p.convs)
    # the returned net is the deployed one: its eval forward is what it was scored with
    from lsnn.searcher.deploy.retrain import evaluate
    acc, _ = evaluate(res.net, data(8, 2))
    assert acc == res.test_accuracy
    with torch.no_grad():
        assert res.net.deploy_tensors() is not None


def test_readout_lr_scale_gives_the_fc_its_own_lr(tmp_path):
    c = RetrainConfig(epochs=2, batch_size=8, seed=0, progress=False, freeze_epochs=0, lr=0.01, readout_lr_scale=20.0)
    from lsnn.searcher.deploy.retrain import param_groups

    net = build_net(small_genotype(), c)
    groups = {g["name"]: g for g in param_groups(net, 3e-4, 20.0)}
    assert groups["readout"]["params"] == [net.readout.weight] and groups["readout"]["lr_scale"] == 20.0
    assert groups["readout_bias"]["weight_decay"] == 0.0
    assert all(p is not net.readout.weight for p in groups["weights"]["params"])
    assert "readout" not in {g["name"] for g in param_groups(net, 3e-4)}       # scale 1: no extra group
    w0 = net.readout.weight.detach().clone()
    res = run_retrain(small_genotype(), c, data(16, 0), None, None, tmp_path)
    assert res.history[0]["lr"] == pytest.approx(0.01)
    assert not torch.equal(res.net.readout.weight, w0)
    with pytest.raises(ConfigError, match="readout_lr_scale"):
        RetrainConfig(readout_lr_scale=0.0).validate()


def test_adamw_retrains_and_bad_optimizer_is_refused(tmp_path):
    c = RetrainConfig(epochs=1, batch_size=8, seed=0, progress=False, freeze_epochs=0, lr=2e-3, optimizer="adamw")
    res = run_retrain(small_genotype(), c, data(16, 0), None, None, tmp_path)
    assert len(res.history) == 1 and res.history[0]["lr"] == pytest.approx(2e-3)
    with pytest.raises(ConfigError, match="optimizer"):
        RetrainConfig(optimizer="lion").validate()
