// Headless Chromium (Debian's /usr/bin/chromium) through playwright-core, and
// a real MCP client (the TypeScript SDK) for the pages to watch.

import fs from 'node:fs';
import path from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { chromium } from 'playwright-core';

import { REPO } from './server.mjs';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const ARTIFACTS = path.join(REPO, 'target', 'browser');

export const DESKTOP = { viewport: { width: 1280, height: 900 } };
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

export async function launch() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_BIN)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
}

/**
 * A new context and page. Records page errors and CSP violations in
 * page.problems (a test asserts it stays empty).
 */
export async function openPage(browser, options = {}) {
  const context = await browser.newContext({ ...DESKTOP, ...options });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (/Content Security Policy|Refused to/i.test(text)) page.problems.push(`csp: ${text}`);
    else if (m.type() === 'error' && !/Failed to load resource|WebSocket connection/i.test(text)) page.problems.push(`console: ${text}`);
  });
  return { context, page };
}

export const byTest = (page, id) => page.locator(`[data-testid="${id}"]`);
export const row = (page, sessionId) => page.locator(`[data-testid="session-row"][data-session-id="${sessionId}"]`);

/** Signs in through the form and waits for the dashboard. */
export async function signIn(page, server) {
  await page.goto(server.baseUrl + '/');
  await byTest(page, 'signin-token').fill(server.adminToken);
  await byTest(page, 'signin-submit').click();
  await byTest(page, 'dashboard').waitFor({ state: 'visible' });
}

export async function waitMode(page, mode, timeout = 10_000) {
  await page.waitForFunction((m) => document.querySelector('[data-testid="mode"]')?.textContent === m, mode, { timeout });
}

/** A connected MCP client (SDK Client + StreamableHTTPClientTransport). */
export async function mcpClient(server, name = 'browser-test-client', version = '1.0.0') {
  const transport = new StreamableHTTPClientTransport(new URL(server.mcpUrl));
  const client = new Client({ name, version });
  await client.connect(transport);
  return {
    client,
    transport,
    sessionId: transport.sessionId,
    async close() {
      await client.close().catch(() => {});
    },
  };
}

export function artifact(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}
