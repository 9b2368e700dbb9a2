//! poem-openapi's `String` also accepts JSON numbers and booleans; the
//! contract calls a wrong type a malformed request (400), so request bodies
//! use this string that accepts JSON strings only.

use std::borrow::Cow;

use poem_openapi::{
    registry::MetaSchemaRef,
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictString(pub String);

impl Type for StrictString {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        String::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        String::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for StrictString {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(value)) => Ok(StrictString(value)),
            // Never quote the value: it may be a password.
            _ => Err(ParseError::custom("expected a string")),
        }
    }
}

impl ToJSON for StrictString {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_strings_parse() {
        let parse = |v: Value| StrictString::parse_from_json(Some(v));
        assert_eq!(parse(Value::from("x")).unwrap(), StrictString("x".into()));
        assert!(parse(Value::from(12)).is_err());
        assert!(parse(Value::from(true)).is_err());
        assert!(parse(Value::Null).is_err());
        assert!(StrictString::parse_from_json(None).is_err());
    }
}
