import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { SendGuard } from "./gen/sendguard/v1/sendguard_pb.js";

/** Options of {@link dial}. */
export interface DialOptions {
  /**
   * Sent with every call as `Authorization: Bearer <apiKey>` (the server's
   * `api_keys`; `sendguard keygen` makes one). Over `http://` it travels in the
   * clear: only what the URL asked for (a loopback or trusted network).
   */
  apiKey?: string | undefined;
  /**
   * "2" (the default): every call on one HTTP/2 connection, as gRPC does
   * (cleartext HTTP/2 with prior knowledge over `http://`, which the API port
   * serves). "1.1": a pool of HTTP/1.1 connections, for proxies that speak
   * nothing else.
   */
  httpVersion?: "2" | "1.1";
  /** Run around every call, after the API key's. */
  interceptors?: Interceptor[];
}

/** A connection to one sendguard server's API port. */
export interface Connection {
  /** The generated client: every RPC, for calls a {@link Guard} does not cover. */
  readonly api: Client<typeof SendGuard>;
  /** Closes the HTTP/2 connection (calls in flight fail); a later call opens a new one. */
  close(): void;
}

/**
 * Connects to the API port at baseUrl (`http://127.0.0.1:8081`, or `https://…`
 * when the server has `tls` set) over the Connect protocol with binary protobuf
 * messages. The connection is made lazily and reused by every call.
 */
export function dial(baseUrl: string, options: DialOptions = {}): Connection {
  const url = new URL(baseUrl); // throws on a malformed URL
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`sendguard: baseUrl must be http:// or https://, not ${url.protocol}`);
  }
  const interceptors = [...(options.apiKey ? [bearer(options.apiKey)] : []), ...(options.interceptors ?? [])];
  if (options.httpVersion === "1.1") {
    const transport = createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors });
    return { api: createClient(SendGuard, transport), close() {} };
  }
  const sessionManager = new Http2SessionManager(baseUrl);
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "2",
    useBinaryFormat: true,
    interceptors,
    sessionManager,
  });
  return { api: createClient(SendGuard, transport), close: () => sessionManager.abort() };
}

/** Puts `Authorization: Bearer <key>` on every call. */
function bearer(key: string): Interceptor {
  return (next) => (req) => {
    req.header.set("Authorization", `Bearer ${key}`);
    return next(req);
  };
}
