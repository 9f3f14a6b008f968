//! Certificates for a new cluster: one CA, and one certificate per monitor node, agent host and
//! operator, each naming its node (common name and DNS SAN = node name, IP SAN = node IP) and
//! usable both as server and as client (every node is both).

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::error::TlsError;

/// A certificate and its private key, PEM.
#[derive(Clone, Debug)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// The private key (PKCS#8).
    pub key: String,
}

/// A certificate authority able to sign node certificates.
pub struct Authority {
    /// The CA's certificate and key, PEM (written to `ca.pem` / `ca.key`).
    pub pem: Pem,
    /// Signs node certificates.
    issuer: Issuer<'static, KeyPair>,
}

fn gen_err(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

impl Authority {
    /// A new self-signed CA whose common name is `name`.
    pub fn new(name: &str) -> Result<Authority, TlsError> {
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "mmm-rs");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(gen_err)?;
        let pem = Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        };
        Ok(Authority {
            pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The existing CA of a cluster, from its certificate and private key (PEM, as `certs init`
    /// wrote them to `ca.pem` / `ca.key`), to certify one more node. The certificate's own subject
    /// is used as the issuer, so certificates it signs chain to it whoever made it.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Authority, TlsError> {
        let key = KeyPair::from_pem(key_pem).map_err(gen_err)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(gen_err)?;
        let pem = Pem {
            cert: cert_pem.to_owned(),
            key: key_pem.to_owned(),
        };
        Ok(Authority { pem, issuer })
    }

    /// A certificate for node `name` (CN and DNS SAN) at `ips` (IP SANs), for server and client use.
    pub fn issue(&self, name: &str, ips: &[IpAddr]) -> Result<Pem, TlsError> {
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(gen_err)?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "mmm-rs");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).map_err(gen_err)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}
