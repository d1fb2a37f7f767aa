//! Wildcard patterns and policy variables: this module owns turning a policy
//! string (an action, a resource ARN, a condition value) into tokens, with
//! `${...}` variables substituted from the request, and matching those tokens
//! against request strings, either as a whole glob or ARN component by
//! component.

use crate::context::Ctx;

/// One unit of a resolved pattern. A literal remembers whether it was written
/// in the policy itself (`true`) or came from a variable or escape, so that
/// ARN splitting only splits on the policy's own colons and a substituted
/// `*` stays a literal star.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(char, bool),
    Star,
    Quest,
}

/// Tokens of a pattern without variables (actions, or any value under a
/// 2008-10-17 policy, where `${` has no meaning).
pub(crate) fn literal_pattern(text: &str) -> Vec<Tok> {
    text.chars()
        .map(|c| match c {
            '*' => Tok::Star,
            '?' => Tok::Quest,
            c => Tok::Lit(c, true),
        })
        .collect()
}

/// Resolves `${...}` variables and escapes against the request. `None` when
/// a variable names a key the request lacks and gives no default: AWS then
/// treats the value as matching nothing.
pub(crate) fn resolve(text: &str, ctx: Option<&Ctx<'_, '_>>) -> Option<Vec<Tok>> {
    let Some(ctx) = ctx else {
        return Some(literal_pattern(text));
    };
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, after)) = rest.split_once("${") {
        out.extend(literal_pattern(before));
        let Some((inner, tail)) = after.split_once('}') else {
            // An unclosed `${` is plain text.
            out.extend(literal_pattern("${"));
            out.extend(literal_pattern(after));
            return Some(out);
        };
        match inner.trim() {
            esc @ ("*" | "?" | "$") => out.extend(esc.chars().map(|c| Tok::Lit(c, false))),
            name => {
                let value = variable_value(name, ctx)?;
                out.extend(value.chars().map(|c| Tok::Lit(c, false)));
            }
        }
        rest = tail;
    }
    out.extend(literal_pattern(rest));
    Some(out)
}

/// `key` or `key, 'default'` (the documented default-value form).
fn variable_value(inner: &str, ctx: &Ctx<'_, '_>) -> Option<String> {
    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => {
            let d = default.trim();
            let d = d
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .unwrap_or(d);
            (key.trim(), Some(d))
        }
        None => (inner, None),
    };
    match ctx.values(key).first() {
        Some(v) => Some((*v).to_string()),
        None => default.map(str::to_string),
    }
}

/// The tokens written back as text: wildcards as `*`/`?`, for operators
/// that compare exactly (StringEquals, where `*` is an ordinary character).
pub(crate) fn render(toks: &[Tok]) -> String {
    toks.iter()
        .map(|t| match t {
            Tok::Lit(c, _) => *c,
            Tok::Star => '*',
            Tok::Quest => '?',
        })
        .collect()
}

/// Whole-string glob: `*` any run (also empty), `?` exactly one character.
pub(crate) fn glob(pattern: &[Tok], text: &str) -> bool {
    let s: Vec<char> = text.chars().collect();
    let (mut pi, mut si) = (0usize, 0usize);
    // Where the last star was and how much text it has swallowed so far:
    // on a mismatch we let it swallow one more character and retry.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match pattern.get(pi) {
            Some(Tok::Star) => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(Tok::Quest) => {
                pi += 1;
                si += 1;
            }
            Some(Tok::Lit(c, _)) if s.get(si) == Some(c) => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    while let Some(Tok::Star) = pattern.get(pi) {
        pi += 1;
    }
    pi == pattern.len()
}

/// ARN comparison as IAM does it: the six components
/// (`arn:partition:service:region:account:resource`) are matched one by one,
/// so a wildcard in the region cannot swallow the account. A pattern that is
/// not a full ARN (such as `*`) is matched as a whole.
pub(crate) fn arn_match(pattern: &[Tok], value: &str) -> bool {
    let segments = split_arn_pattern(pattern);
    if segments.len() < 6 {
        return glob(pattern, value);
    }
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    parts.len() == 6
        && segments
            .iter()
            .zip(parts.iter())
            .all(|(seg, part)| glob(seg, part))
}

/// Splits at the first five colons written in the policy itself.
fn split_arn_pattern(pattern: &[Tok]) -> Vec<&[Tok]> {
    let mut segments = Vec::with_capacity(6);
    let mut rest = pattern;
    while segments.len() < 5 {
        match rest.iter().position(|t| *t == Tok::Lit(':', true)) {
            Some(i) => {
                let (head, tail) = rest.split_at(i);
                segments.push(head);
                rest = tail.get(1..).unwrap_or(&[]);
            }
            None => break,
        }
    }
    segments.push(rest);
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("s3:get*", "s3:getobject", true),
            ("s3:get*", "s3:putobject", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("*/*", "b/k", true),
            ("*/*", "bk", false),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("a**", "a", true),
            ("日本*", "日本語", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(glob(&literal_pattern(p), s), *want, "{p} vs {s}");
        }
    }

    #[test]
    fn arn_components_do_not_cross() {
        let p = literal_pattern("arn:aws:s3:::b/*");
        assert!(arn_match(&p, "arn:aws:s3:::b/key:with:colons"));
        assert!(!arn_match(&p, "arn:aws:s3:::c/key"));
        let p = literal_pattern("arn:aws:iam::*:role/x");
        assert!(arn_match(&p, "arn:aws:iam::123456789012:role/x"));
        assert!(!arn_match(&p, "arn:aws:iam::123456789012:role/y"));
        // A star in the service component cannot reach into the region.
        let p = literal_pattern("arn:aws:s*:::b");
        assert!(!arn_match(&p, "arn:aws:sqs:us-east-1::b"));
        assert!(arn_match(&literal_pattern("*"), "arn:aws:s3:::b"));
        assert!(!arn_match(&literal_pattern("arn:aws:s3:::b"), "not-an-arn"));
    }
}
