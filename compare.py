"""Comparing finished runs (teacher.py, small.py, bert_distill.py): one markdown table and
one picture, from what the runs wrote (results.json, metrics.jsonl, their settings and
weights), plus CPU throughput from bench/inference.py's --json output when given.

Runs whose settings differ only in their seed are one model trained several times: the
table gives the mean, sample standard deviation and range over the seeds of the best
checkpoint's dev score and of the final evaluation's, and where each run stopped.
"""
from __future__ import annotations

import os
import statistics

import numpy as np

from args import settings_diff, with_defaults
from runs import Run, RunError, load_run, read_json
from utils import atomic_write, atomic_write_text

NETWORKS = {"bilstm": "BiLSTM", "cnn": "CNN"}


def model_type(r: Run) -> tuple[str, str | None]:
    """(script kind, student network): what a row is, whatever its other settings."""
    if r.kind == "teacher":
        return r.kind, None
    return r.kind, with_defaults("student", r.config.get("student", {}))["student"]


def run_name(r: Run) -> str:
    """A row's name: the kind of model (a student's network), and a teacher's backbone."""
    kind, network = model_type(r)
    if kind == "teacher":
        backbone = r.config["teacher"]["model_name_or_path"]
        return f"teacher ({os.path.basename(os.path.normpath(backbone))})"
    name = NETWORKS[network]
    return f"{name} (small.py)" if kind == "small" else f"distilled {name} (bert_distill.py)"


def group_runs(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """Runs grouped by model (in first-seen order; runs of one model differ only in seeds
    and runtime flags), each named by its kind plus, when two groups share a kind, the
    settings that tell them apart."""
    groups: list[list[Run]] = []
    for r in runs:
        home = next((g for g in groups if g[0].kind == r.kind and
                     not settings_diff(g[0].config, r.config, "model")), None)
        if home is None:
            groups.append([r])
        else:
            home.append(r)
    named = []
    for members in groups:
        name, first = run_name(members[0]), members[0]
        diffs = {}
        for other in groups:
            if other is not members and model_type(other[0]) == model_type(first):
                diffs.update(settings_diff(first.config, other[0].config, "model"))
        if diffs:
            name += " " + ", ".join(f"{n.split('.', 1)[1]}={diffs[n][0]}" for n in sorted(diffs))
        named.append((name, members))
    return named


def shared_metrics(runs: list[Run]) -> list[str]:
    """The metrics every run reports (pair tasks add F1 to accuracy; your own tasks
    macro-F1)."""
    return [m for m in ("acc", "macro_f1", "f1") if all(m in r.results["dev"] for r in runs)]


def final_dev(r: Run) -> dict:
    """The dev scores of a run's last evaluation (where it stopped)."""
    return r.results.get("last_dev") or (r.curve[-1] if r.curve else r.results["dev"])


def score(r: Run, metric: str, which: str) -> float:
    """The best checkpoint's dev score (`best`) or the last evaluation's (`final`)."""
    return (r.results["dev"] if which == "best" else final_dev(r))[metric]


def mean_score(runs: list[Run], metric: str, which: str) -> float:
    return statistics.mean(score(r, metric, which) for r in runs)


def format_spread(mean: float, sd: float, lo: float, hi: float) -> str:
    """mean ± sd (min–max), as every table prints a score over seeds."""
    return f"{mean:.4f} ± {sd:.4f} ({lo:.4f}–{hi:.4f})"


def spread(values: list[float]) -> str:
    """mean ± sample standard deviation (min–max); one value as it is."""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return format_spread(statistics.mean(values), statistics.stdev(values), min(values),
                         max(values))


def stopped_at(r: Run) -> str:
    """Epoch of the final evaluation, and whether early stopping ended the run there."""
    epoch = final_dev(r).get("epoch")
    text = "-" if epoch is None else f"{epoch:g}"
    return text + (" (early)" if r.results.get("stopped_early") else "")


SEEDS_NOTE = ("best: the dev score of the checkpoint kept (the best evaluation); final: the "
              "last evaluation. mean ± sample standard deviation (min–max) over seeds.")


def md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows]) + "\n"


def seeds_head(metrics: list[str]) -> list[str]:
    head = ["model", "seeds"]
    for m in metrics:
        head += [f"best dev {m}", f"final dev {m}"]
    return head + ["stopped at epoch", "parameters"]


def seeds_cells(name: str, rs: list[Run], metrics: list[str]) -> list[str]:
    """One model's row: its seeds, best and final dev score over them, where each stopped."""
    cells = [name, ", ".join(str(r.config.get("train", {}).get("seed", "-")) for r in rs)]
    for m in metrics:
        cells += [spread([score(r, m, which) for r in rs]) for which in ("best", "final")]
    return cells + [", ".join(stopped_at(r) for r in rs), f"{rs[0].results.get('num_params', 0):,}"]


def seeds_table(groups: list[tuple[str, list[Run]]], metrics: list[str]) -> str:
    return (md_table(seeds_head(metrics), [seeds_cells(name, rs, metrics) for name, rs in groups])
            + "\n" + SEEDS_NOTE + "\n")


def teacher_score(groups: list[tuple[str, list[Run]]], rs: list[Run], metric: str
                  ) -> float | None:
    """The teacher's dev score for distilled runs `rs`: the teacher run's best (mean over its
    runs), else the teacher as bert_distill.py saw it label the dev texts (an ensemble)."""
    teachers = [t for _, t in groups if t[0].kind == "teacher"]
    if len(teachers) == 1:
        return mean_score(teachers[0], metric, "best")
    seen = [(r.results.get("teacher_dev") or {}).get(metric) for r in rs]
    return None if None in seen else statistics.mean(seen)


def gap_closed(distilled: list[Run], base: list[Run], teacher: float) -> float:
    """(distilled - alone) / (teacher - alone) on mean best dev accuracy."""
    alone = mean_score(base, "acc", "best")
    return (mean_score(distilled, "acc", "best") - alone) / (teacher - alone)


def gains(groups: list[tuple[str, list[Run]]], metrics: list[str]) -> str:
    """Each distilled model's mean minus its baseline's (the one small.py model of the same
    network), best and final, in points; and the share of the baseline's gap to the teacher
    it closes on best dev accuracy, (distilled - alone) / (teacher - alone)."""
    out = []
    for name, rs in groups:
        base = [b for _, b in groups if model_type(b[0]) == ("small", model_type(rs[0])[1])]
        if rs[0].kind == "bert_distill" and len(base) == 1:
            out.append(gain_line(name, [
                (which, m, 100 * (mean_score(rs, m, which) - mean_score(base[0], m, which)))
                for m in metrics for which in ("best", "final")]))
            teacher = teacher_score(groups, rs, "acc")
            if teacher is not None and teacher != mean_score(base[0], "acc", "best"):
                out[-1] += (f"; closes {gap_closed(rs, base[0], teacher):.2f} of the gap to the "
                            f"teacher ({teacher:.4f}) on best dev acc")
    return "\n".join(out) + "\n" if out else ""


def ensemble_teacher(groups: list[tuple[str, list[Run]]], metrics: list[str]) -> str:
    """A line for a teacher with no run in the report (several teachers, student runs): its
    dev scores as bert_distill.py measured them while labelling."""
    if any(rs[0].kind == "teacher" for _, rs in groups):
        return ""
    for _, rs in groups:
        dev = rs[0].results.get("teacher_dev")
        if rs[0].kind == "bert_distill" and dev:
            paths = rs[0].results.get("teacher_path") or []
            return (f"Teacher: {len(paths)} model{'s' * (len(paths) > 1)} (--teacher_path"
                    f"{', mean logits' if len(paths) > 1 else ''}), on the dev texts as it "
                    f"labels the transfer set: " + ", ".join(
                        f"{m} {dev[m]:.4f}" for m in metrics if m in dev) + "\n")
    return ""


def gain_line(name: str, points: list[tuple[str, str, float]]) -> str:
    """One model's gains over its baseline, each (best or final, metric, points)."""
    return (f"- {name} minus the baseline (points of mean dev score): "
            + ", ".join(f"{which} {m} {p:+.2f}" for which, m, p in points))


def speed_by_source(inference: dict | None) -> dict[str, dict]:
    """Per run directory measured by bench/inference.py: its fastest batch-32 throughput
    (and on which path), and its best batch-1 p50 latency; fp32 paths only, as the dev
    scores beside them are the fp32 model's."""
    out: dict[str, dict] = {}
    for row in (inference or {}).get("rows", []):
        src = row.get("source")
        if not src or "int8" in row["path"]:
            continue
        procs = row.get("ex_per_s_processes") or 0.0
        speed, path = max((row["ex_per_s"]["32"], row["path"]),
                          (procs, f"{row['path']}, {inference.get('processes', 'several')} processes"))
        best = out.setdefault(src, {"ex_per_s": 0.0, "path": "", "p50_ms": float("inf")})
        if speed > best["ex_per_s"]:
            best["ex_per_s"], best["path"] = speed, path
        best["p50_ms"] = min(best["p50_ms"], row["p50_ms"])
    return out


def markdown_table(runs: list[Run], inference: dict | None,
                   names: list[str] | None = None) -> str:
    metrics = shared_metrics(runs)
    speed = speed_by_source(inference)
    head = ["model", *[f"dev {m}" for m in metrics], "parameters", "MB on disk"]
    if speed:
        head += ["CPU ex/s (batch 32)", "batch-1 p50 ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r, name in zip(runs, names or map(run_name, runs)):
        cells = [name, *[f"{r.results['dev'][m]:.4f}" for m in metrics],
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


def pooled_confusion(rs: list[Run]) -> np.ndarray | None:
    """A model's dev confusion matrix [gold][predicted] at its best checkpoints, summed over
    its runs (seeds); None for runs that predate it."""
    mats = [r.results.get("dev_confusion") for r in rs]
    return None if any(m is None for m in mats) else np.sum(mats, axis=0)


def per_class(groups: list[tuple[str, list[Run]]], labels: list[str]) -> str:
    """Per-class precision, recall and F1 of the students (pooled over seeds), and the
    confusion matrix of the baseline and the distilled student."""
    md = ""
    for name, rs in groups:
        conf = pooled_confusion(rs)
        if conf is None or rs[0].kind == "teacher":
            continue
        rows = []
        for c, label in enumerate(labels):
            tp, pred, gold = conf[c, c], conf[:, c].sum(), conf[c].sum()
            p, r = tp / max(1, pred), tp / max(1, gold)
            rows.append([label, f"{p:.3f}", f"{r:.3f}", f"{2 * p * r / (p + r) if tp else 0:.3f}",
                         str(gold)])
        md += (f"\n**{name}**: per class ({len(rs)} run{'s' * (len(rs) > 1)} pooled)\n\n"
               + md_table(["class", "precision", "recall", "F1", "dev examples"], rows)
               + "\nconfusion (rows: gold, columns: predicted)\n\n"
               + md_table(["gold \\ predicted", *labels],
                          [[labels[i], *map(str, row)] for i, row in enumerate(conf)]))
    return md


def plot(groups: list[tuple[str, list[Run]]], path: str, title: str,
         labels: list[str] | None = None) -> None:
    """Left: dev score of each model (mean of its seeds' best checkpoints, bars at min and
    max). Right: dev score per epoch of every run, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = "acc"
    by_kind = {"teacher": "#4c72b0", "small": "#dd8452", "bert_distill": "#55a868"}
    kinds = [rs[0].kind for _, rs in groups]
    palette = plt.get_cmap("tab10").colors
    colors = [by_kind[k] if kinds.count(k) == 1 else palette[i % 10] for i, k in enumerate(kinds)]
    # with the labels, the confusion matrices of the baseline and the distilled student too
    students = [(name, pooled_confusion(rs)) for name, rs in groups if rs[0].kind != "teacher"]
    students = [(n, c) for n, c in students if c is not None][:2] if labels else []
    fig, axes = plt.subplots(1, 2 + len(students), figsize=(11 + 4 * len(students), 4.2),
                             gridspec_kw={"width_ratios": [1, 1.4] + [1] * len(students)})
    ax1, ax2 = axes[:2]
    for ax, (name, conf) in zip(axes[2:], students):
        share = conf / np.maximum(1, conf.sum(axis=1, keepdims=True))
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(f"{name}\n(share of each gold class)", fontsize=9)
    names = [f"{name}\n{rs[0].results.get('num_params', 0) / 1e6:.1f}M params, "
             f"{len(rs)} run{'s' * (len(rs) > 1)}" for name, rs in groups]
    best = [[score(r, metric, "best") for r in rs] for _, rs in groups]
    means = [statistics.mean(b) for b in best]
    err = [[m - min(b) for m, b in zip(means, best)], [max(b) - m for m, b in zip(means, best)]]
    bars = ax1.barh(range(len(groups)), means, xerr=err, color=colors, capsize=3)
    ax1.set_yticks(range(len(groups)), names, fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlim(max(0.0, min(map(min, best)) - 0.1), min(1.0, max(map(max, best)) + 0.05))
    for bar, m, b in zip(bars, means, best):
        ax1.text(max(b) + 0.004, bar.get_y() + bar.get_height() / 2, f"{m:.3f}", va="center",
                 fontsize=9)
    ax1.set_xlabel(f"dev {metric} (best checkpoint; mean, min-max over runs)")
    ax1.set_title("dev accuracy per model")
    for (name, rs), color in zip(groups, colors):
        for i, r in enumerate(rs):
            if r.curve:
                ax2.plot([c["epoch"] for c in r.curve], [c[metric] for c in r.curve],
                         marker=".", color=color, alpha=0.8, label=name if i == 0 else None)
    ax2.set_xlabel("epoch (of each run's own training set)")
    ax2.set_ylabel(f"dev {metric}")
    ax2.set_title("learning curves (one line per run)")
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
    groups = group_runs(runs)
    n_seeds = max(len(rs) for _, rs in groups)
    metrics = shared_metrics(runs)
    teacher_and_gains = ensemble_teacher(groups, metrics) + gains(groups, metrics)
    if n_seeds == 1:
        md = (f"### {task}: dev scores, size and speed\n\n" + markdown_table(runs, inference)
              + "\n" + teacher_and_gains)
    else:
        md = (f"### {task}: dev scores over {n_seeds} seeds\n\n" + seeds_table(groups, metrics)
              + "\n" + teacher_and_gains + f"\n### {task}: size and speed (first run of "
              f"each model)\n\n" + markdown_table([rs[0] for _, rs in groups], inference,
                                           [name for name, _ in groups]))
    labels = next((r.results["labels"] for r in runs if r.results.get("labels")), None)
    if labels and len(labels) > 2:  # more than two classes: how each class fares
        md += f"\n### {task}: per class, best checkpoints\n" + per_class(groups, labels)
    os.makedirs(out, exist_ok=True)
    plot(groups, os.path.join(out, "report.png"), f"{task}: teacher, students alone and "
                                                   f"distilled", labels if labels and
                                                   len(labels) > 2 else None)
    md += f"\n![{task} report](report.png)\n"
    atomic_write_text(os.path.join(out, "report.md"), md)
    return md
