"""scikit-learn's IsolationForest on NSL-KDD, the baseline for `vigil eval net`.

    net_sklearn.py TRAIN TEST

Fits IsolationForest(n_estimators=100, random_state=0, n_jobs=2) on the `normal` rows of TRAIN
only. Features: one-hot protocol_type/service/flag (categories seen in the fit data; unseen ->
all zeros), log1p of duration, src_bytes and dst_bytes, the other numeric columns as they are.
Score = -score_samples; a test row is flagged when its score is above the 95th (the issue's
protocol) or the 98th percentile of the normal training scores. Prints one JSON object per
threshold, with the same keys as `vigil eval net --json`.

fit_seconds: encoder fit + transform of the normal training rows + forest fit + scoring them
for the threshold. rows_per_second: test rows / seconds of transforming (one-hot, log) and
scoring the whole test set (median of 5 runs); reading the file is excluded. n_jobs=2 applies
to the fit; score_samples ignores n_jobs and runs on one thread (scikit-learn >= 1.6).
"""
import json, sys, time
import numpy as np, pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

CATEGORICAL = ["protocol_type", "service", "flag"]
LOGGED = ["duration", "src_bytes", "dst_bytes"]
COLUMNS = ["duration", *CATEGORICAL, "src_bytes", "dst_bytes", "land", "wrong_fragment",
           "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised", "root_shell",
           "su_attempted", "num_root", "num_file_creations", "num_shells", "num_access_files",
           "num_outbound_cmds", "is_host_login", "is_guest_login", "count", "srv_count",
           "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate", "same_srv_rate",
           "diff_srv_rate", "srv_diff_host_rate", "dst_host_count", "dst_host_srv_count",
           "dst_host_same_srv_rate", "dst_host_diff_srv_rate", "dst_host_same_src_port_rate",
           "dst_host_srv_diff_host_rate", "dst_host_serror_rate", "dst_host_srv_serror_rate",
           "dst_host_rerror_rate", "dst_host_srv_rerror_rate", "label", "difficulty"]
NUMERIC = [c for c in COLUMNS[:41] if c not in CATEGORICAL]


def load(path):
    df = pd.read_csv(path, header=None, names=COLUMNS)
    assert (df["label"] == "normal").any() and df["difficulty"].notna().all(), f"{path}: not NSL-KDD"
    return df


def features(df, enc):
    num = df[NUMERIC].to_numpy(dtype=np.float64)
    for c in LOGGED:
        i = NUMERIC.index(c)
        num[:, i] = np.log1p(num[:, i])
    return np.hstack([enc.transform(df[CATEGORICAL]), num])


train, test = load(sys.argv[1]), load(sys.argv[2])
normal = train[train["label"] == "normal"]
y = (test["label"] != "normal").to_numpy()

t = time.perf_counter()
enc = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(normal[CATEGORICAL])
forest = IsolationForest(n_estimators=100, random_state=0, n_jobs=2).fit(features(normal, enc))
train_scores = -forest.score_samples(features(normal, enc))
fit = time.perf_counter() - t

took = []
for _ in range(5):  # median of 5: a single 0.1-0.3 s run varies by 2x on this machine
    t = time.perf_counter()
    scores = -forest.score_samples(features(test, enc))
    took.append(time.perf_counter() - t)
rate = len(test) / float(np.median(took))

auc = roc_auc_score(y, scores)
for q in (95, 98):
    flagged = scores > np.percentile(train_scores, q)
    tp, fp = int((flagged & y).sum()), int((flagged & ~y).sum())
    dr, prec = tp / y.sum(), tp / max(tp + fp, 1)
    print(json.dumps({
        "method": f"sklearn-iforest-p{q}", "auc": auc, "detection_rate": dr,
        "fpr": fp / (~y).sum(), "precision": prec, "f1": 2 * prec * dr / max(prec + dr, 1e-12),
        "accuracy": float((flagged == y).mean()), "fit_seconds": fit, "rows_per_second": rate,
        "train_normal_rows": len(normal), "test_rows": len(test), "test_attacks": int(y.sum()),
        "threshold_percentile": q}))
