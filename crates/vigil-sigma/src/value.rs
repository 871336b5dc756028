//! Rule values and the predicates they compile to.
//!
//! A Sigma string value is parsed into [`SigmaStr`] (literal runs and `*`/`?` wildcards, with
//! `\*`, `\?`, `\\` escapes as pySigma reads them), transformed by modifiers (contains,
//! windash, base64, ...), then compiled into a [`Pred`]: the cheapest comparison that decides
//! it (`Eq`, `Prefix`, `Suffix`, `Contains` with a precompiled memmem finder, or a glob).
//! Case-insensitive predicates hold lowercase needles and are applied to the record's
//! precomputed lowercase text.

use std::collections::HashSet;
use std::net::IpAddr;

use aho_corasick::AhoCorasick;
use memchr::memmem::Finder;

use crate::fxhash::FxBuildHasher;
use crate::record::Text;

/// Most alternatives one value may expand to (windash gives 5^n).
pub(crate) const MAX_EXPANSION: usize = 4096;

/// One piece of a Sigma string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(String),
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: exactly one character.
    One,
}

/// A Sigma string: literal runs and wildcards. Adjacent literals are merged and runs of `*`
/// collapsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SigmaStr(pub(crate) Vec<Tok>);

impl SigmaStr {
    /// Parses a rule value: `*` and `?` are wildcards; a backslash escapes `*`, `?` and `\`;
    /// a backslash before any other character (or at the end) is literal.
    pub(crate) fn parse(s: &str) -> SigmaStr {
        let mut out = SigmaStr::default();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.peek() {
                    Some(&n @ ('*' | '?' | '\\')) => {
                        chars.next();
                        out.push_char(n);
                    }
                    _ => out.push_char('\\'),
                },
                '*' => out.push_tok(Tok::Star),
                '?' => out.push_tok(Tok::One),
                c => out.push_char(c),
            }
        }
        out
    }

    /// A string with no wildcards.
    pub(crate) fn literal(s: &str) -> SigmaStr {
        let mut out = SigmaStr::default();
        if !s.is_empty() {
            out.0.push(Tok::Lit(s.to_string()));
        }
        out
    }

    fn push_char(&mut self, c: char) {
        if let Some(Tok::Lit(l)) = self.0.last_mut() {
            l.push(c);
        } else {
            self.0.push(Tok::Lit(c.to_string()));
        }
    }

    fn push_str(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        if let Some(Tok::Lit(l)) = self.0.last_mut() {
            l.push_str(s);
        } else {
            self.0.push(Tok::Lit(s.to_string()));
        }
    }

    fn push_tok(&mut self, t: Tok) {
        match t {
            Tok::Lit(s) => self.push_str(&s),
            Tok::Star => {
                if self.0.last() != Some(&Tok::Star) {
                    self.0.push(Tok::Star);
                }
            }
            Tok::One => self.0.push(Tok::One),
        }
    }

    pub(crate) fn has_wildcards(&self) -> bool {
        self.0.iter().any(|t| !matches!(t, Tok::Lit(_)))
    }

    /// The text when there are no wildcards.
    pub(crate) fn plain(&self) -> Option<String> {
        if self.has_wildcards() {
            return None;
        }
        Some(
            self.0
                .iter()
                .map(|t| match t {
                    Tok::Lit(s) => s.as_str(),
                    _ => "",
                })
                .collect(),
        )
    }

    pub(crate) fn starts_with_star(&self) -> bool {
        self.0.first() == Some(&Tok::Star)
    }

    pub(crate) fn ends_with_star(&self) -> bool {
        self.0.last() == Some(&Tok::Star)
    }

    /// `contains`: `*value*`.
    pub(crate) fn wrap_contains(self) -> SigmaStr {
        self.wrap_startswith().wrap_endswith()
    }

    /// `startswith`: `value*`.
    pub(crate) fn wrap_startswith(mut self) -> SigmaStr {
        if !self.ends_with_star() {
            self.0.push(Tok::Star);
        }
        self
    }

    /// `endswith`: `*value`.
    pub(crate) fn wrap_endswith(mut self) -> SigmaStr {
        if !self.starts_with_star() {
            self.0.insert(0, Tok::Star);
        }
        self
    }

    /// `windash`: every `-` or `/` that starts a word after a non-word character (pySigma's
    /// `\B[-/]\b`) is expanded to `-`, `/`, en dash, em dash and horizontal bar, in every
    /// combination.
    pub(crate) fn windash(&self) -> Result<Vec<SigmaStr>, String> {
        const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
        // Split literal runs into segments around expandable positions.
        #[derive(Clone)]
        enum Piece {
            Tok(Tok),
            Dash,
        }
        let mut pieces = Vec::new();
        let mut dashes = 0usize;
        for t in &self.0 {
            let Tok::Lit(s) = t else {
                pieces.push(Piece::Tok(t.clone()));
                continue;
            };
            let chars: Vec<char> = s.chars().collect();
            let mut cur = String::new();
            for (i, &c) in chars.iter().enumerate() {
                let before_ok = i == 0 || !is_word(chars[i - 1]);
                let after_ok = chars.get(i + 1).is_some_and(|&n| is_word(n));
                if (c == '-' || c == '/') && before_ok && after_ok {
                    if !cur.is_empty() {
                        pieces.push(Piece::Tok(Tok::Lit(std::mem::take(&mut cur))));
                    }
                    pieces.push(Piece::Dash);
                    dashes += 1;
                } else {
                    cur.push(c);
                }
            }
            if !cur.is_empty() {
                pieces.push(Piece::Tok(Tok::Lit(cur)));
            }
        }
        let total = DASHES
            .len()
            .checked_pow(u32::try_from(dashes).unwrap_or(u32::MAX))
            .filter(|&n| n <= MAX_EXPANSION)
            .ok_or_else(|| {
                format!(
                    "windash expands `{}` to more than {MAX_EXPANSION} variants",
                    self.display()
                )
            })?;
        let mut out = Vec::with_capacity(total);
        for combo in 0..total {
            let mut s = SigmaStr::default();
            let mut k = combo;
            for p in &pieces {
                match p {
                    Piece::Tok(t) => s.push_tok(t.clone()),
                    Piece::Dash => {
                        s.push_char(DASHES[k % DASHES.len()]);
                        k /= DASHES.len();
                    }
                }
            }
            out.push(s);
        }
        Ok(out)
    }

    /// The value as written (wildcards as `*`/`?`), for messages.
    pub(crate) fn display(&self) -> String {
        self.0
            .iter()
            .map(|t| match t {
                Tok::Lit(s) => s.as_str(),
                Tok::Star => "*",
                Tok::One => "?",
            })
            .collect()
    }

    fn lowercased(&self) -> SigmaStr {
        SigmaStr(
            self.0
                .iter()
                .map(|t| match t {
                    Tok::Lit(s) => Tok::Lit(s.to_lowercase()),
                    other => other.clone(),
                })
                .collect(),
        )
    }

    /// Compiles to the cheapest predicate; lowercases needles unless `cased`.
    pub(crate) fn compile(&self, cased: bool) -> Pred {
        let s = if cased {
            self.clone()
        } else {
            self.lowercased()
        };
        match s.0.as_slice() {
            [] => Pred::Eq("".into()),
            [Tok::Lit(l)] => Pred::Eq(l.as_str().into()),
            [Tok::Star] => Pred::AnyValue,
            [Tok::Star, Tok::Lit(l)] => Pred::Suffix(l.as_str().into()),
            [Tok::Lit(l), Tok::Star] => Pred::Prefix(l.as_str().into()),
            [Tok::Star, Tok::Lit(l), Tok::Star] => Pred::Contains(Box::new(Needle::new(l))),
            _ => Pred::Glob(s.0.into_boxed_slice()),
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A substring needle with its precompiled finder.
#[derive(Debug, Clone)]
pub(crate) struct Needle {
    pub(crate) text: Box<str>,
    finder: Finder<'static>,
}

impl Needle {
    pub(crate) fn new(s: &str) -> Needle {
        Needle {
            text: s.into(),
            finder: Finder::new(s.as_bytes()).into_owned(),
        }
    }

    #[inline]
    pub(crate) fn is_in(&self, hay: &str) -> bool {
        self.finder.find(hay.as_bytes()).is_some()
    }
}

/// Numeric comparison operators (`gt`, `gte`, `lt`, `lte`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// How a `fieldref` compares the two fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefMode {
    Eq,
    Prefix,
    Suffix,
    Contains,
}

/// One compiled value comparison, applied to one text of the record's field.
#[derive(Debug, Clone)]
pub(crate) enum Pred {
    Eq(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    /// Boxed: the finder is large and most predicates are not substrings.
    Contains(Box<Needle>),
    /// `*`: any present, non-null value.
    AnyValue,
    Glob(Box<[Tok]>),
    /// Many `Eq` alternatives of one term.
    EqSet(HashSet<Box<str>, FxBuildHasher>),
    /// Many `Contains` alternatives of one term; the needles are kept for the prefilter.
    ContainsAny(AhoCorasick, Box<[Box<str>]>),
    /// A regular expression and literals (lowercase) every match contains.
    Re(regex::Regex, Box<[Box<str>]>),
    Cidr(Cidr),
    Cmp(CmpOp, f64),
    /// Compare with another field of the record (symbol id, name).
    FieldRef(u32, Box<str>, RefMode),
}

impl Pred {
    /// Matches `s` (the lowercase text for case-insensitive predicates) — for every predicate
    /// but `Re`, `Cidr`, `Cmp` and `FieldRef`, which need the original text or the record.
    #[inline]
    pub(crate) fn matches_str(&self, s: &str) -> bool {
        match self {
            Pred::Eq(n) => s == &**n,
            Pred::Prefix(n) => s.starts_with(&**n),
            Pred::Suffix(n) => s.ends_with(&**n),
            Pred::Contains(n) => n.is_in(s),
            Pred::AnyValue => true,
            Pred::Glob(toks) => glob_match(toks, s),
            Pred::EqSet(set) => set.contains(s),
            Pred::ContainsAny(ac, _) => ac.is_match(s),
            Pred::Re(re, _) => re.is_match(s),
            Pred::Cidr(c) => c.matches(s),
            Pred::Cmp(op, v) => crate::record::parse_number(s).is_some_and(|x| match op {
                CmpOp::Gt => x > *v,
                CmpOp::Gte => x >= *v,
                CmpOp::Lt => x < *v,
                CmpOp::Lte => x <= *v,
            }),
            Pred::FieldRef(..) => false,
        }
    }

    /// Whether this predicate reads the original text rather than the lowercase one.
    pub(crate) fn wants_original(&self) -> bool {
        matches!(self, Pred::Re(..) | Pred::Cidr(_) | Pred::Cmp(..))
    }

    /// Relative evaluation cost, for ordering AND terms.
    pub(crate) fn cost(&self) -> u32 {
        match self {
            Pred::Eq(_) | Pred::AnyValue | Pred::EqSet(_) => 1,
            Pred::Prefix(_) | Pred::Suffix(_) | Pred::Cmp(..) => 2,
            Pred::Contains(_) | Pred::Cidr(_) => 4,
            Pred::ContainsAny(..) | Pred::FieldRef(..) => 6,
            Pred::Glob(_) => 8,
            Pred::Re(..) => 30,
        }
    }

    /// Evaluates against one text of the record.
    #[inline]
    pub(crate) fn matches_text(&self, t: &Text, cased: bool) -> bool {
        if cased || self.wants_original() {
            self.matches_str(t.text())
        } else {
            self.matches_str(t.lower())
        }
    }
}

/// Glob match with `*` (any run) and `?` (one character); iterative, O(len(s) * len(pattern))
/// in the worst case, no recursion.
pub(crate) fn glob_match(toks: &[Tok], s: &str) -> bool {
    let b = s.as_bytes();
    let (mut ti, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if ti < toks.len() {
            match &toks[ti] {
                Tok::Star => {
                    star = Some((ti + 1, si));
                    ti += 1;
                    continue;
                }
                Tok::One => {
                    if si < b.len() {
                        si += char_len(b[si]);
                        ti += 1;
                        continue;
                    }
                }
                Tok::Lit(l) => {
                    if b[si..].starts_with(l.as_bytes()) {
                        si += l.len();
                        ti += 1;
                        continue;
                    }
                }
            }
        } else if si == b.len() {
            return true;
        }
        match star {
            Some((sti, ssi)) if ssi < b.len() => {
                let next = ssi + char_len(b[ssi]);
                star = Some((sti, next));
                ti = sti;
                si = next;
            }
            _ => return false,
        }
    }
}

#[inline]
fn char_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xFF => 4,
        // A continuation byte cannot start a char of a valid &str; step one byte.
        _ => 1,
    }
}

/// Literals that every match of the regular expression contains, lowercased, ASCII only:
/// runs of literal characters in a top-level concatenation (through groups and required
/// repetitions). Used only as prefilter atoms, so it may miss literals but never invents one.
pub(crate) fn regex_required_literals(pattern: &str, i: bool, m: bool, s: bool) -> Vec<String> {
    use regex_syntax::hir::{Class, Hir, HirKind};
    let Ok(hir) = regex_syntax::ParserBuilder::new()
        .case_insensitive(i)
        .multi_line(m)
        .dot_matches_new_line(s)
        .nest_limit(100)
        .build()
        .parse(pattern)
    else {
        return Vec::new();
    };
    fn flush(cur: &mut String, out: &mut Vec<String>) {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    }
    /// The single ASCII character a class stands for, up to ASCII case.
    fn class_char(c: &Class) -> Option<char> {
        let mut chars = Vec::new();
        match c {
            Class::Unicode(u) => {
                for r in u.ranges() {
                    if (r.end() as u32) - (r.start() as u32) > 2 {
                        return None;
                    }
                    for ch in r.start()..=r.end() {
                        chars.push(ch);
                    }
                }
            }
            Class::Bytes(b) => {
                for r in b.ranges() {
                    if r.end() - r.start() > 2 {
                        return None;
                    }
                    for byte in r.start()..=r.end() {
                        chars.push(char::from(byte));
                    }
                }
            }
        }
        let first = chars.first()?.to_ascii_lowercase();
        // Every member must be the same ASCII letter (any case): a class that also admits a
        // non-ASCII member (`(?i)k` admits the Kelvin sign) has no reliable lowercase form.
        (first.is_ascii()
            && chars.len() <= 2
            && chars
                .iter()
                .all(|c| c.is_ascii() && c.to_ascii_lowercase() == first))
        .then_some(first)
    }
    fn walk(h: &Hir, cur: &mut String, out: &mut Vec<String>, depth: usize) {
        if depth > 100 {
            flush(cur, out);
            return;
        }
        match h.kind() {
            HirKind::Literal(lit) => match std::str::from_utf8(&lit.0) {
                Ok(t) if t.is_ascii() => cur.push_str(&t.to_ascii_lowercase()),
                _ => flush(cur, out),
            },
            HirKind::Class(c) => match class_char(c) {
                Some(ch) => cur.push(ch),
                None => flush(cur, out),
            },
            // Zero-width assertions do not separate the characters around them.
            HirKind::Look(_) | HirKind::Empty => {}
            HirKind::Capture(c) => walk(&c.sub, cur, out, depth + 1),
            HirKind::Concat(items) => {
                for item in items {
                    walk(item, cur, out, depth + 1);
                }
            }
            HirKind::Repetition(r) => {
                flush(cur, out);
                if r.min >= 1 {
                    walk(&r.sub, cur, out, depth + 1);
                    flush(cur, out);
                }
            }
            HirKind::Alternation(_) => flush(cur, out),
        }
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    walk(&hir, &mut cur, &mut out, 0);
    flush(&mut cur, &mut out);
    out.sort();
    out.dedup();
    out
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cidr {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl Cidr {
    /// Parses `addr/prefix` (or a bare address, a host network).
    pub(crate) fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid CIDR network `{s}`"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits: u32 = match prefix {
            None => max,
            Some(p) => p
                .parse()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| format!("invalid CIDR prefix length in `{s}`"))?,
        };
        Ok(match ip {
            IpAddr::V4(a) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                Cidr::V4 {
                    net: u32::from(a) & mask,
                    mask,
                }
            }
            IpAddr::V6(a) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                Cidr::V6 {
                    net: u128::from(a) & mask,
                    mask,
                }
            }
        })
    }

    /// Whether the text is an address inside the network. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`) count as IPv4; brackets and a zone suffix are ignored.
    pub(crate) fn matches(&self, s: &str) -> bool {
        let s = s.trim();
        let s = s
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(s);
        let s = s.split('%').next().unwrap_or(s);
        let Ok(ip) = s.parse::<IpAddr>() else {
            return false;
        };
        match (self, ip.to_canonical()) {
            (Cidr::V4 { net, mask }, IpAddr::V4(a)) => u32::from(a) & mask == *net,
            (Cidr::V6 { net, mask }, IpAddr::V6(a)) => u128::from(a) & mask == *net,
            _ => false,
        }
    }
}

/// Encodes text as UTF-16 for `wide`/`utf16le`, `utf16be`, `utf16` (little endian with BOM).
pub(crate) fn utf16(s: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 2 + 2);
    if bom {
        out.extend_from_slice(&[0xFF, 0xFE]);
    }
    for u in s.encode_utf16() {
        if big_endian {
            out.extend_from_slice(&u.to_be_bytes());
        } else {
            out.extend_from_slice(&u.to_le_bytes());
        }
    }
    out
}

/// `base64`: the standard, padded encoding.
pub(crate) fn base64_plain(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// `base64offset`: the three encodings of `data` at byte offsets 0, 1 and 2 of a longer
/// buffer, trimmed to the characters that do not depend on neighbours (as pySigma).
pub(crate) fn base64_offsets(data: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    // End trims: none, 3, 2 characters, chosen by (len + i) % 3.
    const END: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|i| {
            let mut buf = vec![b' '; i];
            buf.extend_from_slice(data);
            let enc = base64_plain(&buf);
            let end = enc.len().saturating_sub(END[(data.len() + i) % 3]);
            enc.get(START[i]..end).unwrap_or("").to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, s: &str) -> bool {
        SigmaStr::parse(pattern)
            .compile(false)
            .matches_str(&s.to_lowercase())
    }

    #[test]
    fn escapes_follow_pysigma() {
        assert_eq!(SigmaStr::parse(r"a\*b").0, vec![Tok::Lit("a*b".into())]);
        assert_eq!(SigmaStr::parse(r"a\?b").0, vec![Tok::Lit("a?b".into())]);
        assert_eq!(
            SigmaStr::parse(r"\\\\127.0.0").0,
            vec![Tok::Lit(r"\\127.0.0".into())]
        );
        assert_eq!(
            SigmaStr::parse(r"C:\Windows\").0,
            vec![Tok::Lit(r"C:\Windows\".into())]
        );
        assert_eq!(
            SigmaStr::parse(r"\\*").0,
            vec![Tok::Lit(r"\".into()), Tok::Star]
        );
        assert_eq!(SigmaStr::parse("a**b").0.len(), 3);
    }

    #[test]
    fn wildcards() {
        assert!(m("*.exe", "C:\\x.EXE"));
        assert!(m("c:\\\\*\\x.exe", "C:\\a\\b\\x.exe"));
        assert!(!m("c:\\\\*\\x.exe", "C:\\x.exe"));
        assert!(m("a?c", "abc"));
        assert!(m("a?c", "aéc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c", "xxaxxbxxcxx"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axxb"));
        assert!(m("*", ""));
        assert!(m("", ""));
        assert!(!m("", "x"));
    }

    #[test]
    fn windash_variants() {
        let v = SigmaStr::parse(" -enc ").windash().unwrap();
        assert_eq!(v.len(), 5);
        let texts: Vec<String> = v.iter().map(SigmaStr::display).collect();
        assert!(texts.contains(&" /enc ".to_string()));
        assert!(texts.contains(&" \u{2015}enc ".to_string()));
        // A dash inside a word is not expanded.
        assert_eq!(SigmaStr::parse("a-b").windash().unwrap().len(), 1);
        // A leading dash at the start of a value is.
        assert_eq!(SigmaStr::parse("-x -y").windash().unwrap().len(), 25);
        assert!(SigmaStr::parse(&" -a".repeat(8)).windash().is_err());
    }

    #[test]
    fn base64_offsets_match_pysigma() {
        // Values from pySigma's tests for base64offset("foobar").
        assert_eq!(
            base64_offsets(b"foobar"),
            ["Zm9vYmFy", "Zvb2Jhc", "mb29iYX"]
        );
        assert_eq!(base64_plain(b"foobar"), "Zm9vYmFy");
        assert_eq!(utf16("ab", false, false), [b'a', 0, b'b', 0]);
        assert_eq!(utf16("ab", true, false), [0, b'a', 0, b'b']);
        assert_eq!(utf16("a", false, true), [0xFF, 0xFE, b'a', 0]);
    }

    #[test]
    fn regex_literals() {
        let l = regex_required_literals(r"ping\s+-n.{6,64}echo EEEE\s?>\s?", false, false, false);
        assert_eq!(l, ["-n", ">", "echo eeee", "ping"]);
        let l = regex_required_literals(
            r#"(?i)\.exe["']?\s+werfaultsecure\.exe"#,
            false,
            false,
            false,
        );
        assert!(
            l.contains(&"werfaulte".to_string()) || l.iter().any(|x| x.contains("werfault")),
            "{l:?}"
        );
        assert!(regex_required_literals("a|b", false, false, false).is_empty());
        assert_eq!(
            regex_required_literals(r"\bfoo\b", false, false, false),
            ["foo"]
        );
        assert_eq!(
            regex_required_literals("(ab)+c", false, false, false),
            ["ab", "c"]
        );
        assert!(regex_required_literals("x*", false, false, false).is_empty());
        assert!(regex_required_literals("(", false, false, false).is_empty());
    }

    #[test]
    fn cidr() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.matches("10.1.2.3"));
        assert!(c.matches("::ffff:10.1.2.3"));
        assert!(!c.matches("11.0.0.1"));
        assert!(!c.matches("fe80::1"));
        assert!(!c.matches("not an ip"));
        let c = Cidr::parse("fe80::/10").unwrap();
        assert!(c.matches("fe80::1"));
        assert!(c.matches("[fe80::1%12]"));
        assert!(!c.matches("10.0.0.1"));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().matches("1.2.3.4"));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
        assert!(Cidr::parse("1.2.3.4").unwrap().matches("1.2.3.4"));
    }
}
