//! sqrl-core's in-memory reference server behind a minimal HTTP/1.1 listener on
//! loopback, so the real binary can log into it over `qrl://`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use sqrl_core::base64url;
use sqrl_core::rand_core::OsRng;
use sqrl_core::server::memory::{Handled, MemoryServer};
use sqrl_core::server::{Endpoint, Policy};
use sqrl_core::url::Scheme;

pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Rewrites the decoded text of a reply (`name=value` lines) before it is sent.
type Rewrite = Box<dyn Fn(&str) -> String + Send>;

pub struct MemorySite {
    pub port: u16,
    server: Arc<Mutex<MemoryServer<OsRng>>>,
    handled: Arc<Mutex<Vec<Handled>>>,
    rewrite: Arc<Mutex<Option<Rewrite>>>,
}

impl MemorySite {
    pub fn start() -> Self {
        Self::start_at("/cli.sqrl", None)
    }

    /// A site whose endpoint is `path`, with `x=` covering its first `extension`
    /// characters when given (SPEC 1.2 rule 5).
    pub fn start_at(path: &str, extension: Option<usize>) -> Self {
        Self::start_with(path, extension, Policy::new())
    }

    /// A site that asks every client for the indexed secret of `sin` (SPEC 4.6).
    pub fn asking_for_secret(sin: &str) -> Self {
        Self::start_with("/cli.sqrl", None, Policy::new().with_sin(sin).unwrap())
    }

    fn start_with(path: &str, extension: Option<usize>, policy: Policy) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut endpoint = Endpoint::new(Scheme::Qrl, &format!("127.0.0.1:{port}"), path).unwrap();
        if let Some(chars) = extension {
            endpoint = endpoint.with_path_extension(chars);
        }
        let server = Arc::new(Mutex::new(MemoryServer::new(endpoint, policy, OsRng)));
        let handled = Arc::new(Mutex::new(Vec::new()));
        let rewrite: Arc<Mutex<Option<Rewrite>>> = Arc::new(Mutex::new(None));
        let (server_for_thread, handled_for_thread, rewrite_for_thread) = (
            Arc::clone(&server),
            Arc::clone(&handled),
            Arc::clone(&rewrite),
        );
        // Detached: it ends with the test process.
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve(
                    stream,
                    &server_for_thread,
                    &handled_for_thread,
                    &rewrite_for_thread,
                );
            }
        });
        Self {
            port,
            server,
            handled,
            rewrite,
        }
    }

    /// From now on every reply's `name=value` text passes through `rewrite`
    /// on its way out: a site that misbehaves at the HTTP edge. (The next
    /// request echoes the rewritten reply, which the server then refuses, so
    /// use it on the reply that ends the transaction.)
    pub fn rewrite_replies(&self, rewrite: impl Fn(&str) -> String + Send + 'static) {
        *self.rewrite.lock().unwrap() = Some(Box::new(rewrite));
    }

    pub fn server(&self) -> MutexGuard<'_, MemoryServer<OsRng>> {
        self.server.lock().unwrap()
    }

    /// Every request answered so far.
    pub fn handled(&self) -> Vec<Handled> {
        self.handled.lock().unwrap().clone()
    }

    /// A login page opened by a browser at `browser_ip`: `(QR URL, same-device link, attempt)`.
    pub fn open_page(
        &self,
        browser_ip: IpAddr,
        cancel_url: Option<&str>,
    ) -> (String, String, String) {
        let invitation = self.server().start_login(browser_ip, cancel_url);
        let attempt = invitation.nut.as_str().to_owned();
        (invitation.url, invitation.link, attempt)
    }

    /// The QR code URL of a new login page opened from this machine.
    pub fn url(&self) -> String {
        self.open_page(LOOPBACK, None).0
    }

    pub fn set_policy(&self, policy: Policy) {
        self.server().set_policy(policy);
    }
}

fn serve(
    stream: TcpStream,
    server: &Mutex<MemoryServer<OsRng>>,
    handled: &Mutex<Vec<Handled>>,
    rewrite: &Mutex<Option<Rewrite>>,
) {
    let peer = stream.peer_addr().map(|a| a.ip()).unwrap_or(LOOPBACK);
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let target = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length.min(1 << 16)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let result = server.lock().unwrap().handle(&target, &body, peer);
    let mut reply = result.body.clone();
    if let Some(rewrite) = rewrite.lock().unwrap().as_ref() {
        let text = String::from_utf8(base64url::decode(&reply).unwrap()).unwrap();
        reply = base64url::encode(rewrite(&text));
    }
    handled.lock().unwrap().push(result);
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    let _ = stream.flush();
}

/// The reply text with the IP-match bit taken out of its `tif`.
pub fn without_ip_bit(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("tif=") {
            Some(tif) => format!(
                "tif={:x}\r\n",
                u32::from_str_radix(tif, 16).unwrap() & !0x04
            ),
            None => format!("{line}\r\n"),
        })
        .collect()
}

/// The reply text with its `url=` replaced.
pub fn with_url(text: &str, url: &str) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with("url=") {
                format!("url={url}\r\n")
            } else {
                format!("{line}\r\n")
            }
        })
        .collect()
}
