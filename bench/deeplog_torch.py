"""DeepLog in PyTorch, the baseline for Vigil's DeepLog (`vigil eval logs --model deeplog`).

    deeplog_torch.py --train F --labelled F.csv --abnormal F [--epochs 60]
                     [--min-probability 0.001] [--min-steps 500] [--threads N] [--seed 0]
                     [--json]

The same model, data preparation, training objective and detection rule as
crates/vigil-logs/src/detect/deeplog.rs, with the same hyper-parameters, so that the two can
be compared in one run (bench/deeplog_bench.sh):

- vocabulary: the distinct keys of the training sessions, numbered 1..n in ascending key
  order; token 0 is the padding / start marker. Classes: n + 2 (0 = PAD, never a target;
  1..n the keys; n + 1 = END of session).
- examples: each training session (L keys) is left-padded with h = 10 zeros; for j in 0..L
  the window padded[j:j+h] predicts key j, and the last window padded[L:L+h] predicts END.
  Identical (window, target) pairs are merged and trained once per epoch, weighted by their
  count: loss = -sum(w * log_softmax(logits)[target]) / sum(w) per minibatch.
- model: Embedding(n + 1, 16) -> LSTM(16, 64, 2 layers, batch_first) -> hidden state of the
  last step -> Linear(64, n + 2). PyTorch's default initialisation (embedding N(0, 1), LSTM
  and linear U(-1/8, 1/8) as 1/sqrt(64) = 1/8) is the scheme Vigil copies; the draws differ.
- training: AdamW with weight decay 0 (= Adam), lr 0.003, minibatches of 256 distinct
  examples, 60 epochs (or more, to make at least min_steps = 500 optimiser steps), shuffled
  every epoch; torch.manual_seed(seed).
- detection: a session with a key never seen in training is anomalous. Otherwise every
  position (and END after the last key) is predicted from the h tokens before it; the
  actual class counts as predicted when it is among the g = 9 highest logits (class 0
  excluded) and its probability (softmax over the classes but 0) is at least
  min_probability = 0.001 (0: the paper's pure top-g rule). One class not predicted makes
  the session anomalous.

Scoring is done the natural way for PyTorch: the windows of all sessions are collected and
run through the model in batches of 4,096 under torch.inference_mode(), then topk. Every
window is scored, repeated ones too (Vigil's scorer caches the top-g of each distinct
window; `distinct_windows` shows how much such a cache could save).

Timing: `train_seconds` covers the vocabulary, the example table, the training loop and
the top-g accuracy on the training examples (as Vigil's does); `sessions_per_second` is all
labelled and abnormal sessions divided by the time from the parsed sessions (lists of raw
keys) to the verdicts: key lookup, window building, inference, topk and the per-session
decision. Reading the files and importing torch are excluded on both sides.

Prints the figures with the keys of `vigil eval logs --json` (precision, recall, f1, fpr,
abnormal_recall, train_seconds, sessions_per_second, threads, params, ...) plus
`scoring_windows`, `distinct_windows`, `scoring_seconds` and `torch_version`.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
from torch import nn

WINDOW = 10  # h
TOP_G = 9  # g
EMBEDDING = 16
HIDDEN = 64
LAYERS = 2
BATCH = 256
LEARNING_RATE = 0.003
MIN_PROBABILITY = 0.001
MIN_STEPS = 500
SCORE_BATCH = 4096
PAD = 0


def parse_keys(text):
    return [int(t) for t in text.split()]


def read_sequences(path):
    """One session a line, space-separated keys; an empty line is an empty session."""
    with open(path, encoding="utf-8") as f:
        return [parse_keys(line) for line in f.read().splitlines()]


def read_labelled(path):
    """CSV `Sequence,label` with a header; label 1 = anomalous. Returns (sessions, labels)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or lines[0].strip().lower() != "sequence,label":
        sys.exit(f"{path}: expected the header Sequence,label")
    sessions, labels = [], []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        seq, label = line.rsplit(",", 1)
        if label.strip() not in ("0", "1"):
            sys.exit(f"{path}:{n}: label {label.strip()!r} is neither 0 nor 1")
        sessions.append(parse_keys(seq.strip().strip('"')))
        labels.append(label.strip() == "1")
    return sessions, labels


class DeepLogNet(nn.Module):
    """(B, h) token ids -> (B, classes) logits."""

    def __init__(self, tokens, classes):
        super().__init__()
        self.embedding = nn.Embedding(tokens, EMBEDDING)
        self.lstm = nn.LSTM(EMBEDDING, HIDDEN, num_layers=LAYERS, batch_first=True)
        self.out = nn.Linear(HIDDEN, classes)

    def forward(self, x):
        seq, _ = self.lstm(self.embedding(x))
        return self.out(seq[:, -1, :])


class DeepLog:
    """Vocabulary + trained network + the detection rule."""

    def __init__(self, keys, net, min_probability):
        self.index = {k: i + 1 for i, k in enumerate(keys)}  # key -> token 1..n
        self.end = len(keys) + 1
        self.net = net
        self.min_probability = min_probability

    def predicted(self, windows, targets):
        """Whether each window's target is predicted: among its TOP_G best classes (PAD
        excluded) with at least min_probability. Batched."""
        self.net.eval()
        out = []
        with torch.inference_mode():
            for x, y in zip(torch.split(windows, SCORE_BATCH), torch.split(targets, SCORE_BATCH)):
                logits = self.net(x)
                logits[:, PAD] = float("-inf")
                top = logits.topk(min(TOP_G, logits.shape[1] - 1), dim=1)
                prob = (top.values - logits.logsumexp(dim=1, keepdim=True)).exp()
                out.append(((top.indices == y[:, None]) & (prob >= self.min_probability)).any(dim=1))
        return torch.cat(out)

    def windows(self, sessions):
        """Windows and targets of sessions (lists of tokens): (W, h) windows, (W,) targets and
        (W,) the session each window belongs to."""
        counts = torch.tensor([len(s) for s in sessions], dtype=torch.long)
        flat = torch.tensor([t for s in sessions for t in [PAD] * WINDOW + s], dtype=torch.long)
        # Session i takes len_i + h tokens of `flat` from offset_i; its windows start at
        # offset_i + 0..len_i (len_i + 1 windows, the last one predicting END).
        offsets = torch.cumsum(counts + WINDOW, 0) - (counts + WINDOW)
        per = counts + 1
        owner = torch.repeat_interleave(torch.arange(len(sessions)), per)
        j = torch.arange(int(per.sum())) - torch.repeat_interleave(torch.cumsum(per, 0) - per, per)
        starts = offsets[owner] + j
        windows = flat.unfold(0, WINDOW, 1)[starts]
        flat_end = torch.cat([flat, torch.zeros(WINDOW, dtype=torch.long)])  # past the last key
        targets = torch.where(j < counts[owner], flat_end[starts + WINDOW], self.end)
        return windows, targets, owner

    def judge(self, sessions):
        """Anomalous or not, per session (raw keys). Returns (verdicts, windows scored)."""
        verdicts = torch.zeros(len(sessions), dtype=torch.bool)
        known, where = [], []
        for i, s in enumerate(sessions):
            tokens = [self.index.get(k) for k in s]
            if None in tokens:
                verdicts[i] = True  # a key never seen in training
            else:
                known.append(tokens)
                where.append(i)
        if not known:
            return verdicts, 0
        windows, targets, owner = self.windows(known)
        miss = ~self.predicted(windows, targets)
        missed = torch.zeros(len(known), dtype=torch.long).index_add_(0, owner, miss.long())
        verdicts[torch.tensor(where)] = missed > 0
        return verdicts, len(windows)


def train(sessions, epochs, seed, min_probability=MIN_PROBABILITY, min_steps=MIN_STEPS,
          progress=None):
    """Trains DeepLog on normal sessions for `epochs` epochs (more if needed to make
    `min_steps` optimiser steps); returns (model, training info)."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    keys = sorted({k for s in sessions for k in s})
    if not keys or len(sessions) < 2:
        sys.exit(f"{len(sessions)} sessions with {len(keys)} distinct keys: nothing to learn from")
    model = DeepLog(keys, None, min_probability)
    counts = {}
    examples = 0
    for s in sessions:
        padded = [PAD] * WINDOW + [model.index[k] for k in s]
        for j in range(len(s) + 1):
            target = padded[j + WINDOW] if j < len(s) else model.end
            pair = (tuple(padded[j:j + WINDOW]), target)
            counts[pair] = counts.get(pair, 0) + 1
            examples += 1
    distinct = sorted(counts.items())
    xs = torch.tensor([w for (w, _), _ in distinct], dtype=torch.long)
    ys = torch.tensor([t for (_, t), _ in distinct], dtype=torch.long)
    ws = torch.tensor([c for _, c in distinct], dtype=torch.float32)

    net = DeepLogNet(len(keys) + 1, len(keys) + 2)
    model.net = net
    opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    final_loss = float("nan")
    steps_per_epoch = math.ceil(len(distinct) / BATCH)
    epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(distinct))
        loss_sum = weight_sum = 0.0
        for batch in torch.split(order, BATCH):
            x, y, w = xs[batch], ys[batch], ws[batch]
            total = w.sum()
            logp = torch.log_softmax(net(x), dim=1)
            loss = -(logp.gather(1, y[:, None]).squeeze(1) * w).sum() / total
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * total.item()
            weight_sum += total.item()
        final_loss = loss_sum / max(weight_sum, 1.0)
        if progress:
            progress(epoch + 1, final_loss)

    within = model.predicted(xs, ys)
    info = {
        "sessions": len(sessions),
        "examples": examples,
        "distinct_examples": len(distinct),
        "epochs": epochs,
        "final_loss": final_loss,
        "train_top_g_accuracy": float((ws * within).sum() / ws.sum()),
        "seconds": time.perf_counter() - start,
    }
    return model, info


def ratio(a, b):
    return a / b if b else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True, help="normal sessions, one a line")
    ap.add_argument("--labelled", required=True, help="CSV Sequence,label (1 anomalous)")
    ap.add_argument("--abnormal", required=True, help="all-abnormal sessions, one a line")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--min-probability", type=float, default=MIN_PROBABILITY,
                    help="probability a predicted class must also reach (0: pure top-g)")
    ap.add_argument("--min-steps", type=int, default=MIN_STEPS,
                    help="fewest optimiser steps (more epochs than asked if needed)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="torch.set_num_threads (default: the cores this process may use)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    train_sessions = read_sequences(args.train)
    labelled, labels = read_labelled(args.labelled)
    abnormal = read_sequences(args.abnormal)

    def progress(epoch, loss):
        if not args.json:
            print(f"\repoch {epoch} loss {loss:.4f}", end="", file=sys.stderr)

    model, info = train(train_sessions, args.epochs, args.seed, args.min_probability,
                        args.min_steps, progress)
    if not args.json:
        print(file=sys.stderr)

    start = time.perf_counter()
    verdicts, windows = model.judge(labelled + abnormal)
    scoring = time.perf_counter() - start
    scored = len(labelled) + len(abnormal)

    # Not timed: how many of the scored windows are distinct (what a cache would compute).
    known = [[model.index[k] for k in s] for s in labelled + abnormal
             if all(k in model.index for k in s)]
    distinct_windows = len(torch.unique(model.windows(known)[0], dim=0)) if known else 0

    lab = verdicts[:len(labelled)]
    y = torch.tensor(labels, dtype=torch.bool)
    tp, fp = int((lab & y).sum()), int((lab & ~y).sum())
    fn, tn = int((~lab & y).sum()), int((~lab & ~y).sum())
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    result = {
        "model": "deeplog-pytorch",
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "fpr": ratio(fp, fp + tn),
        "labelled": [fp + tn, tp + fn],
        "abnormal_recall": ratio(int(verdicts[len(labelled):].sum()), len(abnormal)) if abnormal else None,
        "abnormal_sessions": len(abnormal),
        "train_seconds": info["seconds"],
        "sessions_per_second": scored / max(scoring, 1e-9),
        "threads": torch.get_num_threads(),
        "train_sessions": len(train_sessions),
        "scoring_seconds": scoring,
        "scoring_windows": windows,
        "distinct_windows": distinct_windows,
        "torch_version": torch.__version__,
        "params": {
            "deeplog": {"window": WINDOW, "top_g": TOP_G,
                        "min_probability": args.min_probability, "hidden": HIDDEN,
                        "layers": LAYERS, "embedding": EMBEDDING, "epochs": args.epochs,
                        "batch": BATCH, "min_steps": args.min_steps,
                        "learning_rate": LEARNING_RATE, "end_of_session": True,
                        "seed": args.seed, "score_batch": SCORE_BATCH},
            "deeplog_training": info,
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for k in ("precision", "recall", "f1", "fpr", "abnormal_recall"):
        print(f"{k:<24}{result[k]:.4f}")
    print(f"{'train_seconds':<24}{result['train_seconds']:.2f} "
          f"(final loss {info['final_loss']:.4f}, {info['distinct_examples']} distinct examples)")
    print(f"{'sessions_per_second':<24}{result['sessions_per_second']:.0f} "
          f"({result['threads']} threads, {windows} windows, {distinct_windows} distinct)")
    print(f"{'sessions':<24}{len(train_sessions)} normal train; labelled {fp + tn} normal, "
          f"{tp + fn} abnormal; {len(abnormal)} abnormal")


if __name__ == "__main__":
    main()
