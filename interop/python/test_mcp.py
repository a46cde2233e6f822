"""Interop: the official MCP Python SDK (`mcp` on PyPI) against the real server.

The example MCP server (examples/mcp/server.py: the SDK's `MCPServer`, its own
bearer middleware and RFC 9728 protected-resource metadata naming Tollgate)
verifies Tollgate's JWTs against the JWKS; the SDK's `ClientCredentialsOAuthProvider` discovers
Tollgate from the MCP server's 401, reads Tollgate's RFC 8414 metadata (which
the SDK accepts only with an `authorization_endpoint`), gets a token for the
MCP server's URL as `resource` (RFC 8707) and calls a tool with it.

Run from the repository root after `cargo build`:
    python -m pytest -q interop/python
"""

import asyncio
import json
import os
import sys
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

from test_interop import BIN, ROOT, Server

sys.path.insert(0, os.path.join(ROOT, "examples", "mcp"))
import server as example  # noqa: E402  (examples/mcp/server.py)


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


def McpServer(issuer):
    """The example MCP server (examples/mcp/server.py) on 127.0.0.1:0."""
    return example.Running(issuer)


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


def test_the_mcp_sdk_identity_assertion_provider_gets_a_token_for_the_user(tollgate, tmp_path):
    """SEP-990 / ID-JAG: the SDK's IdentityAssertionOAuthProvider presents an
    enterprise IdP's ID-JAG (signed here by a key Tollgate trusts for
    ID-JAGs) with the client's secret; the tool sees a token for the user."""
    import uuid

    from cryptography.hazmat.primitives.asymmetric import ec
    from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider

    idp = "https://idp.interop"
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="idp-1", alg="ES256", use="sig")
    jwks_file = tmp_path / "idp.jwks"
    jwks_file.write_text(json.dumps({"keys": [jwk]}))
    subprocess.run(
        [BIN, "federation", "issuer", "add", "--issuer", idp, "--jwks-file", str(jwks_file), "--id-jag"],
        env=tollgate.env, check=True, capture_output=True, text=True,
    )
    mcp = McpServer(tollgate.base)
    try:
        created = json.loads(
            subprocess.run(
                [BIN, "client", "create", "--name", "enterprise-agent", "--scope", "tools:call",
                 "--audience", mcp.url, "--json"],
                env=tollgate.env, check=True, capture_output=True, text=True,
            ).stdout
        )
        asked = []

        async def id_jag(audience, resource):
            asked.append((audience, resource))
            now = int(time.time())
            return jwt.encode(
                {"iss": idp, "sub": "alice@example.com", "aud": audience, "client_id": created["client_id"],
                 "resource": resource, "scope": "tools:call", "jti": str(uuid.uuid4()),
                 "iat": now, "exp": now + 120},
                key, algorithm="ES256", headers={"typ": "oauth-id-jag+jwt", "kid": "idp-1"},
            )

        provider = IdentityAssertionOAuthProvider(
            server_url=mcp.url,
            storage=MemoryStorage(),
            client_id=created["client_id"],
            client_secret=created["client_secret"],
            issuer=tollgate.base,
            assertion_provider=id_jag,
            scope="tools:call",
        )

        async def call():
            async with httpx2.AsyncClient(auth=provider, timeout=10) as http:
                async with streamable_http_client(mcp.url, http_client=http) as (read, write, *_):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        tools = await session.list_tools()
                        return tools, await session.call_tool("add", {"a": 20, "b": 22})

        tools, result = asyncio.run(call())
        assert [t.name for t in tools.tools] == ["add"]
        assert not result.is_error, result
        assert result.structured_content == {"result": 42}, result
        assert asked == [(tollgate.base, mcp.url)]
        claims = mcp.verifier.seen[-1]
        assert claims["sub"] == "alice@example.com", "a token for the user"
        assert claims["client_id"] == created["client_id"]
        assert claims["aud"] == mcp.url
        assert "act" not in claims
        meta = httpx2.get(f"{tollgate.base}/.well-known/oauth-authorization-server").json()
        assert "urn:ietf:params:oauth:grant-profile:id-jag" in meta["authorization_grant_profiles_supported"]
    finally:
        mcp.stop()


def _session_call(provider, url):
    async def call():
        async with httpx2.AsyncClient(auth=provider, timeout=10) as http:
            async with streamable_http_client(url, http_client=http) as (read, write, *_):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools = await session.list_tools()
                    return tools, await session.call_tool("add", {"a": 1, "b": 2})

    return asyncio.run(call())


def test_the_mcp_sdk_private_key_jwt_provider_calls_a_tool(tollgate, tmp_path):
    """private_key_jwt (RFC 7523 §2.2) through the SDK's PrivateKeyJWTOAuthProvider
    and its SignedJWTParameters: no secret at all."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from mcp.client.auth.extensions.client_credentials import PrivateKeyJWTOAuthProvider, SignedJWTParameters

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="agent-1", alg="ES256", use="sig")
    jwks_file = tmp_path / "agent.jwks"
    jwks_file.write_text(json.dumps({"keys": [jwk]}))
    mcp = McpServer(tollgate.base)
    try:
        created = json.loads(
            subprocess.run(
                [BIN, "client", "create", "--name", "keyed-agent", "--scope", "tools:call",
                 "--audience", mcp.url, "--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file), "--json"],
                env=tollgate.env, check=True, capture_output=True, text=True,
            ).stdout
        )
        assert "client_secret" not in created
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        params = SignedJWTParameters(
            issuer=created["client_id"], subject=created["client_id"], signing_key=pem, signing_algorithm="ES256"
        )
        provider = PrivateKeyJWTOAuthProvider(
            server_url=mcp.url,
            storage=MemoryStorage(),
            client_id=created["client_id"],
            assertion_provider=params.create_assertion_provider(),
            scope="tools:call",
            issuer=tollgate.base,
        )
        tools, result = _session_call(provider, mcp.url)
        assert [t.name for t in tools.tools] == ["add"]
        assert result.structured_content == {"result": 3}, result
        assert mcp.verifier.seen[-1]["client_id"] == created["client_id"]
    finally:
        mcp.stop()


def test_the_mcp_server_refuses_a_token_for_another_audience(tollgate):
    mcp = McpServer(tollgate.base)
    try:
        other = json.loads(
            subprocess.run(
                [BIN, "client", "create", "--name", "elsewhere", "--scope", "tools:call",
                 "--audience", "https://another-server.example/mcp", "--json"],
                env=tollgate.env, check=True, capture_output=True, text=True,
            ).stdout
        )
        token = httpx2.post(
            f"{tollgate.base}/oauth/token",
            auth=(other["client_id"], other["client_secret"]),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        r = httpx2.post(
            mcp.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        assert r.status_code == 401, r.text
        assert "invalid_token" in r.headers.get("www-authenticate", ""), r.headers
        assert mcp.verifier.seen == []
        # RFC 9728: the server names Tollgate as its authorization server.
        meta = httpx2.get(mcp.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")).json()
        assert meta["authorization_servers"] in ([tollgate.base], [tollgate.base + "/"]), meta
    finally:
        mcp.stop()
