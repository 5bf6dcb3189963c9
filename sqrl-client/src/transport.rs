//! Moving request bodies to a site and reply bodies back.
//!
//! The protocol logic lives in `sqrl_core::client`; this module only POSTs. The
//! URL it is given already carries the right scheme and any explicit port
//! (`qrl://` ⇒ plain HTTP, `sqrl://` ⇒ HTTPS; PITFALLS 13). HTTPS certificates are
//! always verified, against the Mozilla roots or, with `--ca-cert`, against the
//! given authority only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqrl_core::msg::{CONTENT_TYPE, MAX_REPLY_LEN};

use crate::error::{Error, Result};

/// Sends one SQRL request and returns the reply body.
pub trait Transport {
    /// POSTs `body` (form-encoded) to `url` and returns the HTTP 200 response body.
    fn post(&mut self, url: &str, body: &str) -> Result<String>;
}

/// How to reach sites over HTTP(S).
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// A PEM file of certificate authorities to trust instead of the public roots.
    pub ca_cert: Option<PathBuf>,
    /// Overall time limit of one request.
    pub timeout: Option<Duration>,
}

/// The real transport: HTTP(S) with certificate verification.
#[derive(Debug)]
pub struct HttpTransport {
    agent: ureq::Agent,
}

impl HttpTransport {
    /// A transport with these settings.
    pub fn new(settings: &HttpSettings) -> Result<Self> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &settings.ca_cert {
            tls = tls.root_certs(load_ca(path)?);
        }
        let config = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_global(settings.timeout)
            // A SQRL endpoint answers its POST itself; following a redirect would
            // send the signed body somewhere the user never confirmed.
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("sqrl/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            agent: ureq::Agent::new_with_config(config),
        })
    }
}

fn load_ca(path: &Path) -> Result<ureq::tls::RootCerts> {
    let pem = std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(reason) => {
                return Err(Error::CaCertNotPem {
                    path: path.to_owned(),
                    reason,
                });
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::CaCertEmpty {
            path: path.to_owned(),
        });
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

impl Transport for HttpTransport {
    fn post(&mut self, url: &str, body: &str) -> Result<String> {
        let context = || format!("could not reach {}", origin_of(url));
        let mut response = self
            .agent
            .post(url)
            .header("Content-Type", CONTENT_TYPE)
            .send(body)
            .map_err(|e| {
                if is_plain_http_answer(&e) {
                    Error::PlainHttpSite {
                        origin: origin_of(url).to_owned(),
                    }
                } else {
                    Error::network(context(), e)
                }
            })?;
        let status = response.status();
        if status != 200 {
            return Err(Error::Network {
                context: format!(
                    "{} answered HTTP {status}, not a SQRL reply",
                    origin_of(url)
                ),
                source: None,
            });
        }
        response
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_LEN as u64)
            .read_to_string()
            .map_err(|e| Error::network(format!("reading the reply from {}", origin_of(url)), e))
    }
}

/// Whether a TLS connection failed because the server's first bytes were not
/// a TLS record at all, which is what a plain-HTTP server's answer looks like.
fn is_plain_http_answer(error: &ureq::Error) -> bool {
    let tls = match error {
        ureq::Error::Rustls(tls) => Some(tls),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    matches!(
        tls,
        Some(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
        ))
    )
}

/// `scheme://host[:port]` of a URL, for messages (never the query: it holds the nut).
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn origin_drops_path_and_query() {
        assert_eq!(
            origin_of("https://a.example:8443/cli.sqrl?nut=x"),
            "https://a.example:8443"
        );
        assert_eq!(origin_of("http://127.0.0.1"), "http://127.0.0.1");
    }

    #[test]
    fn refuses_a_missing_or_empty_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let settings = HttpSettings {
            ca_cert: Some(empty),
            timeout: None,
        };
        assert!(matches!(
            HttpTransport::new(&settings),
            Err(Error::CaCertEmpty { .. })
        ));
        let settings = HttpSettings {
            ca_cert: Some(dir.path().join("missing.pem")),
            timeout: None,
        };
        assert!(matches!(
            HttpTransport::new(&settings),
            Err(Error::ReadFile { .. })
        ));
    }
}
