"""`lsnn search`'s options: parse them (and a YAML config) into a RunConfig. The command itself
is registered by `lsnn.cli`, which hands the config to `lsnn.workflow` (search, then deploy)."""
from __future__ import annotations

from typing import Any, Callable

import click

from lsnn.searcher.config import STRATEGIES


def _int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip() != ""]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated cell indices like '2,5', got '{value}'") from None


_OPTIONS = [
    click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file with any of these options (CLI values win)."),
    click.option("--dataset", type=click.Choice(["digits", "cifar10", "cifar100", "gsc"]), help="Dataset [default: digits, embedded]."),
    click.option("--data-dir", help="Dataset folder or archive (.tar / .tar.xz); not needed for digits."),
    click.option("--out", "out_dir", help="Run directory [default: runs/<dataset>]."),
    click.option("--preset", type=click.Choice(["large", "medium", "small", "gsc"]), help="(l1, l2, p) of the paper's scales."),
    click.option("--l1", type=float, help="Model-size coefficient lambda1 (Eq. 15)."),
    click.option("--l2", type=float, help="Bit-SynOps coefficient lambda2 (Eq. 15)."),
    click.option("--cost-weights", type=click.Choice(["relative", "absolute"]), help="Units of --l1/--l2 and the presets: relative to the supernet's initial model size and Bit-SynOps (default; the same meaning on every dataset) or the paper's absolute per-bit / per-Bit-SynOp values."),
    click.option("-p", "--prune-rate", "p", type=float, help="Pruning rate p in [0, 1)."),
    click.option("-T", "--timesteps", "T", type=int, help="Largest candidate number of timesteps."),
    click.option("-C", "--channels", "C", type=int, help="Initial channels C in search."),
    click.option("--retrain-channels", "C_retrain", type=int, help="Initial channels C in retraining."),
    click.option("--cells", type=int, help="Number of cells."),
    click.option("--reductions", callback=_int_list, help="Reduction cell indices, 0-based, e.g. '2,5'."),
    click.option("--search-epochs", type=int),
    click.option("--retrain-epochs", type=int),
    click.option("--batch-size", type=int, help="Search batch size."),
    click.option("--retrain-batch-size", type=int),
    click.option("--retrain-lr", type=float, help="SGD learning rate of retraining (cosine schedule)."),
    click.option("--augment", type=click.Choice(["none", "shift", "crop_flip", "crop_flip_cutout", "speech"]), help="Retraining augmentation [default: per dataset]."),
    click.option("--label-smoothing", type=float, help="Label smoothing of the retraining cross-entropy."),
    click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), help="Retraining optimizer (default sgd, momentum 0.9)."),
    click.option("--weight-decay", type=float, help="Retraining weight decay on conv / FC weights."),
    click.option("--readout-lr-scale", type=float, help="Retraining lr multiplier of the FC readout."),
    click.option("--warmup-epochs", type=int, help="Retraining lr warm-up epochs (then cosine)."),
    click.option("--keep", type=click.Choice(["best_val", "last"]), help="Retraining: which epoch's weights become model.pt: the best validation accuracy's (the first on ties) or the last [default: per dataset]."),
    click.option("--freeze-epochs", type=int, help="Retraining: last epochs trained in the deployed form (BN statistics and mask frozen) [default: 10 %]."),
    click.option("--float-epochs", type=int, help="With the integer LIF: first retraining epochs with the float LIF (faster), then the exact one."),
    click.option("--prune-ramp-epochs", type=int, help="Retraining: ramp the prune rate from 0 to p over these epochs."),
    click.option("--train-subset", type=int, help="Use a stratified subset of N training samples (reduced-scale runs)."),
    click.option("--test-subset", type=int, help="Evaluate on a stratified subset of N test samples."),
    click.option("--arch-lr", type=float, help="Adam learning rate of the architecture step (alpha, beta, mask scores, psi)."),
    click.option("--arch-data", type=click.Choice(["same", "heldout"]), help="Batch for the architecture step: the same as the weight step (paper) or a held-out half (DARTS)."),
    click.option("--differentiable-rate/--detached-rate", default=None, help="Let l2 act on firing rates through the surrogate (default: detached, as the paper's code)."),
    click.option("--lif-mode", type=click.Choice(["lava", "float"]), help="Retraining neuron: Lava's integer LIF in the loop (bit-exact on chip, default) or the paper's float LIF."),
    click.option("--seed", type=int),
    click.option("--device", help="torch device, e.g. cpu or cuda."),
    click.option("--num-threads", type=int, help="torch CPU threads."),
    click.option("--strategy", type=click.Choice(list(STRATEGIES)), help="How the genotype is found: LitE-SNN's joint search (default), the sequential A+P+Q+T baseline, random genotypes of the same space, a hand-designed plain stack, or SpikeNAS's training-free cell-by-cell search under a memory budget."),
    click.option("--hand-bits", type=int, help="--strategy hand: weight bits of every cell (1, 2 or 4)."),
    click.option("--hand-nodes", type=int, help="--strategy hand: conv layers per cell [default 4; 1 = one wide conv per cell, a plain VGG-like stack]."),
    click.option("--random-candidates", type=int, help="--strategy random: genotypes tried [default: the search's compute]."),
    click.option("--proxy-epochs", type=int, help="--strategy random: training epochs per candidate [default 2]."),
    click.option("--memory-budget-kb", type=float, help="--strategy spikenas: the model-size budget in kB (the cost model's, at the searched bits) [default: none]."),
    click.option("--stage", type=click.Choice(["all", "search", "retrain"]), help="Run one stage alone."),
    click.option("--genotype", type=click.Path(dir_okay=False), help="genotype.json for --stage retrain."),
    click.option("--target", "deploy_target", help="After retraining, compile for this bundled target and run it (default loihi2)."),
    click.option("--deploy-profile", type=click.Path(dir_okay=False), help="... or a hardware-profile YAML for that compile / run."),
    click.option("--no-deploy", is_flag=True, help="Stop at model.pt (no compile / run)."),
    click.option("--lava-samples", type=int, help="Test samples the deploy check runs on Lava's simulator (default 8)."),
    click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last checkpoint."),
]


def search_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Apply every `lsnn search` option to the command function `f`."""
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


def config_from_options(config_file: str | None, no_deploy: bool, options: dict[str, Any]) -> Any:
    """The RunConfig of dataset defaults < --preset < --config FILE < options (ConfigError names
    the file and key)."""
    from lsnn.searcher.config import build_config, load_yaml_config

    file_values = load_yaml_config(config_file) if config_file else {}
    cfg = build_config(options.get("dataset"), file_values, options, source=config_file or "command line")
    if no_deploy:
        cfg.deploy_target = None
        cfg.deploy_profile = None
    return cfg


def done_line(s: dict[str, Any]) -> str:
    """The closing line of a finished run (from its summary)."""
    return (f"done: test accuracy {100 * s['test_accuracy']:.2f} %, model size {s['model_size_bytes'] / 1e3:.2f} kB, "
            f"Bit-SynOps {s['bit_synops'] / 1e6:.3f} M, T = {s['T']}, bits per cell {s['bits_per_cell']}, "
            f"p = {s['prune_rate']:g} -> {s['model']} ({s['wall_seconds']} s)")
