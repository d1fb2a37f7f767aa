//! EC2's `Filter.N.Name` / `Filter.N.Value.M` matching, shared by every
//! Describe call: a resource matches when every filter has a value that
//! matches one of the resource's values for that name (`*` and `?` are
//! wildcards), and tag filters (`tag:KEY`, `tag-key`, `tag-value`) read the
//! resource's tags. An unknown filter name is refused as AWS does.

use nimbus_core::AwsError;
use serde_json::Value;

pub struct Filters(Vec<(String, Vec<String>)>);

impl Filters {
    pub fn from_input(input: &Value) -> Filters {
        let list = input
            .get("Filters")
            .and_then(Value::as_array)
            .map(|filters| {
                filters
                    .iter()
                    .map(|f| {
                        let name = f
                            .get("Name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        let values = f
                            .get("Values")
                            .and_then(Value::as_array)
                            .map(|v| {
                                v.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (name, values)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Filters(list)
    }

    /// `fields(name)` gives the resource's values for a filter name, `None` when the
    /// name is not a filter of this call.
    pub fn matches(
        &self,
        tags: &[(String, String)],
        fields: impl Fn(&str) -> Option<Vec<String>>,
    ) -> Result<bool, AwsError> {
        for (name, wanted) in &self.0 {
            let have: Vec<String> = if let Some(key) = name.strip_prefix("tag:") {
                tags.iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .collect()
            } else if name == "tag-key" {
                tags.iter().map(|(k, _)| k.clone()).collect()
            } else if name == "tag-value" {
                tags.iter().map(|(_, v)| v.clone()).collect()
            } else {
                fields(name).ok_or_else(|| {
                    AwsError::new(
                        "InvalidParameterValue",
                        format!("The filter '{name}' is invalid"),
                    )
                })?
            };
            if !wanted
                .iter()
                .any(|w| have.iter().any(|h| nimbus_core::wildcard_match(w, h)))
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// One page of `items` by `MaxResults` / `NextToken` (the token is the next index).
pub fn page<T>(items: Vec<T>, input: &Value) -> Result<(Vec<T>, Option<String>), AwsError> {
    let start = match input.get("NextToken").and_then(Value::as_str) {
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| AwsError::new("InvalidNextToken", "The specified token is invalid."))?,
        None => 0,
    };
    let max = input.get("MaxResults").and_then(Value::as_i64);
    let Some(max) = max else {
        return Ok((items.into_iter().skip(start).collect(), None));
    };
    if !(5..=1000).contains(&max) {
        return Err(AwsError::new(
            "InvalidParameterValue",
            format!("Value ( {max} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."),
        ));
    }
    let total = items.len();
    let end = (start + max as usize).min(total);
    let next = (end < total).then(|| end.to_string());
    Ok((
        items
            .into_iter()
            .skip(start)
            .take(end - start.min(end))
            .collect(),
        next,
    ))
}

/// A Describe answer: one page of `items` under `member`, with `NextToken` when more
/// follow. `largest`: calls that serve an oversized MaxResults as their largest page
/// (volumes, snapshots) instead of refusing it.
pub fn listing(
    member: &str,
    items: Vec<Value>,
    input: &Value,
    largest: Option<i64>,
) -> Result<Value, AwsError> {
    let capped;
    let input = match (largest, input.get("MaxResults").and_then(Value::as_i64)) {
        (Some(limit), Some(max)) if max > limit => {
            let mut copy = input.clone();
            copy["MaxResults"] = Value::from(limit);
            capped = copy;
            &capped
        }
        _ => input,
    };
    let (items, next) = page(items, input)?;
    let mut result = serde_json::json!({ member: items });
    if let Some(t) = next {
        result["NextToken"] = Value::from(t);
    }
    Ok(result)
}

pub fn tags_value(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
            .collect(),
    )
}

pub fn strings(input: &Value, member: &str) -> Vec<String> {
    input
        .get(member)
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_and_wildcards() {
        let f = Filters::from_input(&json!({"Filters": [
            {"Name": "group-name", "Values": ["web-*"]},
            {"Name": "tag:env", "Values": ["prod", "stage"]}
        ]}));
        let tags = vec![("env".to_string(), "prod".to_string())];
        let fields = |n: &str| (n == "group-name").then(|| vec!["web-1".to_string()]);
        assert!(f.matches(&tags, fields).expect("valid"));
        assert!(!f.matches(&[], fields).expect("valid"));
        let bad = Filters::from_input(&json!({"Filters": [{"Name": "nope", "Values": ["x"]}]}));
        assert_eq!(
            bad.matches(&[], fields).expect_err("invalid").code,
            "InvalidParameterValue"
        );
    }

    #[test]
    fn pages() {
        let (first, next) = page((0..12).collect(), &json!({"MaxResults": 5})).expect("page");
        assert_eq!((first, next.as_deref()), (vec![0, 1, 2, 3, 4], Some("5")));
        let (last, next) = page(
            (0..12).collect::<Vec<i32>>(),
            &json!({"MaxResults": 5, "NextToken": "10"}),
        )
        .expect("page");
        assert_eq!((last, next), (vec![10, 11], None));
        assert!(page((0..3).collect::<Vec<i32>>(), &json!({"MaxResults": 2})).is_err());
    }
}
