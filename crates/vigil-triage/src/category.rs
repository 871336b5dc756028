//! The documented set of event categories the classifier and the playbooks share.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What kind of security event it is; one playbook per category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Trojans, RATs, backdoors and their command-and-control traffic.
    TrojanC2,
    /// Webshell upload or use (China Chopper, Behinder, Godzilla, AntSword).
    Webshell,
    /// Exploitation of a web application (SQL injection, RCE, traversal, SSRF, Log4Shell).
    WebExploit,
    /// Deserialization attacks (Fastjson, Shiro, WebLogic T3, ysoserial).
    Deserialization,
    /// Password guessing, credential stuffing, spraying.
    BruteForce,
    /// Port and vulnerability scans, directory brute forcing, reconnaissance.
    Scanning,
    /// A malicious file found on disk, in mail or by a scanner.
    MalwareFile,
    /// Data leaving the network (DNS tunnelling, large uploads, cloud storage).
    Exfiltration,
    /// Encryption of data, shadow-copy deletion, ransom notes.
    Ransomware,
    /// Phishing mail, links, attachments, credential-harvesting pages.
    Phishing,
    /// Movement between internal hosts (PsExec, WMI, pass-the-hash, remote services).
    LateralMovement,
    /// Benign or unclassifiable operational events.
    Other,
}

impl Category {
    /// Every category, in documentation order.
    pub const ALL: [Category; 12] = [
        Category::TrojanC2,
        Category::Webshell,
        Category::WebExploit,
        Category::Deserialization,
        Category::BruteForce,
        Category::Scanning,
        Category::MalwareFile,
        Category::Exfiltration,
        Category::Ransomware,
        Category::Phishing,
        Category::LateralMovement,
        Category::Other,
    ];

    /// The stable id (`trojan_c2`).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::TrojanC2 => "trojan_c2",
            Category::Webshell => "webshell",
            Category::WebExploit => "web_exploit",
            Category::Deserialization => "deserialization",
            Category::BruteForce => "brute_force",
            Category::Scanning => "scanning",
            Category::MalwareFile => "malware_file",
            Category::Exfiltration => "exfiltration",
            Category::Ransomware => "ransomware",
            Category::Phishing => "phishing",
            Category::LateralMovement => "lateral_movement",
            Category::Other => "other",
        }
    }

    /// Index in [`Category::ALL`].
    pub fn index(self) -> usize {
        Category::ALL.iter().position(|c| *c == self).unwrap_or(11)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = String;

    fn from_str(s: &str) -> Result<Category, String> {
        let s = s.trim().to_ascii_lowercase().replace(['-', ' ', '/'], "_");
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let ids: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                format!("unknown category `{s}`: expected one of {}", ids.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
            assert_eq!(Category::ALL[c.index()], c);
        }
        assert_eq!("Web-Exploit".parse::<Category>(), Ok(Category::WebExploit));
        assert!(
            "worm"
                .parse::<Category>()
                .unwrap_err()
                .contains("trojan_c2")
        );
    }
}
