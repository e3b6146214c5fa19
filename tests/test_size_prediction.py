"""Page sizes predicted without a full raster equal the raster's, exactly (issue 12).

Each case is a fuzz case (``python benchmarks/fuzz.py --only N``) where the planner's
arithmetic once disagreed with the raster, shrunk to a few characters: glyph pixels that
combine past the edge, text colours over other colours (page, paragraph, border, marker), a
glyph in the corner the crop takes its background from, huge fonts at low DPI. A plan priced
with a size under the raster's can exceed its budget, so equal, not a bound, is the promise.
"""

from __future__ import annotations

import pytest

from glyph_render import RenderConfig, layout, page_pixel_size, rasterize

CASES = [
    pytest.param(
        'glyph-en',
        {'page-size': [812.8, 257.2],
         'font-size': 40.32175775029906,
         'line-height': 44.35393352532897,
         'margin-y': 3.2,
         'remove-line-breaks': False,
         'dpi': 16.070728},
        '۔套\U00072b23ᆚ쏔<ͲＵ鴬ﬣϮێﳄ\ufdd8ۮ\udfff룔\nॣ🪑उฎ⌯\U0008daa0絪ڥ\U001095a9ہ帒🛎֞ムﰬ🛞',
        id='fuzz-641: default colours, 16 DPI, 40 pt: faint glyph pixels past the edge'),
    pytest.param(
        'glyph-en',
        {'dpi': 109.87,
         'line-height': 9.0,
         'margin-x': 10,
         'horizontal-scale': 1.0,
         'space-after': 2.0999780032896953,
         'page-bg-color': '#000000',
         'para-border-color': [11, 162, 168],
         'remove-line-breaks': False,
         'split-blank-line': False},
        '🔱',
        id='fuzz-55: black page, coloured border, an emoji'),
    pytest.param(
        'glyph-en',
        {'page-size': [694.5, 1147.2],
         'line-height': 19.100647319375785,
         'margin-y': 39.6933919605124,
         'border-width': 6.821213824640618,
         'para-bg-color': [70, 89, 193],
         'para-border-color': '#FFFFFF',
         'alignment': 'CENTER',
         'auto-crop-last-page': True,
         'remove-line-breaks': True,
         'split-blank-line': False,
         'fallback-fonts': ['DroidSansFallbackFull']},
        '르',
        id='fuzz-230: coloured paragraph background, white border'),
    pytest.param(
        'glyph-zh',
        {'page-size': [374.3, 240.6],
         'dpi': 71.22,
         'font-size': 116.42967815383335,
         'line-height': 116.42967815383335,
         'horizontal-scale': 1.0,
         'space-after': 25.2455904640815,
         'font-color': '#FF0000',
         'auto-crop-width': True,
         'newline-markup': '<font color="#FF0000"> \\n </font>'},
        'b/>î֙ͣ〸οॵ',
        id='fuzz-295: red text and red newline markers, 116 pt'),
    pytest.param(
        'glyph-en',
        {'font-size': 12,
         'line-height': 13.200000000000001,
         'margin-x': 22.748929937073687,
         'first-line-indent': 1.5290671798428335,
         'font-color': 'red',
         'page-bg-color': 'red'},
        '/',
        id='fuzz-319: red text on a red page'),
    pytest.param(
        'glyph-en',
        {'margin-y': 10,
         'space-before': 22.369638251631528,
         'page-bg-color': '#000000',
         'alignment': 'JUSTIFY',
         'auto-crop-width': True,
         'auto-crop-last-page': True,
         'remove-line-breaks': False,
         'split-blank-line': True,
         'tab-size': 8,
         'dpi': 60.71},
        'p',
        id='fuzz-322: black page, justified'),
    pytest.param(
        'glyph-zh',
        {'dpi': 8.255343291948328,
         'margin-y': 4.237678202391617,
         'first-line-indent': 0,
         'right-indent': 2.468090775853224,
         'para-border-color': '#FFFFFF',
         'newline-markup': ' | ',
         'font-path': 'DejaVuSans'},
        'y שלום\n\nשלום\n\nfox mps sticexpialidocioussupercalifragilisticexpialidocioussupercal'
        'ifragilisticexpialidocious. brown\n\n文本. ,j',
        id="fuzz-745: 8 DPI, white border, ' | ' markers"),
    pytest.param(
        'glyph-en',
        {'font-size': 69.28295277470949,
         'line-height': 83.13954332965137,
         'margin-x': 0,
         'left-indent': 0,
         'font-color': '#777',
         'remove-line-breaks': False},
        'ũĞ\U0009ab2eﯯ壌〻瑾क़֥\u2001ǹ〘\u0e76ﹽr⏧Ϳ๒ׁ',
        id='fuzz-7057: grey (#777) text, 69 pt'),
    pytest.param(
        'glyph-en',
        {'page-size': [278.9, 179.6],
         'dpi': 300,
         'font-size': 12,
         'line-height': 12.0,
         'horizontal-scale': 1.0,
         'right-indent': 0,
         'space-after': 2.283447626026718,
         'para-bg-color': '#FF0000',
         'alignment': 'LEFT',
         'auto-crop-last-page': False},
        'Привет. brown https://example.com/a/b?觉',
        id='fuzz-7195: red paragraph background, 300 DPI'),
    pytest.param(
        'glyph-en',
        {'page-size': [237.4, 176.8],
         'font-size': 74.46697676691949,
         'line-height': 89.36037212030338,
         'margin-y': 0,
         'border-width': 0,
         'page-bg-color': '#FFFFFF',
         'alignment': 1,
         'split-blank-line': True,
         'dpi': 120.0},
        '᚜\n\x7f\n-',
        id="fuzz-8122: a 74 pt last page's height"),
    pytest.param(
        'glyph-en',
        {'page-size': [330.6, 195.3],
         'font-size': 71.94608260225773,
         'line-height': 86.33529912270927,
         'space-before': 13.186880104673856,
         'alignment': 0,
         'auto-crop-last-page': False,
         'font-path': 'DroidSansFallbackFull',
         'dpi': 100.61},
        '支持 です. مرحبا, dog',
        id="fuzz-8299: a 72 pt CJK font's right edge"),
]


@pytest.mark.parametrize(("preset", "keys", "text"), CASES)
def test_predicted_page_sizes_are_the_rasters(preset: str, keys: dict, text: str) -> None:
    cfg = RenderConfig.from_dict(keys, base=RenderConfig.preset(preset), quiet=True)
    pages = list(layout(text, cfg))
    assert pages
    for i, page in enumerate(pages):
        for last in (False, True):  # cropped in width only; as a last page, in height too
            want = rasterize(page, cfg, last=last).size
            assert page_pixel_size(page, cfg, last=last) == want, (i, last)


def test_glyph_atlases_stay_within_their_byte_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Atlases of many sizes (a long-lived process: a server, a batch, the fuzz benchmark)
    are evicted by bytes, and one grown past the bound starts afresh at a page boundary."""
    from glyph_render import raster, render

    text = "".join(chr(0x4E00 + 37 * i) for i in range(400))  # distinct CJK glyphs
    cap = 1_000_000

    def held_after_sizes(bound: int) -> list[int]:
        monkeypatch.setattr(raster, "ATLAS_BYTES", bound)
        monkeypatch.setattr(raster, "_ATLASES", {})
        for size in (18, 22, 26):
            cfg = RenderConfig.from_dict({"font-size": size, "line-height": size * 1.2,
                                          "page-size": [200, 120]},
                                         base=RenderConfig.preset("glyph-zh"), quiet=True)
            assert len(render(text, cfg, tokenizer="bytes").pages) > 10
            held = sorted(a.nbytes for a in raster._ATLASES.values())
            if bound == cap:  # the others trimmed; the one in use past it by a page at most
                assert sum(held[:-1]) <= cap // 2 and held[-1] <= cap + 500_000, held
        return held

    assert sum(held_after_sizes(1 << 40)) > 3 * cap  # unbounded, they would hold this
    assert sum(held_after_sizes(cap)) <= cap // 2 + cap + 500_000
