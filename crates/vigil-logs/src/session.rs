//! Sessions: grouping log keys by an identifier found in the line (an HDFS block
//! `blk_…`, a request id, a user), in order of first sight.
//!
//! Bounded: at most `max_sessions` open sessions (the oldest is closed and handed out when
//! a new one would exceed it) and `max_keys` keys per session (further keys are dropped and
//! counted).

use std::collections::{HashMap, VecDeque};

use regex::Regex;

/// Groups keys into sessions by an identifier pattern.
#[derive(Debug)]
pub struct Sessionizer {
    pattern: Regex,
    open: HashMap<String, Vec<u32>>,
    order: VecDeque<String>,
    max_sessions: usize,
    max_keys: usize,
    dropped_keys: u64,
}

impl Sessionizer {
    /// A sessionizer keyed by every match of `pattern` in a line (the whole match, or its
    /// first capture group when it has one).
    pub fn new(
        pattern: &str,
        max_sessions: usize,
        max_keys: usize,
    ) -> Result<Sessionizer, regex::Error> {
        Ok(Sessionizer {
            pattern: regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()?,
            open: HashMap::new(),
            order: VecDeque::new(),
            max_sessions: max_sessions.max(1),
            max_keys: max_keys.max(1),
            dropped_keys: 0,
        })
    }

    /// Adds the key of one line to the session of every identifier in it; returns sessions
    /// closed to stay within the bound.
    pub fn push(&mut self, line: &str, key: u32) -> Vec<(String, Vec<u32>)> {
        let mut closed = Vec::new();
        let mut ids: Vec<&str> = self
            .pattern
            .captures_iter(line)
            .filter_map(|c| c.get(1).or_else(|| c.get(0)).map(|m| m.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            match self.open.get_mut(id) {
                Some(keys) => {
                    if keys.len() < self.max_keys {
                        keys.push(key);
                    } else {
                        self.dropped_keys += 1;
                    }
                }
                None => {
                    if self.open.len() >= self.max_sessions
                        && let Some(oldest) = self.order.pop_front()
                        && let Some(keys) = self.open.remove(&oldest)
                    {
                        closed.push((oldest, keys));
                    }
                    self.open.insert(id.to_string(), vec![key]);
                    self.order.push_back(id.to_string());
                }
            }
        }
        closed
    }

    /// Keys dropped because a session was full.
    pub fn dropped_keys(&self) -> u64 {
        self.dropped_keys
    }

    /// Closes every open session, in order of first sight.
    pub fn finish(mut self) -> Vec<(String, Vec<u32>)> {
        let mut out = Vec::with_capacity(self.open.len());
        while let Some(id) = self.order.pop_front() {
            if let Some(keys) = self.open.remove(&id) {
                out.push((id, keys));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_identifier_in_order() {
        let mut s = Sessionizer::new(r"blk_-?\d+", 10, 100).unwrap();
        s.push("Receiving block blk_1 src", 1);
        s.push("Receiving block blk_-2 src", 1);
        s.push("PacketResponder for block blk_1 terminating", 2);
        s.push("ask to delete blk_1 blk_-2 blk_1", 3);
        s.push("no block here", 4);
        let sessions = s.finish();
        assert_eq!(
            sessions,
            vec![
                ("blk_1".to_string(), vec![1, 2, 3]),
                ("blk_-2".to_string(), vec![1, 3])
            ]
        );
    }

    #[test]
    fn stays_bounded() {
        let mut s = Sessionizer::new(r"id=(\w+)", 2, 3).unwrap();
        assert!(s.push("id=a", 1).is_empty());
        assert!(s.push("id=b", 1).is_empty());
        let closed = s.push("id=c", 1);
        assert_eq!(closed, vec![("a".to_string(), vec![1])]);
        for _ in 0..5 {
            s.push("id=b", 2);
        }
        assert_eq!(s.dropped_keys(), 3);
        assert_eq!(s.finish()[0], ("b".to_string(), vec![1, 2, 2]));
        assert!(Sessionizer::new("(", 1, 1).is_err());
    }
}
