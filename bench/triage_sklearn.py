"""The triage classifier's side-by-side reference: scikit-learn on the same labelled set and
the same held-out split (whole groups, by FNV-1a hash as in vigil-triage's classify.rs).

    python3 bench/triage_sklearn.py [crates/vigil-triage/data/events.jsonl]

Prints JSON: accuracy and macro recall on the held-out groups for TF-IDF character n-grams
with LogisticRegression and with LinearSVC, and fit/predict seconds.
"""
import json
import sys
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, recall_score
from sklearn.pipeline import make_pipeline, make_union
from sklearn.svm import LinearSVC


def fnv1a(kind: int, data: bytes) -> int:
    h = 0xCBF29CE484222325 ^ kind
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def held_out(row) -> bool:
    key = row.get("group") or row["text"]
    return fnv1a(ord("g"), key.encode()) % 5 == 0


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "crates/vigil-triage/data/events.jsonl"
    rows = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    train = [r for r in rows if not held_out(r)]
    test = [r for r in rows if held_out(r)]
    out = {"train": len(train), "test": len(test), "models": {}}
    for name, clf in [
        ("tfidf_char_word+logreg", LogisticRegression(max_iter=2000, C=10, class_weight="balanced")),
        ("tfidf_char_word+linearsvc", LinearSVC(C=1.0, class_weight="balanced")),
    ]:
        feats = make_union(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=1),
            TfidfVectorizer(analyzer="word", token_pattern=r"(?u)\b\w+\b", sublinear_tf=True),
        )
        model = make_pipeline(feats, clf)
        t = time.perf_counter()
        model.fit([r["text"] for r in train], [r["category"] for r in train])
        fit = time.perf_counter() - t
        t = time.perf_counter()
        pred = model.predict([r["text"] for r in test])
        predict = time.perf_counter() - t
        truth = [r["category"] for r in test]
        by_source = {}
        for src in sorted({r["source"] for r in test}):
            idx = [i for i, r in enumerate(test) if r["source"] == src]
            by_source[src] = accuracy_score([truth[i] for i in idx], [pred[i] for i in idx])
        out["models"][name] = {
            "accuracy": accuracy_score(truth, pred),
            "macro_recall": recall_score(truth, pred, average="macro"),
            "per_source": by_source,
            "fit_seconds": fit,
            "texts_per_second": len(test) / predict,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
