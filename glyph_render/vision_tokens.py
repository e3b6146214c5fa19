"""Exact image-token and prompt-token arithmetic for Glyph-style vision-language models.

A page image costs the LLM ``grid_h * grid_w / merge_size**2`` tokens, where the grid comes
from the image processor's ``smart_resize``. Budgets are only as good as this number, so the
resize rules below are transcriptions of the real processors, not approximations:

* ``glm4v`` rule: ``smart_resize`` in transformers
  ``src/transformers/models/glm4v/image_processing_glm4v.py`` (same function in
  ``image_processing_pil_glm4v.py`` and ``models/glm46v/``). An image is treated as
  ``temporal_patch_size`` identical frames (``num_frames = temporal_factor = 2``), so the pixel
  limits apply to ``2 * h * w``: Glyph's ``longest_edge`` 9,633,792 allows 4,816,896 pixels a
  frame (6,144 cells of 28x28) and ``shortest_edge`` 12,544 asks for 6,272. Images with a side
  under one cell (28 px) are first scaled up so the short side is 28 (``int()`` truncation),
  and the aspect check (``> 200`` raises) runs on that scaled size (transformers 5; 4.57
  raised for such images instead, so older servers reject them). Only ``size`` counts:
  ``min_pixels``/``max_pixels`` keys are ignored by ``Glm4vImageProcessor``.
* ``qwen2vl`` rule: ``smart_resize`` in transformers
  ``src/transformers/models/qwen2_vl/image_processing_qwen2_vl.py``, used by Qwen2-VL,
  Qwen2.5-VL and Qwen3-VL. Limits apply to ``h * w``; no tiny-image upscale (a 10x10 image
  rounds to 0 and the ``min_pixels`` branch grows it); ``min_pixels``/``max_pixels`` keys
  override ``size``.

In both, ``h_bar = round(h / f) * f`` (Python's round-half-even) with ``f = patch * merge``;
over the maximum both sides shrink by ``beta`` and floor (never below ``f``), under the minimum
they grow by ``beta`` and ceil. The image's grid is ``(1, h_bar / patch, w_bar / patch)``:
the frame copies fill one temporal patch.

Built-in profiles (``get_profile``): ``glyph`` (aliases ``glm-4.1v``, ``glm4v``) with
zai-org/Glyph's ``preprocessor_config.json`` (shortest_edge 12,544, longest_edge 9,633,792,
patch 14, merge 2, temporal 2); ``qwen2.5-vl`` with Qwen2.5-VL's (min_pixels 3,136,
max_pixels 12,845,056, patch 14); ``qwen3-vl`` with Qwen3-VL's (shortest_edge 65,536,
longest_edge 16,777,216, patch 16 -> 32-px cells). Any other model: pass the path of its
``preprocessor_config.json``.

Checked against a vLLM server running a model with Glyph's processor settings (width x height
-> image tokens): 595x842 -> 630, 1240x1754 -> 2772, 2480x3508 -> 6045, 1000x1000 -> 1296,
3000x300 -> 1177, 100x60 -> 8 (rounds to 56x112, exactly the 12,544 two-frame minimum, so no
growth) and 28x28 -> 9 (1,568 two-frame pixels < 12,544: beta = sqrt(8), ceil -> 84x84).

Prompt tokens (``prompt_tokens``) for one user message holding the images then the question,
with the generation prompt, in the GLM-4.1V chat template::

    [gMASK]<sop>[<|system|>\\n{system}]<|user|>\\n
    (<|begin_of_image|>{N image tokens}<|end_of_image|>)*{question}<|assistant|>\\n

The same vLLM server reported usage.prompt_tokens = 1301 for two 595x842 pages and a 31-byte
question on a one-token-per-byte tokenizer: 2 * 630 + 41, where 41 = 2 ([gMASK] <sop])
+ 2 (<|user|> \\n) + 2 * 2 image wrappers + 31 + 2 (<|assistant|> \\n). Qwen profiles use the
ChatML template (``<|im_start|>user\\n ... <|im_end|>\\n<|im_start|>assistant\\n``, images as
``<|vision_start|>...<|vision_end|>``); Qwen2.5-VL's template inserts the default system
prompt "You are a helpful assistant." when none is given, Qwen3-VL's does not. Those template
counts are fields of :class:`VisionProfile`; only system and question text go through the
text tokenizer.
"""

from __future__ import annotations

import json
import math
import operator
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from glyph_render.errors import ImageSizeError, ProfileError
from glyph_render.text_tokens import TextTokenizer, get_tokenizer

__all__ = [
    "ImageTokenInfo",
    "VisionProfile",
    "get_profile",
    "image_token_info",
    "image_tokens",
    "profile_names",
    "prompt_tokens",
    "smart_resize",
]

RULE_GLM4V = "glm4v"
RULE_QWEN2VL = "qwen2vl"
_RULES = (RULE_GLM4V, RULE_QWEN2VL)


def _is_int(value: object) -> bool:
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


@dataclass(frozen=True)
class VisionProfile:
    """A model's image processor settings plus the chat-template token counts around them.

    Template counts are in the model's own tokens (special tokens and the fixed newlines),
    so a profile predicts ``usage.prompt_tokens`` whatever text tokenizer counts the question.
    """

    name: str
    resize_rule: str
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    min_pixels: int
    max_pixels: int
    max_ratio: float = 200.0
    prompt_prefix_tokens: int = 2  # [gMASK] <sop>
    system_turn_tokens: int = 2  # <|system|> \n  (around the system text)
    user_turn_tokens: int = 2  # <|user|> \n  (around images + question)
    image_wrapper_tokens: int = 2  # <|begin_of_image|> ... <|end_of_image|>
    generation_prompt_tokens: int = 2  # <|assistant|> \n
    default_system: str | None = None  # what the template inserts when no system is given
    text_tokenizer: str = "cl100k_base"  # stand-in when the model's tokenizer.json is not given

    def __post_init__(self) -> None:
        if self.resize_rule not in _RULES:
            raise ProfileError(
                f"profile {self.name!r}: resize_rule {self.resize_rule!r} is not one of {_RULES}"
            )
        for key in ("patch_size", "merge_size", "temporal_patch_size", "min_pixels", "max_pixels"):
            value = getattr(self, key)
            if not _is_int(value) or value < 1:
                raise ProfileError(
                    f"profile {self.name!r}: {key} must be a positive integer, got {value!r}"
                )
        if self.min_pixels > self.max_pixels:
            raise ProfileError(
                f"profile {self.name!r}: min_pixels {self.min_pixels} exceeds "
                f"max_pixels {self.max_pixels}"
            )
        ratio = self.max_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio >= 1:
            raise ProfileError(
                f"profile {self.name!r}: max_ratio must be >= 1, got {self.max_ratio!r}"
            )
        for key in (
            "prompt_prefix_tokens",
            "system_turn_tokens",
            "user_turn_tokens",
            "image_wrapper_tokens",
            "generation_prompt_tokens",
        ):
            value = getattr(self, key)
            if not _is_int(value) or value < 0:
                raise ProfileError(
                    f"profile {self.name!r}: {key} must be a non-negative integer, got {value!r}"
                )

    @property
    def cell(self) -> int:
        """Side in pixels of the square that becomes one LLM token (patch * merge)."""
        return self.patch_size * self.merge_size


@dataclass(frozen=True)
class ImageTokenInfo:
    """How one image is resized, patched and merged; ``tokens`` is what the LLM pays."""

    width: int
    height: int
    resized_width: int
    resized_height: int
    grid_t: int
    grid_h: int
    grid_w: int
    patches: int
    tokens: int


_GLM_TEMPLATE: dict[str, Any] = {
    "prompt_prefix_tokens": 2,
    "system_turn_tokens": 2,
    "user_turn_tokens": 2,
    "image_wrapper_tokens": 2,
    "generation_prompt_tokens": 2,
    "default_system": None,
}
# ChatML: <|im_start|> role \n ... <|im_end|> \n is 5 tokens a turn; the generation prompt
# <|im_start|> assistant \n is 3.
_QWEN3_TEMPLATE: dict[str, Any] = {
    "prompt_prefix_tokens": 0,
    "system_turn_tokens": 5,
    "user_turn_tokens": 5,
    "image_wrapper_tokens": 2,
    "generation_prompt_tokens": 3,
    "default_system": None,
}
_QWEN2_TEMPLATE: dict[str, Any] = {
    **_QWEN3_TEMPLATE,
    "default_system": "You are a helpful assistant.",
}

_GLYPH = VisionProfile(
    name="glyph",
    resize_rule=RULE_GLM4V,
    patch_size=14,
    merge_size=2,
    temporal_patch_size=2,
    min_pixels=12_544,
    max_pixels=9_633_792,
    **_GLM_TEMPLATE,
)
_QWEN25 = VisionProfile(
    name="qwen2.5-vl",
    resize_rule=RULE_QWEN2VL,
    patch_size=14,
    merge_size=2,
    temporal_patch_size=2,
    min_pixels=3_136,
    max_pixels=12_845_056,
    **_QWEN2_TEMPLATE,
)
_QWEN3 = VisionProfile(
    name="qwen3-vl",
    resize_rule=RULE_QWEN2VL,
    patch_size=16,
    merge_size=2,
    temporal_patch_size=2,
    min_pixels=65_536,
    max_pixels=16_777_216,
    **_QWEN3_TEMPLATE,
)
_BUILTIN: dict[str, VisionProfile] = {
    "glyph": _GLYPH,
    "glm-4.1v": _GLYPH,
    "glm4v": _GLYPH,
    "qwen2.5-vl": _QWEN25,
    "qwen2_5_vl": _QWEN25,
    "qwen3-vl": _QWEN3,
    "qwen3_vl": _QWEN3,
}

# transformers' class defaults, used when a preprocessor_config.json leaves a key out.
_CLASS_DEFAULTS: dict[str, dict[str, int]] = {
    RULE_GLM4V: {
        "patch_size": 14,
        "merge_size": 2,
        "temporal_patch_size": 2,
        "shortest_edge": 112 * 112,
        "longest_edge": 28 * 28 * 15_000,
    },
    RULE_QWEN2VL: {
        "patch_size": 14,
        "merge_size": 2,
        "temporal_patch_size": 2,
        "shortest_edge": 56 * 56,
        "longest_edge": 28 * 28 * 1280,
    },
}
# image_processor_type (without Fast/Pil) or processor_class -> resize rule.
_PROCESSOR_RULES: dict[str, str] = {
    "Glm4vImageProcessor": RULE_GLM4V,
    "Glm46VImageProcessor": RULE_GLM4V,
    "Glm4vProcessor": RULE_GLM4V,
    "Glm46VProcessor": RULE_GLM4V,
    "Qwen2VLImageProcessor": RULE_QWEN2VL,
    "Qwen2_5_VLImageProcessor": RULE_QWEN2VL,
    "Qwen2VLProcessor": RULE_QWEN2VL,
    "Qwen2_5_VLProcessor": RULE_QWEN2VL,
    "Qwen3VLProcessor": RULE_QWEN2VL,
}


def profile_names() -> list[str]:
    """Names (and aliases) ``get_profile`` knows without a file."""
    return sorted(_BUILTIN)


def get_profile(name_or_path: str | os.PathLike[str] | VisionProfile) -> VisionProfile:
    """A built-in profile by name, or one read from a ``preprocessor_config.json`` path.

    A folder is read as its ``preprocessor_config.json``; a combined ``processor_config.json``
    with an ``image_processor`` section works too.
    """
    if isinstance(name_or_path, VisionProfile):
        return name_or_path
    if isinstance(name_or_path, str):
        builtin = _BUILTIN.get(name_or_path.strip().lower())
        if builtin is not None:
            return builtin
    elif not isinstance(name_or_path, os.PathLike):
        raise ProfileError(f"vision profile must be a name or a path, got {name_or_path!r}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        path = path / "preprocessor_config.json"
    if not path.is_file():
        if isinstance(name_or_path, str) and not _looks_like_path(name_or_path):
            raise ProfileError(
                f"unknown vision profile {name_or_path!r}; known: {', '.join(profile_names())}, "
                "or the path of a preprocessor_config.json"
            )
        raise ProfileError(f"preprocessor config {str(path)!r} does not exist")
    stat = path.stat()
    return _profile_from_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def smart_resize(
    height: int, width: int, profile: str | os.PathLike[str] | VisionProfile = "glyph"
) -> tuple[int, int]:
    """``(resized_height, resized_width)`` exactly as the profile's image processor resizes.

    Argument order is transformers' (height first); the other functions here take width first,
    as PIL's ``Image.size`` does.
    """
    prof = get_profile(profile)
    _check_side("height", height)
    _check_side("width", width)
    return _resize(operator.index(height), operator.index(width), prof)


def image_token_info(
    width: int, height: int, profile: str | os.PathLike[str] | VisionProfile = "glyph"
) -> ImageTokenInfo:
    """Resize, grid and token count of one ``width`` x ``height`` image."""
    prof = get_profile(profile)
    _check_side("width", width)
    _check_side("height", height)
    return _info(operator.index(width), operator.index(height), prof)


def image_tokens(
    width: int, height: int, profile: str | os.PathLike[str] | VisionProfile = "glyph"
) -> int:
    """LLM tokens for one ``width`` x ``height`` image (cached: budget searches call it a lot)."""
    prof = profile if isinstance(profile, VisionProfile) else get_profile(profile)
    # Validate before the cache: 595.0 hashes like 595 and must not hit its entry.
    _check_side("width", width)
    _check_side("height", height)
    return _info(operator.index(width), operator.index(height), prof).tokens


def prompt_tokens(
    image_sizes: Sequence[tuple[int, int]],
    question: str,
    *,
    profile: str | os.PathLike[str] | VisionProfile = "glyph",
    system: str | None = None,
    tokenizer: str | TextTokenizer | None = None,
) -> int:
    """Predicted ``usage.prompt_tokens`` of one user turn: the images, then the question.

    ``image_sizes`` are ``(width, height)``. ``system=None`` means the template's default
    (none for GLM); ``""`` is an empty system turn, which still costs its wrapper tokens.
    ``tokenizer`` counts the question and system text; it defaults to the profile's stand-in
    (cl100k_base), so pass the model's ``tokenizer.json`` for an exact count.
    """
    prof = get_profile(profile)
    tok = get_tokenizer(prof.text_tokenizer if tokenizer is None else tokenizer)
    total = prof.prompt_prefix_tokens + prof.user_turn_tokens + prof.generation_prompt_tokens
    system_text = prof.default_system if system is None else system
    if system_text is not None:
        total += prof.system_turn_tokens + tok.count(system_text)
    for index, size in enumerate(image_sizes):
        try:
            width, height = size
        except (TypeError, ValueError):
            raise ImageSizeError(
                f"image_sizes[{index}] must be a (width, height) pair, got {size!r}"
            ) from None
        total += prof.image_wrapper_tokens + image_tokens(width, height, prof)
    return total + tok.count(question)


# --- the rules ---------------------------------------------------------------------------


@lru_cache(maxsize=65_536)
def _info(width: int, height: int, prof: VisionProfile) -> ImageTokenInfo:
    resized_height, resized_width = _resize(height, width, prof)
    grid_h = resized_height // prof.patch_size
    grid_w = resized_width // prof.patch_size
    grid_t = 1  # the temporal_patch_size copies of a still image make one temporal patch
    patches = grid_t * grid_h * grid_w
    return ImageTokenInfo(
        width=width,
        height=height,
        resized_width=resized_width,
        resized_height=resized_height,
        grid_t=grid_t,
        grid_h=grid_h,
        grid_w=grid_w,
        patches=patches,
        tokens=patches // (prof.merge_size * prof.merge_size),
    )


def _resize(height: int, width: int, prof: VisionProfile) -> tuple[int, int]:
    if prof.resize_rule == RULE_GLM4V:
        return _resize_glm4v(height, width, prof)
    return _resize_qwen2vl(height, width, prof)


def _resize_glm4v(height: int, width: int, prof: VisionProfile) -> tuple[int, int]:
    factor = prof.cell
    num_frames = temporal_factor = prof.temporal_patch_size
    orig = (width, height)
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height = int(height * scale)
        width = int(width * scale)
    _check_ratio(height, width, prof, orig)
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > prof.max_pixels:
        beta = math.sqrt((num_frames * height * width) / prof.max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < prof.min_pixels:
        beta = math.sqrt(prof.min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _resize_qwen2vl(height: int, width: int, prof: VisionProfile) -> tuple[int, int]:
    factor = prof.cell
    _check_ratio(height, width, prof, (width, height))
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > prof.max_pixels:
        beta = math.sqrt((height * width) / prof.max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < prof.min_pixels:
        beta = math.sqrt(prof.min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _check_ratio(height: int, width: int, prof: VisionProfile, orig: tuple[int, int]) -> None:
    ratio = max(height, width) / min(height, width)
    if ratio > prof.max_ratio:
        raise ImageSizeError(
            f"image {orig[0]}x{orig[1]} (width x height) has aspect ratio {ratio:g}, past "
            f"{prof.name}'s limit of {prof.max_ratio:g}"
        )


def _check_side(label: str, value: object) -> None:
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise ImageSizeError(f"image {label} must be a positive integer, got {value!r}")


# --- preprocessor_config.json -------------------------------------------------------------


def _looks_like_path(text: str) -> bool:
    return text.endswith(".json") or "/" in text or os.sep in text or text.startswith("~")


@lru_cache(maxsize=64)
def _profile_from_file(path: str, _mtime_ns: int, _size: int) -> VisionProfile:
    """Parse once per file version (mtime and size are part of the cache key)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read preprocessor config {path!r}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ProfileError(f"preprocessor config {path!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ProfileError(f"preprocessor config {path!r} must hold a JSON object")
    return _profile_from_mapping(data, path)


def _profile_from_mapping(data: Mapping[str, Any], source: str) -> VisionProfile:
    processor_class = data.get("processor_class")
    section = data.get("image_processor")
    if section is not None:  # combined processor_config.json
        if not isinstance(section, Mapping):
            raise ProfileError(f"{source!r}: key 'image_processor' must be an object")
        data = section
    kind_key = "image_processor_type" if "image_processor_type" in data else "processor_class"
    kind = data.get(kind_key, processor_class)
    if kind is None:
        raise ProfileError(
            f"{source!r}: no 'image_processor_type' (or 'processor_class') to choose the resize "
            "rule"
        )
    if not isinstance(kind, str):
        raise ProfileError(f"{source!r}: key {kind_key!r} must be a string, got {kind!r}")
    base = kind.removesuffix("Fast").removesuffix("Pil")
    rule = _PROCESSOR_RULES.get(base)
    if rule is None:
        raise ProfileError(
            f"{source!r}: {kind_key} {kind!r} is not supported; known: "
            f"{', '.join(sorted(_PROCESSOR_RULES))}"
        )
    defaults = _CLASS_DEFAULTS[rule]
    values = {
        key: _int_key(data, key, defaults[key], source)
        for key in ("patch_size", "merge_size", "temporal_patch_size")
    }

    size = data.get("size")
    if size is None:
        edges = {key: defaults[key] for key in ("shortest_edge", "longest_edge")}
    elif isinstance(size, Mapping):
        edges = {key: size[key] for key in ("shortest_edge", "longest_edge") if key in size}
    else:
        raise ProfileError(f"{source!r}: key 'size' must be an object, got {size!r}")
    origin = {key: f"size.{key}" for key in ("shortest_edge", "longest_edge")}
    if rule == RULE_QWEN2VL:  # Qwen2VLImageProcessor lets these override size
        for key, edge in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
            if key in data:
                edges[edge] = data[key]
                origin[edge] = key
    for key in ("shortest_edge", "longest_edge"):
        if key not in edges:
            raise ProfileError(f"{source!r}: 'size' lacks {key!r} (got {size!r})")
        value = edges[key]
        if not _is_int(value) or value < 1:
            raise ProfileError(
                f"{source!r}: key {origin[key]!r} must be a positive integer, got {value!r}"
            )

    if rule == RULE_GLM4V:
        template = _GLM_TEMPLATE
    elif (processor_class or data.get("processor_class")) == "Qwen3VLProcessor":
        template = _QWEN3_TEMPLATE
    else:
        template = _QWEN2_TEMPLATE
    return VisionProfile(
        name=source,
        resize_rule=rule,
        min_pixels=edges["shortest_edge"],
        max_pixels=edges["longest_edge"],
        **values,
        **template,
    )


def _int_key(data: Mapping[str, Any], key: str, default: int, source: str) -> int:
    value = data.get(key, default)
    if not _is_int(value) or value < 1:
        raise ProfileError(f"{source!r}: key {key!r} must be a positive integer, got {value!r}")
    return int(value)
