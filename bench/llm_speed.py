"""Speed of the local LLM on this machine.

    python bench/llm_speed.py [--models qwen2.5-coder-0.5b qwen2.5-coder-1.5b] [--threads 2]

Set OMP_WAIT_POLICY=ACTIVE to compare with libgomp's spin-waiting (LocalChatModel defaults to PASSIVE).
Other jobs on the same cores skew every figure: the load average is printed; ``--wait-idle`` helps.

Prints, per model: assembly time from the pip packages (first, into a fresh cache, and cached),
load time, prompt-eval and decode tokens/s (llama.cpp's own perf counters), time to first token
for a ~600-token RAG prompt, the same for a second question over the same context (prefix reuse),
and a context switch A -> B -> A with and without ``LlamaRAMCache``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.llm_model import MODELS, LocalChatModel, resolve_model_path

SYSTEM = (
    "You answer questions about the product documentation. Use only the numbered sources below. "
    "Cite every sentence with its source label like [S1]. If the sources do not contain the answer, "
    "say you do not know."
)
FACTS = [
    "The Zorblax 9 is a handheld scanner made by Quillon Labs in Tallinn. It weighs 412 grams.",
    "Its lithium battery lasts 31 hours of continuous scanning and charges over USB-C in 90 minutes.",
    "The scanner reads QR codes, Data Matrix, PDF417 and all common 1D barcodes at up to 60 scans per second.",
    "Firmware updates are installed from the Quillon Hub desktop app; version 4.2 added Bluetooth 5.3.",
    "The housing is rated IP65 and survives drops of 1.8 metres onto concrete, tested 500 times.",
    "A two-year warranty covers defects; batteries are covered for one year or 500 charge cycles.",
    "Quillon Labs support answers by e-mail within one business day, in English, Estonian and German.",
    "The Zorblax 9 Pro variant adds an RFID reader and a 2.4 inch colour screen and weighs 468 grams.",
]


def sources(variant: int) -> str:
    """Numbered passages (~560 tokens; ~600 with the system prompt and question)."""
    lines = []
    for i in range(15):
        fact = FACTS[(i + variant) % len(FACTS)]
        lines.append(f"[S{i + 1}] (doc {variant}-{i}) {fact}")
    return "\n".join(lines)


def messages(context: str, question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Sources:\n{context}\n\nQuestion: {question}"}]


def perf(model: LocalChatModel) -> tuple[int, float, int, float]:
    """llama.cpp counters since the last reset: (prompt tokens, prompt ms, decoded tokens, decode ms)."""
    import llama_cpp

    d = llama_cpp.llama_perf_context(model._llm.ctx)
    return d.n_p_eval, d.t_p_eval_ms, d.n_eval, d.t_eval_ms


def perf_reset(model: LocalChatModel) -> None:
    import llama_cpp

    llama_cpp.llama_perf_context_reset(model._llm.ctx)


def ttft(model: LocalChatModel, msgs: list[dict[str, str]], max_tokens: int = 32) -> tuple[float, float, str]:
    """(seconds to first piece, seconds in all, text) for one streamed reply."""
    t0 = time.perf_counter()
    it = model.stream(msgs, max_tokens=max_tokens)
    first = next(it)
    t1 = time.perf_counter()
    text = first + "".join(it)
    return t1 - t0, time.perf_counter() - t0, text


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def wait_idle(seconds: float) -> None:
    """Wait (at most ``seconds``) until the 1-minute load average is below 0.7: other jobs skew timings."""
    deadline = time.monotonic() + seconds
    while os.getloadavg()[0] >= 0.7 and time.monotonic() < deadline:
        time.sleep(5)


def bench_model(name: str, cache: Path, threads: int) -> None:
    print(f"\n== {name} ({MODELS[name].size / 2**20:.0f} MiB), n_threads={threads}, {load()}")
    t0 = time.perf_counter()
    path = resolve_model_path(name, cache)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    resolve_model_path(name, cache)
    cached = time.perf_counter() - t0
    print(f"assembly: first {first:.1f} s, cached {cached * 1000:.1f} ms")

    model = LocalChatModel(path, n_ctx=4096, n_threads=threads)
    t0 = time.perf_counter()
    model.warm_up()
    print(f"load: {time.perf_counter() - t0:.2f} s (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')})")

    ctx_a = sources(0)
    q1 = messages(ctx_a, "How much does the Zorblax 9 weigh?")
    q2 = messages(ctx_a, "How long does the battery last?")
    n_prompt = len(model.prompt_tokens(q1))

    ttft(model, messages("warm-up", "hi"), max_tokens=2)  # first-call overheads out of the way
    model.reset()
    perf_reset(model)
    cold, total, text = ttft(model, q1)
    n_p, t_p, n_e, t_e = perf(model)
    print(f"prompt {n_prompt} tokens, cold: TTFT {cold:.2f} s, reply in {total:.2f} s: {text.strip()[:60]!r}")
    print(f"prompt eval: {n_p} tokens in {t_p / 1000:.2f} s = {n_p / (t_p / 1000):.1f} tok/s")

    perf_reset(model)
    warm, total, text = ttft(model, q2)
    n_p2, _, _, _ = perf(model)
    print(f"second question, same context: TTFT {warm:.2f} s ({n_p2} new prompt tokens evaluated), "
          f"speed-up x{cold / warm:.1f}: {text.strip()[:60]!r}")

    perf_reset(model)
    long_q = messages(ctx_a, "Describe the Zorblax 9 in detail: weight, battery, codes, firmware, housing, "
                             "warranty, support and the Pro variant. Write at least 150 words.")
    model.chat(long_q, max_tokens=160)
    _, _, n_e, t_e = perf(model)
    print(f"decode: {n_e} tokens in {t_e / 1000:.2f} s = {n_e / (t_e / 1000):.1f} tok/s")

    judge = [{"role": "system", "content": "You check claims against sources. Reply Yes or No."},
             {"role": "user", "content": f"Sources:\n{ctx_a}\n\nClaim: The Zorblax 9 weighs 412 grams.\n"
                                         "Is the claim supported? Answer Yes or No."}]
    model.reset()
    t0 = time.perf_counter()
    p = model.yes_no_probability(judge)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.yes_no_probability(judge)
    print(f"yes_no_probability: cold {t_cold:.2f} s, same prompt again {time.perf_counter() - t0:.3f} s "
          f"(P(yes)={p:.3f})")

    # Context switch: A, B, then A again. The live KV cache holds only B when A comes back.
    ctx_b = sources(3)
    for cache_mb in (0, 1024):
        m = model if cache_mb == 0 else LocalChatModel(path, n_ctx=4096, n_threads=threads, ram_cache_mb=cache_mb)
        m.warm_up()
        m.reset()
        times = []
        for msgs in (q1, messages(ctx_b, "Who makes the scanner?"), q2):
            t, _, _ = ttft(m, msgs, max_tokens=8)
            times.append(t)
        label = "live KV only" if cache_mb == 0 else f"+LlamaRAMCache({cache_mb} MB)"
        print(f"A -> B -> A ({label}): TTFT " + ", ".join(f"{t:.2f} s" for t in times))
    print(f"done, {load()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"],
                        choices=sorted(MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each model, wait up to this long for the machine to go idle")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="assembled-model cache (default: a fresh temp dir, so 'first' is a real assembly)")
    args = parser.parse_args(argv)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="llm-bench-"))
    print(f"cpus: {os.cpu_count()}, cache: {cache}")
    try:
        for name in args.models:
            wait_idle(args.wait_idle)
            bench_model(name, cache, args.threads)
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
