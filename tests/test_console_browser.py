"""The event store pages as a person sees them: a real headless Chromium.

Logs into the admin of the test project, opens the event store, an
application's log, an aggregate's history and the projections, and checks what
is on the screen. A screenshot of each page is saved in ``ESDJ_SCREENSHOTS``
(default: ``<temp dir>/esdj-screenshots``).

Needs Chromium and its driver (Debian's ``chromium`` and ``chromium-driver``,
which ``.ci/run`` installs); ``ESDJ_CHROMIUM`` and ``ESDJ_CHROMEDRIVER`` name
other binaries.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

from django.contrib.auth.models import User
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.core.management import call_command
from django.test import override_settings
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from eventsourcing_django.applications import close_applications, get_application
from tests.base import drop_application_tables
from tests.test_console import APPLICATIONS, XSS
from tests.testapp.domain import Universe

SCREENSHOTS = Path(
    os.environ.get("ESDJ_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / "esdj-screenshots"
)


def chromium() -> webdriver.Chrome:
    binary = os.environ.get("ESDJ_CHROMIUM") or shutil.which("chromium")
    driver = os.environ.get("ESDJ_CHROMEDRIVER") or shutil.which("chromedriver")
    if not binary or not driver:
        msg = (
            "The browser tests need Chromium and ChromeDriver: install Debian's "
            "'chromium' and 'chromium-driver' (.ci/run does), or set ESDJ_CHROMIUM "
            "and ESDJ_CHROMEDRIVER"
        )
        raise RuntimeError(msg)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@override_settings(EVENTSOURCING_APPLICATIONS=APPLICATIONS)
class TestEventStoreInABrowser(StaticLiveServerTestCase):
    databases: ClassVar[set[str]] = {"default"}  # type: ignore[misc]
    browser: ClassVar[webdriver.Chrome]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.browser = chromium()
        cls.addClassCleanup(cls.browser.quit)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def setUp(self) -> None:
        close_applications()
        self.addCleanup(drop_application_tables, "default")
        self.addCleanup(close_applications)
        universe = get_application(Universe)
        self.world_id = universe.create_world()
        for what in ("dinosaurs", XSS, "trucks"):
            universe.make_it_so(self.world_id, what)
        call_command("run_projections", "WorldSummary", "--catch-up-only", verbosity=0)
        universe.make_it_so(self.world_id, "internet")
        User.objects.create_superuser("ada", password="lovelace-1815")

    def open(self, path: str) -> None:
        self.browser.get(self.live_server_url + path)

    def follow(self, element: WebElement, path_part: str) -> None:
        """Click a link and wait for the page it leads to (a click does not wait
        for the navigation it starts)."""
        element.click()
        WebDriverWait(self.browser, 20).until(
            expected_conditions.url_contains(path_part)
        )

    def text(self) -> str:
        return self.browser.find_element(By.TAG_NAME, "body").text

    def shot(self, name: str) -> None:
        path = SCREENSHOTS / f"{name}.png"
        self.assertTrue(self.browser.save_screenshot(str(path)), path)

    def assert_no_alert(self) -> None:
        with self.assertRaises(NoAlertPresentException):
            self.browser.switch_to.alert.text  # noqa: B018 (it raises if none)

    def test_a_person_reads_the_event_store(self) -> None:
        self.open("/admin/login/?next=/admin/")
        self.browser.find_element(By.NAME, "username").send_keys("ada")
        self.browser.find_element(By.NAME, "password").send_keys("lovelace-1815")
        self.browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        WebDriverWait(self.browser, 20).until(
            expected_conditions.title_contains("Site administration")
        )
        self.assertIn("Site administration", self.text())

        self.follow(
            self.browser.find_element(By.LINK_TEXT, "Event store"), "/eventstore/"
        )
        self.assertEqual(
            self.browser.find_element(By.TAG_NAME, "h1").text, "Event store"
        )
        row = self.browser.find_element(By.CSS_SELECTOR, "#applications tbody tr")
        self.assertIn("Universe", row.text)
        self.assertIn("universe_events, universe_snapshots", row.text)
        self.assertTrue(row.text.endswith(" 5"), row.text)  # the head of the log
        self.shot("1-event-store")

        self.follow(row.find_element(By.LINK_TEXT, "Universe"), "/Universe/")
        rows = self.browser.find_elements(By.CSS_SELECTOR, "#notifications tbody tr")
        self.assertEqual(len(rows), 5)
        self.assertTrue(rows[0].text.startswith("5 "), rows[0].text)  # newest first
        self.shot("2-notification-log")

        self.follow(
            rows[-1].find_element(By.LINK_TEXT, str(self.world_id)), "/aggregates/"
        )
        events = self.browser.find_element(By.ID, "events").text
        self.assertIn("World.SomethingHappened", events)
        self.assertIn("what\n'dinosaurs'", events)
        # The state that holds a script shows it as text, and runs nothing.
        self.assertIn(f"what\n{XSS!r}", events)
        self.assert_no_alert()
        self.shot("3-aggregate-history")

        self.open("/admin/eventsourcing_django/eventstore/projections/")
        summary = self.browser.find_element(
            By.XPATH, "//table[@id='projections']//tr[th[text()='WorldSummary']]"
        )
        cells = [td.text for td in summary.find_elements(By.TAG_NAME, "td")]
        # Application, position, head, lag, worker.
        self.assertEqual(cells[:4], ["Universe", "4", "5", "1"])
        self.assertEqual(cells[4], "none")
        self.shot("4-projections")
