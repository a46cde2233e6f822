"""Interop: the official MCP Python SDK (`mcp` on PyPI) against the real server.

An MCP server made with the SDK's `MCPServer` (its own bearer middleware and
RFC 9728 protected-resource metadata naming Tollgate) verifies Tollgate's
JWTs against the JWKS; the SDK's `ClientCredentialsOAuthProvider` discovers
Tollgate from the MCP server's 401, reads Tollgate's RFC 8414 metadata (which
the SDK accepts only with an `authorization_endpoint`), gets a token for the
MCP server's URL as `resource` (RFC 8707) and calls a tool with it.

Run from the repository root after `cargo build`:
    python -m pytest -q interop/python
"""

import asyncio
import json
import socket
import subprocess
import threading
import time

import httpx2
import jwt
import pytest
import uvicorn
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from test_interop import BIN, Server


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


class JwksVerifier:
    """A resource server's check of Tollgate's tokens (docs/resource-servers.md):
    signature against the JWKS, issuer, audience = this MCP server, expiry."""

    def __init__(self, issuer, resource):
        self.issuer = issuer
        self.resource = resource
        self.jwks = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json")
        self.seen = []

    async def verify_token(self, token):
        try:
            key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["ES256", "EdDSA", "RS256"],
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


class McpServer:
    """An MCP server on 127.0.0.1:0 (a socket bound before it starts), in a thread."""

    def __init__(self, issuer):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.verifier = JwksVerifier(issuer, self.url)
        app = MCPServer(
            "tollgate-interop",
            token_verifier=self.verifier,
            auth=AuthSettings(
                issuer_url=issuer,
                resource_server_url=self.url,
                required_scopes=["tools:call"],
                validate_token_resource=True,
            ),
        )

        @app.tool()
        def add(a: int, b: int) -> int:
            """Adds two numbers."""
            return a + b

        config = uvicorn.Config(app.streamable_http_app(), log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.02)
        assert self.server.started

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def tollgate():
    # No fixed issuer: the issuer is the address the server listens on, the
    # one the SDK reaches it at.
    s = Server(TOLLGATE_ISSUER="")
    yield s
    s.stop()


def test_the_metadata_has_an_authorization_endpoint_that_refuses(tollgate):
    meta = httpx2.get(f"{tollgate.base}/.well-known/oauth-authorization-server").json()
    assert meta["authorization_endpoint"] == f"{tollgate.base}/oauth/authorize"
    assert meta["response_types_supported"] == []
    r = httpx2.get(meta["authorization_endpoint"], params={"response_type": "code", "client_id": "x"})
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_response_type"


def test_the_mcp_sdk_client_credentials_provider_calls_a_tool(tollgate):
    mcp = McpServer(tollgate.base)
    try:
        created = json.loads(
            subprocess.run(
                [BIN, "client", "create", "--name", "mcp-agent", "--scope", "tools:call",
                 "--audience", mcp.url, "--json"],
                env=tollgate.env, check=True, capture_output=True, text=True,
            ).stdout
        )
        provider = ClientCredentialsOAuthProvider(
            server_url=mcp.url,
            storage=MemoryStorage(),
            client_id=created["client_id"],
            client_secret=created["client_secret"],
            scope="tools:call",
            issuer=tollgate.base,
        )

        async def call():
            async with httpx2.AsyncClient(auth=provider, timeout=10) as http:
                async with streamable_http_client(mcp.url, http_client=http) as (read, write, *_):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        return await session.call_tool("add", {"a": 2, "b": 3})

        result = asyncio.run(call())
        assert not result.is_error, result
        assert result.structured_content == {"result": 5}, result
        assert result.content[0].text == "5", result
        # The tool saw a Tollgate token for this MCP server, of this client.
        claims = mcp.verifier.seen[-1]
        assert claims["aud"] == mcp.url
        assert claims["client_id"] == created["client_id"]
        assert claims["scope"] == "tools:call"
    finally:
        mcp.stop()
