//! Message templates: personalised text with variables and spintax.
//!
//! # Syntax
//!
//! - **Variables**: `{{name}}` is replaced by the recipient's value for
//!   `name`. Names match `[A-Za-z_][A-Za-z0-9_]*` and are matched to the
//!   recipient's values (a contact list's columns) case-insensitively:
//!   `{{Nama}}` is the column `nama`. Whitespace inside the braces is
//!   ignored (`{{ name }}`).
//! - **Missing values**: a recipient has no value for a variable when it
//!   has none at all or an empty (or whitespace-only) one
//!   ([`has_value`]).
//! - **Fallbacks**: `{{name|Kak}}` gives `Kak` when the recipient has no
//!   value for `name`. The fallback is plain text, trimmed, possibly empty
//!   (`{{name|}}`), and may not contain `{`, `}` or `|`. A variable used
//!   without fallback is *required*: a recipient without a value for it
//!   cannot be rendered ([`TemplateError::MissingVariable`]).
//! - **Spintax**: `{Halo|Hai|Hello}` picks one option per message. Options
//!   may contain variables and nested spintax (`{Halo {kak|bro}|Hai}`) and
//!   may be empty (`{Halo |}`), but not all of them.
//! - **Literal braces**: a single-brace group without `|` is plain text and
//!   is kept as written, braces included: `{x}` renders `{x}`. It may
//!   contain only plain text; a group with a variable or a nested group but
//!   no `|` is refused as a likely typo ([`TemplateError::GroupWithoutOptions`]).
//!   Every brace must pair: a `{` without its `}`, a `}` that closes nothing
//!   (e.g. `{{name}}}`), a `{{` without `}}`, and the empty group `{}` are
//!   refused. A `|` outside any group is plain text.
//! - **`{{` always opens a variable**, except in a run of three or more `{`,
//!   where all but the last two open groups: `{{{name}}|Kak}` is a spintax
//!   group whose first option is the variable. A group cannot start with a
//!   nested group (`{{a|b} c|d}` reads `{{` as a variable): put a character
//!   first (`{ {a|b} c|d}`).
//!
//! Rendering never produces `{{` from the template itself (values are
//! inserted verbatim, so a recipient's own data could).
//!
//! Positions in errors are 0-based offsets in characters (Unicode scalar
//! values) into the source text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::RefusalCode;

/// Why a template was refused, or could not be rendered for a recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Empty or whitespace-only text.
    #[error("template is empty")]
    Empty,
    /// Longer than [`Template::MAX_CHARS`].
    #[error("template is too long: {length} characters, at most {max}")]
    TooLong {
        /// Its length in characters.
        length: usize,
        /// The longest allowed.
        max: usize,
    },
    /// A `{{` with no `}}` after it.
    #[error("unclosed variable at position {position}: `{{{{` without `}}}}`")]
    UnclosedVariable {
        /// Where the `{{` is.
        position: usize,
    },
    /// A `{` with no matching `}`.
    #[error("unclosed group at position {position}: `{{` without `}}`")]
    UnclosedGroup {
        /// Where the `{` is.
        position: usize,
    },
    /// A `}` that closes nothing (also the second half of a stray `}}`).
    #[error("unmatched `}}` at position {position}")]
    UnmatchedClose {
        /// Where the `}` is.
        position: usize,
    },
    /// A variable whose name is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("invalid variable name {name:?} at position {position}")]
    InvalidVariableName {
        /// Where the variable's `{{` is.
        position: usize,
        /// The name as written (trimmed).
        name: String,
    },
    /// A fallback containing `{`, `}` or `|`.
    #[error(
        "invalid fallback {fallback:?} at position {position}: it may not contain braces or `|`"
    )]
    InvalidFallback {
        /// Where the variable's `{{` is.
        position: usize,
        /// The fallback as written (trimmed).
        fallback: String,
    },
    /// `{}`, or a spintax group whose options are all empty (`{|}`).
    #[error("empty group at position {position}")]
    EmptyGroup {
        /// Where the group's `{` is.
        position: usize,
    },
    /// A group with a variable or a nested group inside but no `|`:
    /// neither spintax nor plain literal text.
    #[error("group at position {position} has variables or groups but no `|` between options")]
    GroupWithoutOptions {
        /// Where the group's `{` is.
        position: usize,
    },
    /// Groups nested deeper than [`Template::MAX_DEPTH`].
    #[error("groups nested too deep at position {position}: at most {max} levels")]
    TooDeep {
        /// Where the group over the limit opens.
        position: usize,
        /// The deepest nesting allowed.
        max: usize,
    },
    /// Rendering for a recipient who has no value (or a blank one) for a
    /// variable used without fallback.
    #[error("missing variable {0:?}")]
    MissingVariable(String),
}

impl TemplateError {
    /// The stable API error code: always `validation_failed`.
    pub fn code(&self) -> RefusalCode {
        RefusalCode::ValidationFailed
    }
}

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Node {
    /// Plain text, including literal `{...}` groups and top-level `|`.
    Text(String),
    /// `{{name}}` or `{{name|fallback}}`.
    Variable {
        name: String,
        fallback: Option<String>,
    },
    /// `{a|b|c}`: at least two options.
    Spintax(Vec<Vec<Node>>),
}

/// A parsed message template (see the module docs for the syntax). Keeps
/// its source text, which is what it serializes as.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

impl Template {
    /// The longest template, in characters.
    pub const MAX_CHARS: usize = 4096;
    /// The deepest nesting of groups.
    pub const MAX_DEPTH: usize = 8;

    /// Parses a template, refusing anything that would not render as meant.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let chars: Vec<char> = text.chars().collect();
        if chars.len() > Self::MAX_CHARS {
            return Err(TemplateError::TooLong {
                length: chars.len(),
                max: Self::MAX_CHARS,
            });
        }
        let mut parser = Parser { chars, pos: 0 };
        let nodes = parser.sequence(0)?;
        // `sequence` at depth 0 stops only at the end or on an error.
        debug_assert_eq!(parser.pos, parser.chars.len());
        Ok(Self {
            source: text.to_owned(),
            nodes,
        })
    }

    /// The source text, as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The names of the variables used anywhere (in every spintax option,
    /// with or without fallback).
    pub fn variables(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        visit_variables(&self.nodes, &mut |name, _| {
            names.insert(name.to_owned());
        });
        names
    }

    /// The variables used without fallback somewhere (in any spintax
    /// option): a recipient without a value for one of them cannot be
    /// rendered.
    pub fn required_variables(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        visit_variables(&self.nodes, &mut |name, fallback| {
            if fallback.is_none() {
                names.insert(name.to_owned());
            }
        });
        names
    }

    /// The variables used that are not in `known` (e.g. a contact list's
    /// columns), compared case-insensitively: a campaign with any is
    /// refused.
    pub fn unknown_variables(&self, known: &BTreeSet<String>) -> BTreeSet<String> {
        self.variables()
            .into_iter()
            .filter(|name| resolve(name, known.iter().map(String::as_str)).is_none())
            .collect()
    }

    /// The names in `known` the template uses, as `known` spells them
    /// (`{{Nama}}` uses `nama`): the values a recipient needs.
    pub fn known_variables(&self, known: &BTreeSet<String>) -> BTreeSet<String> {
        self.variables()
            .iter()
            .filter_map(|name| resolve(name, known.iter().map(String::as_str)))
            .map(str::to_owned)
            .collect()
    }

    /// Of `missing` (how many recipients have no value for each variable,
    /// named as the recipients' values spell them), the variables the
    /// template requires (used without fallback, matched
    /// case-insensitively) that some recipient lacks, with their counts.
    /// Empty: every recipient can be rendered.
    pub fn unfilled(&self, missing: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        let required = self.required_variables();
        missing
            .iter()
            .filter(|(name, count)| {
                **count > 0 && required.iter().any(|r| r.eq_ignore_ascii_case(name))
            })
            .map(|(name, count)| (name.clone(), *count))
            .collect()
    }

    /// Renders the text for one recipient. Spintax choices come from
    /// `StdRng::seed_from_u64(seed)`, so the same seed gives the same text
    /// (for a given `rand` version). Variables are looked up in `vars` by
    /// name, case-insensitively (an exact match first). Every variable used
    /// without fallback must have a value ([`has_value`]), even one only in
    /// an option not picked this time, so whether a recipient can be
    /// rendered does not depend on the seed; otherwise
    /// [`TemplateError::MissingVariable`] names the first one.
    pub fn render(
        &self,
        vars: &BTreeMap<String, String>,
        seed: u64,
    ) -> Result<String, TemplateError> {
        let mut missing = None;
        visit_variables(&self.nodes, &mut |name, fallback| {
            if missing.is_none() && fallback.is_none() && value_of(vars, name).is_none() {
                missing = Some(name.to_owned());
            }
        });
        if let Some(name) = missing {
            return Err(TemplateError::MissingVariable(name));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = String::with_capacity(self.source.len());
        render_nodes(&self.nodes, vars, &mut rng, &mut out);
        Ok(out)
    }
}

/// Whether a recipient's value counts as one: not empty, not only
/// whitespace. The read side counts missing values by the same rule
/// (`projections::queries::contact_lists::missing_values`).
pub fn has_value(value: &str) -> bool {
    !value.trim().is_empty()
}

/// The name in `known` that `name` stands for: itself, else the first
/// spelled the same but for ASCII case.
pub fn resolve<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut folded = None;
    for candidate in known {
        if candidate == name {
            return Some(candidate);
        }
        if folded.is_none() && candidate.eq_ignore_ascii_case(name) {
            folded = Some(candidate);
        }
    }
    folded
}

/// A recipient's value for `name` (see [`resolve`]), if it has one
/// ([`has_value`]).
fn value_of<'a>(vars: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    let key = match vars.get_key_value(name) {
        Some((key, _)) => key.as_str(),
        None => resolve(name, vars.keys().map(String::as_str))?,
    };
    vars.get(key).map(String::as_str).filter(|v| has_value(v))
}

/// Calls `f(name, fallback)` for every variable, in source order.
fn visit_variables<'a>(nodes: &'a [Node], f: &mut impl FnMut(&'a str, Option<&'a str>)) {
    for node in nodes {
        match node {
            Node::Text(_) => {}
            Node::Variable { name, fallback } => f(name, fallback.as_deref()),
            Node::Spintax(options) => {
                for option in options {
                    visit_variables(option, f);
                }
            }
        }
    }
}

fn render_nodes(
    nodes: &[Node],
    vars: &BTreeMap<String, String>,
    rng: &mut StdRng,
    out: &mut String,
) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Variable { name, fallback } => {
                match (value_of(vars, name), fallback) {
                    (Some(value), _) => out.push_str(value),
                    (None, Some(fallback)) => out.push_str(fallback),
                    // `render` checked every variable without fallback.
                    (None, None) => {}
                }
            }
            Node::Spintax(options) => {
                // Draw as u32 so the choice does not depend on usize's width.
                let count = u32::try_from(options.len()).unwrap_or(u32::MAX);
                let pick = rng.random_range(0..count) as usize;
                render_nodes(&options[pick], vars, rng, out);
            }
        }
    }
}

/// A recursive-descent parser over the characters of the source.
struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    /// Parses until the end (depth 0) or, inside a group, until the `|` or
    /// `}` that ends the current option (left for the caller).
    fn sequence(&mut self, depth: usize) -> Result<Vec<Node>, TemplateError> {
        let mut nodes = Vec::new();
        let mut text = String::new();
        while let Some(c) = self.peek(0) {
            match c {
                '{' if self.peek(1) == Some('{') && self.peek(2) != Some('{') => {
                    flush(&mut text, &mut nodes);
                    nodes.push(self.variable()?);
                }
                '{' => match self.group(depth + 1)? {
                    Node::Text(literal) => text.push_str(&literal),
                    node => {
                        flush(&mut text, &mut nodes);
                        nodes.push(node);
                    }
                },
                '}' | '|' if depth > 0 => break,
                '}' => return Err(TemplateError::UnmatchedClose { position: self.pos }),
                _ => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut text, &mut nodes);
        Ok(nodes)
    }

    /// Parses `{{name}}` or `{{name|fallback}}` at `self.pos`.
    fn variable(&mut self) -> Result<Node, TemplateError> {
        let position = self.pos;
        let start = position + 2;
        let end = (start..self.chars.len().saturating_sub(1))
            .find(|&i| self.chars[i] == '}' && self.chars[i + 1] == '}')
            .ok_or(TemplateError::UnclosedVariable { position })?;
        let inner: String = self.chars[start..end].iter().collect();
        self.pos = end + 2;
        let (name, fallback) = match inner.split_once('|') {
            Some((name, fallback)) => (name.trim(), Some(fallback.trim())),
            None => (inner.trim(), None),
        };
        if !is_variable_name(name) {
            return Err(TemplateError::InvalidVariableName {
                position,
                name: name.to_owned(),
            });
        }
        if let Some(fallback) = fallback
            && fallback.contains(['{', '}', '|'])
        {
            return Err(TemplateError::InvalidFallback {
                position,
                fallback: fallback.to_owned(),
            });
        }
        Ok(Node::Variable {
            name: name.to_owned(),
            fallback: fallback.map(str::to_owned),
        })
    }

    /// Parses a single-brace group at `self.pos`: spintax, or a literal
    /// group of plain text (given as text, braces included).
    fn group(&mut self, depth: usize) -> Result<Node, TemplateError> {
        let position = self.pos;
        if depth > Template::MAX_DEPTH {
            return Err(TemplateError::TooDeep {
                position,
                max: Template::MAX_DEPTH,
            });
        }
        self.pos += 1;
        let mut options = Vec::new();
        loop {
            options.push(self.sequence(depth)?);
            match self.peek(0) {
                Some('|') => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(TemplateError::UnclosedGroup { position }),
            }
        }
        if options.iter().all(Vec::is_empty) {
            return Err(TemplateError::EmptyGroup { position });
        }
        if options.len() > 1 {
            return Ok(Node::Spintax(options));
        }
        let source = &self.chars[position..self.pos];
        // Braces only at both ends: plain text. Anything nested inside
        // (a variable, a group, even a literal one) without a `|` is
        // more likely a typo than meant to be sent as is.
        if source[1..source.len() - 1].contains(&'{') {
            return Err(TemplateError::GroupWithoutOptions { position });
        }
        Ok(Node::Text(source.iter().collect()))
    }
}

/// Moves pending text into a node.
fn flush(text: &mut String, nodes: &mut Vec<Node>) {
    if !text.is_empty() {
        nodes.push(Node::Text(std::mem::take(text)));
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl AsRef<str> for Template {
    fn as_ref(&self) -> &str {
        &self.source
    }
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Self::parse(&source).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn render(text: &str, pairs: &[(&str, &str)]) -> Result<String, TemplateError> {
        Template::parse(text)?.render(&vars(pairs), 42)
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn renders_variables_fallbacks_and_literal_text() {
        let budi = [("name", "Budi"), ("kota", "Bandung")];
        for (text, expected) in [
            ("Halo", "Halo"),
            ("Halo {{name}}!", "Halo Budi!"),
            ("Halo {{ name }}!", "Halo Budi!"),
            ("Halo {{\tname\n}}!", "Halo Budi!"),
            ("{{name}} dari {{kota}}", "Budi dari Bandung"),
            ("{{name}}{{name}}", "BudiBudi"),
            ("Halo {{name|Kak}}", "Halo Budi"),
            ("Halo {{sapaan|Kak}} {{name}}", "Halo Kak Budi"),
            ("Halo {{ sapaan | Kak Budi }}.", "Halo Kak Budi."),
            ("Halo{{sapaan|}}!", "Halo!"),
            ("a | b", "a | b"),
            ("harga {promo} ya", "harga {promo} ya"),
            ("{ }", "{ }"),
            ("emoji 🎉 {{name}} 🙏", "emoji 🎉 Budi 🙏"),
            ("Halo {{Name|x}}", "Halo Budi"),
            ("Halo {{_id2|x}}", "Halo x"),
        ] {
            assert_eq!(render(text, &budi), Ok(expected.to_owned()), "{text:?}");
        }
    }

    #[test]
    fn fallback_is_used_when_the_value_is_missing_or_empty() {
        let t = Template::parse("Halo {{name|Kak}}").unwrap();
        for (pairs, expected) in [
            (&[][..], "Halo Kak"),
            (&[("name", "")][..], "Halo Kak"),
            (&[("name", "  ")][..], "Halo Kak"),
            (&[("name", "Siti")][..], "Halo Siti"),
            (&[("name", " Siti ")][..], "Halo  Siti "),
        ] {
            assert_eq!(t.render(&vars(pairs), 1).unwrap(), expected, "{pairs:?}");
        }
        // Without fallback, an empty value is no value either.
        for blank in ["", " ", "\t\n"] {
            assert_eq!(
                render("Halo {{name}}!", &[("name", blank)]),
                Err(TemplateError::MissingVariable("name".into())),
                "{blank:?}"
            );
        }
    }

    #[test]
    fn variables_match_values_case_insensitively_an_exact_match_first() {
        assert_eq!(
            render("Halo {{Nama}}", &[("nama", "Budi")]).unwrap(),
            "Halo Budi"
        );
        assert_eq!(
            render("Halo {{nama}}", &[("NAMA", "Budi")]).unwrap(),
            "Halo Budi"
        );
        assert_eq!(
            render("{{kota}} {{Kota}}", &[("Kota", "A"), ("kota", "b")]).unwrap(),
            "b A"
        );
        assert_eq!(
            render("Hai {{NAME|Kak}}", &[("name", " ")]).unwrap(),
            "Hai Kak"
        );
    }

    #[test]
    fn a_missing_variable_without_fallback_is_refused() {
        assert_eq!(
            render("Halo {{name}}", &[]),
            Err(TemplateError::MissingVariable("name".into()))
        );
        // The first in source order.
        assert_eq!(
            render("{{b}} {{a}}", &[]),
            Err(TemplateError::MissingVariable("b".into()))
        );
        // Even inside an option this seed does not pick: whether a recipient
        // renders must not depend on the seed.
        let t = Template::parse("{Halo {{name}}|Hai}").unwrap();
        for seed in 0..50 {
            assert_eq!(
                t.render(&BTreeMap::new(), seed),
                Err(TemplateError::MissingVariable("name".into()))
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_text() {
        let t = Template::parse(
            "{Halo|Hai|Hello|Pagi} {{name}}, {promo|diskon|potongan} {10|20|30|40|50}% {ya|kak|{bro|sis}}!",
        )
        .unwrap();
        let v = vars(&[("name", "Budi")]);
        let texts: Vec<String> = (0..200).map(|seed| t.render(&v, seed).unwrap()).collect();
        for (seed, text) in texts.iter().enumerate() {
            assert_eq!(&t.render(&v, seed as u64).unwrap(), text);
            assert_eq!(
                &Template::parse(t.as_str())
                    .unwrap()
                    .render(&v, seed as u64)
                    .unwrap(),
                text
            );
        }
        let distinct: BTreeSet<&String> = texts.iter().collect();
        assert!(
            distinct.len() > 50,
            "only {} distinct texts",
            distinct.len()
        );
    }

    #[test]
    fn every_spintax_option_is_reachable() {
        let t = Template::parse("{Halo {kak|bro}|Hai|Hello {{name|teman}}|}").unwrap();
        let seen: BTreeSet<String> = (0..500)
            .map(|seed| t.render(&BTreeMap::new(), seed).unwrap())
            .collect();
        assert_eq!(
            seen,
            names(&["Halo kak", "Halo bro", "Hai", "Hello teman", ""])
        );
    }

    #[test]
    fn a_run_of_three_braces_opens_a_group_then_a_variable() {
        let t = Template::parse("{{{name}}|Kak}, apa kabar?").unwrap();
        let seen: BTreeSet<String> = (0..100)
            .map(|seed| t.render(&vars(&[("name", "Budi")]), seed).unwrap())
            .collect();
        assert_eq!(seen, names(&["Budi, apa kabar?", "Kak, apa kabar?"]));
        let t = Template::parse("{{{{a}}|b}|c}").unwrap();
        let seen: BTreeSet<String> = (0..100)
            .map(|seed| t.render(&vars(&[("a", "A")]), seed).unwrap())
            .collect();
        assert_eq!(seen, names(&["A", "b", "c"]));
        // A literal group may be an option's text.
        let t = Template::parse("{Halo {x}|Hai}").unwrap();
        let seen: BTreeSet<String> = (0..100)
            .map(|seed| t.render(&BTreeMap::new(), seed).unwrap())
            .collect();
        assert_eq!(seen, names(&["Halo {x}", "Hai"]));
    }

    #[test]
    fn refuses_broken_templates_with_the_position() {
        use TemplateError::*;
        for (text, expected) in [
            ("", Empty),
            ("  \n\t ", Empty),
            ("Halo {{name", UnclosedVariable { position: 5 }),
            ("Halo {{name}", UnclosedVariable { position: 5 }),
            ("Halo {{name} {x|y}", UnclosedVariable { position: 5 }),
            ("Halo name}}", UnmatchedClose { position: 9 }),
            ("Halo {{name}}}", UnmatchedClose { position: 13 }),
            ("Halo :}", UnmatchedClose { position: 6 }),
            ("{Halo|Hai} }", UnmatchedClose { position: 11 }),
            ("Halo {name}}", UnmatchedClose { position: 11 }),
            ("Halo {Halo|Hai", UnclosedGroup { position: 5 }),
            ("Halo :{", UnclosedGroup { position: 6 }),
            ("{a|{b|c}", UnclosedGroup { position: 0 }),
            (
                "Hi {{first name}}",
                InvalidVariableName {
                    position: 3,
                    name: "first name".into(),
                },
            ),
            (
                "Hi {{1st}}",
                InvalidVariableName {
                    position: 3,
                    name: "1st".into(),
                },
            ),
            (
                "Hi {{nama-depan}}",
                InvalidVariableName {
                    position: 3,
                    name: "nama-depan".into(),
                },
            ),
            (
                "Hi {{}}",
                InvalidVariableName {
                    position: 3,
                    name: "".into(),
                },
            ),
            (
                "Hi {{ |Kak}}",
                InvalidVariableName {
                    position: 3,
                    name: "".into(),
                },
            ),
            (
                "🎉 {{nämе}}",
                InvalidVariableName {
                    position: 2,
                    name: "nämе".into(),
                },
            ),
            (
                "Hi {{name|Kak|Bro}}",
                InvalidFallback {
                    position: 3,
                    fallback: "Kak|Bro".into(),
                },
            ),
            (
                "Hi {{name|{Kak|Bro}}}",
                InvalidFallback {
                    position: 3,
                    fallback: "{Kak|Bro".into(),
                },
            ),
            ("Hi {}", EmptyGroup { position: 3 }),
            ("Hi {|}", EmptyGroup { position: 3 }),
            ("Hi {a|{}}", EmptyGroup { position: 6 }),
            ("Hi {Halo {{name}}}", GroupWithoutOptions { position: 3 }),
            ("Hi {{{name}}}", GroupWithoutOptions { position: 3 }),
            ("Hi {Halo {kak|bro}}", GroupWithoutOptions { position: 3 }),
            ("Hi {a {b} c}", GroupWithoutOptions { position: 3 }),
            // `{{` opens a variable, so a group cannot start with a group.
            ("{{a|b} c|d}", UnclosedVariable { position: 0 }),
            (
                "{a|{b|{c|{d|{e|{f|{g|{h|{i|j}}}}}}}}}",
                TooDeep {
                    position: 24,
                    max: 8,
                },
            ),
        ] {
            assert_eq!(Template::parse(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn nesting_up_to_the_limit_is_fine() {
        let t = Template::parse("{a|{b|{c|{d|{e|{f|{g|{h|i}}}}}}}}").unwrap();
        assert!(t.render(&BTreeMap::new(), 3).is_ok());
        // A run of braces does not overflow the stack either.
        assert!(matches!(
            Template::parse(&"{".repeat(4096)),
            Err(TemplateError::TooDeep { .. })
        ));
    }

    #[test]
    fn length_is_counted_in_characters() {
        let max = "🙏".repeat(Template::MAX_CHARS);
        assert!(Template::parse(&max).is_ok());
        assert_eq!(
            Template::parse(&format!("{max}a")),
            Err(TemplateError::TooLong {
                length: 4097,
                max: 4096
            })
        );
    }

    #[test]
    fn lists_the_variables_used() {
        let t = Template::parse("{Halo {{name}}|Hai {{sapaan|Kak}}} dari {{kota}}, {{name}} {x}")
            .unwrap();
        assert_eq!(t.variables(), names(&["kota", "name", "sapaan"]));
        assert_eq!(
            t.unknown_variables(&names(&["name", "phone", "kota"])),
            names(&["sapaan"])
        );
        assert!(t.unknown_variables(&t.variables()).is_empty());
        assert!(Template::parse("{a|b} {x}").unwrap().variables().is_empty());
        // Without fallback somewhere: required.
        assert_eq!(t.required_variables(), names(&["kota", "name"]));
    }

    #[test]
    fn list_columns_are_matched_case_insensitively() {
        let t = Template::parse("Halo {{Nama}} dari {{KOTA|sini}} {{phone}}").unwrap();
        let columns = names(&["nama", "kota", "phone", "diskon"]);
        assert!(t.unknown_variables(&columns).is_empty());
        assert_eq!(
            t.known_variables(&columns),
            names(&["kota", "nama", "phone"])
        );
        assert_eq!(
            t.unknown_variables(&names(&["nama_toko", "kotak"])),
            names(&["KOTA", "Nama", "phone"])
        );
        assert_eq!(resolve("Nama", ["nama", "Nama"]), Some("Nama"));
        assert_eq!(resolve("NAMA", ["x", "nama", "Nama"]), Some("nama"));
        assert_eq!(resolve("nam", ["nama"]), None);
    }

    #[test]
    fn unfilled_keeps_only_required_variables_some_recipient_lacks() {
        let t = Template::parse("Halo {{Nama}}, {{kota|kak}} {{diskon}} {{phone}}").unwrap();
        let missing: BTreeMap<String, u64> = [("nama", 3), ("kota", 5), ("diskon", 0)]
            .map(|(k, n)| (k.to_owned(), n))
            .into();
        assert_eq!(t.unfilled(&missing), [("nama".to_owned(), 3)].into());
        assert!(t.unfilled(&BTreeMap::new()).is_empty());
        // A fallback in one place does not excuse a use without one.
        let t = Template::parse("{{kota|kak}} {{kota}}").unwrap();
        assert_eq!(t.unfilled(&missing), [("kota".to_owned(), 5)].into());
        assert!(has_value("x") && has_value(" x ") && !has_value(" \t") && !has_value(""));
    }

    #[test]
    fn serializes_as_the_source_and_deserializes_by_parsing() {
        let text = "Halo {{ name | Kak }}, {promo|diskon} {x}";
        let t = Template::parse(text).unwrap();
        assert_eq!(t.as_str(), text);
        assert_eq!(t.to_string(), text);
        assert_eq!(t.as_ref(), text);
        assert_eq!(text.parse::<Template>(), Ok(t.clone()));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, serde_json::to_string(text).unwrap());
        assert_eq!(serde_json::from_str::<Template>(&json).unwrap(), t);
        assert_eq!(format!("{t:?}"), format!("Template({text:?})"));
        for bad in ["\"\"", "\"{{name\"", "\"{}\"", "42"] {
            assert!(serde_json::from_str::<Template>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_have_lowercase_messages_and_the_validation_code() {
        for (error, message) in [
            (TemplateError::Empty, "template is empty"),
            (
                TemplateError::UnclosedVariable { position: 5 },
                "unclosed variable at position 5: `{{` without `}}`",
            ),
            (
                TemplateError::UnclosedGroup { position: 1 },
                "unclosed group at position 1: `{` without `}`",
            ),
            (
                TemplateError::UnmatchedClose { position: 2 },
                "unmatched `}` at position 2",
            ),
            (
                TemplateError::MissingVariable("name".into()),
                "missing variable \"name\"",
            ),
        ] {
            assert_eq!(error.to_string(), message);
            assert_eq!(error.code(), "validation_failed");
        }
    }

    /// Plain text without braces or `|`.
    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ,.!?é🙏]{0,8}"
    }

    fn variable() -> impl Strategy<Value = String> {
        (
            "[A-Za-z_][A-Za-z0-9_]{0,4}",
            proptest::option::of("[a-zA-Z ]{0,5}"),
            " {0,2}",
        )
            .prop_map(|(name, fallback, pad)| match fallback {
                Some(fallback) => format!("{{{{{pad}{name}{pad}|{fallback}}}}}"),
                None => format!("{{{{{pad}{name}{pad}}}}}"),
            })
    }

    fn literal_group() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ,.!?]{1,6}".prop_map(|t| format!("{{{t}}}"))
    }

    /// One valid piece: text, a variable, a literal group or spintax
    /// (recursively).
    fn part() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![text(), variable(), literal_group()];
        leaf.prop_recursive(3, 32, 4, |inner| {
            proptest::collection::vec(
                proptest::collection::vec(inner, 0..4).prop_map(|parts| {
                    let option = parts.concat();
                    // `{{` opens a variable: an option cannot start with a
                    // group (see the module docs).
                    if option.starts_with('{') && !option.starts_with("{{") {
                        format!("x{option}")
                    } else {
                        option
                    }
                }),
                2..5,
            )
            .prop_filter("not all options empty", |options| {
                options.iter().any(|o| !o.is_empty())
            })
            .prop_map(|options| format!("{{{}}}", options.join("|")))
        })
    }

    fn template_source() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop_oneof![part(), Just(" | ".to_owned())], 1..6)
            .prop_map(|parts| parts.concat())
            .prop_filter("not blank", |s| !s.trim().is_empty())
    }

    proptest! {
        #[test]
        fn rendering_valid_templates_never_panics_nor_leaves_braces_open(
            source in template_source(),
            value in text(),
            give_values: bool,
            seed: u64,
        ) {
            let template = Template::parse(&source);
            prop_assert!(template.is_ok(), "{source:?}: {template:?}");
            let template = template.unwrap();
            let values: BTreeMap<String, String> = if give_values {
                template.variables().into_iter().map(|name| (name, value.clone())).collect()
            } else {
                BTreeMap::new()
            };
            match template.render(&values, seed) {
                Ok(text) => {
                    prop_assert!(!text.contains("{{"), "{source:?} gave {text:?}");
                    prop_assert_eq!(template.render(&values, seed), Ok(text));
                }
                Err(TemplateError::MissingVariable(name)) => {
                    prop_assert!(!give_values || !has_value(&value));
                    prop_assert!(template.variables().contains(&name));
                }
                Err(other) => prop_assert!(false, "{source:?}: {other:?}"),
            }
        }

        #[test]
        fn parsing_any_text_never_panics(source in "[{}|a-z ]{0,40}", seed: u64) {
            if let Ok(template) = Template::parse(&source) {
                let values = template.variables().into_iter().map(|n| (n, "v".to_owned())).collect();
                let text = template.render(&values, seed);
                prop_assert!(text.is_ok());
                prop_assert!(!text.unwrap().contains("{{"), "{source:?}");
            }
        }
    }
}
