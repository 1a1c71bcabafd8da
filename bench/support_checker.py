"""Benchmark (and calibrate) the support checker of :mod:`rag.support` on HaluEval QA and WiCE together.

Data sets (``--data NAME=PATH``, repeatable; default both):

* ``halueval``: HaluEval QA pairs (short context, question, short answer); figures also on ``length_matched``;
* ``wice``: WiCE claims (natural Wikipedia sentences, no question) against the long web pages they cite;
* ``halueval_qswap`` (derived, ``--no-qswap`` to leave out): each HaluEval row's *supported* answer read with
  another row's question (the one sharing most words with this row's context), labelled unsupported, plus the
  row's original supported pair. An answer copied from a passage that does not answer what was asked must not
  pass; without such pairs nothing in the data teaches the question-aware features.

Every figure is cross-validated: 5 folds grouped (a HaluEval row and its swapped pair, or all WiCE claims
citing the same page, never sit on both sides of a split); nothing is tuned on the test fold. The combiner
is fitted on all sets at once, each set weighing the same in total (``--weight NAME=W`` to change),
classes balanced within each set, so neither set dominates and the fixed 0.5 threshold aims at balanced
accuracy on each.

    python -m bench.support_checker --out bench/results/support.json               # figures only
    python -m bench.support_checker --calibrate --out bench/results/support.json   # + rag/support_calibration.json
    python -m bench.support_checker --llm --llm-limit 100 --out ...                # add an LLM judge (needs llama-cpp)

Model outputs (cross-encoder logits, sentence vectors) are cached on disk under ``--model-cache`` and the
feature matrices under ``--features-cache`` (keyed by the data and the source of :mod:`rag.support`), so a
rerun only computes what changed. "Unsupported" is the positive class for AUROC, precision, recall and F1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DEFAULT_DATA = {"halueval": SHARED_DATA / "halueval_qa" / "pairs.jsonl", "wice": SHARED_DATA / "wice" / "pairs.jsonl"}
QSWAP = "halueval_qswap"
DEFAULT_WEIGHTS = {"halueval": 1.0, "wice": 1.0, QSWAP: 0.5}
CACHE_DIR = Path(__file__).resolve().parent / "results" / "support_cache"
FOLDS = 5
SEED = 0
C_REG = 1.0
THRESHOLD = 0.5


# --------------------------------------------------------------------------- data


def load_pairs(path: Path, name: str) -> list[dict[str, Any]]:
    """Rows ``{id, context, question, response, label[, row, length_matched]}`` with ``set`` and ``group`` added.

    Groups: HaluEval's ``row``; otherwise the context (claims citing one page stay in one fold).
    """
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        if r["label"] not in ("supported", "unsupported"):
            raise ValueError(f"unknown label {r['label']!r} in {r.get('id')}")
        r["set"] = name
        r["question"] = r.get("question") or None
        r["length_matched"] = bool(r.get("length_matched"))
        key = r["row"] if "row" in r else hashlib.sha256(r["context"].encode()).hexdigest()[:16]
        r["group"] = f"{name}:{key}"
    return rows


def question_swaps(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each HaluEval row: its supported answer under another row's question (unsupported), and as it is.

    The other question is the one sharing most content words with this row's context (ties: first row), so
    it tends to be on a neighbouring topic. Groups are the HaluEval rows' groups.
    """
    from rag.support import _content_words

    supported = [r for r in rows if r["label"] == "supported" and r["question"]]
    q_words = [set(_content_words(r["question"])) for r in supported]
    out = []
    for i, r in enumerate(supported):
        ctx = set(_content_words(r["context"]))
        overlap = [len(ctx & qw) if j != i and supported[j]["context"] != r["context"] else -1
                   for j, qw in enumerate(q_words)]
        j = int(np.argmax(overlap))
        base = {"context": r["context"], "response": r["response"], "set": QSWAP, "group": r["group"],
                "length_matched": False}
        out.append({**base, "id": f"{r['id']}_asis", "question": r["question"], "label": "supported"})
        out.append({**base, "id": f"{r['id']}_qswap", "question": supported[j]["question"], "label": "unsupported"})
    return out


# --------------------------------------------------------------------------- features (cached)


class _MemoReranker:
    """A cross-encoder whose logits are remembered on disk (the checker is a pure function of them)."""

    def __init__(self, inner: Any, path: Path) -> None:
        self.inner, self.path = inner, path
        self.memo: dict[bytes, float] = pickle.loads(path.read_bytes()) if path.is_file() else {}

    def warm_up(self) -> None:
        self.inner.warm_up()

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        keys = [hashlib.sha1(f"{q}\x00{p}".encode()).digest() for q, p in pairs]
        missing = [i for i, k in enumerate(keys) if k not in self.memo]
        if missing:
            for i, v in zip(missing, self.inner.score_pairs([pairs[i] for i in missing]), strict=True):
                self.memo[keys[i]] = float(v)
        return [self.memo[k] for k in keys]

    def save(self) -> None:
        self.path.write_bytes(pickle.dumps(self.memo))


class _MemoEmbedder:
    """A sentence embedder whose vectors are remembered on disk."""

    def __init__(self, inner: Any, path: Path) -> None:
        self.inner, self.path = inner, path
        self.memo: dict[bytes, np.ndarray] = pickle.loads(path.read_bytes()) if path.is_file() else {}

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode()).digest() for t in texts]
        new = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in self.memo))
        if new:
            for t, v in zip(new, np.asarray(self.inner.embed_documents(new), dtype=np.float32), strict=True):
                self.memo[hashlib.sha1(t.encode()).digest()] = v
        return np.stack([self.memo[k] for k in keys]) if keys else np.zeros((0, 384), dtype=np.float32)

    def save(self) -> None:
        self.path.write_bytes(pickle.dumps(self.memo))


def _checker_source_hash() -> str:
    import rag.support
    import rag.text

    return hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (rag.support, rag.text))).hexdigest()[:16]


def compute_features(
    rows: list[dict[str, Any]], features_cache: Path | None, model_cache: Path | None
) -> np.ndarray:
    """Feature matrix (rows x FEATURE_NAMES; NaN where a feature is None), cached per data and checker source."""
    from rag.rerank import CrossEncoderReranker
    from rag.support import FEATURE_NAMES, SupportChecker, _MiniLM

    key = hashlib.sha256(json.dumps([FEATURE_NAMES, _checker_source_hash(), [
        (r["id"], r["context"], r["question"], r["response"]) for r in rows]]).encode()).hexdigest()
    if features_cache is not None and features_cache.is_file():
        stored = json.loads(features_cache.read_text())
        if stored.get("key") == key:
            logger.info("features from %s", features_cache)
            return np.asarray(stored["X"], dtype=np.float64)
    reranker: Any = CrossEncoderReranker(batch_size=1)
    embedder: Any = _MiniLM()
    if model_cache is not None:
        model_cache.mkdir(parents=True, exist_ok=True)
        reranker = _MemoReranker(reranker, model_cache / "cross_encoder.pkl")
        embedder = _MemoEmbedder(embedder, model_cache / "embeddings.pkl")
    checker = SupportChecker(reranker=reranker, embedder=embedder)  # features_many needs no calibration
    X: list[list[float]] = []
    batch = 16
    for i in range(0, len(rows), batch):
        part = rows[i : i + batch]
        feats = checker.features_many([(r["context"], r["response"]) for r in part],
                                      questions=[r["question"] for r in part])
        X.extend([np.nan if v is None else float(v) for v in f.vector()] for f in feats)
        if (i // batch) % 10 == 0:
            logger.info("features %d/%d", i + len(part), len(rows))
            if model_cache is not None:
                reranker.save()
                embedder.save()
    if model_cache is not None:
        reranker.save()
        embedder.save()
    if features_cache is not None:
        features_cache.parent.mkdir(parents=True, exist_ok=True)
        features_cache.write_text(json.dumps({"key": key, "X": [[None if np.isnan(v) else v for v in x] for x in X]}))
    return np.asarray(X, dtype=np.float64)


# --------------------------------------------------------------------------- metrics


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under ROC for positives ``y == 1`` and scores ``s`` (ties count one half)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(set(y.tolist())) == 2 else float("nan")


def figures(y_unsup: np.ndarray, support: np.ndarray, lm: np.ndarray | None = None) -> dict[str, float]:
    """Balanced accuracy, AUROC, precision/recall/F1 for "unsupported" (and on ``lm`` rows when given)."""
    from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support

    pred = support < THRESHOLD
    p, r, f, _ = precision_recall_fscore_support(y_unsup, pred, average="binary", pos_label=1, zero_division=0)
    out = {
        "balanced_accuracy": float(balanced_accuracy_score(y_unsup, pred)),
        "auroc": auroc(y_unsup, 1 - support),
        "precision_unsupported": float(p),
        "recall_unsupported": float(r),
        "f1_unsupported": float(f),
    }
    if lm is not None and lm.any():
        out["balanced_accuracy_length_matched"] = float(balanced_accuracy_score(y_unsup[lm], pred[lm]))
        out["auroc_length_matched"] = auroc(y_unsup[lm], 1 - support[lm])
    return out


def folds(groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped K-fold with a shuffled (deterministic) assignment of groups to folds."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(SEED)
    fold_of = dict(zip(uniq.tolist(), (rng.permutation(len(uniq)) % FOLDS).tolist(), strict=True))
    f = np.asarray([fold_of[g] for g in groups.tolist()])
    return [(np.flatnonzero(f != k), np.flatnonzero(f == k)) for k in range(FOLDS)]


def set_weights(sets: np.ndarray, y_sup: np.ndarray, weights: dict[str, float]) -> np.ndarray:
    """Sample weights: each set sums to its weight, split equally between its two classes; mean 1."""
    w = np.zeros(len(sets))
    for name in np.unique(sets):
        for label in (0, 1):
            m = (sets == name) & (y_sup == label)
            if m.any():
                w[m] = weights.get(str(name), 1.0) / 2 / m.sum()
    return w / w.mean()


# --------------------------------------------------------------------------- the combiner


def fit_logistic(X: np.ndarray, y_sup: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    """Sign-constrained, weighted, L2 logistic regression on standardised features.

    Each weight keeps the direction in ``rag.support.FEATURE_SIGNS`` (or is 0), so the model cannot learn
    "more relevant means less supported", which on HaluEval is only a length effect. A missing value (a
    question feature without a question) is set to the feature's mean, i.e. it contributes nothing, as in
    :class:`rag.support._Combiner`. Means and scales are weighted, over the rows that have the feature.
    Minimises sum(w * log-loss) + ||coef||^2 / (2 C) with L-BFGS-B; the intercept is free.
    """
    from scipy.optimize import minimize

    from rag.support import FEATURE_NAMES, FEATURE_SIGNS

    have = ~np.isnan(X)
    mean = np.asarray([np.average(X[have[:, j], j], weights=w[have[:, j]]) if have[:, j].any() else 0.0
                       for j in range(X.shape[1])])
    Xf = np.where(have, X, mean)
    scale = np.sqrt(np.asarray([np.average((Xf[have[:, j], j] - mean[j]) ** 2, weights=w[have[:, j]])
                                if have[:, j].any() else 1.0 for j in range(X.shape[1])]))
    scale[scale == 0] = 1.0
    Z = (Xf - mean) / scale
    y = y_sup.astype(float)

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        z = p[0] + Z @ p[1:]
        grad = w * (1.0 / (1.0 + np.exp(-z)) - y)
        value = float(np.sum(w * (np.logaddexp(0.0, z) - y * z)) + 0.5 / C_REG * p[1:] @ p[1:])
        return value, np.concatenate([[grad.sum()], Z.T @ grad + p[1:] / C_REG])

    bounds = [(None, None)] + [(0.0, None) if FEATURE_SIGNS[n] > 0 else (None, 0.0) for n in FEATURE_NAMES]
    res = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    if not res.success:
        logger.warning("logistic fit did not converge: %s", res.message)
    coef = [0.0 if abs(c) < 1e-6 else float(c) for c in res.x[1:]]
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": coef, "intercept": float(res.x[0])}


def predict_logistic(params: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """Support probabilities; a missing value contributes nothing."""
    Z = (X - np.asarray(params["mean"])) / np.asarray(params["scale"])
    z = params["intercept"] + np.where(np.isnan(Z), 0.0, Z) @ np.asarray(params["coef"])
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def cross_validate(X: np.ndarray, y_sup: np.ndarray, w: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Out-of-fold support probabilities of the combiner."""
    oof = np.zeros(len(X))
    for train, test in folds(groups):
        oof[test] = predict_logistic(fit_logistic(X[train], y_sup[train], w[train]), X[test])
    return oof


def per_set(rows: list[dict[str, Any]], support: np.ndarray) -> dict[str, dict[str, float]]:
    sets = np.asarray([r["set"] for r in rows])
    y = np.asarray([r["label"] == "unsupported" for r in rows], dtype=int)
    lm = np.asarray([r["length_matched"] for r in rows])
    out = {}
    for name in dict.fromkeys(sets.tolist()):
        m = sets == name
        out[name] = {"pairs": int(m.sum()), **figures(y[m], support[m], lm[m])}
    return out


def threshold_curve(rows: list[dict[str, Any]], support: np.ndarray) -> dict[str, dict[str, float]]:
    """Balanced accuracy per set if the threshold moved (out-of-fold scores): how close to a cliff 0.5 sits."""
    from sklearn.metrics import balanced_accuracy_score

    sets = np.asarray([r["set"] for r in rows])
    y = np.asarray([r["label"] == "unsupported" for r in rows], dtype=int)
    return {name: {f"{t:.2f}": round(float(balanced_accuracy_score(y[sets == name], support[sets == name] < t)), 4)
                   for t in (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)} for name in dict.fromkeys(sets.tolist())}


def single_features(rows: list[dict[str, Any]], X: np.ndarray) -> dict[str, dict[str, float]]:
    """AUROC of each feature alone per set, in its constrained direction (0.5: no signal or absent)."""
    from rag.support import FEATURE_NAMES, FEATURE_SIGNS

    sets = np.asarray([r["set"] for r in rows])
    y = np.asarray([r["label"] == "unsupported" for r in rows], dtype=int)
    out: dict[str, dict[str, float]] = {}
    for j, name in enumerate(FEATURE_NAMES):
        out[name] = {}
        for s in dict.fromkeys(sets.tolist()):
            m = (sets == s) & ~np.isnan(X[:, j])
            out[name][s] = round(auroc(y[m], -FEATURE_SIGNS[name] * X[m, j]), 3) if m.sum() > 1 else float("nan")
    return out


# --------------------------------------------------------------------------- speed


def time_checker(rows: list[dict[str, Any]], n: int, calibration: Path | None) -> float:
    """ms per pair of :meth:`SupportChecker.check`, one pair per call (as the product checks a sentence), on the
    first ``n`` rows, with the real models (no disk cache) and the stored (or given) calibration."""
    from rag.support import SupportChecker

    sample = rows[:n]
    checker = SupportChecker(calibration=calibration)
    checker.warm_up()
    checker.check(sample[0]["context"], sample[0]["response"], question=sample[0]["question"])
    checker._vector_cache.clear()
    checker._ce_cache.clear()
    start = time.perf_counter()
    for r in sample:
        checker.check(r["context"], r["response"], question=r["question"])
    return (time.perf_counter() - start) * 1000 / len(sample)


# --------------------------------------------------------------------------- LLM judge (optional variant)

JUDGE_SYSTEM = (
    "You check answers against a passage. Reply Yes if the passage states or directly implies the answer "
    "to the question, otherwise reply No."
)


def judge_messages(premise: str, claim: str, question: str | None) -> list[dict[str, str]]:
    q = f"Question: {question}\n" if question else ""
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": f"Passage: {premise}\n\n{q}Answer: {claim}\n\n"
                                    "Is the answer fully supported by the passage? Reply Yes or No."},
    ]


def make_llm_judge(model_name: str | None) -> Callable[[str, str, str | None], float] | None:
    """An LLM yes-probability judge from :mod:`rag.llm_model` on the claim's window, or None when it cannot load."""
    try:
        from rag.llm_model import DEFAULT_MODEL, LocalChatModel, resolve_model_path
        from rag.settings import get_settings

        path = resolve_model_path(model_name or DEFAULT_MODEL, get_settings().data_dir / "models")
        model = LocalChatModel(path, n_ctx=2048)
        model.warm_up()
    except Exception as exc:  # noqa: BLE001 - optional variant: report and skip
        logger.warning("LLM judge unavailable: %s: %s", type(exc).__name__, exc)
        return None

    def judge(premise: str, claim: str, question: str | None) -> float:
        return float(model.yes_no_probability(judge_messages(premise, claim, question)))

    return judge


# --------------------------------------------------------------------------- main


def _table(results: dict[str, dict[str, Any]]) -> str:
    cols = [("pairs", "pairs"), ("balanced_accuracy", "BA"), ("balanced_accuracy_length_matched", "BA len-m"),
            ("auroc", "AUROC"), ("auroc_length_matched", "AUROC len-m"), ("precision_unsupported", "P unsup"),
            ("recall_unsupported", "R unsup"), ("ms_per_pair", "ms/pair")]
    lines = ["".ljust(30) + "".join(h.rjust(12) for _, h in cols)]
    for name, f in results.items():
        cells = []
        for k, _ in cols:
            v = f.get(k)
            cells.append(" " * 11 + "-" if v is None or (isinstance(v, float) and np.isnan(v))
                         else f"{v:12d}" if k == "pairs" else f"{v:12.1f}" if k == "ms_per_pair" else f"{v:12.3f}")
        lines.append(name.ljust(30) + "".join(cells))
    return "\n".join(lines)


def _parse_named(items: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"error: {what} must look like NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.support_checker", description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                        help="a pairs.jsonl to use (repeatable); default: halueval and wice from shared/data")
    parser.add_argument("--weight", action="append", default=[], metavar="NAME=W",
                        help=f"a set's total weight in the fit (default {DEFAULT_WEIGHTS})")
    parser.add_argument("--no-qswap", action="store_true", help="leave out the question-swap pairs")
    parser.add_argument("--out", type=Path, required=True, help="write the figures here (JSON)")
    parser.add_argument("--calibrate", action="store_true", help="refit and write rag/support_calibration.json")
    parser.add_argument("--model-cache", type=Path, default=CACHE_DIR, help="disk cache of model outputs")
    parser.add_argument("--features-cache", type=Path, default=CACHE_DIR, help="folder of cached feature matrices")
    parser.add_argument("--timing-pairs", type=int, default=30, help="pairs timed per set (0: skip)")
    parser.add_argument("--llm", action="store_true", help="add the LLM judge (rag.llm_model) as a variant")
    parser.add_argument("--llm-limit", type=int, default=50, help="LLM judge on the first N pairs of each set")
    parser.add_argument("--llm-model", default=None, help="registry name or .gguf path (default: rag.llm_model's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    from rag.support import CALIBRATION_PATH, FEATURE_NAMES

    data = {k: Path(v) for k, v in _parse_named(args.data, "--data").items()} or dict(DEFAULT_DATA)
    weights = dict(DEFAULT_WEIGHTS) | {k: float(v) for k, v in _parse_named(args.weight, "--weight").items()}
    by_set = {name: load_pairs(path, name) for name, path in data.items()}
    if "halueval" in by_set and not args.no_qswap:
        by_set[QSWAP] = question_swaps(by_set["halueval"])
    rows = [r for part in by_set.values() for r in part]
    X = np.vstack([compute_features(part, args.features_cache / f"features_{name}.json", args.model_cache)
                   for name, part in by_set.items()])
    sets = np.asarray([r["set"] for r in rows])
    y_sup = np.asarray([r["label"] == "supported" for r in rows], dtype=int)
    groups = np.asarray([r["group"] for r in rows])
    w = set_weights(sets, y_sup, weights)

    oof = cross_validate(X, y_sup, w, groups)
    cv = per_set(rows, oof)
    params = fit_logistic(X, y_sup, w)
    in_sample = per_set(rows, predict_logistic(params, X))
    results: dict[str, dict[str, Any]] = {f"{k} (cross-validated)": v for k, v in cv.items()}
    results |= {f"{k} (fit on all)": v for k, v in in_sample.items()}
    timing: dict[str, float] = {}
    if args.timing_pairs > 0:
        cal: Path | None = None
        if args.calibrate or not CALIBRATION_PATH.is_file():
            cal = args.out.with_suffix(".calibration.json")  # time the new fit, not the stored one
            cal.parent.mkdir(parents=True, exist_ok=True)
            cal.write_text(json.dumps({"features": list(FEATURE_NAMES), **params, "threshold": THRESHOLD}))
        for name, part in by_set.items():
            if name != QSWAP:
                timing[name] = time_checker(part, args.timing_pairs, cal)
                results[f"{name} (cross-validated)"]["ms_per_pair"] = timing[name]

    print(_table(results))
    curve = threshold_curve(rows, oof)
    print("balanced accuracy (cross-validated) at other thresholds:")
    for name, points in curve.items():
        print(f"  {name:28s}" + "".join(f"  {t}: {v:.3f}" for t, v in points.items()))
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    summary: dict[str, Any] = {
        "date": date,
        "data": {name: {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
                 for name, path in data.items()},
        "set_weights": {k: weights.get(k, 1.0) for k in by_set},
        "cv": f"{FOLDS}-fold grouped (HaluEval row / WiCE page), shuffled with seed {SEED}; out-of-fold pooled per set",
        "positive_class": "unsupported",
        "cross_validated": cv,
        "fit_on_all": in_sample,
        "cross_validated_threshold_curve": curve,
        "single_feature_auroc": single_features(rows, X),
        "ms_per_pair": timing,
        "note_ms": "SupportChecker.check, one pair per call, first --timing-pairs pairs of each set, real models, "
                   "caches cleared first",
        "params": params,
    }

    if args.llm:
        judge = make_llm_judge(args.llm_model)
        if judge is None:
            print("LLM judge: unavailable (see log), skipped", file=sys.stderr)
        else:
            llm: dict[str, Any] = {}
            for name, part in by_set.items():
                sub = part[: args.llm_limit]
                start = time.perf_counter()
                probs = np.asarray([judge(r["context"], r["response"], r["question"]) for r in sub])
                ms = (time.perf_counter() - start) * 1000 / len(sub)
                y = np.asarray([r["label"] == "unsupported" for r in sub], dtype=int)
                llm[name] = {"pairs": len(sub), **figures(y, probs), "ms_per_pair": ms}
            summary["llm_judge"] = {"model": args.llm_model or "default", "system_prompt": JUDGE_SYSTEM, **llm}
            print(_table({f"{k} (LLM judge)": v for k, v in llm.items()}))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))

    if args.calibrate:
        round4 = lambda d: {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}  # noqa: E731
        calibration = {
            "model": "logistic regression on standardised features: score = sigmoid(intercept + "
                     "sum(coef * (x - mean) / scale)), a missing feature (q_* without a question) adding nothing; "
                     "supported = score >= threshold",
            "features": list(FEATURE_NAMES),
            **params,
            "threshold": THRESHOLD,
            "date": date,
            "data": summary["data"],
            "pairs": {name: len(part) for name, part in by_set.items()},
            "set_weights": summary["set_weights"],
            "command": "python -m bench.support_checker --calibrate --out bench/results/support.json",
            "procedure": (
                "features from rag.support.SupportChecker.features_many (context=premise, response=claim, "
                "question=question); halueval_qswap = each HaluEval row's supported answer under the question of "
                "the row sharing most words with its context (unsupported) plus the pair as is; sign-constrained "
                f"weighted L2 logistic regression (C={C_REG}, directions from rag.support.FEATURE_SIGNS, scipy "
                "L-BFGS-B) on standardised features, each set weighing set_weights in total with its classes "
                f"balanced; fitted on all pairs after {FOLDS}-fold cross-validation grouped by HaluEval row / WiCE "
                f"page; threshold fixed at {THRESHOLD}. Claim length is not a feature."
            ),
            "cross_validated": {name: round4(f) for name, f in cv.items()},
            "fit_on_all": {name: round4(f) for name, f in in_sample.items()},
            "ms_per_pair": {k: round(v, 1) for k, v in timing.items()},
        }
        CALIBRATION_PATH.write_text(json.dumps(calibration, indent=2) + "\n")
        print(f"wrote {CALIBRATION_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
