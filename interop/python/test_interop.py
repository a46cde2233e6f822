"""Interop: published Python OAuth2 and JWT libraries against the real server.

Run from the repository root after `cargo build` (or `cargo test`):
    python -m pytest -q interop/python
TOLLGATE_BIN overrides the binary (default: target/debug/tollgate).
"""

import json
import os
import subprocess
import tempfile

import jwt
import pytest
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session

# The server under test listens on plain HTTP on loopback; oauthlib refuses
# that unless told it is a test.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TOLLGATE_BIN", os.path.join(ROOT, "target", "debug", "tollgate"))
ISSUER = "https://tollgate.interop"
AUDIENCE = "https://api.interop"


class Server:
    """The real binary on 127.0.0.1:0 in a temporary directory."""

    def __init__(self, alg="ES256", **extra):
        self.dir = tempfile.TemporaryDirectory()
        self.env = dict(os.environ)
        self.env.update(
            TOLLGATE_BIND="127.0.0.1:0",
            TOLLGATE_DB=os.path.join(self.dir.name, "tollgate.db"),
            TOLLGATE_KEYS_DIR=os.path.join(self.dir.name, "keys"),
            TOLLGATE_ISSUER=ISSUER,
            TOLLGATE_SIGNING_ALG=alg,
            RUST_LOG="warn",
        )
        self.env.update(extra)
        self.proc = subprocess.Popen(
            [BIN, "serve", "--exit-on-eof"],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        assert line.startswith("tollgate listening on "), line
        self.base = line[len("tollgate listening on "):]

    def client(self, scope="read write"):
        out = subprocess.run(
            [BIN, "client", "create", "--name", "interop", "--scope", scope, "--audience", AUDIENCE, "--json"],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        v = json.loads(out)
        return v["client_id"], v["client_secret"]

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.dir.cleanup()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_fetches_a_token(server, method):
    cid, secret = server.client()
    session = AuthlibSession(cid, secret, token_endpoint_auth_method=method, scope="read")
    token = session.fetch_token(server.base + "/oauth/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read"
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == cid
    assert claims["aud"] == AUDIENCE


def test_requests_oauthlib_backend_application_client(server):
    cid, secret = server.client()
    session = OAuth2Session(client=BackendApplicationClient(client_id=cid))
    token = session.fetch_token(token_url=server.base + "/oauth/token", client_id=cid, client_secret=secret)
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert jwt.decode(token["access_token"], options={"verify_signature": False})["sub"] == cid


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "PS256"])
def test_pyjwt_verifies_against_the_served_jwks(alg):
    s = Server(alg)
    try:
        cid, secret = s.client()
        session = OAuth2Session(client=BackendApplicationClient(client_id=cid))
        token = session.fetch_token(token_url=s.base + "/oauth/token", client_id=cid, client_secret=secret)["access_token"]
        assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
        jwks = jwt.PyJWKClient(s.base + "/.well-known/jwks.json")
        key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER)
        assert claims["client_id"] == cid
        with pytest.raises(jwt.InvalidSignatureError):
            head, body, sig = token.split(".")
            forged = head + "." + body + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
            jwt.decode(forged, key.key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER)
    finally:
        s.stop()


def test_authlib_authenticates_with_private_key_jwt(server):
    """RFC 7523 client authentication by authlib's PrivateKeyJWT: the client
    holds an EC key; Tollgate holds only its public JWK."""
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from joserfc.jwk import ECKey

    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private = ECKey.import_key(private_pem)
    public = private.as_dict(private=False)
    jwks_file = os.path.join(server.dir.name, "client.jwks.json")
    with open(jwks_file, "w") as f:
        json.dump({"keys": [public]}, f)
    out = subprocess.run(
        [BIN, "client", "create", "--name", "keyed", "--scope", "read", "--audience", AUDIENCE,
         "--auth-method", "private_key_jwt", "--jwks-file", jwks_file, "--json"],
        env=server.env, check=True, capture_output=True, text=True,
    ).stdout
    created = json.loads(out)
    assert "client_secret" not in created
    cid = created["client_id"]

    # The assertion's aud is the token endpoint under the issuer identifier.
    auth = PrivateKeyJWT(ISSUER + "/oauth/token", alg="ES256")
    session = AuthlibSession(cid, private, token_endpoint_auth_method=auth, scope="read")
    token = session.fetch_token(server.base + "/oauth/token", grant_type="client_credentials")
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == cid and claims["scope"] == "read"
    # Each request carries a fresh jti; a second fetch works too.
    assert session.fetch_token(server.base + "/oauth/token", grant_type="client_credentials")["access_token"]


def test_authlib_exchanges_a_workload_token_through_the_jwt_bearer_grant(server):
    """RFC 7523 §2.1 through authlib's AssertionSession: a CI workload signs
    its own token (as a platform would); Tollgate trusts the issuer's public
    key and maps the identity to a client by a federation rule."""
    from authlib.integrations.requests_client import AssertionSession
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from joserfc.jwk import ECKey

    key = ec.generate_private_key(ec.SECP256R1())
    private = ECKey.import_key(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public = private.as_dict(private=False)
    public["kid"] = "ci-1"
    jwks_file = os.path.join(server.dir.name, "issuer.jwks.json")
    with open(jwks_file, "w") as f:
        json.dump({"keys": [public]}, f)
    ci = "https://ci.interop"
    cid, _ = server.client(scope="read deploy")

    def cli(*args):
        return json.loads(subprocess.run([BIN, *args, "--json"], env=server.env, check=True,
                                         capture_output=True, text=True).stdout)

    cli("federation", "issuer", "add", "--issuer", ci, "--jwks-file", jwks_file)
    rule = cli("federation", "rule", "add", "--issuer", ci, "--audience", "tollgate",
               "--subject", "repo:acme/app:*", "--claim", "repository_id=123456",
               "--client-id", cid, "--scope", "deploy")[0]

    def session(repository_id):
        return AssertionSession(
            token_endpoint=server.base + "/oauth/token",
            issuer=ci,
            subject="repo:acme/app:ref:refs/heads/main",
            audience="tollgate",
            grant_type=AssertionSession.JWT_BEARER_GRANT_TYPE,
            claims={"repository_id": repository_id},
            key=private,
            header={"alg": "ES256", "kid": "ci-1"},
        )

    token = session("123456").refresh_token()
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == cid and claims["scope"] == "deploy"
    assert token["token_type"] == "Bearer" and token["expires_in"] <= 3600
    # Another repository of the same name: no rule matches.
    from authlib.oauth2 import OAuth2Error
    with pytest.raises(OAuth2Error) as refused:
        session("999").refresh_token()
    assert refused.value.error == "invalid_grant"
    assert rule["id"].startswith("fr_")


def test_pyjwt_dpop_proofs_bind_the_token_and_open_the_admin_api(server):
    """RFC 9449 with proofs made by PyJWT (the issuer identifier names the
    URLs, as behind a proxy): the token carries cnf.jkt, the thumbprint
    joserfc computes for the key; it works at the admin API as
    `Authorization: DPoP` with a proof carrying ath, and not as Bearer."""
    import base64
    import hashlib
    import time
    import uuid

    import requests
    from cryptography.hazmat.primitives.asymmetric import ec
    from joserfc.jwk import ECKey

    key = ec.generate_private_key(ec.SECP256R1())
    public = ECKey.import_key(key.public_key()).as_dict(private=False)

    def proof(method, url, token=None):
        claims = {"htm": method, "htu": url, "iat": int(time.time()), "jti": str(uuid.uuid4())}
        if token:
            claims["ath"] = base64.urlsafe_b64encode(
                hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
        return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": public})

    created = json.loads(subprocess.run(
        [BIN, "client", "create", "--name", "dpop-admin", "--scope", "tollgate:admin", "--json"],
        env=server.env, check=True, capture_output=True, text=True).stdout)
    cid, secret = created["client_id"], created["client_secret"]
    r = requests.post(server.base + "/oauth/token", auth=(cid, secret),
                      data={"grant_type": "client_credentials"},
                      headers={"DPoP": proof("POST", ISSUER + "/oauth/token")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "DPoP"
    token = body["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["cnf"]["jkt"] == ECKey.import_key(public).thumbprint()

    admin = server.base + "/admin/clients"
    ok = requests.get(admin, headers={"Authorization": "DPoP " + token,
                                      "DPoP": proof("GET", ISSUER + "/admin/clients", token)})
    assert ok.status_code == 200, ok.text
    as_bearer = requests.get(admin, headers={"Authorization": "Bearer " + token})
    assert as_bearer.status_code == 401
    assert as_bearer.headers["WWW-Authenticate"].startswith("DPoP ")


def _pki(tmp):
    """A CA, a server certificate for 127.0.0.1 and a client certificate
    with a SPIFFE URI SAN, made here with cryptography; the file paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(path, data):
        with open(path, "wb") as f:
            f.write(data)
        return path

    def key_pem(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("interop CA")).issuer_name(name("interop CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn, san, usage):
        k = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                .public_key(k.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([san]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        return cert, k

    server, server_key = leaf("127.0.0.1", x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                              ExtendedKeyUsageOID.SERVER_AUTH)
    client, client_key = leaf("payments", x509.UniformResourceIdentifier("spiffe://example.org/payments"),
                              ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)
    return {
        "ca": write(os.path.join(tmp, "ca.pem"), pem(ca)),
        "server_cert": write(os.path.join(tmp, "server.pem"), pem(server)),
        "server_key": write(os.path.join(tmp, "server.key"), key_pem(server_key)),
        "client_cert": write(os.path.join(tmp, "client.pem"), pem(client)),
        "client_key": write(os.path.join(tmp, "client.key"), key_pem(client_key)),
    }


def test_requests_gets_a_certificate_bound_token_with_tls_client_auth():
    """RFC 8705 through `requests` with a client certificate: Tollgate serves
    HTTPS itself, authenticates the client by the certificate's URI SAN
    (tls_client_auth) and binds the token to it (cnf.x5t#S256)."""
    import base64
    import hashlib

    import requests
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    tmp = tempfile.TemporaryDirectory()
    files = _pki(tmp.name)
    saved = dict(os.environ)
    os.environ.update(TOLLGATE_TLS_CERT=files["server_cert"], TOLLGATE_TLS_KEY=files["server_key"],
                      TOLLGATE_TLS_CLIENT_CA=files["ca"])
    try:
        s = Server()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        assert s.base.startswith("https://")
        created = json.loads(subprocess.run(
            [BIN, "client", "create", "--name", "mtls", "--scope", "read",
             "--auth-method", "tls_client_auth", "--tls-san-uri", "spiffe://example.org/payments",
             "--tls-bound", "true", "--json"],
            env=s.env, check=True, capture_output=True, text=True).stdout)
        r = requests.post(s.base + "/oauth/token", verify=files["ca"],
                          cert=(files["client_cert"], files["client_key"]),
                          data={"grant_type": "client_credentials", "client_id": created["client_id"]})
        assert r.status_code == 200, r.text
        claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
        with open(files["client_cert"], "rb") as f:
            der = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
        want = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        assert claims["cnf"]["x5t#S256"] == want
        # Without the certificate: no authentication.
        r = requests.post(s.base + "/oauth/token", verify=files["ca"],
                          data={"grant_type": "client_credentials", "client_id": created["client_id"]})
        assert r.status_code == 401
    finally:
        s.stop()
        tmp.cleanup()


def test_a_signed_introspection_answer_verifies_with_joserfc(server):
    """RFC 9701: `Accept: application/token-introspection+jwt` gets the answer
    as a JWT signed with Tollgate's key, checked here with joserfc (a JOSE
    library Tollgate does not use) against the JWKS."""
    import requests
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import KeySet

    cid, secret = server.client()
    token = requests.post(server.base + "/oauth/token", auth=(cid, secret),
                          data={"grant_type": "client_credentials"}).json()["access_token"]
    out = subprocess.run(
        [BIN, "client", "create", "--name", "rs", "--scope", "tollgate:introspect", "--json"],
        env=server.env, check=True, capture_output=True, text=True,
    ).stdout
    rs = json.loads(out)
    keys = KeySet.import_key_set(requests.get(server.base + "/.well-known/jwks.json").json())
    for presented, active in [(token, True), ("not-a-token", False)]:
        r = requests.post(
            server.base + "/oauth/introspect",
            auth=(rs["client_id"], rs["client_secret"]),
            data={"token": presented},
            headers={"Accept": "application/token-introspection+jwt"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/token-introspection+jwt")
        decoded = jose_jwt.decode(r.text, keys, algorithms=["ES256"])
        assert decoded.header["typ"] == "token-introspection+jwt"
        assert decoded.claims["iss"] == ISSUER
        assert decoded.claims["aud"] == rs["client_id"]
        assert isinstance(decoded.claims["iat"], int)
        assert decoded.claims["token_introspection"]["active"] is active
        if active:
            assert decoded.claims["token_introspection"]["client_id"] == cid
        else:
            assert decoded.claims["token_introspection"] == {"active": False}
    meta = requests.get(server.base + "/.well-known/oauth-authorization-server").json()
    assert meta["introspection_signing_alg_values_supported"] == ["ES256"]


def _softhsm_env(tmp):
    """A fresh softhsm2 token in `tmp` and the settings that keep Tollgate's
    signing keys in it; skips (or fails under TOLLGATE_TEST_PKCS11=required)
    without softhsm2."""
    import shutil

    module = next((m for m in ("/usr/lib/softhsm/libsofthsm2.so",
                               "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
                   if os.path.exists(m)), None)
    if module is None or shutil.which("softhsm2-util") is None:
        if os.environ.get("TOLLGATE_TEST_PKCS11") == "required":
            pytest.fail("softhsm2 is required (TOLLGATE_TEST_PKCS11=required)")
        pytest.skip("softhsm2 is not installed")
    tokens = os.path.join(tmp, "tokens")
    os.makedirs(tokens)
    conf = os.path.join(tmp, "softhsm2.conf")
    with open(conf, "w") as f:
        f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    pin = os.path.join(tmp, "pin")
    with open(pin, "w") as f:
        f.write("1234\n")
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "interop",
                    "--pin", "1234", "--so-pin", "5678"],
                   env=dict(os.environ, SOFTHSM2_CONF=conf), check=True, capture_output=True)
    return dict(SOFTHSM2_CONF=conf, TOLLGATE_PKCS11_MODULE=module,
                TOLLGATE_PKCS11_TOKEN_LABEL="interop", TOLLGATE_PKCS11_PIN_FILE=pin)


@pytest.mark.parametrize("where", ["file", "pkcs11"])
def test_a_ps256_token_verifies_with_joserfc_and_pyjwt(where, tmp_path):
    """PS256 (RSASSA-PSS), from a key file and from a key in a PKCS#11
    token (softhsm2): two JOSE libraries Tollgate does not use, joserfc and
    PyJWT, check the token against the JWKS, which says PS256."""
    import requests
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import KeySet

    extra = _softhsm_env(str(tmp_path)) if where == "pkcs11" else {}
    s = Server("PS256", **extra)
    try:
        cid, secret = s.client()
        token = requests.post(s.base + "/oauth/token", auth=(cid, secret),
                              data={"grant_type": "client_credentials"}).json()["access_token"]
        assert jwt.get_unverified_header(token)["alg"] == "PS256"
        jwks = requests.get(s.base + "/.well-known/jwks.json").json()
        assert [k["alg"] for k in jwks["keys"]] == ["PS256"]
        decoded = jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["PS256"])
        assert decoded.claims["client_id"] == cid
        key = jwt.PyJWKClient(s.base + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["PS256"], audience=AUDIENCE, issuer=ISSUER)
        assert claims["client_id"] == cid
        meta = requests.get(s.base + "/.well-known/oauth-authorization-server").json()
        assert meta["access_token_signing_alg_values_supported"] == ["PS256"]
        with pytest.raises(Exception):
            jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"])
        if where == "pkcs11":
            keys = json.loads(subprocess.run([BIN, "signing-key", "list", "--json"], env=s.env,
                                             check=True, capture_output=True, text=True).stdout)
            assert [k["location"] for k in keys] == ["pkcs11"]
            assert not os.path.exists(s.env["TOLLGATE_KEYS_DIR"]) or not [
                f for f in os.listdir(s.env["TOLLGATE_KEYS_DIR"]) if f.endswith(".pem")]
    finally:
        s.stop()
