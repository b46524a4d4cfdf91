// Starts a real `sendguard serve` for the tests: the binary in SENDGUARD_BIN
// (make test-ts builds it), or one built here with `go build` from the
// repository; a temporary data directory; every port on loopback, chosen by the
// kernel and read from the server's "sendguard serving" log line.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** A running server. */
export interface Server {
  /** The API port's base URL (`http://127.0.0.1:<port>`). */
  readonly apiUrl: string;
  /** The HTTP port's base URL (/healthz, /metrics). */
  readonly httpUrl: string;
  /** What the server logged so far (for failure messages). */
  log(): string;
  /** SIGTERM, wait for the exit, remove the data directory. */
  stop(): Promise<void>;
}

/** Options of startServer. */
export interface ServerOptions {
  /** Configure this API key (every business, admin): calls without it are refused. */
  apiKey?: string;
}

/** The bound addresses in the server's startup line (as cmd/sendguard's e2e tests read them). */
const servingLine = /sendguard serving"? grpc=(\S+) http=(\S+) api=(\S*)/;

/** How long the server may take to start (a cold Go build is separate). */
const startTimeoutMs = 30_000;

/** The repository's root: the nearest directory above this file with a go.mod. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "go.mod"))) {
    const up = dirname(dir);
    if (up === dir) {
      throw new Error("no go.mod above " + fileURLToPath(import.meta.url));
    }
    dir = up;
  }
  return dir;
}

/** The sendguard binary: SENDGUARD_BIN, or one built into dir. */
function binary(dir: string): string {
  const bin = process.env.SENDGUARD_BIN;
  if (bin) {
    return bin;
  }
  const out = join(dir, "sendguard");
  execFileSync("go", ["build", "-o", out, "./cmd/sendguard"], {
    cwd: repoRoot(),
    stdio: ["ignore", "ignore", "inherit"],
  });
  return out;
}

/** Starts `sendguard serve` and waits until it listens and /healthz answers 200. */
export async function startServer(opts: ServerOptions = {}): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "sendguard-ts-"));
  const args = [
    "serve",
    "--data",
    join(dir, "data"),
    "--grpc-addr",
    "127.0.0.1:0",
    "--http-addr",
    "127.0.0.1:0",
    "--api-addr",
    "127.0.0.1:0",
  ];
  if (opts.apiKey !== undefined) {
    const sha256 = createHash("sha256").update(opts.apiKey).digest("hex");
    const config = join(dir, "sendguard.yaml");
    writeFileSync(config, `api_keys:\n  - {name: ts-test, sha256: "${sha256}", businesses: ["*"], admin: true}\n`, {
      mode: 0o600,
    });
    args.push("--config", config);
  }
  const child = spawn(binary(dir), args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const stop = () => stopChild(child, dir);
  try {
    const [http, api] = await new Promise<[string, string]>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server did not start within ${startTimeoutMs} ms`)),
        startTimeoutMs,
      );
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
        log = (log + chunk).slice(-64 * 1024); // the tail is enough to explain a failure
        const m = servingLine.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve([m[2]!, m[3]!]);
        }
      });
      child.on("error", reject);
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}`));
      });
    });
    const server: Server = { apiUrl: `http://${api}`, httpUrl: `http://${http}`, log: () => log, stop };
    await healthy(server.httpUrl);
    return server;
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\n${log}`);
  }
}

/** Waits until GET /healthz answers 200 (the server logs its addresses before it serves): 5 s at most. */
async function healthy(httpUrl: string): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      const resp = await fetch(httpUrl + "/healthz");
      if (resp.ok) {
        return;
      }
      last = new Error(`/healthz answered ${resp.status}`);
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw last;
}

/** Ends the server with SIGTERM (SIGKILL after 20 s) and removes its directory. */
async function stopChild(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(dir, { recursive: true, force: true });
}
