"""Published figures, written from committed run summaries so that no number in README.md or
docs/*.md is typed by hand and none can drift from its run or from another page.

    python published.py                          # rewrite every generated table and figure
    python published.py --check                  # exit 1 naming each file and block that differs
    python published.py add RUN_DIR EXPERIMENT   # summarise a finished run into results/

Evidence: one small JSON summary per published run under results/<experiment>/<run>.json
(its results.json minus bulky fields, the command, the machine line of its train.log, the
commit, the wall time; never checkpoints). Runs whose own files were not kept are transcribed
from the docs that first published them and say so in "source"; where those docs gave only an
aggregate (mean ± sd, a range), the summary holds that aggregate ("aggregate_only") and the
pages print it as it is.

Pages: a table or transcript sits between `<!-- generated: NAME -->` and `<!-- /generated -->`,
a number in prose between `<!-- g:NAME -->` and `<!-- /g -->` (both invisible once rendered);
NAME is a key of BLOCKS or FIGURES below, each a function of the summaries. Ratios printed in
one sentence are taken from one benchmark summary.
"""
from __future__ import annotations

import argparse
import functools
import glob
import json
import math
import os
import re
import shlex
import statistics
import subprocess
from typing import Callable, Sequence

from compare import (SEEDS_NOTE, final_dev, format_spread, gain_line, gains, gap_closed,
                     markdown_table, md_table, mean_score, run_name, score, seeds_cells,
                     seeds_head, seeds_table, spread)
from runs import CONFIG, METRICS, MODEL_STATE, RESULTS, Run, read_json, run_settings
from utils import UserError, atomic_write_text, read_jsonl, run_cli

ROOT = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(ROOT, "results")
BLOCK = re.compile(r"<!-- generated: ([\w.-]+) -->\n(.*?)<!-- /generated -->", re.S)
FIGURE = re.compile(r"<!-- g:([\w.-]+) -->(.*?)<!-- /g -->")
# A results.json value whose JSON is longer than this (per-example lists) stays out of a summary.
BULKY_CHARS = 2000


class PublishedError(UserError):
    """A summary that contradicts itself or a page that differs from what the summaries give."""


# ------------------------------------------------------------------------ the summaries


def exact_accuracy(v: float, n: int, where: str) -> float:
    """The accuracy a transcribed 4-decimal figure was rounded from: a count over n dev
    examples, unique while 1/n > 0.0001, so gains and means come out as the runs had them."""
    k = round(v * n)
    if abs(k / n - v) > 5e-5 + 1e-12:
        raise PublishedError(f"{where}: accuracy {v} is no count over {n} dev examples")
    return k / n


class Store:
    """The summaries under one results/ folder, each read once."""

    def __init__(self, root: str = RESULTS_DIR):
        self.root = os.path.abspath(root)
        self._cache: dict[str, dict] = {}

    def path(self, name: str) -> str:
        return os.path.join(self.root, name + ".json")

    def __getitem__(self, name: str) -> dict:
        if name not in self._cache:
            if not os.path.isfile(self.path(name)):
                raise PublishedError(f"results/{name}.json: no such summary")
            self._cache[name] = read_json(self.path(name))
        return self._cache[name]

    def names(self, prefix: str) -> list[str]:
        paths = glob.glob(os.path.join(self.root, glob.escape(prefix) + "*.json"))
        return sorted(os.path.relpath(p, self.root)[:-5].replace(os.sep, "/") for p in paths)

    def run(self, name: str) -> Run:
        """A summary as compare.py's Run, accuracies of transcribed runs made exact."""
        s = self[name]
        results = json.loads(json.dumps(s["results"]))
        curve = json.loads(json.dumps(s.get("curve", [])))
        n = results.get("dev_examples")
        if s.get("transcribed") and n:
            for rec in [results.get("dev"), results.get("last_dev"), *curve]:
                if rec and "acc" in rec:
                    rec["acc"] = exact_accuracy(rec["acc"], n, f"results/{name}.json")
        if s.get("transcribed") and curve:  # typed in once: it must say one thing
            accs = [c["acc"] for c in curve]
            best = accs.index(max(accs))  # the first best: a tie does not improve
            if (results["dev"]["acc"], results.get("best_epoch", best + 1),
                    results.get("last_dev", {}).get("acc", accs[-1])) != (accs[best], best + 1,
                                                                           accs[-1]):
                raise PublishedError(f"results/{name}.json: dev, best_epoch or last_dev is not "
                                     f"what its curve says")
        return Run(self.path(name), s["script"], results, s.get("config", {}), curve,
                   s.get("size_mb"))

    def runs(self, prefix: str) -> list[Run]:
        """The runs named prefix*, by seed."""
        runs = [self.run(n) for n in self.names(prefix)]
        if not runs:
            raise PublishedError(f"results/{prefix}*.json: no such summaries")
        return sorted(runs, key=lambda r: r.config.get("train", {}).get("seed", 0))


# ------------------------------------------------------------------------ numbers and text


def seed_scores(runs: list[Run], which: str = "best", metric: str = "acc") -> list[float]:
    return [score(r, metric, which) for r in runs]


def gain(runs: list[Run], base: list[Run], which: str = "best", metric: str = "acc") -> float:
    """Points of mean dev score a model gains over its baseline."""
    return 100 * (mean_score(runs, metric, which) - mean_score(base, metric, which))


def paired(runs: list[Run], base: list[Run], which: str = "best") -> list[float]:
    """Points gained seed by seed (the runs and baselines sorted by seed)."""
    return [100 * (a - b) for a, b in zip(seed_scores(runs, which), seed_scores(base, which))]


def signed(points: list[float] | float, digits: int = 2, sep: str = ", ") -> str:
    points = points if isinstance(points, list) else [points]
    return sep.join(f"{p:+.{digits}f}" for p in points)


def bold_mean(text: str) -> str:
    """**mean ± sd** (min–max): a table's winner, its range left plain."""
    head, _, tail = text.partition(" (")
    return f"**{head}** ({tail}" if tail else f"**{head}**"


def mean_sd(values: list[float], digits: int = 4) -> str:
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def duration(seconds: float) -> str:
    """19 min 31 s; under a minute, 29 s."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


def hours_minutes(minutes: float) -> str:
    h, m = divmod(int(round(minutes)), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def lr(value: float) -> str:
    """A learning rate as flags spell it: 1e-4."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def span(lo: float, hi: float, fmt: str = "{:g}") -> str:
    """A range as the pages print it: 11.2-11.8, 3,400-4,500."""
    return f"{fmt.format(lo)}-{fmt.format(hi)}"


def times(x: float, digits: int = 0) -> str:
    """A ratio: 54x, 2,113x, 5.2x."""
    return f"{x:,.{digits}f}x"


def first_stop(curve: list[dict], patience: int) -> int:
    """The epoch a run with this per-epoch curve ends at under early stopping."""
    best, stale = -1.0, 0
    for c in curve:
        if c["acc"] > best:
            best, stale = c["acc"], 0
        else:
            stale += 1
            if stale >= patience:
                return c["epoch"]
    return curve[-1]["epoch"]


def agg_values(a: dict, which: str, metric: str = "acc") -> list[float] | None:
    return a.get("per_seed", {}).get(which, {}).get(metric)


def agg_text(a: dict, which: str, metric: str = "acc", short: bool = False) -> str:
    """An aggregate's score over seeds as the tables print it (short: mean ± sd only); from
    its per-seed values where the summary has them, which must agree with the aggregate."""
    if which not in a or metric not in a[which]:
        return "-"
    g = a[which][metric]
    if "sd" not in g:
        return f"{g['mean']:.4f}"
    stored = format_spread(g["mean"], g["sd"], g["min"], g["max"])
    values = agg_values(a, which, metric)
    if values and spread(values) != stored:
        raise PublishedError(f"{a['model']}: per-seed {which} {metric} give {spread(values)}, "
                             f"the aggregate says {stored}")
    return f"{g['mean']:.4f} ± {g['sd']:.4f}" if short else stored


def agg_mean(a: dict, which: str = "best", metric: str = "acc") -> float:
    values = agg_values(a, which, metric)
    return statistics.mean(values) if values else a[which][metric]["mean"]


def agg_gain(s: Store, name: str, which: str = "best", metric: str = "acc") -> float:
    """An aggregate's gain over its baseline as its source gave it; the means it can be
    checked against are rounded, so it must agree with them within 0.011 points."""
    a = s[name]
    base = a["baseline"]  # an aggregate's summary, or the name prefix of per-seed runs
    ref = (agg_mean(s[base], which, metric) if os.path.isfile(s.path(base))
           else mean_score(s.runs(base), metric, which))
    computed = 100 * (agg_mean(a, which, metric) - ref)
    stored = a.get("gain_points", {}).get(which, {}).get(metric)
    if stored is None:
        return computed
    if abs(stored - computed) > 0.011:
        raise PublishedError(f"results/{name}.json: gain {stored:+.2f} but the means give "
                             f"{computed:+.2f}")
    return stored


def bench_fastest(b: dict, model: str) -> float:
    """A model's best batch-32 throughput in one benchmark: as printed, else from its rows."""
    if model in b.get("fastest", {}):
        return b["fastest"][model]["ex_per_s"]
    return max(max(r.get("ex_per_s", {}).get("32") or 0, r.get("ex_per_s_processes") or 0)
               for r in b["rows"] if r["model"] == model)


def bench_speedup(b: dict, model: str, other: str) -> float:
    """How many times faster `model` runs than `other` in one benchmark run. A transcribed
    benchmark's printed ratio (from its unrounded speeds) is used, checked against its rows."""
    computed = bench_fastest(b, model) / bench_fastest(b, other)
    printed = b.get("speedups", {}).get(model, {}).get(other)
    if printed is None:
        return computed
    if abs(printed / computed - 1) > 0.03:
        raise PublishedError(f"{b['command']}: printed {printed}x for {model} over {other}, "
                             f"the rows give {computed:.1f}x")
    return printed


def bench_row(b: dict, model: str, path: str) -> dict:
    return next(r for r in b["rows"] if r["model"] == model and r["path"] == path)


def bench_p50(b: dict, model: str) -> float:
    if model in b.get("fastest", {}) and "p50_ms" in b["fastest"][model]:
        return b["fastest"][model]["p50_ms"]
    return min(r["p50_ms"] for r in b["rows"] if r["model"] == model and r.get("p50_ms"))


def int8_over_fp32(b: dict, model: str) -> tuple[float, float]:
    """(times faster, points of dev accuracy) of a student's int8 ONNX graph over fp32."""
    fp32, int8 = bench_row(b, model, "onnxruntime"), bench_row(b, model, "onnxruntime int8")
    best = [max(r["ex_per_s"]["32"], r.get("ex_per_s_processes") or 0) for r in (fp32, int8)]
    return best[1] / best[0], 100 * (int8["dev_acc"] - fp32["dev_acc"])


def check_bench(s: Store, name: str) -> dict:
    """A benchmark summary whose rows' dev accuracy is that of the runs they name."""
    b = s[name]
    for r in b["rows"]:  # an int8 graph scores on its own
        if r.get("run") and r.get("dev_acc") is not None and "int8" not in r["path"]:
            if abs(s[r["run"]]["results"]["dev"]["acc"] - r["dev_acc"]) > 1e-9:
                raise PublishedError(f"results/{name}.json: {r['model']} {r['path']} dev acc "
                                     f"{r['dev_acc']} is not results/{r['run']}.json's")
    return b


def transcript(stdout: str) -> str:
    return "```\n" + stdout + ("" if stdout.endswith("\n") else "\n") + "```\n"


# ------------------------------------------------------------------------ SST-2 tables

SST2 = "sst2-cpu"


def sst2(s: Store) -> dict[str, list[Run]]:
    """The SST-2 runs by role; "old": the pipeline's own distillations, with the code before."""
    return {"teacher": [s.run(f"{SST2}/teacher")], "base": s.runs(f"{SST2}/baseline-seed"),
            "distill": s.runs(f"{SST2}/distill-seed"),
            "old": s.runs(f"{SST2}/pipeline-distill-seed"),
            "cnn_base": s.runs("sst2-cnn/baseline-seed"), "cnn": s.runs("sst2-cnn/distill-seed")}


def named(groups: list[list[Run]]) -> list[tuple[str, list[Run]]]:
    return [(run_name(rs[0]), rs) for rs in groups]


def readme_sst2_table(s: Store) -> str:
    g = sst2(s)

    def cells(label: str, rs: list[Run], bold: bool = False) -> list[str]:
        out = [label]
        for which in ("best", "final"):
            text = spread(seed_scores(rs, which))
            out.append(bold_mean(text) if bold else text)
        epochs = sorted({final_dev(r)["epoch"] for r in rs})
        return out + [span(epochs[0], epochs[-1]) if len(epochs) > 1 else f"{epochs[0]:g}"]

    return md_table(["model", "best dev acc", "final dev acc", "epochs"], [
        cells("teacher, MiniLM-L6 (one run)", g["teacher"]),
        cells("BiLSTM alone (`small.py`)", g["base"]),
        cells("distilled BiLSTM (`bert_distill.py`)", g["distill"], bold=True),
        cells("CNN alone (`small.py --student cnn`)", g["cnn_base"]),
        cells("distilled CNN (`--student cnn`)", g["cnn"], bold=True)])


def sst2_table(s: Store) -> str:
    g = named([sst2(s)[k] for k in ("teacher", "base", "distill")])
    return seeds_table(g, ["acc"]) + "\n" + gains(g, ["acc"])


def cnn_table(s: Store) -> str:
    g = named([sst2(s)[k] for k in ("teacher", "base", "distill", "cnn_base", "cnn")])
    return seeds_table(g, ["acc"]) + "\n" + gains(g, ["acc"])


def inference_for(s: Store, name: str) -> dict:
    """A benchmark summary as bench/inference.py's --json output, rows pointing at the summary
    files of the runs they measured (what compare.markdown_table matches them by)."""
    b = check_bench(s, name)
    rows = [{**r, "source": s.path(r["run"]) if r.get("run") else None} for r in b["rows"]]
    return {"setting": b["setting"], "processes": b["processes"], "rows": rows}


def sst2_speed_table(s: Store) -> str:
    runs = [s.run(f"{SST2}/teacher"), s.run(f"{SST2}/baseline-seed1"),
            s.run(f"{SST2}/pipeline-distill-seed1")]
    return markdown_table(runs, inference_for(s, f"{SST2}/bench-inference"))


def marked_curve(r: Run) -> list[str]:
    """Each evaluation's dev accuracy, the kept checkpoint's (the first best) in bold."""
    accs = [c["acc"] for c in r.curve]
    best = accs.index(max(accs))
    return [f"**{a:.4f}**" if i == best else f"{a:.4f}" for i, a in enumerate(accs)]


def epochs_table(pairs: list[tuple[str, list[Run]]]) -> str:
    """Dev accuracy at every epoch, seed by seed, the kept checkpoint in bold."""
    head = ["seed"] + [f"{label}, epochs 1-{max(len(r.curve) for r in rs)}" for label, rs in pairs]
    rows = []
    for i, seed in enumerate(r.config["train"]["seed"] for r in pairs[0][1]):
        cells = [str(seed)]
        for _, rs in pairs:
            r = rs[i]
            cells.append(" ".join(marked_curve(r))
                         + (" (stopped)" if r.results.get("stopped_early") else ""))
        rows.append(cells)
    return md_table(head, rows)


def sst2_stages(s: Store) -> str:
    stages = {st["stage"]: st for st in s[f"{SST2}/experiment"]["stages"]}
    alone = s["sst2-teacher-amp/fp32"]["wall_seconds"]
    t, b, d1 = stages["teacher"], stages["baseline, per seed"], stages["distill, seed 1"]
    d23, rest = stages["distill, seeds 2 and 3"], stages["export, bench, submission, report"]
    examples = s[f"{SST2}/experiment"]["transfer_set"]["examples"]
    return md_table(["stage", "command (run by `pipeline.py`)", "wall time"], [
        ["teacher", t["command"], f"{duration(t['seconds'])} ({t['note']}; alone "
                                  f"{duration(alone)})"],
        ["baseline, per seed", b["command"], " - ".join(map(duration, b["seconds_range"]))],
        ["distill, seed 1", d1["command"],
         f"{duration(d1['seconds'])}: transfer set {d1['transfer_set_seconds']} s "
         f"({examples:,} examples), labelling {d1['labelling_minutes']} min "
         f"({d1['labelling_ex_per_s']} ex/s), training {duration(d1['training_seconds'])} "
         f"({d1['training_ex_per_s']:,} ex/s)"],
        ["distill, seeds 2 and 3", d23["command"],
         ", ".join(map(duration, d23["seconds_each"])) + " (training " + " and ".join(
             f"{x:,}" for x in d23["training_ex_per_s_each"]) + " ex/s)"],
        ["export, bench, submission, report", rest["command"],
         f"{duration(rest['seconds'])} ({rest['note']}); export, submission, report "
         f"{duration(rest['without_bench_seconds'])}"]])


def aggregate_cells(a: dict, metrics: list[str]) -> list[str]:
    """An aggregate-only model's row of a seeds table, printed as its summary gives it."""
    cells = [a["model"], ", ".join(map(str, a["seeds"]))]
    for m in metrics:
        cells += [agg_text(a, which, m) for which in ("best", "final")]
    return cells + [a["stopped_at"], f"{a['num_params']:,}"]


def ablation_table(s: Store) -> str:
    names = [f"sst2-ablation/{n}" for n in ("unigram-unk", "unigram-mask", "uniform-unk")]
    base = s.runs(f"{SST2}/baseline-seed")
    rows = [aggregate_cells(s[n], ["acc"]) for n in names] + \
        [seeds_cells(named([base])[0][0], base, ["acc"])]
    lines = [gain_line(s[n]["model"], [(w, "acc", agg_gain(s, n, w)) for w in ("best", "final")])
             for n in names]
    return (md_table(seeds_head(["acc"]), rows) + "\n" + SEEDS_NOTE + "\n\n"
            + "\n".join(lines) + "\n")


def transfer_file_table(s: Store) -> str:
    tf = "sst2-transfer-file"
    rows = []
    for n, bold in (("baseline", False), ("distill-gold", False), ("distill-unlabeled", True)):
        a = s[f"{tf}/{n}"]
        cells = [agg_text(a, w) for w in ("best", "final")]
        if bold:
            cells = [bold_mean(c) for c in cells]
        ex = a.get("transfer_examples")
        rows.append([a["model"], f"{ex:,}" if ex else "-", *cells])
    return md_table(["model", "transfer examples", "best dev acc", "final dev acc"], rows)


ZH = "chnsenticorp-ensemble"


def zh_table(s: Store) -> str:
    rows = []
    for n in ("teacher", "cnn", "bilstm", "distill"):
        a = s[f"{ZH}/{n}"]
        cells = [agg_text(a, w) for w in ("best", "final")]
        if n == "distill":
            cells = [bold_mean(c) for c in cells]
        rows.append([a["model"], *cells])
    return md_table(["model", "best dev acc", "final dev acc"], rows)


def readme_zh_table(s: Store) -> str:
    t, base, d = (s[f"{ZH}/{n}"] for n in ("teacher", "bilstm", "distill"))
    return md_table(["model", "best dev acc", "final dev acc"], [
        ["teacher: ensemble of 5 students", agg_text(t, "best"), "-"],
        ["BiLSTM alone", agg_text(base, "best", short=True), agg_text(base, "final", short=True)],
        ["distilled BiLSTM", *[f"**{agg_text(d, w, short=True)} "
                               f"({agg_gain(s, f'{ZH}/distill', w):+.1f})**"
                               for w in ("best", "final")]]])


MRPC = "mrpc-cpu"
MRPC_ROWS = ("baseline", "distill-both", "distill-balance", "distill-one-balance", "distill-one")


def mrpc_table(s: Store) -> str:
    metrics = ["acc", "f1"]
    rows = [aggregate_cells(s[f"{MRPC}/{n}"], metrics) for n in ("teacher", *MRPC_ROWS)]
    return md_table(seeds_head(metrics), rows) + "\n" + SEEDS_NOTE + "\n"


def readme_mrpc_table(s: Store) -> str:
    rows = []
    for n, label in (("teacher", "teacher, MiniLM-L6 (one run, 5 epochs)"),
                     ("baseline", "BiLSTM alone"), ("distill-both", "distilled BiLSTM"),
                     ("distill-one", "distilled, `--distill_args '--pair_augment one'`")):
        a = s[f"{MRPC}/{n}"]
        cells = [agg_text(a, w, m, short=True) for w in ("best", "final") for m in ("acc", "f1")]
        rows.append([label, *(f"**{c}**" if n == "distill-one" else c for c in cells)])
    return md_table(["model", "best dev acc", "best dev F1", "final dev acc", "final dev F1"], rows)


QUICK = "sst2-quick"


def quick_stages(s: Store) -> str:
    t, b, d = s[f"{QUICK}/teacher"], s.run(f"{QUICK}/baseline"), s.run(f"{QUICK}/distill")
    raw_d, bench = s[f"{QUICK}/distill"], s[f"{QUICK}/bench-inference"]
    steps = dict((int(k), v) for k, v in t["dev_by_steps"])
    cfg = t["config"]["train"]
    rest = next(st for st in s[f"{QUICK}/experiment"]["stages"] if st["stage"].startswith("export"))

    def curve(r: Run) -> str:
        return ", ".join(marked_curve(r))

    res = raw_d["results"]
    int8, fp32 = (bench_row(bench, "BiLSTM student", p)
                  for p in ("onnxruntime int8", "onnxruntime"))
    teacher = bench_row(bench, "fine-tuned teacher", "exported")
    return md_table(["stage", "result", "wall time"], [
        ["teacher", f"MiniLM-L6, {cfg['max_steps']} steps of {cfg['batch_size']} (lr "
                    f"{lr(cfg['lr'])}, linear decay): dev acc {steps[300]:.4f} at step 300, "
                    f"**{steps[600]:.4f}** at 600",
         duration(t["wall_seconds"])],
        ["baseline", f"BiLSTM alone: dev acc {curve(b)} (epochs 1-{len(b.curve)})",
         duration(s[f"{QUICK}/baseline"]["wall_seconds"])],
        ["distill", f"transfer set n_iter {res['n_iter']}: {res['transfer_examples']:,} examples "
                    f"({res['seconds']['transfer_set']} s with POS tags); labelling "
                    f"{res['seconds']['labelling']} s ({res['labelling_ex_per_s']} ex/s); student, "
                    f"`--alpha {raw_d['config']['distill']['alpha']:g}`: dev acc {curve(d)} "
                    f"(epochs 1-{len(d.curve)}, {res['train_seconds']} s of training): "
                    f"**{gain([d], [b]):+.2f} points**", duration(raw_d["wall_seconds"])],
        ["export, bench, submission, report",
         f"300 dev texts: student {int8['ex_per_s_processes']:,} ex/s at batch 32 through ONNX "
         f"Runtime int8 ({bench['processes']} processes; fp32 {fp32['ex_per_s_processes']:,}), "
         f"batch-1 p50 {bench_p50(bench, 'BiLSTM student'):.2f} ms; teacher "
         f"{teacher['ex_per_s_processes']} ex/s (Paddle Inference fp32, {bench['processes']} "
         f"processes), {teacher['p50_ms']:.1f} ms", duration(rest["seconds"])]])


VARIANTS = ("mse-3ep", "mse-b128", "soft-ce", "alpha-3ep", "alpha-5ep", "alpha-b128",
            "alpha-niter10", "alpha-shipped-teacher")


def variant_runs(s: Store) -> list[tuple[dict, Run]]:
    return [(s[f"sst2-quick-variants/{n}"], s.run(f"sst2-quick-variants/{n}")) for n in VARIANTS]


def epoch1_mean(runs: list[Run]) -> float:
    return statistics.mean(r.curve[0]["acc"] for r in runs)


def quick_variants_table(s: Store) -> str:
    rows = []
    pairs = variant_runs(s)
    bests = [r.results["dev"]["acc"] for _, r in pairs]
    for i, (raw, r) in enumerate(pairs):
        best = f"{bests[i]:.4f}"
        rows.append([raw["variant"], raw["transfer_set"],
                     f"{r.results['steps']:,} ({r.config['train']['batch_size']})",
                     f"**{best}**" if i == bests.index(max(bests)) else best,
                     f"{r.results['last_dev']['acc']:.4f}"])
    distill = s.runs(f"{SST2}/distill-seed")
    examples = s[f"{SST2}/experiment"]["transfer_set"]["examples"]
    batch = distill[0].config["train"]["batch_size"]
    seeds = [r.config["train"]["seed"] for r in distill]
    rows.append([f"for reference: `--preset cpu`, its first epoch (seeds "
                 f"{span(seeds[0], seeds[-1])}, section above)", f"n_iter 20 ({examples:,})",
                 f"{math.ceil(examples / batch):,} ({batch})",
                 f"{epoch1_mean(distill):.4f} (mean)", ""])
    return md_table(["variant of the distillation stage", "transfer set", "steps (batch)",
                     "best dev", "last dev"], rows)


def baselines_table(s: Store) -> str:
    rows = []
    for name, label in (("sst2-cpu-seed2021/baseline", "SST-2, GloVe 6B 50d"),
                        ("chnsenticorp-seed2021/baseline",
                         "ChnSentiCorp, random 300d (jieba words)")):
        raw, r = s[name], s.run(name)
        rows.append([label, f"acc **{r.results['dev']['acc']:.4f}**",
                     f"epoch {r.results['best_epoch']} of {raw['config']['train']['max_epoch']}",
                     f"{r.results['num_params']:,}", f"{r.results['vocab_size']:,}",
                     duration(raw["wall_seconds"])])
    return md_table(["task", "dev", "best at", "parameters", "vocabulary", "wall time"], rows)


def amp_table(s: Store) -> str:
    rows = []
    for name, label in (("fp32", "fp32 (default)"), ("bf16", "bf16")):
        raw = s[f"sst2-teacher-amp/{name}"]
        res = raw["results"]
        rows.append([label, duration(raw["wall_seconds"]), f"{res['train_seconds']} s",
                     f"{res['train_examples_per_s']}", f"{res['dev']['acc']:.4f}",
                     f"{res['peak_memory_gb']:.2f} GB"])
    return md_table(["precision", "wall time", "training time", "examples/s", "dev acc",
                     "peak memory"], rows)


def flat_table(s: Store) -> str:
    return md_table(["transfer set", "peak RSS (VmHWM)", "wall", "dev acc at step 300"], [
        [r["transfer_set"], f"{r['peak_gb']:.2f} GB", f"{r['wall_seconds']} s",
         f"{r['dev_acc']:.4f}"]
        for r in s["bench/flat-transfer"]["rows"]])


PADDLENLP = "paddlenlp-sst2"


def paddlenlp_table(s: Store) -> str:
    """PaddleNLP's SST-2 small.py command run here beside our small.py defaults, by seed."""
    rows = []
    for label, prefix in (("PaddleNLP's `small.py` command", f"{PADDLENLP}/seed-"),
                          ("our `small.py` defaults", f"{SST2}/baseline-seed")):
        rs, walls = s.runs(prefix), [s[n].get("wall_seconds") for n in s.names(prefix)]
        wall = f"{duration(min(walls))} - {duration(max(walls))}" if None not in walls \
            else s[s.names(prefix)[0]]["wall_note"]
        rows.append([label, ", ".join(str(r.config["train"]["seed"]) for r in rs),
                     spread(seed_scores(rs, "best")), spread(seed_scores(rs, "final")), wall])
    return md_table(["run", "seeds", "best dev acc", "final dev acc", "wall time a seed"], rows)


def pipeline_stages(s: Store, experiment: str) -> str:
    """A pipeline run's stages: wall time and peak memory of each (pipeline.json)."""
    e = s[f"{experiment}/experiment"]
    rows = [[st["stage"], duration(st["seconds"]),
             f"{st['peak_memory_gb']:.2f} GB" if "peak_memory_gb" in st else "-"]
            for st in e["stages"]]
    rows.append(["**whole job**", duration(e["wall_seconds"]),
                 f"{e['peak_memory_gb']:.2f} GB" if "peak_memory_gb" in e else "-"])
    return md_table(["stage", "wall time", "peak memory"], rows)


OWN_TASKS = (("SST-5", "sst5-cpu"), ("AG News", "agnews-cpu"), ("Toutiao", "toutiao-cpu"))
# Distilled variants run on an own-file pipeline's teacher, baselines and cache: summaries
# <experiment>/<prefix>-seed-<s>, rows printed where they exist.
OWN_VARIANTS = (("teacher-unk", "distilled, `--teacher_mask unk`"),
                ("balance", "distilled, `--balance_labels`"))


def own_task_runs(s: Store, experiment: str) -> tuple[str, dict, dict | None, list[Run],
                                                      list[Run]]:
    """(teacher's name, its best and final dev scores (final None: an ensemble, scored once),
    the baselines, the distilled students) of one own-file pipeline."""
    runs = s.runs(f"{experiment}/seed-")
    base = [r for r in runs if r.kind == "small"]
    distilled = [r for r in runs if r.kind == "bert_distill"]
    if s.names(f"{experiment}/teacher"):
        t = s.run(f"{experiment}/teacher")
        return "teacher: MiniLM-L6 fine-tuned (teacher.py)", t.results["dev"], final_dev(t), \
            base, distilled
    seen = {json.dumps(r.results["teacher_dev"], sort_keys=True) for r in distilled}
    if len(seen) != 1:
        raise PublishedError(f"results/{experiment}: the distilled runs saw different teachers")
    n = len(distilled[0].results["teacher_path"])
    return f"teacher: ensemble of {n} students (mean logits)", distilled[0].results[
        "teacher_dev"], None, base, distilled


def own_variant_runs(s: Store, experiment: str, prefix: str) -> list[Run]:
    return s.runs(f"{experiment}/{prefix}-seed-") if s.names(f"{experiment}/{prefix}-seed-") \
        else []


def own_distilled(s: Store, experiment: str, variant: str | None) -> list[Run]:
    """The pipeline's distilled students (variant None), or a variant's."""
    return own_variant_runs(s, experiment, variant) if variant else \
        own_task_runs(s, experiment)[4]


def own_gap_closed(s: Store, experiment: str, variant: str | None = None) -> float:
    _, teacher, _, base, _ = own_task_runs(s, experiment)
    return gap_closed(own_distilled(s, experiment, variant), base, teacher["acc"])


def own_tasks_table(s: Store) -> str:
    """Teacher, BiLSTM alone and distilled BiLSTM on each own-file task: accuracy and
    macro-F1, mean ± sd over seeds, best checkpoint and final epoch; the gap closed."""
    rows = []
    for task, experiment in OWN_TASKS:
        name, best, final, base, distilled = own_task_runs(s, experiment)
        rows.append([f"**{task}**", name, *[f"{d[m]:.4f}" if d else "-" for m in
                                            ("acc", "macro_f1") for d in (best, final)], ""])
        students = [("BiLSTM alone", base, ""),
                    ("distilled BiLSTM", distilled, f"{own_gap_closed(s, experiment):.2f}")]
        for variant, label in OWN_VARIANTS:
            if runs := own_variant_runs(s, experiment, variant):
                students.append((label, runs, f"{own_gap_closed(s, experiment, variant):.2f}"))
        for label, rs, gap in students:
            rows.append(["", f"{label} ({len(rs)} seeds)", *[
                mean_sd(seed_scores(rs, w, m)) for m in ("acc", "macro_f1")
                for w in ("best", "final")], gap])
    return md_table(["task", "model", "best acc", "final acc", "best macro-F1",
                     "final macro-F1", "gap closed"], rows)


BLOCKS: dict[str, Callable[[Store], str]] = {
    "readme-own-tasks": own_tasks_table,
    "sst2-cpu-pipeline-stages": lambda s: pipeline_stages(s, "sst2-cpu-pipeline"),
    "bench-read-file": lambda s: transcript(s["bench/read-file"]["stdout"]),
    "readme-sst2": readme_sst2_table,
    "paddlenlp-sst2": paddlenlp_table,
    "paddlenlp-sst2-epochs": lambda s: epochs_table([
        ("PaddleNLP's command", s.runs(f"{PADDLENLP}/seed-")),
        ("our defaults", sst2(s)["base"])]),
    "readme-mrpc": readme_mrpc_table,
    "readme-zh": readme_zh_table,
    "sst2-table": sst2_table,
    "sst2-speed": sst2_speed_table,
    "sst2-epochs": lambda s: epochs_table([("BiLSTM alone", sst2(s)["base"]),
                                           ("distilled BiLSTM", sst2(s)["distill"])]),
    "sst2-stages": sst2_stages,
    "cnn-table": cnn_table,
    "cnn-epochs": lambda s: epochs_table([("CNN alone", sst2(s)["cnn_base"]),
                                          ("distilled CNN", sst2(s)["cnn"])]),
    "transfer-file-table": transfer_file_table,
    "zh-table": zh_table,
    "ablation-table": ablation_table,
    "quick-stages": quick_stages,
    "quick-variants": quick_variants_table,
    "baselines-table": baselines_table,
    "mrpc-table": mrpc_table,
    "bench-train-speed": lambda s: transcript(s["bench/train-speed"]["stdout"]),
    "bench-vectors": lambda s: transcript(s["bench/vectors"]["stdout"]),
    "bench-scale": lambda s: transcript(s["bench/scale"]["stdout"]),
    "bench-flat": flat_table,
    "bench-amp": amp_table,
    "bench-teacher-speed": lambda s: transcript(s["bench/teacher-speed"]["stdout"]),
    "bench-distill-speed": lambda s: transcript(s["bench/distill-speed"]["stdout"]),
    "bench-inference": lambda s: transcript(check_bench(s, f"{SST2}/bench-inference")["stdout"]),
    "bench-inference-cnn": lambda s: transcript(check_bench(s, "sst2-cnn/bench-inference")
                                                ["stdout"]),
}


# ------------------------------------------------------------------------ figures in prose


def at(s: Store, name: str, *keys: str | int):
    """A value inside a summary: at(s, "sst2-quick/distill", "results", "n_iter")."""
    value = s[name]
    for k in keys:
        value = value[k]
    return value


def exp(s: Store, experiment: str, *keys: str):
    return at(s, f"{experiment}/experiment", *keys)


def _sst2_gain(s: Store, which: str, digits: int) -> str:
    g = sst2(s)
    return signed(gain(g["distill"], g["base"], which), digits)


def _kept(s: Store) -> float:
    g = sst2(s)
    return mean_score(g["distill"], "acc", "best") / g["teacher"][0].results["dev"]["acc"]


def _stage(s: Store, name: str) -> dict:
    return next(st for st in exp(s, SST2, "stages") if st["stage"] == name)


def _epoch_minutes(s: Store) -> str:
    st = _stage(s, "distill, seed 1")
    return f"{st['training_seconds'] / st['epochs'] / 60:.1f}"


def _pipe(s: Store) -> dict:
    return check_bench(s, f"{SST2}/bench-inference")


def _cnnb(s: Store) -> dict:
    return check_bench(s, "sst2-cnn/bench-inference")


def _lstm_share(s: Store) -> str:
    ms = _pipe(s)["student_ms"]
    total = sum(ms[k] for k in ("embedding", "BiLSTM", "FC + classifier"))
    return f"{100 * ms['BiLSTM'] / total:.0f}%"


def _ort_over_paddle(s: Store) -> str:
    ort, paddle = (bench_row(_pipe(s), "BiLSTM student", p)["ex_per_s"]["32"]
                   for p in ("onnxruntime", "exported"))
    return times(ort / paddle, 1)


def _amp(s: Store, precision: str, *keys: str):
    return at(s, f"sst2-teacher-amp/{precision}", *keys)


def _amp_slower(s: Store) -> float:
    """bf16 against fp32 training speed; the docs' ratio (from unrounded times) if it agrees."""
    fp32, bf16 = (_amp(s, n, "results", "train_examples_per_s") for n in ("fp32", "bf16"))
    stored = exp(s, "sst2-teacher-amp").get("bf16_slower_x")
    if stored is not None and abs(stored - fp32 / bf16) > 0.011:
        raise PublishedError(f"sst2-teacher-amp: bf16_slower_x {stored} but the runs give "
                             f"{fp32 / bf16:.2f}")
    return stored if stored is not None else fp32 / bf16


def _amp_points(s: Store) -> str:
    fp32, bf16 = (s.run(f"sst2-teacher-amp/{n}").results["dev"]["acc"] for n in ("fp32", "bf16"))
    return f"{100 * (fp32 - bf16):.2f}"


TF = "sst2-transfer-file"


def _tf(s: Store, n: str) -> dict:
    return s[f"{TF}/{n}"]


def _tf_span(s: Store, key: str, unit: str, rounded: bool = False) -> str:
    lo, hi = exp(s, TF, key)
    return (span(round(lo), round(hi)) if rounded else span(lo, hi)) + f" {unit}"


def _pair(a: list[float], b: list[float]) -> str:
    return ", ".join(f"{x:.4f} -> {y:.4f}" for x, y in zip(a, b))


def _abl(s: Store, n: str) -> float:
    return agg_mean(s[f"sst2-ablation/{n}"])


def _abl_sd_range(s: Store) -> str:
    sds = [100 * at(s, f"sst2-ablation/{n}", "best", "acc", "sd")
           for n in ("unigram-unk", "unigram-mask", "uniform-unk")]
    return span(min(sds), max(sds), "{:.1f}")


def _quick_gain(s: Store, name: str, digits: int) -> str:
    return signed(gain([s.run(f"{QUICK}/{name}")], [s.run(f"{QUICK}/baseline")]), digits)


QV = "sst2-quick-variants"


def _variants_top(s: Store) -> float:
    return max(r.results["dev"]["acc"] for _, r in variant_runs(s))


def _variants_range(s: Store) -> str:
    """The best dev of every variant but plain MSE, the first row."""
    bests = [r.results["dev"]["acc"] for _, r in variant_runs(s)[1:]]
    return span(min(bests), max(bests), "{:.3f}")


def _variants_over_baseline(s: Store) -> str:
    base = exact_accuracy(exp(s, QV, "baseline_acc"), exp(s, QV, "dev_examples"), QV)
    return f"{100 * (_variants_top(s) - base):.1f}"


def _mrpc(s: Store, n: str, which: str, metric: str, digits: int = 2) -> str:
    return signed(agg_gain(s, f"{MRPC}/{n}", which, metric), digits)


def _mrpc_bench(s: Store) -> dict:
    return s[f"{MRPC}/bench-inference"]


def _train(s: Store, row: int, key: str):
    return at(s, "bench/train-speed", "rows", row, key)


def _amd(s: Store, *keys: str):
    return at(s, "bench/train-speed-amd", *keys)


def _amd_slower(s: Store) -> str:
    """Our CPU against the AMD one on PaddleNLP's script and on row 2, averaged."""
    return "{:.0f}x".format(statistics.mean(
        [_train(s, 0, "ex_per_s") / _amd(s, "paddlenlp_ex_per_s"),
         _train(s, 1, "ex_per_s") / _amd(s, "row2_ex_per_s")]))


def _vectors(s: Store, fmt: str | None = None, key: str = "load_s") -> list[float]:
    return [r[key] for r in at(s, "bench/vectors", "rows") if fmt in (None, r["format"])]


def _tsp(s: Store, i: int) -> float:
    return at(s, "bench/teacher-speed", "rows", i, "ex_per_s")


def _static(s: Store) -> str:
    e = at(s, "bench/teacher-speed", "epoch")
    return (f"{e['to_static_train_seconds']:.1f} s of training against "
            f"{e['eager_train_seconds']:.1f} s eager, the same dev accuracy {e['dev_acc']:.4f}")


def _dp(s: Store, name: str, *keys: str):
    return at(s, f"sst2-data-parallel/{name}", "results", *keys)


def _distill_x(s: Store, key: str, fmt: str) -> str:
    b = s["bench/distill-speed"]
    return fmt.format(b["online"][key] / b["cached"][key])


FIGURES: dict[str, Callable[[Store], str]] = {
    # SST-2, cpu preset, 3 seeds
    "sst2-gain-best": lambda s: _sst2_gain(s, "best", 2),
    "sst2-gain-final": lambda s: _sst2_gain(s, "final", 2),
    "sst2-gain-best-1": lambda s: _sst2_gain(s, "best", 1),
    "sst2-gain-final-1": lambda s: _sst2_gain(s, "final", 1),
    "sst2-distill-best-3": lambda s: mean_sd(seed_scores(sst2(s)["distill"]), 3),
    "sst2-baseline-best-3": lambda s: mean_sd(seed_scores(sst2(s)["base"]), 3),
    "sst2-distill-mean-3": lambda s: f"{statistics.mean(seed_scores(sst2(s)['distill'])):.3f}",
    "sst2-distill-sd": lambda s: f"{statistics.stdev(seed_scores(sst2(s)['distill'])):.4f}",
    "sst2-baseline-sd": lambda s: f"{statistics.stdev(seed_scores(sst2(s)['base'])):.4f}",
    "sst2-kept-pct": lambda s: f"{100 * _kept(s):.0f}%",
    "sst2-kept-pct-1": lambda s: f"{100 * _kept(s):.1f}%",
    "sst2-teacher": lambda s: f"{sst2(s)['teacher'][0].results['dev']['acc']:.4f}",
    "sst2-teacher-3": lambda s: f"{sst2(s)['teacher'][0].results['dev']['acc']:.3f}",
    "sst2-teacher-steps": lambda s: f"{at(s, f'{SST2}/teacher', 'results', 'steps'):,}",
    "sst2-teacher-batch": lambda s: str(at(s, f"{SST2}/teacher", "config", "train", "batch_size")),
    "sst2-teacher-curve": lambda s: ", ".join(f"{a:.3f}" for _, a in
                                              at(s, f"{SST2}/teacher", "dev_by_steps")),
    "sst2-teacher-params-m": lambda s: f"{sst2(s)['teacher'][0].results['num_params'] / 1e6:.1f}M",
    "sst2-teacher-pipeline-wall": lambda s: duration(at(s, f"{SST2}/teacher", "wall_seconds")),
    "sst2-fewer-params": lambda s: times(sst2(s)["teacher"][0].results["num_params"]
                                         / sst2(s)["distill"][0].results["num_params"]),
    "sst2-paired": lambda s: signed(paired(sst2(s)["distill"], sst2(s)["base"])),
    "sst2-paired-1": lambda s: signed(paired(sst2(s)["distill"], sst2(s)["base"]), 1),
    "sst2-transfer-examples": lambda s: f"{exp(s, SST2, 'transfer_set', 'examples'):,}",
    "sst2-transfer-originals": lambda s: f"{exp(s, SST2, 'transfer_set', 'originals'):,}",
    "sst2-transfer-duplicates": lambda s: f"{exp(s, SST2, 'transfer_set', 'duplicates_dropped'):,}",
    "sst2-labelling-min": lambda s: f"{_stage(s, 'distill, seed 1')['labelling_minutes']} min",
    "sst2-labelling-ex-s": lambda s: str(_stage(s, "distill, seed 1")["labelling_ex_per_s"]),
    "sst2-cpu-wall": lambda s: hours_minutes(exp(s, SST2, "wall_minutes")),
    "sst2-rerun-min": lambda s: span(*exp(s, SST2, "rerun", "distill_minutes_range")),
    "sst2-rerun-min-0": lambda s: span(*map(round, exp(s, SST2, "rerun", "distill_minutes_range"))),
    "sst2-rerun-ex-s": lambda s: span(*exp(s, SST2, "rerun", "distill_ex_per_s_range"), "{:,}"),
    "sst2-rerun-peak": lambda s: f"{exp(s, SST2, 'rerun', 'distill_peak_memory_gb'):.2f}",
    "sst2-old-seed1": lambda s: f"{sst2(s)['old'][0].results['dev']['acc']:.4f}",
    "sst2-old-best": lambda s: mean_sd(seed_scores(sst2(s)["old"])),
    "sst2-old-final": lambda s: mean_sd(seed_scores(sst2(s)["old"], "final")),
    "sst2-epoch-min": _epoch_minutes,
    "sst2-epoch1-mean-3": lambda s: f"{epoch1_mean(sst2(s)['distill']):.3f}",
    "sst2-base-stop-2": lambda s: str(first_stop(sst2(s)["base"][1].curve, 2)),
    "sst2-base-stop-2-acc": lambda s: f"{sst2(s)['base'][1].results['dev']['acc']:.4f}",
    "sst2-base-stop-1": lambda s: str(first_stop(sst2(s)["base"][0].curve, 2)),
    "seed2021-distill": lambda s: f"{s.run('sst2-cpu-seed2021/distill').results['dev']['acc']:.4f}",
    "seed2021-distill-epoch": lambda s: str(at(s, "sst2-cpu-seed2021/distill", "results",
                                               "best_epoch")),
    "seed2021-pos-seconds": lambda s: "{} s".format(
        at(s, "sst2-cpu-seed2021/distill", "results", "seconds", "pos_tagging")),
    # SST-2 inference, the cpu pipeline's benchmark (one run: every ratio of a sentence here)
    "sst2-bench-student-ex-s": lambda s: f"{bench_fastest(_pipe(s), 'BiLSTM student'):,}",
    "sst2-bench-student-p50": lambda s: f"{bench_p50(_pipe(s), 'BiLSTM student'):.2f}",
    "sst2-bench-teacher-ex-s": lambda s: f"{bench_fastest(_pipe(s), 'fine-tuned teacher'):,}",
    "sst2-bench-teacher-p50": lambda s: f"{bench_p50(_pipe(s), 'fine-tuned teacher'):.2f}",
    "sst2-bench-teacher-x": lambda s: times(bench_speedup(_pipe(s), "BiLSTM student",
                                                          "fine-tuned teacher")),
    "sst2-bench-bertbase-x": lambda s: times(bench_speedup(_pipe(s), "BiLSTM student",
                                                           "bert-base-shaped teacher")),
    "sst2-bench-wall": lambda s: f"{_pipe(s)['wall_minutes']} minutes",
    "sst2-bench-lstm-share": _lstm_share,
    "sst2-bench-ort-over-paddle": _ort_over_paddle,
    "amx-bench-lead": lambda s: times(bench_speedup(s["bench/inference-amx"], "BiLSTM student",
                                                    "fine-tuned teacher")),
    # the CNN student and int8 (one benchmark run)
    "cnn-gain-best-1": lambda s: signed(gain(sst2(s)["cnn"], sst2(s)["cnn_base"]), 1),
    "cnn-gain-final-1": lambda s: signed(gain(sst2(s)["cnn"], sst2(s)["cnn_base"], "final"), 1),
    "cnn-paired": lambda s: signed(paired(sst2(s)["cnn"], sst2(s)["cnn_base"])),
    "cnn-under-bilstm": lambda s: f"{gain(sst2(s)['distill'], sst2(s)['cnn']):.1f}",
    "cnn-under-teacher": lambda s: f"{gain(sst2(s)['teacher'], sst2(s)['cnn']):.1f}",
    "cnn-baseline-min": lambda s: span(*exp(s, "sst2-cnn", "baseline_minutes_range")),
    "cnn-baseline-ex-s": lambda s: span(*exp(s, "sst2-cnn", "baseline_ex_per_s_range"), "{:,}"),
    "cnn-distill-min": lambda s: span(*exp(s, "sst2-cnn", "distill_minutes_range")),
    "cnn-distill-ex-s": lambda s: span(*exp(s, "sst2-cnn", "distill_ex_per_s_range"), "{:,}"),
    "cnn-bench-wall": lambda s: f"{_cnnb(s)['wall_minutes']:g}",
    "cnn-bench-ex-s": lambda s: f"{bench_fastest(_cnnb(s), 'CNN student'):,}",
    "cnn-bench-bilstm-ex-s": lambda s: f"{bench_fastest(_cnnb(s), 'BiLSTM student'):,}",
    "cnn-bench-over-bilstm": lambda s: times(bench_speedup(_cnnb(s), "CNN student",
                                                           "BiLSTM student"), 1),
    "cnn-bench-over-teacher": lambda s: times(bench_speedup(_cnnb(s), "CNN student",
                                                            "fine-tuned teacher")),
    "cnn-bench-over-bertbase": lambda s: times(bench_speedup(_cnnb(s), "CNN student",
                                                             "bert-base-shaped teacher")),
    "cnn-bench-p50": lambda s: f"{bench_p50(_cnnb(s), 'CNN student'):.3f}",
    "cnn-int8-x": lambda s: times(int8_over_fp32(_cnnb(s), "CNN student")[0], 2),
    "cnn-int8-points": lambda s: f"{int8_over_fp32(_cnnb(s), 'CNN student')[1]:+.2f}",
    "cnn-int8-cost-1": lambda s: f"{-int8_over_fp32(_cnnb(s), 'CNN student')[1]:.1f}",
    "cnn-int8-accs": lambda s: " -> ".join(f"{bench_row(_cnnb(s), 'CNN student', p)['dev_acc']:.4f}"
                                           for p in ("onnxruntime", "onnxruntime int8")),
    "bilstm-int8-x": lambda s: times(int8_over_fp32(_cnnb(s), "BiLSTM student")[0], 2),
    "bilstm-int8-points": lambda s: f"{int8_over_fp32(_cnnb(s), 'BiLSTM student')[1]:+.2f}",
    # teacher: fp32 against bf16, one after the other
    "amp-fp32-wall": lambda s: duration(_amp(s, "fp32", "wall_seconds")),
    "amp-bf16-wall": lambda s: duration(_amp(s, "bf16", "wall_seconds")),
    "amp-fp32-acc": lambda s: f"{_amp(s, 'fp32', 'results', 'dev', 'acc'):.4f}",
    "amp-bf16-acc": lambda s: f"{_amp(s, 'bf16', 'results', 'dev', 'acc'):.4f}",
    "amp-fp32-ex-s": lambda s: f"{_amp(s, 'fp32', 'results', 'train_examples_per_s')}",
    "amp-fp32-ex-s-0": lambda s: f"{_amp(s, 'fp32', 'results', 'train_examples_per_s'):.0f}",
    "amp-bf16-slower": lambda s: times(_amp_slower(s), 2),
    "amp-bf16-points": _amp_points,
    "amp-ffn-ms": lambda s: "{fp32} ms in fp32, {casts only} ms with only the casts and {bf16} "
                            "ms in bf16".format(**exp(s, "sst2-teacher-amp", "ffn_block_ms")),
    # --transfer_file
    "tf-unlabeled-best-3": lambda s: mean_sd(agg_values(_tf(s, "distill-unlabeled"), "best"), 3),
    "tf-unlabeled-mean-3": lambda s: f"{agg_mean(_tf(s, 'distill-unlabeled')):.3f}",
    "tf-gold-best-3": lambda s: mean_sd(agg_values(_tf(s, "distill-gold"), "best"), 3),
    "tf-gain-best": lambda s: signed(100 * (agg_mean(_tf(s, "distill-unlabeled"))
                                            - agg_mean(_tf(s, "distill-gold"))), 1),
    "tf-gain-final": lambda s: signed(100 * (agg_mean(_tf(s, "distill-unlabeled"), "final")
                                             - agg_mean(_tf(s, "distill-gold"), "final")), 1),
    "tf-gold-share": lambda s: "{:.0%}".format(exp(s, TF, "gold_sentences")
                                               / exp(s, TF, "train_sentences")),
    "tf-seed-by-seed": lambda s: _pair(agg_values(_tf(s, "distill-gold"), "best"),
                                       agg_values(_tf(s, "distill-unlabeled"), "best")),
    "tf-baseline-s": lambda s: f"{exp(s, TF, 'baseline_seconds')} s",
    "tf-without-s": lambda s: _tf_span(s, "distill_seconds_range_without_file", "s"),
    "tf-with-min": lambda s: _tf_span(s, "distill_minutes_range_with_file", "min"),
    "tf-with-min-0": lambda s: _tf_span(s, "distill_minutes_range_with_file", "min", True),
    "tf-transfer-s": lambda s: f"{exp(s, TF, 'transfer_set_seconds_with_file')} s",
    "tf-label-min": lambda s: f"{exp(s, TF, 'labelling_minutes_with_file')} min",
    "tf-peak-cached": lambda s: _tf_span(s, "peak_memory_gb_cached_range", "GB"),
    "tf-peak-label": lambda s: _tf_span(s, "peak_memory_gb_labelling_range", "GB"),
    # ChnSentiCorp
    "zh-gain-best": lambda s: signed(agg_gain(s, f"{ZH}/distill", "best")),
    "zh-gain-final": lambda s: signed(agg_gain(s, f"{ZH}/distill", "final")),
    "zh-paired": lambda s: signed(at(s, f"{ZH}/distill", "paired_gain_points", "best", "acc")),
    "zh-under-teacher": lambda s: "{:.2f}".format(
        100 * (agg_mean(s[f"{ZH}/teacher"]) - agg_mean(s[f"{ZH}/distill"]))),
    "zh-best-member": lambda s: "{:.4f}".format(
        max(at(s, f"{ZH}/{n}", "best", "acc", "max") for n in ("cnn", "bilstm"))),
    "zh-train-min": lambda s: f"{exp(s, ZH, 'training_minutes_total')} min",
    "zh-bilstm-min": lambda s: span(*exp(s, ZH, "bilstm_minutes_range")),
    "zh-cnn-min": lambda s: span(*exp(s, ZH, "cnn_minutes_range")),
    "zh-base-ex-s": lambda s: span(*exp(s, ZH, "baseline_ex_per_s_range")),
    "zh-distill-min": lambda s: span(*exp(s, ZH, "distill_minutes_range")),
    "zh-distill-ex-s": lambda s: span(*exp(s, ZH, "distill_ex_per_s_range")),
    "zh-transfer-s": lambda s: f"{exp(s, ZH, 'transfer_set_seconds')} s",
    "zh-member-label-s": lambda s: f"{exp(s, ZH, 'member_labelling_seconds')} s",
    "zh-ensemble-label-s": lambda s: f"{exp(s, ZH, 'ensemble_labelling_seconds')} s",
    "zh-transfer-examples": lambda s: f"{exp(s, ZH, 'transfer_examples'):,}",
    "zh-baseline-mb": lambda s: "{:.0f} MB".format(  # fp32 weights
        4 * at(s, "chnsenticorp-seed2021/baseline", "results", "num_params") / 1e6),
    # POS sampling and the student's mask
    "ablation-unigram-over-uniform": lambda s: "{:.2f}".format(
        100 * (_abl(s, "unigram-unk") - _abl(s, "uniform-unk"))),
    "ablation-unk-over-mask": lambda s: "{:.2f}".format(
        100 * (_abl(s, "unigram-unk") - _abl(s, "unigram-mask"))),
    "ablation-choices-1": lambda s: "~{:.1f}".format(  # the mean of the two above
        50 * (2 * _abl(s, "unigram-unk") - _abl(s, "uniform-unk") - _abl(s, "unigram-mask"))),
    "ablation-sd-range": _abl_sd_range,
    "ablation-run-min": lambda s: span(*exp(s, "sst2-ablation", "run_minutes_range")),
    "ablation-label-min": lambda s: span(*exp(s, "sst2-ablation", "labelling_minutes_range")),
    "ablation-transfer-k": lambda s: "{:.0f}k".format(
        exp(s, "sst2-ablation", "transfer_examples_approx") / 1000),
    # quick preset
    "quick-teacher": lambda s: f"{s.run(f'{QUICK}/teacher').results['dev']['acc']:.4f}",
    "quick-baseline": lambda s: f"{s.run(f'{QUICK}/baseline').results['dev']['acc']:.4f}",
    "quick-distill": lambda s: f"{s.run(f'{QUICK}/distill').results['dev']['acc']:.4f}",
    "quick-gain-1": lambda s: _quick_gain(s, "distill", 1),
    "quick-transfer-k": lambda s: "{:.0f}k".format(
        at(s, f"{QUICK}/distill", "results", "transfer_examples") / 1000),
    "quick-wall-min": lambda s: hours_minutes(exp(s, QUICK, "wall_seconds") / 60),
    "quick-wall": lambda s: duration(exp(s, QUICK, "wall_seconds")),
    "quick-teacher-other": lambda s: duration(exp(s, QUICK, "teacher_seconds_other_run")),
    "quick-p1-acc": lambda s: f"{s.run(f'{QUICK}/distill-patience1').results['dev']['acc']:.4f}",
    "quick-p1-epoch": lambda s: str(len(s.run(f"{QUICK}/distill-patience1").curve)),
    "quick-p1-gain": lambda s: _quick_gain(s, "distill-patience1", 2),
    "quick-p1-wall": lambda s: duration(at(s, f"{QUICK}/distill-patience1",
                                           "pipeline_wall_seconds")),
    "quick-labelling-ex-s": lambda s: str(at(s, f"{QUICK}/distill", "results",
                                             "labelling_ex_per_s")),
    "variants-niter10": lambda s: "{:,} examples at {} ex/s".format(
        at(s, f"{QV}/alpha-niter10", "results", "transfer_examples"),
        at(s, f"{QV}/alpha-niter10", "results", "labelling_ex_per_s")),
    "variants-teacher": lambda s: f"{exp(s, QV, 'teacher_acc'):.4f}",
    "variants-teacher-3": lambda s: f"{exp(s, QV, 'teacher_acc'):.3f}",
    "variants-teacher-steps": lambda s: str(exp(s, QV, "teacher_steps")),
    "variants-transfer": lambda s: f"{exp(s, QV, 'transfer_examples'):,}",
    "variants-label-min": lambda s: f"{exp(s, QV, 'labelling_minutes')} minutes",
    "variants-top-3": lambda s: f"{_variants_top(s):.3f}",
    "variants-top-gain-1": _variants_over_baseline,
    "variants-shipped-teacher-3": lambda s: "{:.3f}".format(
        at(s, f"{QV}/alpha-shipped-teacher", "teacher_acc")),
    "variants-alpha-gain-1": lambda s: signed(gain([s.run(f"{QV}/alpha-3ep")],
                                                   [s.run(f"{QV}/mse-3ep")]), 1),
    "variants-range": _variants_range,
    # MRPC
    "mrpc-teacher-3": lambda s: f"{agg_mean(s[f'{MRPC}/teacher']):.3f}",
    "mrpc-para-originals": lambda s: f"{exp(s, MRPC, 'teacher_paraphrase_share', 'originals')}%",
    "mrpc-para-copies": lambda s: f"{exp(s, MRPC, 'teacher_paraphrase_share', 'copies')}%",
    "mrpc-both-best-acc": lambda s: _mrpc(s, "distill-both", "best", "acc"),
    "mrpc-both-best-f1": lambda s: _mrpc(s, "distill-both", "best", "f1"),
    "mrpc-both-final-acc": lambda s: _mrpc(s, "distill-both", "final", "acc"),
    "mrpc-both-final-f1": lambda s: _mrpc(s, "distill-both", "final", "f1"),
    "mrpc-one-best-acc": lambda s: _mrpc(s, "distill-one", "best", "acc"),
    "mrpc-one-best-f1": lambda s: _mrpc(s, "distill-one", "best", "f1"),
    "mrpc-one-final-acc": lambda s: _mrpc(s, "distill-one", "final", "acc"),
    "mrpc-one-final-f1": lambda s: _mrpc(s, "distill-one", "final", "f1"),
    "mrpc-one-best-acc-1": lambda s: _mrpc(s, "distill-one", "best", "acc", 1),
    "mrpc-one-best-f1-1": lambda s: _mrpc(s, "distill-one", "best", "f1", 1),
    "mrpc-balance-best-acc": lambda s: _mrpc(s, "distill-balance", "best", "acc"),
    "mrpc-wall": lambda s: f"{exp(s, MRPC, 'wall_minutes')} min",
    "mrpc-teacher-min": lambda s: f"{exp(s, MRPC, 'teacher_minutes')} min",
    "mrpc-distill-min": lambda s: span(*exp(s, MRPC, "distill_minutes_range")) + " min",
    "mrpc-one-labelling": lambda s: "{:.0f}k pairs, about {:g} min".format(
        exp(s, MRPC, "one_transfer_pairs_approx") / 1000, exp(s, MRPC, "one_labelling_minutes")),
    "mrpc-bench-student": lambda s: f"{bench_fastest(_mrpc_bench(s), 'BiLSTM student'):,}",
    "mrpc-bench-teacher": lambda s: f"{bench_fastest(_mrpc_bench(s), 'fine-tuned teacher'):,}",
    "mrpc-bench-x": lambda s: times(bench_speedup(_mrpc_bench(s), "BiLSTM student",
                                                  "fine-tuned teacher")),
    "mrpc-bench-p50": lambda s: f"{bench_p50(_mrpc_bench(s), 'BiLSTM student'):.2f}",
    # benchmarks: training speed (rows 1, 2, 5 and 7 of one run)
    "train-bucketing-over-row2": lambda s: times(_train(s, 4, "ex_per_s")
                                                 / _train(s, 1, "ex_per_s"), 1),
    "train-bucketing-over-row1": lambda s: times(_train(s, 4, "ex_per_s")
                                                 / _train(s, 0, "ex_per_s"), 1),
    "train-pad-lengths": lambda s: "{} words instead of {} word pieces".format(
        _train(s, 4, "pad_len"), _train(s, 1, "pad_len")),
    "train-epoch-s": lambda s: "{:.0f} seconds".format(
        at(s, "bench/train-speed", "train_sentences") / _train(s, 6, "ex_per_s")),
    "train-defaults-ex-s": lambda s: f"{_train(s, 6, 'ex_per_s'):,}",
    "amd-paddlenlp-ex-s": lambda s: str(_amd(s, "paddlenlp_ex_per_s")),
    "amd-row2-ex-s": lambda s: str(_amd(s, "row2_ex_per_s")),
    "amd-slower": _amd_slower,
    "amd-gflops": lambda s: "{}-{} GFLOP/s by default and {}-{}".format(
        *_amd(s, "matmul_gflops", "default"), *_amd(s, "matmul_gflops", "MKL_DEBUG_CPU_TYPE=5")),
    "amd-bilstm": lambda s: "{:,} to {:,} ex/s".format(
        _amd(s, "bilstm_train_ex_per_s", "default"),
        _amd(s, "bilstm_train_ex_per_s", "MKL_DEBUG_CPU_TYPE=5")),
    # word vectors, transfer sets of QQP size
    "vectors-bin-s": lambda s: f"{_vectors(s, 'bin')[0]:.0f} s",
    "vectors-gz-s": lambda s: f"{_vectors(s, 'bin.gz')[0]:.0f} s",
    "vectors-txt-s": lambda s: f"{_vectors(s, 'txt')[0]:.0f} s",
    "vectors-npz-s": lambda s: f"{_vectors(s, 'npz')[0]:.0f} s",
    "vectors-peak-mb": lambda s: f"{1000 * max(_vectors(s, key='peak_gb')):.0f} MB",
    "vectors-load-range": lambda s: span(min(_vectors(s)), max(_vectors(s)), "{:.0f}") + " s",
    "vectors-peak-1": lambda s: f"< {math.ceil(10 * max(_vectors(s, key='peak_gb'))) / 10:.1f} GB",
    "scale-pairs-m": lambda s: f"{at(s, 'bench/scale', 'transfer_pairs') / 1e6:.1f}M",
    "scale-peak-1": lambda s: f"{at(s, 'bench/scale', 'peak_gb'):.1f} GB",
    # teacher labelling and fine-tuning speed, cached logits (each sentence: one run)
    "teacher-fast-over-paddlenlp": lambda s: times(_tsp(s, 2) / _tsp(s, 0), 1),
    "teacher-fast-over-sorted": lambda s: times(_tsp(s, 2) / _tsp(s, 1), 1),
    "teacher-bf16-over": lambda s: f"{_tsp(s, 3) / _tsp(s, 0):.0f}x and "
                                   f"{_tsp(s, 3) / _tsp(s, 1):.1f}x",
    "teacher-bf16-diff": lambda s: f"{at(s, 'bench/teacher-speed', 'bf16_max_abs_diff'):.2f}",
    "teacher-bf16-agree": lambda s: f"{at(s, 'bench/teacher-speed', 'bf16_agree_pct'):.2f}%",
    "teacher-sorted-over-paddlenlp": lambda s: f"{_tsp(s, 1) / _tsp(s, 0):.0f}x",
    "teacher-static-x": lambda s: times(
        at(s, "bench/teacher-speed", "finetune_ex_per_s", "to_static")
        / at(s, "bench/teacher-speed", "finetune_ex_per_s", "eager"), 2),
    "teacher-static-epoch": _static,
    "distill-epoch-x": lambda s: _distill_x(s, "epoch_seconds", "{:.0f}x"),
    "distill-job-x": lambda s: _distill_x(s, "end_to_end_seconds", "{:.1f}x"),
    # data parallelism on a 2-core CPU
    "dp-one-ex-s": lambda s: f"{_dp(s, 'one-process', 'train_examples_per_s'):,}",
    "dp-two-ex-s": lambda s: f"{_dp(s, 'two-processes', 'train_examples_per_s'):,}",
    "dp-one-s": lambda s: f"{_dp(s, 'one-process', 'train_seconds')} s",
    "dp-two-s": lambda s: f"{_dp(s, 'two-processes', 'train_seconds')} s",
    "dp-one-acc": lambda s: f"{_dp(s, 'one-process', 'dev', 'acc'):.4f}",
    "dp-two-acc": lambda s: f"{_dp(s, 'two-processes', 'dev', 'acc'):.4f}",
    "dp-two-epoch": lambda s: str(_dp(s, "two-processes", "best_epoch")),
    "dp-ratio": lambda s: times(_dp(s, "two-processes", "train_examples_per_s")
                                / _dp(s, "one-process", "train_examples_per_s"), 2),
}


def _alone_under_teacher(s: Store, experiment: str) -> str:
    """Points of best dev accuracy between the teacher and the BiLSTM alone (its mean)."""
    _, teacher, _, base, _ = own_task_runs(s, experiment)
    return f"{100 * (teacher['acc'] - mean_score(base, 'acc', 'best')):.1f}"


def _own_gain(s: Store, experiment: str, which: str, variant: str | None = None) -> str:
    base = own_task_runs(s, experiment)[3]
    return signed(gain(own_distilled(s, experiment, variant), base, which))


def _keeps(s: Store, name: str) -> dict[str, float]:
    """copies_keep_label of an AG News distillation: per class of the original, the share
    of its augmented copies the teacher still labels so."""
    return at(s, f"agnews-cpu/{name}", "results", "copies_keep_label")


def _mask_keeps(s: Store) -> dict[str, float]:
    """The default ([MASK]) run's shares, from a rerun of seed 2 that must score as the
    published seed 2 (the shares were logged from a later commit on)."""
    rerun, published = s.run("agnews-cpu/mask-rerun-seed-2"), s.run("agnews-cpu/seed-2-bert_distill")
    if (rerun.results["dev"], rerun.curve) != (published.results["dev"], published.curve):
        raise PublishedError("results/agnews-cpu/mask-rerun-seed-2.json: does not reproduce "
                             "seed-2-bert_distill")
    return _keeps(s, "mask-rerun-seed-2")


def _share_span(shares: list[float]) -> str:
    return span(min(shares), max(shares), "{:.2f}")


FIGURES["agnews-keep-mask-business"] = lambda s: f"{_mask_keeps(s)['business']:.2f}"
FIGURES["agnews-keep-mask-others"] = lambda s: _share_span(
    [x for c, x in _mask_keeps(s).items() if c != "business"])
FIGURES["agnews-keep-unk"] = lambda s: _share_span(list(_keeps(s, "teacher-unk-seed-3").values()))


# Per own-file task (and the variants the pages discuss): the gains and the gap closed.
for _exp, _variant in [(e, None) for _, e in OWN_TASKS] + [
        ("agnews-cpu", "teacher-unk"), ("sst5-cpu", "teacher-unk"), ("agnews-cpu", "balance")]:
    _name = _exp + (f"-{_variant}" if _variant else "")
    for _which in ("best", "final"):
        FIGURES[f"{_name}-gain-{_which}"] = functools.partial(
            _own_gain, experiment=_exp, which=_which, variant=_variant)
    FIGURES[f"{_name}-gap"] = lambda s, e=_exp, v=_variant: f"{own_gap_closed(s, e, v):.2f}"
FIGURES["agnews-cpu-alone-under-teacher"] = lambda s: _alone_under_teacher(s, "agnews-cpu")
for _task, _exp in OWN_TASKS:
    FIGURES[f"{_exp}-wall"] = lambda s, e=_exp: duration(at(s, f"{e}/experiment", "wall_seconds"))


def _variant_walls(s: Store) -> str:
    """Wall time of each variant distillation: the span, and the most (a first seed, which
    labels the transfer set anew)."""
    walls = [s[n]["wall_seconds"] for _, e in OWN_TASKS for v, _ in OWN_VARIANTS
             for n in s.names(f"{e}/{v}-seed-")]
    return f"{duration(min(walls))} to {duration(max(walls))}"


FIGURES["own-variant-walls"] = _variant_walls


# ------------------------------------------------------------------------ the pages


def pages(root: str = ROOT) -> list[str]:
    """README.md and every docs/*.md, the files that carry published figures."""
    return [os.path.join(root, "README.md"), *sorted(glob.glob(os.path.join(root, "docs", "*.md")))]


def render(text: str, store: Store, where: str) -> tuple[str, list[str], set[str]]:
    """(the page with every generated block and figure rewritten, what differed, names used)."""
    diffs: list[str] = []
    used: set[str] = set()

    def block(m: re.Match) -> str:
        name = m.group(1)
        if name not in BLOCKS:
            raise PublishedError(f"{where}: unknown generated block {name!r}")
        used.add(name)
        new = BLOCKS[name](store) + "\n"  # a blank line: a table would take the marker as a row
        if new != m.group(2):
            diffs.append(f"{where}: block {name} differs from what results/ gives")
        return f"<!-- generated: {name} -->\n{new}<!-- /generated -->"

    def figure(m: re.Match) -> str:
        name = m.group(1)
        if name not in FIGURES:
            raise PublishedError(f"{where}: unknown figure {name!r}")
        used.add(name)
        new = FIGURES[name](store)
        if new != m.group(2):
            diffs.append(f"{where}: figure {name} is {m.group(2)!r}, results/ gives {new!r}")
        return f"<!-- g:{name} -->{new}<!-- /g -->"

    text = BLOCK.sub(block, text)
    opened = text.count("<!-- generated:")
    if opened != len(BLOCK.findall(text)) or text.count("<!-- /generated -->") != opened:
        raise PublishedError(f"{where}: a generated block's markers are not paired")
    text = FIGURE.sub(figure, text)
    if text.count("<!-- g:") != len(FIGURE.findall(text)):
        raise PublishedError(f"{where}: a figure's markers are not paired on one line")
    if re.search(r"^<!-- g:", text, re.M):
        raise PublishedError(f"{where}: a line starts with a figure's marker, which ends the "
                             f"paragraph in markdown; move a word of the line before onto it")
    return text, diffs, used


def publish(root: str = ROOT, results: str | None = None, write: bool = True) -> list[str]:
    """Rewrites (or, write=False, only compares) every page under root from the summaries in
    results; returns what differed. A figure or block that no page shows any more (its
    markers deleted, the number typed over) is an error when writing, a difference when not."""
    store = Store(results or os.path.join(root, "results"))
    diffs: list[str] = []
    used: set[str] = set()
    for path in pages(root):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new, d, u = render(text, store, os.path.relpath(path, root))
        diffs += d
        used |= u
        if write and new != text:
            atomic_write_text(path, new)
    unused = [f"{name}: generated but shown on no page (its marker was removed)"
              for name in [*BLOCKS, *FIGURES] if name not in used]
    if unused and write:
        raise PublishedError("\n".join(unused))
    return diffs + unused


def check(root: str = ROOT, results: str | None = None) -> list[str]:
    return publish(root, results, write=False)


# ------------------------------------------------------------------------ summarising a run


def git_commit(root: str = ROOT) -> str | None:
    """The checkout's commit, marked when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + (" (with uncommitted changes)" if dirty else "")


LOG_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d) \w+ [\w.]+: (.*)$")


def log_facts(path: str, script: str) -> dict:
    """From a run's train.log: the command and CPU line it starts with, and its wall time
    (first to last line of each session: a resumed run appends a session; the log's clock
    has no date, so a session is taken to last under a day)."""
    if not os.path.isfile(path):
        return {"command": None, "machine": None, "wall_seconds": None}
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [m.groups() for m in map(LOG_LINE.match, f.read().splitlines()) if m]
    command = machine = None
    sessions: list[list[int]] = []
    for i, (h, mi, s, msg) in enumerate(lines):
        t = 3600 * int(h) + 60 * int(mi) + int(s)
        starts = msg.split(" ")[0] == script and i + 1 < len(lines) \
            and lines[i + 1][3].startswith("CPU ")
        if starts or not sessions:
            sessions.append([t, t])
        if starts and command is None:
            command = f"python {script}.py {msg[len(script):].strip()}".strip()
            machine = lines[i + 1][3]
        sessions[-1][1] = t
    wall = sum((end - start) % 86400 for start, end in sessions)
    return {"command": command, "machine": machine, "wall_seconds": wall if sessions else None}


def slim(results: dict) -> dict:
    """results.json without its bulky values (per-example lists and the like)."""
    return {k: v for k, v in results.items()
            if len(json.dumps(v, default=str)) <= BULKY_CHARS}


def summarise(run_dir: str, commit: str | None = None) -> dict:
    """One finished run folder (results.json and config.json or run_config.json) as a summary."""
    if not os.path.isfile(os.path.join(run_dir, RESULTS)):
        raise PublishedError(f"{run_dir}: no {RESULTS} (not a finished run)")
    config = run_settings(run_dir)
    if "script" not in config:
        raise PublishedError(f"{run_dir}: no {CONFIG} or run_config.json naming its script")
    results = read_json(os.path.join(run_dir, RESULTS))
    weights = os.path.join(run_dir, MODEL_STATE)
    curve = [{k: v for k, v in r.items() if k != "split"}
             for r in read_jsonl(os.path.join(run_dir, METRICS)) if r.get("split") == "dev"]
    return {"kind": "run", "script": config["script"], "task": results.get("task"),
            **log_facts(os.path.join(run_dir, "train.log"), config["script"]),
            "commit": commit, "source": f"published.py add {os.path.abspath(run_dir)}",
            "size_mb": (round(os.path.getsize(weights) / 1e6, 1) if os.path.isfile(weights)
                        else None),
            "config": config, "results": slim(results), "curve": curve}


def write_summary(path: str, summary: dict) -> None:
    atomic_write_text(path, json.dumps(summary, indent=1, ensure_ascii=False) + "\n")


def add(run_dir: str, experiment: str, name: str | None = None,
        results: str = RESULTS_DIR) -> list[str]:
    """Summarises a finished run folder into results/<experiment>/<name>.json; a pipeline
    folder (pipeline.json) gives experiment.json (its stages' commands and wall times), one
    summary per run in it and bench-inference.json. Returns the paths written."""
    run_dir = os.path.normpath(run_dir)
    commit = git_commit()
    out = os.path.join(results, experiment)
    written = []
    pipeline = os.path.join(run_dir, "pipeline.json")
    if not os.path.isfile(pipeline):
        path = os.path.join(out, (name or os.path.basename(run_dir)) + ".json")
        write_summary(path, summarise(run_dir, commit))
        return [path]
    state = read_json(pipeline)
    machine = None
    log = os.path.join(run_dir, "pipeline.log")
    if os.path.isfile(log):
        with open(log, encoding="utf-8", errors="replace") as f:
            machine = next((m.group(4) for m in map(LOG_LINE.match, f.read().splitlines())
                            if m and m.group(4).startswith("CPU ")), None)
    stages = [{"stage": k, **v, "command": " ".join(map(shlex.quote, v["command"]))}
              for k, v in state["stages"].items()]  # with whatever else a stage records
    runs: dict[str, str] = {}
    for folder, dirs, files in sorted(os.walk(run_dir)):
        dirs[:] = sorted(d for d in dirs if d != "cache")
        if RESULTS in files and folder != run_dir:
            run_name = os.path.relpath(folder, run_dir).replace(os.sep, "-")
            path = os.path.join(out, run_name + ".json")
            write_summary(path, summarise(folder, commit))
            runs[os.path.abspath(folder)] = f"{experiment}/{run_name}"
            written.append(path)
    bench = os.path.join(run_dir, "inference.json")
    if os.path.isfile(bench):
        inference = read_json(bench)
        for r in inference.get("rows", []):
            r["run"] = runs.get(os.path.abspath(r["source"])) if r.get("source") else None
        path = os.path.join(out, "bench-inference.json")
        command = next((st["command"] for st in stages if st["stage"] == "bench"), None)
        write_summary(path, {"kind": "bench", "commit": commit, "machine": machine,
                             "command": command,
                             "source": f"published.py add {os.path.abspath(run_dir)}",
                             **inference})
        written.append(path)
    path = os.path.join(out, "experiment.json")
    write_summary(path, {"kind": "experiment", "task": state.get("task"),
                         "preset": state.get("preset"), "machine": machine, "commit": commit,
                         "source": f"published.py add {os.path.abspath(run_dir)}",
                         "stages": stages,
                         "wall_seconds": round(sum(st["seconds"] for st in stages), 1),
                         **({"peak_memory_gb": state["peak_memory_gb"]}
                            if "peak_memory_gb" in state else {})})
    return [path, *written]


# ------------------------------------------------------------------------ command line


def main(argv: Sequence[str] | None = None) -> list[str]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true",
                   help="only compare; exit 1 naming each file and block that differs")
    sub = p.add_subparsers(dest="command")
    a = sub.add_parser("add", help="summarise a finished run (or pipeline) folder into results/")
    a.add_argument("run_dir")
    a.add_argument("experiment", help="folder under results/, e.g. sst2-cpu")
    a.add_argument("--name", help="summary name (default: the run folder's name)")
    args = p.parse_args(argv)
    if args.command == "add":
        written = add(args.run_dir, args.experiment, args.name)
        print("\n".join(os.path.relpath(w) for w in written))
        return written
    diffs = publish(write=not args.check)
    if diffs and args.check:
        raise PublishedError("published figures differ from results/ (run `python "
                             "published.py` to rewrite them):\n" + "\n".join(diffs))
    print("\n".join(f"rewritten: {d}" for d in diffs) if diffs else
          "every published figure matches results/")
    return diffs


if __name__ == "__main__":
    run_cli(main)
