"""The pages to browse: ``predictions.html`` (tf_bimodal.export.page) and ``report.html``
(tf_bimodal.pages), checked as HTML and, where Debian's ``chromium`` is installed, in a real
headless browser: the table renders and sorts by a click on its headers."""

from __future__ import annotations

import html.parser
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from test_pipeline_inputs import tiny_pipeline

from tf_bimodal import pages
from tf_bimodal.experiments.report import REPORT_HTML, write_report
from tf_bimodal.export import predict as predict_lib
from tf_bimodal.export.exporter import EXPORT_FILE
from tf_bimodal.export.page import PREDICTIONS_HTML
from tfds_builder.bimodal_breast_us.make_dummy_data import synthetic_bmode, synthetic_semode, write_image

CHROMIUM = shutil.which("chromium")
VOID = {"meta", "img", "br", "hr", "input", "link"}


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """``predict`` on a folder of 10 cases (9 pairs or B-mode images and 1 broken file)."""
    root = tmp_path_factory.mktemp("page")
    pipeline = tiny_pipeline()
    tf.saved_model.save(pipeline, str(root / "export" / "cad_pipeline"), signatures=pipeline.serving_signatures())
    (root / "export" / EXPORT_FILE).write_text(json.dumps({
        "parts": ["cad_pipeline"], "synthetic": True, "notice": "SYNTHETIC",
        "segmenter": {"run": "w_mm_unet", "dataset": "bimodal_breast_us/phantom", "folds": [0]},
        "classifier": {"run": "mff", "dataset": "bimodal_breast_us/phantom", "folds": [0],
                       "embracement": "expected", "threshold": 0.5},
        "versions": {"tf_bimodal": "test"},
    }))
    rng = np.random.default_rng(4)
    for number in range(9):
        bmode, _ = synthetic_bmode(rng, centre=(16 + 3 * number, 14 + 2 * number), axes=(5 + number % 4, 4))
        write_image(root / "cases" / f"c{number}_bmode.png", bmode)
        if number % 3:
            write_image(root / "cases" / f"c{number}_semode.png", synthetic_semode(bmode, rng))
    (root / "cases" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"cut short")
    result = predict_lib.predict(str(root / "export"), predict_lib.folder_cases(str(root / "cases")),
                                 str(root / "out"), progress=False)
    assert result["cases"] == 10 and result["failed"] == 1
    return result


class _Checker(html.parser.HTMLParser):
    """Every tag closed in order; the sources of images and links collected."""

    def __init__(self):
        super().__init__()
        self.open, self.problems, self.sources, self.rows = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.sources += [attrs[name] for name in ("src", "href") if attrs.get(name)]
        if tag == "tr" and "data-id" in attrs:
            self.rows += 1
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:]}")
        else:
            self.open.pop()


def _checked(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.problems and not checker.open, (checker.problems, checker.open)
    assert text.startswith("<!DOCTYPE html>")
    # Nothing to fetch: the page works offline (a web address may be named in the text).
    assert not [source for source in checker.sources if re.match(r"(https?:)?//", source)]
    assert not re.search(r"url\(|@import|<link|<iframe", text)
    return checker


def test_predictions_page_holds_every_case_inline(predicted):
    text = open(predicted["html"], encoding="utf-8").read()
    assert predicted["html"].endswith(PREDICTIONS_HTML)
    checker = _checked(text)
    assert checker.rows == 10
    images = [source for source in checker.sources if source.startswith("data:")]
    assert len(images) == 2 * 9 and all(re.match(r"data:image/(png|jpeg);base64,", s) for s in images)
    assert all(not source.startswith(("/", "file:")) for source in checker.sources)  # links beside the page
    assert 'id="errors"' in text and "broken.png" in text and "truncated PNG" in text
    assert "w_mm_unet" in text and "mff" in text and "threshold 0.5" in text and "tf_bimodal test" in text
    assert predict_lib.SYNTHETIC_MODEL_NOTICE in text
    for key in ("p_malignant", "label", "lesion_area_px", "status"):
        assert f'data-key="{key}"' in text
    assert len(text) < 2_000_000


def test_markdown_to_html_converts_the_reports_markdown(tmp_path):
    write_image(tmp_path / "fig.png", np.full((30, 40, 3), 200, np.uint8))
    markdown = ("# Report: x\n\n> **SYNTHETIC**\n\nWritten from `runs/x`; see [the plan](plan.md) and "
                "[the paper](https://example.org/paper).\n\n- **Data**: phantom\n- **Machine**: cpu\n\n"
                "| model | Dice (%) |\n|---|---|\n| **W-MM-U-Net** | 80.1 ± 2.0 |\n| U-Net | 70 < 75 |\n\n"
                "![Figure 5](fig.png)\n\n![Figure 6](absent.png)\n")
    body = pages.markdown_to_html(markdown, str(tmp_path))
    checker = _checked(pages.page("r", body))
    assert "<h1>Report: x</h1>" in body and "<blockquote><strong>SYNTHETIC</strong></blockquote>" in body
    assert "<code>runs/x</code>" in body and '<a href="plan.md">the plan</a>' in body
    assert "the paper (https://example.org/paper)" in body and 'href="https' not in body
    assert "<li><strong>Data</strong>: phantom</li>" in body and "<td>70 &lt; 75</td>" in body
    assert "<th>Dice (%)</th>" in body and "<td><strong>W-MM-U-Net</strong></td>" in body
    assert [s[:22] for s in checker.sources if s.startswith("data:")] == ["data:image/png;base64,"]
    assert "absent.png not found" in body


def test_write_report_writes_report_html_beside_report_md(tmp_path):
    path = write_report(str(tmp_path))
    page = (tmp_path / REPORT_HTML).read_text(encoding="utf-8")
    assert path.endswith("report.md") and "<h1>Experiment report: " in page
    _checked(page)


def _chromium(*arguments, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           *arguments], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")
def test_predictions_page_renders_and_sorts_in_chromium(predicted, tmp_path):
    page = predicted["html"]
    screenshot = tmp_path / "predictions.png"
    _chromium(f"--screenshot={screenshot}", "--window-size=1400,2400", f"file://{page}", cwd=tmp_path)
    image = tf.io.decode_png(tf.io.read_file(str(screenshot))).numpy()
    assert image.shape[:2] == (2400, 1400) and image.std() > 20  # drawn, not blank
    rows = {row["id"]: row for row in predicted["rows"]}
    for fragment, key, reverse in (("sort=p_malignant&order=desc", "p_malignant", True),
                                   ("sort=lesion_area_px", "lesion_area_px", False),
                                   ("sort=id&order=desc", "id", True)):
        dom = _chromium("--dump-dom", "--virtual-time-budget=3000", f"file://{page}#{fragment}", cwd=tmp_path).stdout
        order = re.findall(r'<tr class="\w+" data-id="([^"]+)"', dom)
        assert sorted(order) == sorted(rows), dom[-2000:]
        assert f'data-sorted="{key} {"desc" if reverse else "asc"}"' in dom
        predicted_ok = [name for name in order if rows[name]["status"] == "ok"]
        expected = sorted(predicted_ok, key=lambda name: rows[name][key], reverse=reverse)
        assert [rows[name][key] for name in predicted_ok] == [rows[name][key] for name in expected], fragment
        if key != "id":  # a failed case has no number: last whatever the order
            assert order[-1] == "broken"
