"""An MCP server protected by Tollgate, built with the official MCP Python SDK
(`mcp` on PyPI).

It serves RFC 9728 protected-resource metadata naming Tollgate as its
authorization server (the SDK's `AuthSettings`), and accepts only Tollgate
access tokens whose `aud` is its own URI, checked against Tollgate's JWKS
(signature with the key's own algorithm, `typ: at+jwt`, `iss`, `aud`,
`exp`); a token for any other audience gets 401. One tool, `add`.

    pip install mcp pyjwt[crypto] uvicorn
    python examples/mcp/server.py --issuer http://127.0.0.1:8080 --port 8000
    # then, in Tollgate: a client whose audience is http://127.0.0.1:8000/mcp
    tollgate client create --name agent --scope tools:call --audience http://127.0.0.1:8000/mcp

docs/agents.md walks through it; interop/python/test_mcp.py drives it with the
SDK's own clients (client secret, private_key_jwt, ID-JAG) in .ci/run.
"""

import argparse
import asyncio
import socket
import threading
import time

import jwt
import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

# The algorithms Tollgate signs with; each JWK pins its own.
ALGORITHMS = ["ES256", "EdDSA", "RS256", "PS256"]


class TollgateVerifier:
    """The resource server's check of a Tollgate access token
    (docs/resource-servers.md): the JWKS key named by `kid`, `typ: at+jwt`,
    the signature, `iss`, `aud` = this MCP server, `exp`."""

    def __init__(self, issuer, resource):
        self.issuer = issuer
        self.resource = resource
        self.jwks = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json", cache_keys=True)
        self.seen = []

    async def verify_token(self, token):
        try:
            if jwt.get_unverified_header(token).get("typ") != "at+jwt":
                return None
            key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name] if key.algorithm_name in ALGORITHMS else [],
                audience=self.resource,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "client_id"]},
            )
        except jwt.PyJWTError:
            return None
        self.seen.append(claims)
        return AccessToken(
            token=token,
            client_id=claims["client_id"],
            scopes=claims.get("scope", "").split(),
            expires_at=claims["exp"],
            resource=self.resource,
            subject=claims.get("sub"),
        )


def build(issuer, url, required_scopes=("tools:call",)):
    """The MCP server's ASGI app and its verifier, for `url` (its own URI)."""
    verifier = TollgateVerifier(issuer, url)
    app = MCPServer(
        "tollgate-example",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=issuer,
            resource_server_url=url,
            required_scopes=list(required_scopes),
            validate_token_resource=True,
        ),
    )

    @app.tool()
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        return a + b

    return app.streamable_http_app(), verifier


class Running:
    """The example on 127.0.0.1 (port 0 picks one), in a thread: for tests."""

    def __init__(self, issuer, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/mcp"
        app, self.verifier = build(issuer, self.url)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        for _ in range(250):
            if self.server.started:
                break
            time.sleep(0.02)
        assert self.server.started, "the MCP server did not start"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.sock.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", required=True, help="Tollgate's issuer identifier")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}/mcp"
    app, _ = build(args.issuer, url)
    print(f"MCP server at {url}, protected by {args.issuer}")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info")
