//! Validation of the caller's JSON input.

use crate::manifest::MAX_ORDER_ID_CHARS;
use crate::ActionError;
use serde_json::Value;

/// Validated input of `trackOrder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackOrderInput {
    /// The order id as the customer or merchant knows it, trimmed.
    pub order_id: String,
}

impl TrackOrderInput {
    /// Parse `{"order_id": "<non-empty string>"}`. Unknown properties are
    /// refused so a caller's typo (`orderId`) is reported, not ignored.
    pub fn parse(input: &str) -> Result<Self, ActionError> {
        let object = parse_object(input)?;
        if let Some(unknown) = object.keys().find(|k| k.as_str() != "order_id") {
            return Err(ActionError::InvalidInput(format!(
                "unknown input property `{unknown}`; trackOrder takes only `order_id`"
            )));
        }
        let order_id = match object.get("order_id") {
            None | Some(Value::Null) => {
                return Err(ActionError::InvalidInput(
                    "`order_id` is required, e.g. {\"order_id\": \"1001\"}".into(),
                ))
            }
            Some(Value::String(s)) => s.trim(),
            Some(other) => {
                return Err(ActionError::InvalidInput(format!(
                    "`order_id` must be a string, got {}; quote it, e.g. {{\"order_id\": \"1001\"}}",
                    json_type_name(other)
                )))
            }
        };
        if order_id.is_empty() {
            return Err(ActionError::InvalidInput(
                "`order_id` is empty; give the order's id or number".into(),
            ));
        }
        let chars = order_id.chars().count();
        if chars > MAX_ORDER_ID_CHARS {
            return Err(ActionError::InvalidInput(format!(
                "`order_id` is {chars} characters long; at most {MAX_ORDER_ID_CHARS} are accepted"
            )));
        }
        if order_id.chars().any(char::is_control) {
            return Err(ActionError::InvalidInput(
                "`order_id` contains control characters; give the id as printed on the order".into(),
            ));
        }
        Ok(Self {
            order_id: order_id.to_string(),
        })
    }
}

fn parse_object(input: &str) -> Result<serde_json::Map<String, Value>, ActionError> {
    if actionbox_guest::json::too_deep(input.as_bytes()) {
        return Err(ActionError::InvalidInput(format!(
            "input is nested deeper than {} levels",
            actionbox_guest::json::MAX_DEPTH
        )));
    }
    let value: Value =
        serde_json::from_str(input).map_err(|e| ActionError::InvalidInput(format!("input is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ActionError::InvalidInput(format!(
            "input must be a JSON object, got {}",
            json_type_name(&other)
        ))),
    }
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &str) -> String {
        match TrackOrderInput::parse(input) {
            Err(ActionError::InvalidInput(m)) => m,
            other => panic!("expected invalid-input for {input:?}, got {other:?}"),
        }
    }

    #[test]
    fn valid_order_id_is_trimmed() {
        let i = TrackOrderInput::parse(r#"{"order_id":"  1001 "}"#).expect("valid");
        assert_eq!(i.order_id, "1001");
    }

    #[test]
    fn bad_inputs_are_invalid_input() {
        assert!(err("{}").contains("required"));
        assert!(err(r#"{"order_id":""}"#).contains("empty"));
        assert!(err(r#"{"order_id":"   "}"#).contains("empty"));
        assert!(err(r#"{"order_id":1001}"#).contains("must be a string"));
        assert!(err(r#"{"order_id":"1","x":2}"#).contains("unknown input property `x`"));
        assert!(err("not json").contains("not valid JSON"));
        assert!(err("[1]").contains("JSON object"));
        assert!(err(&format!(r#"{{"order_id":"{}"}}"#, "9".repeat(1000))).contains("1000 characters"));
        assert!(err(r#"{"order_id":"a\u0000b"}"#).contains("control"));
    }
}
