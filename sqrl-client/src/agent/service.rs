//! The agent's login service: keeps the identity unlocked in memory for an idle
//! period (like ssh-agent, and like GRC's QuickPass idea, SPEC 5.6), runs each
//! same-device login, and decides where the browser goes next.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand_core::OsRng;
use sqrl_core::client::Device;
use sqrl_core::keys::IdentityUnlockKey;
use sqrl_core::msg::{Ask, Button};
use sqrl_core::url::SqrlUrl;

use zeroize::Zeroizing;

use super::LoginService;
use super::http::{Response, back_page};
#[cfg(unix)]
use super::socket::KeyHolder;
use crate::error::{AddressMismatch, Error, Result};
use crate::identity::{KdfProgress, StoredIdentity, Unlocked};
use crate::prompt::{self, SecretSources};
use crate::session::{self, Action, QuerySummary, Transaction, Ui};
use crate::transport::{HttpSettings, HttpTransport};

/// How the agent behaves.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Forget the unlocked identity after this long without a login (zero: never
    /// keep it).
    pub idle_timeout: Duration,
    /// Alt-ID for every login.
    pub alt_id: Option<String>,
    /// How to reach sites.
    pub http: HttpSettings,
    /// Confirm logins without asking.
    pub yes: bool,
    /// Where the password comes from when the identity must be unlocked.
    pub secrets: SecretSources,
    /// Whether progress bars may be drawn.
    pub progress: bool,
}

struct Cached {
    unlocked: Unlocked,
    last_used: Instant,
}

/// The agent's [`LoginService`].
pub struct AgentService {
    settings: AgentSettings,
    stored: StoredIdentity,
    cache: Mutex<Option<Cached>>,
    /// Where `stored` came from: socket clients must name the same store.
    store_root: PathBuf,
    /// One login at a time: the window in which a session URL exists stays short
    /// and one-shot (PITFALLS 31).
    busy: Mutex<()>,
}

impl core::fmt::Debug for AgentService {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AgentService")
            .field("identity", &self.stored.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves nothing half-written that matters
    // here (the cache is replaced whole), so carry on.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AgentService {
    /// A service for `stored`, initially locked.
    pub fn new(stored: StoredIdentity, settings: AgentSettings) -> Self {
        Self {
            settings,
            stored,
            cache: Mutex::new(None),
            store_root: PathBuf::new(),
            busy: Mutex::new(()),
        }
    }

    /// Unlocks the identity now (so the first login does not wait for the password).
    pub fn unlock_now(&self) -> Result<()> {
        let unlocked = self.unlock()?;
        *lock(&self.cache) = Some(Cached {
            unlocked,
            last_used: Instant::now(),
        });
        Ok(())
    }

    /// Whether the unlocked identity is held in memory.
    pub fn is_unlocked(&self) -> bool {
        lock(&self.cache).is_some()
    }

    /// The configuration directory the identity was read from.
    pub fn with_store_root(mut self, root: PathBuf) -> Self {
        self.store_root = root;
        self
    }

    /// Drops the unlocked identity if it has been idle too long (the keys
    /// are wiped as it drops); whether it did.
    fn expire(&self, cache: &mut Option<Cached>) -> bool {
        if cache
            .as_ref()
            .is_some_and(|c| c.last_used.elapsed() >= self.settings.idle_timeout)
        {
            *cache = None;
            return true;
        }
        false
    }

    fn unlock(&self) -> Result<Unlocked> {
        self.stored.unlock(
            &self.settings.secrets,
            &mut KdfProgress::new(self.settings.progress),
        )
    }

    fn login(&self, url: &SqrlUrl) -> Result<session::Outcome> {
        let mut cache = lock(&self.cache);
        self.expire(&mut cache);
        let cached = match cache.take() {
            Some(cached) => cached,
            None => Cached {
                unlocked: self.unlock()?,
                last_used: Instant::now(),
            },
        };
        let mut transport = HttpTransport::new(&self.settings.http)?;
        let mut ui = AgentUi {
            yes: self.settings.yes,
        };
        let transaction = Transaction {
            url: url.clone(),
            alt_id: self.settings.alt_id.clone(),
            action: Action::Login,
            device: Device::SameDevice,
        };
        let result = session::run(
            &mut transport,
            transaction,
            &cached.unlocked,
            &mut ui,
            &mut OsRng,
        );
        if !self.settings.idle_timeout.is_zero() {
            *cache = Some(Cached {
                unlocked: cached.unlocked,
                last_used: Instant::now(),
            });
        }
        result
    }
}

impl LoginService for AgentService {
    fn cps_login(&self, url: &SqrlUrl) -> Response {
        let _one_at_a_time = lock(&self.busy);
        let site = url.site_key_string().domain().to_owned();
        log(&format!("login request for {site}"));
        match self.login(url) {
            Ok(outcome) => {
                log(&outcome.message);
                // Checked by the session: an absolute http(s) URL or nothing.
                match outcome.cps_url() {
                    Some(target) => Response::Redirect(target.to_owned()),
                    None => Response::Html {
                        status: 200,
                        body: back_page(&format!(
                            "{} The site sent no address to continue at.",
                            outcome.message
                        )),
                    },
                }
            }
            Err(error) => {
                let message = error.one_line();
                log(&format!("login to {site} failed: {message}"));
                cancel_response(url, &message)
            }
        }
    }

    fn housekeeping(&self) {
        // Never wait here: a login in progress holds the cache.
        if let Ok(mut cache) = self.cache.try_lock()
            && self.expire(&mut cache)
        {
            log("idle timeout: the identity was locked again");
        }
    }
}

#[cfg(unix)]
impl KeyHolder for AgentService {
    fn with_unlocked(
        &self,
        f: &mut dyn FnMut(&Unlocked) -> Zeroizing<String>,
    ) -> Option<Zeroizing<String>> {
        let mut cache = lock(&self.cache);
        if self.expire(&mut cache) {
            log("idle timeout: the identity was locked again");
        }
        let cached = cache.as_mut()?;
        cached.last_used = Instant::now();
        Some(f(&cached.unlocked))
    }

    fn identity(&self) -> &str {
        &self.stored.name
    }

    fn store_root(&self) -> &Path {
        &self.store_root
    }

    fn lock(&self) -> bool {
        // Dropping the cached identity wipes its keys.
        lock(&self.cache).take().is_some()
    }

    fn idle_seconds_left(&self) -> Option<u64> {
        let cache = lock(&self.cache);
        let cached = cache.as_ref()?;
        let left = self
            .settings
            .idle_timeout
            .checked_sub(cached.last_used.elapsed())?;
        Some(left.as_secs())
    }
}

/// Where a failed or cancelled login sends the browser: the page's `can=` URL,
/// or a page asking the user to press Back (SPEC 7, PITFALLS 30).
pub fn cancel_response(url: &SqrlUrl, message: &str) -> Response {
    match url
        .cancel_url()
        .ok()
        .flatten()
        .and_then(|cancel| absolute_url(url, &cancel))
    {
        Some(target) => Response::Redirect(target),
        None => Response::Html {
            status: 200,
            body: back_page(&format!("The SQRL login did not complete: {message}")),
        },
    }
}

/// Makes a page's or server's cancel URL (`can=`, a URL or path, SPEC 3)
/// absolute: an `http(s)://` URL is taken as [`session::session_url`] checks
/// it, a root-anchored path joins the site's origin; anything else (another
/// scheme, a protocol-relative `//host`, a relative path) is refused.
pub fn absolute_url(url: &SqrlUrl, target: &str) -> Option<String> {
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    if target.starts_with('/') && !target.starts_with("//") {
        Some(format!("{}{target}", url.origin()))
    } else {
        session::session_url(target).ok()
    }
}

/// A line of the agent's log, on stderr.
pub fn log(line: &str) {
    let _ = writeln!(std::io::stderr(), "sqrl agent: {line}");
}

struct AgentUi {
    yes: bool,
}

impl Ui for AgentUi {
    fn confirm(&mut self, summary: &QuerySummary) -> Result<()> {
        let _ = write!(std::io::stderr(), "{}", summary.to_text());
        prompt::confirm(
            &format!("Do you want to {} {}?", summary.action.verb(), summary.site),
            self.yes,
        )
    }

    fn answer(&mut self, ask: &Ask) -> Result<Button> {
        if ask.buttons().is_empty() || !prompt::interactive() {
            // Acknowledge a plain message; without a terminal, choose no button.
            return Ok(Button::Ok);
        }
        let answer = prompt::read_line(
            &format!("Choose 1-{} (anything else: OK): ", ask.buttons().len()),
            "answer to the site's question",
        )?;
        Ok(match answer.as_str() {
            "1" => Button::First,
            "2" if ask.buttons().len() >= 2 => Button::Second,
            _ => Button::Ok,
        })
    }

    fn accept_ip_mismatch(&mut self, site: &str) -> Result<()> {
        // Same-device logins fail on a mismatch before asking this.
        Err(AddressMismatch::Agent {
            site: site.to_owned(),
        }
        .into())
    }

    fn unlock_key(&mut self) -> Result<IdentityUnlockKey> {
        Err(Error::Internal(
            "a login never needs the rescue code".into(),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_made_absolute_or_refused() {
        let url = SqrlUrl::parse("qrl://127.0.0.1:8080/cli.sqrl?nut=abc").unwrap();
        assert_eq!(
            absolute_url(&url, "/cps?token=x").as_deref(),
            Some("http://127.0.0.1:8080/cps?token=x")
        );
        assert_eq!(
            absolute_url(&url, "https://a.example/x").as_deref(),
            Some("https://a.example/x")
        );
        assert_eq!(absolute_url(&url, "//evil.example/x"), None);
        assert_eq!(absolute_url(&url, "javascript:alert(1)"), None);
        assert_eq!(absolute_url(&url, "/a b"), None);
        assert_eq!(absolute_url(&url, "undefined"), None);
        assert_eq!(absolute_url(&url, "http://"), None);
    }

    #[test]
    fn cancel_goes_to_can_or_back_page() {
        let can = sqrl_core::base64url::encode("https://example.com/login");
        let with =
            SqrlUrl::parse(&format!("sqrl://example.com/cli.sqrl?nut=abc&can={can}")).unwrap();
        assert_eq!(
            cancel_response(&with, "x"),
            Response::Redirect("https://example.com/login".into())
        );
        let without = SqrlUrl::parse("sqrl://example.com/cli.sqrl?nut=abc").unwrap();
        match cancel_response(&without, "declined") {
            Response::Html { status, body } => {
                assert_eq!(status, 200);
                assert!(body.contains("Back") && body.contains("declined"));
            }
            other => panic!("{other:?}"),
        }
    }
}
