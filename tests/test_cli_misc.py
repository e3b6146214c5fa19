"""The CLI's front door: ``--version``, ``python -m glyph_render``, mistyped commands, documents
in other formats (``--format``, ``--dump-text``) and the stand-in agreeing with ``doctor``.

Everything runs as real processes (``python -m glyph_render.cli`` / ``python -m glyph_render``);
the doctor check starts serve-ocr exactly as the README shows it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import glyph_render

try:
    from ocr_server_process import serve_ocr
    from test_doctor import serve_ocr as serve_ocr_process
except ImportError:  # tests/ imported as a package
    from tests.ocr_server_process import serve_ocr
    from tests.test_doctor import serve_ocr as serve_ocr_process

REPO = Path(__file__).resolve().parents[1]
MARKDOWN = """# Minutes

The **committee** met on *Tuesday*.

- first item
- second item

Closing words.
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def test_version_everywhere(run_cli, tmp_path):
    want = f"glyph-render {glyph_render.__version__}\n"
    for flag in ("--version", "-V"):
        res = run_cli([flag], cwd=tmp_path)
        assert (res.returncode, res.stdout, res.stderr) == (0, want, "")
    res = subprocess.run([sys.executable, "-m", "glyph_render", "--version"], cwd=tmp_path,
                         capture_output=True, text=True, env=_env(), timeout=60)
    assert (res.returncode, res.stdout) == (0, want)
    from importlib.metadata import PackageNotFoundError, version

    # the installed metadata says the same (when the package is installed)
    with contextlib.suppress(PackageNotFoundError):
        assert version("glyph-render") == glyph_render.__version__


def test_python_m_glyph_render_renders(tmp_path):
    (tmp_path / "doc.txt").write_text("Hello pages.\n", encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "glyph_render", "doc.txt", "-o", "out"],
                         cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "page_001.png").is_file()


@pytest.mark.parametrize("word, near", [("rendr", "render"), ("bach", "batch"),
                                        ("doctr", "doctor"), ("serv", "serve")])
def test_mistyped_command_names_the_nearest(run_cli, tmp_path, word, near):
    res = run_cli([word, "--json"], cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == (f"glyph-render: error: unknown command {word!r}; "
                          f"did you mean {near!r}?\n")


def test_a_file_named_like_a_command_still_renders(run_cli, tmp_path):
    (tmp_path / "rendr").write_text("A file, not a command.\n", encoding="utf-8")
    res = run_cli(["rendr", "--json"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["chars"] == len("A file, not a command.\n")
    assert (tmp_path / "rendr_pages" / "page_001.png").is_file()


def test_a_word_near_no_command_is_a_missing_file(run_cli, tmp_path):
    for word in ("zzzq", "notes.txt"):
        res = run_cli([word], cwd=tmp_path)
        assert res.returncode == 2
        assert res.stderr == f"glyph-render: error: {word}: no such file\n"


def test_markdown_is_read_as_its_text_and_dumped(run_cli, tmp_path):
    (tmp_path / "minutes.md").write_text(MARKDOWN, encoding="utf-8")
    res = run_cli(["layout", "minutes.md", "--json", "--dump-text", "minutes.txt"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    dumped = (tmp_path / "minutes.txt").read_text(encoding="utf-8")
    assert "**" not in dumped and "# Minutes" not in dumped
    assert "committee" in dumped and "first item" in dumped
    report = json.loads(res.stdout)
    assert report["chars"] == len(dumped)
    spans = "".join(dumped[p["start"]:p["end"]] for p in report["pages"])
    assert spans == dumped  # the page spans index the dumped text
    # --format text reads the same file as it is, markup and all
    raw = run_cli(["layout", "minutes.md", "--json", "--format", "text", "--dump-text", "-"],
                  cwd=tmp_path)
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.startswith(MARKDOWN)
    assert json.loads(raw.stdout[len(MARKDOWN):])["chars"] == len(MARKDOWN)


def test_render_and_plan_take_format_and_dump_text(run_cli, tmp_path):
    (tmp_path / "page.html").write_text(
        "<html><head><style>p{color:red}</style></head><body><h1>Report</h1>"
        "<p>Quarterly <b>figures</b> rose.</p></body></html>", encoding="utf-8")
    res = run_cli(["render", "page.html", "-o", "pages", "--json", "--dump-text", "page.txt"],
                  cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "page.txt").read_text(encoding="utf-8")
    assert "Quarterly figures rose." in text and "color" not in text and "<" not in text
    assert json.loads(res.stdout)["chars"] == len(text)
    plan = run_cli(["plan", "page.html", "--budget", "2000", "--json", "--format", "html"],
                   cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["pages"]
    bad = run_cli(["plan", "page.html", "--budget", "2000", "--format", "odt"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "--format: invalid choice: 'odt'" in bad.stderr
    unwritable = run_cli(["layout", "page.html", "--dump-text", "no/such/dir/t.txt"],
                         cwd=tmp_path)
    assert unwritable.returncode == 2
    assert unwritable.stderr.startswith("glyph-render: error: no/such/dir/t.txt: cannot write")


def test_ask_reads_a_markdown_document(run_cli, tmp_path):
    (tmp_path / "minutes.md").write_text(MARKDOWN, encoding="utf-8")
    with serve_ocr(tmp_path, "--no-ocr") as srv:
        res = run_cli(["ask", "minutes.md", "Who met?", "--endpoint", srv.base_url,
                       "--tokenizer", "bytes", "--max-tokens", "50", "--json",
                       "--dump-text", "asked.txt"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    answer = json.loads(res.stdout)
    dumped = (tmp_path / "asked.txt").read_text(encoding="utf-8")
    assert "**" not in dumped
    assert answer["pages"][-1]["end"] == len(dumped)


def _readme_serve_ocr() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"`glyph-render (serve-ocr [^`]*)`", readme)
    assert m, "the README shows no serve-ocr command"
    return m.group(1).split()


def test_readme_stand_in_passes_doctor_without_warnings(tmp_path):
    """The README's own serve-ocr command (on a free port) and a plain ``doctor``: the two agree
    out of the box (same text tokenizer, reasoning parser on), so every check is OK."""
    args = _readme_serve_ocr()
    assert "--port" in args
    args[args.index("--port") + 1] = "0"
    with serve_ocr_process(*args, "-q", command=[sys.executable, "-m", "glyph_render"]) as url:
        env = {k: v for k, v in _env().items() if k != "OPENAI_API_KEY"}
        res = subprocess.run([sys.executable, "-m", "glyph_render", "doctor", "--endpoint",
                              url], cwd=tmp_path, capture_output=True, text=True, env=env,
                             timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.splitlines()[-1] == "0 failures, 0 warnings", res.stdout
    assert "WARN" not in res.stdout


def test_batch_folder_reads_documents_as_their_text(run_cli, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Plain text stays as it is.\n", encoding="utf-8")
    (docs / "minutes.md").write_text(MARKDOWN, encoding="utf-8")
    (docs / "page.HTML").write_text("<p>Quarterly <b>figures</b> rose.</p>", encoding="utf-8")
    (docs / "notes.json").write_text("{}", encoding="utf-8")  # not a document: left out
    out = tmp_path / "plan.jsonl"
    res = run_cli(["batch", "plan", docs, "-o", out, "--workers", "0"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    records = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(records) == {"a", "minutes.md", "page.HTML"}
    from glyph_render.document import read_document

    for name, rec in records.items():
        path = docs / (name if "." in name else f"{name}.txt")
        assert rec["chars"] == len(read_document(path)), name
    assert records["minutes.md"]["chars"] < len(MARKDOWN)  # the markup is gone
