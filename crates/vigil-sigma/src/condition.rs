//! The Sigma condition language: parsing and resolution against search identifiers.
//!
//! Grammar (precedence `not` > `and` > `or`; keywords case-insensitive):
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | primary
//! primary := "(" expr ")" | ("1" | "any" | "all") "of" (pattern | "them") | identifier
//! ```
//! Patterns use `*` as a wildcard; `them` means every identifier not starting with `_`.
//! Deprecated aggregations (`| count() ...`) and `near` are rejected with a reason.

/// Deepest nesting of parentheses and `not`.
const MAX_DEPTH: usize = 64;
/// Longest condition accepted.
const MAX_LEN: usize = 16 * 1024;

/// A condition with identifiers resolved to selection indexes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    Sel(u32),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Of,
    One,
    All,
    Them,
    Word(&'a str),
}

fn tokenize(s: &str) -> Result<Vec<Token<'_>>, String> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                out.push(Token::LParen);
                i += 1;
            }
            b')' => {
                out.push(Token::RParen);
                i += 1;
            }
            b'|' => {
                return Err(
                    "aggregation expressions (`| count() ...`) are deprecated and unsupported; use a correlation rule"
                        .into(),
                );
            }
            _ if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'*' | b'-' | b'.') => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || matches!(bytes[i], b'_' | b'*' | b'-' | b'.'))
                {
                    i += 1;
                }
                let w = &s[start..i];
                out.push(match w.to_ascii_lowercase().as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    "of" => Token::Of,
                    "1" | "any" => Token::One,
                    "all" => Token::All,
                    "them" => Token::Them,
                    "near" => {
                        return Err("the deprecated `near` operator is unsupported".into());
                    }
                    _ => Token::Word(w),
                });
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected character `{ch}` in condition"));
            }
        }
    }
    Ok(out)
}

struct Parser<'a, 'n> {
    toks: Vec<Token<'a>>,
    pos: usize,
    names: &'n [String],
}

impl<'a> Parser<'a, '_> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Token<'a>> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expr(&mut self, depth: usize) -> Result<Cond, String> {
        let mut items = vec![self.and(depth)?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Cond::Or(Vec::new()))
        } else {
            Cond::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Cond, String> {
        let mut items = vec![self.unary(depth)?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            items.push(self.unary(depth)?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Cond::And(Vec::new()))
        } else {
            Cond::And(items)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Cond, String> {
        if depth > MAX_DEPTH {
            return Err(format!("condition nested deeper than {MAX_DEPTH} levels"));
        }
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            return Ok(Cond::Not(Box::new(self.unary(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Cond, String> {
        match self.next() {
            Some(Token::LParen) => {
                let e = self.expr(depth + 1)?;
                match self.next() {
                    Some(Token::RParen) => Ok(e),
                    _ => Err("missing `)` in condition".into()),
                }
            }
            Some(t @ (Token::One | Token::All)) => {
                if self.next() != Some(Token::Of) {
                    return Err("expected `of` after `1`/`any`/`all` in condition".into());
                }
                let sels = match self.next() {
                    Some(Token::Them) => {
                        let v: Vec<u32> = self
                            .names
                            .iter()
                            .enumerate()
                            .filter(|(_, n)| !n.starts_with('_'))
                            .map(|(i, _)| i as u32)
                            .collect();
                        if v.is_empty() {
                            return Err("`them` matches no search identifier".into());
                        }
                        v
                    }
                    Some(Token::Word(p)) => {
                        let v: Vec<u32> = self
                            .names
                            .iter()
                            .enumerate()
                            .filter(|(_, n)| name_matches(p, n))
                            .map(|(i, _)| i as u32)
                            .collect();
                        if v.is_empty() {
                            return Err(format!("pattern `{p}` matches no search identifier"));
                        }
                        v
                    }
                    _ => return Err("expected an identifier pattern or `them` after `of`".into()),
                };
                let items: Vec<Cond> = sels.into_iter().map(Cond::Sel).collect();
                Ok(if t == Token::All {
                    Cond::And(items)
                } else {
                    Cond::Or(items)
                })
            }
            Some(Token::Word(w)) => {
                if w.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "`{w} of` is unsupported: only `1 of` and `all of` are"
                    ));
                }
                if w.contains('*') {
                    return Err(format!(
                        "wildcard `{w}` is only allowed after `1 of`/`all of`"
                    ));
                }
                self.names
                    .iter()
                    .position(|n| n == w)
                    .map(|i| Cond::Sel(i as u32))
                    .ok_or_else(|| format!("condition references unknown search identifier `{w}`"))
            }
            Some(t) => Err(format!("unexpected {} in condition", describe(&t))),
            None => Err("condition ends unexpectedly".into()),
        }
    }
}

fn describe(t: &Token<'_>) -> String {
    match t {
        Token::LParen => "`(`".into(),
        Token::RParen => "`)`".into(),
        Token::And => "`and`".into(),
        Token::Or => "`or`".into(),
        Token::Not => "`not`".into(),
        Token::Of => "`of`".into(),
        Token::One => "`1`".into(),
        Token::All => "`all`".into(),
        Token::Them => "`them`".into(),
        Token::Word(w) => format!("`{w}`"),
    }
}

/// Identifier pattern match: `*` matches any run (case-sensitive, as identifiers are).
fn name_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let toks: Vec<crate::value::Tok> = crate::value::SigmaStr::parse(pattern)
        .0
        .into_iter()
        .map(|t| match t {
            // `?` is not a wildcard in identifier patterns.
            crate::value::Tok::One => crate::value::Tok::Lit("?".into()),
            t => t,
        })
        .collect();
    crate::value::glob_match(&toks, name)
}

/// Parses a condition against the rule's search identifiers (`names`, in index order).
pub(crate) fn parse(cond: &str, names: &[String]) -> Result<Cond, String> {
    if cond.len() > MAX_LEN {
        return Err(format!("condition longer than {MAX_LEN} bytes"));
    }
    let toks = tokenize(cond)?;
    if toks.is_empty() {
        return Err("empty condition".into());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        names,
    };
    let c = p.expr(0)?;
    match p.peek() {
        None => Ok(c),
        Some(t) => Err(format!("unexpected {} in condition", describe(t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        [
            "selection",
            "sel_a",
            "sel_b",
            "filter_1",
            "filter_2",
            "_hidden",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn precedence() {
        let c = parse("selection or sel_a and not sel_b", &names()).unwrap();
        assert_eq!(
            c,
            Cond::Or(vec![
                Cond::Sel(0),
                Cond::And(vec![Cond::Sel(1), Cond::Not(Box::new(Cond::Sel(2)))])
            ])
        );
        let c = parse("(selection or sel_a) and sel_b", &names()).unwrap();
        assert_eq!(
            c,
            Cond::And(vec![
                Cond::Or(vec![Cond::Sel(0), Cond::Sel(1)]),
                Cond::Sel(2)
            ])
        );
    }

    #[test]
    fn of_forms() {
        assert_eq!(
            parse("1 of sel_*", &names()).unwrap(),
            Cond::Or(vec![Cond::Sel(1), Cond::Sel(2)])
        );
        assert_eq!(
            parse("all of sel_*", &names()).unwrap(),
            Cond::And(vec![Cond::Sel(1), Cond::Sel(2)])
        );
        assert_eq!(
            parse("any of filter*", &names()).unwrap(),
            Cond::Or(vec![Cond::Sel(3), Cond::Sel(4)])
        );
        // `them` skips identifiers starting with `_`.
        assert_eq!(
            parse("all of them", &names()).unwrap(),
            Cond::And((0..5).map(Cond::Sel).collect())
        );
        assert_eq!(
            parse("selection and not 1 of filter_*", &names()).unwrap(),
            Cond::And(vec![
                Cond::Sel(0),
                Cond::Not(Box::new(Cond::Or(vec![Cond::Sel(3), Cond::Sel(4)])))
            ])
        );
    }

    #[test]
    fn errors() {
        let n = names();
        assert!(
            parse("nope", &n)
                .unwrap_err()
                .contains("unknown search identifier `nope`")
        );
        assert!(
            parse("1 of x*", &n)
                .unwrap_err()
                .contains("matches no search identifier")
        );
        assert!(
            parse("selection | count() > 5", &n)
                .unwrap_err()
                .contains("aggregation")
        );
        assert!(
            parse("selection near sel_a", &n)
                .unwrap_err()
                .contains("near")
        );
        assert!(parse("(selection", &n).unwrap_err().contains("missing `)`"));
        assert!(parse("selection and", &n).is_err());
        assert!(parse("", &n).unwrap_err().contains("empty"));
        assert!(parse("2 of sel_*", &n).is_err());
        assert!(parse("selection sel_a", &n).is_err());
        assert!(parse("sel$", &n).is_err());
        assert!(
            parse(&"a ".repeat(20_000), &n)
                .unwrap_err()
                .contains("longer")
        );
        let deep = "(".repeat(1_000) + "selection" + &")".repeat(1_000);
        assert!(parse(&deep, &n).unwrap_err().contains("nested"));
        let deep = "not ".repeat(1_000) + "selection";
        assert!(parse(&deep, &n).unwrap_err().contains("nested"));
    }
}
