"""Scale: a synthetic task of QQP's size through the whole distillation, with the time and
the peak resident memory of each stage.

QQP has 363,846 training pairs; with Tang et al.'s n_iter 10 its transfer set holds up to
4M pairs. This writes, in a temporary folder (or --out):
  - a task in QQP's layout: --pairs training pairs (--dev_pairs dev pairs) of QQP-like
    lengths (log-normal, ~11 words a question on average, a tail past 100) whose words are
    drawn, by their counts, from our real vocabularies (SST-2's and MRPC's training texts);
    labels are random;
  - a tiny random BERT teacher (1 layer, hidden 32) saved with save_pretrained;
then runs bert_distill.py on it as a user would, in a process of its own: the transfer set
(n_iter 10), its labelling by the teacher, and --max_steps student steps. POS-guided
replacement is off (--p_pos 0): spaCy would tag 728k questions for several minutes more,
and the time here is what the flat transfer set changes.

It prints the wall time of each stage, the most memory the process held during each stage
(its VmRSS, sampled every 0.1 s) and the exact peak of the whole run (getrusage's maxrss).

    python bench/scale.py                      # QQP's size: about half an hour on 2 cores
    python bench/scale.py --pairs 200 --max_steps 5 --dev_pairs 50
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from data import load_split, tokenize  # noqa: E402
from tasks import TASKS  # noqa: E402
from utils import atomic_write_json, atomic_write_text, format_seconds  # noqa: E402

QQP_PAIRS = 363_846
WORD_SOURCES = (("sst-2", "sst2"), ("mrpc", "mrpc"))  # (task, folder under --data_root)
# Log lines of bert_distill.py that end each stage (the last one runs to the end).
STAGES = (("transfer set", "transfer set:"), ("labelling", "teacher logits ready"),
          ("training", None))
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def word_counts(data_root: str) -> collections.Counter:
    """Words of the real training texts, with their counts."""
    counts: collections.Counter = collections.Counter()
    for task, folder in WORD_SOURCES:
        examples = load_split(TASKS[task], "train", os.path.join(data_root, folder))
        counts.update(w for ex in tokenize(examples, "en") for words in ex for w in words)
    return counts


def questions(n: int, counts: collections.Counter, rng: np.random.Generator) -> list[str]:
    """n question-like texts: log-normal lengths with mean ~11 words, words by count."""
    words = sorted(counts)
    p = np.array([counts[w] for w in words], dtype=np.float64)
    lengths = np.clip(np.rint(rng.lognormal(np.log(11) - 0.55 ** 2 / 2, 0.55, n)), 1, None)
    ids = rng.choice(len(words), size=int(lengths.sum()), p=p / p.sum())
    out, start = [], 0
    for length in lengths.astype(int):
        out.append(" ".join(words[i] for i in ids[start:start + length]) + " ?")
        start += length
    return out


def write_task(folder: str, pairs: int, dev_pairs: int, counts: collections.Counter,
               seed: int) -> None:
    """train.tsv and dev.tsv in QQP's layout."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    header = "\t".join(TASKS["qqp"].files["train"][1].header)
    for split, n in (("train", pairs), ("dev", dev_pairs)):
        a, b = questions(n, counts, rng), questions(n, counts, rng)
        labels = (rng.random(n) < 0.37).astype(int)  # QQP: 37% duplicates
        with open(os.path.join(folder, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write(header + "\n")
            f.writelines(f"{i}\t{2 * i}\t{2 * i + 1}\t{a[i]}\t{b[i]}\t{labels[i]}\n"
                         for i in range(n))


def write_teacher(folder: str, counts: collections.Counter, vocab_size: int = 5000) -> None:
    """A random BERT (1 layer, hidden 32) whose vocabulary is the most frequent words."""
    import paddle
    from paddlenlp.transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from teachers import save_pretrained

    os.makedirs(folder, exist_ok=True)
    vocab_file = os.path.join(folder, "vocab.txt")
    words = SPECIALS + [w for w, _ in counts.most_common(vocab_size)
                        if w not in SPECIALS and w != "?"] + ["?"]
    atomic_write_text(vocab_file, "".join(w + "\n" for w in words))
    paddle.seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=32,
                        num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128, num_labels=2)
    save_pretrained(BertForSequenceClassification(config), BertTokenizer(vocab_file), folder)


def vm_rss(pid: int) -> int:
    """Resident bytes of process `pid` (0 once it has ended)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_distill(cmd: list[str], log_path: str) -> dict:
    """Runs bert_distill.py; per stage, its wall time and the most resident memory sampled."""
    stage_names = [name for name, _ in STAGES]
    peaks = dict.fromkeys(stage_names, 0)
    seconds = dict.fromkeys(stage_names, 0.0)
    current = [0]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            name = stage_names[current[0]]
            peaks[name] = max(peaks[name], vm_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8", buffering=1) as log:
        for line in proc.stderr:
            log.write(line)
            name, marker = STAGES[current[0]]
            # a sample per log line too, so that a stage shorter than the period has one
            peaks[name] = max(peaks[name], vm_rss(proc.pid))
            if marker and marker in line:
                now = time.perf_counter()
                seconds[stage_names[current[0]]] = now - start
                start, current[0] = now, current[0] + 1
    code = proc.wait()
    done.set()
    sampler.join()
    seconds[stage_names[current[0]]] = time.perf_counter() - start
    if code != 0:
        with open(log_path, encoding="utf-8") as f:
            sys.exit(f"bert_distill.py failed ({code}); its log {log_path} ends:\n"
                     + "".join(f.readlines()[-20:]))
    # the kernel's high-water mark may lag the last sample by a page or two
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"seconds": seconds, "peak_rss": peaks, "wall": time.perf_counter() - t0,
            "maxrss": max(maxrss, *peaks.values())}


def folder_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(folder) for f in files)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=QQP_PAIRS, help="training pairs")
    p.add_argument("--dev_pairs", type=int, default=2000)
    p.add_argument("--n_iter", type=int, default=10, help="Tang et al.'s for pairs")
    p.add_argument("--max_steps", type=int, default=200, help="student steps")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--data_root", default=os.path.join(ROOT, "..", "shared", "data"),
                   help="folder with sst2/ and mrpc/, whose words the task uses")
    p.add_argument("--out", default=None, help="keep the task, teacher, cache and run here "
                   "(default: a temporary folder, removed at the end)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        t0 = time.perf_counter()
        counts = word_counts(args.data_root)
        write_task(os.path.join(out, "task"), args.pairs, args.dev_pairs, counts, args.seed)
        write_teacher(os.path.join(out, "teacher"), counts)
        generate = time.perf_counter() - t0
        cmd = [sys.executable, os.path.join(ROOT, "bert_distill.py"), "--task_name", "qqp",
               "--data_dir", os.path.join(out, "task"), "--teacher_path",
               os.path.join(out, "teacher"), "--output_dir", os.path.join(out, "run"),
               "--cache_dir", os.path.join(out, "cache"), "--overwrite_output_dir",
               "--n_iter", str(args.n_iter), "--p_pos", "0", "--max_steps", str(args.max_steps),
               "--batch_size", str(args.batch_size), "--logging_steps", "50",
               "--seed", str(args.seed), "--device", "cpu"]
        run = run_distill(cmd, os.path.join(out, "distill.log"))
        with open(os.path.join(out, "run", "results.json"), encoding="utf-8") as f:
            results = json.load(f)
        report = {"pairs": args.pairs, "n_iter": args.n_iter, "max_steps": args.max_steps,
                  "transfer_examples": results["transfer_examples"],
                  "transfer_set_bytes": sum(folder_bytes(os.path.join(out, "cache", d))
                                            for d in os.listdir(os.path.join(out, "cache"))
                                            if d.startswith("transfer-")),
                  "generate_seconds": generate, **run,
                  "bench_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}

    gb = 1 << 30
    print(f"synthetic QQP-layout task: {args.pairs:,} pairs, n_iter {args.n_iter} -> "
          f"{report['transfer_examples']:,} transfer pairs "
          f"({report['transfer_set_bytes'] / gb:.2f} GB on disk); {args.max_steps} student steps")
    print(f"{'stage':<16}{'time':>10}{'peak RSS':>12}")
    print(f"{'generate':<16}{format_seconds(generate):>10}{report['bench_maxrss'] / gb:>10.2f} GB"
          "  (this process)")
    for name, _ in STAGES:
        print(f"{name:<16}{format_seconds(run['seconds'][name]):>10}"
              f"{run['peak_rss'][name] / gb:>10.2f} GB")
    print(f"{'bert_distill.py':<16}{format_seconds(run['wall']):>10}{run['maxrss'] / gb:>10.2f} GB"
          "  (peak of the whole run, getrusage)")
    if args.json:
        atomic_write_json(args.json, report)


if __name__ == "__main__":
    main()
