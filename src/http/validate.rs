//! Request validation in FastAPI's terms: every invalid field of a request is reported at once, as
//! `{loc, msg, type}` with pydantic's messages, so clients of the seed 000 API see what they expect.

use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// Parses a request body that must be a JSON object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::Validation(vec![FieldError {
            loc: vec!["body".into()],
            msg: format!("JSON decode error: {e}"),
            kind: "json_invalid".into(),
        }])
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::Validation(vec![FieldError {
            loc: vec!["body".into()],
            msg: "Input should be a valid dictionary or object to extract fields from".into(),
            kind: "model_attributes_type".into(),
        }])),
    }
}

/// Reads the fields of a JSON body, collecting every error.
pub struct BodyFields {
    fields: Map<String, Value>,
    /// Errors found so far.
    pub errors: Vec<FieldError>,
}

impl BodyFields {
    /// Starts reading `fields`.
    pub fn new(fields: Map<String, Value>) -> Self {
        BodyFields { fields, errors: Vec::new() }
    }

    /// Records an error about `field`.
    pub fn error(&mut self, field: &str, msg: impl Into<String>, kind: &str) {
        self.errors.push(FieldError::new("body", field, msg, kind));
    }

    /// Returns a required string field.
    pub fn required_string(&mut self, field: &str) -> Option<String> {
        match self.fields.get(field) {
            None | Some(Value::Null) => {
                self.error(field, "Field required", "missing");
                None
            }
            Some(_) => self.optional_string(field),
        }
    }

    /// Returns an optional string field (`null` counts as absent).
    pub fn optional_string(&mut self, field: &str) -> Option<String> {
        match self.fields.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.error(field, "Input should be a valid string", "string_type");
                None
            }
        }
    }

    /// Returns an optional boolean field.
    pub fn optional_bool(&mut self, field: &str, default: bool) -> bool {
        match self.fields.get(field) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.error(field, "Input should be a valid boolean", "bool_type");
                default
            }
        }
    }

    /// Returns an optional object field (`{}` when absent).
    pub fn optional_object(&mut self, field: &str) -> Value {
        match self.fields.get(field) {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::Object(map)) => Value::Object(map.clone()),
            Some(_) => {
                self.error(field, "Input should be a valid dictionary", "dict_type");
                Value::Object(Map::new())
            }
        }
    }

    /// Ends reading: the errors, if any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.errors)) }
    }
}

/// Returns true for a phone number: digits with an optional leading `+`, 8 to 15 digits.
pub fn is_phone_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The pattern phone numbers must match, as reported in errors.
pub const PHONE_PATTERN: &str = r"^\+?[0-9]{8,15}$";

/// Returns true for a voice-agent id: `AGT_` followed by 1–64 letters, digits, `_` or `-`.
pub fn is_agent_id(s: &str) -> bool {
    s.strip_prefix("AGT_").is_some_and(|rest| {
        (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// Returns true for a language tag such as `hi`, `en-US` or `hi-en`.
pub fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let primary = parts.next().unwrap_or_default();
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        && s.len() <= 35
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_digits_with_an_optional_plus() {
        for ok in ["919999999999", "+14155550100", "12345678", "123456789012345"] {
            assert!(is_phone_number(ok), "{ok}");
        }
        for bad in ["", "1234567", "1234567890123456", "+", "91 9999999999", "91999x999999", "++919999999999"] {
            assert!(!is_phone_number(bad), "{bad}");
        }
    }

    #[test]
    fn agent_ids_and_language_tags() {
        assert!(is_agent_id("AGT_sales-bot_1"));
        assert!(!is_agent_id("AGT_"));
        assert!(!is_agent_id("AGT_a b"));
        assert!(is_language_tag("hi"));
        assert!(is_language_tag("hi-en"));
        assert!(is_language_tag("en-US"));
        assert!(!is_language_tag("h"));
        assert!(!is_language_tag("hindi!"));
    }
}
