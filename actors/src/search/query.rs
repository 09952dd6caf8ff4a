//! A person's search words as an index query.
//!
//! Every word must be found (in a message, or in a customer's fields), in
//! any of its forms: as typed with accents folded, or by its English or
//! Spanish stem; the exact form scores higher. The whole query also matches
//! an identifier as typed (an email, an external id), and a phone number by
//! its digits or their tail.

use super::schema::{self, Fields, Kind, SHORTEST_PHONE_TAIL};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::{Language, SimpleTokenizer, TextAnalyzer, TokenStream, Tokenizer};
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

/// The analysers a query's words go through, one per text field.
pub(crate) struct Analysers {
    folded: TextAnalyzer,
    en: TextAnalyzer,
    es: TextAnalyzer,
}

impl Analysers {
    pub(crate) fn new() -> Analysers {
        Analysers { folded: schema::folded(), en: schema::stemmed(Language::English), es: schema::stemmed(Language::Spanish) }
    }
}

/// The query for `q` over documents of `kinds`.
pub(crate) fn build(f: &Fields, a: &mut Analysers, q: &str, kinds: &[Kind]) -> Result<Box<dyn Query>, QueryError> {
    let q = q.trim();
    if q.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong);
    }
    let raw = raw_words(q);
    if raw.len() > MAX_QUERY_WORDS {
        return Err(QueryError::TooManyWords);
    }
    let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let mut all: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for word in &raw {
        let mut forms: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (field, analyser, boost) in [(f.folded, &mut a.folded, 2.0), (f.en, &mut a.en, 1.0), (f.es, &mut a.es, 1.0)] {
            for token in tokens(analyser, word) {
                forms.push((Occur::Should, boosted(term(field, &token), boost)));
            }
        }
        if !forms.is_empty() {
            all.push((Occur::Must, Box::new(BooleanQuery::new(forms))));
        }
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

/// The query cut into words as the index cuts text, before any folding.
fn raw_words(q: &str) -> Vec<String> {
    let mut t = SimpleTokenizer::default();
    let mut s = t.token_stream(q);
    let mut out = Vec::new();
    while s.advance() {
        out.push(s.token().text.clone());
    }
    out
}

fn tokens(a: &mut TextAnalyzer, word: &str) -> Vec<String> {
    let mut s = a.token_stream(word);
    let mut out = Vec::new();
    while s.advance() {
        out.push(s.token().text.clone());
    }
    out
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
        let (_, f) = schema::schema();
        let mut a = Analysers::new();
        assert_eq!(build(&f, &mut a, "   ", &[Kind::Message]).err(), Some(QueryError::Empty));
        assert_eq!(build(&f, &mut a, &"a".repeat(MAX_QUERY_BYTES + 1), &[Kind::Message]).err(), Some(QueryError::TooLong));
        let many = vec!["w"; MAX_QUERY_WORDS + 1].join(" ");
        assert_eq!(build(&f, &mut a, &many, &[Kind::Message]).err(), Some(QueryError::TooManyWords));
        assert!(build(&f, &mut a, "¿dónde está mi pedido?", &[Kind::Message]).is_ok());
        // Punctuation alone still matches an identifier as typed.
        assert!(build(&f, &mut a, "@@", &[Kind::Contact]).is_ok());
    }

    #[test]
    fn phone_numbers_are_read_as_digits() {
        assert_eq!(phone_digits("+34 600-11.22 (33)").as_deref(), Some("34600112233"));
        assert_eq!(phone_digits("12345"), None);
        assert_eq!(phone_digits("call 600112233"), None);
    }
}
