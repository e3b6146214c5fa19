"""Our token arithmetic against the real transformers image processors (optional extra).

Each profile's preprocessor_config.json is loaded by transformers' own AutoImageProcessor (the
PIL backend, so no torch is needed) and compared on 1,000 random sizes per profile, including
tiny images, sizes near the pixel limits and aspect ratios around the 200 limit.
"""

from __future__ import annotations

import json
import random
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

try:
    import transformers
    from transformers import AutoImageProcessor
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(
        f"transformers is not installed ({exc}); pip install 'glyph-render[transformers]'",
        allow_module_level=True,
    )

if int(transformers.__version__.split(".")[0]) < 5:  # pragma: no cover
    # Checked with 4.57.1: GLM raises for a side under 28 px instead of scaling it up, the slow
    # Qwen2VLImageProcessor drops a config's `size`, and Glm4v's get_number_of_image_patches
    # ignores the processor's size. We follow transformers 5 (= the current processors).
    pytest.skip(
        f"transformers {transformers.__version__} < 5 has older processor rules",
        allow_module_level=True,
    )

from glyph_render.errors import ImageSizeError
from glyph_render.vision_tokens import get_profile, image_token_info

# The sizes measured on vLLM (width, height), and the real models' preprocessor configs.
VLLM_FACTS = [
    (595, 842),
    (1240, 1754),
    (2480, 3508),
    (1000, 1000),
    (3000, 300),
    (100, 60),
    (28, 28),
]
try:
    from preprocessor_configs import GLYPH_CONFIG, QWEN3_CONFIG, QWEN25_CONFIG
except ImportError:  # tests/ imported as a package
    from tests.preprocessor_configs import GLYPH_CONFIG, QWEN3_CONFIG, QWEN25_CONFIG

CONFIGS: dict[str, dict[str, Any]] = {
    "glyph": GLYPH_CONFIG,
    "qwen2.5-vl": QWEN25_CONFIG,
    "qwen3-vl": QWEN3_CONFIG,
    # Class defaults and override rules, parsed by both sides from the same file.
    "glm-defaults": {"image_processor_type": "Glm4vImageProcessor"},
    "glm46v-ignores-min-max": {
        "image_processor_type": "Glm46VImageProcessor",
        "min_pixels": 100,
        "max_pixels": 10**6,
    },
    "qwen-defaults-patch16": {"image_processor_type": "Qwen2VLImageProcessor", "patch_size": 16},
    "qwen-min-max-override": {
        "image_processor_type": "Qwen2VLImageProcessorFast",
        "size": {"shortest_edge": 12544, "longest_edge": 9633792},
        "min_pixels": 50_000,
        "max_pixels": 2_000_000,
    },
}


def _load_processor(folder: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoImageProcessor.from_pretrained(folder, backend="pil")  # no torch needed


def _reference(processor: Any, height: int, width: int) -> tuple[int, int, int] | None:
    """(resized_h, resized_w, patches) from transformers; None where it refuses the aspect."""
    module = sys.modules[type(processor).__module__]
    size = processor.size
    min_pixels = size["shortest_edge"] if isinstance(size, dict) else size.shortest_edge
    max_pixels = size["longest_edge"] if isinstance(size, dict) else size.longest_edge
    factor = processor.patch_size * processor.merge_size
    try:
        if "num_frames" in module.smart_resize.__code__.co_varnames:  # GLM's signature
            resized = module.smart_resize(
                num_frames=processor.temporal_patch_size,
                height=height,
                width=width,
                temporal_factor=processor.temporal_patch_size,
                factor=factor,
                min_pixels=min_pixels,
                max_pixels=max_pixels,
            )
        else:
            resized = module.smart_resize(
                height, width, factor, min_pixels=min_pixels, max_pixels=max_pixels
            )
    except ValueError as exc:
        assert "aspect ratio" in str(exc)
        return None
    patches = (resized[0] // processor.patch_size) * (resized[1] // processor.patch_size)
    # The helper vLLM calls to size prompts without pixels must agree with the resize.
    assert processor.get_number_of_image_patches(height, width, {}) == patches
    return resized[0], resized[1], patches


def _random_sizes(seed: int, count: int = 1000) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    sizes: list[tuple[int, int]] = []
    while len(sizes) < count:
        kind = rng.random()
        if kind < 0.25:  # tiny: below one cell on a side, around the minimum
            size = (rng.randint(1, 120), rng.randint(1, 120))
        elif kind < 0.7:  # pages and screenshots
            size = (rng.randint(50, 6000), rng.randint(50, 6000))
        elif kind < 0.85:  # huge: shrunk to the maximum
            size = (rng.randint(3000, 20000), rng.randint(3000, 20000))
        else:  # aspect ratio around the 200 limit
            short = rng.randint(1, 150)
            size = (short, max(1, round(short * rng.uniform(150, 230))))
        sizes.append(size if rng.random() < 0.5 else size[::-1])
    return sizes


@pytest.fixture(scope="module")
def processors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    """Every config this transformers can load; older releases lack e.g. Glm46V."""
    loaded = {}
    for name, config in CONFIGS.items():
        folder = tmp_path_factory.mktemp(name.replace(".", "_"))
        (folder / "preprocessor_config.json").write_text(json.dumps(config), encoding="utf-8")
        try:
            loaded[name] = (folder, _load_processor(folder))
        except ValueError as exc:
            if "Unrecognized image processor" not in str(exc):
                raise
    return loaded


def _get(processors: dict[str, tuple[Path, Any]], name: str) -> tuple[Path, Any]:
    if name not in processors:
        kind = CONFIGS[name]["image_processor_type"]
        pytest.skip(f"transformers {transformers.__version__} has no {kind}")
    return processors[name]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_transformers_on_random_sizes(
    processors: dict[str, tuple[Path, Any]], name: str
) -> None:
    folder, processor = _get(processors, name)
    ours = get_profile(folder)
    builtin = get_profile(name) if name in ("glyph", "qwen2.5-vl", "qwen3-vl") else None
    merge = processor.merge_size
    refused = 0
    for width, height in _random_sizes(seed=len(name)) + VLLM_FACTS:
        expected = _reference(processor, height, width)
        profiles = [ours] if builtin is None else [ours, builtin]
        for prof in profiles:
            if expected is None:
                with pytest.raises(ImageSizeError):
                    image_token_info(width, height, prof)
                continue
            info = image_token_info(width, height, prof)
            got = (info.resized_height, info.resized_width, info.patches)
            assert got == expected, f"{prof.name}: {width}x{height}"
            assert info.tokens == expected[2] // merge**2
        refused += expected is None
    assert 0 < refused < 300  # the sample really crossed the aspect-ratio limit both ways


@pytest.mark.parametrize(
    ("name", "width", "height"),
    [("glyph", w, h) for w, h in VLLM_FACTS if w * h < 1_500_000]  # big ones are slow
    + [("glyph", 5, 900), ("qwen2.5-vl", 595, 842), ("qwen2.5-vl", 9, 13), ("qwen3-vl", 1000, 70)],
)
def test_real_preprocessing_grid(
    processors: dict[str, tuple[Path, Any]], name: str, width: int, height: int
) -> None:
    """Run real pixels through the processor: its image_grid_thw is our grid."""
    from PIL import Image

    _, processor = _get(processors, name)
    image = Image.new("RGB", (width, height), (200, 180, 40))
    out = processor(images=[image], return_tensors="np")
    info = image_token_info(width, height, name)
    assert [int(v) for v in out["image_grid_thw"][0]] == [info.grid_t, info.grid_h, info.grid_w]
    assert out["pixel_values"].shape[0] == info.patches
