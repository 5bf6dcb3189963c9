//! What every HTML page shares: the frame around its body, the headers it is
//! served with, and how it shows times.
//!
//! Pages are `maud` templates: every value interpolated into one is escaped,
//! unless it is wrapped in [`maud::PreEscaped`], which only markup the
//! server itself produced may be.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// How every page presents the site: where the service is mounted, the
/// site's name and logo, and where a visitor learns what SQRL is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branding {
    /// The path prefix every link starts with (empty, or `/auth`).
    pub prefix: String,
    /// The site's name.
    pub site_name: String,
    /// The logo, if any (an `https://` URL or a path on this host).
    pub logo_url: Option<String>,
    /// "What is SQRL? Get an app".
    pub help_url: String,
}

impl Branding {
    /// A bare frame under `prefix` (unit tests).
    pub fn plain(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            site_name: "example.com".to_owned(),
            logo_url: None,
            help_url: "https://help.example/sqrl".to_owned(),
        }
    }
}

/// A complete page around `body`: the site's name (and logo) above it, the
/// help link below it.
pub fn page(brand: &Branding, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " \u{b7} " (brand.site_name) }
                link rel="stylesheet" href={ (brand.prefix) "/static/style.css" };
            }
            body {
                header class="site" {
                    @if let Some(logo) = &brand.logo_url {
                        img class="logo" src=(logo) alt="";
                    }
                    span class="site-name" id="site-name" { (brand.site_name) }
                }
                main { (body) }
                footer class="site" {
                    a id="help" href=(brand.help_url) rel="noopener noreferrer" { "What is SQRL? Get an app" }
                }
            }
        }
    }
}

/// A page as a response, under the content security policy `csp`.
pub fn response(csp: &'static str, page: Markup) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        page.into_string(),
    )
        .into_response()
}

/// A time as `<time>`: UTC text the server wrote, with the instant in
/// `datetime`, which `/static/local-time.js` shows in the viewer's zone.
pub fn local_time(seconds: u64) -> Markup {
    let instant = i64::try_from(seconds)
        .ok()
        .and_then(|seconds| time::OffsetDateTime::from_unix_timestamp(seconds).ok())
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    html! {
        @match instant {
            Some(instant) => time datetime=(instant) { (timestamp(seconds)) },
            None => (timestamp(seconds)),
        }
    }
}

/// `GET /static/local-time.js`.
pub const LOCAL_TIME_JS: &str = include_str!("assets/local-time.js");

/// A UTC timestamp `YYYY-MM-DD HH:MM:SS UTC` for Unix seconds (the seconds
/// themselves for a time past what a calendar date can say).
pub fn timestamp(seconds: u64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    i64::try_from(seconds)
        .ok()
        .and_then(|seconds| time::OffsetDateTime::from_unix_timestamp(seconds).ok())
        .and_then(|at| at.format(format).ok())
        .unwrap_or_else(|| format!("{seconds} s after 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_is_text() {
        let page = page(&Branding::plain(""), "<script>\"x\"</script>", html! {}).into_string();
        assert!(
            page.contains(
                "<title>&lt;script&gt;&quot;x&quot;&lt;/script&gt; \u{b7} example.com</title>"
            ),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
    }

    #[test]
    fn the_stylesheet_is_under_the_prefix() {
        let page = page(&Branding::plain("/auth"), "t", html! {}).into_string();
        assert!(page.contains(r#"href="/auth/static/style.css""#), "{page}");
    }

    #[test]
    fn the_frame_names_the_site_and_links_to_help() {
        let brand = Branding {
            prefix: String::new(),
            site_name: "Shop <&>".to_owned(),
            logo_url: Some("/logo.svg?a=1&b=2".to_owned()),
            help_url: "https://help.example/sqrl?x=\"y".to_owned(),
        };
        let page = page(&brand, "Sign in", html! {}).into_string();
        assert!(
            page.contains("<title>Sign in \u{b7} Shop &lt;&amp;&gt;</title>"),
            "{page}"
        );
        assert!(
            page.contains(r#"<img class="logo" src="/logo.svg?a=1&amp;b=2" alt="">"#),
            "{page}"
        );
        assert!(
            page.contains(r#"href="https://help.example/sqrl?x=&quot;y""#),
            "{page}"
        );
        let bare = super::page(&Branding::plain(""), "t", html! {}).into_string();
        assert!(!bare.contains("<img"), "{bare}");
    }

    #[test]
    fn local_times_carry_the_instant_for_the_viewer_zone() {
        assert_eq!(
            local_time(1_700_000_000).into_string(),
            "<time datetime=\"2023-11-14T22:13:20Z\">2023-11-14 22:13:20 UTC</time>"
        );
        assert_eq!(
            local_time(u64::MAX).into_string(),
            format!("{} s after 1970", u64::MAX)
        );
    }

    #[test]
    fn formats_timestamps() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(timestamp(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(timestamp(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(timestamp(u64::MAX), format!("{} s after 1970", u64::MAX));
    }
}
