//! Name resolution for the routes (issue 12): the system resolver, with every answer for a
//! route's host checked by the `[responders]` guard ([`vigil_core::net_guard`]), so that a
//! public name that resolves (or re-resolves, DNS rebinding) to an internal address is
//! refused when the connection is made, not only when the configuration is read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use vigil_core::net_guard::Guard;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers used instead of DNS, by host name (tests).
pub(crate) type Fixed = Arc<Vec<(String, IpAddr)>>;

/// The resolver of one route's client.
#[derive(Clone)]
pub(crate) struct GuardedResolver {
    pub(crate) guard: Arc<Guard>,
    /// The route's host; other names (an HTTP proxy's, from `HTTPS_PROXY`) resolve
    /// unchecked: the proxy is the operator's, and it resolves the target itself.
    pub(crate) host: String,
    pub(crate) fixed: Fixed,
}

fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

impl GuardedResolver {
    /// The addresses of `name` (port 0: the caller's), refused with a
    /// [`vigil_core::net_guard::Refusal`] when `name` is the route's host and one of them
    /// is internal and not allowed.
    pub(crate) async fn lookup(&self, name: &str) -> Result<Vec<SocketAddr>, BoxError> {
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
