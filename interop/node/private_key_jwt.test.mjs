// Interop: oauth4webapi authenticates with private_key_jwt (RFC 7523 §2.2):
// the client holds an ES256 key pair made here; Tollgate holds its public JWK.
// Run after `cargo build`: cd interop/node && npm install && npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as oauth from "oauth4webapi";
import { decodeJwt } from "jose";
import { spawnServer, bin, ISSUER } from "./server.mjs";

test("oauth4webapi gets tokens with private_key_jwt", async () => {
  const s = await spawnServer();
  const { base, env, dir } = s;
  try {

    const { privateKey, publicKey } = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign", "verify"],
    );
    const jwk = await crypto.subtle.exportKey("jwk", publicKey);
    const kid = "node-1";
    const jwksFile = join(dir, "client.jwks.json");
    writeFileSync(jwksFile, JSON.stringify({ keys: [{ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid, alg: "ES256" }] }));
    const created = JSON.parse(
      execFileSync(bin, [
        "client", "create", "--name", "node", "--scope", "read",
        "--auth-method", "private_key_jwt", "--jwks-file", jwksFile, "--json",
      ], { env }),
    );
    assert.equal(created.client_secret, undefined);

    const as = { issuer: ISSUER, token_endpoint: `${base}/oauth/token` };
    const client = { client_id: created.client_id };
    const auth = oauth.PrivateKeyJwt({ key: privateKey, kid });
    for (let i = 0; i < 2; i++) {
      const response = await oauth.clientCredentialsGrantRequest(
        as, client, auth, new URLSearchParams({ scope: "read" }),
        { [oauth.allowInsecureRequests]: true },
      );
      const result = await oauth.processClientCredentialsResponse(as, client, response);
      const claims = decodeJwt(result.access_token);
      assert.equal(claims.client_id, created.client_id);
      assert.equal(claims.scope, "read");
    }
  } finally {
    s.stop();
  }
});
