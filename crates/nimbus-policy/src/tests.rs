//! End-to-end table tests: documents in, errors or decisions out. Each table
//! row is one case so a failure names the document that broke.

use std::collections::BTreeMap;

use crate::{Decision, Policy, PolicyVersion, Principal, Request};

const USER: Principal<'static> = Principal::Aws {
    arn: "arn:aws:iam::111122223333:user/alice",
    account: "111122223333",
};
const OTHER: Principal<'static> = Principal::Aws {
    arn: "arn:aws:iam::444455556666:user/bob",
    account: "444455556666",
};

fn ctx(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
        .collect()
}

fn parse(doc: &str) -> Policy {
    match Policy::parse(doc) {
        Ok(p) => p,
        Err(e) => panic!("{doc} did not parse: {}", e.message),
    }
}

fn eval(
    policy: &Policy,
    who: Principal<'_>,
    action: &str,
    resource: &str,
    context: &BTreeMap<String, Vec<String>>,
) -> Decision {
    policy.evaluate(&Request {
        principal: who,
        action,
        resource,
        context,
    })
}

/// A one-statement Allow policy with the given principal/action/resource JSON
/// fragments and condition block.
fn allow(principal: &str, action: &str, resource: &str, condition: &str) -> String {
    let condition = if condition.is_empty() {
        String::new()
    } else {
        format!(r#","Condition":{condition}"#)
    };
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":{action},"Resource":{resource}{condition}}}]}}"#
    )
}

#[test]
fn parse_errors() {
    let ok_stmt =
        r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*""#;
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "Policies must be valid JSON and the first byte must be '{'"),
        ("[]".into(), "Policies must be valid JSON and the first byte must be '{'"),
        ("{".into(), "Policies must be valid JSON and the first byte must be '{'"),
        ("{\"Statement\": [}".into(), "Policies must be valid JSON and the first byte must be '{'"),
        ("{}".into(), "Missing required field Statement"),
        (r#"{"Statement":[]}"#.into(), "Could not parse the policy: Statement is empty!"),
        (r#"{"Statement":"x"}"#.into(), "Invalid policy syntax."),
        (r#"{"Statement":["x"]}"#.into(), "Invalid policy syntax."),
        (format!(r#"{{"Version":"2020-01-01","Statement":{{{ok_stmt}}}}}"#), "The policy must contain a valid version string"),
        (format!(r#"{{"Version":20121017,"Statement":{{{ok_stmt}}}}}"#), "The policy must contain a valid version string"),
        (format!(r#"{{"Id":5,"Statement":{{{ok_stmt}}}}}"#), "Invalid policy syntax."),
        (format!(r#"{{"Extra":1,"Statement":{{{ok_stmt}}}}}"#), "Unknown field Extra"),
        (format!(r#"{{"Statement":{{{ok_stmt},"Effects":"Allow"}}}}"#), "Unknown field Effects"),
        (r#"{"Statement":{"Principal":"*","Action":"s3:*","Resource":"*"}}"#.into(), "Missing required field Effect"),
        (r#"{"Statement":{"Effect":"hello","Principal":"*","Action":"s3:*","Resource":"*"}}"#.into(), "Invalid effect: hello"),
        (r#"{"Statement":{"Effect":"allow","Principal":"*","Action":"s3:*","Resource":"*"}}"#.into(), "Invalid effect: allow"),
        (r#"{"Statement":{"Effect":true,"Principal":"*","Action":"s3:*","Resource":"*"}}"#.into(), "Invalid policy syntax."),
        (r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#.into(), "Missing required field Principal"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Resource":"*"}}"#.into(), "Missing required field Action"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*"}}"#.into(), "Missing required field Resource"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"s3:*","Resource":"*"}}"#.into(), "Invalid policy syntax."),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","NotAction":"s3:*","Resource":"*"}}"#.into(), "Invalid policy syntax."),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","NotResource":"*"}}"#.into(), "Invalid policy syntax."),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"invalid_action","Resource":"*"}}"#.into(), "Policy has invalid action"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":[],"Resource":"*"}}"#.into(), "Policy has invalid action"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":["s3:Get*",7],"Resource":"*"}}"#.into(), "Policy has invalid action"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:","Resource":"*"}}"#.into(), "Policy has invalid action"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:Get Object","Resource":"*"}}"#.into(), "Policy has invalid action"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"bucket"}}"#.into(), "Policy has invalid resource"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:b"}}"#.into(), "Policy has invalid resource"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":[]}}"#.into(), "Policy has invalid resource"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"user","Action":"s3:*","Resource":"*"}}"#.into(), "Invalid principal in policy"),
        (r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"user"},"Action":"s3:*","Resource":"*"}}"#.into(), "Invalid principal in policy"),
        (r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"12345"},"Action":"s3:*","Resource":"*"}}"#.into(), "Invalid principal in policy"),
        (r#"{"Statement":{"Effect":"Allow","Principal":{"Bogus":"x"},"Action":"s3:*","Resource":"*"}}"#.into(), "Invalid principal in policy"),
        (r#"{"Statement":{"Effect":"Allow","Principal":{},"Action":"s3:*","Resource":"*"}}"#.into(), "Invalid principal in policy"),
        (r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":[]},"Action":"s3:*","Resource":"*"}}"#.into(), "Invalid principal in policy"),
        (r#"{"Statement":{"Effect":"Allow","Principal":{"Service":""},"Action":"s3:*","Resource":"*"}}"#.into(), "Invalid principal in policy"),
        (r#"{"Statement":[{"Sid":"A","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},{"Sid":"A","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}]}"#.into(), "Statement IDs (SID) in a single policy must be unique."),
        (r#"{"Statement":{"Sid":1,"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}"#.into(), "Invalid policy syntax."),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEqualz":{"aws:UserAgent":"x"}}}}"#.into(), "Invalid Condition operator : StringEqualz"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"NullIfExists":{"aws:UserAgent":"true"}}}}"#.into(), "Invalid Condition operator : NullIfExists"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"ForSomeValues:StringEquals":{"aws:UserAgent":"x"}}}}"#.into(), "Invalid Condition operator : ForSomeValues:StringEquals"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":"x"}}"#.into(), "Invalid policy syntax."),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEquals":"x"}}}"#.into(), "Invalid policy syntax."),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{}}}}"#.into(), "Invalid policy syntax."),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:UserAgent":{"a":1}}}}}"#.into(), "Invalid policy syntax."),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"UserAgent":"x"}}}}"#.into(), "Policy has an invalid condition key"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"300.1.1.1/8"}}}}"#.into(), "Invalid Condition value : 300.1.1.1/8"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}}"#.into(), "Invalid Condition value : yes"),
    ];
    for (doc, want) in &cases {
        match Policy::parse(doc) {
            Ok(_) => panic!("accepted: {doc}"),
            Err(e) => assert_eq!(e.message, *want, "document: {doc}"),
        }
    }
}

#[test]
fn parse_accepts_valid_shapes() {
    let docs = [
        // Statement as a single object; Version absent.
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
        r#"  {"Version":"2008-10-17","Id":"x","Statement":[{"Sid":"1","Effect":"Deny","NotPrincipal":{"AWS":["111122223333","arn:aws:iam::111122223333:role/r"]},"NotAction":"s3:Delete*","NotResource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["cloudfront.amazonaws.com"],"CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},"Action":["s3:*"],"Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false},"NumericLessThan":{"s3:max-keys":10},"ForAnyValue:StringLikeIfExists":{"aws:TagKeys":["a*"]},"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}}]}"#,
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/r/s"},"Action":"*","Resource":"arn:aws:s3:::b/${aws:username}/*"}}"#,
    ];
    for doc in docs {
        parse(doc);
    }
    let p = parse(docs[1]);
    assert_eq!(p.version(), PolicyVersion::V2008_10_17);
    assert_eq!(p.id(), Some("x"));
    assert_eq!(p.statement_count(), 1);
    assert_eq!(
        p.resources().collect::<Vec<_>>(),
        ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]
    );
    assert_eq!(p.actions().collect::<Vec<_>>(), ["s3:delete*"]);
    assert_eq!(parse(docs[2]).version(), PolicyVersion::V2012_10_17);
}

#[test]
fn identity_policies_forbid_principal() {
    let doc =
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#;
    let p = match Policy::parse_identity(doc) {
        Ok(p) => p,
        Err(e) => panic!("{}", e.message),
    };
    let c = ctx(&[]);
    assert_eq!(
        eval(&p, USER, "s3:GetObject", "arn:aws:s3:::b/k", &c),
        Decision::Allow
    );
    let with_principal =
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}"#;
    assert!(Policy::parse_identity(with_principal).is_err());
}

#[test]
fn s3_public_read_pattern() {
    let c = ctx(&[]);
    // No policy: nothing applies (the caller's default deny is not ours).
    let empty = parse(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"}}"#,
    );
    assert_eq!(
        eval(
            &empty,
            Principal::Anonymous,
            "s3:GetObject",
            "arn:aws:s3:::b/key",
            &c
        ),
        Decision::NotApplicable
    );

    let policy = parse(&allow(
        r#""*""#,
        r#""s3:GetObject""#,
        r#""arn:aws:s3:::b/*""#,
        "",
    ));
    assert_eq!(
        eval(
            &policy,
            Principal::Anonymous,
            "s3:GetObject",
            "arn:aws:s3:::b/key",
            &c
        ),
        Decision::Allow
    );
    assert_eq!(
        eval(
            &policy,
            Principal::Anonymous,
            "s3:GetObject",
            "arn:aws:s3:::other/key",
            &c
        ),
        Decision::NotApplicable
    );
    assert_eq!(
        eval(
            &policy,
            Principal::Anonymous,
            "s3:PutObject",
            "arn:aws:s3:::b/key",
            &c
        ),
        Decision::NotApplicable
    );
    assert_eq!(
        eval(&policy, USER, "s3:GetObject", "arn:aws:s3:::b/key", &c),
        Decision::Allow
    );
    assert!(policy.is_public());

    let with_deny = parse(
        r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
        {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],
         "Condition":{"NotIpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32"]}}}]}"#,
    );
    let inside = ctx(&[("aws:SourceIp", &["192.0.2.10"])]);
    let outside = ctx(&[("aws:SourceIp", &["198.51.100.1"])]);
    let inside6 = ctx(&[("aws:SourceIp", &["2001:db8::7"])]);
    assert_eq!(
        eval(
            &with_deny,
            Principal::Anonymous,
            "s3:GetObject",
            "arn:aws:s3:::b/key",
            &inside
        ),
        Decision::Allow
    );
    assert_eq!(
        eval(
            &with_deny,
            Principal::Anonymous,
            "s3:GetObject",
            "arn:aws:s3:::b/key",
            &inside6
        ),
        Decision::Allow
    );
    assert_eq!(
        eval(
            &with_deny,
            Principal::Anonymous,
            "s3:GetObject",
            "arn:aws:s3:::b/key",
            &outside
        ),
        Decision::Deny
    );
    // Missing SourceIp: the negated operator holds, so the deny applies.
    assert_eq!(
        eval(
            &with_deny,
            Principal::Anonymous,
            "s3:GetObject",
            "arn:aws:s3:::b/key",
            &c
        ),
        Decision::Deny
    );
}

#[test]
fn action_matching() {
    let c = ctx(&[]);
    let cases: &[(&str, &str, Decision)] = &[
        (r#""s3:GetObject""#, "s3:GetObject", Decision::Allow),
        (r#""s3:GetObject""#, "S3:getobject", Decision::Allow),
        (r#""S3:GETOBJECT""#, "s3:GetObject", Decision::Allow),
        (r#""s3:Get*""#, "s3:GetObjectAcl", Decision::Allow),
        (r#""s3:Get*""#, "s3:PutObject", Decision::NotApplicable),
        (r#""s3:*""#, "s3:DeleteBucket", Decision::Allow),
        (r#""s3:*""#, "sqs:SendMessage", Decision::NotApplicable),
        (r#""*""#, "sqs:SendMessage", Decision::Allow),
        (r#""s3:?etObject""#, "s3:GetObject", Decision::Allow),
        (
            r#""s3:?etObject""#,
            "s3:GGetObject",
            Decision::NotApplicable,
        ),
        (
            r#"["s3:PutObject","s3:List*"]"#,
            "s3:ListBucket",
            Decision::Allow,
        ),
        (
            r#""s3:GetObject""#,
            "s3:GetObjectVersion",
            Decision::NotApplicable,
        ),
    ];
    for (action, requested, want) in cases {
        let p = parse(&allow(r#""*""#, action, r#""*""#, ""));
        assert_eq!(
            eval(&p, USER, requested, "arn:aws:s3:::b", &c),
            *want,
            "{action} vs {requested}"
        );
    }
    // NotAction: everything except the listed actions.
    let p = parse(
        r#"{"Statement":{"Effect":"Allow","Principal":"*","NotAction":"s3:Delete*","Resource":"*"}}"#,
    );
    assert_eq!(
        eval(&p, USER, "s3:GetObject", "arn:aws:s3:::b", &c),
        Decision::Allow
    );
    assert_eq!(
        eval(&p, USER, "s3:DeleteObject", "arn:aws:s3:::b", &c),
        Decision::NotApplicable
    );
}

#[test]
fn resource_matching() {
    let c = ctx(&[]);
    let cases: &[(&str, &str, Decision)] = &[
        (r#""arn:aws:s3:::b/*""#, "arn:aws:s3:::b/k", Decision::Allow),
        (
            r#""arn:aws:s3:::b/*""#,
            "arn:aws:s3:::b/dir/k:x",
            Decision::Allow,
        ),
        (
            r#""arn:aws:s3:::b/*""#,
            "arn:aws:s3:::b",
            Decision::NotApplicable,
        ),
        (
            r#""arn:aws:s3:::b/*""#,
            "arn:aws:s3:::bb/k",
            Decision::NotApplicable,
        ),
        (
            r#""arn:aws:s3:::b/*""#,
            "arn:aws:s3:::B/k",
            Decision::NotApplicable,
        ),
        (r#""arn:aws:s3:::b""#, "arn:aws:s3:::b", Decision::Allow),
        (
            r#""arn:aws:s3:::b/key?""#,
            "arn:aws:s3:::b/key1",
            Decision::Allow,
        ),
        (
            r#""arn:aws:s3:::b/key?""#,
            "arn:aws:s3:::b/key",
            Decision::NotApplicable,
        ),
        (
            r#""arn:aws:s3:::*""#,
            "arn:aws:s3:::any/thing",
            Decision::Allow,
        ),
        (
            r#""arn:aws:sqs:*:111122223333:q""#,
            "arn:aws:sqs:us-east-1:111122223333:q",
            Decision::Allow,
        ),
        (
            r#""arn:aws:sqs:*:111122223333:q""#,
            "arn:aws:sqs:us-east-1:444455556666:q",
            Decision::NotApplicable,
        ),
        (r#""*""#, "arn:aws:s3:::b/k", Decision::Allow),
        (
            r#"["arn:aws:s3:::x","arn:aws:s3:::b/k"]"#,
            "arn:aws:s3:::b/k",
            Decision::Allow,
        ),
    ];
    for (resource, requested, want) in cases {
        let p = parse(&allow(r#""*""#, r#""s3:*""#, resource, ""));
        assert_eq!(
            eval(&p, USER, "s3:GetObject", requested, &c),
            *want,
            "{resource} vs {requested}"
        );
    }
    let p = parse(
        r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:*","NotResource":"arn:aws:s3:::b/public/*"}}"#,
    );
    assert_eq!(
        eval(&p, USER, "s3:GetObject", "arn:aws:s3:::b/public/x", &c),
        Decision::NotApplicable
    );
    assert_eq!(
        eval(&p, USER, "s3:GetObject", "arn:aws:s3:::b/private/x", &c),
        Decision::Deny
    );
}

#[test]
fn principal_matching() {
    let c = ctx(&[]);
    let session = Principal::Aws {
        arn: "arn:aws:sts::111122223333:assumed-role/reader/sess-1",
        account: "111122223333",
    };
    let service = Principal::Service("cloudfront.amazonaws.com");
    let anon = Principal::Anonymous;
    let cases: &[(&str, Principal<'_>, bool)] = &[
        (r#""*""#, anon, true),
        (r#""*""#, USER, true),
        (r#""*""#, service, true),
        (r#"{"AWS":"*"}"#, anon, true),
        (r#"{"AWS":["*"]}"#, OTHER, true),
        (r#"{"AWS":"111122223333"}"#, USER, true),
        (r#"{"AWS":"111122223333"}"#, session, true),
        (r#"{"AWS":"111122223333"}"#, OTHER, false),
        (r#"{"AWS":"111122223333"}"#, anon, false),
        (r#"{"AWS":"arn:aws:iam::111122223333:root"}"#, USER, true),
        (r#"{"AWS":"arn:aws:iam::111122223333:root"}"#, OTHER, false),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:user/alice"}"#,
            USER,
            true,
        ),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:user/alicia"}"#,
            USER,
            false,
        ),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:role/reader"}"#,
            session,
            true,
        ),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:role/team/reader"}"#,
            session,
            true,
        ),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:role/writer"}"#,
            session,
            false,
        ),
        (
            r#"{"AWS":"arn:aws:iam::444455556666:role/reader"}"#,
            session,
            false,
        ),
        (
            r#"{"AWS":"arn:aws:sts::111122223333:assumed-role/reader/sess-1"}"#,
            session,
            true,
        ),
        (
            r#"{"AWS":"arn:aws:sts::111122223333:assumed-role/reader/sess-2"}"#,
            session,
            false,
        ),
        (r#"{"Service":"cloudfront.amazonaws.com"}"#, service, true),
        (r#"{"Service":"logging.s3.amazonaws.com"}"#, service, false),
        (r#"{"Service":"cloudfront.amazonaws.com"}"#, USER, false),
        (r#"{"CanonicalUser":"abc"}"#, anon, false),
        (
            r#"{"AWS":["444455556666"],"Service":"cloudfront.amazonaws.com"}"#,
            OTHER,
            true,
        ),
    ];
    for (principal, who, want) in cases {
        let p = parse(&allow(principal, r#""s3:*""#, r#""*""#, ""));
        let want = if *want {
            Decision::Allow
        } else {
            Decision::NotApplicable
        };
        assert_eq!(
            eval(&p, *who, "s3:GetObject", "arn:aws:s3:::b/k", &c),
            want,
            "{principal} vs {who:?}"
        );
    }
    // NotPrincipal: deny everyone but the account.
    let p = parse(
        r#"{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"s3:*","Resource":"*"}}"#,
    );
    assert_eq!(
        eval(&p, USER, "s3:GetObject", "arn:aws:s3:::b/k", &c),
        Decision::NotApplicable
    );
    assert_eq!(
        eval(&p, OTHER, "s3:GetObject", "arn:aws:s3:::b/k", &c),
        Decision::Deny
    );
    assert_eq!(
        eval(&p, anon, "s3:GetObject", "arn:aws:s3:::b/k", &c),
        Decision::Deny
    );
}

/// (operator block, context, expected: does the Allow apply?)
type CondCase<'a> = (&'a str, &'a [(&'a str, &'a [&'a str])], bool);

#[test]
fn condition_operators() {
    let cases: &[CondCase<'_>] = &[
        // Strings
        (
            r#"{"StringEquals":{"aws:UserAgent":"curl"}}"#,
            &[("aws:UserAgent", &["curl"])],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:UserAgent":"curl"}}"#,
            &[("aws:useragent", &["curl"])],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:UserAgent":"curl"}}"#,
            &[("aws:UserAgent", &["Curl"])],
            false,
        ),
        (r#"{"StringEquals":{"aws:UserAgent":"curl"}}"#, &[], false),
        (
            r#"{"StringEquals":{"aws:UserAgent":["wget","curl"]}}"#,
            &[("aws:UserAgent", &["curl"])],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:UserAgent":"c*"}}"#,
            &[("aws:UserAgent", &["curl"])],
            false,
        ),
        (
            r#"{"StringNotEquals":{"aws:UserAgent":"curl"}}"#,
            &[("aws:UserAgent", &["wget"])],
            true,
        ),
        (
            r#"{"StringNotEquals":{"aws:UserAgent":"curl"}}"#,
            &[("aws:UserAgent", &["curl"])],
            false,
        ),
        (r#"{"StringNotEquals":{"aws:UserAgent":"curl"}}"#, &[], true),
        (
            r#"{"StringEqualsIgnoreCase":{"aws:UserAgent":"CURL"}}"#,
            &[("aws:UserAgent", &["curl"])],
            true,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"aws:UserAgent":"CURL"}}"#,
            &[("aws:UserAgent", &["curl"])],
            false,
        ),
        (
            r#"{"StringLike":{"aws:Referer":"https://example.com/*"}}"#,
            &[("aws:Referer", &["https://example.com/page"])],
            true,
        ),
        (
            r#"{"StringLike":{"aws:Referer":"https://example.com/*"}}"#,
            &[("aws:Referer", &["https://evil.com/"])],
            false,
        ),
        (
            r#"{"StringLike":{"s3:prefix":["home/","home/?/*"]}}"#,
            &[("s3:prefix", &["home/a/x"])],
            true,
        ),
        (
            r#"{"StringNotLike":{"s3:prefix":"private/*"}}"#,
            &[("s3:prefix", &["public/x"])],
            true,
        ),
        (
            r#"{"StringNotLike":{"s3:prefix":"private/*"}}"#,
            &[("s3:prefix", &["private/x"])],
            false,
        ),
        // Numbers
        (
            r#"{"NumericEquals":{"s3:max-keys":"10"}}"#,
            &[("s3:max-keys", &["10"])],
            true,
        ),
        (
            r#"{"NumericEquals":{"s3:max-keys":10}}"#,
            &[("s3:max-keys", &["10.0"])],
            true,
        ),
        (
            r#"{"NumericNotEquals":{"s3:max-keys":10}}"#,
            &[("s3:max-keys", &["11"])],
            true,
        ),
        (
            r#"{"NumericLessThan":{"s3:max-keys":10}}"#,
            &[("s3:max-keys", &["9"])],
            true,
        ),
        (
            r#"{"NumericLessThan":{"s3:max-keys":10}}"#,
            &[("s3:max-keys", &["10"])],
            false,
        ),
        (
            r#"{"NumericLessThanEquals":{"s3:max-keys":10}}"#,
            &[("s3:max-keys", &["10"])],
            true,
        ),
        (
            r#"{"NumericGreaterThan":{"s3:max-keys":10}}"#,
            &[("s3:max-keys", &["10"])],
            false,
        ),
        (
            r#"{"NumericGreaterThanEquals":{"s3:max-keys":10}}"#,
            &[("s3:max-keys", &["10"])],
            true,
        ),
        (
            r#"{"NumericLessThan":{"s3:max-keys":10}}"#,
            &[("s3:max-keys", &["ten"])],
            false,
        ),
        // Dates
        (
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}"#,
            &[("aws:CurrentTime", &["2024-05-01T12:00:00Z"])],
            true,
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}"#,
            &[("aws:CurrentTime", &["2024-05-01T12:00:00Z"])],
            false,
        ),
        (
            r#"{"DateLessThanEquals":{"aws:CurrentTime":"2020-01-01"}}"#,
            &[("aws:CurrentTime", &["2020-01-01T00:00:00Z"])],
            true,
        ),
        (
            r#"{"DateGreaterThanEquals":{"aws:EpochTime":"1577836800"}}"#,
            &[("aws:EpochTime", &["1577836800"])],
            true,
        ),
        (
            r#"{"DateEquals":{"aws:EpochTime":"2020-01-01T00:00:00Z"}}"#,
            &[("aws:EpochTime", &["1577836800"])],
            true,
        ),
        (
            r#"{"DateNotEquals":{"aws:EpochTime":"2020-01-01T00:00:00Z"}}"#,
            &[("aws:EpochTime", &["1577836801"])],
            true,
        ),
        // Bool, Binary
        (
            r#"{"Bool":{"aws:SecureTransport":"false"}}"#,
            &[("aws:SecureTransport", &["false"])],
            true,
        ),
        (
            r#"{"Bool":{"aws:SecureTransport":false}}"#,
            &[("aws:SecureTransport", &["true"])],
            false,
        ),
        (
            r#"{"Bool":{"aws:SecureTransport":"TRUE"}}"#,
            &[("aws:SecureTransport", &["true"])],
            true,
        ),
        (
            r#"{"BinaryEquals":{"s3:x-amz-blob":"QmluYXJ5"}}"#,
            &[("s3:x-amz-blob", &["QmluYXJ5"])],
            true,
        ),
        // IP
        (
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &[("aws:SourceIp", &["10.1.2.3"])],
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &[("aws:SourceIp", &["11.1.2.3"])],
            false,
        ),
        (r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#, &[], false),
        (
            r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]}}"#,
            &[("aws:SourceIp", &["2001:db8::1"])],
            true,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &[("aws:SourceIp", &["11.1.2.3"])],
            true,
        ),
        // ARN
        (
            r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:111122223333:topic"}}"#,
            &[(
                "aws:SourceArn",
                &["arn:aws:sns:us-east-1:111122223333:topic"],
            )],
            true,
        ),
        (
            r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sns:*:111122223333:*"}}"#,
            &[("aws:SourceArn", &["arn:aws:sns:eu-west-1:111122223333:t"])],
            true,
        ),
        (
            r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sns:*:111122223333:*"}}"#,
            &[("aws:SourceArn", &["arn:aws:sns:eu-west-1:444455556666:t"])],
            false,
        ),
        (
            r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:sns:*:111122223333:*"}}"#,
            &[("aws:SourceArn", &["arn:aws:sns:eu-west-1:444455556666:t"])],
            true,
        ),
        (
            r#"{"ArnNotEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:111122223333:topic"}}"#,
            &[],
            true,
        ),
        // Null
        (r#"{"Null":{"aws:TokenIssueTime":"true"}}"#, &[], true),
        (
            r#"{"Null":{"aws:TokenIssueTime":"true"}}"#,
            &[("aws:TokenIssueTime", &["2024-01-01T00:00:00Z"])],
            false,
        ),
        (
            r#"{"Null":{"aws:TokenIssueTime":false}}"#,
            &[("aws:TokenIssueTime", &["2024-01-01T00:00:00Z"])],
            true,
        ),
        // IfExists
        (
            r#"{"StringEqualsIfExists":{"s3:x-amz-acl":"private"}}"#,
            &[],
            true,
        ),
        (
            r#"{"StringEqualsIfExists":{"s3:x-amz-acl":"private"}}"#,
            &[("s3:x-amz-acl", &["public-read"])],
            false,
        ),
        (
            r#"{"StringEqualsIfExists":{"s3:x-amz-acl":"private"}}"#,
            &[("s3:x-amz-acl", &["private"])],
            true,
        ),
        (
            r#"{"NumericLessThanIfExists":{"s3:max-keys":10}}"#,
            &[],
            true,
        ),
        // Several keys AND; several operators AND.
        (
            r#"{"StringEquals":{"aws:UserAgent":"curl","s3:prefix":"a"}}"#,
            &[("aws:UserAgent", &["curl"]), ("s3:prefix", &["a"])],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:UserAgent":"curl","s3:prefix":"a"}}"#,
            &[("aws:UserAgent", &["curl"]), ("s3:prefix", &["b"])],
            false,
        ),
        (
            r#"{"StringEquals":{"aws:UserAgent":"curl"},"Bool":{"aws:SecureTransport":"true"}}"#,
            &[
                ("aws:UserAgent", &["curl"]),
                ("aws:SecureTransport", &["false"]),
            ],
            false,
        ),
        // Set qualifiers over multivalued keys.
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
            &[("aws:TagKeys", &["x", "b"])],
            true,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
            &[("aws:TagKeys", &["x", "y"])],
            false,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
            &[],
            false,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
            &[("aws:TagKeys", &["a", "b"])],
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
            &[("aws:TagKeys", &["a", "c"])],
            false,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
            &[],
            true,
        ),
        (
            r#"{"ForAllValues:StringLike":{"aws:TagKeys":["team-*"]}}"#,
            &[("aws:TagKeys", &["team-a", "team-b"])],
            true,
        ),
        (
            r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["a"]}}"#,
            &[("aws:TagKeys", &["a", "z"])],
            true,
        ),
        (
            r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["a"]}}"#,
            &[("aws:TagKeys", &["a"])],
            false,
        ),
        (
            r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["a"]}}"#,
            &[("aws:TagKeys", &["b", "c"])],
            true,
        ),
        (
            r#"{"StringNotEquals":{"aws:TagKeys":["a"]}}"#,
            &[("aws:TagKeys", &["a", "z"])],
            false,
        ),
        // Keys derived from the principal.
        (
            r#"{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#,
            &[],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:PrincipalAccount":"444455556666"}}"#,
            &[],
            false,
        ),
        (
            r#"{"StringEquals":{"aws:PrincipalAccount":"444455556666"}}"#,
            &[("aws:PrincipalAccount", &["444455556666"])],
            true,
        ),
    ];
    for (condition, pairs, want) in cases {
        let p = parse(&allow(r#""*""#, r#""s3:*""#, r#""*""#, condition));
        let c = ctx(pairs);
        let want = if *want {
            Decision::Allow
        } else {
            Decision::NotApplicable
        };
        assert_eq!(
            eval(&p, USER, "s3:ListBucket", "arn:aws:s3:::b", &c),
            want,
            "{condition} with {pairs:?}"
        );
    }
}

#[test]
fn policy_variables() {
    let home = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/home/${aws:username}/*"}}"#;
    let p = parse(home);
    let c = ctx(&[]);
    // aws:username comes from the user's ARN when the context lacks it.
    assert_eq!(
        eval(&p, USER, "s3:GetObject", "arn:aws:s3:::b/home/alice/x", &c),
        Decision::Allow
    );
    assert_eq!(
        eval(&p, USER, "s3:GetObject", "arn:aws:s3:::b/home/bob/x", &c),
        Decision::NotApplicable
    );
    let named = ctx(&[("aws:username", &["carol"])]);
    assert_eq!(
        eval(
            &p,
            USER,
            "s3:GetObject",
            "arn:aws:s3:::b/home/carol/x",
            &named
        ),
        Decision::Allow
    );
    // No user name (anonymous): the resource matches nothing.
    assert_eq!(
        eval(
            &p,
            Principal::Anonymous,
            "s3:GetObject",
            "arn:aws:s3:::b/home//x",
            &c
        ),
        Decision::NotApplicable
    );
    // A substituted value is literal: a user called "*" does not get a wildcard.
    let star = ctx(&[("aws:username", &["*"])]);
    assert_eq!(
        eval(
            &p,
            USER,
            "s3:GetObject",
            "arn:aws:s3:::b/home/alice/x",
            &star
        ),
        Decision::NotApplicable
    );
    assert_eq!(
        eval(&p, USER, "s3:GetObject", "arn:aws:s3:::b/home/*/x", &star),
        Decision::Allow
    );

    // Under 2008-10-17 the text is literal.
    let old = parse(&home.replace("2012-10-17", "2008-10-17"));
    assert_eq!(
        eval(
            &old,
            USER,
            "s3:GetObject",
            "arn:aws:s3:::b/home/alice/x",
            &c
        ),
        Decision::NotApplicable
    );
    assert_eq!(
        eval(
            &old,
            USER,
            "s3:GetObject",
            "arn:aws:s3:::b/home/${aws:username}/x",
            &c
        ),
        Decision::Allow
    );

    // Escapes: ${*} ${?} ${$} are literal characters.
    let esc = parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/a${*}b${?}c${$}"}}"#,
    );
    assert_eq!(
        eval(&esc, USER, "s3:GetObject", "arn:aws:s3:::b/a*b?c$", &c),
        Decision::Allow
    );
    assert_eq!(
        eval(&esc, USER, "s3:GetObject", "arn:aws:s3:::b/axbyc$", &c),
        Decision::NotApplicable
    );

    // Variables in condition values, including userid and PrincipalAccount and a default.
    let cond = parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"*",
        "Condition":{"StringLike":{"s3:prefix":["${aws:userid}/*","shared/${aws:PrincipalAccount}/*","${aws:nothere, 'fallback'}/*"]}}}}"#,
    );
    let id = ctx(&[
        ("aws:userid", &["AIDAEXAMPLE"]),
        ("s3:prefix", &["AIDAEXAMPLE/docs"]),
    ]);
    assert_eq!(
        eval(&cond, USER, "s3:ListBucket", "arn:aws:s3:::b", &id),
        Decision::Allow
    );
    let acct = ctx(&[("s3:prefix", &["shared/111122223333/x"])]);
    assert_eq!(
        eval(&cond, USER, "s3:ListBucket", "arn:aws:s3:::b", &acct),
        Decision::Allow
    );
    assert_eq!(
        eval(&cond, OTHER, "s3:ListBucket", "arn:aws:s3:::b", &acct),
        Decision::NotApplicable
    );
    let fallback = ctx(&[("s3:prefix", &["fallback/x"])]);
    assert_eq!(
        eval(&cond, USER, "s3:ListBucket", "arn:aws:s3:::b", &fallback),
        Decision::Allow
    );
}

#[test]
fn deny_wins_over_allow() {
    let p = parse(
        r#"{"Statement":[
        {"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},
        {"Effect":"Deny","Principal":{"AWS":"444455556666"},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/*"}]}"#,
    );
    let c = ctx(&[]);
    assert_eq!(
        eval(&p, OTHER, "s3:DeleteObject", "arn:aws:s3:::b/k", &c),
        Decision::Deny
    );
    assert_eq!(
        eval(&p, OTHER, "s3:GetObject", "arn:aws:s3:::b/k", &c),
        Decision::Allow
    );
    assert_eq!(
        eval(&p, USER, "s3:DeleteObject", "arn:aws:s3:::b/k", &c),
        Decision::Allow
    );
}

#[test]
fn public_policies() {
    let cases: &[(String, bool)] = &[
        (allow(r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, ""), true),
        (allow(r#"{"AWS":"*"}"#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, ""), true),
        (allow(r#"{"AWS":["111122223333","*"]}"#, r#""s3:GetObject""#, r#""*""#, ""), true),
        (allow(r#"{"AWS":"111122223333"}"#, r#""s3:*""#, r#""*""#, ""), false),
        (allow(r#"{"Service":"cloudfront.amazonaws.com"}"#, r#""s3:*""#, r#""*""#, ""), false),
        (r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}}"#.to_string(), false),
        (r#"{"Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"111122223333"},"Action":"s3:*","Resource":"*"}}"#.to_string(), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"IpAddress":{"aws:SourceIp":"192.0.2.0/24"}}"#), false),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/1"}}"#), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","::/0"]}}"#), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"NotIpAddress":{"aws:SourceIp":"192.0.2.0/24"}}"#), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"StringEquals":{"aws:SourceVpce":"vpce-1a2b3c4d"}}"#), false),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"StringEquals":{"aws:sourcevpc":"vpc-111"}}"#), false),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"StringEquals":{"aws:SourceAccount":"111122223333"}}"#), false),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:cloudfront::111122223333:distribution/E1"}}"#), false),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"ArnLike":{"aws:SourceArn":"arn:aws:cloudfront::*:distribution/*"}}"#), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"StringEquals":{"aws:PrincipalOrgID":"o-abc"}}"#), false),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#), false),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"StringEquals":{"aws:userid":"AIDAEXAMPLE"}}"#), false),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"StringLike":{"aws:userid":"AROAEXAMPLE:*"}}"#), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"StringEqualsIfExists":{"aws:SourceAccount":"111122223333"}}"#), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"ForAllValues:StringEquals":{"aws:SourceAccount":"111122223333"}}"#), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"StringEquals":{"aws:SourceAccount":"${aws:PrincipalAccount}"}}"#), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"StringEquals":{"s3:x-amz-acl":"bucket-owner-full-control"}}"#), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"Bool":{"aws:SecureTransport":"true"}}"#), true),
        (allow(r#""*""#, r#""s3:*""#, r#""*""#, r#"{"Bool":{"aws:SecureTransport":"true"},"StringEquals":{"aws:SourceVpce":"vpce-1"}}"#), false),
    ];
    for (doc, want) in cases {
        assert_eq!(parse(doc).is_public(), *want, "{doc}");
    }
}

#[test]
fn no_panic_on_odd_inputs() {
    // Odd but valid documents and odd requests must evaluate without panics.
    let p = parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/${unclosed","Condition":{"DateLessThan":{"aws:CurrentTime":"garbage"},"IpAddressIfExists":{"aws:SourceIp":"::1"}}}}"#,
    );
    let c = ctx(&[
        ("aws:CurrentTime", &["also garbage"]),
        ("aws:SourceIp", &["not-an-ip"]),
    ]);
    for resource in ["", ":", "arn", "arn:aws:s3:::b/${unclosed", "日本語"] {
        assert_eq!(
            eval(&p, Principal::Anonymous, "", resource, &c),
            Decision::NotApplicable
        );
    }
    for doc in ["\u{feff}{}", "{\"Statement\":null}", "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":null},\"Action\":\"s3:*\",\"Resource\":\"*\"}}", "   "] {
        assert!(Policy::parse(doc).is_err(), "{doc}");
    }
}
