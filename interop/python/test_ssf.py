"""Shared Signals end to end with the example receiver
(examples/ssf_receiver.py): Tollgate pushes SETs for a revoked token and a
disabled client, the receiver verifies them with PyJWT against the JWKS, and
its deny-list refuses the tokens a resource server would otherwise accept
offline."""

import importlib.util
import os
import time

import jwt
import requests

from test_interop import ISSUER, ROOT, Server

REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
DISABLED = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"


def _example():
    spec = importlib.util.spec_from_file_location("ssf_receiver", os.path.join(ROOT, "examples", "ssf_receiver.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _token(s, cid, secret, audience=None):
    data = {"grant_type": "client_credentials"}
    if audience:
        data["audience"] = audience
    r = requests.post(s.base + "/oauth/token", auth=(cid, secret), data=data)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _wait(check, seconds=3):
    end = time.time() + seconds
    while time.time() < end:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_the_example_receiver_denies_revoked_tokens_and_disabled_clients():
    ex = _example()
    s = Server(TOLLGATE_FETCH_ALLOW_LOCAL="true")
    try:
        rid, rsecret = s.client(scope="tollgate:ssf")
        receiver = ex.Receiver(ISSUER, rid, jwks_uri=s.base + "/.well-known/jwks.json")
        server = receiver.serve()
        url = f"http://127.0.0.1:{server.server_address[1]}/ssf"
        rtoken = _token(s, rid, rsecret, audience=ISSUER)
        r = requests.post(s.base + "/ssf/streams", headers={"Authorization": f"Bearer {rtoken}"}, json={
            "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": url},
            "events_requested": [REVOKED, DISABLED]})
        assert r.status_code == 201, r.text

        # A resource server verifying offline accepts both tokens...
        cid, secret = s.client()
        jwks = jwt.PyJWKClient(s.base + "/.well-known/jwks.json")
        revoked, other = _token(s, cid, secret), _token(s, cid, secret)
        def claims(t):
            return jwt.decode(t, jwks.get_signing_key_from_jwt(t).key, algorithms=["ES256"],
                              audience="https://api.interop", issuer=ISSUER)
        assert not receiver.deny.denied(claims(revoked))

        # ...until the revocation arrives as a SET: then only that one.
        assert requests.post(s.base + "/oauth/revoke", auth=(cid, secret), data={"token": revoked}).status_code == 200
        assert _wait(lambda: receiver.deny.denied(claims(revoked))), receiver.received
        assert not receiver.deny.denied(claims(other))
        assert receiver.received[0]["events"][REVOKED]["event_timestamp"] > 0

        # A disabled client: every token of it.
        admin_id, admin_secret = s.client(scope="tollgate:admin")
        admin = _token(s, admin_id, admin_secret, audience=ISSUER)
        r = requests.post(s.base + f"/admin/clients/{cid}/disable", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200, r.text
        assert _wait(lambda: receiver.deny.denied(claims(other)))
        # A SET seen twice counts once.
        assert not receiver.deny.apply(receiver.received[0])
        server.shutdown()
    finally:
        s.stop()
