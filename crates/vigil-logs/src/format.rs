//! Header formats: how to cut a log line into named header fields and the message.
//!
//! A format is written the way Loghub and logparser write them:
//! `<Date> <Time> <Pid> <Level> <Component>: <Content>`. Each `<Name>` is a field; the text
//! between fields is a regular expression fragment in which every run of spaces matches any
//! run of whitespace (so `\[<Level>\]` and optional parts like `(\[<PID>\])?` work). The
//! field named `Content` is the message that template mining sees.

use regex::Regex;

/// A compiled header format.
#[derive(Debug, Clone)]
pub struct LogFormat {
    source: String,
    regex: Regex,
    fields: Vec<String>,
    content: usize,
}

/// A format that cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// No `<Content>` field.
    #[error("log format {0:?} has no <Content> field; write the message part as <Content>")]
    NoContent(String),
    /// A field name is not letters, digits and underscores, or appears twice.
    #[error("log format {format:?}: bad or repeated field name <{name}>")]
    BadField {
        /// The format.
        format: String,
        /// The field.
        name: String,
    },
    /// The text between fields is not a valid regular expression.
    #[error("log format {format:?} does not compile: {error}")]
    Regex {
        /// The format.
        format: String,
        /// Why.
        error: String,
    },
}

/// A line cut by a [`LogFormat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header fields in format order, with their values.
    pub fields: Vec<(&'a str, &'a str)>,
    /// The message.
    pub content: &'a str,
}

impl LogFormat {
    /// Compiles a format.
    pub fn new(format: &str) -> Result<LogFormat, FormatError> {
        let mut pattern = String::from("^");
        let mut fields: Vec<String> = Vec::new();
        let mut rest = format;
        loop {
            let Some(open) = rest.find('<') else {
                push_literal(&mut pattern, rest);
                break;
            };
            let Some(close) = rest[open..].find('>').map(|c| c + open) else {
                push_literal(&mut pattern, rest);
                break;
            };
            push_literal(&mut pattern, &rest[..open]);
            let name = &rest[open + 1..close];
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || fields.iter().any(|f| f == name)
            {
                return Err(FormatError::BadField {
                    format: format.to_string(),
                    name: name.to_string(),
                });
            }
            pattern.push_str(&format!("(?P<{name}>.*?)"));
            fields.push(name.to_string());
            rest = &rest[close + 1..];
        }
        pattern.push('$');
        let content = fields
            .iter()
            .position(|f| f == "Content")
            .ok_or_else(|| FormatError::NoContent(format.to_string()))?;
        let regex = regex::RegexBuilder::new(&pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| FormatError::Regex {
                format: format.to_string(),
                error: e.to_string(),
            })?;
        Ok(LogFormat {
            source: format.to_string(),
            regex,
            fields,
            content,
        })
    }

    /// The format as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Cuts a line; `None` when the line does not have this format.
    pub fn split<'a>(&'a self, line: &'a str) -> Option<Header<'a>> {
        let caps = self.regex.captures(line)?;
        let mut fields = Vec::with_capacity(self.fields.len() - 1);
        let mut content = "";
        for (i, name) in self.fields.iter().enumerate() {
            let value = caps.name(name).map_or("", |m| m.as_str());
            if i == self.content {
                content = value;
            } else {
                fields.push((name.as_str(), value));
            }
        }
        Some(Header {
            fields,
            content: content.trim(),
        })
    }
}

fn push_literal(pattern: &mut String, literal: &str) {
    let mut in_space = false;
    for c in literal.chars() {
        if c == ' ' {
            if !in_space {
                pattern.push_str(r"\s+");
            }
            in_space = true;
        } else {
            pattern.push(c);
            in_space = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_loghub_formats() {
        let f = LogFormat::new("<Date> <Time> <Pid> <Level> <Component>: <Content>").unwrap();
        let h = f
            .split("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating")
            .unwrap();
        assert_eq!(
            h.content,
            "PacketResponder 1 for block blk_38865049064139660 terminating"
        );
        assert_eq!(h.fields[4], ("Component", "dfs.DataNode$PacketResponder"));
        let f = LogFormat::new(r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>")
            .unwrap();
        let h = f
            .split("Jun 14 15:16:02 combo sshd(pam_unix)[19937]: check pass; user unknown")
            .unwrap();
        assert_eq!(h.content, "check pass; user unknown");
        assert_eq!(h.fields[5], ("PID", "19937"));
        let h = f
            .split("Jun 15 04:06:18 combo su(pam_unix): session opened")
            .unwrap();
        assert_eq!(h.fields[5], ("PID", ""));
        assert!(f.split("no header here").is_none());
    }

    #[test]
    fn refuses_bad_formats() {
        assert!(matches!(
            LogFormat::new("<Date> <Time>"),
            Err(FormatError::NoContent(_))
        ));
        assert!(matches!(
            LogFormat::new("<a b> <Content>"),
            Err(FormatError::BadField { .. })
        ));
        assert!(matches!(
            LogFormat::new("<X> <X> <Content>"),
            Err(FormatError::BadField { .. })
        ));
        assert!(matches!(
            LogFormat::new("(<X> <Content>"),
            Err(FormatError::Regex { .. })
        ));
    }
}
