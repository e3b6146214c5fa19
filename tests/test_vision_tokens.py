"""Image-token and prompt-token arithmetic: measured vLLM facts, hand-derived cases, invariants."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glyph_render.errors import ImageSizeError, ProfileError
from glyph_render.text_tokens import get_tokenizer
from glyph_render.vision_tokens import (
    ImageTokenInfo,
    VisionProfile,
    get_profile,
    image_token_info,
    image_tokens,
    profile_names,
    prompt_tokens,
    smart_resize,
)

QUESTION_31_BYTES = "What is the title of this text?"

# Measured on vLLM serving a model with Glyph's processor settings: (width, height) -> tokens.
VLLM_FACTS = [
    (595, 842, 630),
    (1240, 1754, 2772),
    (2480, 3508, 6045),
    (1000, 1000, 1296),
    (3000, 300, 1177),
    (100, 60, 8),
    (28, 28, 9),
]


@pytest.mark.parametrize(("width", "height", "tokens"), VLLM_FACTS)
def test_vllm_measured_image_tokens(width: int, height: int, tokens: int) -> None:
    assert image_tokens(width, height) == tokens
    assert image_tokens(width, height, "glyph") == tokens
    assert image_token_info(width, height).tokens == tokens


def test_vllm_measured_prompt_tokens() -> None:
    assert len(QUESTION_31_BYTES.encode()) == 31
    # 2 * 630 + [gMASK] <sop> <|user|> \n + 2 * (boi + eoi) + 31 + <|assistant|> \n
    got = prompt_tokens([(595, 842), (595, 842)], QUESTION_31_BYTES, tokenizer="bytes")
    assert got == 1301


# Hand-derived from GLM's smart_resize (pixel limits apply to 2 frames: 2*h*w in
# [12,544, 9,633,792]): (height, width) -> (resized_height, resized_width, tokens).
GLYPH_TABLE = [
    ((842, 595), (840, 588, 630)),  # round(30.07)=30, round(21.25)=21 cells
    ((60, 100), (56, 112, 8)),  # 2*56*112 = 12,544: exactly the minimum, kept
    ((28, 28), (84, 84, 9)),  # 2*784 < 12,544: beta = sqrt(8) = 2.83, ceil -> 3 cells
    ((1, 1), (84, 84, 9)),  # tiny: scaled x28 to 28x28 first, then as above
    ((1, 200), (28, 5600, 200)),  # tiny: x28 -> 28x5600, ratio exactly 200 is allowed
    ((56, 11200), (56, 11200, 800)),  # ratio 200, in range: 2x400 cells
    ((1792, 2688), (1792, 2688, 6144)),  # 2*1792*2688 = 9,633,792: exactly the maximum
    ((1820, 2688), (1792, 2660, 6080)),  # one row over: beta=sqrt(1.015625), floor 64.5, 95.3
    ((3508, 2480), (2604, 1820, 6045)),  # beta=1.3439: floor(93.2)=93, floor(65.9)=65
    ((10000, 10000), (2184, 2184, 6084)),  # beta=4.556: floor(78.4)=78 cells a side
]


@pytest.mark.parametrize(("size", "expected"), GLYPH_TABLE)
def test_glyph_hand_derived(size: tuple[int, int], expected: tuple[int, int, int]) -> None:
    height, width = size
    resized_h, resized_w, tokens = expected
    assert smart_resize(height, width) == (resized_h, resized_w)
    info = image_token_info(width, height)
    assert info == ImageTokenInfo(
        width=width,
        height=height,
        resized_width=resized_w,
        resized_height=resized_h,
        grid_t=1,
        grid_h=resized_h // 14,
        grid_w=resized_w // 14,
        patches=(resized_h // 14) * (resized_w // 14),
        tokens=tokens,
    )
    assert image_tokens(width, height) == tokens


QWEN25_TABLE = [
    ((842, 595), (840, 588, 630)),
    ((3508, 2480), (3500, 2492, 11125)),  # 8.7 MP fits Qwen2.5-VL's 12.8 MP: no shrink
    ((28, 28), (56, 56, 4)),  # 784 < 3,136: beta = 2
    ((1, 1), (56, 56, 4)),  # rounds to 0x0 (no upscale in this rule), beta = 56
    ((1, 200), (28, 812, 29)),  # 0x196 < 3,136: beta = 3.96, ceil(0.14)=1, ceil(28.3)=29
    ((7000, 7000), (3584, 3584, 16384)),  # beta = 7000/3584 exactly; max is 3584^2
]
QWEN3_TABLE = [
    ((842, 595), (832, 608, 494)),  # 32-px cells: round(26.3)=26, round(18.6)=19
    ((32, 32), (256, 256, 64)),  # 1,024 < 65,536: beta = 8
    ((8192, 8192), (4096, 4096, 16384)),  # beta = 2: 16,777,216 = 4096^2
]


@pytest.mark.parametrize(
    ("profile", "size", "expected"),
    [("qwen2.5-vl", s, e) for s, e in QWEN25_TABLE] + [("qwen3-vl", s, e) for s, e in QWEN3_TABLE],
)
def test_qwen_hand_derived(
    profile: str, size: tuple[int, int], expected: tuple[int, int, int]
) -> None:
    height, width = size
    resized_h, resized_w, tokens = expected
    prof = get_profile(profile)
    assert smart_resize(height, width, prof) == (resized_h, resized_w)
    info = image_token_info(width, height, profile)
    assert (info.resized_height, info.resized_width, info.tokens) == expected
    assert info.patches == info.tokens * prof.merge_size**2
    assert image_tokens(width, height, profile) == tokens


def test_profiles_and_aliases() -> None:
    glyph = get_profile("glyph")
    assert get_profile("glm-4.1v") is glyph
    assert get_profile("GLM4V") is glyph
    assert (glyph.patch_size, glyph.merge_size, glyph.temporal_patch_size) == (14, 2, 2)
    assert (glyph.min_pixels, glyph.max_pixels, glyph.max_ratio, glyph.cell) == (
        12_544,
        9_633_792,
        200,
        28,
    )
    qwen3 = get_profile("qwen3-vl")
    assert (qwen3.patch_size, qwen3.cell, qwen3.min_pixels, qwen3.max_pixels) == (
        16,
        32,
        65_536,
        16_777_216,
    )
    assert get_profile(qwen3) is qwen3
    assert {"glyph", "glm-4.1v", "glm4v", "qwen2.5-vl", "qwen3-vl"} <= set(profile_names())


@pytest.mark.parametrize("profile", ["glyph", "qwen2.5-vl", "qwen3-vl"])
@pytest.mark.parametrize(("height", "width"), [(1, 201), (201, 1), (56, 11201), (3, 10000)])
def test_aspect_ratio_past_200_raises(profile: str, height: int, width: int) -> None:
    with pytest.raises(ImageSizeError, match=rf"{width}x{height}.*aspect ratio"):
        image_tokens(width, height, profile)
    with pytest.raises(ImageSizeError):
        smart_resize(height, width, profile)


@pytest.mark.parametrize("bad", [0, -5, 1.5, 595.0, True, "842", None])
def test_bad_sizes_name_the_value(bad: object) -> None:
    image_tokens(595, 842)  # a cached entry for the int must not answer for 595.0
    with pytest.raises(ImageSizeError, match="width") as excinfo:
        image_tokens(bad, 842)  # type: ignore[arg-type]
    assert repr(bad) in str(excinfo.value)
    with pytest.raises(ImageSizeError, match="height"):
        image_token_info(595, bad)  # type: ignore[arg-type]
    with pytest.raises(ImageSizeError, match="height"):
        smart_resize(bad, 595)  # type: ignore[arg-type]


def test_numpy_integers_are_sizes() -> None:
    np = pytest.importorskip("numpy")
    assert image_tokens(np.int64(595), np.int32(842)) == 630


def test_unknown_profile_names_it() -> None:
    with pytest.raises(ProfileError, match="'gpt-vision'.*glyph"):
        get_profile("gpt-vision")
    with pytest.raises(ProfileError, match="does not exist"):
        get_profile("/no/such/preprocessor_config.json")
    with pytest.raises(ProfileError):
        image_tokens(100, 100, "gpt-vision")


def test_profile_validates_its_fields() -> None:
    with pytest.raises(ProfileError, match="patch_size.*0"):
        VisionProfile("x", "glm4v", 0, 2, 2, 1, 10)
    with pytest.raises(ProfileError, match="min_pixels 10 exceeds max_pixels 5"):
        VisionProfile("x", "glm4v", 14, 2, 2, 10, 5)
    with pytest.raises(ProfileError, match="'bicubic'"):
        VisionProfile("x", "bicubic", 14, 2, 2, 1, 10)


# --- prompt tokens ---------------------------------------------------------------------


def test_prompt_tokens_glyph_parts() -> None:
    # No images, empty question: [gMASK] <sop> <|user|> \n <|assistant|> \n
    assert prompt_tokens([], "", tokenizer="bytes") == 6
    # A system turn adds <|system|> \n plus its text.
    assert prompt_tokens([], "", system="Be brief.", tokenizer="bytes") == 6 + 2 + 9
    assert prompt_tokens([], "", system="", tokenizer="bytes") == 6 + 2
    one = prompt_tokens([(1000, 1000)], "Q", tokenizer="bytes")
    assert one == 6 + 2 + 1296 + 1
    # Default text tokenizer is cl100k_base: "hello world" is 2 tokens there.
    assert prompt_tokens([], "hello world") == 6 + 2
    assert prompt_tokens([], "hello world", tokenizer=get_tokenizer("bytes")) == 6 + 11


def test_prompt_tokens_qwen_templates() -> None:
    # Qwen2.5-VL adds "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" (5 + 28),
    # then user turn 5, image 2 + 630, "Hi" 2, "<|im_start|>assistant\n" 3.
    assert prompt_tokens([(595, 842)], "Hi", profile="qwen2.5-vl", tokenizer="bytes") == 675
    assert (
        prompt_tokens([(595, 842)], "Hi", profile="qwen2.5-vl", system="", tokenizer="bytes")
        == 675 - 28
    )
    # Qwen3-VL has no default system prompt and 32-px cells (595x842 -> 494).
    assert prompt_tokens([(595, 842)], "Hi", profile="qwen3-vl", tokenizer="bytes") == 506


def test_prompt_tokens_bad_sizes() -> None:
    with pytest.raises(ImageSizeError, match=r"image_sizes\[1\]"):
        prompt_tokens([(595, 842), (595,)], "q", tokenizer="bytes")  # type: ignore[list-item]
    with pytest.raises(ImageSizeError, match="aspect ratio"):
        prompt_tokens([(10000, 10)], "q", tokenizer="bytes")


# --- invariants --------------------------------------------------------------------------

sides = st.integers(min_value=1, max_value=30_000)


@settings(max_examples=300, deadline=None)
@given(width=sides, height=sides, profile=st.sampled_from(["glyph", "qwen2.5-vl", "qwen3-vl"]))
def test_resize_invariants(width: int, height: int, profile: str) -> None:
    prof = get_profile(profile)
    ratio = max(width, height) / min(width, height)
    if ratio >= 201:
        with pytest.raises(ImageSizeError):
            image_token_info(width, height, prof)
        return
    try:
        info = image_token_info(width, height, prof)
    except ImageSizeError:
        assert ratio > 190  # only GLM's tiny-image upscale can nudge a ratio near 200 over
        return
    cell = prof.cell
    assert info.resized_height % cell == 0 and info.resized_width % cell == 0
    assert info.resized_height >= cell and info.resized_width >= cell
    # The rule's limits: GLM counts temporal_patch_size frames, Qwen one.
    frames = prof.temporal_patch_size if prof.resize_rule == "glm4v" else 1
    pixels = frames * info.resized_height * info.resized_width
    assert prof.min_pixels <= pixels <= prof.max_pixels
    assert info.tokens * prof.merge_size**2 == info.grid_h * info.grid_w == info.patches
    assert info.tokens == image_tokens(width, height, prof)
    # Aspect survives the resize up to one cell of rounding on each side.
    resized_ratio = info.resized_width / info.resized_height
    assert math.isclose(
        resized_ratio,
        width / height,
        rel_tol=cell / min(info.resized_height, info.resized_width) * 2.1,
    )


# --- preprocessor_config.json ----------------------------------------------------------

try:
    from preprocessor_configs import GLYPH_CONFIG, QWEN3_CONFIG, QWEN25_CONFIG
except ImportError:  # tests/ imported as a package
    from tests.preprocessor_configs import GLYPH_CONFIG, QWEN3_CONFIG, QWEN25_CONFIG


def _write(tmp_path: Path, data: object, name: str = "preprocessor_config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("config", "builtin"),
    [(GLYPH_CONFIG, "glyph"), (QWEN25_CONFIG, "qwen2.5-vl"), (QWEN3_CONFIG, "qwen3-vl")],
)
def test_custom_config_matches_builtin(tmp_path: Path, config: dict, builtin: str) -> None:
    path = _write(tmp_path, config)
    custom = get_profile(path)
    ref = get_profile(builtin)
    assert custom.name == str(path.resolve())
    for key in ("resize_rule", "patch_size", "merge_size", "temporal_patch_size", "min_pixels"):
        assert getattr(custom, key) == getattr(ref, key)
    assert custom.max_pixels == ref.max_pixels
    assert custom.default_system == ref.default_system
    for width, height, _ in VLLM_FACTS:
        assert image_tokens(width, height, custom) == image_tokens(width, height, ref)
        assert image_tokens(width, height, str(path)) == image_tokens(width, height, builtin)
    assert prompt_tokens([(595, 842)], "Hi", profile=path, tokenizer="bytes") == prompt_tokens(
        [(595, 842)], "Hi", profile=builtin, tokenizer="bytes"
    )
    assert get_profile(tmp_path) == custom  # a folder means its preprocessor_config.json


def test_custom_config_defaults_and_overrides(tmp_path: Path) -> None:
    # Missing keys take transformers' class defaults.
    glm = get_profile(_write(tmp_path, {"image_processor_type": "Glm4vImageProcessorFast"}))
    assert (glm.min_pixels, glm.max_pixels, glm.patch_size) == (12_544, 11_760_000, 14)
    qwen = get_profile(
        _write(tmp_path, {"image_processor_type": "Qwen2VLImageProcessor"}, "q.json")
    )
    assert (qwen.min_pixels, qwen.max_pixels) == (3_136, 1_003_520)
    # Qwen's processor lets min_pixels/max_pixels override size; GLM's ignores them.
    both = {"size": {"shortest_edge": 12544, "longest_edge": 9633792}, "min_pixels": 100}
    both_q = get_profile(
        _write(tmp_path, {**both, "image_processor_type": "Qwen2VLImageProcessor"}, "bq.json")
    )
    both_g = get_profile(
        _write(tmp_path, {**both, "image_processor_type": "Glm46VImageProcessor"}, "bg.json")
    )
    assert (both_q.min_pixels, both_q.max_pixels) == (100, 9_633_792)
    assert (both_g.min_pixels, both_g.max_pixels) == (12_544, 9_633_792)
    # Combined processor_config.json: image settings under "image_processor".
    combined = {
        "image_processor": {k: v for k, v in GLYPH_CONFIG.items() if k != "processor_class"}
    }
    assert image_tokens(2480, 3508, _write(tmp_path, combined, "processor_config.json")) == 6045


def test_custom_config_reloads_when_file_changes(tmp_path: Path) -> None:
    path = _write(tmp_path, GLYPH_CONFIG)
    assert get_profile(path).patch_size == 14
    _write(
        tmp_path,
        {**GLYPH_CONFIG, "patch_size": 16, "size": {"shortest_edge": 1, "longest_edge": 10**8}},
    )
    assert get_profile(path).patch_size == 16


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({"patch_size": 14}, "image_processor_type"),
        ({"image_processor_type": "SiglipImageProcessor"}, "'SiglipImageProcessor'"),
        ({"image_processor_type": 7}, "image_processor_type.*7"),
        ({**GLYPH_CONFIG, "patch_size": "14"}, "'patch_size'.*'14'"),
        ({**GLYPH_CONFIG, "merge_size": 0}, "'merge_size'.*0"),
        ({**GLYPH_CONFIG, "size": {"shortest_edge": 12544}}, "'longest_edge'"),
        ({**GLYPH_CONFIG, "size": [12544, 9633792]}, "'size' must be an object"),
        (
            {**GLYPH_CONFIG, "size": {"shortest_edge": -1, "longest_edge": 5}},
            "'size.shortest_edge'.*-1",
        ),
        ({**GLYPH_CONFIG, "size": {"shortest_edge": 10, "longest_edge": 5}}, "exceeds"),
        ({**QWEN25_CONFIG, "max_pixels": 1.5e7}, "'max_pixels'.*15000000.0"),
        ({"image_processor": 3}, "'image_processor' must be an object"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, content: object, message: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ProfileError, match=message) as excinfo:
        get_profile(path)
    assert str(path.resolve()) in str(excinfo.value)
