//! Bounded YAML loading for rule files.
//!
//! Rule files are untrusted input. yaml-rust2's own tree loader recurses once per nesting level
//! and expands aliases by cloning, so a crafted file could exhaust the stack or memory. This
//! module drives yaml-rust2's event parser itself and builds a small tree iteratively, with a
//! cap on nesting depth and on the total number of nodes (aliases count with their full size,
//! which defuses "billion laughs" documents).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// Deepest nesting accepted; Sigma rules need about 5 levels.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes (scalars, sequences, mappings, alias expansions included) in one file.
pub(crate) const MAX_NODES: usize = 200_000;

/// The type a YAML scalar resolved to (YAML 1.2 core schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarKind {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// A scalar with its resolved type and its text as written (numbers keep their spelling).
    Scalar(ScalarKind, String),
    Seq(Vec<Node>),
    /// Keys in document order; duplicates are kept (the rule parser rejects them).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The text of a scalar of any type (null is `None`).
    pub(crate) fn scalar_text(&self) -> Option<&str> {
        match self {
            Node::Scalar(ScalarKind::Null, _) => None,
            Node::Scalar(_, t) => Some(t),
            _ => None,
        }
    }

    /// A string-like scalar (strings, numbers, booleans), as text.
    pub(crate) fn as_str(&self) -> Option<&str> {
        self.scalar_text()
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(ScalarKind::Null, _))
    }

    /// Looks up a mapping key (string keys only).
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the node's type, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Node::Scalar(ScalarKind::Null, _) => "null",
            Node::Scalar(ScalarKind::Bool, _) => "a boolean",
            Node::Scalar(ScalarKind::Int | ScalarKind::Float, _) => "a number",
            Node::Scalar(ScalarKind::Str, _) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    fn size(&self) -> usize {
        match self {
            Node::Scalar(..) => 1,
            Node::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Node::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.size() + v.size())
                    .sum::<usize>()
            }
        }
    }
}

enum Frame {
    Seq(Vec<Node>, usize),
    Map(Vec<(Node, Node)>, Option<Node>, usize),
}

/// Parses every document of a YAML stream. Errors are human-readable reasons.
pub(crate) fn load_documents(text: &str) -> Result<Vec<Node>, String> {
    // yaml-rust2 is not known to panic, but this is untrusted input: a panic in a dependency
    // must become a rejected file, not a crashed server.
    match std::panic::catch_unwind(|| load_inner(text)) {
        Ok(r) => r,
        Err(_) => Err("YAML parser failed on this input".to_string()),
    }
}

fn load_inner(text: &str) -> Result<Vec<Node>, String> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut nodes = 0usize;

    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| format!("invalid YAML: {e}"))?;
        let (node, anchor) = match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart => continue,
            Event::DocumentStart => {
                anchors.clear();
                root = None;
                continue;
            }
            Event::DocumentEnd => {
                docs.push(
                    root.take()
                        .unwrap_or(Node::Scalar(ScalarKind::Null, String::new())),
                );
                continue;
            }
            Event::SequenceStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!(
                        "YAML nesting deeper than {MAX_DEPTH} levels (line {})",
                        mark.line()
                    ));
                }
                stack.push(Frame::Seq(Vec::new(), anchor));
                continue;
            }
            Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!(
                        "YAML nesting deeper than {MAX_DEPTH} levels (line {})",
                        mark.line()
                    ));
                }
                stack.push(Frame::Map(Vec::new(), None, anchor));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => (Node::Seq(items), anchor),
                _ => return Err("invalid YAML: unbalanced sequence".into()),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(entries, None, anchor)) => (Node::Map(entries), anchor),
                _ => return Err("invalid YAML: unbalanced mapping".into()),
            },
            Event::Scalar(value, style, anchor, tag) => {
                let tag_suffix = tag.as_ref().map(|t| t.suffix.as_str());
                (resolve_scalar(value, style, tag_suffix), anchor)
            }
            Event::Alias(id) => {
                let node = anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| "invalid YAML: unknown alias".to_string())?;
                nodes += node.size();
                if nodes > MAX_NODES {
                    return Err(format!(
                        "YAML document too large (more than {MAX_NODES} nodes, aliases expanded)"
                    ));
                }
                (node, 0)
            }
        };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(format!(
                "YAML document too large (more than {MAX_NODES} nodes, aliases expanded)"
            ));
        }
        if anchor > 0 {
            nodes += node.size();
            if nodes > MAX_NODES {
                return Err(format!(
                    "YAML document too large (more than {MAX_NODES} nodes, aliases expanded)"
                ));
            }
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(entries, pending, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    Ok(docs)
}

fn resolve_scalar(value: String, style: TScalarStyle, tag: Option<&str>) -> Node {
    let plain = matches!(style, TScalarStyle::Plain);
    match tag {
        Some("str") => return Node::Scalar(ScalarKind::Str, value),
        Some("null") => return Node::Scalar(ScalarKind::Null, value),
        Some(_) if !plain => return Node::Scalar(ScalarKind::Str, value),
        _ => {}
    }
    if !plain {
        return Node::Scalar(ScalarKind::Str, value);
    }
    let kind = match yaml_rust2::Yaml::from_str(&value) {
        yaml_rust2::Yaml::Null => ScalarKind::Null,
        yaml_rust2::Yaml::Boolean(_) => ScalarKind::Bool,
        yaml_rust2::Yaml::Integer(_) => ScalarKind::Int,
        yaml_rust2::Yaml::Real(_) => ScalarKind::Float,
        _ => match value.as_str() {
            "Null" | "NULL" => ScalarKind::Null,
            _ => ScalarKind::Str,
        },
    };
    Node::Scalar(kind, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scalars_with_types() {
        let docs =
            load_documents("a: 1\nb: 'x'\nc: null\nd: true\ne: 1.5\nf: ~\ng: \"4\"\n").unwrap();
        let d = &docs[0];
        assert_eq!(d.get("a"), Some(&Node::Scalar(ScalarKind::Int, "1".into())));
        assert_eq!(d.get("b"), Some(&Node::Scalar(ScalarKind::Str, "x".into())));
        assert!(d.get("c").unwrap().is_null());
        assert_eq!(d.get("d").unwrap().type_name(), "a boolean");
        assert_eq!(d.get("e").unwrap().type_name(), "a number");
        assert!(d.get("f").unwrap().is_null());
        assert_eq!(d.get("g"), Some(&Node::Scalar(ScalarKind::Str, "4".into())));
    }

    #[test]
    fn multiple_documents() {
        let docs = load_documents("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = "- ".repeat(100_000) + "x\n";
        let err = load_documents(&text).unwrap_err();
        assert!(err.contains("nesting"), "{err}");
        let text = "[".repeat(100_000);
        assert!(load_documents(&text).is_err());
    }

    #[test]
    fn alias_bomb_is_capped() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = load_documents(&text).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn small_aliases_work() {
        let docs = load_documents("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(docs[0].get("a"), docs[0].get("b"));
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(load_documents("a: [1, 2\n").is_err());
        assert!(load_documents("a: b: c\n").is_err());
        assert!(load_documents("\t- x\n  y: [}").is_err());
    }
}
