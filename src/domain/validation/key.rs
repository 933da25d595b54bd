//! The customer id a record value names, whatever its format: the key `produce` gives it.

/// The customer id `value` names (SPEC section 4, any format), `None` when it names none that
/// is valid. Never fails: a value that names no customer is simply sent unkeyed.
pub fn customer_key(value: &[u8]) -> Option<String> {
    // Placeholder until the formats land: the native field only.
    let json: serde_json::Value = serde_json::from_slice(value).ok()?;
    match json.get("customer_id")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}
