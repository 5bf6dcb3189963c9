//! The real `sqrl-server`, started in-process on 127.0.0.1:0 with a temporary
//! SQLite database, and a browser made of plain HTTP requests.

use std::path::Path;
use std::time::Duration;

use sqrl_core::server::Nut;
use sqrl_server::RunningServer;
use sqrl_server::config::Config;
use sqrl_server::net::IpNet;

use crate::in_process_server::InProcessServer;

pub struct RealSite {
    service: InProcessServer,
}

/// A login page as a browser sees it.
#[derive(Debug, Clone)]
pub struct Page {
    pub nut: String,
    pub pag: String,
    /// The SQRL URL of the QR code.
    pub url: String,
    /// The same-device link (with `can=`).
    pub link: String,
}

impl Page {
    /// The `Cookie` header of the browser that opened the page: the
    /// attempt's secret, which a same-device sign-in link is redeemed with.
    pub fn cookie(&self) -> String {
        format!("sqrl_pag_{}={}", self.nut, self.pag)
    }
}

/// A response: status, headers (lower-case names), body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A browser: no redirects followed, cookies passed by hand.
pub fn browser() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

pub fn get(agent: &ureq::Agent, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let body = response.body_mut().read_to_vec().unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

impl RealSite {
    pub fn start() -> Self {
        Self::start_with(|_, _| {})
    }

    pub fn start_with(configure: impl FnOnce(&mut Config, &Path)) -> Self {
        let service = InProcessServer::start(|config, dir| {
            // Every test client comes from 127.0.0.1.
            config.rate_limit = None;
            configure(config, dir);
        });
        Self { service }
    }

    /// A site behind a reverse proxy at 127.0.0.1, whose `X-Forwarded-For` it
    /// believes: a browser sending one is "elsewhere" to it, while the CLI
    /// (no header) is at 127.0.0.1.
    pub fn start_behind_proxy() -> Self {
        Self::start_with(|config, _| {
            config.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
        })
    }

    fn server(&self) -> &RunningServer {
        self.service.server()
    }

    pub fn base(&self) -> String {
        self.service.base_url()
    }

    /// Opens a login page through the SSP API, as a browser at 127.0.0.1.
    pub fn open_page(&self, agent: &ureq::Agent) -> Page {
        self.open_page_with(agent, &[])
    }

    /// Opens a login page as a browser at `ip`, through the proxy of
    /// [`RealSite::start_behind_proxy`].
    pub fn open_page_from(&self, agent: &ureq::Agent, ip: &str) -> Page {
        self.open_page_with(agent, &[("X-Forwarded-For", ip)])
    }

    fn open_page_with(&self, agent: &ureq::Agent, headers: &[(&str, &str)]) -> Page {
        let mut headers = headers.to_vec();
        headers.push(("Accept", "application/json"));
        let reply = get(agent, &format!("{}/nut.sqrl", self.base()), &headers);
        assert_eq!(reply.status, 200, "{}", reply.text());
        let value: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        let nut = value["nut"].as_str().unwrap().to_owned();
        let pag = value["pag"].as_str().unwrap().to_owned();
        let endpoint = &self.server().state().endpoint;
        let parsed = Nut::parse(&nut).unwrap();
        Page {
            url: endpoint.url(&parsed),
            link: endpoint.link(&parsed, &format!("{}/", self.base())),
            nut,
            pag,
        }
    }

    /// The QR code URL of a new login page.
    pub fn url(&self, agent: &ureq::Agent) -> String {
        self.open_page(agent).url
    }

    /// What the waiting page learns: `(state, url)` from `/pag.sqrl`.
    pub fn poll(&self, agent: &ureq::Agent, page: &Page) -> (String, String) {
        let reply = get(
            agent,
            &format!("{}/pag.sqrl?nut={}&pag={}", self.base(), page.nut, page.pag),
            &[("Accept", "application/json")],
        );
        let value: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        (
            value["state"].as_str().unwrap_or_default().to_owned(),
            value["url"].as_str().unwrap_or_default().to_owned(),
        )
    }
}
