"""Approval routes: list and show pending calls, decide one (bound to its argument hash), follow a one-time link."""

from __future__ import annotations

import html
from typing import Any

import structlog
from aiohttp import web

from proxy.approval.book import Decided, Outcome
from proxy.approval.signing import LinkRefused
from proxy.errors import ApprovalUnavailableError
from proxy.runtime.admin.guard import IDENTITY
from proxy.runtime.admin.probes import ADMIN_DEPS

log = structlog.get_logger("proxy.admin")
MAX_NOTE = 500


def _unavailable(error: ApprovalUnavailableError) -> web.Response:
    return web.json_response({"error": error.message}, status=503)


async def list_approvals(request: web.Request) -> web.Response:
    try:
        pending = await request.app[ADMIN_DEPS].approvals.pending()
    except ApprovalUnavailableError as error:
        return _unavailable(error)
    return web.json_response({"pending": pending})


async def show_approval(request: web.Request) -> web.Response:
    try:
        approval = await request.app[ADMIN_DEPS].approvals.get(request.match_info["id"])
    except ApprovalUnavailableError as error:
        return _unavailable(error)
    if approval is None:
        return web.json_response({"error": "no such pending approval"}, status=404)
    return web.json_response(approval)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return body


async def decide_approval(request: web.Request) -> web.Response:
    """POST /approvals/{id}/approve|deny with {"arguments_hash": ..., "note": ...}: the hash of the arguments the
    approver was shown is required, so the decision cannot release a call with other arguments."""
    approved = request.match_info["verdict"] == "approve"
    body = await _body(request)
    digest = body.get("arguments_hash")
    if not isinstance(digest, str) or not digest:
        return web.json_response({"error": "arguments_hash is required: the hash of the arguments you were shown "
                                           "(GET /approvals/{id})"}, status=400)
    who = request[IDENTITY].name
    outcome = Outcome(approved, str(body.get("note", ""))[:MAX_NOTE], who)
    return await _decide(request, request.match_info["id"], digest, outcome)


async def _decide(request: web.Request, approval_id: str, digest: str, outcome: Outcome) -> web.Response:
    try:
        decided = await request.app[ADMIN_DEPS].approvals.decide(approval_id, digest, outcome)
    except ApprovalUnavailableError as error:
        return _unavailable(error)
    log.info("admin.approval_decided", approval_id=approval_id, approved=outcome.approved, who=outcome.approver,
             result=decided.value)
    if decided is Decided.UNKNOWN:
        return web.json_response({"error": "no such pending approval"}, status=404)
    if decided is Decided.MISMATCH:
        return web.json_response({"error": "the arguments_hash does not match this call's arguments"}, status=409)
    return web.json_response({"id": approval_id, "approved": outcome.approved, "approver": outcome.approver})


LINK_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:36em;margin:2em auto;padding:0 1em}}
pre{{background:#f4f4f4;padding:.5em;overflow:auto}}button{{font-size:1.1em;padding:.5em 1.5em}}</style></head>
<body><h1>{title}</h1>{content}</body></html>"""


def _page(title: str, content: str, status: int = 200) -> web.Response:
    body = LINK_PAGE.format(title=html.escape(title), content=content)
    return web.Response(text=body, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


async def _claim(request: web.Request) -> Any:
    notifier = request.app[ADMIN_DEPS].notifier
    if notifier is None or notifier.links is None:
        raise web.HTTPNotFound()
    try:
        return notifier.links.read(request.match_info["token"])
    except LinkRefused as refused:
        raise web.HTTPUnauthorized(text=str(refused)) from None


async def link_page(request: web.Request) -> web.Response:
    """GET shows the call and a button; only the POST decides (chat apps fetch links to preview them)."""
    claim = await _claim(request)
    try:
        approval = await request.app[ADMIN_DEPS].approvals.get(claim.approval_id)
    except ApprovalUnavailableError as error:
        return _unavailable(error)
    if approval is None or approval.get("arguments_hash") != claim.arguments_hash:
        return _page("No longer waiting", "<p>This call was decided already, or its wait is over.</p>", 410)
    verdict = "Approve" if claim.approve else "Deny"
    details = html.escape(str({key: approval.get(key) for key in ("principal", "target", "arguments", "reasons")}))
    form = (f"<p>{html.escape(str(approval.get('principal')))} wants to call "
            f"<b>{html.escape(str(approval.get('target')))}</b>.</p><pre>{details}</pre>"
            f'<form method="post"><button type="submit">{verdict}</button></form>')
    return _page(f"{verdict} this call?", form)


async def link_decide(request: web.Request) -> web.Response:
    claim = await _claim(request)
    response = await _decide(request, claim.approval_id, claim.arguments_hash,
                             Outcome(claim.approve, "decided from a one-time link", "link"))
    if response.status == 200:
        return _page("Approved" if claim.approve else "Denied", "<p>The decision is recorded.</p>")
    if response.status in (404, 409):
        return _page("No longer waiting", "<p>This call was decided already, or its wait is over.</p>", 410)
    return response
