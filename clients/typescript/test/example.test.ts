// The example in README.md is example/example.ts, verbatim, and it runs: against
// a real `sendguard serve` with an API key, as a deployment has, twice (the
// second run finds its reservation a duplicate).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { startServer, type Server } from "./server.js";

/** The package's directory (this file is dist/test/example.test.js). */
const pkg = fileURLToPath(new URL("../../", import.meta.url));
const apiKey = "sg_example-key";
let server: Server;

before(async () => {
  server = await startServer({ apiKey });
});

after(async () => {
  await server?.stop();
});

test("README.md shows example/example.ts verbatim", () => {
  const readme = readFileSync(pkg + "README.md", "utf8");
  const example = readFileSync(pkg + "example/example.ts", "utf8");
  assert.ok(
    readme.includes("```ts\n" + example + "```\n"),
    "README.md's ts block differs from example/example.ts: paste the file into it",
  );
});

test("the example runs", async () => {
  const run = async () => {
    const env = { ...process.env, SENDGUARD_URL: server.apiUrl, SENDGUARD_API_KEY: apiKey };
    const { stdout } = await promisify(execFile)(process.execPath, [pkg + "dist/example/example.js"], {
      env,
      timeout: 30_000,
    });
    return stdout;
  };
  assert.equal(await run(), "ALLOW +5511987654321 reserved\n");
  assert.equal(await run(), "ALLOW +5511987654321 duplicate\n");
});
