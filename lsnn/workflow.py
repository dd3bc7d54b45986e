"""The whole pipeline, search -> compile -> run -> agreement: the only module that imports every
stage. After retraining it compiles model.pt for a target, runs it (emulator + Lava), and
checks that the chip-exact emulator predicts what the retrained PyTorch model predicts
(docs/DESIGN.md section 3, check (b)). This is what makes the default `lsnn search` show the
whole pipeline on the embedded data.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lsnn.errors import LsnnError
from lsnn.io import write_json

Echo = Callable[[str], None]


def torch_predictions(net: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """argmax of the time-averaged logits of the retrained network (eval mode) for inputs x in [0, 1]."""
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.ascontiguousarray(x[i:i + batch_size]), dtype=torch.float32)
            out.append(net(xb).argmax(-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def torch_vs_emulator(graph: Any, net: Any, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Predictions of the retrained PyTorch model vs the chip-exact emulator on the compiled
    `graph`, for inputs x in [0, 1] with labels y: agreement and both accuracies."""
    from lsnn.runtime.emulator import Emulator
    from lsnn.runtime.netgraph import encode_input

    em = Emulator(graph).run(encode_input(graph, x))
    pt = torch_predictions(net, x)
    return {"samples": int(len(y)), "prediction_agreement": float(np.mean(em.predictions == pt)),
            "torch_accuracy": float(np.mean(pt == y)), "emulator_accuracy": float(np.mean(em.predictions == y)),
            "differing_samples": int(np.sum(em.predictions != pt))}


def deploy_and_check(model_path: Path, net: Any, test: tuple[np.ndarray, np.ndarray], target: str | None,
                     data_dir: str | None, lava_samples: int, echo: Echo,
                     profile: str | None = None) -> dict[str, Any]:
    """Compile to model.net for `target` (or the profile YAML `profile`), run `lsnn run --sim`'s
    library path, and measure the prediction agreement between the PyTorch model and the
    emulator on the whole test split."""
    from lsnn.compiler.pipeline import compile_artifact
    from lsnn.compiler.report import format_table
    from lsnn.hw_profiles.profile import load_profile
    from lsnn.runtime import report as rep
    from lsnn.runtime.runner import RunOptions, run_model

    net_path = model_path.with_suffix(".net")
    prof = load_profile(path=profile) if profile else load_profile(target=target or "loihi2")
    result = compile_artifact(model_path, prof, out=net_path)
    echo(format_table(result.report))
    echo(f"compile: wrote {result.net_path} and {result.report_path}")

    # `lsnn run` first: it starts Lava (forked processes) before the emulator's thread pools exist
    report = run_model(RunOptions(net=str(net_path), data_dir=data_dir, samples=lava_samples,
                                  target=None if profile else target, profile=profile, progress=True))
    x, y = test
    agreement = torch_vs_emulator(result.graph, net, x, y)
    echo(f"deploy check: PyTorch vs chip-exact emulator on {len(y)} test samples: predictions agree "
         f"{100 * agreement['prediction_agreement']:.2f} % (accuracy {100 * agreement['torch_accuracy']:.2f} % "
         f"vs {100 * agreement['emulator_accuracy']:.2f} %)")

    report["torch_vs_emulator"] = agreement
    run_json = rep.write_json(report, model_path.with_suffix(".run.json"))
    fig = rep.plot(report, model_path.with_suffix(".run.png"))
    for line in rep.summary_lines(report):
        echo(line)
    echo(f"run: wrote {run_json} and {fig}")
    lv = report.get("lava") or {}
    ag = lv.get("agreement") or {}
    return {"net": str(net_path), "target": profile or target, "cores": result.report.get("totals", {}).get("cores"),
            "torch_vs_emulator": agreement,
            "lava_bit_exact": bool(ag.get("spikes_identical")) and bool(ag.get("readout_v_identical")) if ag else None,
            "lava_samples": lv.get("samples"),
            "counts_per_sample": report.get("counts", {}).get("totals")}


def search_and_deploy(cfg: Any, resume: bool = False, echo: Echo = print) -> Any:
    """`lsnn search`: the searcher's run (search, decode, retrain, model.pt), then, when the run
    config names a target or profile, compile + run + agreement (`deploy_and_check`), recorded
    under "deploy" in summary.json. A target that refuses the model is an LsnnError after
    model.pt and summary.json were written."""
    from lsnn.searcher.pipeline import run_pipeline

    result = run_pipeline(cfg, resume=resume, echo=echo)
    if result.model_path is None or not (cfg.deploy_target or cfg.deploy_profile):
        return result
    summary, summary_path = result.summary, result.out_dir / "summary.json"
    try:
        summary["deploy"] = deploy_and_check(result.model_path, result.net, result.test, cfg.deploy_target,
                                             cfg.data_dir, cfg.lava_samples, echo, profile=cfg.deploy_profile)
    except LsnnError as exc:  # model.pt stands; say why the target refused it, exit non-zero
        summary["deploy"] = {"target": cfg.deploy_profile or cfg.deploy_target, "error": str(exc)}
        write_json(summary_path, summary)
        raise LsnnError(f"{result.model_path} was written, but deploying it failed: {exc}") from None
    summary["wall_seconds"] = round(time.time() - result.started, 1)
    write_json(summary_path, summary)
    return result
