// sessiongate driven by the TypeScript SDK's 2.x client package, `@modelcontextprotocol/client`
// (the successor of `@modelcontextprotocol/sdk`'s client, from the same repository).
//
// It speaks 2026-07-28: `versionNegotiation: { mode: 'auto' }` probes server/discover and falls
// back to initialize; `{ mode: { pin: '2026-07-28' } }` requires the modern revision. Its default
// ('legacy') is the plain initialize handshake, whose offered revision is the first handshake-era
// entry of `supportedProtocolVersions` (so an older revision can be selected).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

import { checkSessionfulWire, checkStatelessWire, checkTerminated, exercise } from '../lib/checks.mjs';
import { serverForTests, Wire } from '../lib/helpers.mjs';

const MODERN = '2026-07-28';

const fixture = serverForTests();
const { guarded } = fixture;

for (const [label, version, options] of [
  ['default handshake', '2025-11-25', {}],
  ['offering 2025-06-18', '2025-06-18', { supportedProtocolVersions: ['2025-06-18'] }],
]) {
  test(`sessionful ${version} (${label}): initialize, tools/list, echo, session_info, terminateSession`, () =>
    guarded(async () => {
      const wire = new Wire();
      const clientInfo = { name: `sessiongate-node-client2-${version}`, version: '2.4.0-test' };
      const transport = new StreamableHTTPClientTransport(new URL(fixture.server.mcpUrl), { fetch: wire.fetch });
      const client = new Client(clientInfo, options);
      try {
        await client.connect(transport);
        assert.equal(client.getProtocolEra(), 'legacy');
        assert.equal(client.getNegotiatedProtocolVersion(), version);
        const sessionId = transport.sessionId;
        assert.ok(sessionId, 'server minted a session id');

        await exercise(client, {
          session_id: sessionId,
          client_name: clientInfo.name,
          client_version: clientInfo.version,
          protocol_version: version,
          status: 'active',
        });

        await transport.terminateSession(); // DELETE /mcp with Mcp-Session-Id
        assert.equal(transport.sessionId, undefined);
        await client.close();

        checkSessionfulWire(wire, version, sessionId);
        await checkTerminated(fixture.server, wire, sessionId);
      } finally {
        await client.close().catch(() => {});
      }
    }));
}

for (const [label, mode] of [
  ['auto negotiation', 'auto'],
  ['pinned', { pin: MODERN }],
]) {
  test(`stateless 2026-07-28 (${label}): tools/list, echo, session_info`, () =>
    guarded(async () => {
      const wire = new Wire();
      const clientInfo = { name: `sessiongate-node-client2-stateless-${mode === 'auto' ? 'auto' : 'pin'}`, version: '2.4.0-test' };
      const transport = new StreamableHTTPClientTransport(new URL(fixture.server.mcpUrl), { fetch: wire.fetch });
      const client = new Client(clientInfo, { versionNegotiation: { mode } });
      try {
        await client.connect(transport);
        assert.equal(client.getProtocolEra(), 'modern');
        assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
        assert.ok(client.getDiscoverResult()?.supportedVersions.includes(MODERN));
        assert.equal(transport.sessionId, undefined);

        const record = await exercise(client, {
          stateless: true,
          client_name: clientInfo.name,
          client_version: clientInfo.version,
          protocol_version: MODERN,
        });
        assert.equal(record.session_id, undefined, JSON.stringify(record));
        await client.close();

        assert.equal(wire.byRpc('server/discover').length, 1, wire.describe());
        checkStatelessWire(wire, MODERN, clientInfo.name);
      } finally {
        await client.close().catch(() => {});
      }
    }));
}
