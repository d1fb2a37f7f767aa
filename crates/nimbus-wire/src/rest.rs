//! The REST protocols, rest-xml (S3, Route 53, CloudFront) and rest-json
//! (Glacier, Lambda, API Gateway, ...): an operation is chosen by HTTP method
//! and `requestUri` template, and its input members are spread over the URI
//! labels, query string, headers, status code and body as each member's
//! `location` says. The codec follows what botocore's RestXML/RestJSON
//! serializers send and parsers expect.
//!
//! Per model, a [`plan::ServicePlan`] is built on first use and cached for
//! the life of the process: the routing table and, per operation, every
//! member's binding with its scalar kind. A request then costs one split of
//! the path, one parse of the query, a few segment comparisons and one
//! header-map lookup per modelled header, with no model scan.
//!
//! Routing: the most specific template wins (literal segments over labels
//! over greedy labels), then, among operations sharing a template, the one
//! with the most satisfied conditions: literal query parts of the template
//! (`?tagging`, `?list-type=2`) and required query/header members (S3's
//! UploadPart needs `uploadId`, CopyObject `x-amz-copy-source`, both on
//! PutObject's template). Among equals the model's order decides. Paths are
//! expected in path style (`/bucket/key`): the edge turns S3's virtual-hosted
//! style into it before decoding. Nothing matching answers 405
//! `MethodNotAllowed` when another method serves the path, else 404
//! `UnknownOperation`.
//!
//! Bodies are buffered `&[u8]` and blob payloads travel as base64 in the
//! value, as the crate's value convention has it for now; streaming S3 bodies
//! will need the payload member handed over as a body stream instead. HEAD
//! answers are encoded like any other; the HTTP layer drops their body.

mod decode;
mod encode;
mod plan;
mod route;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::sync::Mutex;

use nimbus_core::AwsError;
use serde_json::Value;

use crate::model::{Protocol, ServiceModel};
use crate::{WireRequest, WireResponse};
use plan::ServicePlan;

/// Decodes a REST request into (operation name, input value).
pub fn decode(
    model: &ServiceModel,
    protocol: Protocol,
    req: &WireRequest<'_>,
) -> Result<(String, Value), AwsError> {
    decode::decode(model, protocol, plan_for(model), req)
}

/// Encodes an operation's output value as a REST response.
pub fn encode_output(
    model: &ServiceModel,
    protocol: Protocol,
    operation: &str,
    output: &Value,
    request_id: &str,
) -> WireResponse {
    encode::encode_output(
        model,
        protocol,
        plan_for(model),
        operation,
        output,
        request_id,
    )
}

/// Encodes an error as a REST response.
pub fn encode_error(
    model: &ServiceModel,
    protocol: Protocol,
    error: &AwsError,
    request_id: &str,
) -> WireResponse {
    encode::encode_error(model, protocol, plan_for(model), error, request_id)
}

/// Plans keyed by the model's address. Models live for the whole process (`crate::model`
/// hands out `&'static` ones), so a plan is built once per model and leaked on purpose; the
/// `fits` check guards against a dropped test model's address being reused.
static PLANS: Mutex<Vec<(usize, &'static ServicePlan)>> = Mutex::new(Vec::new());

thread_local! {
    /// A per-thread copy of the few entries in use, so that the request path takes no lock.
    static LOCAL_PLANS: RefCell<Vec<(usize, &'static ServicePlan)>> = const { RefCell::new(Vec::new()) };
}

fn plan_for(model: &ServiceModel) -> &'static ServicePlan {
    let key = std::ptr::from_ref(model) as usize;
    let cached = LOCAL_PLANS.with(|local| {
        local.try_borrow().ok().and_then(|plans| {
            plans
                .iter()
                .find(|(k, p)| *k == key && p.fits(model))
                .map(|(_, p)| *p)
        })
    });
    if let Some(plan) = cached {
        return plan;
    }
    let plan = {
        let mut plans = PLANS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match plans.iter().find(|(k, p)| *k == key && p.fits(model)) {
            Some((_, plan)) => *plan,
            None => {
                let plan: &'static ServicePlan = Box::leak(Box::new(ServicePlan::build(model)));
                plans.retain(|(k, _)| *k != key);
                plans.push((key, plan));
                plan
            }
        }
    };
    LOCAL_PLANS.with(|local| {
        if let Ok(mut plans) = local.try_borrow_mut() {
            plans.retain(|(k, _)| *k != key);
            plans.push((key, plan));
        }
    });
    plan
}
