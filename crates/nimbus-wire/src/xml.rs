//! The XML value codec shared by the query, ec2 and rest-xml protocols: a
//! model-driven writer that turns a value (see the crate's value convention)
//! into elements, and a small DOM ([`XmlNode`]) with a model-driven reader
//! back to a value.
//!
//! Naming follows botocore, which is what clients actually parse: a member's
//! element is its `locationName` (on the reference, else on the target shape)
//! or its member name; a non-flattened list wraps items in `member` (or the
//! item reference's `locationName`); a flattened list repeats the element,
//! named by the item's `locationName` when it has one; maps use
//! `entry`/`key`/`value` (or the key and value `locationName`s) and flattened
//! maps repeat the element per entry. Members with a REST `location` are
//! never part of a body and are skipped both ways.
//!
//! The writer appends to a `String` by hand: it is on the path of every XML
//! response and needs no serializer state beyond escaping.

use crate::model::{ServiceModel, Shape, ShapeKind, ShapeRef};
use crate::util;
use nimbus_core::AwsError;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{Map, Value};

pub use crate::util::{scalar_from_text, scalar_to_text};

/// XML has no way to carry most C0 control characters; they are replaced rather
/// than producing a document no client can parse.
fn is_xml_char(c: char) -> bool {
    !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

fn escape(text: &str, out: &mut String, attribute: bool) {
    // Most text (keys, ETags, dates) needs no escaping: one byte scan, one copy.
    // A quote needs it in attributes only (every ETag has two).
    let plain = text.bytes().all(|b| {
        (0x20..0x7f).contains(&b) && !matches!(b, b'&' | b'<' | b'>') && (b != b'"' || !attribute)
    });
    if plain {
        out.push_str(text);
        return;
    }
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let rep = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            // A literal CR would be folded into LF by every XML parser.
            '\r' => "&#xD;",
            '"' if attribute => "&quot;",
            // Attribute values normalise raw whitespace to spaces; references survive.
            '\n' if attribute => "&#xA;",
            '\t' if attribute => "&#x9;",
            c if !is_xml_char(c) => "\u{fffd}",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        out.push_str(rep);
        start = i + c.len_utf8();
    }
    out.push_str(&text[start..]);
}

/// Appends `text` escaped for element content.
pub fn escape_text(text: &str, out: &mut String) {
    escape(text, out, false);
}

/// Appends `text` escaped for a double-quoted attribute value.
pub fn escape_attribute(text: &str, out: &mut String) {
    escape(text, out, true);
}

/// `<name>text</name>`, the text escaped.
pub(crate) fn element(name: &str, text: &str, out: &mut String) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_text(text, out);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// The inside of an XML `<Error>`: `<Type>` `Sender` or `Receiver` (when `sender_fault`
/// is given), `<Code>`, `<Message>`, then one element per extra field of the error.
pub(crate) fn error_elements(
    sender_fault: Option<bool>,
    code: &str,
    error: &AwsError,
    out: &mut String,
) {
    if let Some(sender) = sender_fault {
        element("Type", if sender { "Sender" } else { "Receiver" }, out);
    }
    element("Code", code, out);
    element("Message", &error.message, out);
    for (name, value) in &error.fields {
        element(name, value, out);
    }
}

/// ` xmlns="uri"` or ` xmlns:prefix="uri"` from a reference's `xmlNamespace` trait.
fn write_namespace(shape_ref: &ShapeRef, out: &mut String) {
    write_namespace_value(shape_ref.xml_namespace.as_ref(), out);
}

fn write_namespace_value(ns: Option<&Value>, out: &mut String) {
    let Some(ns) = ns else {
        return;
    };
    let (prefix, uri) = match ns {
        Value::String(uri) => (None, uri.as_str()),
        Value::Object(o) => (
            o.get("prefix").and_then(Value::as_str),
            o.get("uri").and_then(Value::as_str).unwrap_or(""),
        ),
        _ => return,
    };
    out.push_str(" xmlns");
    if let Some(p) = prefix {
        out.push(':');
        out.push_str(p);
    }
    out.push_str("=\"");
    escape_attribute(uri, out);
    out.push('"');
}

fn open(name: &str, shape_ref: &ShapeRef, out: &mut String) {
    out.push('<');
    out.push_str(name);
    write_namespace(shape_ref, out);
}

fn close(name: &str, out: &mut String) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Writes `value` as one element named `element_name` (or, for a flattened list or map,
/// as the repeated elements). Nulls and values of a shape the model lacks write nothing.
pub fn write_member(
    model: &ServiceModel,
    shape_ref: &ShapeRef,
    element_name: &str,
    value: &Value,
    out: &mut String,
) {
    if value.is_null() {
        return;
    }
    let Some(shape) = model.target(shape_ref) else {
        return;
    };
    match shape.kind {
        ShapeKind::Structure => {
            open(element_name, shape_ref, out);
            if shape_ref.xml_namespace.is_none() {
                write_namespace_value(shape.xml_namespace.as_ref(), out);
            }
            write_attributes(model, shape, value, out);
            out.push('>');
            write_structure_members(model, shape, value, out);
            close(element_name, out);
        }
        ShapeKind::List => {
            let (Some(member), Some(items)) = (&shape.member, value.as_array()) else {
                return;
            };
            let item_loc = model
                .target(member)
                .and_then(|t| member.location_name_in(t));
            if shape_ref.is_flattened(shape) {
                let item_name = item_loc.unwrap_or(element_name);
                for item in items {
                    write_member(model, member, item_name, item, out);
                }
            } else {
                open(element_name, shape_ref, out);
                out.push('>');
                let item_name = item_loc.unwrap_or("member");
                for item in items {
                    write_member(model, member, item_name, item, out);
                }
                close(element_name, out);
            }
        }
        ShapeKind::Map => {
            let (Some(key), Some(val), Some(entries)) =
                (&shape.key, &shape.value, value.as_object())
            else {
                return;
            };
            let key_name = model
                .target(key)
                .and_then(|t| key.location_name_in(t))
                .unwrap_or("key");
            let value_name = model
                .target(val)
                .and_then(|t| val.location_name_in(t))
                .unwrap_or("value");
            let flattened = shape_ref.is_flattened(shape);
            if !flattened {
                open(element_name, shape_ref, out);
                out.push('>');
            }
            for (k, v) in entries {
                if flattened {
                    open(element_name, shape_ref, out);
                    out.push('>');
                } else {
                    out.push_str("<entry>");
                }
                out.push('<');
                out.push_str(key_name);
                out.push('>');
                escape_text(k, out);
                close(key_name, out);
                write_member(model, val, value_name, v, out);
                if flattened {
                    close(element_name, out);
                } else {
                    out.push_str("</entry>");
                }
            }
            if !flattened {
                close(element_name, out);
            }
        }
        kind => {
            open(element_name, shape_ref, out);
            out.push('>');
            let format = shape_ref.timestamp_format_in(shape).unwrap_or("iso8601");
            write_scalar(kind, format, value, out);
            close(element_name, out);
        }
    }
}

/// [`scalar_to_text`] escaped into `out`. Numbers and numeric timestamps (a
/// listing's Size and LastModified) are written in place: their text has
/// nothing to escape, and a thousand-entry page would build two temporary
/// strings per entry.
fn write_scalar(kind: ShapeKind, format: &str, value: &Value, out: &mut String) {
    use std::fmt::Write as _;
    match (kind, value) {
        (ShapeKind::Timestamp, Value::Number(n)) => match n.as_f64() {
            Some(t) => nimbus_core::timestamp::write_formatted(t, format, out),
            None => escape_text(&scalar_to_text(kind, format, value), out),
        },
        (ShapeKind::Integer | ShapeKind::Long, Value::Number(n)) => {
            // Writing into a String cannot fail.
            let _ = match util::integer_of(n) {
                Some(i) => write!(out, "{i}"),
                None => write!(out, "{n}"),
            };
        }
        _ => escape_text(&scalar_to_text(kind, format, value), out),
    }
}

/// The `xmlAttribute` members of a structure, written into its open tag.
fn write_attributes(model: &ServiceModel, shape: &Shape, value: &Value, out: &mut String) {
    let Some(obj) = value.as_object() else {
        return;
    };
    for (name, mref) in &shape.members {
        if !mref.xml_attribute {
            continue;
        }
        let (Some(v), Some(target)) = (obj.get(name), model.target(mref)) else {
            continue;
        };
        if v.is_null() {
            continue;
        }
        out.push(' ');
        out.push_str(mref.location_name_in(target).unwrap_or(name));
        out.push_str("=\"");
        let format = mref.timestamp_format_in(target).unwrap_or("iso8601");
        escape_attribute(&scalar_to_text(target.kind, format, v), out);
        out.push('"');
    }
}

/// Writes the element members of a structure value (in model order), without a
/// surrounding element. Attribute members and members with a REST `location` are skipped.
pub fn write_structure_members(
    model: &ServiceModel,
    shape: &Shape,
    value: &Value,
    out: &mut String,
) {
    let Some(obj) = value.as_object() else {
        return;
    };
    if obj.is_empty() {
        return;
    }
    // Small objects (listing entries) are scanned instead of hashed: cheaper per member.
    let small = obj.len() <= 12;
    for (name, mref) in &shape.members {
        if mref.xml_attribute || mref.location.is_some() {
            continue;
        }
        let found = if small {
            obj.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
        } else {
            obj.get(name)
        };
        let Some(v) = found else {
            continue;
        };
        let element = model
            .target(mref)
            .and_then(|t| mref.location_name_in(t))
            .unwrap_or(name);
        write_member(model, mref, element, v, out);
    }
}

/// One element of a parsed document. `name` is the local name (any namespace prefix
/// removed, as botocore does); attribute names keep their prefix (`xsi:type`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XmlNode {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<XmlNode>,
    /// All character data directly inside the element, entities resolved.
    pub text: String,
}

impl XmlNode {
    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&XmlNode> {
        self.children.iter().find(|c| c.name == name)
    }

    /// An attribute by its qualified name, else by its local name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        let local = |n: &str| n.rsplit(':').next().unwrap_or(n).to_owned();
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .or_else(|| {
                let want = local(name);
                self.attributes.iter().find(|(k, _)| local(k) == want)
            })
            .map(|(_, v)| v.as_str())
    }
}

/// The error for a body that is not XML, or not the XML the model describes.
pub fn malformed() -> AwsError {
    AwsError::new(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

/// Deeper documents are refused: no AWS body nests anywhere near this, and the limit
/// keeps a hostile document from exhausting the stack when the tree is dropped.
const MAX_DEPTH: usize = 64;

fn local_name(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}

fn start_node(e: &quick_xml::events::BytesStart) -> Result<XmlNode, AwsError> {
    let qname = e.name();
    let mut node = XmlNode {
        name: local_name(qname.into_inner()).to_owned(),
        ..XmlNode::default()
    };
    for attr in e.attributes() {
        let attr = attr.map_err(|_| malformed())?;
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|_| malformed())?;
        node.attributes
            .push((attr.key.into_inner().to_owned(), value.into_owned()));
    }
    Ok(node)
}

/// Parses a document and returns its root element.
pub fn parse(bytes: &[u8]) -> Result<XmlNode, AwsError> {
    let text = std::str::from_utf8(bytes).map_err(|_| malformed())?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<XmlNode> = Vec::new();
    let mut root: Option<XmlNode> = None;
    loop {
        let event = reader.read_event().map_err(|_| malformed())?;
        match event {
            Event::Start(e) => {
                if root.is_some() || stack.len() >= MAX_DEPTH {
                    return Err(malformed());
                }
                stack.push(start_node(&e)?);
            }
            Event::Empty(e) => {
                if root.is_some() {
                    return Err(malformed());
                }
                let node = start_node(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(malformed)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => match stack.last_mut() {
                Some(node) => node.text.push_str(&t.xml10_content()),
                None if t.xml10_content().trim().is_empty() => {}
                None => return Err(malformed()),
            },
            Event::CData(t) => {
                let node = stack.last_mut().ok_or_else(malformed)?;
                node.text.push_str(&t.into_inner());
            }
            Event::GeneralRef(r) => {
                let node = stack.last_mut().ok_or_else(malformed)?;
                match r.resolve_char_ref() {
                    Ok(Some(c)) => node.text.push(c),
                    Ok(None) => {
                        // Only the five predefined entities exist: nimbus never reads a DTD.
                        let value = resolve_predefined_entity(&r).ok_or_else(malformed)?;
                        node.text.push_str(value);
                    }
                    Err(_) => return Err(malformed()),
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed());
    }
    root.ok_or_else(malformed)
}

/// Reads `node` as a value of the shape `shape_ref` points at. For a flattened list or
/// map, `node` is one repeated element and the result holds just that item or entry.
pub fn node_to_value(
    model: &ServiceModel,
    shape_ref: &ShapeRef,
    node: &XmlNode,
) -> Result<Value, AwsError> {
    let shape = util::target(model, shape_ref)?;
    match shape.kind {
        ShapeKind::Structure => node_members_to_value(model, shape, node),
        ShapeKind::List => {
            let member = shape.member.as_ref().ok_or_else(malformed)?;
            if shape_ref.is_flattened(shape) {
                Ok(Value::Array(vec![node_to_value(model, member, node)?]))
            } else {
                // Like botocore, every child is an item whatever its name.
                node.children
                    .iter()
                    .map(|c| node_to_value(model, member, c))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array)
            }
        }
        ShapeKind::Map => {
            let mut map = Map::new();
            if shape_ref.is_flattened(shape) {
                read_entry(model, shape, node, &mut map)?;
            } else {
                for entry in &node.children {
                    read_entry(model, shape, entry, &mut map)?;
                }
            }
            Ok(Value::Object(map))
        }
        kind => scalar_from_text(kind, &node.text).map_err(|_| malformed()),
    }
}

/// One map entry: the key and value children of `entry`.
fn read_entry(
    model: &ServiceModel,
    shape: &Shape,
    entry: &XmlNode,
    map: &mut Map<String, Value>,
) -> Result<(), AwsError> {
    let (Some(key), Some(val)) = (&shape.key, &shape.value) else {
        return Err(malformed());
    };
    let key_name = key
        .location_name_in(util::target(model, key)?)
        .unwrap_or("key");
    let value_name = val
        .location_name_in(util::target(model, val)?)
        .unwrap_or("value");
    let k = entry.child(key_name).ok_or_else(malformed)?;
    let v = match entry.child(value_name) {
        Some(v) => node_to_value(model, val, v)?,
        None => return Ok(()),
    };
    map.insert(k.text.clone(), v);
    Ok(())
}

/// Reads the members of structure `shape` from the children and attributes of `node`.
/// Unknown elements are ignored, as AWS does.
pub fn node_members_to_value(
    model: &ServiceModel,
    shape: &Shape,
    node: &XmlNode,
) -> Result<Value, AwsError> {
    let mut obj = Map::new();
    for (name, mref) in &shape.members {
        if mref.location.is_some() {
            continue;
        }
        let target = util::target(model, mref)?;
        if mref.xml_attribute {
            let attr_name = mref.location_name_in(target).unwrap_or(name);
            if let Some(text) = node.attribute(attr_name) {
                obj.insert(
                    name.clone(),
                    scalar_from_text(target.kind, text).map_err(|_| malformed())?,
                );
            }
            continue;
        }
        let flattened =
            matches!(target.kind, ShapeKind::List | ShapeKind::Map) && mref.is_flattened(target);
        let mut element = mref.location_name_in(target).unwrap_or(name);
        if flattened && target.kind == ShapeKind::List {
            if let Some(item_loc) = target
                .member
                .as_ref()
                .and_then(|m| model.target(m).and_then(|t| m.location_name_in(t)))
            {
                element = item_loc;
            }
        }
        if flattened {
            let mut matches = node
                .children
                .iter()
                .filter(|c| c.name == element)
                .peekable();
            if matches.peek().is_none() {
                continue;
            }
            let value = if target.kind == ShapeKind::List {
                let member = target.member.as_ref().ok_or_else(malformed)?;
                Value::Array(
                    matches
                        .map(|c| node_to_value(model, member, c))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            } else {
                let mut map = Map::new();
                for c in matches {
                    read_entry(model, target, c, &mut map)?;
                }
                Value::Object(map)
            };
            obj.insert(name.clone(), value);
        } else if let Some(child) = node.child(element) {
            obj.insert(name.clone(), node_to_value(model, mref, child)?);
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::model;
    use serde_json::json;

    #[test]
    fn escapes() {
        let mut s = String::new();
        escape_text("a<b>&\"c\"\r\n\u{1}", &mut s);
        assert_eq!(s, "a&lt;b&gt;&amp;\"c\"&#xD;\n\u{fffd}");
        let mut s = String::new();
        escape_attribute("\"x\"\n", &mut s);
        assert_eq!(s, "&quot;x&quot;&#xA;");
        // Quotes alone (an ETag): kept in text, escaped in an attribute.
        let mut s = String::new();
        escape_text("\"9b2c\"", &mut s);
        escape_attribute("\"9b2c\"", &mut s);
        assert_eq!(s, "\"9b2c\"&quot;9b2c&quot;");
    }

    #[test]
    fn parses_documents() {
        let doc = br#"<?xml version="1.0"?><a:Root xmlns:a="urn:x" k="v&amp;"><B>1 &lt; 2&#x41;<![CDATA[<x>]]></B><C/></a:Root>"#;
        let root = parse(doc).expect("parses");
        assert_eq!(root.name, "Root");
        assert_eq!(root.attribute("k"), Some("v&"));
        assert_eq!(root.children[0].text, "1 < 2A<x>");
        assert_eq!(root.children[1].name, "C");
        for bad in [
            &b"<a><b></a>"[..],
            b"",
            b"<a>&foo;</a>",
            b"<a></a><b/>",
            b"text",
        ] {
            assert!(parse(bad).is_err(), "{:?}", std::str::from_utf8(bad));
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(
            parse(deep.as_bytes()).map_err(|e| e.code),
            Err("MalformedXML".into())
        );
    }

    /// Numbers and numeric timestamps are written in place; their text is what
    /// `scalar_to_text` gives.
    #[test]
    fn listing_entries() {
        let m = model("s3").expect("model");
        let shape = m.shape("ListObjectsV2Output").expect("shape");
        let value = json!({"MaxKeys": 2, "KeyCount": 2.0, "Contents": [
            {"Key": "a&b", "LastModified": 1700000000, "ETag": "\"e\"", "Size": 1024, "StorageClass": "STANDARD"},
            {"Key": "c", "LastModified": 1700000000.25, "Size": 0},
            {"Key": "d", "LastModified": "2023-11-14T22:13:20Z", "Size": u64::MAX},
        ]});
        let mut out = String::new();
        write_structure_members(m, shape, &value, &mut out);
        assert_eq!(
            out,
            "<Contents><ETag>\"e\"</ETag><Key>a&amp;b</Key><LastModified>2023-11-14T22:13:20Z</LastModified>\
             <Size>1024</Size><StorageClass>STANDARD</StorageClass></Contents>\
             <Contents><Key>c</Key><LastModified>2023-11-14T22:13:20.250Z</LastModified><Size>0</Size></Contents>\
             <Contents><Key>d</Key><LastModified>2023-11-14T22:13:20Z</LastModified>\
             <Size>18446744073709551615</Size></Contents>\
             <KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
        );
    }

    #[test]
    fn sqs_message_round_trip() {
        let m = model("sqs-query").expect("model");
        let shape = m.shape("ReceiveMessageResult").expect("shape");
        let value = json!({"Messages": [{
            "MessageId": "m1", "Body": "<hi>",
            "Attributes": {"SenderId": "A", "SentTimestamp": "1"},
            "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v", "StringListValues": ["a"]}}
        }]});
        let mut out = String::new();
        write_structure_members(m, shape, &value, &mut out);
        assert_eq!(
            out,
            "<Message><Attribute><Name>SenderId</Name><Value>A</Value></Attribute>\
             <Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute>\
             <Body>&lt;hi&gt;</Body>\
             <MessageAttribute><Name>k</Name><Value><DataType>String</DataType>\
             <StringListValue>a</StringListValue>\
             <StringValue>v</StringValue></Value></MessageAttribute>\
             <MessageId>m1</MessageId></Message>"
        );
        let node = parse(format!("<R>{out}</R>").as_bytes()).expect("parses");
        assert_eq!(
            node_members_to_value(m, shape, &node).expect("reads"),
            value
        );
    }
}
