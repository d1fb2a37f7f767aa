//! URI templates of REST operations. A `requestUri` such as
//! `/{Bucket}/{Key+}?uploads` is parsed once, when a service's plan is built,
//! into path segments (literal, label, greedy label) and literal query
//! conditions; a request path is split and percent-decoded once and then
//! compared segment by segment, with no allocation beyond the captured labels.

use std::borrow::Cow;

use nimbus_core::AwsError;
use percent_encoding::percent_decode_str;

/// One `/`-separated piece of a URI template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Literal(String),
    /// `{Name}`, possibly with literal text around it inside the same segment
    /// (`v{Version}.json`); it captures a non-empty, `/`-free value.
    Label {
        prefix: String,
        name: String,
        suffix: String,
    },
    /// `{Name+}`: one or more whole segments, `/` kept.
    Greedy {
        name: String,
    },
}

impl Segment {
    /// How specific a segment is when two templates match the same path: literal text
    /// beats a label, a label beats a greedy label.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 3,
            Segment::Label { prefix, suffix, .. } if !prefix.is_empty() || !suffix.is_empty() => 2,
            Segment::Label { .. } => 1,
            Segment::Greedy { .. } => 0,
        }
    }
}

/// The path part of a URI template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PathPattern {
    pub segments: Vec<Segment>,
    /// Label names in the order they capture.
    pub labels: Vec<String>,
}

impl PathPattern {
    /// Parses the path part of a `requestUri` (everything before `?`).
    pub fn parse(path: &str) -> PathPattern {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let mut segments = Vec::new();
        let mut labels = Vec::new();
        for piece in trimmed.split('/') {
            let segment = match (piece.find('{'), piece.rfind('}')) {
                (Some(open), Some(close)) if open < close => {
                    let inner = &piece[open + 1..close];
                    let (prefix, suffix) = (&piece[..open], &piece[close + 1..]);
                    match inner.strip_suffix('+') {
                        // A greedy label always spans whole segments in AWS models.
                        Some(name) if prefix.is_empty() && suffix.is_empty() => Segment::Greedy {
                            name: name.to_string(),
                        },
                        _ => Segment::Label {
                            prefix: prefix.to_string(),
                            name: inner.trim_end_matches('+').to_string(),
                            suffix: suffix.to_string(),
                        },
                    }
                }
                _ => Segment::Literal(decode_component(piece).into_owned()),
            };
            if let Segment::Label { name, .. } | Segment::Greedy { name } = &segment {
                labels.push(name.clone());
            }
            segments.push(segment);
        }
        PathPattern { segments, labels }
    }

    /// Ordering key: templates with more specific leading segments sort first.
    pub fn specificity(&self) -> (Vec<u8>, usize) {
        (
            self.segments.iter().map(Segment::rank).collect(),
            self.segments.len(),
        )
    }

    /// Matches decoded request segments, pushing one captured value per label onto `captures`
    /// (in `labels` order). On failure `captures` is left as it was.
    pub fn matches(&self, path: &[Cow<'_, str>], captures: &mut Vec<String>) -> bool {
        let mark = captures.len();
        if match_from(&self.segments, path, captures) {
            true
        } else {
            captures.truncate(mark);
            false
        }
    }
}

fn match_from(pattern: &[Segment], path: &[Cow<'_, str>], captures: &mut Vec<String>) -> bool {
    let Some((first, rest)) = pattern.split_first() else {
        return path.is_empty();
    };
    match first {
        Segment::Literal(text) => match path.split_first() {
            Some((segment, path_rest)) if segment.as_ref() == text => {
                match_from(rest, path_rest, captures)
            }
            _ => false,
        },
        Segment::Label {
            prefix,
            name: _,
            suffix,
        } => {
            let Some((segment, path_rest)) = path.split_first() else {
                return false;
            };
            let segment = segment.as_ref();
            if segment.len() <= prefix.len() + suffix.len()
                || !segment.starts_with(prefix.as_str())
                || !segment.ends_with(suffix.as_str())
            {
                return false;
            }
            let mark = captures.len();
            captures.push(segment[prefix.len()..segment.len() - suffix.len()].to_string());
            if match_from(rest, path_rest, captures) {
                true
            } else {
                captures.truncate(mark);
                false
            }
        }
        Segment::Greedy { .. } => {
            // Each later template segment needs at least one path segment; take as many as
            // possible first so that `{Key+}` keeps keys like `a/b/` whole.
            let needed = rest.len();
            if path.len() <= needed {
                return false;
            }
            let mark = captures.len();
            for take in (1..=path.len() - needed).rev() {
                let value = join(&path[..take]);
                if value.is_empty() {
                    continue;
                }
                captures.push(value);
                if match_from(rest, &path[take..], captures) {
                    return true;
                }
                captures.truncate(mark);
            }
            false
        }
    }
}

fn join(segments: &[Cow<'_, str>]) -> String {
    let mut out = String::with_capacity(segments.iter().map(|s| s.len() + 1).sum());
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(segment);
    }
    out
}

/// Splits a raw request path into percent-decoded segments. Decoding each segment on its own
/// is the same as decoding a greedy label's joined text, because an escape never spans a `/`
/// (an encoded slash, `%2F`, decodes inside its segment and joins back the same way).
pub(super) fn split_path(raw: &str) -> Result<Vec<Cow<'_, str>>, AwsError> {
    let trimmed = raw.strip_prefix('/').unwrap_or(raw);
    trimmed
        .split('/')
        .map(|segment| {
            if segment.contains('%') {
                percent_decode_str(segment)
                    .decode_utf8()
                    .map_err(|_| AwsError::new("InvalidURI", "Couldn't parse the specified URI."))
            } else {
                Ok(Cow::Borrowed(segment))
            }
        })
        .collect()
}

/// A query parameter as the request sent it, decoded (`+` is a space, as form encoding and S3
/// have it).
pub(super) type QueryPair<'a> = (Cow<'a, str>, Cow<'a, str>);

pub(super) fn parse_query(raw: &str) -> Vec<QueryPair<'_>> {
    if raw.is_empty() {
        return Vec::new();
    }
    form_urlencoded::parse(raw.as_bytes()).collect()
}

/// The literal conditions after `?` in a `requestUri`: `tagging` (key present) or
/// `list-type=2` (key with that value).
pub(super) fn parse_query_literals(raw: &str) -> Vec<(String, Option<String>)> {
    raw.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((key, value)) => (
                decode_component(key).into_owned(),
                Some(decode_component(value).into_owned()),
            ),
            None => (decode_component(part).into_owned(), None),
        })
        .collect()
}

fn decode_component(text: &str) -> Cow<'_, str> {
    percent_decode_str(text).decode_utf8_lossy()
}
