"""BN re-estimation for the deployed form (deploy.recalibrate): the one-pass hook equals the
population-by-population procedure done by brute force, it leaves weights alone, and run_retrain
applies it once, at the switch to the frozen form."""
from __future__ import annotations

import pytest
import torch

from lsnn.errors import ConfigError
from lsnn.searcher.deploy import retrain as rt
from lsnn.searcher.deploy.recalibrate import PASSES, recalibrate_bn
from lsnn.searcher.deploy.retrain import RetrainConfig, build_net, run_retrain

from .test_retrain import cfg, data, small_genotype


def _trained_net():
    """A net whose running statistics come from a few training-form steps (so they are off)."""
    net = build_net(small_genotype(), RetrainConfig(seed=3)).train()
    x = torch.from_numpy(data(32, 0)[0])
    with torch.no_grad():
        for i in range(0, 32, 8):
            net.forward_all(x[i:i + 8])
    return net


def _bn_stats(net) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if "running_" in k}


def _brute_force(net, x: torch.Tensor) -> None:
    """The definition: for each population in order, with every other population frozen (so the
    ones before it give their deployed spikes), measure its statistics on x over a whole forward."""
    net.train()
    with torch.no_grad():
        for pop in net.pops:
            if not pop.convs:
                continue
            net.set_bn_frozen(True)
            pop.bn_frozen = False
            for c in pop.convs:
                c.bn.momentum = None
            for _ in range(PASSES):
                for c in pop.convs:
                    c.bn.reset_running_stats()
                net.forward_all(x)
            for c in pop.convs:
                c.bn.momentum = 0.1
    net.set_bn_frozen(True)


def test_one_pass_equals_population_by_population_by_brute_force():
    x = torch.from_numpy(data(24, 1)[0])
    a, b = _trained_net(), _trained_net()
    before = _bn_stats(a)
    weights = {k: v.clone() for k, v in a.state_dict().items() if "running_" not in k and "num_batches" not in k}
    recalibrate_bn(a, x)
    _brute_force(b, x)
    after, ref = _bn_stats(a), _bn_stats(b)
    assert after.keys() == ref.keys() and len(after) > 4
    for k in after:
        torch.testing.assert_close(after[k], ref[k], rtol=1e-6, atol=1e-7)
    assert any(not torch.allclose(before[k], after[k]) for k in after)     # it did change them
    for k, v in weights.items():                                             # and nothing else
        assert torch.equal(a.state_dict()[k], v), k
    assert a.bn_frozen and a.training
    for pop in a.pops:
        for c in pop.convs:
            assert c.bn.momentum == 0.1


def test_stem_statistics_are_those_of_its_input_by_hand():
    """The stem reads the input alone: its running mean is the plain mean of conv(x, W_q) / sf."""
    x = torch.from_numpy(data(16, 2)[0])
    net = _trained_net()
    recalibrate_bn(net, x, passes=1)
    stem = net.pops[0]
    conv = stem.convs[0]
    fresh = _trained_net()                 # the same net before: pass 1 quantizes with reset statistics
    fs = fresh.pops[0]
    for c in fs.convs:
        c.bn.reset_running_stats()
    q = fs.quant()
    acts = {"input": fresh.encode_input(x)}
    a = torch.nn.functional.conv2d(fs.convs[0].gather(acts), q.w_int[0], None, conv.stride, conv.padding)
    pre = a * (q.scale / q.fold_factors[0]).view(1, -1, 1, 1)
    torch.testing.assert_close(conv.bn.running_mean, pre.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(conv.bn.running_var, pre.var(dim=(0, 2, 3), unbiased=True), rtol=1e-5, atol=1e-6)


def test_run_retrain_recalibrates_once_at_the_freeze_switch(tmp_path, monkeypatch):
    calls = []
    real = rt.recalibrate_bn
    monkeypatch.setattr(rt, "recalibrate_bn", lambda net, x: (calls.append(len(x)), real(net, x)))
    tr, va = data(40, 0), data(16, 1)
    run_retrain(small_genotype(), cfg(epochs=3, freeze_epochs=2, recalibrate_samples=24), tr, va, None, tmp_path)
    assert calls == [24]
    calls.clear()
    run_retrain(small_genotype(), cfg(epochs=3, freeze_epochs=2), tr, va, None, tmp_path / "off")
    assert calls == []


@pytest.mark.parametrize("n", [-1, 1])
def test_bad_sample_counts_are_refused(n):
    with pytest.raises(ConfigError, match="recalibrate_samples"):
        RetrainConfig(recalibrate_samples=n).validate()
    with pytest.raises(ConfigError, match="at least 2 samples"):
        recalibrate_bn(_trained_net(), torch.from_numpy(data(1, 0)[0]))
