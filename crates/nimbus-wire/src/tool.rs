//! `nimbus wire`: the codec as a filter, for tests and for poking at protocols
//! by hand. `nimbus wire decode` and `nimbus wire encode` read one JSON object
//! per stdin line and write one JSON line per input on stdout, so a test can
//! batch thousands of cases through one process.
//!
//! decode: `{"model", "protocol", "method", "path", "query", "headers": {..},
//! "body_b64"}` gives `{"operation", "input"}` or `{"error": {"code",
//! "message", "status"}}`.
//! encode: `{"model", "protocol", "operation", "output"}` or `{"model",
//! "protocol", "error": {"code", "message", "status"[, "sender_fault",
//! "fields"]}}` gives `{"status", "headers": {..}, "body_b64"}`.
//! `request_id` may be given on either; it defaults to a fixed id.

use crate::model::{model, Protocol};
use crate::{decode, encode_error, encode_output, WireRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use nimbus_core::AwsError;
use serde_json::{json, Map, Value};
use std::io::{BufRead, Write};

const USAGE: &str = "usage: nimbus wire decode|encode  (JSON lines on stdin, JSON lines on stdout)";

/// Runs the tool; the return value is the process exit code.
pub fn main(args: &[String]) -> i32 {
    let mode = match args.first().map(String::as_str) {
        Some("decode") => Mode::Decode,
        Some("encode") => Mode::Encode,
        _ => {
            eprintln!("{USAGE}");
            return 2;
        }
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("nimbus wire: {e}");
                return 1;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let answer = run_line(mode, &line);
        if writeln!(out, "{answer}").is_err() {
            return 1;
        }
    }
    if out.flush().is_err() {
        return 1;
    }
    0
}

#[derive(Clone, Copy)]
pub enum Mode {
    Decode,
    Encode,
}

fn error_json(e: &AwsError) -> Value {
    json!({"error": {"code": e.code, "message": e.message, "status": e.status}})
}

/// One request line to one answer line; malformed lines answer with an error object.
pub fn run_line(mode: Mode, line: &str) -> Value {
    let result = serde_json::from_str::<Value>(line)
        .map_err(|e| AwsError::new("ToolInput", format!("line is not JSON: {e}")))
        .and_then(|req| match mode {
            Mode::Decode => run_decode(&req),
            Mode::Encode => run_encode(&req),
        });
    match result {
        Ok(v) => v,
        Err(e) => error_json(&e),
    }
}

fn text<'a>(req: &'a Value, key: &str) -> &'a str {
    req.get(key).and_then(Value::as_str).unwrap_or("")
}

fn model_and_protocol(req: &Value) -> Result<(&'static crate::ServiceModel, Protocol), AwsError> {
    let name = text(req, "model");
    let m = model(name).ok_or_else(|| AwsError::new("ToolInput", format!("no model {name}")))?;
    let pname = text(req, "protocol");
    let protocol = Protocol::from_name(pname, m.metadata.json_version.as_deref())
        .ok_or_else(|| AwsError::new("ToolInput", format!("no protocol {pname}")))?;
    Ok((m, protocol))
}

fn run_decode(req: &Value) -> Result<Value, AwsError> {
    let (m, protocol) = model_and_protocol(req)?;
    let mut headers = http::HeaderMap::new();
    if let Some(h) = req.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| AwsError::new("ToolInput", format!("bad header name {k}")))?;
            let value = http::HeaderValue::from_str(v.as_str().unwrap_or(""))
                .map_err(|_| AwsError::new("ToolInput", format!("bad header value for {k}")))?;
            headers.append(name, value);
        }
    }
    let body = STANDARD
        .decode(text(req, "body_b64"))
        .map_err(|_| AwsError::new("ToolInput", "body_b64 is not base64"))?;
    let method = req.get("method").and_then(Value::as_str).unwrap_or("POST");
    let path = req.get("path").and_then(Value::as_str).unwrap_or("/");
    let wire = WireRequest {
        method,
        path,
        query: text(req, "query"),
        headers: &headers,
        body: &body,
    };
    Ok(match decode(m, protocol, &wire) {
        Ok((operation, input)) => json!({"operation": operation, "input": input}),
        Err(e) => error_json(&e),
    })
}

fn run_encode(req: &Value) -> Result<Value, AwsError> {
    let (m, protocol) = model_and_protocol(req)?;
    let request_id = req
        .get("request_id")
        .and_then(Value::as_str)
        .unwrap_or("00000000-0000-0000-0000-000000000000");
    let resp = if let Some(err) = req.get("error") {
        let status = err.get("status").and_then(Value::as_u64).unwrap_or(400) as u16;
        let mut e = AwsError::new(text(err, "code"), text(err, "message")).with_status(status);
        if let Some(sender) = err.get("sender_fault").and_then(Value::as_bool) {
            e.sender_fault = sender;
        }
        if let Some(fields) = err.get("fields").and_then(Value::as_object) {
            for (k, v) in fields {
                e = e.with_field(k.clone(), v.as_str().unwrap_or(""));
            }
        }
        encode_error(m, protocol, &e, request_id)
    } else {
        let empty = Value::Object(Map::new());
        let output = req.get("output").unwrap_or(&empty);
        encode_output(m, protocol, text(req, "operation"), output, request_id)
    };
    let mut headers = Map::new();
    for (k, v) in resp.headers {
        headers.insert(k, Value::String(v));
    }
    Ok(json!({"status": resp.status, "headers": headers, "body_b64": STANDARD.encode(&resp.body)}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_and_encode_lines() {
        let line = json!({"model": "sqs-query", "protocol": "query", "method": "POST", "path": "/",
            "query": "", "headers": {"content-type": "application/x-www-form-urlencoded"},
            "body_b64": STANDARD.encode("Action=GetQueueUrl&QueueName=q")})
        .to_string();
        assert_eq!(
            run_line(Mode::Decode, &line),
            json!({"operation": "GetQueueUrl", "input": {"QueueName": "q"}})
        );
        let line = json!({"model": "sqs", "protocol": "json", "operation": "GetQueueUrl",
            "output": {"QueueUrl": "u"}, "request_id": "r"})
        .to_string();
        let answer = run_line(Mode::Encode, &line);
        assert_eq!(answer["status"], 200);
        assert_eq!(answer["headers"]["x-amzn-RequestId"], "r");
        assert_eq!(answer["body_b64"], STANDARD.encode(r#"{"QueueUrl":"u"}"#));
        assert_eq!(run_line(Mode::Encode, "nope")["error"]["code"], "ToolInput");
    }
}
