"""`eva02at demo`: the Gradio page over an extraction folder, checked in a real (headless) Chromium.

Expected rankings are computed here from the model and the stored shards (cosine, stable arg-sort), not by the
demo's code.
"""

import logging
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import extract_argv, extraction_workspace, save_model_dir
from safetensors.torch import load_file, save_file

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval
from eva02at_hf.apps.cli import EXIT_PARTIAL, EXIT_USAGE, main
from eva02at_hf.apps.features import load_features
from eva02at_hf.training.models import processor_for

gr = pytest.importorskip("gradio", reason="the demo needs gradio (pip install -e '.[dev]')")
from eva02at_hf.apps.demo import (  # noqa: E402
    DemoSetupError,
    FeatureSearch,
    VideoHit,
    build_demo,
    launch,
    video_hits_html,
)

TEXTS = [
    "move the red square left",
    "grow the blue circle",
    "shrink the green triangle",
    "a yellow disc fades",
]
QUERY = "grow the blue circle"
TOP_K = 3


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = extraction_workspace(tmp_path_factory.mktemp("demo"), TEXTS, num_clips=6)
    assert (
        main(extract_argv(root, root / "features")) == EXIT_PARTIAL
    )  # broken.mp4 is listed as failed, the rest is searchable
    return root


def expected_video_ranking(workspace: Path, query: str, k: int) -> tuple[list[str], np.ndarray]:
    model = EVA02ATForVideoTextRetrieval.from_pretrained(workspace / "model").eval()
    tokens = processor_for(model.config)(text=[query], return_tensors="pt")
    with torch.no_grad():
        output = model.get_text_features(tokens["input_ids"], tokens["attention_mask"])
    text = torch.nn.functional.normalize(output.pooler_output, dim=-1)[0].numpy()
    videos = load_features(workspace / "features", "video")
    similarity = videos.embeddings.numpy() @ text
    best = np.argsort(-similarity, kind="stable")[:k]
    return [videos.ids[i] for i in best], similarity[best]


def expected_text_ranking(workspace: Path, video_id: str, k: int) -> tuple[list[str], np.ndarray]:
    videos = load_features(workspace / "features", "video")
    texts = load_features(workspace / "features", "text")
    similarity = texts.embeddings.numpy() @ videos.embeddings[videos.ids.index(video_id)].numpy()
    best = np.argsort(-similarity, kind="stable")[:k]
    return [texts.table["text"][i] for i in best], similarity[best]


def test_feature_search_ranks_both_ways(workspace: Path) -> None:
    index = FeatureSearch(workspace / "features")
    ids, scores = expected_video_ranking(workspace, QUERY, TOP_K)
    hits = index.text_to_video(QUERY, TOP_K)
    assert [h.id for h in hits] == ids and [h.rank for h in hits] == [1, 2, 3]
    np.testing.assert_allclose([h.score for h in hits], scores, rtol=1e-5)
    assert "broken.mp4" not in index.videos.ids and index.weights_match
    first = index.videos.ids[0]
    texts, text_scores = expected_text_ranking(workspace, first, 2)
    assert [h.text for h in index.video_to_text(first, 2)] == texts
    video_file = index.videos.table["path"][0]  # a file query is embedded like at extraction
    hits = index.video_to_text(video_file, 2)
    assert [h.text for h in hits] == texts
    np.testing.assert_allclose([h.score for h in hits], text_scores, atol=1e-5)
    window = video_hits_html([VideoHit(1, "a<b", 0.5, "/v/a b.mp4", 1.0, 2.5)])
    assert 'src="/gradio_api/file=/v/a b.mp4#t=1,2.5"' in window and 'data-id="a&lt;b"' in window
    with pytest.raises(ValueError, match="type a text query"):
        index.text_to_video("  ")
    with pytest.raises(ValueError, match="neither an extracted video id nor a video file"):
        index.video_to_text("nope")


def test_unsearchable_folders_say_why(workspace: Path, tmp_path: Path, caplog) -> None:
    with pytest.raises(DemoSetupError, match=r"(?s)no manifest\.json .*eva02at extract --model"):
        FeatureSearch(tmp_path)
    moved = tmp_path / "moved"
    shutil.copytree(workspace / "features", moved)
    with pytest.raises(DemoSetupError, match="(?s)model that embeds the queries was not found.*--model"):
        FeatureSearch(moved, model=str(tmp_path / "gone"))
    config = EVA02ATConfig.from_preset("eva02at-tiny")
    config.projection_dim = 16  # the extracted features are 32-dimensional
    save_model_dir(tmp_path / "other", EVA02ATForVideoTextRetrieval(config))
    with pytest.raises(DemoSetupError, match="32-dimensional video features but .* in 16 dimensions"):
        FeatureSearch(workspace / "features", model=str(tmp_path / "other"))
    broken = tmp_path / "broken-model"
    shutil.copytree(workspace / "model", broken)
    weights = load_file(broken / "model.safetensors")
    save_file({k: v for k, v in weights.items() if "text_projection" not in k}, broken / "model.safetensors")
    with pytest.raises(DemoSetupError, match="query model cannot be loaded.*text_projection"):
        FeatureSearch(workspace / "features", model=str(broken))
    with caplog.at_level(logging.WARNING, logger="eva02at_hf.apps.demo"):
        assert isinstance(build_demo(tmp_path / "nowhere"), gr.Blocks)  # the page explaining why
    assert "cannot search" in caplog.text and "is not a folder" in caplog.text
    if not torch.cuda.is_available():
        argv = ["demo", "--features", str(workspace / "features"), "--device", "cuda"]
        assert main(argv) == EXIT_USAGE
    assert main(["demo", "--features", str(tmp_path), "--port", "0"]) == EXIT_USAGE  # --port must be >= 1
    assert main(["demo", "--help"]) == 0


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip(
            "chromium / chromedriver not installed (.ci/run installs them: apt-get install chromium chromium-driver)"
        )
    return browser, driver


@pytest.fixture
def browser():
    binary, driver_path = _chromium()
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    yield driver
    driver.quit()


def _wait_for(driver, selector: str, timeout: float = 30.0) -> list:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))


@pytest.fixture
def demo_server(workspace: Path):
    """`python -m eva02at_hf demo --features DIR` in a subprocess: yields its URL, then stops it with Ctrl-C."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "eva02at_hf", "demo", "--features", str(workspace / "features")]
    process = subprocess.Popen(
        [*argv, "--top_k", str(TOP_K)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("EVA02-AT demo on "):
                break
        else:
            pytest.fail(f"the demo did not start (exit {process.wait()}):\n{''.join(lines)}")
        url = line.split(" on ", 1)[1].split(" (", 1)[0]
        yield url
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_demo_in_a_browser(workspace: Path, tmp_path: Path, browser, demo_server: str) -> None:
    from selenium.webdriver.common.by import By

    url = demo_server
    assert url.startswith("http://127.0.0.1:")  # local only
    ids, scores = expected_video_ranking(workspace, QUERY, TOP_K)
    browser.get(url)
    _wait_for(browser, "#query textarea")[0].send_keys(QUERY)
    browser.find_element(By.CSS_SELECTOR, "#search-videos").click()
    rows = _wait_for(browser, "#video-hits tr.hit")
    assert [row.get_attribute("data-id") for row in rows] == ids  # the expected clips, in rank order
    shown = [float(row.find_element(By.CSS_SELECTOR, ".score").text) for row in rows]
    np.testing.assert_allclose(shown, scores, atol=1e-4)
    _wait_for(browser, "#frame-strips img")
    browser.save_screenshot(str(tmp_path / "demo-text-to-video.png"))

    player = rows[0].find_element(By.CSS_SELECTOR, "video").get_attribute("src")
    with urllib.request.urlopen(player.split("#")[0]) as response:  # the clip file is served ...
        assert response.status == 200 and response.read(12)[4:8] == b"ftyp"
    manifest = url.rstrip("/") + f"/gradio_api/file={workspace / 'features' / 'manifest.json'}"
    with pytest.raises(urllib.error.HTTPError):  # ... and nothing else of the disk
        urllib.request.urlopen(manifest)

    browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Video')]").click()
    _wait_for(browser, "#video-query textarea")[0].send_keys(ids[1])  # the runner-up clip
    browser.find_element(By.CSS_SELECTOR, "#search-texts").click()
    rows = _wait_for(browser, "#text-hits tr.hit")
    texts, text_scores = expected_text_ranking(workspace, ids[1], TOP_K)
    assert [row.find_element(By.CSS_SELECTOR, ".hit-text").text for row in rows] == texts
    shown = [float(row.find_element(By.CSS_SELECTOR, ".score").text) for row in rows]
    np.testing.assert_allclose(shown, text_scores, atol=1e-4)
    browser.save_screenshot(str(tmp_path / "demo-video-to-text.png"))


def test_empty_folder_page_in_a_browser(tmp_path: Path, browser, monkeypatch) -> None:
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    empty = tmp_path / "empty"
    empty.mkdir()
    page, url = launch(build_demo(empty), block=False)
    try:
        browser.get(url)
        message = _wait_for(browser, "#demo-error")[0].text
        assert f"Cannot search {empty}" in message and "eva02at extract" in message
        browser.save_screenshot(str(tmp_path / "demo-empty.png"))
    finally:
        page.close()
    with pytest.raises(urllib.error.URLError):  # the server is down
        urllib.request.urlopen(url, timeout=5)
