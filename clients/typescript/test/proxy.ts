// A cleartext HTTP/2 proxy in front of a server's API port that answers its
// first requests with the Connect protocol's UNAVAILABLE (HTTP 503 and
// {"code":"unavailable"}), as a restarting server or a load balancer without a
// backend would, then forwards every request.

import { once } from "node:events";
import { createServer, type IncomingHttpHeaders } from "node:http2";
import type { AddressInfo } from "node:net";

/** A running proxy. */
export interface FlakyProxy {
  /** Its base URL (`http://127.0.0.1:<port>`). */
  readonly url: string;
  /** Requests received so far, refused ones included. */
  requests(): number;
  close(): Promise<void>;
}

/**
 * Headers not forwarded: those of one hop (or of HTTP/2's framing), and
 * Accept-Encoding (fetch would decompress an answer and keep its
 * Content-Encoding).
 */
const hopHeaders = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "upgrade",
  "host",
  "content-length",
  "accept-encoding",
]);

function forwardable(h: IncomingHttpHeaders | Headers): [string, string][] {
  const entries = h instanceof Headers ? [...h.entries()] : Object.entries(h);
  return entries.flatMap(([k, v]) =>
    k.startsWith(":") || hopHeaders.has(k) || v === undefined ? [] : [[k, String(v)] as [string, string]],
  );
}

/** Starts a proxy to target (a base URL) that refuses the first `failures` requests. */
export async function flakyProxy(target: string, failures: number): Promise<FlakyProxy> {
  let seen = 0;
  const server = createServer(async (req, res) => {
    seen++;
    const body: Buffer[] = [];
    for await (const chunk of req) {
      body.push(chunk as Buffer);
    }
    if (seen <= failures) {
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: "unavailable", message: "proxy: no backend yet" }));
      return;
    }
    const upstream = await fetch(target + req.url, {
      method: req.method,
      headers: forwardable(req.headers),
      body: Buffer.concat(body),
    });
    res.writeHead(upstream.status, Object.fromEntries(forwardable(upstream.headers)));
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => seen,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
