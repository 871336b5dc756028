//! Outbound HTTP for Vigil (issue 12): the one place where a client that talks to an
//! operator-configured URL (a webhook, Slack, Shuffle, SMTP, VirusTotal, an LLM) resolves
//! names. Every answer for the target's host is checked by a [`Guard`] from
//! [`vigil_core::net_guard`], so a public name that resolves, or re-resolves (DNS rebinding),
//! to an internal address is refused when the connection is made, not only when the
//! configuration is read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use vigil_core::net_guard::Guard;

/// The error type of [`reqwest::dns::Resolve`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers used instead of DNS, by host name (tests: a public name pointing at 127.0.0.1).
pub type Fixed = Arc<Vec<(String, IpAddr)>>;

/// The resolver of one client: the system's, with every answer for `host` checked by
/// `guard`. Other names (an HTTP proxy's, from `HTTPS_PROXY`) resolve unchecked: the proxy
/// is the operator's, and it resolves the target itself.
#[derive(Clone)]
pub struct GuardedResolver {
    guard: Arc<Guard>,
    host: String,
    fixed: Fixed,
}

/// Host names compare without case and without a trailing dot.
fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

impl GuardedResolver {
    /// A resolver for clients of `host` (the configured URL's host), checked by `guard`,
    /// answering from `fixed` first.
    pub fn new(guard: Arc<Guard>, host: impl Into<String>, fixed: Fixed) -> GuardedResolver {
        GuardedResolver {
            guard,
            host: host.into(),
            fixed,
        }
    }

    /// The guard the answers are checked with.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The addresses of `name` (port 0: the caller's), refused with a
    /// [`vigil_core::net_guard::Refusal`] when `name` is the target's host and one of them
    /// is internal and not allowed.
    pub async fn lookup(&self, name: &str) -> Result<Vec<SocketAddr>, BoxError> {
        let fixed: Vec<SocketAddr> = self
            .fixed
            .iter()
            .filter(|(h, _)| same_host(h, name))
            .map(|(_, ip)| SocketAddr::new(*ip, 0))
            .collect();
        let addrs = if fixed.is_empty() {
            tokio::net::lookup_host((name, 0)).await?.collect()
        } else {
            fixed
        };
        if same_host(name, &self.host) {
            Ok(self.guard.vet(name, addrs)?)
        } else {
            Ok(addrs)
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.lookup(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Installs rustls' ring provider as the process default unless one is installed: reqwest
/// is built with `rustls-no-provider` and panics without one.
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(allow_internal: bool, fixed: &[(&str, &str)]) -> GuardedResolver {
        let guard = Guard::new("[test]", allow_internal, &[]).unwrap();
        let fixed = fixed
            .iter()
            .map(|(h, ip)| (h.to_string(), ip.parse().unwrap()))
            .collect();
        GuardedResolver::new(Arc::new(guard), "hooks.example.com", Arc::new(fixed))
    }

    #[tokio::test]
    async fn the_target_host_is_checked_and_other_names_are_not() {
        let r = resolver(
            false,
            &[
                ("hooks.example.com", "10.0.0.7"),
                ("proxy.internal", "10.0.0.8"),
            ],
        );
        let err = r.lookup("HOOKS.example.com.").await.unwrap_err();
        let refusal = vigil_core::net_guard::find_refusal(err.as_ref()).expect("a refusal");
        assert!(refusal.to_string().contains("10.0.0.7"), "{refusal}");
        // A proxy's name is the operator's and resolves unchecked.
        let proxy = r.lookup("proxy.internal").await.unwrap();
        assert_eq!(proxy, vec!["10.0.0.8:0".parse().unwrap()]);
    }

    #[tokio::test]
    async fn public_answers_pass_and_allow_internal_lets_private_ones_through() {
        let r = resolver(false, &[("hooks.example.com", "93.184.215.14")]);
        assert_eq!(
            r.lookup("hooks.example.com").await.unwrap(),
            vec!["93.184.215.14:0".parse().unwrap()]
        );
        let r = resolver(true, &[("hooks.example.com", "192.168.1.5")]);
        assert_eq!(
            r.lookup("hooks.example.com").await.unwrap(),
            vec!["192.168.1.5:0".parse().unwrap()]
        );
    }
}
