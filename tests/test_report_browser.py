"""The HTML report in a real browser: headless Chromium renders it and the screenshot is not
blank. Skipped only where Chromium is absent outside CI; in CI (``CI=true``) it must run."""

import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from adaptloop.report import build_report
from adaptloop.report.synthetic import write_prequential_folder

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def test_report_renders_in_headless_chromium(tmp_path):
    browser = chromium()
    if browser is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is required in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    report = build_report(write_prequential_folder(tmp_path / "run", records_per_learner=300))
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,1600",
            report.html.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with Image.open(shot) as image:
        assert image.size == (1280, 1600)
        rgb = np.asarray(image.convert("RGB")).astype(int)
    drawn = (rgb < 235).any(axis=2).mean()
    assert drawn > 0.05, f"only {drawn:.1%} of the screenshot is drawn"
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 100
    # the learners' colours of the embedded figure are on screen: the image was decoded
    blue = (np.abs(rgb - np.array([0x00, 0x72, 0xB2])).sum(axis=2) <= 30).sum()
    orange = (np.abs(rgb - np.array([0xE6, 0x9F, 0x00])).sum(axis=2) <= 30).sum()
    assert blue > 100 and orange > 100
