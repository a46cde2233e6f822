// Interop: oauth4webapi's DPoP support (RFC 9449) against the real server:
// a DPoP-bound token from the client-credentials grant, used at Tollgate's
// admin API with a proof oauth4webapi makes (with ath), and checked the way
// docs/resource-servers.md tells a resource server to, with jose:
// jwtVerify(proof, EmbeddedJWK) and calculateJwkThumbprint against cnf.jkt.
// Run after `cargo build`: cd interop/node && npm install && npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as oauth from "oauth4webapi";
import { EmbeddedJWK, calculateJwkThumbprint, decodeJwt, jwtVerify } from "jose";
import { spawnServer, bin } from "./server.mjs";

test("oauth4webapi gets and uses a DPoP-bound token", async () => {
  // No TOLLGATE_ISSUER: the issuer is the address the client calls, so the
  // proofs' htu match it.
  const s = await spawnServer({ TOLLGATE_ISSUER: "" });
  const { base, env } = s;
  try {
    const created = JSON.parse(execFileSync(bin, [
      "client", "create", "--name", "node-dpop", "--scope", "tollgate:admin", "--json",
    ], { env }));
    const as = { issuer: base, token_endpoint: `${base}/oauth/token` };
    const client = { client_id: created.client_id };
    const keys = await oauth.generateKeyPair("ES256");
    const DPoP = oauth.DPoP(client, keys);
    const options = { DPoP, [oauth.allowInsecureRequests]: true };
    const response = await oauth.clientCredentialsGrantRequest(
      as, client, oauth.ClientSecretBasic(created.client_secret), new URLSearchParams(), options);
    const result = await oauth.processClientCredentialsResponse(as, client, response);
    assert.equal(result.token_type, "dpop");
    const claims = decodeJwt(result.access_token);
    assert.equal(claims.cnf.jkt, await calculateJwkThumbprint(await crypto.subtle.exportKey("jwk", keys.publicKey)));

    // Used at the admin API: oauth4webapi sends Authorization: DPoP and a
    // proof with ath. A resource server checks that proof as below.
    let seen;
    const capture = async (url, init) => {
      seen = { url, headers: new Headers(init.headers) };
      return fetch(url, init);
    };
    const url = new URL(`${base}/admin/clients`);
    const r = await oauth.protectedResourceRequest(
      result.access_token, "GET", url, new Headers(), null,
      { ...options, [oauth.customFetch]: capture });
    assert.equal(r.status, 200);
    const list = await r.json();
    assert.ok(list.data.some((c) => c.client_id === created.client_id));

    // The resource server's check (docs/resource-servers.md).
    const proof = seen.headers.get("dpop");
    const [scheme, token] = seen.headers.get("authorization").split(" ");
    assert.equal(scheme, "DPoP");
    const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
      typ: "dpop+jwt", algorithms: ["ES256", "EdDSA", "RS256", "PS256"], maxTokenAge: "60s",
    });
    assert.equal(payload.htm, "GET");
    assert.equal(payload.htu, `${url.origin}${url.pathname}`);
    assert.equal(payload.ath, createHash("sha256").update(token).digest("base64url"));
    assert.equal(await calculateJwkThumbprint(protectedHeader.jwk), decodeJwt(token).cnf.jkt);

    // As a plain bearer token it is refused, with a DPoP challenge.
    const bearer = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(bearer.status, 401);
    assert.match(bearer.headers.get("www-authenticate"), /^DPoP /);
  } finally {
    s.stop();
  }
});
