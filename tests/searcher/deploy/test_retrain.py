"""run_retrain: records, checkpoint + exact resume, determinism, best-val weights, the frozen
(deploy-exact) phase, augmentation, and that it learns an easy task. Tiny shapes only."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lsnn.errors import ConfigError
from lsnn.searcher.deploy.retrain import CKPT_NAME, RetrainConfig, evaluate, run_retrain
from lsnn.searcher.space.genotype import CellGene, Edge, Genotype

E = Edge


def small_genotype(aux: bool = True) -> Genotype:
    cells = (
        CellGene(False, 2, ((E("conv3x3", 0), E("skip", 1)), (E("conv3x3", 1), E("skip", 2)),
                            (E("skip", 2), E("conv3x3", 3)), (E("conv3x3", 0), E("skip", 4)))),
        CellGene(True, 4, ((E("conv3x3", 0), E("skip", 1)), (E("skip", 0), E("conv3x3", 2)),
                           (E("conv3x3", 1), E("skip", 3)), (E("conv3x3", 4), E("skip", 2)))),
    )
    return Genotype(cells=cells, T=2, C=2, prune_rate=0.5, num_classes=2, input_shape=(1, 6, 6),
                    aux_cell=0 if aux else None)


def data(n: int, seed: int):
    """Two easy classes: bright vs dark images (with noise)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int64)
    x = (0.25 + 0.5 * y[:, None, None, None] + 0.15 * rng.standard_normal((n, 1, 6, 6))).clip(0, 1).astype(np.float32)
    return x, y


def cfg(**kw) -> RetrainConfig:
    base = dict(epochs=2, batch_size=8, eval_batch_size=64, seed=0, progress=False, freeze_epochs=0)
    base.update(kw)
    return RetrainConfig(**base)




def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_config_defaults_follow_the_paper():
    c = RetrainConfig()
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay, c.aux_weight, c.grad_clip) == \
        (200, 50, 0.025, 0.9, 3e-4, 0.4, 5.0)
    assert c.n_freeze == 20
    assert c.lr_at(0) == pytest.approx(0.025) and c.lr_at(100) == pytest.approx(0.0125)
    assert c.lr_at(200) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError):
        RetrainConfig(freeze_epochs=300).validate()


def test_run_records_checkpoint_and_test_accuracy(tmp_path):
    recs = []
    res = run_retrain(small_genotype(), cfg(), data(24, 0), data(10, 1), data(10, 2), tmp_path, on_epoch=recs.append)
    assert (tmp_path / CKPT_NAME).is_file()
    assert [r["epoch"] for r in res.history] == [1, 2] and recs == res.history
    r = res.history[0]
    assert {"epoch", "loss", "train_acc", "val_acc", "lr", "spike_rate", "seconds", "bn_frozen"} <= set(r)
    assert set(r["spike_rate"]) == set(res.net.population_names()[:-1])
    assert all(0.0 <= v <= 1.0 for v in r["spike_rate"].values())
    assert r["lr"] == pytest.approx(0.025) and res.history[1]["lr"] == pytest.approx(0.0125)
    assert 0.0 <= res.test_accuracy <= 1.0 and math.isfinite(r["loss"])
    assert not res.net.training


def test_deterministic_and_exact_resume(tmp_path):
    g, c = small_genotype(), cfg(epochs=3, freeze_epochs=1)
    tr, va = data(20, 0), data(8, 1)
    a = run_retrain(g, c, tr, va, None, tmp_path / "a")
    b = run_retrain(g, c, tr, va, None, tmp_path / "b")
    assert _states_equal(a.net.state_dict(), b.net.state_dict())

    class Stop(Exception):
        pass

    def stop_after_first(rec):
        if rec["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        run_retrain(g, c, tr, va, None, tmp_path / "c", on_epoch=stop_after_first)
    resumed = run_retrain(g, c, tr, va, None, tmp_path / "c", resume=True)
    assert _states_equal(a.net.state_dict(), resumed.net.state_dict())
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(a.history)
    # the epochs of the interrupted piece keep their time: a resumed run reports all of it
    assert resumed.history[0]["seconds"] > 0
    assert resumed.epoch_seconds == pytest.approx(sum(r["seconds"] for r in resumed.history))
    ck = torch.load(tmp_path / "c" / CKPT_NAME, weights_only=True)
    assert _states_equal(ck["net"], torch.load(tmp_path / "a" / CKPT_NAME, weights_only=True)["net"])


def test_resume_with_other_settings_is_refused(tmp_path):
    g = small_genotype()
    run_retrain(g, cfg(epochs=1), data(12, 0), None, None, tmp_path)
    with pytest.raises(ConfigError, match="different genotype or retrain settings"):
        run_retrain(g, cfg(epochs=1, lr=0.1), data(12, 0), None, None, tmp_path, resume=True)


def test_best_validation_weights_are_returned(tmp_path):
    va = data(16, 1)
    res = run_retrain(small_genotype(), cfg(epochs=3), data(24, 0), va, None, tmp_path)
    best = max(r["val_acc"] for r in res.history)
    assert res.best_val_acc == best
    assert res.history[res.best_epoch - 1]["val_acc"] == best
    acc, _ = evaluate(res.net, va)
    assert acc == best                    # the eval forward of the returned net = the recorded best


def test_keep_last_returns_the_last_epochs_weights(tmp_path):
    va = data(16, 1)
    res = run_retrain(small_genotype(), cfg(epochs=3, keep="last"), data(24, 0), va, None, tmp_path)
    assert res.best_epoch == 3 and res.best_val_acc == res.history[-1]["val_acc"]
    ck = torch.load(tmp_path / CKPT_NAME, weights_only=True)
    assert _states_equal(res.net.state_dict(), ck["net"])   # the last epoch's state, as checkpointed
    with pytest.raises(ConfigError, match="'keep' must be 'best_val' or 'last', got 'first'"):
        cfg(keep="first").validate()


def test_frozen_phase_keeps_bn_statistics_and_mask(tmp_path):
    """freeze_epochs = epochs: BN running stats and the mask never move (training forward = deployed)."""
    g = small_genotype()
    torch.manual_seed(0)
    from lsnn.searcher.deploy.retrain import build_net

    c = cfg(epochs=2, freeze_epochs=2)
    init = build_net(g, c)
    masks0 = [cg.mask().clone() for p in init.pops for cg in p.convs if cg.scores is not None]
    res = run_retrain(g, c, data(16, 0), None, None, tmp_path)
    assert [r["bn_frozen"] for r in res.history] == [True, True]
    net = res.net
    for p0, p1 in zip(init.pops, net.pops):
        for c0, c1 in zip(p0.convs, p1.convs):
            assert torch.equal(c0.bn.running_mean, c1.bn.running_mean)
            assert torch.equal(c0.bn.running_var, c1.bn.running_var)
            assert not torch.equal(c0.weight, c1.weight)          # but the weights did train
    masks1 = [cg.mask() for p in net.pops for cg in p.convs if cg.scores is not None]
    assert all(torch.equal(m0, m1) for m0, m1 in zip(masks0, masks1))


def test_augment_is_applied_to_training_batches_only(tmp_path):
    calls = []

    def aug(x, rng):
        calls.append(x.shape[0])
        return np.flip(x, axis=3).copy()

    run_retrain(small_genotype(), cfg(epochs=1), data(20, 0), data(6, 1), data(6, 2), tmp_path, augment=aug)
    assert sum(calls) == 20


@pytest.mark.parametrize("mode, epochs", [("float", 8), ("lava", 12)])
def test_learns_an_easy_task(tmp_path, mode, epochs):
    res = run_retrain(small_genotype(), cfg(epochs=epochs, batch_size=10, lr=0.05, freeze_epochs=1, lif_mode=mode),
                      data(60, 0), data(20, 1), data(40, 2), tmp_path)
    assert res.test_accuracy >= 0.85, res.history


@pytest.mark.parametrize("mode", ["float", "lava"])
def test_retrained_net_exports_a_valid_artifact_matching_its_forward(tmp_path, mode):
    from lsnn.contract.artifact import load_artifact, save_artifact
    from lsnn.searcher.deploy.export import export_artifact
    from tests.factories.deploy_reference import integer_checks, integer_reference, reference_forward

    g = small_genotype()
    te = data(12, 2)
    res = run_retrain(g, cfg(epochs=2, freeze_epochs=1, lif_mode=mode), data(24, 0), data(8, 1), te, tmp_path)
    art = export_artifact(res.net, g, metrics={"test_accuracy": res.test_accuracy, "spike_rates": res.test_spike_rates},
                          train_info={"seed": 0, "epochs": 2, "batch_size": 8})
    a = load_artifact(save_artifact(art, tmp_path / "model.pt"))
    assert integer_checks(a) == []
    x = torch.from_numpy(te[0])
    with torch.no_grad():
        logits = res.net(x)
    if mode == "float":   # the float reference of the artifact reproduces the float forward exactly
        assert torch.equal(logits, reference_forward(a, x))
    else:                 # the integer reference (the chip's dynamics) predicts what the net predicts
        v = integer_reference(a, x)[0]
        assert torch.equal(logits.argmax(1), torch.as_tensor(v).argmax(1))
    assert float((logits.argmax(1).numpy() == te[1]).mean()) == res.test_accuracy
