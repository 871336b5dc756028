//! The outbound-target guard (issue 12): Vigil's own HTTP requests (responder webhooks,
//! Slack, Shuffle, the LLM, VirusTotal) must not become a way into internal addresses
//! (server-side request forgery) unless the operator allows it.
//!
//! Pure functions only; the crates that send use them twice:
//!
//! * at configuration time, [`Guard::check_target`] on the URL: http/https only, no
//!   `user:password@`, and a host that is a literal internal address or a name reserved for
//!   internal use (`localhost`, `*.localhost`, `*.internal`, `*.local`, `*.home.arpa`,
//!   cloud metadata names) is refused;
//! * at connection time, [`Guard::vet`] on every DNS answer for the target's host (their
//!   resolvers wrap the system one), so that a public name that resolves, or later
//!   re-resolves (DNS rebinding), to an internal address is refused too. Redirects are
//!   off in every client, so no other host is ever asked for.
//!
//! "Internal" ([`is_internal`]) is every address that is not globally reachable in the
//! IANA special-purpose registries, and the IPv6 forms that embed one: loopback, private
//! and unique-local, link-local, carrier-grade NAT, "this network", unspecified,
//! broadcast, multicast, reserved, benchmarking, **documentation ranges too** (they are
//! never on the internet: an answer in them is a misconfiguration or a lab, and a lab can
//! allow them), IPv4-mapped/-compatible/-translated, NAT64 (`64:ff9b::/96`) and 6to4
//! addresses embedding an internal IPv4, local-use NAT64, Teredo, and the deprecated
//! site-local range.
//!
//! Cloud metadata ([`is_metadata`]: all of 169.254.0.0/16, where AWS, GCP, Azure, OCI,
//! OpenStack and DigitalOcean serve it and ECS/EKS serve credentials; Alibaba's
//! 100.100.100.200; AWS's `fd00:ec2::/64`) is stricter: `allow_internal = true` does not
//! open it; only an `internal_allow` CIDR block that contains the address does.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// IPv4 ranges that are not globally reachable: (network, prefix length, name).
const V4_INTERNAL: &[(u32, u8, &str)] = &[
    (0x0000_0000, 8, "\"this network\" 0.0.0.0/8"),
    (0x0A00_0000, 8, "private 10.0.0.0/8"),
    (0x6440_0000, 10, "carrier-grade NAT 100.64.0.0/10"),
    (0x7F00_0000, 8, "loopback 127.0.0.0/8"),
    (0xA9FE_0000, 16, "link-local 169.254.0.0/16"),
    (0xAC10_0000, 12, "private 172.16.0.0/12"),
    (0xC000_0000, 24, "IETF protocol assignments 192.0.0.0/24"),
    (0xC000_0200, 24, "documentation 192.0.2.0/24"),
    (
        0xC058_6300,
        24,
        "deprecated 6to4 relay anycast 192.88.99.0/24",
    ),
    (0xC0A8_0000, 16, "private 192.168.0.0/16"),
    (0xC612_0000, 15, "benchmarking 198.18.0.0/15"),
    (0xC633_6400, 24, "documentation 198.51.100.0/24"),
    (0xCB00_7100, 24, "documentation 203.0.113.0/24"),
    (0xE000_0000, 4, "multicast 224.0.0.0/4"),
    (0xFFFF_FFFF, 32, "broadcast 255.255.255.255"),
    (0xF000_0000, 4, "reserved 240.0.0.0/4"),
];

/// IPv6 ranges that are not globally reachable (those embedding an IPv4 are decided by
/// the IPv4, in [`embedded_ipv4`]).
const V6_INTERNAL: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified ::"),
    (1, 128, "loopback ::1"),
    (
        0x0064_ff9b_0001_u128 << 80,
        48,
        "local-use NAT64 64:ff9b:1::/48",
    ),
    (0x0100_u128 << 112, 64, "discard-only 100::/64"),
    (0x2001_0000_u128 << 96, 32, "Teredo 2001::/32"),
    (0x2001_0002_u128 << 96, 48, "benchmarking 2001:2::/48"),
    (0x2001_0db8_u128 << 96, 32, "documentation 2001:db8::/32"),
    (0x3fff_u128 << 112, 20, "documentation 3fff::/20"),
    (0x5f00_u128 << 112, 16, "SRv6 SIDs 5f00::/16"),
    (0xfc00_u128 << 112, 7, "unique-local fc00::/7"),
    (0xfe80_u128 << 112, 10, "link-local fe80::/10"),
    (0xfec0_u128 << 112, 10, "site-local fec0::/10"),
    (0xff00_u128 << 112, 8, "multicast ff00::/8"),
];

fn v4_in(ip: Ipv4Addr, net: u32, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == net & mask
}

fn v6_in(ip: Ipv6Addr, net: u128, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    u128::from(ip) & mask == net & mask
}

/// The IPv4 address an IPv6 address stands for, when it is one of the forms that carry
/// one to an IPv4 host: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`
/// (deprecated; `::` and `::1` excluded), IPv4-translated `::ffff:0:a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::/48`.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from(bits as u32);
    if v6_in(ip, 0xffff_u128 << 32, 96)
        || v6_in(ip, 0xffff_u128 << 48, 96)
        || v6_in(ip, 0x0064_ff9b_u128 << 96, 96)
        || (v6_in(ip, 0, 96) && bits > 1)
    {
        return Some(low);
    }
    if v6_in(ip, 0x2002_u128 << 112, 16) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

/// Which not-globally-reachable range `ip` is in (`None`: a public address). IPv6 forms
/// embedding an IPv4 ([`embedded_ipv4`]) are decided by the IPv4.
pub fn internal_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => V4_INTERNAL
            .iter()
            .find(|(net, prefix, _)| v4_in(v4, *net, *prefix))
            .map(|r| r.2),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return internal_range(IpAddr::V4(v4));
            }
            V6_INTERNAL
                .iter()
                .find(|(net, prefix, _)| v6_in(v6, *net, *prefix))
                .map(|r| r.2)
                .or_else(|| {
                    (!v6_in(v6, 0x2000_u128 << 112, 3))
                        .then_some("not global unicast, outside 2000::/3")
                })
        }
    }
}

/// Whether `ip` is not globally reachable (see the module documentation for the list).
pub fn is_internal(ip: IpAddr) -> bool {
    internal_range(ip).is_some()
}

/// Whether `ip` is where a cloud serves instance metadata and credentials: all of
/// 169.254.0.0/16, 100.100.100.200 (Alibaba), `fd00:ec2::/64` (AWS), and their IPv6
/// forms. Always internal too.
pub fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_in(v4, 0xA9FE_0000, 16) || v4 == Ipv4Addr::new(100, 100, 100, 200),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => is_metadata(IpAddr::V4(v4)),
            None => v6_in(v6, 0xfd00_0ec2_u128 << 96, 64),
        },
    }
}

/// Host names that are metadata services wherever they resolve.
const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.goog",
    "metadata.google.internal",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Why a name is internal without resolving it, and whether it is a metadata name.
fn reserved_name(host: &str) -> Option<(&'static str, bool)> {
    if METADATA_NAMES.contains(&host) {
        return Some(("a cloud metadata service name", true));
    }
    let under = |suffix: &str| host == suffix || host.ends_with(&format!(".{suffix}"));
    if under("localhost") {
        Some(("loopback by definition (RFC 6761 localhost)", false))
    } else if under("internal") {
        Some(("under the private-use top-level domain .internal", false))
    } else if under("local") {
        Some(("a link-local mDNS name (.local)", false))
    } else if under("home.arpa") {
        Some(("a home network name (.home.arpa)", false))
    } else {
        None
    }
}

/// `host` lowercased, without IPv6 brackets or a final dot.
fn normalize(host: &str) -> String {
    let h = host.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase()
}

/// A refused target: which host, which address (none when the name alone decides), why,
/// and the settings that would allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The host as configured.
    pub host: String,
    /// The address refused (the literal, or the DNS answer).
    pub address: Option<IpAddr>,
    /// The range or kind of name.
    pub reason: &'static str,
    /// A cloud metadata address or name (`allow_internal` does not open it).
    pub metadata: bool,
    /// The configuration section whose keys allow it, e.g. `[responders]`.
    pub section: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.metadata {
            "a cloud metadata"
        } else {
            "an internal"
        };
        match self.address {
            Some(a) if normalize(&self.host).parse::<IpAddr>() == Ok(a) => {
                write!(f, "{a} is {what} address ({})", self.reason)?
            }
            Some(a) => write!(
                f,
                "`{}` resolves to {a}, {what} address ({})",
                self.host, self.reason
            )?,
            None => write!(f, "`{}` is {}", self.host, self.reason)?,
        }
        let s = &self.section;
        if self.metadata {
            write!(
                f,
                ": refused even with {s} allow_internal = true; to reach it anyway, list the \
                 address (CIDR) in {s} internal_allow"
            )
        } else {
            write!(
                f,
                ": internal targets are refused; set {s} allow_internal = true, or list the \
                 address (CIDR) or host in {s} internal_allow"
            )
        }
    }
}

impl std::error::Error for Refusal {}

/// Why a URL cannot be a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not http or https.
    #[error("the scheme must be http or https, not `{0}`")]
    Scheme(String),
    /// `user:password@` in the URL.
    #[error(
        "credentials in the URL (user:password@…) are refused: use the key, secret or header settings"
    )]
    Userinfo,
    /// No host.
    #[error("the URL has no host")]
    NoHost,
    /// An internal or metadata host.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// One `internal_allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    Net(IpAddr, u8),
    /// Lowercase, no final dot.
    Host(String),
    /// `*.suffix`: the stored `.suffix` and everything under it.
    Under(String),
}

/// The checks for one subsystem's targets: whether internal addresses are allowed, and
/// the explicit exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    section: String,
    allow_internal: bool,
    allowed: Vec<Allowed>,
}

impl Guard {
    /// A guard for the subsystem configured in `section` (e.g. `[responders]`, used in
    /// messages), from its `allow_internal` and `internal_allow` keys. `internal_allow`
    /// entries are addresses, CIDR blocks (`10.1.2.0/24`, `fd00::/8`), host names
    /// (`shuffle.corp`: whatever it resolves to, except metadata) or `*.suffix`. Fails on
    /// an entry that is none of these, naming it.
    pub fn new(
        section: impl Into<String>,
        allow_internal: bool,
        internal_allow: &[String],
    ) -> Result<Guard, String> {
        let section = section.into();
        let mut allowed = Vec::with_capacity(internal_allow.len());
        for raw in internal_allow {
            let entry = raw.trim();
            let bad = || {
                format!(
                    "{section} internal_allow: `{raw}` is neither an address, a CIDR block \
                     (10.1.2.0/24), a host name nor *.suffix"
                )
            };
            if let Some((addr, len)) = entry.split_once('/') {
                let ip: IpAddr = addr.parse().map_err(|_| bad())?;
                let len: u8 = len.parse().map_err(|_| bad())?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                if len > max {
                    return Err(bad());
                }
                allowed.push(Allowed::Net(ip, len));
            } else if let Ok(ip) = normalize(entry).parse::<IpAddr>() {
                allowed.push(Allowed::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else {
                let name = normalize(entry);
                let (wild, rest) = match name.strip_prefix("*.") {
                    Some(rest) => (true, rest),
                    None => (false, name.as_str()),
                };
                let valid = !rest.is_empty()
                    && rest.split('.').all(|label| {
                        !label.is_empty()
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    });
                if !valid {
                    return Err(bad());
                }
                allowed.push(if wild {
                    Allowed::Under(format!(".{rest}"))
                } else {
                    Allowed::Host(rest.to_string())
                });
            }
        }
        Ok(Guard {
            section,
            allow_internal,
            allowed,
        })
    }

    /// Whether internal addresses are allowed (`allow_internal`).
    pub fn allows_internal(&self) -> bool {
        self.allow_internal
    }

    /// Whether an `internal_allow` CIDR block contains `ip` (or the IPv4 it embeds).
    fn net_allowed(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed.iter().any(|a| match a {
            Allowed::Net(net, len) => {
                [Some(ip), embedded]
                    .into_iter()
                    .flatten()
                    .any(|ip| match (ip, net) {
                        (IpAddr::V4(ip), IpAddr::V4(net)) => v4_in(ip, u32::from(*net), *len),
                        (IpAddr::V6(ip), IpAddr::V6(net)) => v6_in(ip, u128::from(*net), *len),
                        _ => false,
                    })
            }
            _ => false,
        })
    }

    /// Whether `internal_allow` names `host` (normalized).
    fn host_allowed(&self, host: &str) -> bool {
        self.allowed.iter().any(|a| match a {
            Allowed::Host(h) => h == host,
            Allowed::Under(suffix) => host.ends_with(suffix.as_str()),
            Allowed::Net(..) => false,
        })
    }

    fn refuse(
        &self,
        host: &str,
        address: Option<IpAddr>,
        reason: &'static str,
        metadata: bool,
    ) -> Refusal {
        Refusal {
            host: host.to_string(),
            address,
            reason,
            metadata,
            section: self.section.clone(),
        }
    }

    /// Whether `host` (as configured) may be connected to at `ip` (a literal or a DNS
    /// answer): public addresses always; metadata addresses only inside an
    /// `internal_allow` CIDR block; other internal addresses with `allow_internal`, inside
    /// an `internal_allow` block, or when `internal_allow` names the host.
    pub fn check_addr(&self, host: &str, ip: IpAddr) -> Result<(), Refusal> {
        let Some(reason) = internal_range(ip) else {
            return Ok(());
        };
        if self.net_allowed(ip) {
            return Ok(());
        }
        if is_metadata(ip) {
            return Err(self.refuse(host, Some(ip), reason, true));
        }
        if self.allow_internal || self.host_allowed(&normalize(host)) {
            return Ok(());
        }
        Err(self.refuse(host, Some(ip), reason, false))
    }

    /// The configuration-time check of a host (a name, an IPv4, or an IPv6 with or
    /// without brackets): a literal address as in [`Guard::check_addr`]; a name reserved
    /// for internal use (`localhost`, `*.localhost`, `*.internal`, `*.local`,
    /// `*.home.arpa`) unless allowed, and a metadata name unless `internal_allow` names it.
    /// Other names are checked when they resolve.
    pub fn check_host(&self, host: &str) -> Result<(), Refusal> {
        let h = normalize(host);
        if let Ok(ip) = h.parse::<IpAddr>() {
            return self.check_addr(host, ip);
        }
        let Some((reason, metadata)) = reserved_name(&h) else {
            return Ok(());
        };
        if self.host_allowed(&h) || (!metadata && self.allow_internal) {
            return Ok(());
        }
        Err(self.refuse(host, None, reason, metadata))
    }

    /// The configuration-time check of a URL's parts: `scheme` http or https, no
    /// credentials, a `host` that passes [`Guard::check_host`].
    pub fn check_target(
        &self,
        scheme: &str,
        has_userinfo: bool,
        host: Option<&str>,
    ) -> Result<(), TargetError> {
        if !matches!(scheme, "http" | "https") {
            return Err(TargetError::Scheme(scheme.to_string()));
        }
        if has_userinfo {
            return Err(TargetError::Userinfo);
        }
        let host = host.filter(|h| !h.is_empty()).ok_or(TargetError::NoHost)?;
        Ok(self.check_host(host)?)
    }

    /// The connection-time check of a DNS answer for `host`: every address must pass
    /// [`Guard::check_addr`] (one internal address refuses the answer, as a rebinding
    /// answer often mixes a public one in). Returns the addresses to connect to.
    pub fn vet(
        &self,
        host: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        let addrs: Vec<SocketAddr> = addrs.into_iter().collect();
        for a in &addrs {
            self.check_addr(host, a.ip())?;
        }
        Ok(addrs)
    }
}

/// The [`Refusal`] in an error's chain of sources, if any (a request refused by a guarded
/// resolver comes back as the HTTP client's connection error wrapping it).
pub fn find_refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refusal> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    let mut depth = 0;
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<Refusal>() {
            return Some(r);
        }
        depth += 1;
        if depth > 16 {
            break;
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_table() {
        let internal = [
            // IPv4
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001:db8::1",
            "2001::1",
            "2001:2::1",
            "3fff::1",
            "64:ff9b:1::1",
            "5f00::1",
            "fe00::1",
            "4000::1",
            // IPv4 embedded in IPv6
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::10.1.2.3",
            "::ffff:0:127.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.0.1",
            "2002:7f00:1::1",
            "2002:a00:1::",
        ];
        for a in internal {
            assert!(is_internal(ip(a)), "{a} should be internal");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "::8.8.8.8",
            "2002:808:808::1",
        ];
        for a in public {
            assert!(!is_internal(ip(a)), "{a} should be public");
        }
    }

    #[test]
    fn metadata_addresses() {
        for a in [
            "169.254.169.254",
            "169.254.170.2",
            "100.100.100.200",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "64:ff9b::169.254.169.254",
            "::ffff:100.100.100.200",
        ] {
            assert!(is_metadata(ip(a)), "{a}");
            assert!(is_internal(ip(a)), "{a}");
        }
        for a in [
            "127.0.0.1",
            "10.0.0.1",
            "fd00:ec3::254",
            "8.8.8.8",
            "fe80::1",
        ] {
            assert!(!is_metadata(ip(a)), "{a}");
        }
    }

    #[test]
    fn embedded_forms() {
        assert_eq!(
            embedded_ipv4("::ffff:1.2.3.4".parse().unwrap()),
            Some(Ipv4Addr::new(1, 2, 3, 4))
        );
        assert_eq!(
            embedded_ipv4("2002:102:304::".parse().unwrap()),
            Some(Ipv4Addr::new(1, 2, 3, 4))
        );
        assert_eq!(embedded_ipv4("::1".parse().unwrap()), None);
        assert_eq!(embedded_ipv4("::".parse().unwrap()), None);
        assert_eq!(embedded_ipv4("2606:4700::1".parse().unwrap()), None);
    }

    fn guard(allow_internal: bool, allow: &[&str]) -> Guard {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        Guard::new("[responders]", allow_internal, &allow).unwrap()
    }

    #[test]
    fn config_time_refusals() {
        let g = guard(false, &[]);
        for host in [
            "127.0.0.1",
            "[::1]",
            "::ffff:127.0.0.1",
            "[::ffff:7f00:1]",
            "10.1.2.3",
            "169.254.169.254",
            "localhost",
            "LOCALHOST.",
            "app.localhost",
            "db.corp.internal",
            "printer.local",
            "nas.home.arpa",
            "metadata.google.internal",
            "0.0.0.0",
        ] {
            let e = g.check_host(host).expect_err(host);
            let text = e.to_string();
            assert!(text.contains("[responders]"), "{text}");
        }
        for host in [
            "hooks.slack.com",
            "8.8.8.8",
            "[2606:4700::1111]",
            "example.org",
        ] {
            g.check_host(host).unwrap();
        }
        assert_eq!(
            g.check_target("ftp", false, Some("example.org")),
            Err(TargetError::Scheme("ftp".into()))
        );
        assert_eq!(
            g.check_target("https", true, Some("example.org")),
            Err(TargetError::Userinfo)
        );
        assert_eq!(
            g.check_target("https", false, None),
            Err(TargetError::NoHost)
        );
        assert!(matches!(
            g.check_target("http", false, Some("127.0.0.1")),
            Err(TargetError::Refused(_))
        ));
        g.check_target("https", false, Some("hooks.slack.com"))
            .unwrap();
    }

    #[test]
    fn messages_name_the_address_and_the_keys() {
        let g = guard(false, &[]);
        let e = g
            .check_addr("hooks.example.org", ip("127.0.0.1"))
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("`hooks.example.org` resolves to 127.0.0.1"),
            "{text}"
        );
        assert!(text.contains("loopback"), "{text}");
        assert!(
            text.contains("[responders] allow_internal = true"),
            "{text}"
        );
        assert!(text.contains("[responders] internal_allow"), "{text}");
        let e = g.check_host("127.0.0.1").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("127.0.0.1 is an internal address"),
            "{e}"
        );
        let e = guard(true, &[]).check_host("169.254.169.254").unwrap_err();
        assert!(e.metadata);
        assert!(e.to_string().contains("cloud metadata"), "{e}");
        assert!(e.to_string().contains("refused even with"), "{e}");
    }

    #[test]
    fn allow_internal_opens_all_but_metadata() {
        let g = guard(true, &[]);
        for host in ["127.0.0.1", "[::1]", "localhost", "10.0.0.1", "db.internal"] {
            g.check_host(host).unwrap();
        }
        for host in [
            "169.254.169.254",
            "[::ffff:169.254.169.254]",
            "[fd00:ec2::254]",
            "100.100.100.200",
            "metadata.google.internal",
        ] {
            assert!(g.check_host(host).unwrap_err().metadata, "{host}");
        }
        assert!(
            g.check_addr("llm.example.org", ip("169.254.169.254"))
                .unwrap_err()
                .metadata
        );
    }

    #[test]
    fn internal_allow_entries() {
        let g = guard(
            false,
            &[
                "10.1.2.0/24",
                "shuffle.corp",
                "*.soc.example",
                "fd00::5",
                "169.254.169.254/32",
            ],
        );
        g.check_addr("x", ip("10.1.2.200")).unwrap();
        g.check_addr("x", ip("::ffff:10.1.2.3")).unwrap();
        g.check_addr("x", ip("10.1.3.1")).unwrap_err();
        g.check_addr("x", ip("fd00::5")).unwrap();
        g.check_addr("x", ip("fd00::6")).unwrap_err();
        g.check_addr("shuffle.corp", ip("10.9.9.9")).unwrap();
        g.check_addr("SHUFFLE.CORP.", ip("10.9.9.9")).unwrap();
        g.check_addr("a.soc.example", ip("192.168.0.1")).unwrap();
        g.check_addr("soc.example", ip("192.168.0.1")).unwrap_err();
        // A name does not open metadata; the CIDR block does.
        g.check_addr("x", ip("169.254.169.254")).unwrap();
        let g = guard(false, &["shuffle.corp"]);
        assert!(
            g.check_addr("shuffle.corp", ip("169.254.169.254"))
                .unwrap_err()
                .metadata
        );
        let g = guard(false, &["app.internal", "metadata.google.internal"]);
        g.check_host("app.internal").unwrap();
        g.check_host("metadata.google.internal").unwrap();
        g.check_host("other.internal").unwrap_err();
        for bad in ["", "10.0.0.0/33", "::/129", "bad host", "a..b", "x/y", "*."] {
            let e = Guard::new("[x]", false, &[bad.to_string()]).unwrap_err();
            assert!(e.contains("[x] internal_allow"), "{e}");
        }
    }

    #[test]
    fn vet_refuses_an_answer_with_any_internal_address() {
        let g = guard(false, &[]);
        let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:443".parse().unwrap();
        assert_eq!(g.vet("example.org", [public]).unwrap(), vec![public]);
        let e = g.vet("example.org", [public, local]).unwrap_err();
        assert_eq!(e.address, Some(local.ip()));
        assert_eq!(guard(true, &[]).vet("h", [local]).unwrap(), vec![local]);
    }

    #[test]
    fn refusals_are_found_in_error_chains() {
        #[derive(Debug)]
        struct Outer(Box<dyn std::error::Error + Send + Sync>);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("connect error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.0)
            }
        }
        let r = guard(false, &[]).check_host("localhost").unwrap_err();
        let e = Outer(Box::new(r.clone()));
        assert_eq!(find_refusal(&e), Some(&r));
        let e = Outer("other".into());
        assert_eq!(find_refusal(&e), None);
    }
}
