"""The API docs in a real browser with no network beyond the site: Swagger UI and ReDoc come from
drf-spectacular-sidecar and list the operations, and neither they nor the site's pages trip
their Content Security Policy."""

import pytest
from playwright.sync_api import expect

from catalog.tests.factories import TrackFactory
from web.tests.test_browser import CHROMIUM, browser  # noqa: F401 (the fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (make test installs it)"
    ),
]

# Recorded from the first script on: the page's CSP does not apply to Playwright's init scripts.
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.effectiveDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture
def offline_page(browser, live_server):  # noqa: F811 (the imported fixture)
    """A page that reaches the live server only, and records what its CSP blocks."""
    page = browser.new_page()
    outside = []

    def only_the_site(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_site)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    yield page
    assert outside == [], "the page reached beyond the site"
    page.close()


def _csp_violations(page) -> list[str]:
    return page.evaluate("window.cspViolations")


def test_swagger_ui_lists_the_operations_offline(offline_page, live_server, transactional_db):
    offline_page.goto(f"{live_server.url}/api/docs/")

    for path in ("/api/rec/users/{user_id}", "/api/feedback", "/api/auth/token/revoke"):
        operation = offline_page.locator(f'.opblock-summary-path[data-path="{path}"]').first
        expect(operation).to_be_visible(timeout=15_000)
    expect(offline_page.get_by_text("TunedIn API", exact=False).first).to_be_visible()
    assert _csp_violations(offline_page) == []


def test_redoc_lists_the_operations_offline(offline_page, live_server, transactional_db):
    offline_page.goto(f"{live_server.url}/api/redoc/")

    expect(offline_page.get_by_text("/api/feedback").first).to_be_attached(timeout=15_000)
    expect(offline_page.get_by_role("heading", name="TunedIn API").first).to_be_visible()
    # ReDoc's template links Google Fonts and its bundle shows Redocly's logo from their CDN:
    # the policy keeps both out. Nothing of the site's own is blocked.
    blocked = [violation.split()[1] for violation in _csp_violations(offline_page)]
    assert all(uri.startswith("https://") for uri in blocked), blocked


def test_the_site_runs_under_its_csp(offline_page, live_server, transactional_db):
    """htmx (a static file) loads and its inline indicator style is allowed by hash."""
    TrackFactory(title="Alpha")
    offline_page.goto(f"{live_server.url}/")

    assert offline_page.evaluate("typeof window.htmx") == "object"
    offline_page.goto(f"{live_server.url}/search/?q=Alpha")
    expect(offline_page.get_by_text("Alpha").first).to_be_visible()
    assert _csp_violations(offline_page) == []
