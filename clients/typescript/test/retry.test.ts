// The Guard's retry rules, against an in-memory SendGuard (Connect's router
// transport) that fails as scripted, with a fake clock: which codes are retried,
// how often, how long it waits, and that no wait outlives the call's deadline or
// signal. No test sleeps.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";

import {
  Category,
  type Clock,
  Guard,
  type GuardOptions,
  MessageStatus,
  SendGuard,
  systemClock,
  Verdict,
} from "@sendguard/client";

/** A fake clock: now() moves only when a test (or sleep) moves it. */
class FakeClock implements Clock {
  t = 1_000_000;
  readonly waits: number[] = [];
  /** Runs on each sleep (e.g. to abort the call while it waits). */
  onSleep: () => void = () => {};
  now(): number {
    return this.t;
  }
  async sleep(ms: number): Promise<void> {
    this.waits.push(ms);
    this.t += ms;
    this.onSleep();
  }
}

/** One attempt as the fake server saw it. */
interface Attempt {
  method: string;
  req: unknown;
  timeoutMs: number | undefined;
}

/**
 * A Guard for business "acme" on an in-memory server whose attempts fail with
 * the codes of script in turn (undefined: answer), then answer for good.
 * attemptMs is how far each attempt moves the clock.
 */
function fake(script: (Code | undefined)[], opts: GuardOptions = {}, attemptMs = 0) {
  const clock = new FakeClock();
  const attempts: Attempt[] = [];
  // The deadline each attempt was sent with (the server's view of it moves
  // with the real clock).
  const sentTimeouts: (number | undefined)[] = [];
  const capture: Interceptor = (next) => (req) => {
    const t = req.header.get("Connect-Timeout-Ms");
    sentTimeouts.push(t === null ? undefined : Number(t));
    return next(req);
  };
  const next = (method: string, req: unknown) => {
    attempts.push({ method, req, timeoutMs: sentTimeouts[sentTimeouts.length - 1] });
    clock.t += attemptMs;
    const code = script.shift();
    if (code !== undefined) {
      throw new ConnectError("scripted", code);
    }
  };
  const transport = createRouterTransport(
    ({ service }) => {
      service(SendGuard, {
        checkSend(req) {
          next("checkSend", req);
          return { verdict: Verdict.ALLOW, messageRef: req.messageRef };
        },
        checkSendBatch(req) {
          next("checkSendBatch", req);
          return { responses: req.requests.map((r) => ({ requestId: r.requestId, verdict: Verdict.ALLOW })) };
        },
        reportResult(req) {
          next("reportResult", req);
          return {};
        },
        reportInbound(req) {
          next("reportInbound", req);
          return {};
        },
      });
    },
    { transport: { interceptors: [capture] } },
  );
  const guard = new Guard(createClient(SendGuard, transport), "acme", { clock, random: () => 0.5, ...opts });
  return { guard, clock, attempts };
}

/** The ConnectError code a promise rejects with. */
async function codeOf(p: Promise<unknown>): Promise<Code> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ConnectError, `not a ConnectError: ${String(e)}`);
    return e.code;
  }
  assert.fail("did not reject");
}

describe("Guard retries", () => {
  for (const code of [Code.Unavailable, Code.Aborted, Code.DeadlineExceeded]) {
    test(`${Code[code]} is retried with exponential backoff and equal jitter`, async () => {
      const { guard, clock, attempts } = fake([code, code]);
      const resp = await guard.check("+5511987654321", Category.MARKETING, "bf");
      assert.equal(resp.verdict, Verdict.ALLOW);
      assert.equal(attempts.length, 3);
      // 50 ms, then 100 ms: half of each, plus half the other half (random 0.5).
      assert.deepEqual(clock.waits, [37.5, 75]);
    });
  }

  test("gives up after maxAttempts with the last error; backoff stops at maxBackoffMs", async () => {
    const { guard, clock, attempts } = fake(Array(10).fill(Code.Unavailable), {
      maxAttempts: 5,
      maxBackoffMs: 100,
      random: () => 0,
    });
    assert.equal(await codeOf(guard.check("+5511987654321", Category.UTILITY)), Code.Unavailable);
    assert.equal(attempts.length, 5);
    assert.deepEqual(clock.waits, [25, 50, 50, 50]);
  });

  test("the default is 4 attempts, 50 ms doubling to at most 1 s", async () => {
    const { guard, clock, attempts } = fake(Array(10).fill(Code.Aborted), { random: () => 1 });
    assert.equal(await codeOf(guard.check("+5511987654321", Category.UTILITY)), Code.Aborted);
    assert.equal(attempts.length, 4);
    assert.deepEqual(clock.waits, [50, 100, 200]);
  });

  for (const code of [
    Code.InvalidArgument,
    Code.Unauthenticated,
    Code.PermissionDenied,
    Code.Internal,
    Code.ResourceExhausted,
  ]) {
    test(`${Code[code]} is thrown at once`, async () => {
      const { guard, attempts } = fake([code]);
      assert.equal(await codeOf(guard.check("+5511987654321", Category.UTILITY)), code);
      assert.equal(attempts.length, 1);
    });
  }

  test("RESOURCE_EXHAUSTED is retried when asked", async () => {
    const { guard, attempts } = fake([Code.ResourceExhausted], { retryResourceExhausted: true });
    await guard.check("+5511987654321", Category.UTILITY);
    assert.equal(attempts.length, 2);
  });

  test("each attempt has its own deadline", async () => {
    const { guard, attempts } = fake([Code.Unavailable], { attemptTimeoutMs: 700 });
    await guard.check("+5511987654321", Category.UTILITY);
    assert.deepEqual(
      attempts.map((a) => a.timeoutMs),
      [700, 700],
    );
  });

  test("no wait outlives the call's deadline", async () => {
    // Each attempt takes 30 ms; the call has 100. Attempt 1 ends at 30, waits
    // 37.5 (to 67.5); attempt 2 gets the 32.5 left and ends at 97.5, when the
    // next wait (75) would pass the deadline: the last error is thrown.
    const { guard, clock, attempts } = fake(Array(10).fill(Code.Unavailable), {}, 30);
    assert.equal(
      await codeOf(guard.check("+5511987654321", Category.UTILITY, "", { timeoutMs: 100 })),
      Code.Unavailable,
    );
    assert.equal(attempts.length, 2);
    assert.deepEqual(clock.waits, [37.5]);
    assert.equal(attempts[0]!.timeoutMs, 100);
    assert.equal(attempts[1]!.timeoutMs, 32);
  });

  test("DEADLINE_EXCEEDED of the call itself is not retried", async () => {
    const { guard, attempts } = fake([Code.DeadlineExceeded], {}, 100);
    assert.equal(
      await codeOf(guard.check("+5511987654321", Category.UTILITY, "", { timeoutMs: 100 })),
      Code.DeadlineExceeded,
    );
    assert.equal(attempts.length, 1);
  });

  test("the call's signal ends the wait and the retries", async () => {
    const { guard, clock, attempts } = fake(Array(10).fill(Code.Unavailable));
    const ac = new AbortController();
    clock.onSleep = () => ac.abort();
    assert.equal(
      await codeOf(guard.check("+5511987654321", Category.UTILITY, "", { signal: ac.signal })),
      Code.Unavailable,
    );
    assert.equal(attempts.length, 1);
  });

  test("an aborted call is CANCELED, not retried", async () => {
    const { guard, attempts } = fake([]);
    assert.equal(
      await codeOf(guard.check("+5511987654321", Category.UTILITY, "", { signal: AbortSignal.abort() })),
      Code.Canceled,
    );
    assert.ok(attempts.length <= 1, `${attempts.length} attempts`);
  });

  test("systemClock's wait is cut short by the signal", { timeout: 10_000 }, async () => {
    // A 10-minute backoff, aborted once its timer runs: the test would time out
    // if the abort did not end the wait.
    const ac = new AbortController();
    const clock: Clock = {
      now: systemClock.now,
      sleep(ms, signal) {
        const waited = systemClock.sleep(ms, signal);
        ac.abort();
        return waited;
      },
    };
    const { guard, attempts } = fake([Code.Unavailable], { clock, initialBackoffMs: 600_000 });
    assert.equal(
      await codeOf(guard.check("+5511987654321", Category.UTILITY, "", { signal: ac.signal })),
      Code.Unavailable,
    );
    assert.equal(attempts.length, 1);
  });
});

describe("Guard calls", () => {
  test("reserve needs a messageRef", async () => {
    const { guard, attempts } = fake([]);
    assert.equal(await codeOf(guard.reserve("+5511987654321", Category.MARKETING, "bf", "")), Code.InvalidArgument);
    assert.equal(attempts.length, 0);
  });

  test("requests carry the Guard's business, campaign and region; a request's own win", async () => {
    const { guard, attempts } = fake([], { campaignId: "bf-2026", region: "BR" });
    await guard.reserve("(11) 98765-4321", Category.MARKETING, "bf", "ref-1");
    await guard.report({ phone: "(11) 98765-4321", messageRef: "ref-1", status: MessageStatus.SENT });
    await guard.report({
      businessId: "other",
      phone: "+5511987654321",
      messageRef: "ref-1",
      status: MessageStatus.SENT,
      region: "PT",
    });
    await guard.inbound({ phone: "(11) 98765-4321", messageId: "wamid.in1", text: "STOP" });
    await guard.checkBatch([
      { phone: "(11) 98765-4321", category: Category.UTILITY },
      { businessId: "b2", phone: "+351912345678", category: Category.UTILITY, campaignId: "c2", region: "PT" },
    ]);
    const got = attempts.map((a) => {
      const r = a.req as {
        businessId: string;
        region: string;
        campaignId?: string;
        requests?: { businessId: string; campaignId: string; region: string }[];
      };
      return r.requests
        ? r.requests.map((x) => [x.businessId, x.campaignId, x.region])
        : [a.method, r.businessId, r.region, r.campaignId];
    });
    assert.deepEqual(got, [
      ["checkSend", "acme", "BR", "bf-2026"],
      ["reportResult", "acme", "BR", ""],
      ["reportResult", "other", "PT", ""],
      ["reportInbound", "acme", "BR", undefined],
      [
        ["acme", "bf-2026", "BR"],
        ["b2", "c2", "PT"],
      ],
    ]);
  });

  test("inbound is retried only with a messageId", async () => {
    const without = fake([Code.Unavailable]);
    assert.equal(await codeOf(without.guard.inbound({ phone: "+5511987654321", text: "hi" })), Code.Unavailable);
    assert.equal(without.attempts.length, 1);
    const withId = fake([Code.Unavailable]);
    await withId.guard.inbound({ phone: "+5511987654321", messageId: "wamid.in1", text: "hi" });
    assert.equal(withId.attempts.length, 2);
  });

  test("checkBatch is retried, and refuses a reservation it could not retry safely", async () => {
    const { guard, attempts } = fake([Code.Unavailable]);
    const answers = await guard.checkBatch([
      { requestId: "1", phone: "+5511987654321", category: Category.UTILITY },
      { requestId: "2", phone: "+5511987654322", category: Category.MARKETING, reserve: true, messageRef: "r2" },
      { requestId: "3", phone: "+5511987654323", category: Category.MARKETING, reserve: true, campaignId: "c" },
    ]);
    assert.deepEqual(
      answers.map((a) => a.requestId),
      ["1", "2", "3"],
    );
    assert.equal(attempts.length, 2);
    const bad = guard.checkBatch([
      { phone: "+5511987654321", category: Category.UTILITY },
      { phone: "+5511987654322", category: Category.MARKETING, reserve: true },
    ]);
    await assert.rejects(
      bad,
      (e: unknown) =>
        e instanceof ConnectError && e.code === Code.InvalidArgument && e.rawMessage.startsWith("requests[1]"),
    );
    assert.equal(attempts.length, 2);
  });
});
