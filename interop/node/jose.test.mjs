// Interop: jose (createRemoteJWKSet + jwtVerify) verifies Tollgate's tokens
// against the served JWKS, for each signing algorithm.
// Run after `cargo build`: cd interop/node && npm install && npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { createRemoteJWKSet, jwtVerify, errors } from "jose";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.TOLLGATE_BIN ?? join(root, "target", "debug", "tollgate");
const ISSUER = "https://tollgate.interop";
const AUDIENCE = "https://api.interop";

async function startServer(alg) {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-"));
  const env = {
    ...process.env,
    TOLLGATE_BIND: "127.0.0.1:0",
    TOLLGATE_DB: join(dir, "tollgate.db"),
    TOLLGATE_KEYS_DIR: join(dir, "keys"),
    TOLLGATE_ISSUER: ISSUER,
    TOLLGATE_SIGNING_ALG: alg,
    RUST_LOG: "warn",
  };
  const child = spawn(bin, ["serve", "--exit-on-eof"], { env, stdio: ["pipe", "pipe", "inherit"] });
  const line = await new Promise((ok) => createInterface({ input: child.stdout }).once("line", ok));
  assert.match(line, /^tollgate listening on /);
  const base = line.replace("tollgate listening on ", "");
  const client = JSON.parse(
    execFileSync(bin, ["client", "create", "--name", "jose", "--scope", "read", "--audience", AUDIENCE, "--json"], { env }),
  );
  return {
    base,
    client,
    stop() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

for (const alg of ["ES256", "EdDSA", "RS256"]) {
  test(`jose verifies an ${alg} token with the remote JWKS`, async () => {
    const s = await startServer(alg);
    try {
      const basic = Buffer.from(`${s.client.client_id}:${s.client.client_secret}`).toString("base64");
      const res = await fetch(`${s.base}/oauth/token`, {
        method: "POST",
        headers: { authorization: `Basic ${basic}`, "content-type": "application/x-www-form-urlencoded" },
        body: "grant_type=client_credentials",
      });
      assert.equal(res.status, 200);
      const { access_token } = await res.json();
      const jwks = createRemoteJWKSet(new URL(`${s.base}/.well-known/jwks.json`));
      const { payload, protectedHeader } = await jwtVerify(access_token, jwks, {
        issuer: ISSUER,
        audience: AUDIENCE,
        typ: "at+jwt",
        algorithms: [alg],
      });
      assert.equal(protectedHeader.alg, alg);
      assert.equal(payload.client_id, s.client.client_id);
      assert.equal(payload.scope, "read");
      // A wrong audience is refused.
      await assert.rejects(
        jwtVerify(access_token, jwks, { issuer: ISSUER, audience: "https://other" }),
        errors.JWTClaimValidationFailed,
      );
    } finally {
      s.stop();
    }
  });
}
