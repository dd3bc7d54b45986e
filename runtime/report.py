"""The run report: one JSON file and one figure.

`write_json(report, path)` writes atomically; `plot(report, path)` draws (matplotlib Agg, imported
on call) per-population spike rates and per-group SynOps, measured vs predicted (log scale), and
`summary_lines(report)` is what `lsnn run` prints.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lsnn.io import write_json as write_json_file

REPORT_FORMAT = "lsnn.run_report"
REPORT_VERSION = 1


def write_json(report: dict, path: str | os.PathLike) -> Path:
    """Write the run report atomically (non-finite numbers become null)."""
    return write_json_file(path, report, indent=1, nan_as_none=True)


def plot(report: dict, path: str | os.PathLike) -> Path:
    """Two panels: spike rate per population; SynOps per synapse group, measured vs predicted."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = report["counts"]
    rates = counts["spike_rates"]
    groups = counts["groups"]
    names = list(rates)
    fig, axes = plt.subplots(2, 1, figsize=(max(7.0, 0.35 * max(len(names), len(groups)) + 3), 8.0))
    ax = axes[0]
    ax.bar(range(len(names)), [rates[n] for n in names], color="tab:blue")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("spikes / neuron / step")
    src = report.get("counts_source", "emulator")
    ax.set_title(f"spike rate per population ({src}, {counts['num_samples']} samples, T={counts['T']})")
    ax = axes[1]
    x = np.arange(len(groups))
    meas = [max(g["measured_synops"], 1e-3) for g in groups]
    pred = [max(g["predicted_synops"], 1e-3) for g in groups]
    ax.bar(x - 0.2, meas, width=0.4, label="measured", color="tab:green")
    ax.bar(x + 0.2, pred, width=0.4, label="predicted (Eq. 12, measured rates)", color="tab:gray")
    for i, g in enumerate(groups):
        if not g["in_search_model"]:
            ax.annotate("skip", (i, meas[i]), ha="center", va="bottom", fontsize=6)
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([g["name"] for g in groups], rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("SynOps per sample")
    tot = counts["totals"]
    ratio = tot.get("ratio")
    ax.set_title(f"SynOps per synapse group: measured {tot['measured_synops']:.4g} vs predicted "
                 f"{tot['predicted_synops']:.4g} (ratio {ratio:.3f})" if ratio is not None else "SynOps")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_lines(report: dict) -> list[str]:
    """Human summary printed by `lsnn run`."""
    out = []
    g = report["graph"]
    out.append(f"net {report['net']}: {g['populations']} populations, {g['synapse_groups']} synapse groups, "
               f"{g['neurons']} neurons, T={g['T']}, pipeline latency {g['latency']} steps")
    em = report.get("emulator")
    if em:
        out.append(f"emulator ({em.get('backend', 'numpy')}): {em['samples']} {report['dataset']}/{report['split']} "
                   f"samples, accuracy {em['accuracy']:.4f}, {em['wall_s']:.2f} s ({em['samples_per_s']:.1f} samples/s; "
                   f"start-up {em.get('startup_s', 0.0):.2f} s)")
    if report.get("lava_skipped"):
        out.append(f"lava: skipped, the emulator alone ran ({report['lava_skipped']})")
    lv = report.get("lava")
    if lv:
        line = (f"lava ({lv['backend']}): {lv['samples']} samples, accuracy {lv['accuracy']:.4f}, "
                f"{lv['wall_s']:.2f} s (start-up {lv['startup_s']:.2f} s, {1e3 * lv['per_step_s']:.1f} ms/step, "
                f"{lv['num_processes']} processes)")
        out.append(line)
        ag = lv.get("agreement")
        if ag:
            status = "bit-exact" if ag["spikes_identical"] and ag["readout_v_identical"] else \
                f"MISMATCH: {ag['first_difference']}"
            out.append(f"lava vs emulator on the same {lv['samples']} samples: predictions agree "
                       f"{ag['predictions']:.4f}, every layer's spikes at every step: {status}")
    tr = report.get("trained") or {}
    if tr.get("test_accuracy") is not None:
        out.append(f"trained model (from model.pt metrics): accuracy {tr['test_accuracy']:.4f}")
    c = report["counts"]["totals"]
    out.append(f"SynOps/sample: measured {c['measured_synops']:.4g} (search edges {c['measured_synops_search_edges']:.4g}"
               f", skips {c['measured_skip_synops']:.4g}) vs predicted {c['predicted_synops']:.4g} "
               f"(ratio {c['ratio']:.3f}); input events x fan-out {c['measured_input_events_synops']:.4g}")
    out.append(f"Bit-SynOps/sample: measured {c['measured_bit_synops']:.4g} vs predicted "
               f"{c['predicted_bit_synops']:.4g}; S-ACE {c['measured_s_ace']:.4g} (pred. {c['predicted_s_ace']:.4g}),"
               f" NS-ACE {c['ns_ace']:.4g}")
    e = report["counts"]["energy"]
    if "measured_pj" in e:
        out.append(f"energy/sample ({e['profile']}): {e['measured_pj'] / 1e3:.4g} nJ measured vs "
                   f"{e['predicted_pj'] / 1e3:.4g} nJ predicted; paper method {e['paper_measured_j'] * 1e9:.4g} nJ")
    return out
