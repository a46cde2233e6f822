// The real Tollgate binary on 127.0.0.1:0 in a temporary directory, for the
// interop tests. Run `cargo build` first (TOLLGATE_BIN overrides the binary).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const bin = process.env.TOLLGATE_BIN ?? join(root, "target", "debug", "tollgate");
export const ISSUER = "https://tollgate.interop";

/** Starts the server with `extra` environment; resolves to {base, env, dir, stop}. */
export async function spawnServer(extra = {}) {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-"));
  const env = {
    ...process.env,
    TOLLGATE_BIND: "127.0.0.1:0",
    TOLLGATE_DB: join(dir, "tollgate.db"),
    TOLLGATE_KEYS_DIR: join(dir, "keys"),
    TOLLGATE_ISSUER: ISSUER,
    RUST_LOG: "warn",
    ...extra,
  };
  const child = spawn(bin, ["serve", "--exit-on-eof"], { env, stdio: ["pipe", "pipe", "inherit"] });
  const line = await new Promise((ok) => createInterface({ input: child.stdout }).once("line", ok));
  assert.match(line, /^tollgate listening on /);
  return {
    base: line.replace("tollgate listening on ", ""),
    env,
    dir,
    stop() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
