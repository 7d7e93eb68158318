"""The workload-identity presets: Entra ID's environment, a Kubernetes projected token."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import requests_mock

from reqcc import ClientAssertionError, ClientCredentialsManager, ConfigurationError
from reqcc.client_assertion import AssertionPath
from reqcc.workload import DEFAULT_ENTRA_AUTHORITY, entra_workload_identity, kubernetes_service_account

from .conftest import FakeClock, TokenIssuer, token_session_for
from .platform_tokens import ENTRA_AUDIENCE, Platform

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "a1b2c3d4-0000-1111-2222-333344445555"
ENV = {
    "AZURE_CLIENT_ID": APP,
    "AZURE_TENANT_ID": TENANT,
    "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token",
}


def test_entra_reads_the_webhooks_variables() -> None:
    assert entra_workload_identity(environ=ENV) == {
        "token_url": f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token",
        "client_id": APP,
        "client_assertion_file": ENV["AZURE_FEDERATED_TOKEN_FILE"],
    }
    assert DEFAULT_ENTRA_AUTHORITY == "https://login.microsoftonline.com/"


@pytest.mark.parametrize("host", ["https://login.microsoftonline.us/", "https://login.microsoftonline.us"])
def test_entra_authority_host_names_another_cloud(host: str) -> None:
    keywords = entra_workload_identity(environ={**ENV, "AZURE_AUTHORITY_HOST": host})
    assert keywords["token_url"] == f"https://login.microsoftonline.us/{TENANT}/oauth2/v2.0/token"


@pytest.mark.parametrize(
    "host",
    [
        "login.microsoftonline.us",  # azure-identity's AzureAuthorityHosts.AZURE_GOVERNMENT
        "login.microsoftonline.us/",
        " login.microsoftonline.us \n",
        " https://login.microsoftonline.us// ",
    ],
)
def test_entra_authority_host_as_azure_identity_spells_it_makes_a_session(host: str) -> None:
    from reqcc import ClientCredentialsSession

    keywords = entra_workload_identity(environ={**ENV, "AZURE_AUTHORITY_HOST": host})
    assert keywords["token_url"] == f"https://login.microsoftonline.us/{TENANT}/oauth2/v2.0/token"
    with ClientCredentialsSession(**keywords, scopes=["api://orders/.default"]) as session:
        assert session.manager.token_url == keywords["token_url"]


def test_entra_whitespace_around_the_variables_is_not_part_of_them() -> None:
    env = {name: f"  {value}\n" for name, value in ENV.items()}
    assert entra_workload_identity(environ=env) == entra_workload_identity(environ=ENV)


def test_entra_keywords_win_over_the_environment(tmp_path: Path) -> None:
    keywords = entra_workload_identity(
        environ=ENV,
        client_id="other",
        tenant_id="contoso.onmicrosoft.com",
        token_file=tmp_path / "t",
        authority_host="https://login.partner.microsoftonline.cn/",
    )
    assert keywords == {
        "token_url": "https://login.partner.microsoftonline.cn/contoso.onmicrosoft.com/oauth2/v2.0/token",
        "client_id": "other",
        "client_assertion_file": tmp_path / "t",
    }


@pytest.mark.parametrize("missing", ["AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"])
def test_entra_names_the_missing_variable(missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(ConfigurationError, match=missing):
        entra_workload_identity(environ=env)
    with pytest.raises(ConfigurationError, match=missing):
        entra_workload_identity(environ={**env, missing: "  "})


@pytest.mark.parametrize("tenant", ["a/b", "../x", "x?y", "", "-x"])
def test_entra_refuses_a_tenant_that_is_not_one_segment(tenant: str) -> None:
    with pytest.raises(ConfigurationError):
        entra_workload_identity(environ={**ENV, "AZURE_TENANT_ID": tenant})


def test_entra_defaults_to_os_environ_and_only_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    before = dict(os.environ)
    assert entra_workload_identity()["client_id"] == APP
    assert dict(os.environ) == before


def test_entra_end_to_end_sends_the_federated_token(tmp_path: Path) -> None:
    clock = FakeClock()
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(Platform().mint(now=clock(), audience=ENTRA_AUDIENCE))
    issuer = TokenIssuer()
    adapter = requests_mock.Adapter()
    keywords = entra_workload_identity(environ={**ENV, "AZURE_FEDERATED_TOKEN_FILE": str(token_file)})
    adapter.register_uri("POST", keywords["token_url"], text=issuer)
    manager = ClientCredentialsManager(
        **keywords, scopes=["api://orders/.default"], token_session=token_session_for(adapter), clock=clock
    )
    manager.fetch_token()
    form = issuer.form()
    assert form["client_id"] == [APP]
    assert form["client_assertion"] == [token_file.read_text()]
    assert form["scope"] == ["api://orders/.default"]


# -- Kubernetes ----------------------------------------------------------------------------


def test_kubernetes_returns_the_path_and_the_endpoint(tmp_path: Path) -> None:
    assert kubernetes_service_account("/t", client_id="orders", token_url="https://idp.test/token") == {
        "token_url": "https://idp.test/token",
        "client_id": "orders",
        "client_assertion_file": "/t",
    }
    keywords = kubernetes_service_account("/t", client_id="orders", issuer="https://idp.test", audience="idp")
    assert keywords["issuer"] == "https://idp.test" and "token_url" not in keywords
    assert isinstance(keywords["client_assertion_file"], AssertionPath)
    assert os.fspath(keywords["client_assertion_file"]) == "/t"


@pytest.mark.parametrize("endpoint", [{}, {"token_url": "https://a.test/t", "issuer": "https://a.test"}])
def test_kubernetes_needs_one_endpoint(endpoint: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="exactly one"):
        kubernetes_service_account("/t", client_id="orders", **endpoint)


@pytest.mark.parametrize(
    ("aud", "ok"),
    [
        ("https://idp.test", True),
        (["x", "https://idp.test"], True),
        ("https://kubernetes.default.svc", False),
        (None, False),
    ],
)
def test_kubernetes_audience_is_checked_locally(tmp_path: Path, aud: Any, ok: bool) -> None:
    clock = FakeClock()
    path = tmp_path / "token"
    path.write_text(Platform().mint(now=clock(), audience=aud))
    issuer = TokenIssuer()
    adapter = requests_mock.Adapter()
    adapter.register_uri("POST", "https://idp.test/token", text=issuer)
    manager = ClientCredentialsManager(
        **kubernetes_service_account(
            path, client_id="orders", token_url="https://idp.test/token", audience="https://idp.test"
        ),
        token_session=token_session_for(adapter),
        clock=clock,
    )
    if ok:
        manager.fetch_token()
        assert issuer.count == 1
    else:
        with pytest.raises(ClientAssertionError, match=r"serviceAccountToken\.audience") as caught:
            manager.fetch_token()
        assert str(path) in str(caught.value) and issuer.count == 0


def test_an_assertion_path_needs_a_real_audience() -> None:
    with pytest.raises(ConfigurationError):
        AssertionPath("/t", audience="")
