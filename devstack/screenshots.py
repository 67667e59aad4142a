"""Screenshots of the main pages of a running TunedIn (what `make run` serves) for the README.

    .venv/bin/python -m devstack.screenshots [--url http://127.0.0.1:8000] [--out docs/screenshots]

Logs in as the demo world's `demo` listener (and `admin` for the model dashboard) in Debian's
Chromium driven by Playwright, and saves one PNG per page.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def _log_in(page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.press("input[name=password]", "Enter")
    page.wait_for_load_state()


def take(*, url: str, out: Path, password: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def shot(page, name: str) -> None:
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=True)
            saved.append(path)

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        shot(page, "home-logged-out")
        _log_in(page, url, "demo", password)
        page.goto(url)
        shot(page, "discover")
        track_link = page.locator("a[href^='/tracks/']").first.get_attribute("href")
        page.goto(url + track_link)
        shot(page, "track")
        artist_link = page.locator("a[href^='/artists/']").first.get_attribute("href")
        page.goto(url + artist_link)
        shot(page, "artist")
        page.goto(f"{url}/search/?q=paper")
        shot(page, "search")
        page.goto(f"{url}/playlists/")
        playlist_links = [
            href
            for href in page.locator("a[href^='/playlists/']").evaluate_all(
                "links => links.map(a => a.getAttribute('href'))"
            )
            if re.fullmatch(r"/playlists/\d+/", href or "")
        ]
        if playlist_links:
            page.goto(url + playlist_links[0])
            page.get_by_text("Continue this playlist").first.click()
            page.wait_for_load_state("networkidle")
            shot(page, "playlist")
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        _log_in(phone, url, "demo", password)
        phone.goto(url)
        shot(phone, "discover-phone")
        staff = browser.new_page(viewport={"width": 1280, "height": 900})
        _log_in(staff, url, "admin", password)
        staff.goto(f"{url}/dashboard/models/")
        shot(staff, "model-dashboard")
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", default="docs/screenshots", type=Path)
    arguments = parser.parse_args()
    password = os.environ.get("DEMO_PASSWORD", "tunedin-demo")
    for path in take(url=arguments.url.rstrip("/"), out=arguments.out, password=password):
        print(path)


if __name__ == "__main__":
    main()
