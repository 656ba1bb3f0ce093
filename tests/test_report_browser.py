"""The HTML report in a real headless Chromium: it loads cleanly and shows every figure.

Driver: Playwright's Python package, launched on the system's Chromium (`executable_path`), so no
browser is downloaded. Skipped where Chromium or Playwright is missing, unless KLDIV_REQUIRE_BROWSER=1
(then it fails). The screenshot goes to artifacts/report.png for a person to look at.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kldiv.plot import comparison_figures, figure_png, history_figure
from kldiv.report import html_report
from kldiv.stats import compare_arms

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
METRICS = ("train_accuracy", "test_accuracy", "train_loss", "test_loss")


def unavailable(reason: str) -> None:
    if os.environ.get("KLDIV_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (KLDIV_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("no chromium executable on PATH")
    return path


def synthetic_report(tmp_path: Path) -> tuple[Path, int]:
    """report.html from synthetic stats and real figures; returns its path and the figure count."""
    rng = np.random.default_rng(0)
    seeds, epochs = 12, 30
    decay = np.exp(-np.arange(epochs) / 8.0)

    def noise(scale: float) -> np.ndarray:
        return rng.normal(0.0, scale, (seeds, epochs))

    def history() -> dict[str, np.ndarray]:
        return {
            "loss": 0.4 + decay + noise(0.02),
            "val_loss": 0.45 + decay + noise(0.02),
            "accuracy": 0.82 - 0.3 * decay + noise(0.01),
            "val_accuracy": 0.8 - 0.3 * decay + noise(0.01),
        }

    ce = {m: rng.normal(0.82 if m.endswith("accuracy") else 0.41, 0.01, seeds) for m in METRICS}
    finals = {
        "kl": {m: v.copy() for m, v in ce.items()},
        "ce": ce,
        "js": {m: v + rng.normal(0.01, 0.01, seeds) for m, v in ce.items()},
    }
    histories = {arm: history() for arm in finals}
    figures = {
        name: figure_png(fig) for name, fig in comparison_figures(histories, finals, "ce").items()
    }
    figures["kl, seed 0"] = figure_png(
        history_figure({k: v[0] for k, v in histories["kl"].items()}, title="kl, seed 0")
    )
    page = html_report(
        title="kldiv compare: kl, ce, js",
        command="kldiv compare --losses kl,ce,js --seeds 12",
        config={"losses": ["kl", "ce", "js"], "seeds": seeds, "epochs": epochs},
        stats=compare_arms(finals, baseline="ce", n_boot=1000),
        figures=figures,
    )
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    return path, len(figures)


def test_report_renders_in_chromium(tmp_path):
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    report, n_figures = synthetic_report(tmp_path)
    errors, requests = [], []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images, i => "
                "({alt: i.alt, complete: i.complete, width: i.naturalWidth}))"
            )
            charset = page.evaluate("document.characterSet")
            tables = page.evaluate("document.querySelectorAll('table').length")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            shutil.copy(report, ARTIFACTS / "report.html")
        finally:
            context.close()
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert len(images) == n_figures
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    assert [i["alt"] for i in images] == ["curves", "finals", "differences", "kl, seed 0"]
    assert charset == "UTF-8"
    assert tables == 5  # summaries, differences, tests, verdicts, how many seeds
    assert overflow <= 0
