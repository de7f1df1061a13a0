"""The browser view in a real browser: Debian's chromium driven by Playwright (never its
own browser download), against a real ``serve`` on the Hamilton clip.

A click on an unknown face and a typed name enrol it live, and the name shows on the
picture; a photo with two faces asks which one; rename and remove show in the people
panel. ``FACELANDMARKS_SCREENSHOTS=docs`` also saves the README's screenshots there
(1280 and 390 px wide)."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install chromium; .ci/run does)")

from tests.serving import serving_clip, two_people_png  # noqa: E402

LABEL_WITHIN_MS = 10_000
CLIP_FRAMES = 275
NEW_NAME = "Lin-Manuel Miranda"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving_clip(tmp_path_factory.mktemp("browser")) as process:
        yield process


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


def screenshot(page, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FACELANDMARKS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))
    return path


def frame_in_clip(server) -> int:
    return httpx.get(f"{server.url}/api/faces").json()["frame"] % CLIP_FRAMES


def test_click_a_face_name_it_and_its_label_appears(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(server.url)
    page.wait_for_function("document.getElementById('stream').naturalWidth > 0")
    # a large unknown face early in his close-up (frames 82-210 of 275, looping), so five
    # good views come before the shot ends
    big = ("[...document.querySelectorAll('#boxes button.face.unknown')]"
           ".find(b => b.getBoundingClientRect().width > 90)")
    deadline = time.monotonic() + 30
    while not (page.evaluate(f"!!({big})") and 85 <= frame_in_clip(server) <= 150):
        assert time.monotonic() < deadline, "no large unknown face on the picture in 30 s"
        time.sleep(0.05)
    page.evaluate(f"{big}.dispatchEvent(new PointerEvent('pointerdown', {{bubbles: true}}))")
    page.fill("#enrol-name", NEW_NAME)
    page.click("#enrol-form button[type=submit]")
    named = f'#boxes button.face[data-name="{NEW_NAME}"]'
    page.wait_for_selector(named, state="attached", timeout=LABEL_WITHIN_MS)
    page.wait_for_selector(f'#people li.person[data-name="{NEW_NAME}"]', timeout=5_000)
    screenshot(page, "serve.png", tmp_path)
    page.close()


def test_a_two_face_photo_asks_which_face_then_rename_and_remove_show(server, browser,
                                                                      tmp_path):
    page = browser.new_page(viewport={"width": 390, "height": 844})   # a phone
    page.goto(server.url)
    page.fill("#add-name", "Alex Lacamoire")
    page.set_input_files("#add-photos", str(two_people_png(tmp_path)))
    page.click("#add-form button[type=submit]")
    page.wait_for_selector("#choose:not([hidden])", timeout=30_000)
    assert "2 faces" in page.text_content("#choose-text")
    page.wait_for_function("document.querySelectorAll('#choose-boxes button.face').length == 2")
    page.locator("#choose").scroll_into_view_if_needed()
    screenshot(page, "serve-phone-choose.png", tmp_path)
    # he is on the right of the photo
    page.evaluate("[...document.querySelectorAll('#choose-boxes button.face')]"
                  ".sort((a, b) => a.offsetLeft - b.offsetLeft)[1]"
                  ".dispatchEvent(new PointerEvent('pointerdown', {bubbles: true}))")
    person = '#people li.person[data-name="Alex Lacamoire"]'
    try:
        page.wait_for_selector(person, timeout=30_000)
    except sync_api.TimeoutError:
        raise AssertionError(f"not enrolled; the page said: {page.text_content('#toast')!r}")
    assert page.is_hidden("#choose")
    page.locator(person).get_by_role("button", name="Rename").click()
    page.locator(f"{person} input").fill("Alex L.")
    page.locator(f"{person} form button[type=submit]").click()
    page.wait_for_selector('#people li.person[data-name="Alex L."]', timeout=10_000)
    page.wait_for_selector(person, state="detached")
    renamed = '#people li.person[data-name="Alex L."]'
    screenshot(page, "serve-phone.png", tmp_path)
    page.locator(renamed).get_by_role("button", name="Remove").click()
    page.locator(renamed).get_by_role("button", name="Remove Alex L.").click()
    page.wait_for_selector(renamed, state="detached", timeout=10_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390   # no sideways scroll
    page.close()
