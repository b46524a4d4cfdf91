import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type CallOptions as ConnectCallOptions, type Client } from "@connectrpc/connect";

import {
  CheckSendRequestSchema,
  type Category,
  type CheckSendResponse,
  type ReportInboundRequestSchema,
  type ReportInboundResponse,
  type ReportResultRequestSchema,
  type ReportResultResponse,
  type SendGuard,
} from "./gen/sendguard/v1/sendguard_pb.js";

/** A check request as a plain object (`{ phone: "+55…", category: Category.MARKETING }`). */
export type CheckSendInit = MessageInitShape<typeof CheckSendRequestSchema>;
/** A report as a plain object. */
export type ReportResultInit = MessageInitShape<typeof ReportResultRequestSchema>;
/** An inbound event as a plain object. */
export type ReportInboundInit = MessageInitShape<typeof ReportInboundRequestSchema>;

/** Options of one Guard call. */
export interface CallOptions {
  /** Ends the call, its retries and its backoff (the call fails with what it last got, or CANCELED). */
  signal?: AbortSignal | undefined;
  /** The whole call's deadline, retries and backoff included (default: none; each attempt has its own). */
  timeoutMs?: number | undefined;
}

/** GuardOptions tune a Guard. Every field is optional; the defaults are the Go client.Guard's. */
export interface GuardOptions {
  /** The deadline of one attempt, in ms (default 2000). */
  attemptTimeoutMs?: number;
  /** The attempts of one call (default 4: the first and three retries). */
  maxAttempts?: number;
  /** The wait before the first retry, in ms (default 50); each retry doubles it, up to maxBackoffMs (default 1000), with jitter. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * Also retry RESOURCE_EXHAUSTED. Off by default: it means a quota or a
   * message-size limit, which retrying right away makes worse or never fixes; a
   * sending worker should rather DEFER its own send.
   */
  retryResourceExhausted?: boolean;
  /** Recorded with every check and reservation (optional). */
  campaignId?: string;
  /**
   * The region (ISO 3166 alpha-2, e.g. "BR") to read the phones this Guard is
   * given in national format, such as "(31) 99551-1909"; empty: the business
   * policy's default_region. Phones with + or 00 are international whatever it
   * says. A request's own region, when set, wins.
   */
  region?: string;
  /** The clock and the wait between attempts (default systemClock; tests make them deterministic). */
  clock?: Clock;
  /** Uniform in [0, 1): the jitter (tests fix it). Default Math.random. */
  random?: () => number;
}

/** What the retry loop reads time from and waits with. */
export interface Clock {
  /** Milliseconds, for deadlines (Date.now). */
  now(): number;
  /** Resolves after ms, or as soon as signal aborts (it never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The Guard's defaults: those of the Go client.Guard. */
export const guardDefaults = {
  attemptTimeoutMs: 2000,
  maxAttempts: 4,
  initialBackoffMs: 50,
  maxBackoffMs: 1000,
} as const;

/**
 * Guard is what a sending worker holds: the questions it asks before and after
 * each send, for one business, with deadlines and retries, as the Go
 * client.Guard. It shares its connection with every other Guard on it; make one
 * per process and business.
 *
 * Retries: an attempt that fails with UNAVAILABLE (the server is restarting or
 * unreachable), ABORTED (a storage conflict the server gave up on, a connection
 * reset) or DEADLINE_EXCEEDED of the attempt (not of the call) is tried again
 * after an exponential backoff with jitter, at most maxAttempts times, never past
 * the call's deadline or its signal. That is safe for every Guard call: a check
 * without a reservation only reads; a reservation is idempotent through its
 * message_ref; a report is idempotent by its keys (message_id or message_ref, and
 * status); an inbound event by its message_id (without one it is tried once).
 * Any other error (INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED…) is
 * thrown at once: trying again would give the same answer. Errors are
 * ConnectErrors: `err.code === Code.Unauthenticated`.
 */
export class Guard {
  private readonly o: Required<Omit<GuardOptions, "clock" | "random">>;
  private readonly clock: Clock;
  private readonly random: () => number;

  /** A Guard for business on api (a {@link Connection}'s `api`). */
  constructor(
    private readonly api: Client<typeof SendGuard>,
    private readonly business: string,
    options: GuardOptions = {},
  ) {
    const initial = positive(options.initialBackoffMs, guardDefaults.initialBackoffMs);
    this.o = {
      attemptTimeoutMs: positive(options.attemptTimeoutMs, guardDefaults.attemptTimeoutMs),
      maxAttempts: Math.floor(positive(options.maxAttempts, guardDefaults.maxAttempts)),
      initialBackoffMs: initial,
      maxBackoffMs: Math.max(positive(options.maxBackoffMs, guardDefaults.maxBackoffMs), initial),
      retryResourceExhausted: options.retryResourceExhausted ?? false,
      campaignId: options.campaignId ?? "",
      region: options.region ?? "",
    };
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
  }

  /**
   * Asks whether a message may be sent to phone now. It records nothing: use
   * reserve to claim the send. template may be empty for service messages. Send
   * only on Verdict.ALLOW; on Verdict.DEFER try again at retryAt.
   */
  check(phone: string, category: Category, template = "", options?: CallOptions): Promise<CheckSendResponse> {
    const req = this.row({ phone, category, template });
    return this.retry((o) => this.api.checkSend(req, o), options);
  }

  /**
   * Asks like check and, on Verdict.ALLOW, records the send at once (atomically
   * per number), so that concurrent workers cannot both pass a cap. messageRef
   * is your id for this send (e.g. the outbox row's id): pass it to Meta as
   * biz_opaque_callback_data and in report, so that outcomes find the send.
   *
   * Send only when the verdict is ALLOW and duplicate is false. duplicate means
   * the messageRef was reserved before — by another worker, an earlier run of
   * this job, or an earlier attempt of this very call whose answer was lost —
   * so someone already has this send (at most once). A messageRef that got
   * DEFER or DENY reserved nothing and may be used again. Without a messageRef
   * it throws INVALID_ARGUMENT: such a reservation could not be retried safely.
   */
  async reserve(
    phone: string,
    category: Category,
    template: string,
    messageRef: string,
    options?: CallOptions,
  ): Promise<CheckSendResponse> {
    if (!messageRef) {
      throw new ConnectError("reserve needs a messageRef (your id for the send)", Code.InvalidArgument);
    }
    const req = this.row({ phone, category, template, reserve: true, messageRef });
    return this.retry((o) => this.api.checkSend(req, o), options);
  }

  /**
   * Judges up to 1,000 planned sends in one call (CheckSendBatch): one answer
   * per row, in order; a row that could not be judged gets an answer carrying
   * error. Rows take the Guard's business, campaign and region where they name
   * none. A reserving row needs a messageRef, or a campaignId to derive one from
   * (else INVALID_ARGUMENT, as reserve), so that the batch can be retried.
   */
  async checkBatch(rows: CheckSendInit[], options?: CallOptions): Promise<CheckSendResponse[]> {
    const requests = rows.map((r) => this.row(r));
    const i = requests.findIndex((r) => r.reserve && !r.messageRef && !r.campaignId);
    if (i >= 0) {
      throw new ConnectError(`requests[${i}]: a reservation needs a messageRef or a campaignId`, Code.InvalidArgument);
    }
    const resp = await this.retry((o) => this.api.checkSendBatch({ requests }, o), options);
    return resp.responses;
  }

  /**
   * Records what happened to a send (the send API's answer, a status webhook).
   * An empty businessId is the Guard's business, an empty region the Guard's.
   * Reports are idempotent: a retried one is recorded once (duplicate: true).
   */
  report(req: ReportResultInit, options?: CallOptions): Promise<ReportResultResponse> {
    const full = { ...req, businessId: req.businessId || this.business, region: req.region || this.o.region };
    return this.retry((o) => this.api.reportResult(full, o), options);
  }

  /**
   * Records a message or call from the user (ReportInbound): it opens the
   * service window, and a text that is an opt-out or opt-in keyword changes the
   * opt-out. Retried only with a messageId (its idempotency key).
   */
  inbound(req: ReportInboundInit, options?: CallOptions): Promise<ReportInboundResponse> {
    const full = { ...req, businessId: req.businessId || this.business, region: req.region || this.o.region };
    return this.retry((o) => this.api.reportInbound(full, o), options, full.messageId ? this.o.maxAttempts : 1);
  }

  /** A check row with the Guard's business, campaign and region where it names none. */
  private row(r: CheckSendInit) {
    return create(CheckSendRequestSchema, {
      ...r,
      businessId: r.businessId || this.business,
      campaignId: r.campaignId || this.o.campaignId,
      region: r.region || this.o.region,
    });
  }

  /** Whether an attempt's error may be tried again, the call's signal and deadline being final. */
  private retryable(err: ConnectError, signal: AbortSignal | undefined, deadline: number): boolean {
    if (signal?.aborted || this.clock.now() >= deadline) {
      return false;
    }
    switch (err.code) {
      case Code.Unavailable:
      case Code.Aborted:
      case Code.DeadlineExceeded: // the attempt's deadline, not the call's (checked above)
        return true;
      case Code.ResourceExhausted:
        return this.o.retryResourceExhausted;
      default:
        return false;
    }
  }

  /**
   * Runs call with a deadline per attempt until it succeeds, fails for good,
   * runs out of attempts, or the call's deadline or signal ends it. It throws
   * the last attempt's error.
   */
  private async retry<T>(
    call: (o: ConnectCallOptions) => Promise<T>,
    options: CallOptions = {},
    maxAttempts = this.o.maxAttempts,
  ): Promise<T> {
    const { signal } = options;
    const deadline = options.timeoutMs === undefined ? Infinity : this.clock.now() + options.timeoutMs;
    let backoff = this.o.initialBackoffMs;
    for (let attempt = 1; ; attempt++) {
      // Whole milliseconds: the Connect-Timeout-Ms header takes an integer.
      const timeoutMs = Math.floor(Math.min(this.o.attemptTimeoutMs, deadline - this.clock.now()));
      try {
        return await call({ signal, timeoutMs });
      } catch (e) {
        const err = ConnectError.from(e);
        if (attempt >= maxAttempts || !this.retryable(err, signal, deadline)) {
          throw err;
        }
        // Equal jitter: half the backoff, plus up to the other half at random,
        // so that workers that failed together do not retry together.
        const wait = backoff / 2 + (this.random() * backoff) / 2;
        if (deadline - this.clock.now() < wait) {
          throw err; // the call's deadline comes first: no point waiting
        }
        await this.clock.sleep(wait, signal);
        if (signal?.aborted) {
          throw err;
        }
        backoff = Math.min(2 * backoff, this.o.maxBackoffMs);
      }
    }
  }
}

/** v when it is a positive number, else the default d. */
function positive(v: number | undefined, d: number): number {
  return v !== undefined && v > 0 ? v : d;
}

/** The default clock: Date.now, and a timer that an abort cuts short. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal?.aborted) {
        return resolve();
      }
      const done = () => {
        clearTimeout(t);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const t = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
    }),
};
