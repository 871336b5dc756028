//! The analysts' web console, served at `/`.
//!
//! Plain HTML, CSS and JavaScript modules under `crates/vigil-server/console/`, compiled
//! into the binary: `cargo build` alone produces it, with no Node step. The files hold no
//! data and answer without a credential, like `/docs`; the page asks for an API key or a
//! JWT and every figure it shows comes from the REST API with that credential.
//!
//! Event content is attacker-controlled. The scripts build the page with DOM calls and text
//! nodes only; the one piece of server-made HTML, a triage report, is rendered by
//! [`crate::markdown`] with raw HTML escaped. As a second wall every console response
//! carries a Content-Security-Policy that allows scripts and styles from this origin only:
//! no inline script, no `eval`, no framing.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The policy on every console file.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's files: name, content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "pages.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/pages.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/ui.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../console/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../console/favicon.svg"),
    ),
];

const INDEX: &str = include_str!("../console/index.html");

fn respond(content_type: &'static str, body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Files change with the binary; `no-cache` revalidates instead of serving an old
    // script against a new API.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /`: the console's page.
pub async fn index() -> Response {
    respond("text/html; charset=utf-8", INDEX)
}

/// `GET /console/{file}`: a script, the style sheet or the icon.
pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => respond(content_type, body),
        None => crate::AppError::NotFound(format!("no console file `{name}`")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        for (name, _, body) in FILES {
            for line in body.lines() {
                let Some(rest) = line.trim().strip_prefix("import ") else {
                    continue;
                };
                let Some(from) = rest.split(" from ").nth(1) else {
                    continue;
                };
                let target = from.trim_matches(|c| c == '\'' || c == '"' || c == ';' || c == ' ');
                let target = target.trim_start_matches("./");
                assert!(
                    FILES.iter().any(|(n, _, _)| *n == target),
                    "{name} imports {target}, which is not served"
                );
            }
        }
        assert!(INDEX.contains("/console/app.js"));
    }

    #[test]
    fn no_script_writes_raw_html() {
        // Event content reaches these scripts; only text nodes may carry it. The one place
        // that sets HTML is the triage report, rendered safe by the server.
        for (name, _, body) in FILES.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            let lines: Vec<&str> = body.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let risky = [
                    "innerHTML",
                    "outerHTML",
                    "insertAdjacentHTML",
                    "document.write",
                    "eval(",
                ]
                .iter()
                .find(|p| line.contains(*p));
                if let Some(p) = risky {
                    let context = &lines[i.saturating_sub(4)..=i];
                    assert!(
                        context.iter().any(|l| l.contains("SAFE-HTML:")),
                        "{name}:{} uses {p} without a SAFE-HTML: justification just above",
                        i + 1
                    );
                }
            }
        }
    }
}
