//! The AWS query and EC2 query protocols.
//!
//! Requests are form parameters (a `application/x-www-form-urlencoded` POST
//! body and/or the URL query string) naming the operation in `Action`. Keys
//! are dotted paths: structures `A.B`; query lists `Name.member.N` (or the
//! item's `locationName` instead of `member`), flattened lists `Name.N` where
//! `Name` is the item's `locationName` when it has one; maps
//! `Name.entry.N.key` / `.value` (flattened: `Name.N.{key name}` /
//! `.{value name}`); indexes are 1-based. EC2 differs only in names (a
//! member's `queryName`, else its `locationName` capitalised, else the member
//! name) and in lists, which are always `Name.N`.
//!
//! The parameters are first arranged into a tree of dotted segments that
//! borrows from the decoded pairs, then the input shape is walked over it, so
//! each parameter is looked at once and nothing is copied until the value is
//! built.
//!
//! Responses are XML: `<{Op}Response xmlns=..><{Op}Result>..</{Op}Result>
//! <ResponseMetadata><RequestId>..` for query, and `<{Op}Response xmlns=..>
//! <requestId>..</requestId>..` for EC2, whose lists use `<item>`.

use crate::model::{ServiceModel, Shape, ShapeKind, ShapeRef};
use crate::{json, util, xml, WireRequest, WireResponse};
use nimbus_core::AwsError;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// One dotted segment of the parameter keys.
#[derive(Default)]
struct Node<'a> {
    value: Option<&'a str>,
    children: Vec<(&'a str, Node<'a>)>,
    /// Segment -> position in `children`, built once a node grows wide, so a request
    /// with thousands of parameters at one level stays linear.
    index: Option<HashMap<&'a str, usize>>,
}

/// No AWS parameter nests anywhere near this deep; deeper keys are ignored, which also
/// bounds the recursion when the tree is dropped.
const MAX_SEGMENTS: usize = 32;
const INDEX_AFTER: usize = 16;

impl<'a> Node<'a> {
    fn insert(&mut self, key: &'a str, value: &'a str) {
        if key.bytes().filter(|b| *b == b'.').count() >= MAX_SEGMENTS {
            return;
        }
        let mut node = self;
        for segment in key.split('.') {
            let index = match node.position(segment) {
                Some(i) => i,
                None => {
                    node.children.push((segment, Node::default()));
                    let i = node.children.len() - 1;
                    if let Some(index) = &mut node.index {
                        index.insert(segment, i);
                    } else if node.children.len() > INDEX_AFTER {
                        node.index = Some(
                            node.children
                                .iter()
                                .enumerate()
                                .map(|(i, (s, _))| (*s, i))
                                .collect(),
                        );
                    }
                    i
                }
            };
            node = &mut node.children[index].1;
        }
        // A repeated parameter keeps its last value, as AWS does.
        node.value = Some(value);
    }

    fn position(&self, segment: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(segment).copied(),
            // Parameters arrive grouped, so the newest child is the likeliest match.
            None => self.children.iter().rposition(|(s, _)| *s == segment),
        }
    }

    fn child(&self, key: Key) -> Option<&Node<'a>> {
        if let (Key::Exact(k), Some(_)) = (key, &self.index) {
            return self.position(k).map(|i| &self.children[i].1);
        }
        self.children
            .iter()
            .find(|(s, _)| key.matches(s))
            .map(|(_, n)| n)
    }

    /// The children named by 1-based indexes, in index order.
    fn items(&self) -> Vec<&Node<'a>> {
        let mut items: Vec<(u32, &Node)> = self
            .children
            .iter()
            .filter_map(|(s, n)| s.parse::<u32>().ok().filter(|i| *i >= 1).map(|i| (i, n)))
            .collect();
        items.sort_unstable_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, n)| n).collect()
    }
}

/// How a member's key is spelled: as is, or (EC2 `locationName`) capitalised.
#[derive(Clone, Copy)]
enum Key<'s> {
    Exact(&'s str),
    Capitalized(&'s str),
}

impl Key<'_> {
    fn matches(&self, segment: &str) -> bool {
        match *self {
            Key::Exact(k) => k == segment,
            Key::Capitalized(k) => {
                let mut want = k.chars();
                let mut got = segment.chars();
                match (want.next(), got.next()) {
                    (Some(w), Some(g)) => {
                        w.to_uppercase().eq(std::iter::once(g)) && want.as_str() == got.as_str()
                    }
                    (None, None) => true,
                    _ => false,
                }
            }
        }
    }

    fn text(&self) -> &str {
        match *self {
            Key::Exact(k) | Key::Capitalized(k) => k,
        }
    }
}

struct Decoder<'m> {
    model: &'m ServiceModel,
    ec2: bool,
}

fn invalid(name: &str, value: &str, reason: &str) -> AwsError {
    AwsError::invalid_parameter(format!(
        "Value ({value}) for parameter {name} is invalid. {reason}"
    ))
}

impl<'m> Decoder<'m> {
    /// The key of a structure member (or a map's key/value) under its parent.
    fn member_key<'s>(&self, mref: &'s ShapeRef, target: &'s Shape, name: &'s str) -> Key<'s>
    where
        'm: 's,
    {
        if self.ec2 {
            if let Some(q) = &mref.query_name {
                return Key::Exact(q);
            }
            return match mref.location_name_in(target) {
                Some(l) => Key::Capitalized(l),
                None => Key::Exact(name),
            };
        }
        if target.kind == ShapeKind::List && mref.is_flattened(target) {
            // A flattened list is keyed by its item's name when the item has one.
            if let Some(item) = target
                .member
                .as_ref()
                .and_then(|m| self.model.target(m).and_then(|t| m.location_name_in(t)))
            {
                return Key::Exact(item);
            }
        }
        Key::Exact(mref.location_name_in(target).unwrap_or(name))
    }

    fn structure(&self, shape: &Shape, node: &Node) -> Result<Value, AwsError> {
        let mut obj = Map::new();
        if node.children.is_empty() {
            return Ok(Value::Object(obj));
        }
        for (name, mref) in &shape.members {
            let target = util::target(self.model, mref)?;
            let key = self.member_key(mref, target, name);
            let child = node.child(key).or_else(|| {
                // botocore sends an empty flattened list as `Member=` under the member's
                // own name, not the item name the non-empty form uses.
                let flattened_list =
                    !self.ec2 && target.kind == ShapeKind::List && mref.is_flattened(target);
                flattened_list
                    .then(|| node.child(Key::Exact(mref.location_name_in(target).unwrap_or(name))))
                    .flatten()
            });
            if let Some(child) = child {
                obj.insert(name.clone(), self.value(mref, target, child, name)?);
            }
        }
        Ok(Value::Object(obj))
    }

    fn value(
        &self,
        mref: &ShapeRef,
        shape: &Shape,
        node: &Node,
        name: &str,
    ) -> Result<Value, AwsError> {
        match shape.kind {
            ShapeKind::Structure => self.structure(shape, node),
            ShapeKind::List => {
                let member = shape
                    .member
                    .as_ref()
                    .ok_or_else(|| invalid(name, "", "The model has no list member."))?;
                let member_shape = util::target(self.model, member)?;
                let holder = if self.ec2 || mref.is_flattened(shape) {
                    Some(node)
                } else {
                    let wrap = member.location_name_in(member_shape).unwrap_or("member");
                    node.child(Key::Exact(wrap))
                };
                let items = holder.map(Node::items).unwrap_or_default();
                items
                    .into_iter()
                    .map(|n| self.value(member, member_shape, n, name))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array)
            }
            ShapeKind::Map => {
                let (Some(kref), Some(vref)) = (&shape.key, &shape.value) else {
                    return Err(invalid(name, "", "The model has no map key or value."));
                };
                let (kshape, vshape) = (
                    util::target(self.model, kref)?,
                    util::target(self.model, vref)?,
                );
                let key_key = self.member_key(kref, kshape, "key");
                let value_key = self.member_key(vref, vshape, "value");
                let holder = if mref.is_flattened(shape) {
                    Some(node)
                } else {
                    node.child(Key::Exact("entry"))
                };
                let mut map = Map::new();
                for entry in holder.map(Node::items).unwrap_or_default() {
                    let Some(k) = entry.child(key_key).and_then(|k| k.value) else {
                        return Err(invalid(
                            name,
                            "",
                            &format!("A map entry is missing its {}.", key_key.text()),
                        ));
                    };
                    if let Some(v) = entry.child(value_key) {
                        map.insert(k.to_owned(), self.value(vref, vshape, v, name)?);
                    }
                }
                Ok(Value::Object(map))
            }
            kind => {
                let text = node.value.unwrap_or("");
                util::scalar_from_text(kind, text).map_err(|reason| invalid(name, text, reason))
            }
        }
    }
}

/// Decodes a query (`ec2 == false`) or EC2 request.
pub(crate) fn decode(
    model: &ServiceModel,
    ec2: bool,
    req: &WireRequest,
) -> Result<(String, Value), AwsError> {
    // Parameters may come from the query string, the form body or both; the body wins.
    let pairs: Vec<(Cow<str>, Cow<str>)> = form_urlencoded::parse(req.query.as_bytes())
        .chain(form_urlencoded::parse(req.body))
        .collect();
    let mut root = Node::default();
    for (k, v) in &pairs {
        root.insert(k, v);
    }
    let action = root
        .child(Key::Exact("Action"))
        .and_then(|n| n.value)
        .ok_or_else(|| AwsError::missing_parameter("Action"))?;
    let service = model.metadata.service_id.as_deref().unwrap_or(&model.name);
    let (op_name, op) = model
        .operations
        .get_key_value(action)
        .ok_or_else(|| AwsError::invalid_action(action, service))?;
    let decoder = Decoder { model, ec2 };
    let input = match &op.input {
        Some(iref) => decoder.structure(util::target(model, iref)?, &root)?,
        None => Value::Object(Map::new()),
    };
    Ok((op_name.clone(), input))
}

fn namespace(model: &ServiceModel, ec2: bool) -> Cow<'_, str> {
    if ec2 {
        Cow::Owned(format!(
            "http://ec2.amazonaws.com/doc/{}/",
            model.metadata.api_version
        ))
    } else {
        Cow::Borrowed(model.metadata.xml_namespace.as_deref().unwrap_or(""))
    }
}

fn xml_response(status: u16, body: String, request_id: &str) -> WireResponse {
    WireResponse {
        status,
        headers: json::base_headers("text/xml", request_id),
        body: body.into_bytes(),
    }
}

/// Encodes a query or EC2 output document.
pub(crate) fn encode_output(
    model: &ServiceModel,
    ec2: bool,
    operation: &str,
    output: &Value,
    request_id: &str,
) -> WireResponse {
    let mut out = String::with_capacity(512);
    out.push('<');
    out.push_str(operation);
    out.push_str("Response xmlns=\"");
    xml::escape_attribute(&namespace(model, ec2), &mut out);
    out.push_str("\">");
    if ec2 {
        out.push_str("<requestId>");
        xml::escape_text(request_id, &mut out);
        out.push_str("</requestId>");
    }
    let oref = model
        .operations
        .get(operation)
        .and_then(|op| op.output.as_ref());
    if let Some((oref, shape)) = oref.and_then(|r| model.target(r).map(|s| (r, s))) {
        match oref.result_wrapper.as_deref().filter(|_| !ec2) {
            Some(wrapper) => {
                out.push('<');
                out.push_str(wrapper);
                out.push('>');
                xml::write_structure_members(model, shape, output, &mut out);
                out.push_str("</");
                out.push_str(wrapper);
                out.push('>');
            }
            None => xml::write_structure_members(model, shape, output, &mut out),
        }
    }
    if !ec2 {
        out.push_str("<ResponseMetadata><RequestId>");
        xml::escape_text(request_id, &mut out);
        out.push_str("</RequestId></ResponseMetadata>");
    }
    out.push_str("</");
    out.push_str(operation);
    out.push_str("Response>");
    xml_response(200, out, request_id)
}

/// Encodes a query `<ErrorResponse>` or an EC2 `<Response><Errors>` document.
pub(crate) fn encode_error(
    model: &ServiceModel,
    ec2: bool,
    error: &nimbus_core::AwsError,
    request_id: &str,
) -> WireResponse {
    let resolved = json::resolve_error(model, error);
    let mut out = String::with_capacity(256);
    if ec2 {
        out.push_str("<Response><Errors><Error>");
        xml::error_elements(None, resolved.query_code, error, &mut out);
        out.push_str("</Error></Errors>");
        xml::element("RequestID", request_id, &mut out);
        out.push_str("</Response>");
    } else {
        out.push_str("<ErrorResponse xmlns=\"");
        xml::escape_attribute(&namespace(model, ec2), &mut out);
        out.push_str("\"><Error>");
        xml::error_elements(
            Some(resolved.sender_fault),
            resolved.query_code,
            error,
            &mut out,
        );
        out.push_str("<Detail/></Error>");
        xml::element("RequestId", request_id, &mut out);
        out.push_str("</ErrorResponse>");
    }
    xml_response(resolved.status, out, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::model;
    use serde_json::json;

    fn form(body: &str) -> (http::HeaderMap, Vec<u8>) {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        (headers, body.as_bytes().to_vec())
    }

    fn run(
        model_name: &str,
        ec2: bool,
        query: &str,
        body: &str,
    ) -> Result<(String, Value), AwsError> {
        let m = model(model_name).expect("model");
        let (headers, body) = form(body);
        let req = WireRequest {
            method: "POST",
            path: "/",
            query,
            headers: &headers,
            body: &body,
        };
        decode(m, ec2, &req)
    }

    #[test]
    fn sqs_send_message_with_attributes() {
        let body = "Action=SendMessage&Version=2012-11-05\
            &QueueUrl=http%3A%2F%2Flocalhost%3A4566%2F000000000000%2Fq\
            &MessageBody=hello+world%21&DelaySeconds=30\
            &MessageAttribute.1.Name=color&MessageAttribute.1.Value.DataType=String\
            &MessageAttribute.1.Value.StringValue=blue\
            &MessageAttribute.2.Name=bin&MessageAttribute.2.Value.DataType=Binary\
            &MessageAttribute.2.Value.BinaryValue=AAEC\
            &MessageSystemAttribute.1.Name=AWSTraceHeader\
            &MessageSystemAttribute.1.Value.DataType=String\
            &MessageSystemAttribute.1.Value.StringValue=Root%3D1";
        let (op, input) = run("sqs-query", false, "", body).expect("decodes");
        assert_eq!(op, "SendMessage");
        assert_eq!(
            input,
            json!({
                "DelaySeconds": 30,
                "MessageAttributes": {
                    "color": {"DataType": "String", "StringValue": "blue"},
                    "bin": {"DataType": "Binary", "BinaryValue": "AAEC"}
                },
                "MessageBody": "hello world!",
                "MessageSystemAttributes": {
                    "AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1"}
                },
                "QueueUrl": "http://localhost:4566/000000000000/q"
            })
        );
    }

    #[test]
    fn lists_maps_and_get_requests() {
        let (op, input) = run(
            "sqs-query",
            false,
            "Action=ReceiveMessage&QueueUrl=u&AttributeName.2=All&AttributeName.1=SentTimestamp\
             &MaxNumberOfMessages=10",
            "",
        )
        .expect("decodes");
        assert_eq!(op, "ReceiveMessage");
        assert_eq!(input["AttributeNames"], json!(["SentTimestamp", "All"]));
        assert_eq!(input["MaxNumberOfMessages"], json!(10));
        let (_, input) = run(
            "sqs-query",
            false,
            "",
            "Action=ReceiveMessage&QueueUrl=u&AttributeNames=",
        )
        .expect("decodes");
        assert_eq!(input["AttributeNames"], json!([]));
        let (_, input) = run(
            "sqs-query",
            false,
            "",
            "Action=CreateQueue&QueueName=q&Attribute.1.Name=DelaySeconds&Attribute.1.Value=5\
             &Tag.1.Key=env&Tag.1.Value=dev",
        )
        .expect("decodes");
        assert_eq!(input["Attributes"], json!({"DelaySeconds": "5"}));
        assert_eq!(input["tags"], json!({"env": "dev"}));
        let (_, input) = run(
            "sts",
            false,
            "",
            "Action=AssumeRole&RoleArn=arn&RoleSessionName=s&DurationSeconds=900\
             &PolicyArns.member.1.arn=p1&PolicyArns.member.2.arn=p2&Tags=",
        )
        .expect("decodes");
        assert_eq!(
            input,
            json!({"DurationSeconds": 900, "PolicyArns": [{"arn": "p1"}, {"arn": "p2"}],
                   "RoleArn": "arn", "RoleSessionName": "s", "Tags": []})
        );
    }

    #[test]
    fn bad_input() {
        let err = run(
            "sqs-query",
            false,
            "",
            "Action=SendMessage&DelaySeconds=soon",
        )
        .expect_err("bad");
        assert_eq!(err.code, "InvalidParameterValue");
        let err = run("sqs-query", false, "", "Version=1").expect_err("no action");
        assert_eq!(err.code, "MissingParameter");
        let err = run("sqs-query", false, "", "Action=Nope").expect_err("unknown");
        assert_eq!(err.code, "InvalidAction");
    }

    #[test]
    fn wide_and_deep_requests() {
        let mut body = String::from("Action=DeleteMessageBatch&QueueUrl=u");
        for i in 1..=3000 {
            body.push_str(&format!(
                "&DeleteMessageBatchRequestEntry.{i}.Id=id{i}&DeleteMessageBatchRequestEntry.{i}.ReceiptHandle=r"
            ));
        }
        body.push_str("&x");
        body.push_str(&".x".repeat(100_000));
        body.push_str("=1");
        let (_, input) = run("sqs-query", false, "", &body).expect("decodes");
        let entries = input["Entries"].as_array().expect("entries");
        assert_eq!(entries.len(), 3000);
        assert_eq!(entries[2999]["Id"], json!("id3000"));
    }

    #[test]
    fn ec2_names() {
        let (op, input) = run(
            "ec2",
            true,
            "",
            "Action=RunInstances&ImageId=ami-1&MinCount=1&MaxCount=2&InstanceType=t3.micro\
             &SecurityGroupId.1=sg-1&SecurityGroupId.2=sg-2\
             &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=Name\
             &TagSpecification.1.Tag.1.Value=web&DryRun=false",
        )
        .expect("decodes");
        assert_eq!(op, "RunInstances");
        assert_eq!(input["SecurityGroupIds"], json!(["sg-1", "sg-2"]));
        assert_eq!(
            input["TagSpecifications"],
            json!([{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}])
        );
        assert_eq!(input["DryRun"], json!(false));
        assert_eq!(input["MinCount"], json!(1));
    }

    #[test]
    fn sts_assume_role_response() {
        let m = model("sts").expect("model");
        let out = json!({
            "Credentials": {"AccessKeyId": "ASIA", "SecretAccessKey": "s", "SessionToken": "t",
                            "Expiration": 1_700_000_000},
            "AssumedRoleUser": {"AssumedRoleId": "AROA:s", "Arn": "arn:aws:sts::1:assumed-role/r/s"},
            "PackedPolicySize": 6
        });
        let resp = encode_output(m, false, "AssumeRole", &out, "req-1");
        assert_eq!(resp.status, 200);
        assert_eq!(
            std::str::from_utf8(&resp.body).expect("utf8"),
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn>\
             <AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>\
             <Credentials><AccessKeyId>ASIA</AccessKeyId>\
             <Expiration>2023-11-14T22:13:20Z</Expiration>\
             <SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken></Credentials>\
             <PackedPolicySize>6</PackedPolicySize></AssumeRoleResult>\
             <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></AssumeRoleResponse>"
        );
    }

    #[test]
    fn ec2_describe_regions_response() {
        let m = model("ec2").expect("model");
        let out = json!({"Regions": [
            {"RegionName": "us-east-1", "Endpoint": "ec2.us-east-1.amazonaws.com", "OptInStatus": "opt-in-not-required"}
        ]});
        let resp = encode_output(m, true, "DescribeRegions", &out, "r-9");
        assert_eq!(
            std::str::from_utf8(&resp.body).expect("utf8"),
            "<DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>r-9</requestId><regionInfo><item>\
             <regionEndpoint>ec2.us-east-1.amazonaws.com</regionEndpoint>\
             <optInStatus>opt-in-not-required</optInStatus><regionName>us-east-1</regionName>\
             </item></regionInfo></DescribeRegionsResponse>"
        );
        let (op, input) = run(
            "ec2",
            true,
            "",
            "Action=CreateTags&Version=2016-11-15&ResourceId.1=i-1&ResourceId.2=i-2\
             &Tag.1.Key=Name&Tag.1.Value=web&DryRun=true",
        )
        .expect("decodes");
        assert_eq!(op, "CreateTags");
        assert_eq!(
            input,
            json!({"DryRun": true, "Resources": ["i-1", "i-2"], "Tags": [{"Key": "Name", "Value": "web"}]})
        );
    }

    #[test]
    fn errors() {
        let m = model("sqs-query").expect("model");
        let err = AwsError::new("QueueDoesNotExist", "The specified queue does not exist.");
        let resp = encode_error(m, false, &err, "r1");
        assert_eq!(resp.status, 400);
        assert_eq!(
            std::str::from_utf8(&resp.body).expect("utf8"),
            "<ErrorResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><Error>\
             <Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code>\
             <Message>The specified queue does not exist.</Message><Detail/></Error>\
             <RequestId>r1</RequestId></ErrorResponse>"
        );
        let m = model("ec2").expect("model");
        let err = AwsError::new("InvalidInstanceID.NotFound", "nope <x>");
        let resp = encode_error(m, true, &err, "r2");
        assert_eq!(
            std::str::from_utf8(&resp.body).expect("utf8"),
            "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>\
             <Message>nope &lt;x&gt;</Message></Error></Errors><RequestID>r2</RequestID></Response>"
        );
    }
}
