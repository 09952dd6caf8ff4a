//! A person's search words as an index query.
//!
//! Every word must be found (in a message, or in a customer's fields), in
//! any of its forms ([`Forms`]): as typed with accents folded, or by its
//! English or Spanish stem; the word as typed scores higher. The whole query also matches
//! an identifier as typed (an email, an external id), and a phone number by
//! its digits or their tail.

use super::forms::{self, Forms, LONGEST_WORD, STEM};
use super::schema::{Fields, Kind, SHORTEST_PHONE_TAIL};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::Term;

/// Longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 256;
/// Most words a query may have.
pub const MAX_QUERY_WORDS: usize = 16;

/// Why a query cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// Nothing to search for.
    #[error("the query has no words to search for")]
    Empty,
    /// Longer than [`MAX_QUERY_BYTES`].
    #[error("the query is longer than {MAX_QUERY_BYTES} bytes")]
    TooLong,
    /// More than [`MAX_QUERY_WORDS`] words.
    #[error("the query has more than {MAX_QUERY_WORDS} words")]
    TooManyWords,
}

/// The query for `q` over documents of `kinds`.
pub(crate) fn build(f: &Fields, q: &str, kinds: &[Kind]) -> Result<Box<dyn Query>, QueryError> {
    let q = q.trim();
    if q.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong);
    }
    let raw: Vec<&str> = forms::words(q).map(|(_, w)| w).collect();
    if raw.len() > MAX_QUERY_WORDS {
        return Err(QueryError::TooManyWords);
    }
    let forms = Forms::new();
    let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let mut all: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for word in raw.iter().filter(|w| w.len() <= LONGEST_WORD) {
        let (folded, en, es) = forms.of(word);
        // The word as typed; then its stems, as the stems of other words
        // (`~order` of "ordered") and as words themselves ("order", whose
        // stem is itself and so is kept only as the word).
        let mut terms: Vec<(String, f32)> = vec![(folded, 2.0)];
        for stem in [en, es] {
            for t in [format!("{STEM}{stem}"), stem] {
                if !terms.iter().any(|(have, _)| *have == t) {
                    terms.push((t, 1.0));
                }
            }
        }
        let either: Vec<(Occur, Box<dyn Query>)> =
            terms.iter().map(|(t, boost)| (Occur::Should, boosted(term(f.words, t), *boost))).collect();
        all.push((Occur::Must, Box::new(BooleanQuery::new(either))));
    }
    if !all.is_empty() {
        any.push((Occur::Should, Box::new(BooleanQuery::new(all))));
    }
    if !q.is_empty() {
        any.push((Occur::Should, boosted(term(f.ident, &q.to_lowercase()), 3.0)));
    }
    if let Some(digits) = phone_digits(q) {
        any.push((Occur::Should, boosted(term(f.ident, &digits), 3.0)));
    }
    if any.is_empty() {
        return Err(QueryError::Empty);
    }
    let kinds: Vec<(Occur, Box<dyn Query>)> = kinds.iter().map(|k| (Occur::Should, term(f.kind, k.as_str()))).collect();
    Ok(Box::new(BooleanQuery::new(vec![
        (Occur::Must, Box::new(BooleanQuery::new(any))),
        (Occur::Must, Box::new(BooleanQuery::new(kinds))),
    ])))
}

fn term(field: Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, text), IndexRecordOption::WithFreqs))
}

fn boosted(q: Box<dyn Query>, boost: f32) -> Box<dyn Query> {
    Box::new(BoostQuery::new(q, boost))
}

/// The digits of a query that looks like a phone number (digits, spaces,
/// `+`, `-`, `.`, parentheses) with enough of them to be one.
fn phone_digits(q: &str) -> Option<String> {
    if !q.chars().all(|c| c.is_ascii_digit() || " +-.()".contains(c)) {
        return None;
    }
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= SHORTEST_PHONE_TAIL).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_queries_are_refused_by_kind() {
        let (_, f) = super::super::schema::schema();
        assert_eq!(build(&f, "   ", &[Kind::Message]).err(), Some(QueryError::Empty));
        assert_eq!(build(&f, &"a".repeat(MAX_QUERY_BYTES + 1), &[Kind::Message]).err(), Some(QueryError::TooLong));
        let many = vec!["w"; MAX_QUERY_WORDS + 1].join(" ");
        assert_eq!(build(&f, &many, &[Kind::Message]).err(), Some(QueryError::TooManyWords));
        assert!(build(&f, "¿dónde está mi pedido?", &[Kind::Message]).is_ok());
        // Punctuation alone still matches an identifier as typed.
        assert!(build(&f, "@@", &[Kind::Contact]).is_ok());
    }

    #[test]
    fn phone_numbers_are_read_as_digits() {
        assert_eq!(phone_digits("+34 600-11.22 (33)").as_deref(), Some("34600112233"));
        assert_eq!(phone_digits("12345"), None);
        assert_eq!(phone_digits("call 600112233"), None);
    }
}
