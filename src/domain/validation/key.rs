//! The customer id a record value names, whatever its format: the Kafka key `produce` gives it.

use super::document::Document;
use super::parse::{parse, Parsed};
use super::validate::customer_id;

/// The customer id `value` names by SPEC section 4's rules for its format (native
/// `customer_id`, FHIR `subject.reference`, Open mHealth `header.user_id`), `None` when it names
/// no valid one. Whatever else is wrong with the value does not matter here: the processor
/// judges it.
pub fn customer_key(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let Ok(Parsed::Object(fields)) = parse(text) else {
        return None;
    };
    let document = Document::new(&fields).ok()?;
    let (path, raw) = (document.customer.path(), document.customer.found()?);
    customer_id(document.customer_rule, path, raw).ok()
}
