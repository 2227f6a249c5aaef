"""The console's page and its static assets (contract §4), served as they are on disk: plain HTML, CSS
and ES modules, no build step, nothing from another origin.

Every answer carries a Content-Security-Policy that allows no inline script or style and no other
origin, so a value from Intercom or Referral Factory that slipped into the page as markup could still
not run. Assets are read once per cold start; each answer has a strong ETag and `no-cache`, so a
browser revalidates (a 304 without a body) and never runs a stale module after a deploy — the file
names carry no content hash, there being no build step to add one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from shared.api.resolver import router as new_router
from shared.domain.errors import NotFound

# What the console may load and talk to: itself only.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The console's URLs never carry the key, but the pages it links to need not learn them either.
    "Referrer-Policy": "no-referrer",
}
CACHE_CONTROL = "no-cache"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Pages by the path segment after /console/ (the console itself is /console).
PAGES = {"": "index.html", "connected": "connected.html"}


@dataclass(frozen=True)
class Asset:
    body: str
    content_type: str
    etag: str


def load_assets(directory: Path) -> dict[str, Asset]:
    """Every servable file of `directory` (not its subfolders) by name, with its type and ETag."""
    assets: dict[str, Asset] = {}
    for path in sorted(directory.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        data = path.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        assets[path.name] = Asset(data.decode("utf-8"), content_type, etag)
    return assets


def _answer(asset: Asset, if_none_match: str | None, *, head: bool = False) -> Response[Any]:
    headers = {**SECURITY_HEADERS, "Cache-Control": CACHE_CONTROL, "ETag": asset.etag}
    if if_none_match and asset.etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers, body="")
    body = "" if head else asset.body
    return Response(status_code=200, content_type=asset.content_type, headers=headers, body=body)


def _page_answers(media: str) -> dict[int, Any]:
    return {
        200: {"description": "The file.", "content": {media: {"schema": {"type": "string"}}}},
        301: {
            "description": "`/console/` goes to `/console`.",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        304: {"description": "Not modified (`If-None-Match` names the file's ETag)."},
    }


def router_for(directory: Path | None) -> APIGatewayRouter:
    """The console's routes, serving the files of `directory` (none: the routes alone, as the OpenAPI
    document describes them)."""
    assets = load_assets(directory) if directory else {}
    router = new_router()

    def serve(name: str) -> Response[Any]:
        asset = assets.get(name)
        if asset is None:
            raise NotFound(f"The console has no file {name}.", code="not_found")
        event = router.current_event
        return _answer(asset, event.headers.get("if-none-match"), head=event.http_method == "HEAD")

    @router.route("/console", method=["GET", "HEAD"], responses=_page_answers("text/html"))
    def console() -> Response[Any]:
        path = router.current_event.path
        if path.endswith("/"):
            # `/console/`: the page's relative links would resolve one level too deep.
            return Response(status_code=301, headers={"Location": "../console"}, body="")
        return serve(PAGES[""])

    @router.route("/console/<asset>", method=["GET", "HEAD"], responses=_page_answers("*/*"))
    def console_asset(asset: str) -> Response[Any]:
        return serve(PAGES.get(asset, asset))

    return router
