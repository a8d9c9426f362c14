"""``Page``: the dashboard open in the test browser, with the waits and helpers the
browser tests share (screenshots, REST calls from the test process, the request log)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from live_server import ARTIFACTS


class Page:
    """The dashboard in the browser, with the waits the tests need."""

    def __init__(self, driver: Any, server: Any) -> None:
        self.driver = driver
        self.server = server

    def open(self, hash_path: str) -> None:
        self.driver.get(f"{self.server.base_url}/{hash_path}")
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")

    def wait(self, condition: Callable[[Any], Any], timeout: float = 30, message: str = "") -> Any:
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        # Live pages re-render (the jobs list every 2 s): an element found a moment ago
        # may be gone; the condition is simply tried again.
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
                             ).until(condition, message)

    def text(self, selector: str) -> str | None:
        """textContent of the first match, read in one step (safe while the page re-renders)."""
        return self.js("return document.querySelector(arguments[0])?.textContent ?? null", selector)

    def attr(self, selector: str, name: str) -> str | None:
        return self.js("return document.querySelector(arguments[0])?.getAttribute(arguments[1]) ?? null", selector, name)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def wait_css(self, selector: str, timeout: float = 30) -> Any:
        return self.wait(lambda d: self.all(selector)[0] if self.all(selector) and self.all(selector)[0].is_displayed() else None,
                         timeout, f"{selector} did not appear")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        # Full-page screenshot: size the window to the document for the capture.
        height = self.js("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
        width = self.driver.get_window_size()["width"]
        self.driver.set_window_size(width, min(max(int(height) + 120, 800), 6000))
        time.sleep(0.2)
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(width, 1000)
        return path

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A REST call from the test process (setting up jobs the UI then shows)."""
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.server.api_key:
            headers["Authorization"] = f"Bearer {self.server.api_key}"
        request = urllib.request.Request(f"{self.server.base_url}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def requested_urls(self) -> list[str]:
        """URLs of every request the browser made since the last call (performance log)."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls
