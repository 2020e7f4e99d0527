"""The console's browser journey (issue 15), driven in headless Chromium.

The seed's merchant, click by click, in a real browser through WebDriver
(Selenium + Debian's chromium/chromedriver), against `actionbox serve --store`
that tests/e2e/tests/all/console.rs started on loopback:

 1. sign in with a wrong token (a clear error, no detail), then the admin token;
 2. add ShipStation integration "shop" with a wrong key: Test says unauthorized;
 3. edit it with the right key: Test says OK;
 4. add a custom action (integration → method → fields), preview its tool
    definition, save it; the actions list shows its badges;
 5. (the tools API is checked by console.rs, outside the browser;)
 6. run it in the Action Debugger for split order 1002: two shipments, one
    waterfall bar per outbound request, the key header shown [redacted];
 7. History lists the run and opens its trace;
 8. security: no key in any page or response, CSRF-less POSTs refused, the
    session cookie HttpOnly + SameSite=Strict, a CSP on every page, no console
    errors;
 9. axe-core on every page visited (serious/critical violations fail);
10. a screenshot of every page at 1280 and 390 px wide under the output dir.

Usage:
    journey.py journey    the journey above; settings from CONSOLE_* variables
    journey.py selfcheck  axe-core on a static page with known violations
                          (proves the accessibility check can fail)

Settings (environment, so no secret shows in a process list):
    CONSOLE_URL            http://127.0.0.1:PORT of the server
    CONSOLE_WORKSPACE      the workspace id
    CONSOLE_ADMIN_TOKEN    a token of that workspace with the admin scope
    CONSOLE_WRONG_KEY      an API key the upstream refuses
    CONSOLE_RIGHT_KEY      the API key the upstream accepts
    CONSOLE_UPSTREAM       the upstream's base URL (the simulator)
    CONSOLE_ACTION         the custom action's name
    CONSOLE_PARAM_DESCRIPTION, CONSOLE_RESPONSE_INSTRUCTIONS  its texts
    CONSOLE_ORDER          the order the debugger runs (a split order)
    CONSOLE_OUT            where screenshots (and chromedriver.log) go
    CONSOLE_AXE            axe.min.js
    CONSOLE_CHROMIUM, CONSOLE_CHROMEDRIVER  the browser and its driver

The last line on stdout is one JSON object: pages (url, screenshots, axe
violation ids), violations (all, with impact), figures, failures. Exit code
0 when there are no failures. Progress goes to stderr. Nothing printed ever
holds a token or a key: every text is scrubbed first.
"""

import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import traceback
import urllib.parse

# Selenium Manager must never download a driver: the driver path is given,
# and offline mode makes any attempt fail instead of reaching the network.
os.environ["SE_OFFLINE"] = "true"

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

# The arguments Chromium needs here: headless, as root, no GPU, small
# /dev/shm, and no network beyond the loopback pages it is pointed at.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-client-side-phishing-detection",
    "--lang=en-US",
]

# The two widths every page is photographed at (desktop, phone).
WIDTHS = [(1280, False), (390, True)]

# The Content-Security-Policy every console page carries (console-spec.md).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
)

# Seconds to wait for one page or element.
WAIT = 30


def log(*parts):
    """Progress on stderr (scrubbed)."""
    print(scrub(" ".join(str(p) for p in parts)), file=sys.stderr, flush=True)


SECRETS = []


def scrub(text):
    """`text` with every secret replaced, so nothing printed can leak one."""
    text = str(text)
    for secret in SECRETS:
        if secret:
            text = text.replace(secret, "<secret>")
    return text


class StepFailed(Exception):
    """A step of the journey could not go on (the page is not as the spec says)."""


class Journey:
    """One browser session through the console, with what it found."""

    def __init__(self, settings, driver, out_dir):
        self.s = settings
        self.driver = driver
        self.out = out_dir
        self.base = settings["url"].rstrip("/")
        self.ws = settings["workspace"]
        self.pages = {}
        self.violations = []
        self.failures = []
        self.console_errors = []
        self.document_statuses = []
        self.figures = {}
        self.fetched = []
        self.sources_checked = 0

    # ------------------------------------------------------------ helpers

    def fail(self, message):
        """Record a failed check and go on (independent checks)."""
        log("FAIL:", message)
        self.failures.append(scrub(message))

    def check(self, ok, message):
        """Record `message` as a failure unless `ok`."""
        if not ok:
            self.fail(message)
        return ok

    def url(self, path):
        return self.base + path

    def ws_path(self, rest):
        return f"/console/w/{self.ws}{rest}"

    def find(self, css, timeout=WAIT):
        """The element at `css`, waiting for it; a StepFailed naming the page if absent."""
        try:
            return WebDriverWait(self.driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))
        except TimeoutException:
            raise StepFailed(f"{self.here()}: no element `{css}`; the page says: {self.main_text()[:400]!r}") from None

    def find_all(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def here(self):
        """The current page's path and query."""
        parts = urllib.parse.urlsplit(self.driver.current_url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def path(self):
        """The current page's path alone (a redirect may add a query, e.g. for
        its notice)."""
        return urllib.parse.urlsplit(self.driver.current_url).path

    def main_text(self):
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except Exception:  # noqa: BLE001 - only for a failure message
            return ""

    def wait_loaded(self):
        WebDriverWait(self.driver, WAIT).until(lambda d: d.execute_script("return document.readyState") == "complete")

    def click_and_load(self, element):
        """Click `element` (a submit button or a link) and wait for the next
        page: a mark left on the current document is gone once a new one has
        loaded."""
        self.driver.execute_script("window.__journeyMark = true;")
        element.click()

        def new_document(d):
            try:
                return d.execute_script("return window.__journeyMark !== true && document.readyState === 'complete'")
            except WebDriverException:
                return False  # mid-navigation

        try:
            WebDriverWait(self.driver, WAIT).until(new_document)
        except TimeoutException:
            raise StepFailed(f"{self.here()}: clicking did not load a new page") from None

    def go(self, path):
        self.driver.get(self.url(path))
        self.wait_loaded()

    def type_into(self, css, text):
        field = self.find(css)
        field.clear()
        field.send_keys(text)
        return field

    def select(self, css, value=None, text_contains=None):
        """Pick an option of the select at `css` by value, else by (case-blind) text."""
        sel = Select(self.find(css))
        values = [o.get_attribute("value") for o in sel.options]
        if value is not None and (value in values or text_contains is None):
            if value not in values:
                raise StepFailed(f"{self.here()}: select `{css}` has no option {value!r} (has {values})")
            sel.select_by_value(value)
            return
        for option in sel.options:
            if text_contains.lower() in option.text.lower():
                option.click()
                return
        raise StepFailed(
            f"{self.here()}: select `{css}` has no option like {text_contains!r} "
            f"(has {[o.text for o in sel.options]})"
        )

    def classes(self, element):
        return (element.get_attribute("class") or "").split()

    def nav(self, label):
        """Follow the header's nav link named `label`."""
        for link in self.find_all('nav[aria-label="Console"] a'):
            if link.text.strip() == label:
                self.click_and_load(link)
                return
        raise StepFailed(f'{self.here()}: no nav link {label!r} in <nav aria-label="Console">')

    # ------------------------------------------------------------ each page

    def visit(self, page, screenshot=False, fetchable=True):
        """What is checked on every page shown: secrets, console, axe,
        screenshots. `fetchable`: its URL shows it again with a plain GET (it
        is not the answer of a POST to a URL only for POSTs)."""
        self.wait_loaded()
        url = self.here()
        entry = self.pages.setdefault(
            page, {"url": url, "visits": 0, "screenshots": [], "violations": [], "fetchable": fetchable}
        )
        entry["visits"] += 1
        log(f"page {page}: {url}")
        source = self.driver.page_source
        self.sources_checked += 1
        for name, secret in self.secret_names():
            self.check(secret not in source, f"{page} ({url}): the page source contains the {name}")
        self.collect_console(page)
        self.axe(page)
        if screenshot:
            self.screenshot(page)
        self.collect_console(page)

    def secret_names(self):
        return [
            ("right API key", self.s["right_key"]),
            ("wrong API key", self.s["wrong_key"]),
            ("admin token", self.s["admin_token"]),
        ]

    def collect_console(self, page):
        """The browser's console since the last look: SEVERE entries fail,
        except a document's own HTTP status (the page shows it; a 401 sign-in
        is meant), which is recorded."""
        for entry in self.driver.get_log("browser"):
            if entry.get("level") != "SEVERE":
                continue
            message = scrub(entry.get("message", ""))
            if "Failed to load resource: the server responded with a status of" in message:
                resource = message.split(" ", 1)[0]
                if urllib.parse.urlsplit(resource).path.startswith("/console") and "/assets/" not in resource:
                    self.document_statuses.append({"page": page, "message": message})
                    continue
            self.console_errors.append({"page": page, "message": message})
            self.fail(f"{page}: browser console error: {message}")

    def axe(self, page):
        """axe-core on the current page: record every violation; serious and
        critical ones fail."""
        with open(self.s["axe"], encoding="utf-8") as f:
            self.driver.execute_script(f.read())
        result = self.driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] })
              .then(r => done(r.violations.map(v => ({
                  id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.map(n => ({ target: n.target.join(' '),
                                             summary: n.failureSummary })) }))))
              .catch(e => done({ error: String(e) }));
            """)
        if isinstance(result, dict):
            raise StepFailed(f"{page}: axe-core failed to run: {result.get('error')}")
        entry = self.pages[page]
        for v in result:
            if v["id"] in entry["violations"]:
                continue
            entry["violations"].append(v["id"])
            found = {
                "page": page,
                "url": self.here(),
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "nodes": [{"target": n["target"], "summary": scrub(n["summary"] or "")[:300]} for n in v["nodes"][:5]],
            }
            self.violations.append(found)
            log(f"  axe {v['impact']}: {v['id']} ({v['help']}) at {[n['target'] for n in v['nodes'][:5]]}")
            if v["impact"] in ("serious", "critical"):
                self.fail(f"{page}: axe {v['impact']} violation `{v['id']}`: {v['help']}")

    def screenshot(self, page):
        """The whole page at each of WIDTHS, as `<page>-<width>.png`; checks it
        is laid out for that width (no sideways scrolling)."""
        d = self.driver
        for width, mobile in WIDTHS:
            metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": mobile}
            d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            inner, scroll_w, height = d.execute_script(
                "return [window.innerWidth, document.documentElement.scrollWidth,"
                " Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)]"
            )
            if inner != width:
                self.fail(f"{page}: at {width} px the page is laid out {inner} px wide: {self.too_wide(width)}")
                d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            self.check(
                scroll_w <= inner + 1,
                f"{page}: at {width} px the page scrolls sideways ({scroll_w} px of content)",
            )
            metrics["height"] = max(600, min(int(height), 8000))
            d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            # Let the taller viewport lay out and paint (scroll boxes below the
            # old fold are otherwise captured blank).
            d.execute_async_script(
                "const done = arguments[arguments.length - 1]; window.scrollTo(0, 0);"
                " requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 100)));"
            )
            shot = d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
            path = os.path.join(self.out, f"{page}-{width}.png")
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            self.pages[page]["screenshots"].append(os.path.basename(path))
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def too_wide(self, width):
        """Why the page is wider than `width`: no viewport meta, or the
        outermost elements that stick out (whose parent does not), found
        with the viewport held at `width` (no mobile zoom-out)."""
        d = self.driver
        d.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        return d.execute_script(
            """
            const width = arguments[0];
            if (!document.querySelector('meta[name=viewport]')) return 'no <meta name="viewport">';
            const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
              (e.classList.length ? '.' + [...e.classList].join('.') : '');
            const out = [];
            for (const e of document.body.querySelectorAll('*')) {
              const r = e.getBoundingClientRect();
              const p = e.parentElement.getBoundingClientRect();
              if (r.width > 0 && r.right > width + 1 && p.right <= width + 1)
                out.push(name(e.parentElement) + ' > ' + name(e) + ' (' + Math.round(r.right) + ' px)');
            }
            // Text wider than its box (a long unbroken line) shows as a box
            // whose content overflows visibly: name the innermost ones.
            const spill = [...document.body.querySelectorAll('*')].filter(e =>
              e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1 &&
              getComputedStyle(e).overflowX === 'visible');
            for (const e of spill) {
              if (!spill.some(o => o !== e && e.contains(o)))
                out.push(name(e.parentElement) + ' > ' + name(e) +
                         ' (content ' + e.scrollWidth + ' px in ' + e.clientWidth + ')');
            }
            return 'content sticks out: ' + (out.slice(0, 5).join(', ') || 'unknown');
            """,
            width,
        )

    # ------------------------------------------------------------ plain HTTP

    def cookies(self):
        return {c["name"]: c for c in self.driver.get_cookies()}

    def cookie_header(self):
        return "; ".join(f"{c['name']}={c['value']}" for c in self.driver.get_cookies())

    def http(self, method, path, body=None, cookie=None):
        """One request to the server outside the browser; (status, headers, body)."""
        parts = urllib.parse.urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
        headers = {"Connection": "close"}
        if cookie:
            headers["Cookie"] = cookie
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode(body)
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read().decode("utf-8", "replace")
        answer = (r.status, r.getheaders(), data)
        conn.close()
        self.fetched.append(f"{method} {path} -> {r.status}")
        self.check_no_secret(f"{method} {path}", answer)
        return answer

    def check_no_secret(self, asked, answer):
        status, headers, body = answer
        head = "\n".join(f"{k}: {v}" for k, v in headers)
        for name, secret in self.secret_names():
            self.check(secret not in body, f"{asked}: the response body contains the {name}")
            self.check(secret not in head, f"{asked}: a response header contains the {name}")

    # ------------------------------------------------------------ the journey

    def run(self):
        self.sign_in()
        self.integration()
        self.action()
        self.debugger()
        self.history()
        self.security()
        self.sign_out()

    def sign_in(self):
        """1. A wrong token is refused without detail; the admin token signs in."""
        log("== 1. sign in")
        self.go("/console")
        self.check(
            self.here().startswith("/console/sign-in"),
            f"GET /console without a session went to {self.here()}, not /console/sign-in",
        )
        self.find("form#sign-in")
        self.find('label[for="token"]')
        self.check(self.find("#token").get_attribute("type") == "password", "sign-in: #token is not a password field")
        self.find('form#sign-in input[type="hidden"][name="csrf"]')
        self.visit("sign-in", screenshot=True)
        self.check("abx_csrf" in self.cookies(), "sign-in: no pre-session `abx_csrf` cookie was set")

        wrong = "abx_not_a_real_token_0123456789abcdef"
        SECRETS.append(wrong)
        self.type_into("#token", wrong)
        self.click_and_load(self.find("#sign-in-button"))
        error = self.find("#error")
        self.check(error.get_attribute("role") == "alert", "sign-in error: #error has no role=alert")
        self.check(
            "not accepted" in error.text,
            f'sign-in error: #error says {error.text!r}, expected "That token was not accepted…"',
        )
        self.check(wrong not in self.driver.page_source, "sign-in error: the page repeats the wrong token")
        self.check("abx_session" not in self.cookies(), "a wrong token got a session cookie")
        self.figures["wrong_token_error"] = error.text
        self.visit("sign-in-error")

        self.type_into("#token", self.s["admin_token"])
        self.click_and_load(self.find("#sign-in-button"))
        expected = self.ws_path("/integrations")
        if self.path() != expected:
            raise StepFailed(f"signing in with the admin token went to {self.here()}, not {expected}")
        self.find("header")
        self.find("main#main h1")
        self.find("form#sign-out #sign-out-button")
        self.check(self.ws in self.find("header").text, f"the header does not show workspace {self.ws}")
        self.visit("integrations-empty")

    def integration(self):
        """2-3. Add ShipStation integration "shop" with the wrong key (Test:
        unauthorized), then give it the right key (Test: OK)."""
        log("== 2. add an integration with a wrong key")
        self.click_and_load(self.find("#add-integration"))
        self.find("form#integration-form")
        for field in ("name", "kind", "component", "api_key", "timeout"):
            self.find(f'label[for="{field}"]')
        self.check(
            self.find("#api_key").get_attribute("type") == "password",
            "integration form: #api_key is not a password field",
        )
        timeout = self.find("#timeout")
        self.check(
            (timeout.get_attribute("min"), timeout.get_attribute("max"), timeout.get_attribute("value"))
            == ("10", "180", "10"),
            "integration form: #timeout should have min 10, max 180, default 10; has "
            f"{timeout.get_attribute('min')}, {timeout.get_attribute('max')}, {timeout.get_attribute('value')}",
        )
        self.visit("integration-new", screenshot=True)
        self.type_into("#name", "shop")
        self.select("#kind", text_contains="ShipStation")
        self.type_into("#api_key", self.s["wrong_key"])
        self.type_into("#timeout", "10")
        self.find("details#advanced summary").click()
        self.type_into("#base_url", self.s["upstream"])
        self.click_and_load(self.find("#save-integration"))
        if self.path() != self.ws_path("/integrations/shop"):
            raise StepFailed(f"saving integration shop went to {self.here()}; the page says {self.main_text()[:400]!r}")
        self.check(bool(self.find_all("#notice")), "integration saved: no #notice")
        self.visit("integration")

        self.click_and_load(self.find("#test-button"))
        result = self.find("#test-result")
        self.figures["test_wrong_key"] = {"class": result.get_attribute("class"), "text": scrub(result.text)}
        self.check(
            "error" in self.classes(result),
            f"Test with the wrong key: #test-result class is {result.get_attribute('class')!r}, not error",
        )
        self.check(
            "unauthorized" in result.text,
            f"Test with the wrong key: #test-result says {result.text!r}, no `unauthorized`",
        )
        self.visit("integration-test-error", fetchable=False)

        log("== 3. fix the key")
        api_key = self.find("#api_key")
        self.check(api_key.get_attribute("value") == "", "editing: #api_key is not empty")
        fingerprint_wrong = hashlib.sha256(self.s["wrong_key"].encode()).hexdigest()[:8]
        self.check(
            fingerprint_wrong in self.main_text(),
            f"editing: the key's help text does not show its fingerprint {fingerprint_wrong}",
        )
        self.check(
            self.find("#name").get_attribute("readonly") is not None,
            "editing: #name is not read-only",
        )
        self.type_into("#api_key", self.s["right_key"])
        self.click_and_load(self.find("#save-integration"))
        if self.path() != self.ws_path("/integrations/shop"):
            raise StepFailed(f"saving the new key went to {self.here()}; the page says {self.main_text()[:400]!r}")
        fingerprint = hashlib.sha256(self.s["right_key"].encode()).hexdigest()[:8]
        self.check(
            fingerprint in self.main_text(), f"after the new key: the page does not show its fingerprint {fingerprint}"
        )
        self.click_and_load(self.find("#test-button"))
        result = self.find("#test-result")
        self.figures["test_right_key"] = {"class": result.get_attribute("class"), "text": scrub(result.text)}
        self.check(
            "ok" in self.classes(result),
            f"Test with the right key: #test-result class is {result.get_attribute('class')!r}, not ok",
        )
        self.check("OK" in result.text, f"Test with the right key: #test-result says {result.text!r}, no `OK`")
        self.visit("integration", screenshot=True)

        self.nav("Integrations")
        row = self.find('table#integrations tr[data-name="shop"]')
        self.check(
            "set" in row.text and fingerprint in row.text,
            f'integrations list: the row of shop says {row.text!r}, expected "set · fingerprint {fingerprint}"',
        )
        self.visit("integrations", screenshot=True)

    def action(self):
        """4. Add a custom action: integration → method → fields; preview; save."""
        log("== 4. add an action")
        s = self.s
        self.nav("Actions")
        self.visit("actions-before")
        self.click_and_load(self.find("#add-action"))
        self.find("form#pick-method")
        self.select("#integration", value="shop")
        # The method's display name (trackOrder) or machine name (track-order).
        self.select("#method", value="trackOrder", text_contains="trackOrder")
        self.figures["method_option"] = Select(self.find("#method")).first_selected_option.get_attribute("value")
        self.visit("action-pick", screenshot=True)
        self.click_and_load(self.find("#next"))
        self.find("form#action-form")
        order = self.find("#param-order_id")
        self.figures["order_id_placeholder"] = order.get_attribute("placeholder")
        self.check(
            "Order id" in (order.get_attribute("placeholder") or ""),
            f"action form: #param-order_id placeholder is {order.get_attribute('placeholder')!r}, "
            "not the default description",
        )
        self.find('label[for="param-order_id"]')
        name_field = self.find("#name")
        self.check(name_field.get_attribute("required") is not None, "action form: #name is not required")
        self.check(bool(name_field.get_attribute("pattern")), "action form: #name has no pattern (the API's rule)")
        self.type_into("#name", s["action"])
        self.type_into("#description", "Track a Shopify order and say where it is.")
        self.select("#execution", value="during-interaction")
        self.select("#trigger", value="inbound")
        self.type_into("#param-order_id", s["param_description"])
        self.type_into("#response_instructions", s["response_instructions"])
        self.click_and_load(self.find("#preview-button"))
        preview = self.find("section#preview pre#tool-preview")
        text = preview.text
        self.check(
            s["param_description"] in text or json.dumps(s["param_description"])[1:-1] in text,
            "preview: #tool-preview does not hold the order_id description",
        )
        self.check(
            s["response_instructions"] in text,
            "preview: #tool-preview does not hold the response instructions (the MCP description carries them)",
        )
        try:
            tool = json.loads(text)
            described = tool.get("inputSchema", {}).get("properties", {}).get("order_id", {}).get("description")
            self.check(
                described == s["param_description"],
                f"preview: inputSchema.properties.order_id.description is {described!r}",
            )
            self.check(tool.get("name") == s["action"], f"preview: the tool's name is {tool.get('name')!r}")
            self.figures["preview"] = tool
        except ValueError:
            self.fail(f"preview: #tool-preview is not JSON: {text[:300]!r}")
        self.check(self.find("#name").get_attribute("value") == s["action"], "preview: the form lost the name")
        self.check(
            self.find("#param-order_id").get_attribute("value") == s["param_description"],
            "preview: the form lost the order_id description",
        )
        self.visit("action-new", screenshot=True)
        self.click_and_load(self.find("#save-action"))
        if self.path() != self.ws_path(f"/actions/{s['action']}"):
            raise StepFailed(f"saving the action went to {self.here()}; the page says {self.main_text()[:400]!r}")
        self.find("#debug-action")
        self.visit("action", screenshot=True)

        self.nav("Actions")
        row = self.find(f'table#actions tr[data-name="{s["action"]}"]')
        execution = row.find_elements(By.CSS_SELECTOR, "span.badge.execution")
        trigger = row.find_elements(By.CSS_SELECTOR, "span.badge.trigger")
        self.check(
            execution and execution[0].text.strip() == "during interaction",
            f'actions list: execution badge is {[e.text for e in execution]}, expected "during interaction"',
        )
        self.check(
            trigger and trigger[0].text.strip() == "inbound",
            f'actions list: trigger badge is {[e.text for e in trigger]}, expected "inbound"',
        )
        self.visit("actions", screenshot=True)

    def debugger(self):
        """6. Run the action for a split order: the trace view."""
        log("== 6. action debugger")
        s = self.s
        self.nav("Action Debugger")
        self.find("form#pick-action")
        self.select("#action", value=s["action"])
        self.visit("debugger", screenshot=True)
        self.click_and_load(self.find("#pick"))
        self.find("form#debug-form")
        self.type_into("#param-order_id", s["order"])
        self.click_and_load(self.find("#run"))
        self.find("section#trace")
        self.trace_view("debugger-run", expect_shipments=2)
        self.copy_payload()
        self.visit("debugger-run", screenshot=True)

    def trace_view(self, page, expect_shipments=None):
        """The trace view's checks (the debugger's run and a history entry)."""
        outcome = self.find("#outcome")
        self.check(
            "ok" in self.classes(outcome),
            f"{page}: #outcome class is {outcome.get_attribute('class')!r}, not ok; says {outcome.text!r}",
        )
        self.check(
            outcome.get_attribute("data-kind") == "ok",
            f"{page}: #outcome data-kind is {outcome.get_attribute('data-kind')!r}",
        )
        self.check(outcome.get_attribute("role") == "status", f"{page}: #outcome has no role=status")
        requests = self.find_all("section#waterfall ol#requests li.request")
        bars = self.find_all("section#waterfall svg rect.bar")
        self.check(len(requests) >= 1, f"{page}: #requests lists no outbound request")
        self.check(len(bars) == len(requests), f"{page}: {len(bars)} rect.bar for {len(requests)} li.request")
        # Each bar must be drawn where it can be seen: inside its SVG, not empty.
        outside = self.driver.execute_script("""
            const out = [];
            document.querySelectorAll('section#waterfall svg').forEach(svg => {
              const box = svg.getBoundingClientRect();
              svg.querySelectorAll('rect.bar').forEach((bar, i) => {
                const r = bar.getBoundingClientRect();
                if (r.width < 1 || r.height < 1 || r.left < box.left - 0.5 || r.right > box.right + 0.5 ||
                    r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
                  out.push('bar ' + (i + 1) + ' (x=' + bar.getAttribute('x') + ', width=' +
                           bar.getAttribute('width') + ', viewBox ' + svg.getAttribute('viewBox') + ')');
              });
            });
            return out;
            """)
        self.check(not outside, f"{page}: waterfall bars drawn outside the SVG, so not seen: {outside}")
        redacted = 0
        for li in requests:
            details = li.find_elements(By.CSS_SELECTOR, "details")
            if not self.check(bool(details), f"{page}: a li.request has no <details> with its headers"):
                continue
            details[0].find_element(By.CSS_SELECTOR, "summary").click()
            if "[redacted]" in details[0].text:
                redacted += 1
        self.check(
            redacted == len(requests),
            f"{page}: {redacted} of {len(requests)} requests show the key header as [redacted]",
        )
        for css in ("section#logs", "section#violations", "meter#memory", "meter#time"):
            self.check(bool(self.find_all(css)), f"{page}: no {css}")
        payloads = self.find_all("pre#payload")
        payload = None
        if payloads:
            try:
                payload = json.loads(payloads[0].text)
            except ValueError:
                raise StepFailed(f"{page}: #payload is not JSON: {payloads[0].text[:300]!r}") from None
        elif expect_shipments is not None:
            raise StepFailed(f"{page}: no pre#payload (the assistant's payload)")
        shipments = find_key(payload, "shipments")
        figures = {
            "requests": len(requests),
            "bars": len(bars),
            "redacted": redacted,
            "shipments": len(shipments) if isinstance(shipments, list) else None,
            "payload": "shown" if payloads else "absent",
            "outcome": outcome.get_attribute("data-kind"),
            "bar_widths": [b.get_attribute("width") for b in bars],
        }
        if expect_shipments is not None:
            self.check(
                figures["shipments"] == expect_shipments,
                f"{page}: the payload has {figures['shipments']} shipments, expected {expect_shipments}",
            )
        self.figures[page] = figures

    def copy_payload(self):
        """The Copy button puts the exact payload on the clipboard."""
        d = self.driver
        origin = self.base
        try:
            d.execute_cdp_cmd(
                "Browser.grantPermissions",
                {
                    "origin": origin,
                    "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
                },
            )
        except Exception as e:  # noqa: BLE001 - recorded, the check below decides
            log("could not grant clipboard permission:", e)
        self.find("#copy-payload").click()
        copied = d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            setTimeout(() => navigator.clipboard.readText().then(done, e => done('ERROR ' + e)), 300);
            """)
        expected = self.find("pre#payload").text
        self.figures["copy_payload"] = "same" if (copied or "").strip() == expected.strip() else scrub(copied)[:200]
        self.check(
            (copied or "").strip() == expected.strip(),
            f"debugger-run: #copy-payload copied {scrub(copied)[:120]!r}, not the payload",
        )

    def history(self):
        """7. History lists the run; its entry opens the same trace view."""
        log("== 7. history")
        s = self.s
        self.nav("History")
        rows = [r for r in self.find_all("table#history tr.invocation") if s["action"] in r.text]
        if not rows:
            raise StepFailed(f"history: no tr.invocation names {s['action']}; the page says {self.main_text()[:400]!r}")
        self.figures["history_rows"] = len(self.find_all("table#history tr.invocation"))
        self.find("form#history-filter")
        self.visit("history", screenshot=True)
        link = rows[0].find_elements(By.CSS_SELECTOR, "a")
        if not link:
            raise StepFailed("history: the run's row has no link to its entry")
        self.click_and_load(link[0])
        self.find("section#trace")
        # History may not keep the result itself: its payload is checked when shown.
        self.trace_view("history-entry")
        shown = self.figures["history-entry"]
        if shown["payload"] == "shown":
            self.check(
                shown["shipments"] == 2, f"history-entry: the payload has {shown['shipments']} shipments, expected 2"
            )
        self.visit("history-entry", screenshot=True)

    def security(self):
        """8. Cookies, CSP, CSRF and secrets, outside the browser."""
        log("== 8. security")
        cookies = self.cookies()
        session = cookies.get("abx_session")
        if session is None:
            self.fail("no abx_session cookie in the browser after signing in")
            return
        self.figures["session_cookie"] = {
            "httpOnly": session.get("httpOnly"),
            "sameSite": session.get("sameSite"),
            "path": session.get("path"),
            "secure": session.get("secure"),
        }
        self.check(session.get("httpOnly") is True, "abx_session is not HttpOnly")
        self.check(
            session.get("sameSite") == "Strict", f"abx_session SameSite is {session.get('sameSite')!r}, not Strict"
        )
        self.check(session.get("path") == "/console", f"abx_session Path is {session.get('path')!r}, not /console")
        self.check(self.s["admin_token"] not in session.get("value", ""), "abx_session holds the token in clear")

        cookie = self.cookie_header()
        # Every page visited, again with plain HTTP and the browser's cookies.
        csp_missing = []
        seen = set()
        for page, entry in sorted(self.pages.items()):
            path = entry["url"]
            if page.startswith("sign-in") or not entry["fetchable"] or path in seen:
                continue
            seen.add(path)
            status, headers, body = self.http("GET", path, cookie=cookie)
            self.check(status == 200, f"GET {path} with the session cookie answered {status}")
            inline = inline_code(body)
            self.check(not inline, f"GET {path}: inline code the CSP forbids: {inline}")
            csp = dict((k.lower(), v) for k, v in headers).get("content-security-policy")
            if csp is None:
                csp_missing.append(path)
            else:
                self.check(directives(csp) == directives(CSP), f"GET {path}: the CSP is {csp!r}, not the spec's")
        status, headers, body = self.http("GET", "/console/sign-in")
        inline = inline_code(body)
        self.check(not inline, f"GET /console/sign-in: inline code the CSP forbids: {inline}")
        if dict((k.lower(), v) for k, v in headers).get("content-security-policy") is None:
            csp_missing.append("/console/sign-in")
        self.check(not csp_missing, f"no Content-Security-Policy header on {csp_missing}")
        for asset in ("/console/assets/console.css", "/console/assets/console.js"):
            status, _, _ = self.http("GET", asset)
            self.check(status == 200, f"GET {asset} answered {status}")

        # CSRF: the browser's cookies but no csrf field.
        probe = {"name": "csrfprobe", "kind": "shipstation", "api_key": "x" * 20, "timeout": "10"}
        status, _, body = self.http("POST", self.ws_path("/integrations/new"), body=probe, cookie=cookie)
        self.figures["csrf_less_post"] = status
        self.check(status == 403, f"POST {self.ws_path('/integrations/new')} without csrf answered {status}, not 403")
        self.check("CSRF" in body or "expired" in body, "the CSRF refusal does not say CSRF (or expired)")
        bad = dict(probe, csrf="0" * 43)
        status, _, _ = self.http("POST", self.ws_path("/integrations/new"), body=bad, cookie=cookie)
        self.figures["wrong_csrf_post"] = status
        self.check(status == 403, f"POST …/integrations/new with a wrong csrf answered {status}, not 403")
        status, headers, _ = self.http("POST", "/console/sign-in", body={"token": self.s["admin_token"]}, cookie=cookie)
        self.figures["csrf_less_sign_in"] = status
        self.check(status == 403, f"POST /console/sign-in without csrf answered {status}, not 403")
        self.check(
            not any(
                k.lower() == "set-cookie" and v.startswith("abx_session=") and "Max-Age=0" not in v for k, v in headers
            ),
            "a CSRF-less sign-in set a session cookie",
        )
        status, _, body = self.http("GET", self.ws_path("/integrations"), cookie=cookie)
        self.check('data-name="csrfprobe"' not in body, "a CSRF-less POST created integration csrfprobe")
        # Without a session the pages are not shown.
        status, headers, _ = self.http("GET", self.ws_path("/integrations"))
        self.figures["no_session_get"] = status
        self.check(
            status in (303, 302, 401), f"GET {self.ws_path('/integrations')} without a session answered {status}"
        )

    def sign_out(self):
        log("== sign out")
        self.click_and_load(self.find("#sign-out-button"))
        self.check(self.here().startswith("/console/sign-in"), f"signing out went to {self.here()}")
        self.check("abx_session" not in self.cookies(), "abx_session is still set after signing out")
        self.go(self.ws_path("/integrations"))
        self.check(self.here().startswith("/console/sign-in"), "after signing out the integrations page is still shown")
        self.collect_console("sign-out")


# What a strict CSP refuses in served HTML: inline scripts, style elements and
# attributes, event-handler attributes and javascript: URLs. Looked for in
# the HTML as served (the live DOM may carry styles set through the CSSOM,
# which the CSP allows).
INLINE_CODE = [
    ("inline <script>", re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>", re.I)),
    ("<style> element", re.compile(r"<style\b", re.I)),
    ("style attribute", re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I)),
    ("event-handler attribute", re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)),
    ("javascript: URL", re.compile(r"=\s*[\"']?\s*javascript:", re.I)),
]


def directives(csp):
    """A CSP as {directive: set of sources}, so the order does not matter."""
    parsed = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            parsed[words[0].lower()] = set(words[1:])
    return parsed


def inline_code(html):
    """What of INLINE_CODE the served `html` holds (names, with a snippet)."""
    found = []
    for name, pattern in INLINE_CODE:
        m = pattern.search(html)
        if m:
            found.append(f"{name}: {html[m.start():m.start() + 80]!r}")
    return found


def find_key(value, key):
    """The first value under `key` anywhere in a JSON value (depth first)."""
    if isinstance(value, dict):
        if key in value:
            return value[key]
        for v in value.values():
            found = find_key(v, key)
            if found is not None:
                return found
    elif isinstance(value, list):
        for v in value:
            found = find_key(v, key)
            if found is not None:
                return found
    return None


def start_browser(chromium, chromedriver, out_dir, profile):
    """Headless Chromium through chromedriver, logging the browser console."""
    options = Options()
    options.binary_location = chromium
    for arg in CHROMIUM_ARGS + [f"--user-data-dir={profile}"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(
        executable_path=chromedriver,
        service_args=["--log-level=WARNING"],
        log_output=os.path.join(out_dir, "chromedriver.log"),
    )
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(120)
    driver.set_page_load_timeout(WAIT * 2)
    return driver


def settings_from_env():
    names = {
        "url": "CONSOLE_URL",
        "workspace": "CONSOLE_WORKSPACE",
        "admin_token": "CONSOLE_ADMIN_TOKEN",
        "wrong_key": "CONSOLE_WRONG_KEY",
        "right_key": "CONSOLE_RIGHT_KEY",
        "upstream": "CONSOLE_UPSTREAM",
        "action": "CONSOLE_ACTION",
        "param_description": "CONSOLE_PARAM_DESCRIPTION",
        "response_instructions": "CONSOLE_RESPONSE_INSTRUCTIONS",
        "order": "CONSOLE_ORDER",
        "out": "CONSOLE_OUT",
        "axe": "CONSOLE_AXE",
        "chromium": "CONSOLE_CHROMIUM",
        "chromedriver": "CONSOLE_CHROMEDRIVER",
    }
    missing = [v for v in names.values() if not os.environ.get(v)]
    if missing:
        sys.exit(f"journey.py: set {', '.join(missing)} (see the module docstring)")
    return {k: os.environ[v] for k, v in names.items()}


def journey():
    s = settings_from_env()
    SECRETS.extend([s["admin_token"], s["wrong_key"], s["right_key"]])
    os.makedirs(s["out"], exist_ok=True)
    profile = tempfile.mkdtemp(prefix="actionbox-console-chromium-")
    driver = start_browser(s["chromium"], s["chromedriver"], s["out"], profile)
    j = Journey(s, driver, s["out"])
    aborted = None
    try:
        j.run()
    except StepFailed as e:
        aborted = scrub(e)
    except Exception as e:  # noqa: BLE001 - reported with where it happened
        # chromedriver's own stack trace (addresses) says nothing: keep its message.
        detail = e.msg if isinstance(e, WebDriverException) else str(e)
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
        where = "; ".join(f"line {f.lineno} in {f.name}" for f in frames[-3:])
        aborted = scrub(f"{type(e).__name__} on {j.here()} ({where}): {detail}")
    finally:
        if aborted:
            log("ABORTED:", aborted)
            j.failures.append(f"journey stopped: {aborted}")
            try:
                j.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
                path = os.path.join(s["out"], "failure.png")
                j.driver.save_screenshot(path)
                log("the page at the failure:", path)
            except Exception:  # noqa: BLE001 - best effort
                pass
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    summary = {
        "pages": j.pages,
        "violations": j.violations,
        "serious_violations": sum(1 for v in j.violations if v["impact"] in ("serious", "critical")),
        "figures": j.figures,
        "console_errors": j.console_errors,
        "document_statuses": j.document_statuses,
        "fetched": j.fetched,
        "sources_checked": j.sources_checked,
        "aborted": aborted,
        "failures": j.failures,
    }
    print(scrub(json.dumps(summary)))
    return 0 if not j.failures else 1


# A page every check must fault: an image without alt text, a field without
# a label (both critical), low-contrast text (serious), an inline style, no
# viewport meta, and a script that throws (a console error).
SELFCHECK_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>axe self-check</title>
<script src="/throws.js"></script></head>
<body><main><h1>Self-check</h1>
<img src="/missing.png">
<input type="text" id="unlabelled">
<p style="color:#ccc;background:#fff">faint text</p>
</main></body></html>"""


def selfcheck():
    """axe-core, injected as in the journey, finds known violations on a
    static page served on loopback; a screenshot is taken at both widths."""
    out = os.environ.get("CONSOLE_OUT") or tempfile.mkdtemp()
    os.makedirs(out, exist_ok=True)

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            if self.path == "/":
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(SELFCHECK_PAGE)
            elif self.path == "/throws.js":
                self.send_response(200)
                self.send_header("Content-Type", "text/javascript")
                self.end_headers()
                self.wfile.write(b"throw new Error('selfcheck: a console error');")
            else:
                self.send_response(204)
                self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    s = {
        "url": url,
        "workspace": "-",
        "admin_token": "",
        "wrong_key": "",
        "right_key": "",
        "axe": os.environ["CONSOLE_AXE"],
    }
    profile = tempfile.mkdtemp(prefix="actionbox-console-chromium-")
    driver = start_browser(os.environ["CONSOLE_CHROMIUM"], os.environ["CONSOLE_CHROMEDRIVER"], out, profile)
    j = Journey(s, driver, out)
    j.secret_names = lambda: []
    try:
        j.go("/")
        j.visit("selfcheck", screenshot=True)
        _, _, served = j.http("GET", "/")
        for found in inline_code(served):
            j.fail(f"selfcheck: inline code the CSP forbids: {found}")
        version = driver.execute_script("return axe.version")
        user_agent = driver.execute_script("return navigator.userAgent")
    finally:
        driver.quit()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    print(
        json.dumps(
            {
                "axe": version,
                "browser": user_agent,
                "violations": j.violations,
                "console_errors": j.console_errors,
                "screenshots": j.pages["selfcheck"]["screenshots"],
                "failures": j.failures,
            }
        )
    )
    return 0


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "journey":
        sys.exit(journey())
    if mode == "selfcheck":
        sys.exit(selfcheck())
    sys.exit(__doc__)
