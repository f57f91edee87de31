"""AS2 fixtures: certificates, an app with /as2 mounted and our key pair stored, an AS2 partner
profile, a live uvicorn server, and pyas2lib (GPL, test-only) as an independent partner.

Register in tests/conftest.py: ``pytest_plugins = [..., "tests.conftest_as2"]``.

pyas2lib depends on oscrypto 1.3.0, whose libcrypto version regex cannot read OpenSSL
"3.0.19" (wbond/oscrypto#75/#78, fixed upstream but unreleased). ``pyas2lib_module`` installs an
import hook that widens that regex in ``_libcrypto_cffi``/``_libcrypto_ctypes`` as they load,
instead of editing site-packages.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI

import gateway.transports.as2.models  # noqa: F401  (Base.metadata must know the AS2 tables)
from gateway.secrets import SecretBox
from gateway.transports.as2.cms import KeyPair
from tests.conftest_api import LiveServer, create_partner, sample_profile, serve_in_thread, stop_server

OUR_AS2_ID = "DISTCO AS2"
PARTNER_AS2_ID = "ACMEAS2"
OSCRYPTO_OLD = r"\b(\d\.\d\.\d[a-z]*)\b"
OSCRYPTO_NEW = r"\b(\d+\.\d+\.\d+[a-z]*)\b"
_OSCRYPTO_MODULES = ("oscrypto._openssl._libcrypto_cffi", "oscrypto._openssl._libcrypto_ctypes")


# --- certificates --------------------------------------------------------------------------------


def make_key_pair(common_name: str, *, days: int = 365, not_before: datetime | None = None) -> KeyPair:
    """An RSA-2048 key and self-signed certificate (with a subject key identifier)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = not_before or datetime.now(UTC) - timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(key, cert)


def cert_pem(pair: KeyPair) -> bytes:
    """The certificate as PEM."""
    return pair.cert.public_bytes(serialization.Encoding.PEM)


def key_pem(pair: KeyPair) -> bytes:
    """The private key as unencrypted PKCS#8 PEM."""
    return pair.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class As2Certs:
    """Our key pair, the partner's, and a stranger's (wrong certificate tests)."""

    ours: KeyPair
    partner: KeyPair
    stranger: KeyPair
    ours_second: KeyPair


@pytest.fixture(scope="session")
def as2_certs() -> As2Certs:
    """Key pairs made once per session (RSA generation is the slow part)."""
    return As2Certs(
        make_key_pair("DISTCO AS2"),
        make_key_pair("ACMEAS2"),
        make_key_pair("MALLORY"),
        make_key_pair("DISTCO AS2 next"),
    )


# --- the app ---------------------------------------------------------------------------------------


def as2_profile(partner_url: str, partner: KeyPair, **as2: Any) -> dict[str, Any]:
    """The sample partner with an AS2 section (its certificate configured in the profile)."""
    section = {
        "as2_id": PARTNER_AS2_ID,
        "url": partner_url,
        "partner_cert": cert_pem(partner).decode(),
        "sign": "sha256",
        "encrypt": "aes256-cbc",
        "compress": False,
        "mdn": {"mode": "sync", "signed": True},
    }
    section.update(as2)
    profile = sample_profile()
    profile["transports"] = {"as2": section}
    return profile


def mount_as2(app: FastAPI) -> FastAPI:
    """Mount the root AS2 router and the /api/v1 management router on an app (what the lead wires)."""
    from gateway.api.app import API_PREFIX
    from gateway.transports.as2 import management_views, views

    paths = {getattr(route, "path", "") for route in app.routes}
    if "/as2" not in paths:
        app.include_router(views.router)
    if f"{API_PREFIX}/as2/keys" not in paths:
        app.include_router(management_views.router, prefix=API_PREFIX)
    return app


def store_our_key(app: FastAPI, pair: KeyPair, *, as2_id: str = OUR_AS2_ID, activate: bool = True) -> str:
    """Store one of our key pairs in the app's database; its id."""
    from gateway.transports.as2.certificates import add_key_pair

    with app.state.db.unit_of_work() as session:
        row = add_key_pair(
            session,
            name=f"key {as2_id}",
            as2_id=as2_id,
            key=pair.key,
            cert=pair.cert,
            box=SecretBox.from_settings(app.state.settings),
            actor="test",
            activate=activate,
        )
        key_id = str(row.id)
    ctx = getattr(app.state, "as2_context", None)
    if ctx is not None:
        ctx.forget_keys()
    return key_id


@dataclass
class As2Setup:
    """The app with AS2 mounted, our key stored and the AS2 partner ``acme-retail``."""

    app: FastAPI
    certs: As2Certs
    partner_id: str


def as2_setup(app: FastAPI, certs: As2Certs) -> As2Setup:
    """Mount AS2 on ``app``, store our key pair and partner acme-retail (as2_id ACMEAS2)."""
    from gateway.processing.publisher import RecordingPublisher
    from gateway.transports.as2.partners import forget_index

    mount_as2(app)
    app.state.publisher = RecordingPublisher()
    store_our_key(app, certs.ours)
    partner_id = create_partner(app, as2_profile("http://127.0.0.1:9/as2", certs.partner))
    forget_index()
    return As2Setup(app, certs, partner_id)


@pytest.fixture
def as2_app(api_app: FastAPI, as2_certs: As2Certs) -> As2Setup:
    """``api_app`` (SQLite) + AS2 routers + our key pair + partner acme-retail (as2_id ACMEAS2)."""
    return as2_setup(api_app, as2_certs)


@pytest.fixture
def pg_as2_app(pg_api_app: FastAPI, as2_certs: As2Certs) -> As2Setup:
    """``as2_app`` on PostgreSQL."""
    return as2_setup(pg_api_app, as2_certs)


@pytest.fixture
def as2_server(as2_app: As2Setup) -> Iterator[LiveServer]:
    """``as2_app`` on a real uvicorn (127.0.0.1, free port)."""
    live = serve_in_thread(as2_app.app)
    yield live
    stop_server(live)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def any_as2_app(request: pytest.FixtureRequest) -> As2Setup:
    """``as2_app`` once on SQLite and once on PostgreSQL (different locking and transactions)."""
    setup: As2Setup = request.getfixturevalue("pg_as2_app" if request.param == "postgres" else "as2_app")
    return setup


@pytest.fixture
def any_as2_server(any_as2_app: As2Setup) -> Iterator[LiveServer]:
    """``any_as2_app`` on a real uvicorn (127.0.0.1, free port)."""
    live = serve_in_thread(any_as2_app.app)
    yield live
    stop_server(live)


# --- pyas2lib as the partner --------------------------------------------------------------------------


class _OscryptoFix(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Load oscrypto's libcrypto modules with the version regex widened (oscrypto#75/#78)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _OSCRYPTO_MODULES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.origin is None:
            return None
        return importlib.util.spec_from_file_location(fullname, spec.origin, loader=self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        origin = module.__spec__.origin if module.__spec__ else None
        assert origin is not None
        with open(origin, encoding="utf-8") as handle:
            source = handle.read()
        source = source.replace(OSCRYPTO_OLD.replace("\\", "\\\\"), OSCRYPTO_NEW.replace("\\", "\\\\"))
        source = source.replace(OSCRYPTO_OLD, OSCRYPTO_NEW)
        exec(compile(source, origin, "exec"), module.__dict__)


def install_oscrypto_fix() -> None:
    """Install the import hook (idempotent); must run before oscrypto's libcrypto loads."""
    if not any(isinstance(finder, _OscryptoFix) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OscryptoFix())


@pytest.fixture(scope="session")
def pyas2lib_module() -> ModuleType:
    """``pyas2lib.as2`` importable on OpenSSL 3.0.x (skips when pyas2lib is not installed)."""
    install_oscrypto_fix()
    pytest.importorskip("pyas2lib")
    import pyas2lib.as2  # type: ignore[import-untyped]

    module: ModuleType = pyas2lib.as2
    return module


def partner_org(pyas2: ModuleType, certs: As2Certs, *, mdn_url: str | None = None) -> Any:
    """The partner's own organisation in pyas2lib (signs and decrypts with the partner key)."""
    keycert = key_pem(certs.partner) + cert_pem(certs.partner)
    return pyas2.Organization(as2_name=PARTNER_AS2_ID, sign_key=keycert, decrypt_key=keycert, mdn_url=mdn_url)


def our_station(pyas2: ModuleType, certs: As2Certs, **settings: Any) -> Any:
    """Us, as pyas2lib's partner object (our certificate to encrypt to and verify with)."""
    base: dict[str, Any] = {
        "as2_name": OUR_AS2_ID,
        "encrypt_cert": cert_pem(certs.ours),
        "verify_cert": cert_pem(certs.ours),
        "validate_certs": False,
    }
    base.update(settings)
    return pyas2.Partner(**base)


def response_bytes(response: httpx.Response) -> bytes:
    """An HTTP response as the raw bytes pyas2lib's ``Mdn.parse`` reads."""
    head = "".join(f"{k}: {v}\r\n" for k, v in response.headers.items()).encode()
    return head + b"\r\n" + response.content


def openssl_available() -> str:
    """The openssl binary (skips without one)."""
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl is not installed")
    return path
