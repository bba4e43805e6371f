// Multi-round-trip requests (SEP-2322) with the TypeScript SDK's 2.x client package.
//
// `@modelcontextprotocol/client` 2.4.0 fulfils 2026-07-28 `input_required` results itself: it
// runs each embedded input request through the handler registered for its method with
// `setRequestHandler` (here `elicitation/create`) and retries the call with `inputResponses`
// and the echoed `requestState`. Against `serve --conformance`, `callTool` of the fixtures that
// ask for input must simply return their result, and the wire must show the retries.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

import { serverForTests, Wire } from '../lib/helpers.mjs';

const MODERN = '2026-07-28';
const ANSWERS = { name: 'Ada', color: 'teal' };

const fixture = serverForTests({ extra: ['--conformance'] });
const { guarded } = fixture;

/** A pinned 2026-07-28 client that fills in the fields of any form it knows. */
async function connect(wire) {
  const client = new Client(
    { name: 'sessiongate-node-mrtr', version: '2.4.0-test' },
    { capabilities: { elicitation: {} }, versionNegotiation: { mode: { pin: MODERN } } },
  );
  client.setRequestHandler('elicitation/create', async (request) => {
    const fields = Object.keys(request.params.requestedSchema?.properties ?? {});
    return { action: 'accept', content: Object.fromEntries(fields.map((f) => [f, ANSWERS[f]])) };
  });
  const transport = new StreamableHTTPClientTransport(new URL(fixture.server.mcpUrl), { fetch: wire.fetch });
  await client.connect(transport);
  assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
  return client;
}

test('callTool completes an elicitation through input_required and a retry', () =>
  guarded(async () => {
    const wire = new Wire();
    const client = await connect(wire);
    try {
      const result = await client.callTool({ name: 'test_input_required_result_elicitation', arguments: {} });
      assert.deepEqual(result.content, [{ type: 'text', text: 'Hello, Ada!' }]);
    } finally {
      await client.close().catch(() => {});
    }
    const [first, retry, ...rest] = wire.byRpc('tools/call');
    assert.equal(rest.length, 0, wire.describe());
    assert.equal(first.body.params.inputResponses, undefined);
    assert.deepEqual(retry.body.params.inputResponses, { user_name: { action: 'accept', content: { name: 'Ada' } } });
    assert.match(retry.body.params.requestState, /^sg1\./);
    assert.notEqual(retry.body.id, first.body.id);
    assert.deepEqual(wire.mintedSessionIds(), []);
  }));

test('callTool drives a request through two rounds of input', () =>
  guarded(async () => {
    const wire = new Wire();
    const client = await connect(wire);
    try {
      const result = await client.callTool({ name: 'test_input_required_result_multi_round', arguments: {} });
      assert.deepEqual(result.content, [{ type: 'text', text: 'Ada likes teal' }]);
    } finally {
      await client.close().catch(() => {});
    }
    const calls = wire.byRpc('tools/call');
    assert.deepEqual(
      calls.map((c) => Object.keys(c.body.params.inputResponses ?? {})),
      [[], ['step1'], ['step2']],
    );
  }));
