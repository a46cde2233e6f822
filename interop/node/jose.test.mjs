// Interop: jose (createRemoteJWKSet + jwtVerify) verifies Tollgate's tokens
// against the served JWKS, for each signing algorithm.
// Run after `cargo build`: cd interop/node && npm install && npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createRemoteJWKSet, jwtVerify, errors } from "jose";
import { spawnServer, bin, ISSUER } from "./server.mjs";

const AUDIENCE = "https://api.interop";

async function startServer(alg) {
  const s = await spawnServer({ TOLLGATE_SIGNING_ALG: alg });
  const client = JSON.parse(
    execFileSync(bin, ["client", "create", "--name", "jose", "--scope", "read", "--audience", AUDIENCE, "--json"], { env: s.env }),
  );
  return { ...s, client };
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
