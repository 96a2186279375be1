"""`mmgen app` in a real headless browser: Debian's chromium driven by Playwright.

The app serves the shipped ToyDance checkpoint on a free localhost port (in a thread of this
process); the browser uploads a 3-s held-out dance, runs dance2music with 3 steps, and reads back
the wav the page's <audio> element plays: it must last exactly the dance's 3 s (the pipeline's
default clip is 4 s, so a page that ignored the upload would fail). A task without its input must
show Gradio's error message in the page. The page must load nothing from outside localhost.

Skipped only when /usr/bin/chromium is missing (`apt-get install chromium`; .ci/run installs it).
Set MMGEN_APP_SCREENSHOT=path.png to keep a screenshot of the page after the run.
"""

import io
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported (in the fixture)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECONDS = 3.0
pytestmark = [  # ~25 s on an idle 2-core machine: Gradio's import, the checkpoint, writing the files
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} missing: apt-get install chromium"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app on the shipped checkpoint, served from a thread; Gradio's cache in a temp folder."""
    tmp = tmp_path_factory.mktemp("app")
    os.environ["GRADIO_TEMP_DIR"] = str(tmp / "gradio")
    from mmgen.app.app import build_app, launch_app
    from mmgen.app.workspace import Workspace
    from mmgen.demo.run import default_pipeline_dir
    from mmgen.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(default_pipeline_dir())
    workspace = Workspace(parent=tmp)
    blocks = build_app(pipe, workspace)
    url = launch_app(blocks, workspace, port=free_port(), block=False)
    yield url
    blocks.close()
    workspace.close()
    assert not workspace.root.exists()


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(120_000)  # a shared 2-core machine can be slow
        yield page
        context.close()


def dance_npz(path: Path) -> Path:
    from mmgen.data.toydance import generate_clip
    from mmgen.io.export import save_motion_npz

    clip = generate_clip(10_003, seconds=SECONDS, render_video=False)  # a held-out seed
    return save_motion_npz(path, clip.joints, clip.fps)


def upload(page, elem_id: str, path: Path, attempts: int = 3) -> None:
    """Put `path` into the file box `elem_id` and wait until it lists the file.

    The boxes are mounted with the page (when they appeared only after the source radio's round
    trip, CI saw a box whose file input never came). A box holding a file has no file input any
    more, so a slow upload (the machine busy with the other test worker) must be waited for, not
    repeated: the input is set again only while the box is still empty. Gradio shows the name as
    two elements ("dance", ".npz") that the page may or may not separate by a line break, so the
    box's whole text is matched with any white space between stem and suffix.
    """
    from playwright.sync_api import expect

    box = page.locator(f"#{elem_id}")
    box.wait_for(state="visible")
    file_input = box.locator("input[type=file]")
    listed = re.compile(re.escape(path.stem) + r"\s*" + re.escape(path.suffix))
    for attempt in range(attempts):
        if attempt == 0 or file_input.count():  # the first call waits for the input to attach
            file_input.set_input_files(str(path))
        try:
            expect(box).to_contain_text(listed, timeout=60_000)
            return
        except AssertionError:
            pass
    raise AssertionError(f"#{elem_id} never listed {path.name}; the box shows: {box.inner_text()!r}")


def pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_dance2music_in_the_browser_plays_a_wav_as_long_as_the_dance(app_url, page, tmp_path):
    from playwright.sync_api import expect

    outside = []
    local = (app_url.rstrip("/"), "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
    page.goto(app_url)
    page.get_by_label("my files").check()
    expect(page.locator("#example_seed")).to_be_hidden()  # the source radio's round trip is over
    upload(page, "motion", dance_npz(tmp_path / "dance.npz"))

    # each task shows the span boxes it takes, and only those
    for task, shown in (("interpolate", {"head", "tail"}), ("edit", {"start", "end", "t0"})):
        pick(page, "task", task)
        for span in ("head", "tail", "prefix", "start", "end", "t0"):
            box = expect(page.locator(f"#span_{span}"))
            box.to_be_visible() if span in shown else box.to_be_hidden()

    # a task whose input is missing: the page says what to upload, no traceback
    pick(page, "task", "music2dance")
    page.locator("#generate").click()
    page.get_by_text("music2dance needs an audio file").first.wait_for()
    assert page.get_by_text("Traceback").count() == 0

    pick(page, "task", "dance2music")
    steps = page.locator("#steps input[type=number]")
    steps.fill("3")
    steps.press("Enter")
    page.locator("#generate").click()
    page.locator("#summary").get_by_text("dance2music: 3 s from motion; 3 steps").wait_for(timeout=300_000)

    src = page.evaluate("() => document.querySelector('#audio_out audio').src")
    assert src.startswith(app_url.rstrip("/")) and src.endswith(".wav"), src
    audio, sr = sf.read(io.BytesIO(page.request.get(src).body()))
    assert sr == 22050 and len(audio) == round(SECONDS * sr), (sr, len(audio))
    assert np.isfinite(audio).all() and 0.01 < np.abs(audio).max() <= 1.0  # music, not silence
    page.wait_for_function("() => document.querySelector('#audio_out audio').duration > 0")
    duration = page.evaluate("() => document.querySelector('#audio_out audio').duration")
    assert duration == pytest.approx(SECONDS, abs=0.01)  # what the browser itself decoded

    page.wait_for_function("() => document.querySelector('#mel_out img')?.naturalWidth > 0")
    video = page.evaluate("() => document.querySelector('#video_out video')?.src || ''")
    assert video.endswith(".mp4"), video
    names = page.locator("#files_out").inner_text().replace("\n", "")  # name and suffix sit in two spans
    for suffix in (".wav", ".npz", ".mp4", "_mel.png"):
        assert f"mmgen_dance2music{suffix}" in names
    if os.environ.get("MMGEN_APP_SCREENSHOT"):
        page.screenshot(path=os.environ["MMGEN_APP_SCREENSHOT"], full_page=True)
    assert outside == [], f"the page fetched from outside localhost: {outside}"
