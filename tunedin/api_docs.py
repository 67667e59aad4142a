"""The API docs pages, Swagger UI (/api/docs/) and ReDoc (/api/redoc/), served offline from
drf-spectacular-sidecar's static files (SPECTACULAR_SETTINGS).

Scripts stay on the site's CSP ('self' only): Swagger UI's init script is fetched from its own URL
(`?script`) rather than inlined. Both UIs style elements inline, and ReDoc runs its search in a
worker made from a blob:, so these two pages allow inline styles and blob: workers.
"""

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_replace
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

DOCS_PAGE_CSP = {"style-src": [SELF, UNSAFE_INLINE], "worker-src": [SELF, "blob:"]}

swagger_ui = csp_replace(DOCS_PAGE_CSP)(SpectacularSwaggerSplitView.as_view(url_name="schema"))
redoc = csp_replace(DOCS_PAGE_CSP)(SpectacularRedocView.as_view(url_name="schema"))
