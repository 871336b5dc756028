//! The host library: what scripts may call. Pure functions over their arguments, plus
//! read-only lookup lists and logging. Nothing here touches files, sockets, processes or
//! the environment. Documented for script authors in `docs/scripts.md`.

use crate::convert::to_dynamic;
use base64::Engine as _;
use regex::{Regex, RegexBuilder};
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString};
use sha2::Digest;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock, RwLock};
use vigil_core::{Event, FieldLookup};

/// The event as scripts see it: `event["process.name"]`, `event.get("source.ip")`,
/// `event.has("file.hash.sha256")`, `event.to_map()`.
#[derive(Clone)]
pub struct ScriptEvent(pub Arc<Event>);

/// Read-only lookup lists (IOC hashes, bad IPs, allow-lists) that admins upload and scripts
/// query with `in_list(name, value)`. Values are compared case-insensitively. Cheap to clone.
#[derive(Clone, Default)]
pub struct Lists(Arc<RwLock<HashMap<String, Arc<HashSet<String>>>>>);

impl Lists {
    /// Replaces the list `name`.
    pub fn set(&self, name: &str, values: impl IntoIterator<Item = String>) {
        let set: HashSet<String> = values
            .into_iter()
            .map(|v| v.trim().to_lowercase())
            .filter(|v| !v.is_empty())
            .collect();
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(set));
    }

    /// Whether `value` is in the list `name` (false when there is no such list).
    pub fn contains(&self, name: &str, value: &str) -> bool {
        let lists = self.0.read().unwrap_or_else(|e| e.into_inner());
        lists
            .get(name)
            .is_some_and(|l| l.contains(&value.trim().to_lowercase()))
    }

    /// List names and sizes.
    pub fn summary(&self) -> Vec<(String, usize)> {
        let lists = self.0.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = lists.iter().map(|(k, v)| (k.clone(), v.len())).collect();
        out.sort();
        out
    }
}

thread_local! {
    static CURRENT: RefCell<Arc<str>> = RefCell::new(Arc::from(""));
}

/// Name of the script running on this thread, for its log lines.
pub fn current_script() -> String {
    CURRENT.with(|c| c.borrow().to_string())
}

/// Sets the name of the script about to run on this thread.
pub(crate) fn set_current_script(name: Arc<str>) {
    CURRENT.with(|c| *c.borrow_mut() = name);
}

type Fallible<T> = Result<T, Box<EvalAltResult>>;

fn script_error(msg: String) -> Box<EvalAltResult> {
    msg.into()
}

/// Runs `f` with the compiled `pattern`. Each pattern is compiled once into a shared cache,
/// then cloned once into the calling thread's own cache and used there in place: a `Regex`
/// keeps its match caches in an internal pool, and threads that find the pool busy build
/// throwaway caches (milliseconds for Unicode-aware patterns). The threads that run scripts
/// are long-lived, so each clone warms up once.
fn with_regex<T>(pattern: &str, f: impl FnOnce(&Regex) -> T) -> Fallible<T> {
    thread_local! {
        static LOCAL: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
    }
    LOCAL.with(|local| {
        if let Some(re) = local.borrow().get(pattern) {
            return Ok(f(re));
        }
        let re = shared_regex(pattern)?.as_ref().clone();
        let out = f(&re);
        let mut local = local.borrow_mut();
        if local.len() >= 512 {
            local.clear();
        }
        local.insert(pattern.to_string(), re);
        Ok(out)
    })
}

/// The process-wide cache: each pattern is compiled once; bounded, cleared when full.
fn shared_regex(pattern: &str) -> Fallible<Arc<Regex>> {
    static CACHE: OnceLock<RwLock<HashMap<String, Arc<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(re) = cache.read().unwrap_or_else(|e| e.into_inner()).get(pattern) {
        return Ok(re.clone());
    }
    let re = Arc::new(
        RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
            .map_err(|e| script_error(format!("bad regex `{pattern}`: {e}")))?,
    );
    let mut cache = cache.write().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= 512 {
        cache.clear();
    }
    cache.insert(pattern.to_string(), re.clone());
    Ok(re)
}

/// Shannon entropy of the bytes of `s`, in bits per byte (0 to 8).
pub fn entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0usize; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn b64_bytes(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
        .ok()
}

fn string_or_unit(s: Option<String>) -> Dynamic {
    s.map_or(Dynamic::UNIT, Dynamic::from)
}

/// Private, loopback, link-local, CGNAT (IPv4) and ULA/loopback/link-local (IPv6).
pub fn is_private_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Whether `ip` is inside `cidr` (`10.0.0.0/8`, `fe80::/10`, or a single address).
pub fn in_cidr(ip: &IpAddr, cidr: &str) -> Result<bool, String> {
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n, Some(b)),
        None => (cidr, None),
    };
    let net: IpAddr = net
        .trim()
        .parse()
        .map_err(|_| format!("bad CIDR `{cidr}`"))?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    let bits: u32 = match bits {
        Some(b) => b
            .trim()
            .parse()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("bad CIDR `{cidr}`"))?,
        None => max,
    };
    Ok(match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(*a) & mask) == (u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(*a) & mask) == (u128::from(n) & mask)
        }
        _ => false,
    })
}

fn labels(domain: &str) -> Vec<String> {
    domain
        .trim()
        .trim_end_matches('.')
        .to_lowercase()
        .split('.')
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Registers the event type and the host functions.
pub(crate) fn register(engine: &mut Engine, lists: Lists) {
    engine
        .register_type_with_name::<ScriptEvent>("Event")
        .register_fn("get", |e: &mut ScriptEvent, path: &str| {
            e.0.get(path).map_or(Dynamic::UNIT, to_dynamic)
        })
        .register_indexer_get(|e: &mut ScriptEvent, path: &str| {
            e.0.get(path).map_or(Dynamic::UNIT, to_dynamic)
        })
        .register_fn("has", |e: &mut ScriptEvent, path: &str| {
            e.0.get(path).is_some_and(|v| !v.is_null())
        })
        .register_fn("to_map", |e: &mut ScriptEvent| {
            to_dynamic(&serde_json::Value::Object(e.0.as_map().clone()))
        })
        .register_fn("categories", |e: &mut ScriptEvent| {
            e.0.categories()
                .map(|c| Dynamic::from(c.to_string()))
                .collect::<Array>()
        })
        .register_fn("to_string", |e: &mut ScriptEvent| {
            format!("Event({})", e.0.id())
        });

    engine
        .register_fn(
            "regex_match",
            |text: &str, pattern: &str| -> Fallible<bool> {
                with_regex(pattern, |re| re.is_match(text))
            },
        )
        .register_fn(
            "regex_find",
            |text: &str, pattern: &str| -> Fallible<Dynamic> {
                with_regex(pattern, |re| {
                    string_or_unit(re.find(text).map(|m| m.as_str().to_string()))
                })
            },
        )
        .register_fn(
            "regex_captures",
            |text: &str, pattern: &str| -> Fallible<Array> {
                with_regex(pattern, |re| {
                    re.captures(text)
                        .map(|c| {
                            c.iter()
                                .map(|m| {
                                    m.map_or(Dynamic::UNIT, |m| {
                                        Dynamic::from(m.as_str().to_string())
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                })
            },
        )
        .register_fn("contains_any", |text: &str, needles: Array| {
            let text = text.to_lowercase();
            needles.iter().any(|n| {
                n.clone()
                    .into_immutable_string()
                    .is_ok_and(|n: ImmutableString| text.contains(&n.to_lowercase()))
            })
        })
        .register_fn("entropy", |text: &str| entropy(text))
        .register_fn("base64_decode", |text: &str| {
            string_or_unit(b64_bytes(text).map(|b| String::from_utf8_lossy(&b).into_owned()))
        })
        .register_fn("base64_decode_utf16", |text: &str| {
            string_or_unit(b64_bytes(text).filter(|b| b.len() % 2 == 0).map(|b| {
                let units: Vec<u16> = b
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            }))
        })
        .register_fn("hex_decode", |text: &str| {
            string_or_unit(
                hex::decode(text.trim())
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned()),
            )
        })
        .register_fn("sha256", |text: &str| {
            hex::encode(sha2::Sha256::digest(text.as_bytes()))
        })
        .register_fn("md5", |text: &str| {
            hex::encode(md5::Md5::digest(text.as_bytes()))
        })
        .register_fn("is_ip", |text: &str| text.trim().parse::<IpAddr>().is_ok())
        .register_fn("is_private_ip", |text: &str| {
            text.trim()
                .parse::<IpAddr>()
                .is_ok_and(|ip| is_private_ip(&ip))
        })
        .register_fn("in_cidr", |ip: &str, cidr: &str| -> Fallible<bool> {
            let Ok(ip) = ip.trim().parse::<IpAddr>() else {
                return Ok(false);
            };
            in_cidr(&ip, cidr).map_err(script_error)
        })
        .register_fn("domain_labels", |d: &str| {
            labels(d).into_iter().map(Dynamic::from).collect::<Array>()
        })
        .register_fn("registered_domain", |d: &str| {
            let l = labels(d);
            l[l.len().saturating_sub(2)..].join(".")
        })
        .register_fn("tld", |d: &str| labels(d).pop().unwrap_or_default())
        .register_fn("log", |msg: &str| {
            tracing::info!(script = current_script(), "{msg}");
        });

    engine.register_fn("in_list", move |name: &str, value: &str| {
        lists.contains(name, value)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_bounds() {
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("ab") - 1.0).abs() < 1e-9);
        assert!(entropy("aZ3$kq9!Lp0@xV7#") > 3.9);
    }

    #[test]
    fn ip_ranges() {
        let p = |s: &str| is_private_ip(&s.parse().unwrap());
        assert!(p("10.1.2.3") && p("192.168.0.1") && p("172.16.5.4") && p("127.0.0.1"));
        assert!(p("100.64.0.1") && p("169.254.1.1") && p("fd00::1") && p("fe80::1") && p("::1"));
        assert!(!p("8.8.8.8") && !p("172.32.0.1") && !p("2001:4860::8888"));
        let c = |ip: &str, cidr: &str| in_cidr(&ip.parse().unwrap(), cidr).unwrap();
        assert!(c("10.2.3.4", "10.0.0.0/8") && !c("11.0.0.1", "10.0.0.0/8"));
        assert!(c("1.2.3.4", "0.0.0.0/0") && c("1.2.3.4", "1.2.3.4"));
        assert!(c("2001:db8::1", "2001:db8::/32") && !c("10.0.0.1", "::/0"));
        assert!(in_cidr(&"1.2.3.4".parse().unwrap(), "10.0.0.0/33").is_err());
        assert!(in_cidr(&"1.2.3.4".parse().unwrap(), "nope/8").is_err());
    }

    #[test]
    fn lists_are_case_insensitive() {
        let l = Lists::default();
        l.set("bad", vec!["ABCDEF".into(), " evil.com ".into(), "".into()]);
        assert!(l.contains("bad", "abcdef") && l.contains("bad", "EVIL.COM"));
        assert!(!l.contains("bad", "") && !l.contains("other", "abcdef"));
        assert_eq!(l.summary(), vec![("bad".to_string(), 2)]);
    }
}
