"""The two-step joint optimisation: determinism, resume, warm-up, step separation, records, validation."""
import json

import numpy as np
import pytest
import torch

from lsnn.errors import ConfigError, DatasetError
from lsnn.searcher.presets import PRESETS, get_preset
from lsnn.searcher.search.loop import (
    CKPT_NAME,
    SearchConfig,
    build_supernet,
    make_optimizers,
    run_search,
    search_iteration,
)


def stripes(n=80, seed=0):
    """4 classes of horizontal stripes on 8x8 with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.uniform(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
    for i in range(n):
        x[i, 0, 2 * y[i]:2 * y[i] + 2] += 0.7
    return np.clip(x, 0, 1), y.astype(np.int64)


def cfg(**kw):
    base = dict(T=3, C=4, cells=3, reductions=(1, 2), epochs=2, batch_size=16, psi_warmup_epochs=1, l1=1e-6,
                l2=1e-8, p=0.5, progress=False, num_threads=1, a_lr=3e-2)
    base.update(kw)
    return SearchConfig(**base)


def split(x, y):
    return (x[:64], y[:64]), (x[64:], y[64:])


def test_same_seed_same_genotype_and_history(tmp_path):
    tr, va = split(*stripes())
    a = run_search(cfg(), tr, va, tmp_path / "a")
    b = run_search(cfg(), tr, va, tmp_path / "b")
    assert a.genotype == b.genotype
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    c = run_search(cfg(seed=1), tr, va, tmp_path / "c")
    assert strip(c.history) != strip(a.history)


def test_resume_continues_exactly(tmp_path):
    tr, va = split(*stripes())
    full = run_search(cfg(epochs=3), tr, va, tmp_path / "full")

    class Stop(Exception):
        pass

    def stop_after_2(rec):
        if rec["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        run_search(cfg(epochs=3), tr, va, tmp_path / "cut", on_epoch=stop_after_2)
    seen = []
    resumed = run_search(cfg(epochs=3), tr, va, tmp_path / "cut", resume=True, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [3]
    a, b = full.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]
    with pytest.raises(ConfigError, match="cannot resume.*l1"):
        run_search(cfg(epochs=3, l1=1e-3), tr, va, tmp_path / "cut", resume=True)


def test_epoch_records_and_psi_warmup(tmp_path):
    tr, va = split(*stripes())
    recs = []
    res = run_search(cfg(epochs=3, psi_warmup_epochs=2), tr, va, tmp_path, on_epoch=recs.append)
    assert (tmp_path / CKPT_NAME).is_file()
    assert len(recs) == 3 and recs == res.history
    keys = {"epoch", "loss", "ce", "mem_bits", "bit_synops", "synops", "train_acc", "val_acc", "model_size_bytes",
            "psi", "beta", "alpha", "spike_rate", "seconds"}
    assert keys <= set(recs[0])
    json.dumps(recs)                                                # plain values only
    assert len(recs[0]["beta"]) == 3 and len(recs[0]["beta"][0]) == 3
    assert np.array(recs[0]["alpha"][0]).shape == (14, 2)
    assert recs[0]["psi"] == pytest.approx([1 / 3] * 3) and recs[1]["psi"] == pytest.approx([1 / 3] * 3)
    assert recs[2]["psi"] != pytest.approx([1 / 3] * 3)            # updated after the warm-up
    assert recs[0]["model_size_bytes"] == pytest.approx(recs[0]["mem_bits"] / 8)
    assert recs[0]["lr"] == pytest.approx(0.025) and recs[1]["lr"] < recs[0]["lr"]   # cosine schedule
    assert recs[0]["val_acc"] == recs[0]["val_acc_per_t"][-1]
    assert 0 < recs[0]["spike_rate"] < 1 and recs[-1]["loss"] > recs[-1]["ce"]


def test_learns_the_toy_task(tmp_path):
    x, y = stripes(160)
    res = run_search(cfg(epochs=6, l1=0.0, l2=0.0), (x[:128], y[:128]), (x[128:], y[128:]), tmp_path)
    assert res.history[-1]["val_acc"] >= 0.8 and res.history[-1]["train_acc"] >= 0.8   # chance: 0.25
    assert res.history[-1]["ce"] < res.history[0]["ce"]


def _one_iteration(c):
    x, y = stripes(16)
    net = build_supernet(c, (1, 8, 8), 4)
    wopt, _, aopt = make_optimizers(net, c)
    w0 = [p.detach().clone() for p in net.weight_parameters()]
    a0 = [p.detach().clone() for p in net.arch_parameters()]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    search_iteration(net, xt, yt, xt, yt, c, wopt, aopt, train_psi=True)
    w_changed = any(not torch.equal(a, b) for a, b in zip(w0, net.weight_parameters()))
    a_changed = [not torch.equal(a, b) for a, b in zip(a0, net.arch_parameters())]
    return w_changed, a_changed, net


def test_step_one_moves_only_weights_step_two_only_architecture():
    w_changed, a_changed, _ = _one_iteration(cfg(a_lr=0.0))
    assert w_changed and not any(a_changed)
    w_changed, a_changed, net = _one_iteration(cfg(w_lr=0.0, w_lr_min=0.0))
    assert not w_changed and all(a_changed)                         # alpha, beta, scores and psi all move


def test_heldout_and_differentiable_rate_run(tmp_path):
    tr, va = split(*stripes())
    res = run_search(cfg(epochs=1, arch_data="heldout", differentiable_rate=True), tr, va, tmp_path)
    assert len(res.history) == 1 and res.genotype.T in (1, 2, 3)


def test_data_and_config_validation(tmp_path):
    x, y = stripes()
    with pytest.raises(DatasetError, match=r"train x: values must lie in \[0, 1\]"):
        run_search(cfg(), (x * 2, y), (x, y), tmp_path)
    with pytest.raises(DatasetError, match="val y: expected"):
        run_search(cfg(), (x, y), (x, y[:3]), tmp_path)
    with pytest.raises(ConfigError, match="'arch_data'"):
        run_search(cfg(arch_data="other"), (x, y), (x, y), tmp_path)
    with pytest.raises(ConfigError, match="'input_shape'"):
        run_search(cfg(input_shape=(3, 8, 8)), (x, y), (x, y), tmp_path)


def test_presets():
    assert (get_preset("medium").l1, get_preset("medium").l2, get_preset("medium").p) == (5e-10, 5e-14, 0.8)
    assert (PRESETS["large"].p, PRESETS["small"].p, PRESETS["gsc"].p) == (0.5, 0.9, 0.7)
    with pytest.raises(ConfigError, match="unknown preset 'tiny'.*large, medium, small, gsc"):
        get_preset("tiny")


def test_max_skips_caps_the_decoded_skips(tmp_path):
    tr, va = split(*stripes())
    res = run_search(cfg(epochs=1, max_skips=0), tr, va, tmp_path / "a")
    assert all(e.op == "conv3x3" for c in res.genotype.cells for n in c.nodes for e in n)
    with pytest.raises(ConfigError, match="'max_skips' must be >= 0"):
        cfg(max_skips=-1).validate()


def test_arch_warmup_trains_weights_only_then_everything(tmp_path):
    tr, va = split(*stripes())
    torch.manual_seed(0)
    init = build_supernet(cfg(), (1, 8, 8), 4)
    before = [p.detach().clone() for p in init.arch_parameters()]
    res = run_search(cfg(epochs=1, arch_warmup_epochs=1), tr, va, tmp_path / "w")
    assert all(torch.equal(a, b) for a, b in zip(before, res.net.arch_parameters()))
    # the weights take exactly the steps they take when the architecture step has lr 0
    still = run_search(cfg(epochs=1, a_lr=0.0), tr, va, tmp_path / "s")
    assert all(torch.equal(a, b) for a, b in zip(still.net.weight_parameters(), res.net.weight_parameters()))
    res2 = run_search(cfg(epochs=2, arch_warmup_epochs=1), tr, va, tmp_path / "w2")
    assert not all(torch.equal(a, b) for a, b in zip(before, res2.net.arch_parameters()))
    with pytest.raises(ConfigError, match="'arch_warmup_epochs' must be >= 0"):
        cfg(arch_warmup_epochs=-1).validate()
