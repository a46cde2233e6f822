"""A Shared Signals receiver for a resource server that verifies Tollgate's
JWTs offline (docs/ssf.md, docs/resource-servers.md).

It accepts Security Event Tokens pushed by Tollgate (RFC 8935), verifies each
against Tollgate's JWKS (RFC 8417: `typ` secevent+jwt, `iss`, `aud` = this
receiver's client id), and keeps a deny-list that `denied(claims, kid)` checks
for every access token the resource server accepts:

- a revoked token, by `jti` (and every token exchanged from it, whose
  `tollgate_origin` names that `jti`);
- every token of a client issued up to a time (revoke-all);
- every token of a disabled or deleted client, until it is enabled again;
- every token obtained with a revoked API key;
- every token signed by a key marked compromised.

Run it beside a resource server:

    python examples/ssf_receiver.py --issuer https://tollgate.example \
        --audience tgc_… --port 8099

then create a push stream with a token holding `tollgate:ssf`:

    curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d '{"delivery": {"method": "urn:ietf:rfc:8935",
                          "endpoint_url": "https://rs.example/ssf"},
             "events_requested": ["https://schemas.openid.net/secevent/caep/event-type/session-revoked",
                                  "https://schemas.openid.net/secevent/risc/event-type/account-disabled"]}' \
        https://tollgate.example/ssf/streams

Needs PyJWT with its crypto extra (`pip install "pyjwt[crypto]"`).
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"


class DenyList:
    """What the resource server must refuse, from the events received."""

    def __init__(self):
        self.lock = threading.Lock()
        self.jtis = set()
        self.clients_before = {}  # client id -> tokens issued at or before this time
        self.clients_off = set()  # disabled or deleted clients
        self.api_keys = set()
        self.kids = set()
        self.seen = set()  # SET jtis, so a repeated SET counts once

    def apply(self, claims):
        """Records one verified SET; False when it was seen before."""
        with self.lock:
            if claims["jti"] in self.seen:
                return False
            self.seen.add(claims["jti"])
            sub = claims.get("sub_id", {})
            for typ, event in claims.get("events", {}).items():
                if typ == CAEP + "session-revoked":
                    if sub.get("format") == "jwt_id":
                        self.jtis.add(sub["jti"])
                    elif sub.get("format") == "iss_sub":
                        before = event.get("tollgate_tokens_issued_before", event.get("event_timestamp"))
                        self.clients_before[sub["sub"]] = max(before, self.clients_before.get(sub["sub"], 0))
                elif typ in (RISC + "account-disabled", RISC + "account-purged"):
                    self.clients_off.add(sub["sub"])
                elif typ == RISC + "account-enabled":
                    self.clients_off.discard(sub["sub"])
                elif typ == CAEP + "credential-change" and event.get("credential_type") == "api_key":
                    self.api_keys.add(event["tollgate_api_key_id"])
                elif typ == RISC + "credential-compromise" and event.get("credential_type") == "signing_key":
                    self.kids.add(sub["id"])
            return True

    def denied(self, claims, kid=None):
        """Whether an access token (its verified claims, and the `kid` of its
        header) must be refused."""
        with self.lock:
            chain = [claims.get("jti")] + [o.get("jti") for o in claims.get("tollgate_origin", [])]
            client = claims.get("client_id")
            return (
                any(j in self.jtis for j in chain)
                or client in self.clients_off
                or claims.get("iat", 0) <= self.clients_before.get(client, -1)
                or claims.get("api_key_id") in self.api_keys
                or kid in self.kids
            )


class Receiver:
    """The push endpoint: verifies each SET, applies it, answers 202."""

    def __init__(self, issuer, audience, jwks_uri=None):
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwt.PyJWKClient(jwks_uri or issuer + "/.well-known/jwks.json", cache_keys=True)
        self.deny = DenyList()
        self.received = []

    def accept(self, token):
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "secevent+jwt":
            raise ValueError("not a SET")
        key = self.jwks.get_signing_key_from_jwt(token)
        # RFC 8417 §2.2: no exp; iat is checked by age below.
        claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience=self.audience,
                            issuer=self.issuer, options={"require": ["iss", "aud", "jti", "iat"]})
        if claims["iat"] < time.time() - 7 * 86400:
            raise ValueError("too old")
        self.received.append(claims)
        self.deny.apply(claims)
        return claims

    def handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(min(length, 65536)).decode()
                if self.headers.get("Content-Type", "").split(";")[0] != "application/secevent+jwt":
                    return self._answer(400, {"err": "invalid_request", "description": "not a SET"})
                try:
                    receiver.accept(body)
                except Exception as e:  # RFC 8935 §2.3: the error in JSON
                    return self._answer(400, {"err": "invalid_request", "description": str(e)})
                self._answer(202, None)

            def _answer(self, status, body):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def serve(self, host="127.0.0.1", port=0):
        """Starts the endpoint in a thread; the server (its port is
        `server.server_address[1]`)."""
        server = ThreadingHTTPServer((host, port), self.handler())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--issuer", required=True)
    p.add_argument("--audience", required=True, help="this receiver's client id")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8099)
    a = p.parse_args()
    r = Receiver(a.issuer, a.audience)
    server = r.serve(a.host, a.port)
    print(f"receiving SETs on http://{a.host}:{server.server_address[1]}/")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
