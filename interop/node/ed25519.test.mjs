// Interop (issue 23): openid-client's own PrivateKeyJwt and DPoP handle on an
// Ed25519 key. Current openid-client and oauth4webapi sign with the fully
// specified algorithm name `Ed25519` (RFC 9864), whatever the metadata lists;
// Tollgate takes it wherever it takes `EdDSA`, and lists it.
// Run after `cargo build`: cd interop/node && npm install && npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as client from "openid-client";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { spawnServer, bin } from "./server.mjs";

test("openid-client authenticates with an Ed25519 private_key_jwt and binds with an Ed25519 DPoP key", async () => {
  // No TOLLGATE_ISSUER: the issuer is the address the client calls (DPoP htu).
  const s = await spawnServer({ TOLLGATE_ISSUER: "" });
  const { base, env, dir } = s;
  try {
    const { privateKey, publicKey } = await crypto.subtle.generateKey("Ed25519", false, ["sign", "verify"]);
    const jwk = await crypto.subtle.exportKey("jwk", publicKey);
    const kid = "node-ed";
    const jwksFile = join(dir, "client.jwks.json");
    // The key registered under RFC 9864's name, as a JWKS from these libraries says it.
    writeFileSync(jwksFile, JSON.stringify({ keys: [{ kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid, alg: "Ed25519" }] }));
    const created = JSON.parse(execFileSync(bin, [
      "client", "create", "--name", "node-ed25519", "--scope", "read",
      "--auth-method", "private_key_jwt", "--jwks-file", jwksFile, "--json",
    ], { env }));

    // Discovery from Tollgate's own metadata, which lists Ed25519.
    const config = await client.discovery(
      new URL(base), created.client_id, undefined,
      client.PrivateKeyJwt({ key: privateKey, kid }),
      { execute: [client.allowInsecureRequests], algorithm: "oauth2" },
    );
    const meta = config.serverMetadata();
    assert.ok(meta.token_endpoint_auth_signing_alg_values_supported.includes("Ed25519"));
    assert.ok(meta.dpop_signing_alg_values_supported.includes("Ed25519"));

    // Capture what the library sends, to show it is the RFC 9864 name.
    let sent;
    config[client.customFetch] = async (url, init) => {
      sent = new URLSearchParams(init.body.toString());
      sent.dpop = new Headers(init.headers).get("dpop");
      return fetch(url, init);
    };

    const plain = await client.clientCredentialsGrant(config, { scope: "read" });
    assert.equal(decodeProtectedHeader(sent.get("client_assertion")).alg, "Ed25519");
    assert.equal(decodeJwt(plain.access_token).client_id, created.client_id);

    const dpopKeys = await client.randomDPoPKeyPair("Ed25519");
    const DPoP = client.getDPoPHandle(config, dpopKeys);
    const bound = await client.clientCredentialsGrant(config, { scope: "read" }, { DPoP });
    assert.equal(decodeProtectedHeader(sent.dpop).alg, "Ed25519");
    assert.equal(bound.token_type, "dpop");
    assert.ok(decodeJwt(bound.access_token).cnf.jkt);
  } finally {
    s.stop();
  }
});
