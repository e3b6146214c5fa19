"""RenderConfig: Glyph's JSON read unchanged, round trips, validation errors, presets, detection."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import warnings
from pathlib import Path

import pytest

from glyph_render import PRESETS, ConfigError, RenderConfig, detect_preset
from glyph_render import config as config_module
from glyph_render.config import FontNotice
from glyph_render.fonts import bundled_font


@pytest.fixture
def no_system_fonts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without Verdana or Source Han Sans: the bundled stand-ins are used."""
    monkeypatch.setattr(config_module, "find_system_font", lambda name: None)

# Every key of Glyph's config_en.json, each set away from its default so a key that is dropped
# or misread cannot go unnoticed.
GLYPH_JSON = {
    "page-size": "612,792",
    "dpi": 96,
    "margin-x": 12,
    "margin-y": 14,
    "font-path": "fonts/MyMono.ttf",  # relative: resolved against the JSON's folder
    "font-size": 10,
    "line-height": 12.5,
    "font-color": "#102030",
    "page-bg-color": "#F0F0F0",
    "para-bg-color": "#FFFFE0",
    "para-border-color": "#0000FF",
    "alignment": "JUSTIFY",
    "horizontal-scale": 0.9,
    "first-line-indent": 5,
    "left-indent": 3,
    "right-indent": 4,
    "space-before": 2,
    "space-after": 3,
    "border-width": 1,
    "border-padding": 2,
    "auto-crop-width": False,
    "auto-crop-last-page": False,
    "newline-markup": '<font color="#FF0000"> \\n </font>',
}

EXPECTED = {
    "page_size": (612.0, 792.0),
    "dpi": 96.0,
    "margin_x": 12.0,
    "margin_y": 14.0,
    "font_size": 10.0,
    "line_height": 12.5,
    "font_color": (0x10, 0x20, 0x30),
    "page_bg_color": (0xF0, 0xF0, 0xF0),
    "para_bg_color": (0xFF, 0xFF, 0xE0),
    "para_border_color": (0, 0, 0xFF),
    "alignment": "JUSTIFY",
    "horizontal_scale": 0.9,
    "first_line_indent": 5.0,
    "left_indent": 3.0,
    "right_indent": 4.0,
    "space_before": 2.0,
    "space_after": 3.0,
    "border_width": 1.0,
    "border_padding": 2.0,
    "auto_crop_width": False,
    "auto_crop_last_page": False,
    "newline_markup": '<font color="#FF0000"> \\n </font>',
}


def _write_glyph_config(folder: Path, data: dict) -> Path:
    (folder / "fonts").mkdir(parents=True, exist_ok=True)
    shutil.copy(bundled_font("DejaVuSansMono"), folder / "fonts" / "MyMono.ttf")
    path = folder / "config_en.json"
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return path


def test_every_glyph_key_is_read_unchanged_from_json(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_glyph_config(tmp_path / "config", GLYPH_JSON)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the font path must resolve against the JSON, not the cwd
    cfg = RenderConfig.from_json(path)
    for name, value in EXPECTED.items():
        assert getattr(cfg, name) == value, name
    assert Path(cfg.font_path).resolve() == (tmp_path / "config" / "fonts" / "MyMono.ttf")
    # The marker keeps Glyph's literal backslash-n and its red colour.
    nl = cfg.newline
    assert not nl.line_break
    assert nl.marker.strip() == "\\n"
    assert nl.color == (255, 0, 0)
    # Glyph's file has no key we ignore: reading it and writing it back gives the same values.
    out = cfg.to_dict()
    for key, value in GLYPH_JSON.items():
        if key != "font-path":
            assert out[key] == value, key


def test_relative_font_path_resolves_against_the_config_folder_not_the_cwd(
        tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The config's folder has its own fonts/DejaVuSans.ttf (really a monospace font); the cwd
    # (the repo root) also has a fonts/DejaVuSans.ttf. The config must get its own file.
    folder = tmp_path / "cfg"
    (folder / "fonts").mkdir(parents=True)
    shutil.copy(bundled_font("DejaVuSansMono"), folder / "fonts" / "DejaVuSans.ttf")
    path = folder / "glyph.json"
    path.write_text(json.dumps({"font-path": "fonts/DejaVuSans.ttf"}), encoding="utf-8")
    monkeypatch.chdir(repo_root)
    assert (repo_root / "fonts" / "DejaVuSans.ttf").exists()
    cfg = RenderConfig.from_json(path)
    assert Path(cfg.font_path).resolve() == (folder / "fonts" / "DejaVuSans.ttf").resolve()


@pytest.mark.parametrize(
    ("font_path", "substitute"),
    [
        ("Verdana.ttf", "DejaVuSans"),
        ("../config/Verdana.ttf", "DejaVuSans"),
        ("../config/SourceHanSansHWSC-VF.ttf", "DroidSansFallbackFull"),
    ],
)
def test_glyph_fonts_we_cannot_ship_fall_back_with_a_warning(
        tmp_path: Path, font_path: str, substitute: str, no_system_fonts: None) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**PRESETS["glyph-en"], "preset-name": None,
                                "font-path": font_path}), encoding="utf-8")
    with pytest.warns(FontNotice, match=Path(font_path).name.replace(".", r"\.")) as rec:
        cfg = RenderConfig.from_json(path)
    notices = [str(w.message) for w in rec if issubclass(w.category, FontNotice)]
    assert len(notices) == 1 and substitute in notices[0]
    assert cfg.font_path == bundled_font(substitute)
    assert cfg.font_note == notices[0]


def test_a_named_font_found_on_the_system_is_used_and_noted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    found = bundled_font("DejaVuSansMono")  # stands in for the system's Verdana.ttf
    monkeypatch.setattr(config_module, "find_system_font",
                        lambda name: found if name == "Verdana.ttf" else None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a preset's note is reported by the CLI, not warned
        cfg = RenderConfig.preset("glyph-en")
    assert cfg.font_path == found
    assert "Verdana.ttf" in cfg.font_note and found in cfg.font_note
    assert "found on this system" in cfg.font_note
    with pytest.warns(FontNotice, match="found on this system"):  # named explicitly: warned
        explicit = RenderConfig.from_dict({"font-path": "Verdana.ttf"})
    assert explicit.font_path == found and explicit.font_note == cfg.font_note


def test_a_font_flag_spares_the_search_for_the_presets_font(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--font`` replaces the preset's Verdana.ttf before it is resolved: no fontconfig run
    and no walk of the font folders (~40 ms of every short render) for a font not used."""
    import argparse

    from glyph_render.settings import RenderSettings, add_render_flags

    looked_up: list[str] = []
    monkeypatch.setattr(config_module, "find_system_font",
                        lambda name: looked_up.append(name))
    parser = argparse.ArgumentParser()
    add_render_flags(parser)
    mono = bundled_font("DejaVuSansMono")
    cfg = RenderSettings.from_args(parser.parse_args(["--preset", "glyph-en", "--font", mono]),
                                   check_fonts=False).base("glyph-en")
    assert cfg.font_path == mono and cfg.font_note is None and looked_up == []
    assert cfg == RenderConfig.preset("glyph-en").replace(font_path=mono)
    assert looked_up == ["Verdana.ttf"]  # the preset on its own still looks its font up


def test_presets_note_their_font_without_warning(no_system_fonts: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        en, zh = RenderConfig.preset("glyph-en"), RenderConfig.preset("glyph-zh")
    assert "'Verdana.ttf' not found" in en.font_note and "bundled DejaVuSans" in en.font_note
    assert "'SourceHanSansHWSC-VF.ttf' not found" in zh.font_note
    assert "bundled DroidSansFallbackFull" in zh.font_note
    # the note is no config value: not written out, not compared
    assert "font-note" not in en.to_dict() and "font_note" not in en.to_dict()
    assert en.replace(font_note=None) == en
    assert RenderConfig.from_dict({"font-path": bundled_font("DejaVuSans")}).font_note is None


def test_a_missing_font_that_has_no_substitute_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"font-path": "NoSuchFont.ttf"}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"font-path.*NoSuchFont\.ttf"):
        RenderConfig.from_json(path)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_to_dict_round_trips_presets(name: str, tmp_path: Path) -> None:
    cfg = RenderConfig.preset(name)
    data = cfg.to_dict()
    assert all("_" not in key for key in data)  # Glyph's hyphenated keys
    assert RenderConfig.from_dict(data) == cfg
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data), encoding="utf-8")  # plain JSON, nothing Python-only
    assert RenderConfig.from_json(path) == cfg


def test_to_dict_round_trips_a_config_with_every_key_changed(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    cfg = RenderConfig.from_json(_write_glyph_config(tmp_path, GLYPH_JSON))
    monkeypatch.chdir(tmp_path.parent)
    data = cfg.to_dict()
    assert data["page-size"] == "612,792"
    assert data["font-color"] == "#102030"
    again = RenderConfig.from_dict(json.loads(json.dumps(data)))
    assert again == cfg
    for f in dataclasses.fields(RenderConfig):
        assert getattr(again, f.name) == getattr(cfg, f.name) or f.name == "preset_name"


@pytest.mark.parametrize(("changes", "tab_size", "split"), [
    ({}, 0, True), ({"tab-size": 1}, 1, True), ({"tab-size": 32}, 32, True),
    ({"tab-size": 4, "split-blank-line": False}, 4, False),
    ({"split-blank-line": "false"}, 0, False)])
def test_tab_size_and_split_blank_line_round_trip(changes: dict, tab_size: int,
                                                  split: bool) -> None:
    cfg = RenderConfig.preset("glyph-en").replace(**changes)
    assert (cfg.tab_size, cfg.split_blank_line) == (tab_size, split)
    data = cfg.to_dict()
    assert (data["tab-size"], data["split-blank-line"]) == (tab_size, split)
    assert RenderConfig.from_dict(json.loads(json.dumps(data))) == cfg


def test_snake_case_and_glyph_keys_mean_the_same() -> None:
    base = RenderConfig.preset("glyph-en")
    a = base.replace(**{"margin-x": 20, "font-color": "#FF0000", "auto-crop-width": False})
    b = base.replace(margin_x=20, font_color=(255, 0, 0), auto_crop_width=False)
    assert a == b
    assert a.margin_x == 20.0 and a.font_color == (255, 0, 0) and a.auto_crop_width is False


def test_config_is_frozen() -> None:
    cfg = RenderConfig.preset("glyph-en")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.dpi = 300  # type: ignore[misc]


# (changes, the key the message must name, the value text it must show)
BAD_CONFIGS = [
    ({"colour": "#000000"}, "colour", "colour"),
    ({"fontsize": 9}, "fontsize", "fontsize"),
    ({"dpi": "high"}, "dpi", "high"),
    ({"dpi": True}, "dpi", "True"),
    ({"font-size": [9]}, "font-size", "[9]"),
    ({"auto-crop-width": "sometimes"}, "auto-crop-width", "sometimes"),
    ({"alignment": "MIDDLE"}, "alignment", "MIDDLE"),
    ({"tab-size": 2.5}, "tab-size", "2.5"),
    ({"tab-size": 33}, "tab-size", "33"),
    ({"tab-size": -1}, "tab-size", "-1"),
    ({"tab-size": True}, "tab-size", "True"),
    ({"split-blank-line": "maybe"}, "split-blank-line", "maybe"),
    ({"dpi": 0}, "dpi", "0"),
    ({"dpi": -72}, "dpi", "-72"),
    ({"margin-x": 300}, "margin-x", "300"),
    ({"margin-y": 430}, "margin-y", "430"),
    ({"margin-x": -1}, "margin-x", "-1"),
    ({"font-size": 0}, "font-size", "0"),
    ({"font-size": -3}, "font-size", "-3"),
    ({"line-height": 8}, "line-height", "8"),
    ({"font-color": "#GGGGGG"}, "font-color", "#GGGGGG"),
    ({"page-bg-color": "blurple"}, "page-bg-color", "blurple"),
    ({"para-bg-color": [0, 0, 256]}, "para-bg-color", "[0, 0, 256]"),
    ({"para-border-color": 255}, "para-border-color", "255"),
    ({"page-size": "595"}, "page-size", "595"),
    ({"page-size": "595,842,1"}, "page-size", "595,842,1"),
    ({"page-size": "a4"}, "page-size", "a4"),
    ({"page-size": "0,842"}, "page-size", "0,842"),
    ({"page-size": "-595,842"}, "page-size", "-595,842"),
    ({"page-size": "inf,842"}, "page-size", "inf,842"),
    ({"page-size": 595}, "page-size", "595"),
    ({"horizontal-scale": 0}, "horizontal-scale", "0"),
    ({"newline-markup": "<b>x</b>"}, "newline-markup", "<b>x</b>"),
    ({"dpi": 100000}, "dpi", "100000"),  # a page over Pillow's pixel limit
    # NaN slips past every `x <= 0` check unless tested for explicitly.
    ({"font-size": math.nan}, "font-size", "nan"),
    ({"line-height": math.nan}, "line-height", "nan"),
    ({"first-line-indent": math.nan}, "first-line-indent", "nan"),
]


@pytest.mark.parametrize(("changes", "key", "value"), BAD_CONFIGS,
                         ids=[f"{k}={v}" for _, k, v in BAD_CONFIGS])
def test_bad_values_raise_config_error_naming_key_and_value(changes: dict, key: str,
                                                            value: str) -> None:
    with pytest.raises(ConfigError) as info:
        RenderConfig.from_dict(changes, base=RenderConfig.preset("glyph-en"))
    message = str(info.value)
    assert message.startswith(key) or f"'{key}'" in message, message
    assert value in message, message
    assert "\n" not in message


def test_bad_value_in_a_json_file_names_key_and_value(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**GLYPH_JSON, "font-path": None, "dpi": -5}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^dpi: -5"):
        RenderConfig.from_json(path)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '"595,842"'])
def test_a_config_file_that_is_not_a_json_object_is_a_config_error(tmp_path: Path,
                                                                  content: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError):
        RenderConfig.from_json(path)


def test_glyph_en_preset_is_glyphs_published_english_config(no_system_fonts: None) -> None:
    cfg = RenderConfig.preset("glyph-en")
    assert cfg.page_size == (595.0, 842.0)
    assert (cfg.dpi, cfg.margin_x, cfg.margin_y) == (72.0, 10.0, 10.0)
    assert (cfg.font_size, cfg.line_height) == (9.0, 10.0)
    assert cfg.font_path == bundled_font("DejaVuSans")  # Verdana's stand-in
    assert cfg.font_color == (0, 0, 0)
    assert cfg.page_bg_color == cfg.para_bg_color == (255, 255, 255)
    assert cfg.alignment == "LEFT" and cfg.horizontal_scale == 1.0
    assert cfg.first_line_indent == cfg.left_indent == cfg.right_indent == 0.0
    assert cfg.space_before == cfg.space_after == cfg.border_width == cfg.border_padding == 0.0
    assert cfg.auto_crop_width is True and cfg.auto_crop_last_page is True
    assert cfg.newline.line_break
    assert cfg.preset_name == "glyph-en"
    assert PRESETS["glyph-en"]["font-path"] == "Verdana.ttf"  # named as Glyph's config names it
    # the reference's own behaviour by default: tabs collapse, the split empty line is drawn
    assert cfg.tab_size == 0 and cfg.split_blank_line is True


def test_glyph_zh_preset_differs_only_in_fonts(no_system_fonts: None) -> None:
    en, zh = RenderConfig.preset("glyph-en"), RenderConfig.preset("glyph-zh")
    assert PRESETS["glyph-zh"]["font-path"] == "SourceHanSansHWSC-VF.ttf"
    assert zh.font_path == bundled_font("DroidSansFallbackFull")
    assert zh.font_chain[0] == bundled_font("DroidSansFallbackFull")
    assert bundled_font("NotoColorEmoji") in zh.font_chain
    same = {f.name for f in dataclasses.fields(RenderConfig)} - {
        "font_path", "fallback_fonts", "preset_name", "font_note"}
    for name in same:
        assert getattr(en, name) == getattr(zh, name), name


def test_unknown_preset_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"preset.*'glyph-fr'"):
        RenderConfig.preset("glyph-fr")


ZH_FILES = ["zh_hongloumeng.txt", "zh_luxun_zhaohua_xishi.txt",
            "zh_hans_rust_book_ch02_guessing_game.md", "ja_natsume_kokoro.txt"]
EN_FILES = ["en_adventures_of_sherlock_holmes.txt", "en_alice_in_wonderland.txt",
            "en_art_of_war_giles.txt", "en_frankenstein.txt", "en_pride_and_prejudice.txt",
            "en_war_of_the_worlds.txt", "ru_pushkin_kapitanskaya_dochka.txt", "code_stb_image.h",
            "code_click_core.py", "docs_pep0484_type_hints.rst", "docs_ytdlp_README.md"]


@pytest.mark.parametrize("name", ZH_FILES)
def test_detect_preset_picks_glyph_zh_for_cjk_documents(name: str, corpus_text) -> None:
    assert detect_preset(corpus_text(name)) == "glyph-zh"


@pytest.mark.parametrize("name", EN_FILES)
def test_detect_preset_picks_glyph_en_for_other_documents(name: str, corpus_text) -> None:
    assert detect_preset(corpus_text(name)) == "glyph-en"


def test_detect_preset_on_short_strings() -> None:
    assert detect_preset("你好，世界。今天天气很好。") == "glyph-zh"
    assert detect_preset("Hello, world. 你好") == "glyph-en"
    assert detect_preset("12345 !!! ...") == "glyph-en"
