"""The browser check of the built book finds broken pages, and passes a good one."""
import importlib.util
import struct
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The book check knows the checkout's layout, so it is a script in tools/, not part of xcf.
_spec = importlib.util.spec_from_file_location("bookcheck", ROOT / "tools" / "bookcheck.py")
bookcheck = sys.modules["bookcheck"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(bookcheck)
check_page, find_chromium, render_dom = bookcheck.check_page, bookcheck.find_chromium, bookcheck.render_dom


def _png(path: Path, w=2, h=2):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x80\x80\x80" * w for _ in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _page(tmp_path, body):
    page = tmp_path / "page.html"
    page.write_text(f"<html><body><article class='bd-article'>{body}</article></body></html>")
    return page


GOOD = "<div class='cell_output docutils container'><div class='output stream'><pre>ok</pre></div></div>"


def test_good_page_passes(tmp_path):
    _png(tmp_path / "fig.png")
    page = _page(tmp_path, GOOD + "<img src='fig.png'>")
    report = check_page(page, page.read_text())
    assert report.problems == [] and report.images == 1


@pytest.mark.parametrize("body,problem", [
    ("<img src='missing.png'>", "missing or empty"),
    ("<div class='cell_output'><div class='output traceback'><pre>ValueError</pre></div></div>", "error output"),
    ("<div class='cell_output'><pre>Traceback (most recent call last):\n  File</pre></div>", "traceback"),
    ("<div class='cell_output'><div class='output stderr'><pre>Warning</pre></div></div>", "error output"),
])
def test_broken_pages_are_reported(tmp_path, body, problem):
    page = _page(tmp_path, body)
    report = check_page(page, page.read_text())
    assert any(problem in p for p in report.problems), report.problems


# What myst-nb made of an IPython.display.Markdown table while it parsed outputs as
# CommonMark (no tables): a paragraph of pipes, its delimiter row's dashes turned into em
# dashes by smartquotes (copied from the built Performance page).
LEAKED_TABLE = ("<div class='cell_output docutils container'><p>| log | line | target | met |\n"
                "|\u2014|\u2014|\u2014|\u2014|\n| train_step.txt | ratio 3.23x | &gt;= 3.5x | not met |</p></div>")
RENDERED_TABLE = ("<div class='cell_output docutils container'><table><thead><tr><th>log</th><th>met</th>"
                  "</tr></thead><tbody><tr><td>train_step.txt</td><td>met</td></tr></tbody></table></div>")


@pytest.mark.parametrize("body", [LEAKED_TABLE, LEAKED_TABLE.replace("\u2014", "---")])
def test_a_markdown_table_left_as_text_is_reported(tmp_path, body):
    page = _page(tmp_path, body)
    problems = check_page(page, page.read_text()).problems
    assert any("Markdown table printed as text" in p for p in problems), problems


def test_a_rendered_table_and_a_printed_log_pass(tmp_path):
    log = "<div class='cell_output'><div class='output stream'><pre>ratio xcf bf16 / baseline: 3.59x</pre></div></div>"
    page = _page(tmp_path, RENDERED_TABLE + log)
    assert check_page(page, page.read_text()).problems == []


def test_empty_and_undecodable_images_are_reported(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    page = _page(tmp_path, "<img src='empty.png'><img src='junk.png'>")
    problems = check_page(page, page.read_text()).problems
    assert any("empty.png is missing or empty" in p for p in problems)
    assert any("junk.png does not decode" in p for p in problems)


def test_page_without_article_did_not_render(tmp_path):
    page = tmp_path / "p.html"
    page.write_text("<html><body>404</body></html>")
    assert check_page(page, page.read_text()).problems


@pytest.mark.skipif(find_chromium() is None, reason="Chromium not installed")
def test_chromium_renders_page(tmp_path):
    _png(tmp_path / "fig.png")
    page = _page(tmp_path, GOOD + "<img src='fig.png'>")
    dom = render_dom(page, find_chromium())
    assert "bd-article" in dom and check_page(page, dom).problems == []


# --- what a reader must not see: the Colab install cell and the build machine's paths ------

COLAB_CELL = ("<div class='cell docutils container'><div class='cell_input docutils container'>"
              "<pre>try:\n    import google.colab\n    !pip install xcf\nexcept ImportError:\n    pass</pre>"
              "</div></div>")


def test_a_rendered_remove_cell_is_reported(tmp_path):
    page = _page(tmp_path, GOOD + COLAB_CELL)
    problems = check_page(page, page.read_text()).problems
    assert any("remove-cell" in p for p in problems), problems


def test_colab_named_outside_the_article_passes(tmp_path):
    """The theme's launch button names Colab in the page header, which is fine."""
    page = tmp_path / "page.html"
    page.write_text("<html><body><header><a href='https://colab.research.google.com/x'>google.colab"
                    f"</a></header><article class='bd-article'>{GOOD}</article></body></html>")
    assert check_page(page, page.read_text()).problems == []


@pytest.mark.parametrize("printed", [
    "PosixPath('{repo}/_build/runs/metrics/11_claims.json')",
    "results in /tmp/pytest-7/runs/fashion-mnist",
    "saved to /root/.cache/xcf/model.pt",
])
def test_an_output_printing_a_build_machine_path_is_reported(tmp_path, printed):
    text = printed.format(repo=ROOT)
    page = _page(tmp_path, f"<div class='cell_output docutils container'><pre>{text}</pre></div>")
    problems = check_page(page, page.read_text()).problems
    assert any("path of the build machine" in p for p in problems), problems


def test_relative_paths_in_outputs_and_absolute_paths_in_code_pass(tmp_path):
    out = "<div class='cell_output docutils container'><pre>results in notebooks/results/cpu</pre></div>"
    code = "<div class='cell_input docutils container'><pre>root = '/tmp/example'</pre></div>"
    page = _page(tmp_path, out + code)
    assert check_page(page, page.read_text()).problems == []


def test_the_repository_path_is_a_forbidden_prefix():
    assert str(ROOT) in bookcheck.machine_paths()


@pytest.mark.skipif(find_chromium() is None, reason="Chromium not installed")
def test_screenshot_is_a_png_of_the_window_size(tmp_path):
    page = _page(tmp_path, GOOD)
    out = bookcheck.screenshot(page, tmp_path / "shots" / "page.png", size=(320, 240))
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (320, 240)


@pytest.mark.skipif(find_chromium() is None, reason="Chromium not installed")
def test_screenshot_command_line(tmp_path):
    import subprocess

    page = _page(tmp_path, GOOD)
    out = tmp_path / "cli.png"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "bookcheck.py"), "--screenshot",
                           str(page), str(out), "--window-size", "400,300"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert struct.unpack(">II", out.read_bytes()[16:24]) == (400, 300)


# --- no parameters cell: neither the notebook's own nor the one papermill injects -----------

PARAMETER_CELL = ("<div class='cell tag_{tag} docutils container'><div class='cell_input docutils "
                  "container'><pre>profile = \"cpu\"</pre></div></div>")


@pytest.mark.parametrize("tag", ["parameters", "injected-parameters"])
def test_a_rendered_parameters_cell_is_reported(tmp_path, tag):
    page = _page(tmp_path, GOOD + PARAMETER_CELL.format(tag=tag))
    problems = check_page(page, page.read_text()).problems
    assert any("parameters cell" in p for p in problems), problems


def test_a_cell_whose_tag_only_contains_the_word_passes(tmp_path):
    page = _page(tmp_path, GOOD + PARAMETER_CELL.format(tag="hide-input"))
    assert check_page(page, page.read_text()).problems == []


BUILT = sorted((ROOT / "_build" / "html" / "notebooks").glob("*.html"))


@pytest.mark.skipif(not BUILT, reason="no built book under _build/html (make book)")
@pytest.mark.parametrize("page", BUILT, ids=lambda p: p.stem)
def test_the_built_pages_show_no_parameters_cell(page):
    """What tools/build_book.py built: the page of every notebook leaves out both its
    parameters cell and the one papermill injected (their tags become classes)."""
    html = page.read_text(encoding="utf-8")
    for cls in bookcheck.PARAMETER_CELL_CLASSES:
        assert cls not in html, f"{page.name} shows a cell tagged {cls[len('tag_'):]}"


@pytest.mark.parametrize("argv, said", [
    (["{tmp}/empty"], "no pages in"),
    (["--screenshot", "{tmp}/none.html", "{tmp}/x.png"], "does not exist; build the book first"),
    (["--screenshot", "{tmp}/page.html", "{tmp}/x.png", "--window-size", "12x40"],
     "give W,H in pixels"),
])
def test_bad_input_is_one_line_of_error_and_no_traceback(tmp_path, capsys, argv, said):
    (tmp_path / "empty").mkdir()
    (tmp_path / "page.html").write_text("<html></html>")
    with pytest.raises(SystemExit) as stop:
        bookcheck.main([a.format(tmp=tmp_path) for a in argv])
    assert stop.value.code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
