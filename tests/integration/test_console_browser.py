"""The console in a real browser: Debian's headless Chromium driven by Playwright's Python API. Log in, see a held
call with its redacted arguments, approve it, watch the client's call complete, filter recent calls. Screenshots go
to the test's tmp_path (printed on failure)."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from mcp import Client

from tests.integration.test_admin_auth import TOKENS, tokens_file
from tests.integration.test_approval_operator import held  # noqa: F401 (the fixture)
from tests.kit import make_config, run_sidecar

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
WAIT_MS = 10_000

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")


async def test_log_in_approve_a_held_call_and_filter_recent_calls(stateless_upstream, tmp_path,
                                                                  held) -> None:  # noqa: F811
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots in {shots}")
    config = make_config(stateless_upstream, admin__auth={"tokens_file": tokens_file(tmp_path)},
                         audit__enabled=True, audit__sink="file", audit__path=str(tmp_path / "audit.jsonl"))
    async with run_sidecar(config) as sidecar, Client(sidecar.url, cache=None) as client, \
            playwright_api.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(WAIT_MS)
        response = await page.goto(sidecar.admin_url + "/console")
        assert response is not None and response.status == 401  # the page holds no data without a credential
        await page.fill("#token", "not-the-token-at-all")
        await page.click("#login button")
        await page.get_by_role("alert").filter(has_text="refused").wait_for()
        await page.fill("#token", TOKENS["approver"])
        await page.click("#login button")
        await page.get_by_test_id("who").filter(has_text="approver-bot (approver)").wait_for()
        await page.get_by_test_id("checks").filter(has_text="upstream ok").wait_for()

        assert (await client.call_tool("add", {"a": 2, "b": 3})).structured_content == {"result": 5}
        call = asyncio.create_task(client.call_tool("delete_file", {"path": "/srv/data/secret-plans"}))
        card = page.get_by_test_id("approval")
        await card.wait_for()
        arguments = await card.get_by_test_id("arguments").inner_text()
        assert "[redacted]" in arguments and "secret-plans" not in arguments
        assert "delete_file" in await card.inner_text() and "destructive tools need a human" in await card.inner_text()
        await page.screenshot(path=str(shots / "1-held-call.png"), full_page=True)
        assert not call.done()

        await card.get_by_role("button", name="Approve").click()
        result = await asyncio.wait_for(call, WAIT_MS / 1000)
        assert result.is_error is False and result.content[0].text == "deleted /srv/data/secret-plans"
        await page.get_by_test_id("approvals").filter(has_text="None waiting.").wait_for()

        rows = page.get_by_test_id("call")
        await rows.filter(has_text="delete_file").filter(has_text="approver-bot").first.wait_for()
        await page.get_by_test_id("filter-tool").fill("add")
        await page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=call]')].every(r => r.innerText.includes('add'))"
            " && document.querySelectorAll('[data-testid=call]').length > 0")
        await page.get_by_test_id("filter-tool").fill("")
        await page.get_by_test_id("filter-outcome").select_option("denied")
        await page.wait_for_function("() => document.querySelectorAll('[data-testid=call]').length === 0")
        await page.get_by_test_id("filter-outcome").select_option("")
        await page.get_by_test_id("filter-principal").fill("anonymous")
        await rows.filter(has_text="delete_file").first.wait_for()
        await page.get_by_test_id("tools").get_by_text("delete_file").wait_for()
        await page.screenshot(path=str(shots / "2-recent-calls.png"), full_page=True)
        phone = await browser.new_page(viewport={"width": 390, "height": 844})
        await phone.goto(sidecar.admin_url + "/console")
        await phone.screenshot(path=str(shots / "3-phone-login.png"))
        await browser.close()
    assert sorted(path.name for path in shots.iterdir()) == ["1-held-call.png", "2-recent-calls.png",
                                                             "3-phone-login.png"]
