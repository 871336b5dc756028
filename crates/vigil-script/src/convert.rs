//! JSON ⇄ Rhai values, bounded in depth.

use rhai::{Array, Dynamic, Map};
use serde_json::{Number, Value};

const MAX_DEPTH: usize = 32;

/// A JSON value as a Rhai value (null → `()`).
pub fn to_dynamic(v: &Value) -> Dynamic {
    to_dynamic_at(v, 0)
}

fn to_dynamic_at(v: &Value, depth: usize) -> Dynamic {
    if depth > MAX_DEPTH {
        return Dynamic::UNIT;
    }
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => Dynamic::from_array(
            items
                .iter()
                .map(|i| to_dynamic_at(i, depth + 1))
                .collect::<Array>(),
        ),
        Value::Object(map) => Dynamic::from_map(
            map.iter()
                .map(|(k, v)| (k.as_str().into(), to_dynamic_at(v, depth + 1)))
                .collect::<Map>(),
        ),
    }
}

/// A Rhai value as JSON; values JSON cannot hold become their string form.
pub fn to_json(v: &Dynamic) -> Value {
    to_json_at(v, 0)
}

fn to_json_at(v: &Dynamic, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    if v.is_unit() {
        Value::Null
    } else if let Ok(b) = v.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = v.as_int() {
        Value::Number(i.into())
    } else if let Ok(f) = v.as_float() {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    } else if v.is_string() {
        Value::String(v.clone().into_string().unwrap_or_default())
    } else if let Ok(c) = v.as_char() {
        Value::String(c.to_string())
    } else if v.is_array() {
        let arr = v.read_lock::<Array>().expect("is_array");
        Value::Array(arr.iter().map(|i| to_json_at(i, depth + 1)).collect())
    } else if v.is_map() {
        let map = v.read_lock::<Map>().expect("is_map");
        Value::Object(
            map.iter()
                .map(|(k, v)| (k.to_string(), to_json_at(v, depth + 1)))
                .collect(),
        )
    } else {
        Value::String(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let v = json!({"a": [1, 2.5, "x", true, null], "b": {"c": -3}});
        assert_eq!(to_json(&to_dynamic(&v)), v);
    }
}
