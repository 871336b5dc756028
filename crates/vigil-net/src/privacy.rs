//! Keyed pseudonyms for IP addresses (seed 002's "IP address hashing").
//!
//! With a key, every address is replaced before it is stored, learned or reported by a
//! pseudonym derived from `HMAC-SHA256(key, address)`: the same address always gets the
//! same pseudonym (so rarity and baselines still work), but without the key nobody can
//! recover or confirm an address (a plain hash of an IPv4 address is reversed by trying
//! all 2³² of them). The pseudonym is itself an IPv6 address, so records keep their shape:
//! internal addresses map into `fd76:6967::/32` (unique-local), public ones into
//! `2001:db8::/32` (documentation), which keeps "internal or public" as a feature and
//! marks pseudonyms as such for a reader. 96 bits of the HMAC remain: collisions are
//! negligible.

use crate::record::is_internal;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, Ipv6Addr};

/// Replaces addresses with keyed pseudonyms, or leaves them alone without a key.
#[derive(Clone, Default)]
pub struct IpPseudonyms {
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for IpPseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("IpPseudonyms")
            .field("enabled", &self.key.is_some())
            .finish()
    }
}

/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

impl IpPseudonyms {
    /// Pseudonyms under `key` (at least [`MIN_KEY_BYTES`]), or none.
    pub fn new(key: Option<&str>) -> Result<IpPseudonyms, String> {
        match key {
            None => Ok(IpPseudonyms { key: None }),
            Some(k) if k.len() < MIN_KEY_BYTES => Err(format!(
                "the IP hashing key must be at least {MIN_KEY_BYTES} bytes (it is {})",
                k.len()
            )),
            Some(k) => Ok(IpPseudonyms {
                key: Some(k.as_bytes().to_vec()),
            }),
        }
    }

    /// Whether addresses are replaced.
    pub fn enabled(&self) -> bool {
        self.key.is_some()
    }

    /// The pseudonym of `ip` (or `ip` itself without a key). Every address is hashed,
    /// including real ones that happen to lie in the pseudonym prefixes: callers apply
    /// this once, to addresses as they arrive.
    pub fn apply(&self, ip: IpAddr) -> IpAddr {
        let Some(key) = &self.key else {
            return ip;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        match ip {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        let digest = mac.finalize().into_bytes();
        let mut b = [0u8; 16];
        let prefix: [u8; 4] = if is_internal(ip) {
            [0xfd, 0x76, 0x69, 0x67]
        } else {
            [0x20, 0x01, 0x0d, 0xb8]
        };
        b[..4].copy_from_slice(&prefix);
        b[4..].copy_from_slice(&digest[..12]);
        IpAddr::V6(Ipv6Addr::from(b))
    }
}

/// Whether `ip` is a pseudonym this module makes.
pub fn is_pseudonym(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => {
            let o = v6.octets();
            o[..4] == [0xfd, 0x76, 0x69, 0x67] || o[..4] == [0x20, 0x01, 0x0d, 0xb8]
        }
        IpAddr::V4(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_keyed_and_shape_preserving() {
        let a = IpPseudonyms::new(Some("a key of sixteen+ bytes")).unwrap();
        let b = IpPseudonyms::new(Some("another key, also long")).unwrap();
        let public: IpAddr = "203.0.113.9".parse().unwrap();
        let private: IpAddr = "10.1.2.3".parse().unwrap();
        let p1 = a.apply(public);
        assert_eq!(p1, a.apply(public), "stable");
        assert_ne!(p1, b.apply(public), "keyed");
        assert_ne!(p1, a.apply("203.0.113.10".parse().unwrap()));
        assert!(!is_internal(p1) && is_pseudonym(p1));
        let p2 = a.apply(private);
        assert!(is_internal(p2) && is_pseudonym(p2));
        // A real address inside a pseudonym prefix is hashed too (no pass-through).
        let real_ula: IpAddr = "fd76:6967::1".parse().unwrap();
        assert_ne!(a.apply(real_ula), real_ula);
        assert!(!p1.to_string().contains("203"));
        // Without a key: unchanged.
        assert_eq!(IpPseudonyms::default().apply(public), public);
        // Short keys are refused; the key never shows in Debug.
        assert!(IpPseudonyms::new(Some("short")).is_err());
        assert!(!format!("{a:?}").contains("sixteen"));
    }
}
