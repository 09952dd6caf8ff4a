//! The forms of a word the index keeps, in one pass over the text.
//!
//! Each word (a run of letters and digits, at most [`LONGEST_WORD`] bytes)
//! is kept lowercased with its accents folded (`canción` → `cancion`), and
//! so are its English and its Spanish stems, marked with [`STEM`] so that a
//! stem never passes for a word as written — but only when a stem differs
//! from the word, which for most words of a chat it does not. One field with
//! these forms costs a third of what a field per form did: the text is cut,
//! lowercased and folded once, and most words make one term, not three.
//!
//! Stemming comes before folding: the Snowball stemmers know accented
//! suffixes (`-ación`), and folding after makes `facturación` and
//! `facturacion` meet.

use frostem::{Algorithm, Stemmer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Longest word kept; longer ones are noise (ids, base64) and would bloat the terms.
pub(crate) const LONGEST_WORD: usize = 40;
/// Marks a stem: `~factur`.
pub(crate) const STEM: char = '~';

/// Words whose forms are remembered: chats repeat their words (Zipf), and
/// stemming them again was a third of the indexer's time.
const REMEMBERED: usize = 65_536;

/// The forms of one word: as written (folded), then its stems that differ.
#[derive(Clone)]
pub(crate) struct Forms {
    en: Stemmer,
    es: Stemmer,
    /// Word as written → the terms it makes; shared by the clones the index
    /// makes of its analysers, emptied when full.
    known: Arc<Mutex<HashMap<String, Arc<[String]>>>>,
}

impl Forms {
    pub(crate) fn new() -> Forms {
        Forms { en: Stemmer::new(Algorithm::English), es: Stemmer::new(Algorithm::Spanish), known: Arc::default() }
    }

    /// The terms of `word`, remembered.
    fn remembered(&self, word: &str) -> Arc<[String]> {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = known.get(word) {
            return t.clone();
        }
        let mut terms = Vec::with_capacity(3);
        self.terms(word, &mut terms);
        let terms: Arc<[String]> = terms.into();
        if known.len() >= REMEMBERED {
            known.clear();
        }
        known.insert(word.to_string(), terms.clone());
        terms
    }

    /// The word lowercased and folded, and its English and Spanish stems
    /// (folded too), whether or not they differ from it.
    pub(crate) fn of(&self, word: &str) -> (String, String, String) {
        let lower = word.to_lowercase();
        (fold(&lower), fold(&self.en.stem(&lower)), fold(&self.es.stem(&lower)))
    }

    /// What the index keeps of `word`: the folded word, and each stem that differs from it, marked.
    fn terms(&self, word: &str, out: &mut Vec<String>) {
        let (folded, en, es) = self.of(word);
        for stem in [&en, &es] {
            if *stem != folded && !out.iter().any(|t| t.strip_prefix(STEM) == Some(stem.as_str())) {
                out.push(format!("{STEM}{stem}"));
            }
        }
        out.push(folded);
    }
}

/// The words of `text`: runs of letters and digits, with their byte offsets.
pub(crate) fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(move |w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
}

/// Lowercase text with the accents and ligatures of Latin alphabets folded
/// to ASCII; other characters are kept.
pub(crate) fn fold(lower: &str) -> String {
    if lower.is_ascii() {
        return lower.to_string();
    }
    let mut out = String::with_capacity(lower.len());
    for c in lower.chars() {
        match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'ā' | 'ą' => out.push('a'),
            'é' | 'è' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => out.push('e'),
            'í' | 'ì' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => out.push('i'),
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' | 'ō' | 'ő' => out.push('o'),
            'ú' | 'ù' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'ñ' | 'ń' | 'ň' => out.push('n'),
            'ç' | 'ć' | 'č' => out.push('c'),
            'ś' | 'š' | 'ş' => out.push('s'),
            'ź' | 'ż' | 'ž' => out.push('z'),
            'ł' => out.push('l'),
            'ř' => out.push('r'),
            'ť' => out.push('t'),
            'ď' | 'đ' => out.push('d'),
            'ğ' => out.push('g'),
            'ß' => out.push_str("ss"),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            other => out.push(other),
        }
    }
    out
}

impl Tokenizer for Forms {
    type TokenStream<'a> = FormStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> FormStream {
        let mut tokens = Vec::new();
        for (position, (offset, word)) in words(text).filter(|(_, w)| w.len() <= LONGEST_WORD).enumerate() {
            for t in self.remembered(word).iter() {
                tokens.push(Token { offset_from: offset, offset_to: offset + word.len(), position, text: t.clone(), position_length: 1 });
            }
        }
        FormStream { tokens, next: 0 }
    }
}

/// The forms of a text's words, made up front (a message is a few dozen).
pub(crate) struct FormStream {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for FormStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexed(text: &str) -> Vec<String> {
        let mut f = Forms::new();
        let mut s = f.token_stream(text);
        let mut out = Vec::new();
        while s.advance() {
            out.push(s.token().text.clone());
        }
        out
    }

    /// Whether a search for `query` finds a text holding `text`: the query's
    /// forms (as `query::build` makes them) meet the text's.
    fn meets(query: &str, text: &str) -> bool {
        let (folded, en, es) = Forms::new().of(query);
        let asked = [folded, en.clone(), es.clone(), format!("{STEM}{en}"), format!("{STEM}{es}")];
        indexed(text).iter().any(|t| asked.contains(t))
    }

    #[test]
    fn words_are_folded_and_stems_kept_only_when_they_differ() {
        assert_eq!(indexed("Canción ÁRBOL niño hola"), ["cancion", "arbol", "~nin", "nino", "~hol", "hola"]);
        assert!(indexed(&"x".repeat(LONGEST_WORD + 1)).is_empty(), "long words are dropped, not cut");
        assert_eq!(indexed("pedido #123-456"), ["~ped", "pedido", "123", "456"]);
    }

    #[test]
    fn spanish_and_english_forms_meet_with_or_without_accents() {
        for (q, text) in [
            ("facturaciones", "la facturación de marzo"),
            ("facturacion", "la facturación de marzo"),
            ("FACTURACIÓN", "las facturaciones"),
            ("canciones", "mi canción"),
            ("reembolsos", "un reembolso"),
            ("refund", "two refunds"),
            ("refunding", "two refunds"),
            ("ordered", "my orders"),
            ("order", "my orders"),
            ("orders", "one order"),
        ] {
            assert!(meets(q, text), "{q} finds {text}");
        }
        assert!(!meets("refund", "una canción"));
    }

    #[test]
    fn ligatures_and_other_scripts() {
        assert_eq!(fold("straße æon œuvre"), "strasse aeon oeuvre");
        assert_eq!(fold("привет"), "привет");
        assert_eq!(
            words("a,b  c").map(|(o, w)| (o, w.to_string())).collect::<Vec<_>>(),
            [(0, "a".into()), (2, "b".into()), (5, "c".into())]
        );
    }
}
