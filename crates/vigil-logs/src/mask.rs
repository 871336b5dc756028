//! Masking of variable tokens before template mining.
//!
//! Drain groups lines by their constant tokens, so values that change from line to line
//! (numbers, addresses, identifiers, paths) are replaced by the parameter marker `<*>`
//! first. This is done by hand on each whitespace token rather than with regular
//! expressions over the line: it is the hottest loop of the log engine.
//!
//! A token is masked whole when it is a number (with an optional unit), a hex value, an IPv4
//! or IPv6 address (with an optional port or prefix), a UUID, a URL or an absolute path.
//! Otherwise it is cut at punctuation (`=`, `:`, `,`, `_`, `-`, brackets, quotes, `/`, …)
//! and each piece that is a number, a hex value or an address is masked, so that
//! `blk_-6952295868487656571` becomes `blk_<*>` and `rhost=218.188.2.4` becomes
//! `rhost=<*>`.

/// The parameter marker that stands for a masked or generalised token.
pub const PARAM: &str = "<*>";

/// Appends the masked form of `line` to `out`: the whitespace tokens, each masked, joined
/// by single spaces.
pub fn mask_line(line: &str, out: &mut String) {
    for (i, token) in line.split_ascii_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        mask_token(token, out);
    }
}

/// Appends the masked form of one whitespace-free token to `out`.
pub fn mask_token(token: &str, out: &mut String) {
    // Fast path: every maskable form holds a digit or a slash; most tokens are words.
    if !token
        .bytes()
        .any(|b| b.is_ascii_digit() || b == b'/' || b == b'\\')
    {
        out.push_str(token);
        return;
    }
    // Surrounding punctuation stays; the core is judged whole first.
    let core_start = token.find(|c: char| !is_wrapper(c)).unwrap_or(token.len());
    let core_end = token
        .rfind(|c: char| !is_wrapper(c) && c != '.')
        .map_or(core_start, |i| {
            i + token[i..].chars().next().map_or(1, char::len_utf8)
        });
    if core_start >= core_end {
        out.push_str(token);
        return;
    }
    let core = &token[core_start..core_end];
    if is_variable_whole(core) {
        out.push_str(&token[..core_start]);
        out.push_str(PARAM);
        out.push_str(&token[core_end..]);
        return;
    }
    if !core.bytes().any(|b| b.is_ascii_digit()) {
        out.push_str(token);
        return;
    }
    // Piece by piece: only pieces with digits can be masked.
    out.push_str(&token[..core_start]);
    let bytes = core.as_bytes();
    let mut piece_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if is_separator(b) {
            push_piece(&core[piece_start..i], out);
            // A minus between a separator (or the start) and a digit is the number's sign:
            // `blk_-123` and `blk_123` mask alike.
            let sign = b == b'-'
                && (i == 0 || is_separator(bytes[i - 1]))
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !sign {
                out.push(b as char);
            }
            piece_start = i + 1;
        }
    }
    push_piece(&core[piece_start..], out);
    out.push_str(&token[core_end..]);
}

fn push_piece(piece: &str, out: &mut String) {
    if !piece.is_empty() && is_variable_piece(piece) {
        out.push_str(PARAM);
    } else {
        out.push_str(piece);
    }
}

/// Characters that may wrap a value without being part of it.
fn is_wrapper(c: char) -> bool {
    matches!(
        c,
        '(' | ')' | '[' | ']' | '{' | '}' | '<' | '>' | '"' | '\'' | ',' | ';' | ':' | '`'
    )
}

/// Characters at which a mixed token is cut into pieces.
fn is_separator(b: u8) -> bool {
    matches!(
        b,
        b'=' | b':'
            | b','
            | b';'
            | b'_'
            | b'-'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'<'
            | b'>'
            | b'"'
            | b'\''
            | b'/'
            | b'\\'
            | b'@'
            | b'#'
            | b'|'
            | b'+'
            | b'&'
            | b'?'
            | b'*'
    )
}

fn is_variable_whole(core: &str) -> bool {
    if core == PARAM {
        return false;
    }
    is_variable_piece(core)
        || is_ipv6(core)
        || is_uuid(core)
        || is_url(core)
        || is_path(core)
        || is_address_with_port(core)
}

fn is_variable_piece(piece: &str) -> bool {
    is_number(piece) || is_hex(piece)
}

/// Digits with optional sign, dots or commas between digit groups (this covers IPv4
/// addresses, versions and decimals), an optional exponent, and an optional unit of up to
/// three letters or `%` (`3200ms`, `10.5KB`, `80%`).
fn is_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits_start = i;
    while i < b.len()
        && (b[i].is_ascii_digit()
            || ((b[i] == b'.' || b[i] == b',')
                && i > digits_start
                && i + 1 < b.len()
                && b[i + 1].is_ascii_digit()))
    {
        i += 1;
    }
    if i == digits_start {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') && i + 1 < b.len() {
        let mut j = i + 1;
        if b[j] == b'-' || b[j] == b'+' {
            j += 1;
        }
        if j < b.len() && b[j..].iter().all(u8::is_ascii_digit) {
            return true;
        }
    }
    let unit = &b[i..];
    unit.len() <= 3 && unit.iter().all(|&c| c.is_ascii_alphabetic() || c == b'%')
}

/// `0x…`, or six or more hex digits with at least one decimal digit (hashes, ids).
fn is_hex(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() > 2 && (s.starts_with("0x") || s.starts_with("0X")) {
        return b[2..].iter().all(u8::is_ascii_hexdigit);
    }
    b.len() >= 6 && b.iter().all(u8::is_ascii_hexdigit) && b.iter().any(u8::is_ascii_digit)
}

fn is_ipv6(s: &str) -> bool {
    let s = s.trim_start_matches('[');
    let s = s.split(']').next().unwrap_or(s);
    let s = s.split('%').next().unwrap_or(s);
    s.bytes().filter(|&b| b == b':').count() >= 2
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && s.parse::<std::net::Ipv6Addr>().is_ok()
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn is_url(s: &str) -> bool {
    match s.find("://") {
        Some(i) => {
            i > 0
                && s[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+')
        }
        None => false,
    }
}

/// An absolute path with at least two components: `/var/log/x`, `~/a/b`, `C:\a\b`.
fn is_path(s: &str) -> bool {
    let b = s.as_bytes();
    let unix = (s.starts_with('/') || s.starts_with("~/") || s.starts_with("./"))
        && b.iter().filter(|&&c| c == b'/').count() >= 2
        && !s.contains("//");
    let windows = b.len() > 3
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && b[2] == b'\\'
        && b[3..].contains(&b'\\');
    unix || windows
}

/// `host:port` where host is a name with dots and port is a number (`node1.example.com:8020`).
fn is_address_with_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && host.contains('.')
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(line: &str) -> String {
        let mut out = String::new();
        mask_line(line, &mut out);
        out
    }

    #[test]
    fn masks_values_and_keeps_words() {
        let cases = [
            (
                "PacketResponder 1 for block blk_-6952295868487656571 terminating",
                "PacketResponder <*> for block blk_<*> terminating",
            ),
            (
                "authentication failure; logname= uid=0 euid=0 rhost=218.188.2.4",
                "authentication failure; logname= uid=<*> euid=<*> rhost=<*>",
            ),
            (
                "Received connection request /10.10.34.11:45307",
                "Received connection request /<*>:<*>",
            ),
            ("Notification time out: 3200", "Notification time out: <*>"),
            ("took 3200ms (80%)", "took <*> (<*>)"),
            ("range a-1 x_-2 -3 - 4-5", "range a-<*> x_<*> <*> - <*>-<*>"),
            ("connect to [fe80::1]:22 failed", "connect to [<*> failed"),
            (
                "workerEnv.init() ok /etc/httpd/conf/workers2.properties",
                "workerEnv.init() ok <*>",
            ),
            ("id 0xdeadBEEF hash 9f86d081884c7d65", "id <*> hash <*>"),
            (
                "job 123e4567-e89b-12d3-a456-426614174000 at http://x.example/a?b=1",
                "job <*> at <*>",
            ),
            (
                "user root from host.example.com:8020.",
                "user root from <*>.",
            ),
            ("  spaced\tout  ", "spaced out"),
            ("Ünïcode wörds 12€", "Ünïcode wörds 12€"),
        ];
        for (line, want) in cases {
            assert_eq!(masked(line), want, "{line}");
        }
    }

    #[test]
    fn odd_tokens_do_not_panic() {
        for line in [
            "",
            "(",
            "...",
            "(((1",
            "é:1",
            "[]:",
            "0x",
            "--",
            "::",
            "1e",
            "1e-",
            "€€€1€",
        ] {
            let _ = masked(line);
        }
    }
}
