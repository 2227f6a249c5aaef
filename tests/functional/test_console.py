"""The console function (contract §4): its page and assets through the real handler, with the headers
a browser needs to run it safely, and the assets themselves: small, no inline script or style, no
markup built from strings, nothing from another origin."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.factories import api_event, body_of

if TYPE_CHECKING:
    from collections.abc import Callable

STATIC = Path(__file__).resolve().parents[2] / "functions" / "console" / "static"
MAX_ASSET_BYTES = 200 * 1024
FUNCTION = "ConsoleFunction"


@pytest.fixture
def get(call: Callable[[str, dict[str, Any]], Any]) -> Callable[..., dict[str, Any]]:
    def request(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> dict[str, Any]:
        resource = "/console" if path.rstrip("/") == "/console" else "/console/{asset}"
        params = None if resource == "/console" else {"asset": path.removeprefix("/console/")}
        event = api_event(method, path, headers=headers, resource=resource, path_parameters=params)
        response: dict[str, Any] = call(FUNCTION, event)
        # A REST proxy answer carries its headers as lists; one value each here.
        multi = response.get("multiValueHeaders") or {}
        response["headers"] = {**(response.get("headers") or {}), **{k: v[-1] for k, v in multi.items()}}
        return response

    return request


def _csp(response: dict[str, Any]) -> dict[str, str]:
    policy = response["headers"]["Content-Security-Policy"]
    return {d.split()[0]: " ".join(d.split()[1:]) for d in (p.strip() for p in policy.split(";")) if d}


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/console", "text/html; charset=utf-8"),
        ("/console/connected", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/icon.svg", "image/svg+xml"),
    ],
)
def test_pages_and_assets_are_served_with_their_type_and_a_strict_policy(get, path, content_type):
    response = get(path)
    assert response["statusCode"] == 200
    headers = response["headers"]
    assert headers["Content-Type"] == content_type
    csp = _csp(response)
    for directive in ("default-src", "script-src", "style-src", "connect-src"):
        assert csp[directive] == "'self'", (directive, csp)
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "unsafe-eval" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{32}"', headers["ETag"])


def test_the_page_loads_its_module_and_stylesheet_relative_to_itself(get):
    page = get("/console")["body"]
    assert '<script type="module" src="console/app.js"></script>' in page
    assert 'href="console/console.css"' in page
    # The return page of the OAuth pop-up sits one level down and loads its own module.
    assert '<script type="module" src="connected.js"></script>' in get("/console/connected")["body"]


def test_a_known_etag_is_answered_304_without_a_body(get):
    first = get("/console/app.js")
    etag = first["headers"]["ETag"]
    again = get("/console/app.js", headers={"If-None-Match": f'"other", {etag}'})
    assert again["statusCode"] == 304
    assert again["body"] == ""
    assert again["headers"]["ETag"] == etag
    assert "Content-Security-Policy" in again["headers"]
    changed = get("/console/app.js", headers={"If-None-Match": '"stale"'})
    assert changed["statusCode"] == 200
    assert changed["body"] == first["body"]


def test_the_console_with_a_trailing_slash_redirects_to_the_page(get):
    response = get("/console/")
    assert response["statusCode"] == 301
    assert response["headers"]["Location"] == "../console"


@pytest.mark.parametrize("name", ["app.py", "__init__.py", "missing.js", "static"])
def test_anything_but_an_asset_is_404_in_the_envelope(get, name):
    response = get(f"/console/{name}")
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "not_found"


def test_a_method_other_than_get_is_405(get):
    response = get("/console", method="POST")
    assert response["statusCode"] == 405
    assert body_of(response)["error"]["code"] == "method_not_allowed"
    assert response["headers"]["Allow"] == "GET, HEAD"


def test_head_answers_the_headers_without_the_body(get):
    response = get("/console/app.js", method="HEAD")
    assert response["statusCode"] == 200
    assert response["body"] == ""
    assert response["headers"]["ETag"] == get("/console/app.js")["headers"]["ETag"]


# -- the assets themselves ------------------------------------------------------------------------
ASSETS = sorted(p for p in STATIC.iterdir() if p.is_file())


def test_every_asset_is_servable_and_all_of_them_stay_under_200_kb():
    from shared.api.routes.console import CONTENT_TYPES

    assert {p.suffix for p in ASSETS} <= set(CONTENT_TYPES), "a file the console cannot serve"
    total = sum(p.stat().st_size for p in ASSETS)
    assert total < MAX_ASSET_BYTES, f"the console's assets weigh {total} bytes"


@pytest.mark.parametrize("path", [p for p in ASSETS if p.suffix == ".html"], ids=lambda p: p.name)
def test_html_has_no_inline_script_style_or_handlers(path):
    text = path.read_text()
    for script in re.findall(r"<script\b[^>]*>(.*?)</script>", text, re.S):
        assert script.strip() == "", f"inline script in {path.name}"
    assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", text))
    assert "<style" not in text
    assert not re.search(r"\sstyle\s*=", text)
    assert not re.search(r"\son[a-z]+\s*=", text), f"inline event handler in {path.name}"


JS = [p for p in ASSETS if p.suffix == ".js"]


@pytest.mark.parametrize("path", JS, ids=lambda p: p.name)
def test_scripts_never_parse_strings_as_markup_or_code(path):
    text = path.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in text, f"{path.name} uses {sink}"
    assert not re.search(r"\.style\s*=|setAttribute\(\s*[\"']style", text), f"{path.name} sets inline styles"


def test_every_module_import_is_a_local_file_of_the_console():
    imported: set[str] = set()
    for path in JS:
        for target in re.findall(r"""^import\s[^;]*?from\s+["']([^"']+)["']""", path.read_text(), re.M):
            assert target.startswith("./"), f"{path.name} imports {target} (not the console's own)"
            imported.add(target.removeprefix("./"))
    names = {p.name for p in JS}
    assert imported <= names, imported - names
    # Everything but the two entry points is imported by something: no dead module ships.
    assert names - imported == {"app.js", "connected.js"}
