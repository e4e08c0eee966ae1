"""The CA bundle shipped in the layer: reproducible from the pinned sources, and complete."""

from __future__ import annotations

import datetime
import warnings

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from localdev import ca_bundle


def certificates() -> list[x509.Certificate]:
    with warnings.catch_warnings():
        # Starfield Services Root CA - G2 (a trusted root, in Mozilla's list) has serial 0.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return x509.load_pem_x509_certificates(ca_bundle.OUTPUT.read_bytes())


def test_the_shipped_bundle_is_exactly_what_the_pinned_sources_produce() -> None:
    assert ca_bundle.OUTPUT.read_text(encoding="ascii") == ca_bundle.build()


def test_every_certificate_is_a_ca_and_the_rds_and_proxy_roots_are_there() -> None:
    found = certificates()
    assert len(found) == len(ca_bundle.rds_global_bundle()) + 5
    for certificate in found:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.value.ca, certificate.subject.rfc4514_string()
    names = {c.subject.rfc4514_string() for c in found}
    # RDS Proxy's ACM certificates chain to the Amazon Trust Services roots.
    for root in ca_bundle.AMAZON_TRUST_SERVICES_ROOTS:
        assert any(f"CN={root}" in name for name in names), root
    # DB instances in us-east-1 present certificates of the current RDS CAs.
    for ca in ("rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1"):
        region_root = {
            "rds-ca-rsa2048-g1": "Amazon RDS us-east-1 Root CA RSA2048 G1",
            "rds-ca-rsa4096-g1": "Amazon RDS us-east-1 Root CA RSA4096 G1",
            "rds-ca-ecc384-g1": "Amazon RDS us-east-1 Root CA ECC384 G1",
        }[ca]
        assert any(region_root in name for name in names), ca


def test_the_roots_in_use_stay_valid_for_years() -> None:
    wanted = ("Amazon RDS us-east-1 Root CA RSA2048 G1", "Amazon Root CA 1")
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=5 * 365)
    for certificate in certificates():
        name = certificate.subject.rfc4514_string()
        if any(w in name for w in wanted):
            assert certificate.not_valid_after_utc > soon, name
