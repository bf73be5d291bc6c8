"""Comparing finished runs (teacher.py, small.py, bert_distill.py): one markdown table and
one picture, from what the runs wrote (results.json, metrics.jsonl, their settings and
weights), plus CPU throughput from bench/inference.py's --json output when given.
"""
from __future__ import annotations

import os

from runs import Run, RunError, load_run, read_json
from utils import atomic_write, atomic_write_text

KINDS = {"teacher": "BERT teacher", "small": "BiLSTM (small.py)",
         "bert_distill": "distilled BiLSTM (bert_distill.py)"}


def run_name(r: Run) -> str:
    """A row's name: the kind of model, and a teacher's backbone."""
    if r.kind == "teacher":
        backbone = r.config["teacher"]["model_name_or_path"]
        return f"teacher ({os.path.basename(os.path.normpath(backbone))})"
    return KINDS[r.kind]


def speed_by_source(inference: dict | None) -> dict[str, dict]:
    """Per run directory measured by bench/inference.py: its fastest batch-32 throughput
    (and on which path), and its best batch-1 p50 latency."""
    out: dict[str, dict] = {}
    for row in (inference or {}).get("rows", []):
        src = row.get("source")
        if not src:
            continue
        procs = row.get("ex_per_s_processes") or 0.0
        speed, path = max((row["ex_per_s"]["32"], row["path"]),
                          (procs, f"{row['path']}, {inference.get('processes', 'several')} processes"))
        best = out.setdefault(src, {"ex_per_s": 0.0, "path": "", "p50_ms": float("inf")})
        if speed > best["ex_per_s"]:
            best["ex_per_s"], best["path"] = speed, path
        best["p50_ms"] = min(best["p50_ms"], row["p50_ms"])
    return out


def markdown_table(runs: list[Run], inference: dict | None) -> str:
    metrics = [m for m in ("acc", "f1") if all(m in r.results["dev"] for r in runs)]
    speed = speed_by_source(inference)
    head = ["model", *[f"dev {m}" for m in metrics], "parameters", "MB on disk"]
    if speed:
        head += ["CPU ex/s (batch 32)", "batch-1 p50 ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        cells = [run_name(r), *[f"{r.results['dev'][m]:.4f}" for m in metrics],
                 f"{r.results.get('num_params', 0):,}",
                 f"{r.size_mb:.1f}" if r.size_mb is not None else "-"]
        if speed:
            row = speed.get(os.path.abspath(r.path))
            cells += [f"{row['ex_per_s']:,.0f} ({row['path']})", f"{row['p50_ms']:.2f}"] \
                if row else ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    if inference:
        lines.append("")
        lines.append(f"Throughput: {inference.get('setting', 'bench/inference.py')}; each "
                     f"model on its fastest path.")
    return "\n".join(lines) + "\n"


def plot(runs: list[Run], path: str, title: str) -> None:
    """Left: dev score of each model. Right: dev score per epoch of each run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = "acc"
    colors = {"teacher": "#4c72b0", "small": "#dd8452", "bert_distill": "#55a868"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2),
                                   gridspec_kw={"width_ratios": [1, 1.4]})
    names = [f"{run_name(r)}\n{r.results.get('num_params', 0) / 1e6:.1f}M params" for r in runs]
    scores = [r.results["dev"][metric] for r in runs]
    bars = ax1.barh(range(len(runs)), scores, color=[colors[r.kind] for r in runs])
    ax1.set_yticks(range(len(runs)), names, fontsize=8)
    ax1.invert_yaxis()
    low = min(scores)
    ax1.set_xlim(max(0.0, low - 0.1), min(1.0, max(scores) + 0.04))
    for b, s in zip(bars, scores):
        ax1.text(s + 0.003, b.get_y() + b.get_height() / 2, f"{s:.3f}", va="center", fontsize=9)
    ax1.set_xlabel(f"dev {metric} (best checkpoint)")
    ax1.set_title("dev accuracy per model")
    for r in runs:
        if r.curve:
            ax2.plot([c["epoch"] for c in r.curve], [c[metric] for c in r.curve], marker=".",
                     color=colors[r.kind], label=run_name(r))
    ax2.set_xlabel("epoch (of each run's own training set)")
    ax2.set_ylabel(f"dev {metric}")
    ax2.set_title("learning curves")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3,
               frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def report(run_dirs: list[str], out: str, inference_path: str | None = None) -> str:
    """Writes out/report.md and out/report.png; returns the markdown."""
    runs = [load_run(p) for p in run_dirs]
    tasks = {r.results.get("task") for r in runs}
    if len(tasks) != 1:
        raise RunError(f"runs of different tasks: {sorted(map(str, tasks))}")
    inference = None
    if inference_path:
        if not os.path.isfile(inference_path):
            raise RunError(f"--inference {inference_path}: file not found")
        inference = read_json(inference_path)
    task = tasks.pop()
    md = f"### {task}: dev scores, size and speed\n\n" + markdown_table(runs, inference)
    os.makedirs(out, exist_ok=True)
    plot(runs, os.path.join(out, "report.png"), f"{task}: teacher, BiLSTM baseline and "
                                                 f"distilled BiLSTM")
    md += f"\n![{task} report](report.png)\n"
    atomic_write_text(os.path.join(out, "report.md"), md)
    return md
