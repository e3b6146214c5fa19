"""The real command line, in subprocesses: bad input, the JSON report, files, PDF, layout, flags."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from glyph_render import RenderConfig
from glyph_render.fonts import bundled_font
from glyph_render.render import render

try:
    from corpus_data import text_path
except ImportError:  # tests/ imported as a package
    from tests.corpus_data import text_path

PROSE = (
    "It was a bright cold day in April, and the clocks were striking thirteen. The hallway "
    "smelt of boiled cabbage and old rag mats. At one end of it a coloured poster, too large "
    "for indoor display, had been tacked to the wall.\n"
)
PAGE_FILE = re.compile(r"^page_\d{3}\.png$")


def assert_clean_failure(proc: subprocess.CompletedProcess[str], *causes: str) -> None:
    """Exit 2, exactly one stderr line 'glyph-render: error: ...' naming the cause."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("glyph-render: error: "), lines[0]
    for cause in causes:
        assert cause.lower() in lines[0].lower(), (cause, lines[0])


def leftovers(folder: Path) -> list[str]:
    """Page files, PDFs, staging folders and partial files anywhere under ``folder``."""
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*")
        if PAGE_FILE.match(p.name) or p.name.startswith(".glyph-render")
        or p.suffix in (".pdf", ".part")
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "doc.txt").write_text(PROSE * 3, encoding="utf-8")
    return tmp_path


# --------------------------------------------------------------------------- bad input


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    (tmp / "binary.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (tmp / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1"))
    (tmp / "surrogate.txt").write_bytes(b"lone \xed\xa0\x80 surrogate\n")
    (tmp / "empty.txt").write_bytes(b"")
    (tmp / "blank.txt").write_bytes(b" \t\r\n\n   \n\xef\xbb\xbf")
    (tmp / "not_a_font.ttf").write_text("this is not a font\n", encoding="utf-8")
    (tmp / "a_file").write_text("occupied\n", encoding="utf-8")
    (tmp / "huge.json").write_text(json.dumps({"dpi": 3000}), encoding="utf-8")
    (tmp / "unknown.json").write_text(json.dumps({"font-colour": "#000000"}), encoding="utf-8")
    (tmp / "folder").mkdir()
    return {
        "missing-file": (["nope.txt"], ("nope.txt", "no such file")),
        "directory": (["folder"], ("folder", "directory")),
        "binary": (["binary.bin"], ("binary.bin", "binary")),
        "not-utf8": (["latin1.txt"], ("latin1.txt", "utf-8", "--encoding")),
        "lone-surrogate-bytes": (["surrogate.txt"], ("surrogate.txt", "utf-8")),
        "empty": (["empty.txt"], ("empty.txt", "empty")),
        "whitespace-only": (["blank.txt"], ("blank.txt", "whitespace")),
        "font-not-a-font": (["doc.txt", "--font", "not_a_font.ttf"], ("not_a_font.ttf", "font")),
        "font-missing": (["doc.txt", "--font", "gone.ttf"], ("gone.ttf",)),
        "output-under-a-file": (["doc.txt", "-o", "a_file/pages"], ("a_file/pages",)),
        "pdf-under-a-file": (["doc.txt", "--pdf", "a_file/out.pdf"], ("a_file/out.pdf",)),
        "huge-dpi-config": (["doc.txt", "--config", "huge.json"], ("dpi", "3000", "pixel")),
        "huge-dpi-flag": (["doc.txt", "--dpi", "4000"], ("dpi", "4000")),
        "unknown-config-key": (["doc.txt", "--config", "unknown.json"], ("font-colour",)),
        "bad-flag-value": (["doc.txt", "--margin-x", "lots"], ("margin-x", "lots")),
        "bad-colour-flag": (["doc.txt", "--font-color", "#12345G"], ("font-color", "#12345G")),
        "unknown-encoding": (["doc.txt", "--encoding", "klingon"], ("klingon",)),
        "nan-font-size": (["doc.txt", "--font-size", "nan"], ("font-size", "nan")),
        "tiny-dpi": (["doc.txt", "--dpi", "0.5"], ("dpi",)),
        # Flag values checked before anything is read or written: one line naming flag and value.
        "max-dpi-negative": (["doc.txt", "--max-dpi", "-1"], ("--max-dpi", "-1")),
        "max-dpi-nan": (["doc.txt", "--max-dpi", "nan"], ("--max-dpi", "nan")),
        "max-dpi-inf": (["doc.txt", "--max-dpi", "inf"], ("--max-dpi", "inf")),
        "min-px-per-em-inf": (["doc.txt", "--min-px-per-em", "inf"], ("--min-px-per-em", "inf")),
        "empty-output": (["doc.txt", "-o", ""], ("--output", "''")),
        "budget-nan": (["doc.txt", "--budget", "nan"], ("--budget", "nan")),
        "page-size-negative": (["doc.txt", "--page-size", "-595,842"], ("page-size", "-595,842")),
        "tokenizer-unknown": (["doc.txt", "-o", "o", "--tokenizer", "bogus"], ("bogus",)),
        "profile-unknown": (["doc.txt", "-o", "o", "--profile", "bogus"], ("bogus",)),
        "fallback-font-missing": (["doc.txt", "-o", "o", "--fallback-fonts", "gone.ttf"],
                                  ("gone.ttf",)),
        "model-is-not-the-profile": (["doc.txt", "--model", "glyph"], ("--model", "--profile")),
    }


BAD_CASES = [
    "missing-file", "directory", "binary", "not-utf8", "lone-surrogate-bytes", "empty",
    "whitespace-only", "font-not-a-font", "font-missing", "output-under-a-file",
    "pdf-under-a-file", "huge-dpi-config", "huge-dpi-flag", "unknown-config-key",
    "bad-flag-value", "bad-colour-flag", "unknown-encoding", "nan-font-size", "tiny-dpi",
    "max-dpi-negative", "max-dpi-nan", "max-dpi-inf", "min-px-per-em-inf", "empty-output",
    "budget-nan", "page-size-negative", "tokenizer-unknown", "profile-unknown",
    "fallback-font-missing", "model-is-not-the-profile",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(case: str, work: Path,
                                                             run_cli) -> None:
    args, causes = _bad_inputs(work)[case]
    proc = run_cli(args, cwd=work)
    assert_clean_failure(proc, *causes)
    assert proc.stdout == ""
    assert leftovers(work) == []


def test_a_bad_tokenizer_fails_before_any_page_is_written(work: Path, run_cli) -> None:
    # The tokenizer is loaded before rendering starts: no page (and no folder) is left behind.
    proc = run_cli(["doc.txt", "-o", "o", "--tokenizer", "bogus"], cwd=work)
    assert_clean_failure(proc, "bogus")
    assert not (work / "o").exists()


@pytest.mark.parametrize("command", [["plan", "doc.txt", "--budget", "900"],
                                     ["ask", "doc.txt", "Why?"],
                                     ["batch", "plan", "doc.txt", "-o", "out.jsonl"],
                                     ["eval", "niah"]])
@pytest.mark.parametrize("flag", [["--max-dpi", "nan"], ["--min-px-per-em", "-inf"],
                                  ["--page-size", "-595,842"]])
def test_every_command_checks_the_shared_flags_alike(command: list[str], flag: list[str],
                                                     work: Path, run_cli) -> None:
    # One home for the flags: the same bad value fails the same way in every command.
    proc = run_cli([*command, *flag], cwd=work)
    assert_clean_failure(proc, flag[0].lstrip("-"), flag[1])
    assert sorted(p.name for p in work.iterdir()) == ["doc.txt"]


def test_a_font_that_is_not_a_font_creates_no_output_folder(work: Path, run_cli) -> None:
    # Fonts are checked before anything is written (as the config is): a failed run leaves no
    # empty doc_pages/ behind.
    (work / "not_a_font.ttf").write_text("this is not a font\n", encoding="utf-8")
    proc = run_cli(["doc.txt", "--font", "not_a_font.ttf"], cwd=work)
    assert_clean_failure(proc, "not_a_font.ttf")
    assert not (work / "doc_pages").exists()


def test_a_failed_render_keeps_the_previous_pages_intact(work: Path, run_cli) -> None:
    out = work / "pages"
    assert run_cli(["doc.txt", "-o", out], cwd=work).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (work / "bad.ttf").write_bytes(b"\x00\x01\x00\x00" + b"garbage" * 10)
    proc = run_cli(["doc.txt", "-o", out, "--font", "bad.ttf"], cwd=work)
    assert_clean_failure(proc, "bad.ttf")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_encoding_flag_reads_latin1(work: Path, run_cli) -> None:
    _bad_inputs(work)
    proc = run_cli(["latin1.txt", "--encoding", "latin-1", "-o", "out", "--json"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["chars"] == len("Caf\xe9 cr\xe8me br\xfbl\xe9e\n")
    assert (work / "out" / "page_001.png").is_file()


def test_control_characters_in_a_file_never_crash(work: Path, run_cli) -> None:
    soup = "".join(chr(c) for c in range(1, 32) if c not in (9, 10, 13)) + "\x7f\x85\u2028\u2029"
    (work / "ctl.txt").write_text(f"start {soup} middle\u202e reversed \u202c end\n",
                                  encoding="utf-8")
    proc = run_cli(["ctl.txt", "-o", "out", "--json"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["page_count"] == 1


def test_rtl_text_with_control_characters_never_crashes(work: Path, run_cli) -> None:
    # as in the big list of naughty strings: RTL words next to C0 separators
    (work / "rtl.txt").write_text("שלום\x1eעולם مرحبا\x1c\n", encoding="utf-8")
    proc = run_cli(["rtl.txt", "-o", "out"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_naughty_strings_render(tmp_path: Path, run_cli) -> None:
    proc = run_cli([text_path("mixed_blns_naughty_strings.txt"), "-o", "out", "--json"],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["pages"][-1]["end"] == report["chars"]


# --------------------------------------------------------------------------- JSON report, files


def test_json_report_schema_and_files(work: Path, run_cli) -> None:
    text = (work / "doc.txt").read_text(encoding="utf-8") * 40  # several pages
    (work / "long.txt").write_text(text, encoding="utf-8")
    proc = run_cli(["long.txt", "-o", "out", "--json"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1  # one JSON object on one line
    report = json.loads(proc.stdout)
    for key, kind in [("pages", list), ("text_tokens", int), ("vision_tokens", int),
                      ("ratio", float), ("tokenizer", str), ("config", dict),
                      ("seconds", float)]:
        assert isinstance(report[key], kind), key
    pages = report["pages"]
    assert len(pages) >= 2
    names = sorted(p.name for p in (work / "out").iterdir())
    assert names == [f"page_{i:03d}.png" for i in range(1, len(pages) + 1)]
    prev_end = 0
    for i, page in enumerate(pages, 1):
        for key in ("file", "width", "height", "start", "end", "chars", "vision_tokens"):
            assert key in page, key
        assert Path(page["file"]).name == f"page_{i:03d}.png"
        with Image.open(work / page["file"]) as img:
            assert img.size == (page["width"], page["height"])
            assert img.format == "PNG"
        assert page["start"] == prev_end
        assert page["chars"] == page["end"] - page["start"]
        assert page["vision_tokens"] > 0
        prev_end = page["end"]
    assert prev_end == len(text)
    assert report["vision_tokens"] == sum(p["vision_tokens"] for p in pages)
    assert report["ratio"] == pytest.approx(report["text_tokens"] / report["vision_tokens"],
                                            abs=1e-4)
    assert report["tokenizer"] == "cl100k_base"
    assert report["text_tokens"] > len(text) // 8
    assert RenderConfig.from_dict(report["config"]) == RenderConfig.preset("glyph-en")


def test_cli_pages_are_the_library_pages(work: Path, run_cli) -> None:
    text = (work / "doc.txt").read_text(encoding="utf-8")
    assert run_cli(["doc.txt", "-o", "out"], cwd=work).returncode == 0
    expected = render(text, RenderConfig.preset("glyph-en")).pages
    files = sorted((work / "out").iterdir())
    assert [f.read_bytes() for f in files] == [p.png for p in expected]


def test_default_output_folder_is_named_after_the_document(work: Path, run_cli) -> None:
    proc = run_cli(["doc.txt"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "doc_pages" / "page_001.png").is_file()
    assert "doc_pages" in proc.stdout and "vision tokens" in proc.stdout


def test_stdin_dash_reads_standard_input(work: Path, run_cli) -> None:
    data = (work / "doc.txt").read_bytes()
    proc = run_cli(["-", "--json", "-o", "from_stdin"], cwd=work, stdin=data)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["chars"] == len(data.decode("utf-8"))
    expected = render(data.decode("utf-8"), RenderConfig.preset("glyph-en")).pages[0].png
    assert (work / "from_stdin" / "page_001.png").read_bytes() == expected
    proc = run_cli(["-"], cwd=work, stdin=data)
    assert proc.returncode == 0 and (work / "stdin_pages" / "page_001.png").is_file()


def test_stdin_that_is_empty_is_a_clean_error(work: Path, run_cli) -> None:
    assert_clean_failure(run_cli(["-"], cwd=work, stdin=b""), "empty")


def test_pdf_holds_every_page(work: Path, run_cli) -> None:
    (work / "long.txt").write_text(PROSE * 120, encoding="utf-8")
    proc = run_cli(["long.txt", "-o", "out", "--pdf", "all.pdf", "--json"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    n = json.loads(proc.stdout)["page_count"]
    assert n >= 2
    data = (work / "all.pdf").read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", data)) == n
    assert not list(work.glob("*.part"))


def test_stale_pages_of_a_longer_run_are_removed(work: Path, run_cli) -> None:
    (work / "long.txt").write_text(PROSE * 120, encoding="utf-8")
    out = work / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    first = run_cli(["long.txt", "-o", out, "--json"], cwd=work)
    assert first.returncode == 0
    assert json.loads(first.stdout)["page_count"] >= 3
    second = run_cli(["doc.txt", "-o", out, "--json"], cwd=work)
    assert second.returncode == 0
    assert json.loads(second.stdout)["page_count"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "page_001.png"]
    expected = render((work / "doc.txt").read_text(encoding="utf-8"),
                      RenderConfig.preset("glyph-en")).pages[0].png
    assert (out / "page_001.png").read_bytes() == expected


def test_layout_subcommand_json_has_line_spans(work: Path, run_cli, corpus_dir: Path) -> None:
    src = corpus_dir / "en_alice_in_wonderland.txt"
    proc = run_cli(["layout", src, "--json"], cwd=work, timeout=180)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    with open(src, encoding="utf-8", newline="") as f:
        text = f.read()
    assert report["chars"] == len(text)
    pages = report["pages"]
    assert len(pages) > 10
    prev = empty = 0
    for page in pages:
        assert page["file"] is None
        lines = page["lines"]
        assert 0 < len(lines) <= 81
        for start, end in lines:
            # a line that draws nothing (a blank source line, the empty line atop a page
            # split after a <br/>) has an empty span where it sits
            assert page["start"] <= start <= end <= page["end"]
            assert start >= prev and (start == end or text[start:end].strip())
            prev = end
        empty += sum(1 for start, end in lines if start == end)
    assert pages[-1]["end"] == len(text)
    assert 0 < empty < sum(len(p["lines"]) for p in pages) // 4
    assert [p.name for p in work.iterdir()] == ["doc.txt"]  # layout writes nothing


def test_the_preset_font_note_goes_to_stdout_not_stderr(work: Path, run_cli) -> None:
    # glyph-en names Verdana.ttf as Glyph's config does: found on the system or stood in for
    # by the bundled DejaVu Sans, the summary says which; a preset's note is no warning
    proc = run_cli(["doc.txt", "-o", "out"], cwd=work)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    notes = [ln for ln in proc.stdout.splitlines() if ln.startswith("font: ")]
    assert len(notes) == 1 and "Verdana.ttf" in notes[0]
    proc = run_cli(["doc.txt", "-o", "out", "--json"], cwd=work)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    font = json.loads(proc.stdout)["font"]
    assert font["note"] == notes[0].removeprefix("font: ")
    assert Path(font["path"]).is_file()
    assert font["fallbacks"] and all(Path(f).is_file() for f in font["fallbacks"])
    if "bundled DejaVuSans" in font["note"]:
        assert font["family"] == "DejaVu Sans" and font["path"] == bundled_font("DejaVuSans")
    else:
        assert Path(font["path"]).name.lower() == "verdana.ttf"


def test_an_explicit_font_found_by_lookup_warns_once(work: Path, run_cli) -> None:
    proc = run_cli(["doc.txt", "-o", "out", "--font", "Verdana.ttf", "--json"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    warning = proc.stderr.splitlines()
    assert len(warning) == 1 and warning[0].startswith("glyph-render: warning: ")
    assert json.loads(proc.stdout)["font"]["note"] in warning[0]


def test_a_font_given_by_path_needs_no_note(work: Path, run_cli) -> None:
    mono = bundled_font("DejaVuSansMono")
    proc = run_cli(["doc.txt", "-o", "out", "--font", mono], cwd=work)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "font: " not in proc.stdout
    font = json.loads(run_cli(["doc.txt", "-o", "out", "--font", mono, "--json"],
                              cwd=work).stdout)["font"]
    assert font == {"path": mono, "family": "DejaVu Sans Mono", "note": None, "fallbacks": [
        bundled_font(f) for f in ("DejaVuSans", "DroidSansFallbackFull", "NotoColorEmoji")]}


def test_installed_entry_point_runs(work: Path) -> None:
    exe = shutil.which("glyph-render")
    assert exe is not None, "the glyph-render console script is not installed"
    proc = subprocess.run([exe, "layout", "doc.txt", "--json"], cwd=work, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["page_count"] == 1


# --------------------------------------------------------------------------- config flags


def test_every_config_key_is_a_flag(work: Path, run_cli) -> None:
    flags = {
        "--page-size": "612,792", "--dpi": "96", "--margin-x": "12", "--margin-y": "14",
        "--font-size": "10", "--line-height": "12", "--font-color": "#102030",
        "--page-bg-color": "#F0F0F0", "--para-bg-color": "#FFFFE0",
        "--para-border-color": "#0000FF", "--alignment": "justify",
        "--horizontal-scale": "0.9", "--first-line-indent": "5", "--left-indent": "3",
        "--right-indent": "4", "--space-before": "2", "--space-after": "3",
        "--border-width": "1", "--border-padding": "2", "--tab-size": "8",
        "--newline-markup": '<font color="#FF0000"> \\n </font>',
        "--font": bundled_font("DejaVuSansMono"),
    }
    args = ["layout", "doc.txt", "--json", "--no-auto-crop-width", "--no-auto-crop-last-page"]
    for flag, value in flags.items():
        args += [flag, value]
    proc = run_cli(args, cwd=work)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)["config"]
    for flag, value in flags.items():
        key = "font-path" if flag == "--font" else flag[2:]
        expected = value.upper() if key == "alignment" else value
        got = cfg[key]
        if isinstance(got, (int, float)) and not isinstance(got, bool):
            assert got == float(expected), key
        else:
            assert got == expected, key
    assert cfg["auto-crop-width"] is False and cfg["auto-crop-last-page"] is False


def test_flags_override_the_config_file(work: Path, run_cli) -> None:
    (work / "c.json").write_text(json.dumps({"dpi": 144, "margin-x": 20}), encoding="utf-8")
    proc = run_cli(["layout", "doc.txt", "--json", "--config", "c.json", "--dpi", "96"],
                   cwd=work)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)["config"]
    assert cfg["dpi"] == 96 and cfg["margin-x"] == 20


def test_glyph_config_with_verdana_warns_once_and_renders(work: Path, run_cli) -> None:
    glyph = {**RenderConfig.preset("glyph-en").to_dict(), "font-path": "../config/Verdana.ttf"}
    (work / "config_en.json").write_text(json.dumps(glyph), encoding="utf-8")
    proc = run_cli(["doc.txt", "--config", "config_en.json", "-o", "out"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("glyph-render: warning:")
    assert "Verdana.ttf" in warnings[0] and "DejaVu" in warnings[0]


def test_font_flag_with_a_monospace_font_changes_advance_widths(work: Path, run_cli) -> None:
    (work / "thin.txt").write_text("i" * 20 + "\n", encoding="utf-8")
    widths = {}
    for label, extra in (("sans", []), ("mono", ["--font", bundled_font("DejaVuSansMono")])):
        proc = run_cli(["thin.txt", "-o", label, "--json", *extra], cwd=work)
        assert proc.returncode == 0, proc.stderr
        widths[label] = json.loads(proc.stdout)["pages"][0]["width"]
    # DejaVu Sans 'i' advances 569/2048 em, DejaVu Sans Mono's every glyph 1233/2048 em:
    # 20 of them at 9 pt differ by 58.3 pt, i.e. pixels at 72 DPI in the cropped page width.
    assert widths["mono"] - widths["sans"] == pytest.approx(20 * 9 * (1233 - 569) / 2048, abs=2)


def test_auto_preset_picks_glyph_zh_for_chinese(work: Path, run_cli, corpus_dir: Path) -> None:
    proc = run_cli(["layout", corpus_dir / "zh_luxun_zhaohua_xishi.txt", "--json"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)["config"]
    assert cfg["font-path"] == bundled_font("DroidSansFallbackFull")
    assert sum(p["missing_chars"] for p in json.loads(proc.stdout)["pages"]) == 61


def test_quiet_silences_progress_unless_asked(work: Path, run_cli) -> None:
    # -q/--quiet is every command's (settings.Parser); it turns the default progress bar off,
    # and an explicit --progress still wins.
    loud = run_cli(["doc.txt", "-o", "a", "--progress"], cwd=work)
    assert loud.returncode == 0 and "rendering" in loud.stderr
    quiet = run_cli(["doc.txt", "-o", "b", "-q"], cwd=work)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout.splitlines()[1] == loud.stdout.splitlines()[1]  # the report stays
    both = run_cli(["doc.txt", "-o", "c", "--quiet", "--progress"], cwd=work)
    assert "rendering" in both.stderr
    assert run_cli(["layout", "doc.txt", "-q"], cwd=work).returncode == 0
