// sessiongate driven by the official TypeScript SDK package `@modelcontextprotocol/sdk` (1.x).
//
// 1.32.2, the newest release of this package, speaks the handshake revisions only
// (LATEST_PROTOCOL_VERSION = 2025-11-25; no server/discover, no per-request _meta), and its
// Client always offers LATEST_PROTOCOL_VERSION in initialize. So this file covers the sessionful
// path at 2025-11-25; 2026-07-28 and an older offered revision are exercised with the SDK's 2.x
// client package (`@modelcontextprotocol/client`) in client-v2.test.mjs.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';

import { checkSessionfulWire, checkTerminated, exercise } from '../lib/checks.mjs';
import { serverForTests, Wire } from '../lib/helpers.mjs';

const fixture = serverForTests();
const { guarded } = fixture;

test('@modelcontextprotocol/sdk does not speak 2026-07-28 (so no stateless test for it)', () => {
  assert.equal(LATEST_PROTOCOL_VERSION, '2025-11-25');
  assert.ok(!SUPPORTED_PROTOCOL_VERSIONS.includes('2026-07-28'));
});

test('sessionful 2025-11-25: initialize, tools/list, echo, session_info, terminateSession', () =>
  guarded(async () => {
    const wire = new Wire();
    const clientInfo = { name: 'sessiongate-node-sdk', version: '1.32.2-test' };
    const transport = new StreamableHTTPClientTransport(new URL(fixture.server.mcpUrl), { fetch: wire.fetch });
    const client = new Client(clientInfo);
    try {
      await client.connect(transport);
      const sessionId = transport.sessionId;
      assert.match(sessionId ?? '', /^[\x21-\x7e]+$/, 'server minted a visible-ASCII session id');
      assert.equal(transport.protocolVersion, '2025-11-25', 'negotiated version');
      assert.ok(client.getServerVersion()?.name);

      const record = await exercise(client, {
        session_id: sessionId,
        client_name: clientInfo.name,
        client_version: clientInfo.version,
        protocol_version: '2025-11-25',
        status: 'active',
      });
      assert.ok(record.request_count >= 3, JSON.stringify(record));

      await transport.terminateSession(); // DELETE /mcp with Mcp-Session-Id
      assert.equal(transport.sessionId, undefined);
      await client.close();

      checkSessionfulWire(wire, '2025-11-25', sessionId);
      await checkTerminated(fixture.server, wire, sessionId);
    } finally {
      await client.close().catch(() => {});
    }
  }));

test('two SDK clients get separate sessions', () =>
  guarded(async () => {
    const pairs = ['a', 'b'].map((n) => {
      const wire = new Wire();
      return {
        name: `sessiongate-node-sdk-${n}`,
        wire,
        transport: new StreamableHTTPClientTransport(new URL(fixture.server.mcpUrl), { fetch: wire.fetch }),
      };
    });
    for (const p of pairs) {
      p.client = new Client({ name: p.name, version: '1' });
      await p.client.connect(p.transport);
      p.sessionId = p.transport.sessionId;
    }
    assert.notEqual(pairs[0].sessionId, pairs[1].sessionId);
    for (const p of pairs) {
      const info = await p.client.callTool({ name: 'session_info', arguments: {} });
      assert.equal(info.structuredContent.session_id, p.sessionId);
      assert.equal(info.structuredContent.client_name, p.name);
    }
    for (const p of pairs) {
      await p.transport.terminateSession();
      await p.client.close();
      await checkTerminated(fixture.server, p.wire, p.sessionId);
    }
  }));
