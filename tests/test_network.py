"""The connected host in a company network (issue 17), against real parts on 127.0.0.1.

One module-wide set of servers: a CA made here, an HTTPS upstream with a certificate from it that
refuses requests without the token (``/t/TOKEN/``), Basic credentials or a bearer token, a
second HTTPS upstream that wants a client certificate, and Debian's ``tinyproxy`` asking for
proxy credentials (its log shows the CONNECTs).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from helpers import cli
from netparts import BASIC, BEARER, PROXY_AUTH, SECRETS, TINYPROXY, TOKEN, Proxy, Upstream, make_pki

from airgap.config import from_mapping
from airgap.errors import ConfigError, UpstreamError
from airgap.redact import MARKER
from airgap.testing.condapkg import PackageSpec, write_channel
from airgap.upstream.auth import Credential, CredentialStore, load_credentials
from airgap.upstream.fetch import Fetcher
from airgap.upstream.network import Bandwidth, bypass_proxy, network_from

pytestmark = pytest.mark.skipif(not os.access(TINYPROXY, os.X_OK), reason="Debian's tinyproxy is not installed")

NET_ENV = (
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "RATTLER_AUTH_FILE",
    "NETRC",
)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("net")
    pki = make_pki(d)
    root = d / "up"
    rd = write_channel(
        root / "chan", [PackageSpec("p", str(v), subdir="linux-64") for v in (1, 2)], subdirs=("linux-64",), formats=("conda",)
    )
    up = Upstream(root, pki)
    mtls = Upstream(root, pki, want_client_cert=True)
    proxy = Proxy(d, [up.port, mtls.port])
    yield {"pki": pki, "up": up, "mtls": mtls, "proxy": proxy, "repodata": rd}
    proxy.close()
    up.close()
    mtls.close()


@pytest.fixture(autouse=True)
def _no_network_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NET_ENV:
        monkeypatch.delenv(name, raising=False)


def config(tmp: Path, channel: str, **extra: Any) -> Path:
    cfg = tmp / "c.yaml"
    cfg.write_text(
        json.dumps(
            {
                "channels": [channel],
                "platforms": ["linux-64"],
                "mirror_dir": str(tmp / "cache"),
                "retries": 1,
                "log_dir": str(tmp / "logs"),
                **extra,
            }
        )
    )
    return cfg


def assert_no_secret(texts: list[str], paths: list[Path]) -> None:
    blobs = {str(p): p.read_bytes() for d in paths for p in ([d] if d.is_file() else d.rglob("*")) if p.is_file()}
    blobs.update(
        {
            k + " (unpacked)": zstandard.ZstdDecompressor().stream_reader(b).read()
            for k, b in list(blobs.items())
            if b[:4] == b"\x28\xb5\x2f\xfd"
        }
    )
    for secret in SECRETS:
        assert not [t for t in texts if secret in t], secret
        assert not [k for k, b in blobs.items() if secret.encode() in b], secret


# --- end to end ------------------------------------------------------------------------------------


def test_export_through_the_proxy_with_the_company_ca_and_a_token(
    net: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up, proxy = net["up"], net["proxy"]
    monkeypatch.setenv("HTTPS_PROXY", proxy.url())
    before = len(proxy.connects())
    channel = f"https://127.0.0.1:{up.port}/t/{TOKEN}/chan/"
    cfg = config(tmp_path, channel, ssl_verify=str(net["pki"]["ca"]))
    outputs = [cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar", "-v")]
    assert outputs[0].exit_code == 0, outputs[0].output
    assert len(proxy.connects()) > before and proxy.connects()[-1] == f"127.0.0.1:{up.port}"
    outputs += [
        cli("export", "-f", cfg, "--show-config"),
        cli("inspect", tmp_path / "m.tar"),
        cli("inspect", tmp_path / "m.tar", "--json"),
        cli("import", tmp_path / "m.tar", "--into", tmp_path / "dest", "--allow-unsigned", "-v"),
        cli("receipt", "--into", tmp_path / "dest", "--json"),
    ]
    assert all(r.exit_code == 0 for r in outputs), [r.output for r in outputs]
    assert "ssl_verify" in outputs[1].output and MARKER in outputs[1].output
    manifest = json.loads(outputs[3].stdout)
    assert manifest["channels"][0]["url"] == f"https://127.0.0.1:{up.port}/t/{MARKER}/chan/"
    assert_no_secret([r.output for r in outputs], [tmp_path / "logs", tmp_path / "dest", tmp_path / "m.tar", tmp_path / "cache"])


def test_proxy_servers_key_and_basic_credentials_in_the_url(net: dict[str, Any], tmp_path: Path) -> None:
    up, proxy = net["up"], net["proxy"]
    channel = f"https://{BASIC[0]}:{BASIC[1]}@127.0.0.1:{up.port}/chan/"
    cfg = config(tmp_path, channel, ssl_verify=str(net["pki"]["ca"]), proxy_servers={"https": proxy.url()}, max_bandwidth="50M")
    outputs = [cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar", "-v"), cli("export", "-f", cfg, "--show-config")]
    assert [r.exit_code for r in outputs] == [0, 0], outputs[0].output
    assert f"proxy_servers: {{https: 'http://{PROXY_AUTH[0]}:{MARKER}@127.0.0.1:{proxy.port}'}}" in outputs[1].output
    assert_no_secret([r.output for r in outputs], [tmp_path / "logs", tmp_path / "m.tar"])


def test_without_the_ca_the_error_is_one_line_naming_tls_and_ssl_verify(
    net: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", net["proxy"].url())
    r = cli("export", "-f", config(tmp_path, f"https://127.0.0.1:{net['up'].port}/t/{TOKEN}/chan/"), "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 1
    errors = [line for line in r.output.splitlines() if "error" in line]
    assert len(errors) == 1 and "TLS verification failed" in errors[0] and "ssl_verify" in errors[0], r.output
    assert_no_secret([r.output], [tmp_path / "logs"])


@pytest.mark.parametrize(
    ("channel", "status"),
    [("/chan/", "401: the channel needs credentials"), ("/t/TOK-wrong-99/chan/", "403: the channel refused the credentials")],
)
def test_refused_by_the_channel_is_one_line_naming_it_never_the_token(
    net: dict[str, Any], tmp_path: Path, channel: str, status: str
) -> None:
    url = f"https://127.0.0.1:{net['up'].port}{channel}"
    r = cli("export", "-f", config(tmp_path, url, ssl_verify=str(net["pki"]["ca"])), "--unsigned", tmp_path / "m.tar")
    assert r.exit_code == 1
    errors = [line for line in r.output.splitlines() if "error" in line]
    assert len(errors) == 1 and f"HTTP {status}" in errors[0] and "/chan/" in errors[0], r.output
    assert "TOK-wrong-99" not in r.output


def test_proxy_authentication_needed_and_proxy_refused(net: dict[str, Any], tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    url = f"https://127.0.0.1:{net['up'].port}/t/{TOKEN}/chan/"
    for proxy, expected in (
        (net["proxy"].url(with_auth=False), "proxy authentication needed (HTTP 407"),
        (f"http://{PROXY_AUTH[0]}:{PROXY_AUTH[1]}@127.0.0.1:{closed}", "cannot reach the proxy"),
        (net["proxy"].url(), "refused the connection (CONNECT answered 403"),
    ):
        if "CONNECT" in expected:  # a port tinyproxy may not CONNECT to (not a ConnectPort)
            url = f"https://127.0.0.1:{closed}/t/{TOKEN}/chan/"
        cfg = config(tmp_path, url, ssl_verify=str(net["pki"]["ca"]), proxy_servers={"https": proxy})
        r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar")
        assert r.exit_code == 1
        errors = [line for line in r.output.splitlines() if "error" in line]
        assert len(errors) == 1 and expected in errors[0], r.output
        assert_no_secret([r.output], [tmp_path / "logs"])


def test_ssl_verify_false_works_and_warns_on_every_run(net: dict[str, Any], tmp_path: Path) -> None:
    cfg = config(tmp_path, f"https://127.0.0.1:{net['up'].port}/t/{TOKEN}/chan/", ssl_verify=False)
    for _ in range(2):
        r = cli("export", "-f", cfg, "--unsigned", tmp_path / "m.tar", "-q")
        assert r.exit_code == 0, r.output
        assert "ssl_verify is false" in r.output


# --- the fetcher: credential sources, client certificates, redirects, NO_PROXY ---------------------


def fetcher_for(tmp: Path, env: dict[str, str], **cfg: Any) -> Fetcher:
    config_ = from_mapping({"channels": ["https://x/"], "mirror_dir": str(tmp / "c"), **cfg})
    return Fetcher(retries=1, timeout=5, network=network_from(config_, env))


@pytest.mark.parametrize(
    "entry", [{"BearerToken": BEARER}, {"BasicHTTP": {"username": BASIC[0], "password": BASIC[1]}}, {"CondaToken": TOKEN}]
)
def test_rattler_auth_file(net: dict[str, Any], tmp_path: Path, entry: dict[str, Any]) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"*.example.org": {"BearerToken": "nope"}, "127.0.0.1": entry}))
    url = f"https://127.0.0.1:{net['up'].port}/chan/linux-64/repodata.json"
    with fetcher_for(tmp_path, {"RATTLER_AUTH_FILE": str(auth), "HOME": str(tmp_path)}, ssl_verify=str(net["pki"]["ca"])) as f:
        assert json.loads(f.get_bytes(url, 1 << 20))["packages.conda"]
    with (
        fetcher_for(tmp_path, {"HOME": str(tmp_path)}, ssl_verify=str(net["pki"]["ca"])) as f,
        pytest.raises(UpstreamError, match="HTTP 401: the channel needs credentials"),
    ):
        f.get_bytes(url, 1 << 20)
    kind = next(iter(entry))  # the same kind of entry with a wrong secret: refused, and said so
    auth.write_text(json.dumps({"127.0.0.1": {kind: {"username": "x", "password": "y"} if kind == "BasicHTTP" else "x"}}))
    env = {"RATTLER_AUTH_FILE": str(auth), "HOME": str(tmp_path)}
    with (
        fetcher_for(tmp_path, env, ssl_verify=str(net["pki"]["ca"])) as f,
        pytest.raises(UpstreamError, match="HTTP 40[13]: the channel refused the credentials"),
    ):
        f.get_bytes(url, 1 << 20)


def test_netrc(net: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / ".netrc").write_text(f"machine 127.0.0.1 login {BASIC[0]} password {BASIC[1]}\n")
    url = f"https://127.0.0.1:{net['up'].port}/chan/linux-64/repodata.json"
    with fetcher_for(tmp_path, {"HOME": str(tmp_path)}, ssl_verify=str(net["pki"]["ca"])) as f:
        assert f.get_bytes(url, 1 << 20)
    (tmp_path / ".netrc").write_text(f"machine 127.0.0.1 login {BASIC[0]} password wrong\n")
    with (
        fetcher_for(tmp_path, {"HOME": str(tmp_path)}, ssl_verify=str(net["pki"]["ca"])) as f,
        pytest.raises(UpstreamError, match="refused the credentials"),
    ):
        f.get_bytes(url, 1 << 20)


def test_stored_credentials_are_not_sent_to_another_host_after_a_redirect(net: dict[str, Any], tmp_path: Path) -> None:
    up = net["up"]
    up.redirects["/chan/hop"] = f"https://localhost:{up.port}/chan/linux-64/repodata.json"
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"127.0.0.1": {"BearerToken": BEARER}}))
    env = {"RATTLER_AUTH_FILE": str(auth), "HOME": str(tmp_path)}
    with fetcher_for(tmp_path, env, ssl_verify=str(net["pki"]["ca"])) as f, pytest.raises(UpstreamError, match="HTTP 401"):
        f.get_bytes(f"https://127.0.0.1:{up.port}/chan/hop", 1 << 20)
    assert up.seen[-2][2] == f"Bearer {BEARER}" and up.seen[-1][0].startswith("localhost") and up.seen[-1][2] is None


def test_client_certificate(net: dict[str, Any], tmp_path: Path) -> None:
    pki, url = net["pki"], f"https://127.0.0.1:{net['mtls'].port}/chan/linux-64/repodata.json"
    with fetcher_for(tmp_path, {}, ssl_verify=str(pki["ca"]), client_cert=str(pki["client"]), client_cert_key=str(pki["client_key"])) as f:
        assert f.get_bytes(url, 1 << 20)
    with fetcher_for(tmp_path, {}, ssl_verify=str(pki["ca"])) as f, pytest.raises(UpstreamError) as err:
        f.get_bytes(url, 1 << 20)
    assert "\n" not in str(err.value) and "client_cert" in str(err.value)


def test_no_proxy_goes_direct(net: dict[str, Any], tmp_path: Path) -> None:
    proxy = net["proxy"]
    before = len(proxy.connects())
    env = {"HTTPS_PROXY": proxy.url(), "NO_PROXY": "example.org,127.0.0.0/8", "HOME": str(tmp_path)}
    with fetcher_for(tmp_path, env, ssl_verify=str(net["pki"]["ca"])) as f:
        f.get_bytes(f"https://127.0.0.1:{net['up'].port}/t/{TOKEN}/chan/linux-64/repodata.json", 1 << 20)
    assert len(proxy.connects()) == before


def test_bypass_proxy_forms() -> None:
    assert bypass_proxy("a.corp.example", 443, (".corp.example",))
    assert bypass_proxy("corp.example", 443, ("corp.example",))
    assert bypass_proxy("a.corp.example", 443, ("corp.example:443",))
    assert not bypass_proxy("a.corp.example", 80, ("corp.example:443",))
    assert not bypass_proxy("notcorp.example", 443, ("corp.example",))
    assert bypass_proxy("10.1.2.3", 80, ("10.0.0.0/8",))
    assert not bypass_proxy("11.1.2.3", 80, ("10.0.0.0/8",))
    assert bypass_proxy("anything", None, ("*",))


def test_settings_from_config_and_environment(tmp_path: Path) -> None:
    cfg = from_mapping({"proxy_servers": {"https": "http://p:3128"}})
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    n = network_from(cfg, {"https_proxy": "http://env:1", "HTTP_PROXY": "http://env:2", "SSL_CERT_FILE": str(ca)})
    assert n.proxies == {"https": "http://p:3128", "http": "http://env:2"} and n.ca_bundle == str(ca) and n.verify
    with pytest.raises(ConfigError, match="REQUESTS_CA_BUNDLE: expected a PEM file"):
        network_from(cfg, {"REQUESTS_CA_BUNDLE": str(tmp_path / "gone.pem"), "SSL_CERT_FILE": str(ca)})
    with pytest.raises(ConfigError, match="ssl_verify: expected a PEM file"):
        network_from(from_mapping({"ssl_verify": str(tmp_path / "missing.pem")}), {})
    with pytest.raises(ConfigError, match="proxy_servers: expected the keys http and https"):
        from_mapping({"proxy_servers": {"ftp": "http://p"}})
    assert from_mapping({"max_bandwidth": "10M"}).max_bandwidth == 10_000_000
    os.environ["AIRGAP_TEST_PPW"] = "pw"
    try:
        assert from_mapping({"proxy_servers": {"http": "http://u:${AIRGAP_TEST_PPW}@p:1"}}).proxy_servers["http"] == "http://u:pw@p:1"
    finally:
        del os.environ["AIRGAP_TEST_PPW"]
    assert from_mapping({"ssl_verify": "ca.pem"}, str(tmp_path / "c.yaml")).ssl_verify == str(tmp_path / "ca.pem")


def test_auth_file_errors_name_the_file_never_a_secret(tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"h": {"Bearer": BEARER}}))
    with pytest.raises(ConfigError) as err:
        load_credentials({"RATTLER_AUTH_FILE": str(auth), "HOME": str(tmp_path)})
    assert str(auth) in str(err.value) and BEARER not in str(err.value)
    store = CredentialStore({"*.example.org": Credential("bearer", "t")})
    assert store.lookup("a.b.example.org") is not None and store.lookup("example.org") is None


def test_bandwidth_shares_one_budget() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bw = Bandwidth(1000, burst=0.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        bw.take(500)
    assert now[0] == pytest.approx(4.5)  # 5000 bytes at 1000 B/s: the last chunk's reservation starts at 4.5 s
    assert sum(slept) == pytest.approx(4.5)


def test_time_waiting_for_max_bandwidth_is_not_counted_against_min_rate() -> None:
    from airgap.errors import TransientError
    from airgap.upstream.fetch import _Pace

    now = [0.0]
    arrived = _Pace(1000, 1.0, lambda: now[0]).watch("https://h/x")
    now[0] = 5.0
    arrived(2000, 4.5)  # 2000 bytes in 5 s, 4.5 of them spent waiting for the bandwidth cap: 4000 B/s
    now[0] = 10.0
    with pytest.raises(TransientError, match="too slow"):
        arrived(2000, 0.0)  # 2000 bytes in 5 s: 400 B/s


def test_plain_http_through_the_proxy_without_its_login_is_407(net: dict[str, Any], tmp_path: Path) -> None:
    with fetcher_for(tmp_path, {"HTTP_PROXY": net["proxy"].url(with_auth=False)}) as f, pytest.raises(UpstreamError) as err:
        f.get_bytes("http://127.0.0.1:9/chan/linux-64/repodata.json", 1 << 20)
    assert "proxy authentication needed (HTTP 407" in str(err.value)
    with fetcher_for(tmp_path, {"HTTP_PROXY": net["proxy"].url()}) as f, pytest.raises(UpstreamError) as err:
        f.get_bytes("http://127.0.0.1:9/chan/linux-64/repodata.json", 1 << 20)  # the proxy let us in; nothing on port 9
    assert "407" not in str(err.value) and PROXY_AUTH[1] not in str(err.value)


def test_explain_does_not_take_a_port_for_a_407() -> None:
    import urllib3

    from airgap.upstream.network import explain

    exc = urllib3.exceptions.ProxyError("Unable to connect to proxy", OSError("HTTPConnection(port=44071): Connection refused"))
    message, transient = explain(exc, "https://h/x", "http://127.0.0.1:44071")
    assert "cannot reach the proxy" in message and transient
