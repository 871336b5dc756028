//! JSON from untrusted bytes that refuses duplicate object keys.
//!
//! `serde_json::Value` keeps the last of two equal keys without a word, so
//! `{"process.name":"calc.exe","process.name":"mimikatz.exe"}` would be analysed as one
//! thing and shown by another tool that keeps the first as the other. Vigil refuses such a
//! document and names the key (issue 22).

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Prefix of the error message for a duplicate key; the key's path follows in backticks.
pub const DUPLICATE_KEY: &str = "duplicate key";

/// Parses `bytes` as one JSON value, refusing an object with the same key twice.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict { path: None }.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The key path a duplicate-key error names, if `err` is one.
pub fn duplicate_key(err: &serde_json::Error) -> Option<String> {
    let msg = err.to_string();
    let rest = msg.strip_prefix(DUPLICATE_KEY)?.trim_start();
    let rest = rest.strip_prefix('`')?;
    rest.split_once('`').map(|(k, _)| k.to_string())
}

/// Where a value sits: its key and its parent's place. Built on the stack as the parser
/// descends and turned into a string only for an error, so a clean document costs no
/// allocation for it.
struct Place<'p> {
    key: &'p str,
    parent: Option<&'p Place<'p>>,
}

impl Place<'_> {
    fn path(&self) -> String {
        let mut keys = vec![self.key];
        let mut up = self.parent;
        while let Some(p) = up {
            keys.push(p.key);
            up = p.parent;
        }
        keys.reverse();
        keys.join(".")
    }
}

struct Strict<'p> {
    path: Option<&'p Place<'p>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(Strict { path: self.path })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let place = Place {
                key: &key,
                parent: self.path,
            };
            let value = map.next_value_seed(Strict { path: Some(&place) })?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "{DUPLICATE_KEY} `{}`: each key may appear once in an object",
                    place.path()
                )));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_with_their_path_and_the_rest_parses_like_serde_json() {
        let e = from_slice(br#"{"a":1,"b":{"c":1,"c":2}}"#).unwrap_err();
        assert_eq!(duplicate_key(&e).as_deref(), Some("b.c"));
        let e = from_slice(br#"{"x":1,"x":1}"#).unwrap_err();
        assert_eq!(duplicate_key(&e).as_deref(), Some("x"));
        for ok in [
            r#"{"a":[1,2.5,-3,"s",null,true,{"a":1}],"b":{"a":1}}"#,
            r#"[{"k":1},{"k":2}]"#,
            "18446744073709551615",
            r#""\u00e9""#,
        ] {
            let mine = from_slice(ok.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(ok).unwrap();
            assert_eq!(mine, theirs, "{ok}");
        }
        assert!(from_slice(b"{} x").is_err());
        assert!(duplicate_key(&from_slice(b"{").unwrap_err()).is_none());
        // Deep nesting is refused by serde_json's recursion limit, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(from_slice(deep.as_bytes()).is_err());
    }
}
