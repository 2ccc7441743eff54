//! Topic names from templates: `metrics`, `metrics.{type}`, `metrics.{tag:env}`, `{name}`.
//!
//! A template whose tag is missing from a series sends that series to the default topic.
//! Substituted text keeps only the characters Kafka allows in topic names
//! (`[a-zA-Z0-9._-]`); others become `_`.

use std::fmt;

use crate::metric::SeriesKey;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Type,
    Name,
    Tag(String),
}

/// A parsed topic template.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicTemplate {
    parts: Vec<Part>,
}

/// A template that cannot be parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct BadTemplate(pub String);

impl fmt::Display for BadTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TopicTemplate {
    pub fn parse(template: &str) -> Result<TopicTemplate, BadTemplate> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| BadTemplate(format!("unclosed `{{` in {template:?}")))?;
            let field = &rest[open + 1..open + close];
            parts.push(match field {
                "type" => Part::Type,
                "name" => Part::Name,
                _ => match field.strip_prefix("tag:") {
                    Some(tag) if !tag.is_empty() => Part::Tag(tag.to_string()),
                    _ => {
                        return Err(BadTemplate(format!(
                            "unknown placeholder {{{field}}} in {template:?} (use {{type}}, {{name}} or {{tag:KEY}})"
                        )));
                    }
                },
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if parts.is_empty() {
            return Err(BadTemplate("the topic is empty".into()));
        }
        let invalid = parts.iter().find_map(|p| match p {
            Part::Text(t) => t.chars().find(|c| !valid(*c)),
            _ => None,
        });
        if let Some(c) = invalid {
            return Err(BadTemplate(format!(
                "{c:?} is not allowed in a Kafka topic name (use [a-zA-Z0-9._-])"
            )));
        }
        Ok(TopicTemplate { parts })
    }

    /// True when the template has no placeholders.
    pub fn as_fixed(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// True when some series may lack a tag the template needs.
    pub fn uses_tags(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Tag(_)))
    }

    /// Writes the topic of `key` into `out`; `false` when a needed tag is missing.
    pub fn render(&self, key: &SeriesKey, out: &mut String) -> bool {
        out.clear();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Type => out.push_str(key.metric_type().as_str()),
                Part::Name => push_clean(out, key.name()),
                Part::Tag(tag) => match key.tag(tag) {
                    Some(v) if !v.is_empty() => push_clean(out, v),
                    _ => return false,
                },
            }
        }
        true
    }
}

fn valid(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn push_clean(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| if valid(c) { c } else { '_' }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::MetricType;

    #[test]
    fn renders_placeholders() {
        let key = SeriesKey::new("api.req", MetricType::Counter, [("env", "prod/eu")]);
        let mut out = String::new();
        let t = TopicTemplate::parse("metrics.{type}.{tag:env}").unwrap();
        assert!(t.render(&key, &mut out));
        assert_eq!(out, "metrics.counter.prod_eu");
        assert!(
            TopicTemplate::parse("m-{name}")
                .unwrap()
                .render(&key, &mut out)
        );
        assert_eq!(out, "m-api.req");
        let missing = TopicTemplate::parse("m.{tag:dc}").unwrap();
        assert!(!missing.render(&key, &mut out));
        assert!(missing.uses_tags());
        assert_eq!(
            TopicTemplate::parse("fixed").unwrap().as_fixed(),
            Some("fixed")
        );
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(TopicTemplate::parse("m.{host}").is_err());
        assert!(TopicTemplate::parse("m.{type").is_err());
        assert!(TopicTemplate::parse("bad topic").is_err());
        assert!(TopicTemplate::parse("").is_err());
        assert!(TopicTemplate::parse("m.{tag:}").is_err());
    }
}
