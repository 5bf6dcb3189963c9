//! A virtual phone: one SQRL identity and the client side of a login
//! (`query`, then `ident`), driven by `sqrl_core`'s client state machine.
//!
//! The phone's own work (deriving its key for the site, signing, parsing
//! replies) is timed apart from the requests: every request echoes the
//! server's previous reply (SPEC 2.3), so nothing can be signed ahead, but
//! the signing is the phone's cost, not the server's latency.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqrl_core::client::{
    ClientError, CommandStep, Device, OutgoingRequest, Queried, QueryStatus, QueryStep, Querying,
    TransactionOptions,
};
use sqrl_core::keys::{
    IdentityKey, IdentityLockKey, IdentityMasterKey, IdentityUnlockKey, IndexedSecret,
    RequestSigner, Signature, SignerError, SiteKey, SiteSigner,
};
use sqrl_core::msg::Button;
use sqrl_core::rand_core::OsRng;
use sqrl_core::url::{SiteKeyString, SqrlUrl};

use crate::http::PhoneLink;
use crate::outcome::{ErrorKind, IdentityUse, LoginError, Step, Trace};
use crate::site::Site;

/// One identity. Only what the protocol needs is kept: the master key
/// (per-site keys) and the lock key (`suk`/`vuk` for a new association).
/// The unlock key is dropped once these are made.
pub struct Phone {
    imk: IdentityMasterKey,
    ilk: IdentityLockKey,
    /// The key of the last site logged into. A real phone derives it per
    /// login; the bench keeps it, because the derivation (a scalar
    /// multiplication) is the phone's cost and would only slow down the
    /// load it puts on the server.
    site_key: Mutex<Option<(SiteKeyString, SharedSiteKey)>>,
}

/// A site key that several logins of one phone share.
#[derive(Debug, Clone)]
struct SharedSiteKey(Arc<SiteKey>);

impl RequestSigner for SharedSiteKey {
    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError> {
        RequestSigner::sign(&*self.0, message)
    }
}

impl SiteSigner for SharedSiteKey {
    fn public_key(&self) -> IdentityKey {
        SiteSigner::public_key(&*self.0)
    }

    fn indexed_secret(&self, sin: &str) -> Result<IndexedSecret, SignerError> {
        SiteSigner::indexed_secret(&*self.0, sin)
    }
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phone").finish_non_exhaustive()
    }
}

impl Phone {
    /// A new random identity (done before the timed part: key generation is
    /// the phone's business, not load on the server).
    pub fn generate() -> Self {
        let iuk = IdentityUnlockKey::generate(&mut OsRng);
        Self {
            imk: iuk.master_key(),
            ilk: iuk.lock_key(),
            site_key: Mutex::new(None),
        }
    }

    /// This identity's key for `site`, derived once per site.
    fn site_key(&self, site: &SiteKeyString) -> SharedSiteKey {
        let mut cached = self.site_key.lock().unwrap_or_else(PoisonError::into_inner);
        match &*cached {
            Some((known, key)) if known == site => key.clone(),
            _ => {
                let key = SharedSiteKey(Arc::new(self.imk.site_key(site)));
                *cached = Some((site.clone(), key.clone()));
                key
            }
        }
    }

    /// Sends `query` for the SQRL URL `link` (retrying once after a
    /// transient error, as clients do) and returns what the site knows.
    pub async fn query(
        &self,
        link: &str,
        site: &Site,
        phone: &mut PhoneLink,
        trace: &mut Trace,
    ) -> Result<Queried, LoginError> {
        let fail = |kind| LoginError::new(Step::Query, kind);
        let started = trace.client(|| {
            let url = SqrlUrl::parse(link)?;
            let key = self.site_key(url.site_key_string());
            Querying::start(
                url,
                key,
                Vec::new(),
                TransactionOptions::new(Device::CrossDevice),
            )
        });
        let (mut querying, mut request) = started.map_err(|e| {
            fail(ErrorKind::protocol(format!(
                "SQRL URL {link:?} refused: {e}"
            )))
        })?;
        let mut took = Duration::ZERO;
        loop {
            let body = send(&request, site, phone, &mut took, trace, Step::Query).await?;
            match trace.client(|| querying.receive(&body)) {
                Ok(QueryStep::Done(queried)) => {
                    trace.step(Step::Query, took);
                    return Ok(queried);
                }
                Ok(QueryStep::Send(next, retry)) => {
                    trace.retries += 1;
                    (querying, request) = (next, retry);
                }
                // Only reachable with `test_ip_first`, which the bench does
                // not set; counted like the TIF it stands for.
                Ok(QueryStep::IpMismatch(mismatch)) => {
                    return Err(fail(ErrorKind::Tif(mismatch.tif().bits())).with_body(&body));
                }
                Err(error) => return Err(client_error(Step::Query, &error, &body)),
            }
        }
    }

    /// Sends `ident` after `queried` (with `suk`/`vuk` if the site did not
    /// know the identity) and returns when the phone held the reply.
    pub async fn ident(
        &self,
        mut queried: Queried,
        site: &Site,
        phone: &mut PhoneLink,
        trace: &mut Trace,
    ) -> Result<Instant, LoginError> {
        let fail = |kind| LoginError::new(Step::Query, kind);
        trace.identity = Some(match queried.status() {
            QueryStatus::Known => IdentityUse::Returning,
            QueryStatus::Unknown => IdentityUse::New,
            // A fresh identity cannot be disabled, superseded or matched as a
            // previous one: the site answered something else than it was asked.
            status => {
                let tif = queried.tif();
                return Err(if tif.is_empty() {
                    fail(ErrorKind::protocol(format!("query found {status:?}")))
                } else {
                    fail(ErrorKind::Tif(tif.bits()))
                });
            }
        });
        // A user answers the site's question with its first button (or a
        // plain OK when it offers none).
        let button = queried.ask().map(|ask| {
            if ask.buttons().is_empty() {
                Button::Ok
            } else {
                Button::First
            }
        });
        let started = trace.client(|| {
            if let Some(button) = button {
                queried.answer_ask(button)?;
            }
            queried.ident(&self.ilk, &mut OsRng)
        });
        let (mut commanding, mut request) =
            started.map_err(|e| LoginError::new(Step::Ident, ErrorKind::from_client(&e)))?;
        let mut took = Duration::ZERO;
        loop {
            let body = send(&request, site, phone, &mut took, trace, Step::Ident).await?;
            let replied = Instant::now();
            match trace.client(|| commanding.receive(&body)) {
                // Success is the absence of 0x40, whether or not 0x01 is set
                // for a new identity (PITFALLS 7); the state machine decides.
                Ok(CommandStep::Done(_)) => {
                    trace.step(Step::Ident, took);
                    return Ok(replied);
                }
                Ok(CommandStep::Send(next, retry)) => {
                    trace.retries += 1;
                    (commanding, request) = (next, retry);
                }
                Err(error) => return Err(client_error(Step::Ident, &error, &body)),
            }
        }
    }
}

fn client_error(step: Step, error: &ClientError, body: &str) -> LoginError {
    LoginError::new(step, ErrorKind::from_client(error)).with_body(body)
}

/// POSTs one request to the site under test; adds its latency to `took` and
/// the size of what it signed to the trace. Anything but a 200 fails.
async fn send(
    request: &OutgoingRequest,
    site: &Site,
    phone: &mut PhoneLink,
    took: &mut Duration,
    trace: &mut Trace,
    step: Step,
) -> Result<String, LoginError> {
    trace.signed_bytes += signed_len(request.body());
    trace.signed_requests += 1;
    let url = site.transport_url(request.url());
    let (reply, elapsed) = phone
        .post_form(&url, request.body().to_owned())
        .await
        .map_err(|kind| LoginError::new(step, kind))?;
    *took += elapsed;
    if reply.status != 200 {
        return Err(
            LoginError::new(step, ErrorKind::HttpStatus(reply.status)).with_body(&reply.body)
        );
    }
    Ok(reply.body)
}

/// The length of the message a request's signatures cover: the `client=`
/// and `server=` values as sent (SPEC 2.4).
fn signed_len(form: &str) -> usize {
    form.split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| *name == "client" || *name == "server")
        .map(|(_, value)| value.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_site_key_is_the_one_derived_for_that_site() {
        let phone = Phone::generate();
        let site = |link: &str| SqrlUrl::parse(link).unwrap().site_key_string().clone();
        let (a, b) = (
            site("sqrl://a.example/cli.sqrl?nut=1"),
            site("sqrl://b.example/cli.sqrl?nut=2"),
        );
        let fresh = |site: &SiteKeyString| phone.imk.site_key(site).public_key();
        assert_eq!(phone.site_key(&a).public_key(), fresh(&a));
        assert_eq!(phone.site_key(&a).public_key(), fresh(&a));
        // Another site gets its own key, not the one kept.
        assert_eq!(phone.site_key(&b).public_key(), fresh(&b));
        assert_ne!(fresh(&a), fresh(&b));
    }

    #[test]
    fn signed_length_covers_client_and_server() {
        assert_eq!(signed_len("client=abc&server=de&ids=xyz"), 5);
        assert_eq!(signed_len("nothing"), 0);
    }
}
