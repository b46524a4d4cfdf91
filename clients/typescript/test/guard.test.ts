// The client against a real `sendguard serve` (started here, on loopback ports):
// checks, reservations and their duplicates, a 131049 report and the DEFER it
// causes, inbound events, CheckSendBatch, a generated-client call, and retries
// of UNAVAILABLE answered on the wire.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  Category,
  type CheckSendResponse,
  Code,
  ConnectError,
  type Connection,
  dial,
  Guard,
  MessageStatus,
  Rule,
  systemClock,
  Verdict,
} from "@sendguard/client";

import { flakyProxy } from "./proxy.js";
import { startServer, type Server } from "./server.js";

/** The rules of an answer's reasons, by name (for failure messages). */
function rules(a: CheckSendResponse): string {
  return a.reasons.map((r) => Rule[r.rule]).join(", ");
}

let server: Server;
let conn: Connection;
let guard: Guard;

before(async () => {
  server = await startServer();
  conn = dial(server.apiUrl);
  guard = new Guard(conn.api, "acme");
});

after(async () => {
  conn?.close();
  await server?.stop();
});

describe("against sendguard serve", () => {
  test("check: a first utility message is allowed, and nothing is recorded", async () => {
    const a = await guard.check("+55 11 98765-0001", Category.UTILITY, "order_shipped");
    assert.equal(a.verdict, Verdict.ALLOW);
    assert.equal(a.phoneE164, "+5511987650001");
    assert.deepEqual(a.reasons, []);
    const contact = await conn.api.getContact({ businessId: "acme", phone: "+5511987650001" });
    assert.deepEqual(contact.contact?.sends, []);
  });

  test("reserve, then the same messageRef again: a duplicate that counts nothing", async () => {
    const phone = "+5511987650002";
    const first = await guard.reserve(phone, Category.MARKETING, "black_friday", "outbox-1");
    assert.equal(first.verdict, Verdict.ALLOW);
    assert.equal(first.duplicate, false);
    assert.equal(first.messageRef, "outbox-1");

    const again = await guard.reserve(phone, Category.MARKETING, "black_friday", "outbox-1");
    assert.equal(again.duplicate, true);
    assert.equal(again.messageRef, "outbox-1");

    // The first reservation counted (one marketing message a day by default):
    // another send to the number is deferred.
    const other = await guard.reserve(phone, Category.MARKETING, "cyber_monday", "outbox-2");
    assert.equal(other.verdict, Verdict.DEFER);
    assert.equal(other.duplicate, false);
    assert.equal(other.messageRef, "");
    assert.ok(
      other.reasons.some((r) => r.rule === Rule.FREQUENCY_CAP),
      rules(other),
    );
    const contact = await conn.api.getContact({ businessId: "acme", phone });
    assert.equal(contact.contact?.sends.length, 1);
  });

  test("a 131049 report defers marketing with ECOSYSTEM_LIMIT; an inbound message lifts it", async () => {
    const phone = "5511987650003"; // as Meta spells it
    const report = {
      phone,
      messageId: "wamid.T1",
      status: MessageStatus.FAILED,
      errorCode: 131049,
      category: Category.MARKETING,
      template: "black_friday",
    };
    const r = await guard.report(report);
    assert.equal(r.phoneE164, "+5511987650003");
    assert.equal(r.duplicate, false);
    assert.equal((await guard.report(report)).duplicate, true);

    const deferred = await guard.check("+55 11 98765-0003", Category.MARKETING, "cyber_monday");
    assert.equal(deferred.verdict, Verdict.DEFER);
    const reason = deferred.reasons.find((x) => x.rule === Rule.ECOSYSTEM_LIMIT);
    assert.ok(reason, rules(deferred));
    assert.equal(reason.metaErrorCode, 131049);
    assert.ok(
      deferred.retryAt && deferred.retryAt.seconds > BigInt(Math.floor(Date.now() / 1000)),
      "retryAt in the future",
    );
    assert.equal((await guard.check(phone, Category.UTILITY, "order_shipped")).verdict, Verdict.ALLOW);

    const inbound = await guard.inbound({ phone, messageId: "wamid.IN1", text: "hi!" });
    assert.ok(inbound.serviceWindowUntil);
    assert.equal((await guard.inbound({ phone, messageId: "wamid.IN1", text: "hi!" })).duplicate, true);
    assert.equal((await guard.check(phone, Category.MARKETING, "cyber_monday")).verdict, Verdict.ALLOW);
  });

  test("region: a national spelling is read as the Guard's region's", async () => {
    const br = new Guard(conn.api, "acme", { region: "BR" });
    const a = await br.check("(21) 98765-0004", Category.UTILITY, "order_shipped");
    assert.equal(a.phoneE164, "+5521987650004");
    const none = await guard.check("(21) 98765-0004", Category.UTILITY, "order_shipped");
    assert.equal(none.verdict, Verdict.DENY);
    assert.equal(none.reasons[0]?.rule, Rule.INVALID_NUMBER);
  });

  test("checkBatch: one answer per row, in order; a bad row gets its own error", async () => {
    const answers = await guard.checkBatch([
      { requestId: "1", phone: "+5511987650005", category: Category.UTILITY, template: "order_shipped" },
      {
        requestId: "2",
        phone: "+5521987650006",
        category: Category.MARKETING,
        template: "cyber_monday",
        reserve: true,
        messageRef: "cm-2",
      },
      { requestId: "3", phone: "+5521987650007" },
      {
        requestId: "4",
        phone: "+5521987650006",
        category: Category.MARKETING,
        template: "cyber_monday",
        reserve: true,
        messageRef: "cm-2",
      },
    ]);
    assert.deepEqual(
      answers.map((a) => [a.requestId, Verdict[a.verdict], a.duplicate, a.error?.code ?? 0]),
      [
        ["1", "ALLOW", false, 0],
        ["2", "ALLOW", false, 0],
        ["3", "UNSPECIFIED", false, Code.InvalidArgument],
        ["4", "ALLOW", true, 0],
      ],
    );
    assert.match(answers[2]!.error!.message, /category/);
  });

  test("a malformed request is INVALID_ARGUMENT naming the field, thrown at once", async () => {
    const err = await guard.check("+5511987650008", Category.UNSPECIFIED).then(
      () => assert.fail("no error"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, Code.InvalidArgument);
    assert.match(err.rawMessage, /category/);
  });

  test("HTTP/1.1 works too", async () => {
    const c = dial(server.apiUrl, { httpVersion: "1.1" });
    const a = await new Guard(c.api, "acme").check("+5511987650009", Category.UTILITY, "order_shipped");
    assert.equal(a.verdict, Verdict.ALLOW);
    c.close();
  });

  test("UNAVAILABLE answered on the wire is retried", async () => {
    const proxy = await flakyProxy(server.apiUrl, 2);
    const c = dial(proxy.url);
    const waits: number[] = [];
    const g = new Guard(c.api, "acme", { clock: { now: systemClock.now, sleep: async (ms) => void waits.push(ms) } });
    try {
      const a = await g.check("+5511987650010", Category.UTILITY, "order_shipped");
      assert.equal(a.verdict, Verdict.ALLOW);
      assert.equal(proxy.requests(), 3);
      assert.equal(waits.length, 2);
    } finally {
      c.close();
      await proxy.close();
    }
  });

  test("UNAVAILABLE on the wire, out of attempts, is the caller's", async () => {
    const proxy = await flakyProxy(server.apiUrl, 1);
    const c = dial(proxy.url);
    try {
      const call = new Guard(c.api, "acme", { maxAttempts: 1 }).check("+5511987650010", Category.UTILITY);
      await assert.rejects(call, (e: unknown) => e instanceof ConnectError && e.code === Code.Unavailable);
      assert.equal(proxy.requests(), 1);
    } finally {
      c.close();
      await proxy.close();
    }
  });
});
