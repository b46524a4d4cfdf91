// API keys against a real `sendguard serve` configured with one: the key goes
// as `Authorization: Bearer`; no key or a wrong one is UNAUTHENTICATED, a typed
// ConnectError, thrown without a retry.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import type { Interceptor } from "@connectrpc/connect";

import { Category, Code, ConnectError, dial, Guard, Verdict } from "@sendguard/client";

import { startServer, type Server } from "./server.js";

const apiKey = "sg_ts-test-key";
let server: Server;

before(async () => {
  server = await startServer({ apiKey });
});

after(async () => {
  await server?.stop();
});

/** A Guard on its own connection, and how many calls it sent. */
function guardWith(key: string | undefined) {
  let calls = 0;
  const count: Interceptor = (next) => (req) => {
    calls++;
    return next(req);
  };
  const conn = dial(server.apiUrl, { apiKey: key, interceptors: [count] });
  return { guard: new Guard(conn.api, "acme"), calls: () => calls, close: () => conn.close() };
}

for (const [name, key] of [
  ["no key", undefined],
  ["a wrong key", "sg_not-the-key"],
] as const) {
  test(`${name}: UNAUTHENTICATED, not retried`, async () => {
    const g = guardWith(key);
    try {
      await assert.rejects(g.guard.check("+5511987654321", Category.UTILITY, "order_shipped"), (e: unknown) => {
        assert.ok(e instanceof ConnectError, String(e));
        assert.equal(e.code, Code.Unauthenticated);
        return true;
      });
      assert.equal(g.calls(), 1);
    } finally {
      g.close();
    }
  });
}

test("the key: answered", async () => {
  const g = guardWith(apiKey);
  try {
    const a = await g.guard.check("+5511987654321", Category.UTILITY, "order_shipped");
    assert.equal(a.verdict, Verdict.ALLOW);
  } finally {
    g.close();
  }
});
