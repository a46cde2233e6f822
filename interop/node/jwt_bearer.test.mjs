// Interop: oauth4webapi's genericTokenEndpointRequest with the JWT bearer grant
// (RFC 7523 §2.1) and no client authentication (oauth4webapi's None(), which
// sends client_id only): a workload token signed here by an "issuer" key
// that Tollgate trusts, exchanged under a federation rule; jose signs it.
// Run after `cargo build`: cd interop/node && npm install && npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as oauth from "oauth4webapi";
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from "jose";
import { spawnServer, bin, ISSUER } from "./server.mjs";

const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLUSTER = "https://kubernetes.node.interop";

test("oauth4webapi exchanges a service-account token through the JWT bearer grant", async () => {
  const s = await spawnServer();
  const { base, env, dir } = s;
  try {
    const { privateKey, publicKey } = await generateKeyPair("EdDSA");
    const jwk = { ...(await exportJWK(publicKey)), kid: "sa-1" };
    const jwksFile = join(dir, "cluster.jwks.json");
    writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
    const cli = (...args) => JSON.parse(execFileSync(bin, [...args, "--json"], { env }));
    const created = cli("client", "create", "--name", "payments", "--scope", "read write");
    cli("federation", "issuer", "add", "--issuer", CLUSTER, "--jwks-file", jwksFile);
    cli("federation", "rule", "add", "--issuer", CLUSTER, "--audience", "tollgate",
        "--subject", "system:serviceaccount:payments:*", "--client-id", created.client_id,
        "--scope", "read");

    const serviceAccountToken = (sub) => new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", kid: "sa-1" })
      .setIssuer(CLUSTER).setSubject(sub).setAudience(["tollgate"])
      .setIssuedAt().setExpirationTime("10m")
      .sign(privateKey);

    const as = { issuer: ISSUER, token_endpoint: `${base}/oauth/token` };
    const client = { client_id: created.client_id };
    const exchange = async (sub) => oauth.genericTokenEndpointRequest(
      as, client, oauth.None(), JWT_BEARER,
      new URLSearchParams({ assertion: await serviceAccountToken(sub) }),
      { [oauth.allowInsecureRequests]: true },
    );
    const result = await oauth.processGenericTokenEndpointResponse(
      as, client, await exchange("system:serviceaccount:payments:api"));
    const claims = decodeJwt(result.access_token);
    assert.equal(claims.client_id, created.client_id);
    assert.equal(result.scope, "read");
    assert.ok(result.expires_in <= 600, "never outlives the service-account token");

    await assert.rejects(
      oauth.processGenericTokenEndpointResponse(
        as, client, await exchange("system:serviceaccount:billing:api")),
      (e) => e instanceof oauth.ResponseBodyError && e.error === "invalid_grant",
    );
  } finally {
    s.stop();
  }
});
