// Assertions shared by the SDK test files.

import assert from 'node:assert/strict';

import { BUILTIN_TOOLS } from './helpers.mjs';

function textOf(result) {
  assert.ok(!result.isError, `tool error: ${JSON.stringify(result)}`);
  assert.equal(result.content?.[0]?.type, 'text', JSON.stringify(result));
  return result.content[0].text;
}

/**
 * tools/list, echo and session_info through an SDK `client`; returns session_info's record.
 * `expect` holds the fields the record must have (client_name, protocol_version, ...).
 */
export async function exercise(client, expect) {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  for (const name of BUILTIN_TOOLS) assert.ok(names.includes(name), `tools/list lacks ${name}: ${names}`);

  const text = 'hello from the TypeScript SDK: ünïcødé ✓';
  const echoed = await client.callTool({ name: 'echo', arguments: { text } });
  assert.equal(textOf(echoed), text);

  const info = await client.callTool({ name: 'session_info', arguments: {} });
  const record = info.structuredContent;
  assert.equal(typeof record, 'object', JSON.stringify(info));
  assert.deepEqual(JSON.parse(textOf(info)), record, 'text content must be the same record as structuredContent');
  for (const [key, value] of Object.entries(expect)) {
    assert.deepEqual(record[key], value, `session_info.${key} in ${JSON.stringify(record)}`);
  }
  return record;
}

/** Sessionful wire: initialize minted the id; every later exchange carried it and the negotiated version. */
export function checkSessionfulWire(wire, version, sessionId) {
  const inits = wire.byRpc('initialize');
  assert.equal(inits.length, 1, wire.describe());
  const [init] = inits;
  assert.equal(init.status, 200);
  assert.equal(init.body.params.protocolVersion, version, 'version offered in initialize');
  assert.equal(init.responseHeaders['mcp-session-id'], sessionId);
  assert.deepEqual(wire.mintedSessionIds(), [sessionId], 'only initialize mints a session id');

  const after = wire.exchanges.filter((e) => e !== init);
  assert.ok(after.length > 0);
  for (const e of after) {
    assert.equal(e.requestHeaders['mcp-session-id'], sessionId, `${e.method} ${e.rpcMethod} lacks the session id`);
    assert.equal(e.requestHeaders['mcp-protocol-version'], version, `${e.method} ${e.rpcMethod} version header`);
  }
  for (const m of ['notifications/initialized', 'tools/list', 'tools/call']) {
    assert.ok(wire.byRpc(m).length > 0, `SDK sent no ${m}`);
  }
  assert.equal(wire.byRpc('notifications/initialized')[0].status, 202);
  for (const e of wire.rpcRequests()) assert.equal(e.status, 200, `${e.rpcMethod} -> ${e.status}`);
}

/** The SDK's DELETE went out with the session id, and the admin API shows a client disconnect. */
export async function checkTerminated(server, wire, sessionId) {
  const deletes = wire.exchanges.filter((e) => e.method === 'DELETE');
  assert.equal(deletes.length, 1, wire.describe());
  assert.equal(deletes[0].requestHeaders['mcp-session-id'], sessionId);
  assert.ok(deletes[0].status >= 200 && deletes[0].status < 300, `DELETE -> ${deletes[0].status}`);
  const record = await server.waitDisconnected(sessionId);
  assert.equal(record.status, 'disconnected', JSON.stringify(record));
  assert.equal(record.disconnect_reason, 'client_disconnect', JSON.stringify(record));
  assert.ok(record.disconnected_at, JSON.stringify(record));
}

/** Stateless wire: no initialize, no session, every POST stamped with `version` in header and `_meta`. */
export function checkStatelessWire(wire, version, clientName) {
  assert.equal(wire.byRpc('initialize').length, 0, 'a 2026-07-28 client must not send initialize');
  assert.deepEqual(wire.mintedSessionIds(), [], 'no session id for 2026-07-28');
  assert.deepEqual(
    wire.exchanges.filter((e) => e.method !== 'POST').map((e) => e.method),
    [],
    'no GET stream or DELETE at 2026-07-28',
  );
  const calls = wire.byRpc('tools/call');
  assert.deepEqual(calls.map((e) => e.body.params.name).sort(), ['echo', 'session_info']);
  assert.ok(wire.byRpc('tools/list').length > 0);
  for (const e of wire.posts()) {
    assert.equal(e.status, 200, `${e.rpcMethod} -> ${e.status}`);
    assert.equal(e.requestHeaders['mcp-protocol-version'], version, `${e.rpcMethod} version header`);
    assert.equal(e.requestHeaders['mcp-session-id'], undefined);
    const meta = e.body.params?._meta ?? {};
    assert.equal(meta['io.modelcontextprotocol/protocolVersion'], version, `${e.rpcMethod} _meta version`);
    assert.equal(meta['io.modelcontextprotocol/clientInfo']?.name, clientName, `${e.rpcMethod} _meta clientInfo`);
  }
  for (const e of calls) {
    assert.equal(e.requestHeaders['mcp-method'], 'tools/call');
    assert.equal(e.requestHeaders['mcp-name'], e.body.params.name);
  }
}
