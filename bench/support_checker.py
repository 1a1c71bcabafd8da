"""Benchmark (and calibrate) the support checker of :mod:`rag.support` on HaluEval-QA-style pairs.

Every figure is cross-validated with folds grouped by ``row`` (a row's supported and unsupported
responses never sit on both sides of a split); nothing is reported in-sample.

    python -m bench.support_checker --out /tmp/support.json             # figures only
    python -m bench.support_checker --calibrate --out /tmp/support.json # also refit rag/support_calibration.json
    python -m bench.support_checker --llm --llm-limit 200 ...           # add the LLM judge (needs llama-cpp-python)

Variants: each feature alone (its direction and threshold learned on the training folds), the
combined logistic regression (threshold fixed at the stored decision rule, 0.5), and optionally an
LLM judge. "Unsupported" is the positive class for precision / recall / F1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path("/work/shared/data/halueval_qa/pairs.jsonl")
FOLDS = 5
SEED = 0
C_REG = 1.0
THRESHOLD = 0.5


# --------------------------------------------------------------------------- data and features


def load_pairs(path: Path) -> list[dict[str, Any]]:
    """Rows with ``id, row, context, question, response, label, length_matched``."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        if r["label"] not in ("supported", "unsupported"):
            raise ValueError(f"unknown label {r['label']!r} in {r['id']}")
    return rows


def compute_features(rows: list[dict[str, Any]], cache: Path | None) -> tuple[np.ndarray, float]:
    """Feature matrix (rows x FEATURE_NAMES) and measured ms per pair; reuses ``cache`` if it matches."""
    from rag.support import FEATURE_NAMES, SupportChecker

    key = hashlib.sha256(
        json.dumps([FEATURE_NAMES, [(r["id"], r["context"], r["question"], r["response"]) for r in rows]]).encode()
    ).hexdigest()
    if cache is not None and cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            logger.info("features from cache %s", cache)
            return np.asarray(stored["X"], dtype=np.float64), float(stored["ms_per_pair"])
    checker = SupportChecker()  # features_many needs no calibration
    checker.reranker.warm_up()
    checker.embedder.embed_documents(["warm up"])
    X: list[list[float]] = []
    start = time.perf_counter()
    batch = 32
    for i in range(0, len(rows), batch):
        part = rows[i : i + batch]
        feats = checker.features_many(
            [(r["context"], r["response"]) for r in part], questions=[r["question"] for r in part]
        )
        X.extend(f.vector() for f in feats)
        if (i // batch) % 10 == 0:
            logger.info("features %d/%d", i + len(part), len(rows))
    ms = (time.perf_counter() - start) * 1000 / len(rows)
    if cache is not None:
        cache.write_text(json.dumps({"key": key, "X": X, "ms_per_pair": ms}))
    return np.asarray(X, dtype=np.float64), ms


def time_variants(rows: list[dict[str, Any]], n: int) -> dict[str, float]:
    """ms per pair on the first ``n`` pairs, one pair per call (as the product checks a sentence).

    For a single feature: the checker computing only that feature's cross-encoder calls (the
    embedding and lexical parts always run). For "combined": :meth:`SupportChecker.check` with the
    stored calibration, which skips the cross-encoder calls of zero-weight features.
    """
    from rag.errors import ModelUnavailableError
    from rag.support import FEATURE_NAMES, SupportChecker

    sample = rows[:n]
    checker = SupportChecker()
    checker.reranker.warm_up()
    checker.features_many([(sample[0]["context"], sample[0]["response"])], question=sample[0]["question"])
    variants: tuple[str, ...] = FEATURE_NAMES
    try:
        checker.threshold  # noqa: B018 - loads the stored calibration
        variants = (*FEATURE_NAMES, "combined")
    except ModelUnavailableError:
        logger.warning("no stored calibration yet: combined checker not timed")
    out: dict[str, float] = {}
    ce = {"ce_claim", "ce_qa", "ce_sent", "ce_qa_sent", "ce_gain"}
    for name in variants:
        checker._ce_question_cache.clear()
        start = time.perf_counter()
        for r in sample:
            pair = [(r["context"], r["response"])]
            if name == "combined":
                checker.check_many(pair, question=r["question"])
            else:
                checker.features_many(pair, question=r["question"], only={name} & ce)
        out[name] = (time.perf_counter() - start) * 1000 / len(sample)
    return out


# --------------------------------------------------------------------------- metrics


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under ROC for positives ``y == 1`` and scores ``s`` (ties count one half)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(set(y.tolist())) == 2 else float("nan")


def figures(y_unsup: np.ndarray, unsup_score: np.ndarray, pred_unsup: np.ndarray, lm: np.ndarray) -> dict[str, float]:
    """Balanced accuracy (all, length-matched), AUROC, precision/recall/F1 for "unsupported"."""
    from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(y_unsup, pred_unsup, average="binary", pos_label=1, zero_division=0)
    return {
        "balanced_accuracy": float(balanced_accuracy_score(y_unsup, pred_unsup)),
        "balanced_accuracy_length_matched": (
            float(balanced_accuracy_score(y_unsup[lm], pred_unsup[lm])) if lm.any() else float("nan")
        ),
        "auroc": auroc(y_unsup, unsup_score),
        "auroc_length_matched": auroc(y_unsup[lm], unsup_score[lm]),
        "precision_unsupported": float(p),
        "recall_unsupported": float(r),
        "f1_unsupported": float(f),
    }


def folds(groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped K-fold with shuffled group assignment (deterministic)."""
    from sklearn.model_selection import GroupKFold

    uniq = np.unique(groups)
    rng = np.random.default_rng(SEED)
    perm = dict(zip(uniq.tolist(), rng.permutation(len(uniq)).tolist(), strict=True))
    shuffled = np.asarray([perm[g] for g in groups.tolist()])
    return list(GroupKFold(n_splits=FOLDS).split(np.zeros(len(groups)), groups=shuffled))


def best_threshold(y_unsup: np.ndarray, unsup_score: np.ndarray) -> float:
    """Threshold on ``unsup_score`` (predict unsupported when >= t) maximising balanced accuracy."""
    from sklearn.metrics import balanced_accuracy_score

    cands = np.unique(unsup_score)
    mids = np.concatenate([[cands[0] - 1e-9], (cands[:-1] + cands[1:]) / 2, [cands[-1] + 1e-9]])
    if len(mids) > 400:
        mids = np.quantile(unsup_score, np.linspace(0, 1, 401))
    accs = [balanced_accuracy_score(y_unsup, unsup_score >= t) for t in mids]
    return float(mids[int(np.argmax(accs))])


def cv_single_feature(x: np.ndarray, y_unsup: np.ndarray, groups: np.ndarray, lm: np.ndarray) -> dict[str, float]:
    """One feature as a detector: direction and threshold from each training fold, scored out of fold."""
    oof_score = np.zeros(len(x))
    oof_pred = np.zeros(len(x), dtype=bool)
    for train, test in folds(groups):
        sign = 1.0 if auroc(y_unsup[train], x[train]) >= 0.5 else -1.0
        t = best_threshold(y_unsup[train], sign * x[train])
        oof_score[test] = sign * x[test]
        oof_pred[test] = sign * x[test] >= t
    return figures(y_unsup, oof_score, oof_pred, lm)


def fit_logistic(X: np.ndarray, y_sup: np.ndarray) -> dict[str, Any]:
    """Sign-constrained L2 logistic regression on z-scored features.

    Each weight keeps the direction in ``rag.support.FEATURE_SIGNS`` (or is 0), so the model cannot
    learn "more relevant means less supported", which on HaluEval is only a length effect.
    Minimises sum(log-loss) + ||w||^2 / (2 C) with L-BFGS-B; the intercept is free.
    """
    from scipy.optimize import minimize

    from rag.support import FEATURE_NAMES, FEATURE_SIGNS

    mean, scale = X.mean(0), X.std(0)
    scale[scale == 0] = 1.0
    Z = (X - mean) / scale
    y = y_sup.astype(float)

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        z = p[0] + Z @ p[1:]
        grad = 1.0 / (1.0 + np.exp(-z)) - y
        value = float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 / C_REG * p[1:] @ p[1:])
        return value, np.concatenate([[grad.sum()], Z.T @ grad + p[1:] / C_REG])

    bounds = [(None, None)] + [(0.0, None) if FEATURE_SIGNS[n] > 0 else (None, 0.0) for n in FEATURE_NAMES]
    res = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    if not res.success:
        logger.warning("logistic fit did not converge: %s", res.message)
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": [float(c) for c in res.x[1:]],
            "intercept": float(res.x[0])}


def predict_logistic(params: dict[str, Any], X: np.ndarray) -> np.ndarray:
    z = params["intercept"] + ((X - np.asarray(params["mean"])) / np.asarray(params["scale"])) @ np.asarray(params["coef"])
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def cv_combined(
    X: np.ndarray, y_unsup: np.ndarray, groups: np.ndarray, lm: np.ndarray
) -> tuple[dict[str, float], list[dict[str, float]], np.ndarray]:
    """Out-of-fold figures of the logistic combiner (support probability < THRESHOLD -> unsupported)."""
    oof = np.zeros(len(X))
    per_fold = []
    for train, test in folds(groups):
        params = fit_logistic(X[train], 1 - y_unsup[train])
        oof[test] = predict_logistic(params, X[test])
        f = figures(y_unsup[test], 1 - oof[test], oof[test] < THRESHOLD, lm[test])
        per_fold.append({k: round(v, 4) for k, v in f.items()})
    return figures(y_unsup, 1 - oof, oof < THRESHOLD, lm), per_fold, oof


# --------------------------------------------------------------------------- LLM judge

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
    """An LLM yes-probability judge from :mod:`rag.llm_model`, or None when it cannot load.

    Args:
        model_name: a registry name of ``rag.llm_model.MODELS`` or a path to a ``.gguf`` file;
            None: the default model, assembled under ``<data_dir>/models``.
    """
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


def run_llm(rows: list[dict[str, Any]], judge: Callable[[str, str, str | None], float]) -> tuple[np.ndarray, float]:
    probs = []
    start = time.perf_counter()
    for i, r in enumerate(rows):
        probs.append(judge(r["context"], r["response"], r["question"]))
        if i % 50 == 0:
            logger.info("llm judge %d/%d", i, len(rows))
    return np.asarray(probs), (time.perf_counter() - start) * 1000 / max(1, len(rows))


# --------------------------------------------------------------------------- main


def _table(results: dict[str, dict[str, float]]) -> str:
    cols = [("balanced_accuracy", "BA all"), ("balanced_accuracy_length_matched", "BA len-m"), ("auroc", "AUROC"),
            ("auroc_length_matched", "AUROC len-m"), ("precision_unsupported", "P unsup"),
            ("recall_unsupported", "R unsup"), ("f1_unsupported", "F1 unsup"), ("ms_per_pair", "ms/pair")]
    lines = ["variant".ljust(22) + "".join(h.rjust(12) for _, h in cols)]
    for name, f in results.items():
        lines.append(name.ljust(22) + "".join(
            (f"{f[k]:12.1f}" if k == "ms_per_pair" else f"{f[k]:12.3f}") if k in f else " " * 11 + "-" for k, _ in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.support_checker", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="pairs.jsonl (HaluEval QA format)")
    parser.add_argument("--out", type=Path, required=True, help="write the figures here (JSON)")
    parser.add_argument("--calibrate", action="store_true", help="refit and write rag/support_calibration.json")
    parser.add_argument("--features-cache", type=Path, default=None, help="reuse computed features (JSON)")
    parser.add_argument("--limit", type=int, default=None, help="first N rows (groups) only, for a quick look")
    parser.add_argument("--timing-pairs", type=int, default=40, help="pairs timed per variant (0: skip)")
    parser.add_argument("--llm", action="store_true", help="add the LLM judge (rag.llm_model) as a variant")
    parser.add_argument("--llm-limit", type=int, default=None, help="LLM judge on the first N rows (groups) only")
    parser.add_argument("--llm-model", default=None, help="registry name or .gguf path (default: rag.llm_model's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    from rag.support import CALIBRATION_PATH, FEATURE_NAMES

    rows = load_pairs(args.data)
    if args.limit:
        keep = sorted({r["row"] for r in rows})[: args.limit]
        rows = [r for r in rows if r["row"] in set(keep)]
    y_unsup = np.asarray([r["label"] == "unsupported" for r in rows], dtype=int)
    groups = np.asarray([r["row"] for r in rows])
    lm = np.asarray([bool(r["length_matched"]) for r in rows])

    X, ms = compute_features(rows, args.features_cache)
    results: dict[str, dict[str, float]] = {}
    for j, name in enumerate(FEATURE_NAMES):
        results[name] = cv_single_feature(X[:, j], y_unsup, groups, lm)
    combined, per_fold, oof = cv_combined(X, y_unsup, groups, lm)
    results["combined"] = combined
    if args.timing_pairs > 0:
        for name, value in time_variants(rows, args.timing_pairs).items():
            results[name]["ms_per_pair"] = value
        results["combined"].setdefault("ms_per_pair_all_features_batched", ms)

    print(_table(results))  # noqa: T201
    n_lm = int(lm.sum())
    summary: dict[str, Any] = {
        "data": str(args.data),
        "data_sha256": hashlib.sha256(args.data.read_bytes()).hexdigest(),
        "pairs": len(rows),
        "length_matched_pairs": n_lm,
        "cv": f"{FOLDS}-fold GroupKFold by row (shuffled, seed {SEED}); out-of-fold predictions pooled",
        "positive_class": "unsupported",
        "features_ms_per_pair": ms,
        "note_ms": "ms_per_pair: one pair per call on the first --timing-pairs pairs; features_ms_per_pair: "
                   "all features, batches of 32, over the whole file",
        "variants": results,
        "combined_per_fold": per_fold,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))

    if args.llm:
        judge = make_llm_judge(args.llm_model)
        if judge is None:
            print("LLM judge: unavailable (see log), skipped", file=sys.stderr)  # noqa: T201
        else:
            sub = rows
            if args.llm_limit:
                keep = set(sorted({r["row"] for r in rows})[: args.llm_limit])
                sub = [r for r in rows if r["row"] in keep]
            idx = np.asarray([i for i, r in enumerate(rows) if r in sub]) if sub is not rows else np.arange(len(rows))
            probs, llm_ms = run_llm(sub, judge)
            ys, gs, lms = y_unsup[idx], groups[idx], lm[idx]
            fixed = figures(ys, 1 - probs, probs < 0.5, lms)
            tuned = cv_single_feature(probs, ys, gs, lms)
            results["llm_judge_p0.5"] = {**fixed, "ms_per_pair": llm_ms, "n_pairs": float(len(sub))}
            results["llm_judge_cv_thr"] = {**tuned, "ms_per_pair": llm_ms, "n_pairs": float(len(sub))}
            results["combined_on_llm_rows"] = {
                **figures(ys, 1 - oof[idx], oof[idx] < THRESHOLD, lms), "n_pairs": float(len(sub))}
            summary["llm"] = {"model": args.llm_model or "default", "rows": len(sub) // 2,
                              "system_prompt": JUDGE_SYSTEM, "probabilities": probs.round(4).tolist()}
            print(_table({k: v for k, v in results.items() if k.endswith("llm_rows") or k.startswith("llm")}))  # noqa: T201
            args.out.write_text(json.dumps(summary, indent=2))

    if args.calibrate:
        params = fit_logistic(X, 1 - y_unsup)
        calibration = {
            "model": "logistic regression on standardised features: score = sigmoid(intercept + "
                     "sum(coef * (x - mean) / scale)); supported = score >= threshold",
            "features": list(FEATURE_NAMES),
            **params,
            "threshold": THRESHOLD,
            "date": summary["date"],
            "data": str(args.data),
            "data_sha256": summary["data_sha256"],
            "pairs": len(rows),
            "procedure": (
                f"python -m bench.support_checker --calibrate: features from rag.support.SupportChecker.features_many "
                f"(context=premise, response=claim, question=question); sign-constrained L2 logistic regression (C={C_REG}, "
                f"directions from rag.support.FEATURE_SIGNS, scipy L-BFGS-B) on z-scored features, fitted on all pairs after {FOLDS}-fold cross-validation grouped by row; "
                f"threshold fixed at {THRESHOLD} (balanced classes). Claim length is not a feature."
            ),
            "cross_validated": {k: round(v, 4) for k, v in combined.items()},
        }
        CALIBRATION_PATH.write_text(json.dumps(calibration, indent=2) + "\n")
        print(f"wrote {CALIBRATION_PATH}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
