"""Interop: token exchange (RFC 8693) by a published client, google-auth's
STS client (`google.oauth2.sts.Client.exchange_token`), against the real
server: a gateway exchanges a frontend's token for one to the orders
service, with client_secret_basic, then a transaction token
(draft-ietf-oauth-transaction-tokens-10) through the same client.
"""

import json
import subprocess

import google.auth.transport.requests
import jwt
import pytest
from google.auth import exceptions
from google.oauth2 import sts, utils

from test_interop import BIN, Server

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TXN = "urn:ietf:params:oauth:token-type:txn_token"
GATEWAY = "https://gateway.interop"
ORDERS = "https://orders.interop"
DOMAIN = "https://shop.interop"


def create(server, *args):
    out = subprocess.run(
        [BIN, "client", "create", "--name", "interop", *args, "--json"],
        env=server.env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    v = json.loads(out)
    return v["client_id"], v["client_secret"]


@pytest.fixture
def server():
    s = Server(TOLLGATE_TXN_TRUST_DOMAIN=DOMAIN)
    yield s
    s.stop()


def frontend_token(server):
    fid, fsecret = create(server, "--scope", "orders:read pay", "--audience", GATEWAY)
    r = google.auth.transport.requests.requests.post(
        server.base + "/oauth/token", auth=(fid, fsecret), data={"grant_type": "client_credentials"}
    )
    assert r.status_code == 200, r.text
    return fid, r.json()["access_token"]


def sts_client(server, cid, secret):
    auth = utils.ClientAuthentication(utils.ClientAuthType.basic, cid, secret)
    return sts.Client(server.base + "/oauth/token", client_authentication=auth)


def test_google_auth_sts_client_exchanges_a_token(server):
    fid, t0 = frontend_token(server)
    gid, gsecret = create(
        server, "--scope", "orders:read pay", "--audience", ORDERS, "--exchange-audience", GATEWAY
    )
    request = google.auth.transport.requests.Request()
    response = sts_client(server, gid, gsecret).exchange_token(
        request,
        grant_type=EXCHANGE,
        subject_token=t0,
        subject_token_type=ACCESS,
        audience=ORDERS,
        scopes=["pay"],
        requested_token_type=ACCESS,
    )
    assert response["issued_token_type"] == ACCESS
    assert response["token_type"] == "Bearer"
    assert response["scope"] == "pay"
    t1 = response["access_token"]
    key = jwt.PyJWKClient(server.base + "/.well-known/jwks.json").get_signing_key_from_jwt(t1)
    claims = jwt.decode(t1, key.key, algorithms=["ES256"], audience=ORDERS, issuer="https://tollgate.interop")
    assert claims["sub"] == fid
    assert claims["client_id"] == gid
    assert claims["act"] == {"sub": gid}


def test_google_auth_sts_client_sees_the_refusal(server):
    _, t0 = frontend_token(server)
    # A client without an exchange policy: unauthorized_client, raised as an OAuthError.
    cid, secret = create(server, "--scope", "pay", "--audience", ORDERS)
    request = google.auth.transport.requests.Request()
    with pytest.raises(exceptions.OAuthError) as e:
        sts_client(server, cid, secret).exchange_token(
            request, grant_type=EXCHANGE, subject_token=t0, subject_token_type=ACCESS
        )
    assert "unauthorized_client" in str(e.value)


def test_google_auth_sts_client_gets_a_transaction_token(server):
    fid, t0 = frontend_token(server)
    gid, gsecret = create(
        server, "--scope", "pay", "--audience", ORDERS,
        "--exchange-audience", GATEWAY, "--txn-tokens", "true",
    )
    request = google.auth.transport.requests.Request()
    response = sts_client(server, gid, gsecret).exchange_token(
        request,
        grant_type=EXCHANGE,
        subject_token=t0,
        subject_token_type=ACCESS,
        audience=DOMAIN,
        requested_token_type=TXN,
    )
    assert response["token_type"] == "N_A"
    assert response["issued_token_type"] == TXN
    txn = response["access_token"]
    assert jwt.get_unverified_header(txn)["typ"] == "txntoken+jwt"
    key = jwt.PyJWKClient(server.base + "/.well-known/jwks.json").get_signing_key_from_jwt(txn)
    claims = jwt.decode(txn, key.key, algorithms=["ES256"], audience=DOMAIN)
    assert claims["sub"] == fid
    assert claims["req_wl"] == gid
    assert claims["rctx"]["req_ip"] == "127.0.0.1"
