//! The page flow, through this project's own login page: the browser loads
//! `/` (a new login attempt and its cookie), opens the page's event stream,
//! the phone answers the page's SQRL URL, the stream reports `confirmed`
//! with a single-use link, and the browser follows it to a session.
//!
//! Its extra number is the one the page is judged by: from the phone
//! holding its ident reply to the browser holding the `confirmed` event.

use std::time::Instant;

use super::{Devices, Settings, follow};
use crate::http::{EventStream, PageEvent};
use crate::outcome::{ErrorKind, LoginError, Step, Trace};
use crate::phone::Phone;

/// What the login page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPage {
    /// The attempt's first nut (names its event stream).
    pub nut: String,
    /// The SQRL URL of the QR code.
    pub link: String,
}

/// Reads the login page: the nut from `data-nut="…"` and the SQRL URL from
/// `<code id="url">…</code>`, or else the first `sqrl://`/`qrl://` URL on
/// the page and the nut in it.
pub fn parse_page(html: &str) -> Result<LoginPage, &'static str> {
    let link = between(html, "<code id=\"url\">", "</code>")
        .map(unescape)
        .or_else(|| first_sqrl_url(html))
        .ok_or("the page shows no SQRL URL")?;
    let nut = match between(html, "data-nut=\"", "\"") {
        Some(nut) => unescape(nut),
        None => link
            .split(['?', '&'])
            .find_map(|pair| pair.strip_prefix("nut="))
            .map(str::to_owned)
            .ok_or("the page's SQRL URL has no nut")?,
    };
    if nut.is_empty()
        || !nut
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return Err("the page's nut is not base64url text");
    }
    Ok(LoginPage { nut, link })
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text.get(from..)?.find(end)?;
    text.get(from..from + len)
}

fn first_sqrl_url(html: &str) -> Option<String> {
    let start = ["sqrl://", "qrl://"]
        .iter()
        .filter_map(|scheme| html.find(scheme))
        .min()?;
    let rest = html.get(start..)?;
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>'))
        .unwrap_or(rest.len());
    Some(unescape(rest.get(..end)?))
}

/// The HTML escapes our page (and most templates) use in attributes and text.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Reads events until `confirmed` (with its link); `pending` and `scanned`
/// are progress, anything else ends the login.
async fn confirmed(events: &mut EventStream, deadline: Instant) -> Result<PageEvent, ErrorKind> {
    loop {
        let event = events.next(deadline).await?;
        match event.state.as_str() {
            "pending" | "scanned" => {}
            "confirmed" if event.url.is_some() => return Ok(event),
            "confirmed" => return Err(ErrorKind::protocol("confirmed without a URL")),
            other => {
                return Err(ErrorKind::protocol(format!(
                    "page event {other:?} instead of confirmed"
                )));
            }
        }
    }
}

/// One login through the login page.
pub async fn login(
    settings: &Settings,
    devices: &mut Devices,
    phone: &Phone,
    trace: &mut Trace,
) -> Result<(), LoginError> {
    let site = &settings.site;
    let (reply, took) = devices
        .browser
        .get(&site.endpoint("/"), &[("accept", "text/html")])
        .await
        .map_err(|kind| LoginError::new(Step::Page, kind))?;
    if reply.status != 200 {
        return Err(
            LoginError::new(Step::Page, ErrorKind::HttpStatus(reply.status)).with_body(&reply.body),
        );
    }
    let page = parse_page(&reply.body).map_err(|reason| {
        LoginError::new(Step::Page, ErrorKind::protocol(reason)).with_body(&reply.body)
    })?;
    trace.step(Step::Page, took);

    let opened = Instant::now();
    let stream_url = site.endpoint(&format!("/login/events?nut={}", page.nut));
    let mut events = devices
        .browser
        .events(&stream_url)
        .await
        .map_err(|(kind, body)| {
            let error = LoginError::new(Step::Stream, kind);
            match body {
                Some(body) => error.with_body(&body),
                None => error,
            }
        })?;
    let first = events
        .next(opened + settings.timeout)
        .await
        .map_err(|kind| LoginError::new(Step::Stream, kind))?;
    if first.state != "pending" {
        return Err(LoginError::new(
            Step::Stream,
            ErrorKind::protocol(format!("first page event {:?}, not pending", first.state)),
        ));
    }
    trace.step(Step::Stream, opened.elapsed());

    let queried = phone
        .query(&page.link, site, &mut devices.phone, trace)
        .await?;

    // The phone's ident and the page's wait for `confirmed` run together,
    // so the event's arrival is seen when it happens, before or after the
    // phone reads its reply.
    let deadline = Instant::now() + settings.timeout;
    let (replied, event) = {
        let ident = phone.ident(queried, site, &mut devices.phone, trace);
        let wait = confirmed(&mut events, deadline);
        tokio::pin!(ident, wait);
        let mut replied = None;
        let mut event = None;
        while replied.is_none() || event.is_none() {
            tokio::select! {
                result = &mut ident, if replied.is_none() => replied = Some(result?),
                result = &mut wait, if event.is_none() => {
                    event = Some(result.map_err(|kind| LoginError::new(Step::Confirm, kind))?);
                }
            }
        }
        (replied, event)
    };
    let (Some(replied), Some(event)) = (replied, event) else {
        return Err(LoginError::new(
            Step::Confirm,
            ErrorKind::protocol("ident or confirmation missing"),
        ));
    };
    trace.confirmed_early = event.at < replied;
    trace.step(Step::Confirm, event.at.saturating_duration_since(replied));

    let url = event.url.unwrap_or_default();
    follow(settings, &mut devices.browser, &url, trace).await?;
    // Leaving the page closes its stream, as a browser navigating away does.
    drop(events);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_login_page() {
        let html = r#"<p><a id="link" class="button" href="qrl://h:1/cli.sqrl?nut=AB_c&amp;can=eA">x</a></p>
            <p class="url"><code id="url">qrl://h:1/cli.sqrl?nut=AB_c</code></p>
            <script id="sqrl" src="/static/login.js" data-nut="AB_c"></script>"#;
        let page = parse_page(html).unwrap();
        assert_eq!(page.nut, "AB_c");
        assert_eq!(page.link, "qrl://h:1/cli.sqrl?nut=AB_c");
    }

    #[test]
    fn falls_back_to_the_first_sqrl_url() {
        let html = r#"<a href="sqrl://example.com/sqrl?x=5&amp;nut=Zz9">sign in</a>"#;
        let page = parse_page(html).unwrap();
        assert_eq!(page.link, "sqrl://example.com/sqrl?x=5&nut=Zz9");
        assert_eq!(page.nut, "Zz9");
        assert!(parse_page("<html>hello</html>").is_err());
        assert!(parse_page(r#"<code id="url">qrl://h/cli.sqrl?nut=</code>"#).is_err());
    }
}
