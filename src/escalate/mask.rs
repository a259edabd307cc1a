//! Owns the anonymisation of what escalation sends off the machine: e-mail addresses, phone
//! numbers, IBANs (mod-97 checked), payment card numbers (Luhn-checked), IPv4/IPv6
//! addresses and the names an admin lists are replaced by placeholders (`<EMAIL_1>`,
//! `<PHONE_2>`, …). One [`Mapping`] spans a whole request, so the same value gets the same
//! placeholder in the question and in every passage, and [`Mapping::unmask`] puts the
//! originals back into the answer Lore shows.
//!
//! Everything here reads hostile text: the patterns are run by the `regex` crate (finite
//! automata, linear in the input), every candidate's check is bounded by its length, and a
//! text longer than [`MAX_TEXT_BYTES`] is refused rather than half-masked.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

/// The longest text one call to [`Masker::mask`] takes. Passages are a few hundred tokens
/// and questions at most 4,000 characters; this leaves room for long titles and history
/// while keeping a hostile input's cost bounded.
pub const MAX_TEXT_BYTES: usize = 2 << 20;
/// Names an admin may list, and the longest one (characters).
pub const MAX_NAMES: usize = 10_000;
pub const MAX_NAME_CHARS: usize = 200;

/// What a placeholder stands for. The order is the precedence when two candidates overlap
/// (an e-mail address holding a listed name is masked as the address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Email,
    Iban,
    Card,
    Ip,
    Phone,
    Name,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Email,
        Kind::Iban,
        Kind::Card,
        Kind::Ip,
        Kind::Phone,
        Kind::Name,
    ];

    /// The placeholder's label: `<EMAIL_1>`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Email => "EMAIL",
            Kind::Iban => "IBAN",
            Kind::Card => "CARD",
            Kind::Ip => "IP",
            Kind::Phone => "PHONE",
            Kind::Name => "NAME",
        }
    }

    fn from_label(label: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.label() == label)
    }
}

/// What masking can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error("a text of {len} bytes is too long to anonymise (at most {max} bytes)")]
    TooLong { len: usize, max: usize },
    #[error("mask_names: {0}")]
    Names(String),
}

/// The placeholders of one request and the values they stand for.
#[derive(Debug, Default, Clone)]
pub struct Mapping {
    /// (kind, normalised value) → placeholder number.
    numbers: HashMap<(Kind, String), usize>,
    /// (kind, number) → the value as first seen.
    originals: BTreeMap<(Kind, usize), String>,
    /// Placeholders handed out per kind.
    next: HashMap<Kind, usize>,
}

impl Mapping {
    /// The placeholder for `original` (normalised as `key`), new or already handed out.
    fn placeholder(&mut self, kind: Kind, key: String, original: &str) -> String {
        let n = match self.numbers.get(&(kind, key.clone())) {
            Some(&n) => n,
            None => {
                let next = self.next.entry(kind).or_insert(0);
                *next += 1;
                let n = *next;
                self.numbers.insert((kind, key), n);
                self.originals.insert((kind, n), original.to_string());
                n
            }
        };
        format!("<{}_{n}>", kind.label())
    }

    /// `text` with every placeholder of this mapping replaced by its value. Models often
    /// drop the angle brackets (`EMAIL_1`) or one of them, so those forms are mapped back
    /// too; a placeholder this mapping never handed out (`<EMAIL_9>` when there is one
    /// address) is left as written.
    pub fn unmask(&self, text: &str) -> String {
        PLACEHOLDER
            .replace_all(text, |c: &regex::Captures| {
                let value = Kind::from_label(&c[1]).and_then(|kind| {
                    let n: usize = c[2].parse().ok()?;
                    self.originals.get(&(kind, n))
                });
                match value {
                    Some(v) => v.clone(),
                    None => c[0].to_string(),
                }
            })
            .into_owned()
    }

    /// Every masked value with its placeholder, in kind then number order.
    pub fn entries(&self) -> impl Iterator<Item = (String, &str)> {
        self.originals
            .iter()
            .map(|((kind, n), v)| (format!("<{}_{n}>", kind.label()), v.as_str()))
    }

    /// How many distinct values of each kind were masked (lower-case labels), for the
    /// answer's "escalated" marker: what was hidden, never the values.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.next
            .iter()
            .map(|(k, &n)| (k.label().to_ascii_lowercase(), n))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.originals.is_empty()
    }
}

/// A placeholder as a model may write it back: brackets optional, number whole.
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<?(?-u:\b)(EMAIL|PHONE|IBAN|CARD|IP|NAME)_([0-9]{1,6})(?-u:\b)>?")
        .expect("placeholder pattern")
});

// The candidate patterns: generous on purpose, each candidate then checked in code
// (checksums, address parsing, digit counts, what stands around it).
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}",
    )
    .expect("e-mail pattern")
});
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)[A-Za-z]{2}[0-9]{2}(?:[ ]?[A-Za-z0-9]){11,30}(?-u:\b)")
        .expect("IBAN pattern")
});
static CARD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)[0-9](?:[ \-]?[0-9]){12,18}(?-u:\b)").expect("card pattern")
});
static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?-u:\b)").expect("IPv4 pattern")
});
static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)[0-9a-f]{0,4}(?::(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9a-f]{0,4})){2,8}(?:%[0-9a-z]{1,16})?",
    )
    .expect("IPv6 pattern")
});
/// `+49 30 1234567`, `+1 (555) 123-4567`, `+44 (0)20 7946 0958`, `+33 6 12 34 56 78`.
static PHONE_INTERNATIONAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\+[0-9](?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9])){6,20}").expect("phone pattern")
});
/// Trunk-prefixed national numbers: `030 1234567`, `020 7946 0958`, `06 12 34 56 78`,
/// `(089) 123 456 78`, `030/1234567`.
static PHONE_NATIONAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\(?0[0-9]{1,4}\)?(?:[ .\-/]?[0-9]{2,8}){1,5}").expect("phone pattern")
});
/// North American: `(555) 123-4567`, `555-123-4567`, `555.123.4567`.
static PHONE_NANP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\(?[2-9][0-9]{2}\)?[ .\-][0-9]{3}[ .\-][0-9]{4}").expect("phone pattern")
});
/// Day/month/year in any order with one separator: never a phone number.
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[0-9]{1,4}([./\-])[0-9]{1,2}[./\-][0-9]{1,4})$").expect("date pattern")
});

/// A value found in a text: its byte range, kind and normalised form (equal values, however
/// written, share a placeholder).
#[derive(Debug, Clone)]
struct Found {
    start: usize,
    end: usize,
    kind: Kind,
    key: String,
}

/// Finds and replaces personal values. Built once from the admin's list of names.
#[derive(Debug, Clone)]
pub struct Masker {
    names: Option<Regex>,
}

impl Masker {
    /// A masker for the built-in kinds and `names` (matched case-insensitively, whole words,
    /// any run of whitespace between a name's words).
    pub fn new(names: &[String]) -> Result<Masker, MaskError> {
        if names.len() > MAX_NAMES {
            return Err(MaskError::Names(format!(
                "{} names listed; at most {MAX_NAMES}",
                names.len()
            )));
        }
        let mut words: Vec<Vec<&str>> = Vec::new();
        for name in names {
            if name.chars().count() > MAX_NAME_CHARS {
                return Err(MaskError::Names(format!(
                    "a name longer than {MAX_NAME_CHARS} characters: {:?}…",
                    name.chars().take(40).collect::<String>()
                )));
            }
            let parts: Vec<&str> = name.split_whitespace().collect();
            if !parts.is_empty() {
                words.push(parts);
            }
        }
        if words.is_empty() {
            return Ok(Masker { names: None });
        }
        // Longest first: the alternation takes the first branch that matches, so "Anna
        // Maria Berg" must be tried before "Anna".
        words.sort_by_key(|w| std::cmp::Reverse(w.iter().map(|p| p.len()).sum::<usize>()));
        let alternatives: Vec<String> = words
            .iter()
            .map(|w| {
                w.iter()
                    .map(|p| regex::escape(p))
                    .collect::<Vec<_>>()
                    .join(r"\s+")
            })
            .collect();
        // No `\b` here: Unicode word boundaries push the regex crate off its fast engine on
        // non-ASCII text; whole words are checked around each match instead.
        let pattern = format!(r"(?i)(?:{})", alternatives.join("|"));
        let names = regex::RegexBuilder::new(&pattern)
            .size_limit(64 << 20)
            .build()
            .map_err(|e| MaskError::Names(e.to_string()))?;
        Ok(Masker { names: Some(names) })
    }

    /// `text` with every value found replaced by its placeholder in `mapping`.
    pub fn mask(&self, text: &str, mapping: &mut Mapping) -> Result<String, MaskError> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(MaskError::TooLong {
                len: text.len(),
                max: MAX_TEXT_BYTES,
            });
        }
        let mut found = self.candidates(text);
        // Precedence, then position: a value overlapping one already kept is dropped.
        found.sort_by_key(|f| (f.kind, f.start));
        let mut kept: BTreeMap<usize, Found> = BTreeMap::new();
        for f in found {
            let before = kept.range(..f.end).next_back();
            if before.is_some_and(|(_, k)| k.end > f.start) {
                continue;
            }
            kept.insert(f.start, f);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in kept.into_values() {
            out.push_str(&text[at..f.start]);
            out.push_str(&mapping.placeholder(f.kind, f.key, &text[f.start..f.end]));
            at = f.end;
        }
        out.push_str(&text[at..]);
        Ok(out)
    }

    fn candidates(&self, text: &str) -> Vec<Found> {
        let mut found = Vec::new();
        let mut add = |kind: Kind, hits: Vec<(usize, usize, String)>| {
            found.extend(hits.into_iter().map(|(start, end, key)| Found {
                start,
                end,
                kind,
                key,
            }))
        };
        // E-mail addresses are taken as found: the pattern ends on a top-level domain and
        // nothing around an address makes it less of one.
        add(
            Kind::Email,
            EMAIL
                .find_iter(text)
                .map(|m| (m.start(), m.end(), m.as_str().to_lowercase()))
                .collect(),
        );
        add(
            Kind::Iban,
            scan(text, &IBAN, |s, e| {
                longest_valid(text, s, e, 15, |s, e| iban_key(&text[s..e]))
            }),
        );
        add(
            Kind::Card,
            scan(text, &CARD, |s, e| {
                longest_valid(text, s, e, 13, |s, e| {
                    stands_alone(text, s, e).then_some(())?;
                    card_key(&text[s..e])
                })
            }),
        );
        add(
            Kind::Ip,
            scan(text, &IPV4, |s, e| {
                // Part of a longer dotted number (a version: 1.2.3.4.5) is not an address.
                if text[..s].ends_with('.') || followed_by_digit_after(text, e, ".") {
                    return None;
                }
                let ip: Ipv4Addr = text[s..e].parse().ok()?;
                Some((e, ip.to_string()))
            }),
        );
        add(Kind::Ip, scan(text, &IPV6, |s, e| ipv6(text, s, e)));
        for (pattern, digits) in [
            (&*PHONE_INTERNATIONAL, 8..=17),
            (&*PHONE_NATIONAL, 9..=12),
            (&*PHONE_NANP, 10..=10),
        ] {
            let phone = |s: usize, e: usize| {
                let candidate = &text[s..e];
                let count = candidate.bytes().filter(u8::is_ascii_digit).count();
                let first = candidate.bytes().find(u8::is_ascii_digit);
                if !digits.contains(&count)
                    || DATE.is_match(candidate)
                    || !stands_alone(text, s, e)
                    // 0000 0000 0000: a form's blank, not a number.
                    || candidate
                        .bytes()
                        .filter(u8::is_ascii_digit)
                        .all(|d| Some(d) == first)
                {
                    return None;
                }
                // Without a `+`, digit groups on either side mean a longer number (an
                // account, a card that failed its check) that a phone pattern only
                // partly matched.
                if !candidate.starts_with('+')
                    && (digit_group_before(text, s) || digit_group_after(text, e))
                {
                    return None;
                }
                let mut key: String = candidate.chars().filter(char::is_ascii_digit).collect();
                if candidate.starts_with('+') {
                    key.insert(0, '+');
                }
                Some(key)
            };
            add(
                Kind::Phone,
                scan(text, pattern, |s, e| {
                    longest_valid(text, s, e, *digits.start(), phone)
                }),
            );
        }
        if let Some(names) = &self.names {
            let name = |s: usize, e: usize| {
                // Whole words, judged on Unicode letters ("Zoë" next to "ß" too), which the
                // pattern's own boundaries would not see without leaving the fast engine.
                let touching = text[..s]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric)
                    || text[e..].chars().next().is_some_and(char::is_alphanumeric);
                if touching {
                    return None;
                }
                let key = text[s..e]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase();
                Some((e, key))
            };
            add(Kind::Name, scan(text, names, name));
        }
        found
    }
}

/// Every match of `pattern` in `text` that `check` accepts (given the match's byte range,
/// it returns where the value ends, possibly earlier, and its key). After a rejected match
/// the search goes on from the match's second character, not from its end, so a value that
/// starts inside a rejected match ("x4111 1111 1111 1111 1111" → none; "ab c d" for the
/// names "ab c" and "c d") is still found. Each pattern's matches are bounded in length,
/// so this stays linear in the text.
fn scan(
    text: &str,
    pattern: &Regex,
    check: impl Fn(usize, usize) -> Option<(usize, String)>,
) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at <= text.len() {
        let Some(m) = pattern.find_at(text, at) else {
            break;
        };
        match check(m.start(), m.end()) {
            Some((end, key)) if end > m.start() => {
                out.push((m.start(), end, key));
                at = end;
            }
            _ => {
                at = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    out
}

/// A number stands alone when no letter, digit or `+` touches its start and no letter,
/// digit, or separator followed by a digit (`1.2.3`, `1,50`, `12-05`) continues it.
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    if before.is_some_and(|c| c.is_alphanumeric() || "+_".contains(c)) {
        return false;
    }
    // A digit group after `.`, `,`, `-` or `/` is the tail of a longer number.
    let mut back = text[..start].chars().rev();
    if back.next().is_some_and(|c| ".,-/".contains(c))
        && back.next().is_some_and(|c| c.is_ascii_digit())
    {
        return false;
    }
    let after = text[end..].chars().next();
    if after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
        return false;
    }
    !followed_by_digit_after(text, end, ".,-/:")
}

/// `text[..start]` ends with a digit and a space.
fn digit_group_before(text: &str, start: usize) -> bool {
    let mut back = text[..start].chars().rev();
    back.next() == Some(' ') && back.next().is_some_and(|c| c.is_ascii_digit())
}

/// `text[end..]` starts with a space and a digit.
fn digit_group_after(text: &str, end: usize) -> bool {
    let mut after = text[end..].chars();
    after.next() == Some(' ') && after.next().is_some_and(|c| c.is_ascii_digit())
}

/// `text[end..]` starts with one of `separators` and then a digit.
fn followed_by_digit_after(text: &str, end: usize, separators: &str) -> bool {
    let mut after = text[end..].chars();
    after.next().is_some_and(|c| separators.contains(c))
        && after.next().is_some_and(|c| c.is_ascii_digit())
}

/// The longest prefix of `text[start..end]` ending before a separator (or at `end`) that
/// `check` accepts, with its key. Greedy patterns may have taken a following word or number
/// ("DE89 3704 0044 0532 0130 00 IN", "+49 30 1234567 2024"), so shorter cuts are tried:
/// at most one per separator of the match (bounded in length), and none once fewer than
/// `min_alphanumeric` letters and digits are left.
fn longest_valid(
    text: &str,
    start: usize,
    end: usize,
    min_alphanumeric: usize,
    check: impl Fn(usize, usize) -> Option<String>,
) -> Option<(usize, String)> {
    let mut end = end;
    loop {
        let significant = text[start..end]
            .bytes()
            .filter(u8::is_ascii_alphanumeric)
            .count();
        if significant < min_alphanumeric {
            return None; // shorter cuts hold even fewer
        }
        if let Some(key) = check(start, end) {
            return Some((end, key));
        }
        let cut = text[start..end].rfind([' ', '-', '.', '/'])?;
        if cut == 0 {
            return None;
        }
        end = start + cut;
    }
}

/// The IBAN's normalised form (upper case, no spaces) when its length and mod-97 check
/// digits are right (ISO 13616).
fn iban_key(candidate: &str) -> Option<String> {
    let compact: String = candidate
        .chars()
        .filter(|c| *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !(15..=34).contains(&compact.len()) {
        return None;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = c.to_digit(36)?;
        // Letters are two digits (A = 10), digits one.
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    (remainder == 1).then_some(compact)
}

/// The card number's digits when there are 13 to 19 and the Luhn check passes.
fn card_key(candidate: &str) -> Option<String> {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || digits.iter().all(|&d| d == digits[0]) {
        // A run of one digit (0000 0000 0000 0000) is a placeholder in forms, not a card.
        return None;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
        .then(|| digits.iter().map(|d| char::from(b'0' + *d as u8)).collect())
}

/// An IPv6 address candidate checked by parsing: at least one digit (so `dead::beef` in
/// prose and `Foo::Bar` in code are not addresses), a trailing `:` of the sentence dropped,
/// an optional `%zone` kept in the span.
fn ipv6(text: &str, start: usize, end: usize) -> Option<(usize, String)> {
    let before = text[..start].chars().next_back();
    if before.is_some_and(|c| c.is_alphanumeric() || c == ':' || c == '_') {
        return None;
    }
    let after = text[end..].chars().next();
    if after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let mut span = &text[start..end];
    loop {
        let (address, zone) = match span.split_once('%') {
            Some((a, z)) => (a, Some(z)),
            None => (span, None),
        };
        if address.matches(':').count() >= 2 && address.bytes().any(|b| b.is_ascii_digit()) {
            if let Ok(ip) = address.parse::<Ipv6Addr>() {
                let key = match zone {
                    Some(z) => format!("{ip}%{z}"),
                    None => ip.to_string(),
                };
                return Some((start + span.len(), key));
            }
        }
        span = span.strip_suffix(':')?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn masker() -> Masker {
        Masker::new(&["Jane Doe".to_string(), "Okonkwo".to_string()]).expect("names")
    }

    fn mask(text: &str) -> (String, Mapping) {
        let mut mapping = Mapping::default();
        let out = masker().mask(text, &mut mapping).expect("mask");
        (out, mapping)
    }

    /// `text` is left exactly as it is.
    #[track_caller]
    fn untouched(text: &str) {
        let (out, mapping) = mask(text);
        assert_eq!(
            out,
            text,
            "masked: {:?}",
            mapping.entries().collect::<Vec<_>>()
        );
    }

    #[test]
    fn email_addresses() {
        let (out, _) = mask("Write to jane.doe+vpn@corp.example.com or IT-Help@Corp.Example.");
        assert_eq!(out, "Write to <EMAIL_1> or <EMAIL_2>.");
        let (out, m) = mask("a@b.co and A@B.CO are one address; x@y.org is another");
        assert_eq!(
            out,
            "<EMAIL_1> and <EMAIL_1> are one address; <EMAIL_2> is another"
        );
        assert_eq!(m.counts().get("email"), Some(&2));
        untouched("user@localhost, @handle, a@b, version 1.2@3");
    }

    #[test]
    fn phone_numbers_international_and_national() {
        for (text, digits) in [
            ("+49 30 1234567", 11),
            ("+1 (555) 123-4567", 11),
            ("+44 (0)20 7946 0958", 13),
            ("+33 6 12 34 56 78", 11),
            ("+41.44.668.18.00", 11),
            ("030 1234567", 10),
            ("030/1234567", 10),
            ("020 7946 0958", 11),
            ("06 12 34 56 78", 10),
            ("(089) 123 456 78", 11),
            ("(555) 123-4567", 10),
            ("555-123-4567", 10),
            ("555.123.4567", 10),
        ] {
            let (out, m) = mask(&format!("Call {text}, then wait."));
            assert_eq!(out, "Call <PHONE_1>, then wait.", "{text}");
            let (_, original) = m.entries().next().expect("one entry");
            assert_eq!(original, text);
            assert_eq!(original.bytes().filter(u8::is_ascii_digit).count(), digits);
        }
        // The same number written twice the same way keeps its placeholder.
        let (out, _) = mask("030 1234567 or 030 1234567; else +49 30 1234567");
        assert_eq!(out, "<PHONE_1> or <PHONE_1>; else <PHONE_2>");
    }

    #[test]
    fn dates_versions_amounts_and_other_numbers_are_not_phones() {
        for text in [
            "Released on 2024-05-01, 01.02.2024, 12/05/2024 and 05-06-2024.",
            "Upgrade to 10.0.19045.3803, 1.2.3, v2.14.1 or 0.10.12 first.",
            "It costs 1,234.56 EUR, 1 000 000 USD, €12.50, 0.5 % or $ 2,500,000.00.",
            "Ticket 4711, ISBN 0-306-40615-2, port 8080, at 10:30:45, 2024 Q3.",
            "Order 12345678 and invoice 2024/0001234.",
            "The build 20240501 ran 3600 s; 100 200 300 rows.",
            "Run `sleep 0 123` and see page 0123.",
            "MAC 00:1a:2b:3c:4d:5e and C++ std::vector and dead::beef.",
        ] {
            untouched(text);
        }
    }

    #[test]
    fn ibans_are_mod_97_checked() {
        let (out, m) = mask(
            "Pay DE89 3704 0044 0532 0130 00 IN FULL, or GB82WEST12345698765432 or \
             gb82 west 1234 5698 7654 32.",
        );
        assert_eq!(out, "Pay <IBAN_1> IN FULL, or <IBAN_2> or <IBAN_2>.");
        assert_eq!(
            m.entries().map(|(_, v)| v.to_string()).collect::<Vec<_>>(),
            ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"]
        );
        // One check digit off, one letter of the account off: not IBANs.
        untouched("DE88 3704 0044 0532 0130 00 and GB82WEST12345698765433.");
    }

    #[test]
    fn card_numbers_are_luhn_checked() {
        let (out, _) = mask(
            "Visa 4111 1111 1111 1111, Amex 3782-822463-10005, MC 5555555555554444, \
             again 4111-1111-1111-1111 12 times.",
        );
        assert_eq!(
            out,
            "Visa <CARD_1>, Amex <CARD_2>, MC <CARD_3>, again <CARD_1> 12 times."
        );
        // Luhn fails, too short, all one digit, glued to letters: not cards.
        untouched("4111 1111 1111 1112, 4111 1111 1111, 0000 0000 0000 0000, ID4111111111111111.");
    }

    #[test]
    fn ip_addresses() {
        let (out, _) = mask(
            "Hosts 10.0.0.1:8080, 192.168.1.20/24, fe80::1ff:fe23:4567:890a%eth0, ::1, \
             2001:db8::8a2e:370:7334 and 2001:0db8:0000:0000:0000:8a2e:0370:7334.",
        );
        assert_eq!(
            out,
            "Hosts <IP_1>:8080, <IP_2>/24, <IP_3>, <IP_4>, <IP_5> and <IP_5>."
        );
        untouched("Octets 256.1.1.1, 1.2.3.4.5, 01.02.03.04 and 12:30:45 are not addresses.");
    }

    #[test]
    fn listed_names_case_insensitive_whole_words() {
        let (out, m) =
            mask("JANE DOE met jane  doe and Mr Okonkwo; Okonkwos and Janet Doe did not.");
        assert_eq!(
            out,
            "<NAME_1> met <NAME_1> and Mr <NAME_2>; Okonkwos and Janet Doe did not."
        );
        assert_eq!(m.unmask("<NAME_1>"), "JANE DOE");
        // No names listed: no name is masked.
        let mut mapping = Mapping::default();
        let out = Masker::new(&[" ".into()])
            .expect("blank names are ignored")
            .mask("Jane Doe", &mut mapping)
            .expect("mask");
        assert_eq!(out, "Jane Doe");
        assert!(Masker::new(&["x".repeat(MAX_NAME_CHARS + 1)]).is_err());
    }

    #[test]
    fn one_mapping_spans_the_question_and_every_passage() {
        let masker = masker();
        let mut mapping = Mapping::default();
        let q = masker
            .mask(
                "What is Jane Doe's address, jane@corp.example?",
                &mut mapping,
            )
            .expect("mask");
        let p1 = masker
            .mask("Contact: jane@corp.example, +49 30 1234567.", &mut mapping)
            .expect("mask");
        let p2 = masker
            .mask(
                "jane doe (JANE@corp.example) phones +49 30 1234567 or bob@corp.example",
                &mut mapping,
            )
            .expect("mask");
        assert_eq!(q, "What is <NAME_1>'s address, <EMAIL_1>?");
        assert_eq!(p1, "Contact: <EMAIL_1>, <PHONE_1>.");
        assert_eq!(p2, "<NAME_1> (<EMAIL_1>) phones <PHONE_1> or <EMAIL_2>");
    }

    #[test]
    fn an_email_holding_a_listed_name_is_masked_as_the_address() {
        let masker = Masker::new(&["okonkwo".into()]).expect("names");
        let mut mapping = Mapping::default();
        let out = masker
            .mask("okonkwo@corp.example", &mut mapping)
            .expect("mask");
        assert_eq!(out, "<EMAIL_1>");
    }

    #[test]
    fn unmask_restores_values_with_or_without_brackets() {
        let (masked, m) = mask("Mail jane@corp.example or call +49 30 1234567; Jane Doe.");
        assert_eq!(masked, "Mail <EMAIL_1> or call <PHONE_1>; <NAME_1>.");
        assert_eq!(
            m.unmask(&masked),
            "Mail jane@corp.example or call +49 30 1234567; Jane Doe."
        );
        assert_eq!(
            m.unmask("EMAIL_1, <PHONE_1 and NAME_1> [1]"),
            "jane@corp.example, +49 30 1234567 and Jane Doe [1]"
        );
        // Unknown numbers, other words and longer numbers stay as written.
        assert_eq!(
            m.unmask("<EMAIL_2> EMAIL_10 MYEMAIL_1 EMAIL_1x"),
            "<EMAIL_2> EMAIL_10 MYEMAIL_1 EMAIL_1x"
        );
    }

    #[test]
    fn too_long_text_is_refused_not_half_masked() {
        let mut mapping = Mapping::default();
        let err = masker()
            .mask(&"a".repeat(MAX_TEXT_BYTES + 1), &mut mapping)
            .expect_err("too long");
        assert!(err.to_string().contains("too long"), "{err}");
    }

    /// Inputs built to make the patterns work hardest: long runs that almost match.
    #[test]
    fn hostile_megabyte_inputs_take_bounded_time() {
        let names: Vec<String> = (0..2000).map(|i| format!("Person{i} Surname{i}")).collect();
        let masker = Masker::new(&names).expect("names");
        let megabyte = 1 << 20;
        let fill = |unit: &str| unit.repeat(megabyte / unit.len());
        for input in [
            fill("a"),
            fill("a."),
            fill("1 "),
            fill("1-"),
            fill("0"),
            fill("+1 "),
            fill("a@"),
            fill("a@b."),
            fill(":"),
            fill("1:"),
            fill("DE89 "),
            fill("1.1."),
            fill("Person1 "),
            fill("é1 "),
            fill("4111 1111 1111 1111 "),
        ] {
            let started = Instant::now();
            let mut mapping = Mapping::default();
            let out = masker.mask(&input, &mut mapping).expect("mask");
            let elapsed = started.elapsed();
            eprintln!("{:?}…: {elapsed:?}", &input[..8]);
            assert!(
                elapsed < Duration::from_secs(10),
                "{:?}…: {elapsed:?}",
                &input[..8]
            );
            assert!(out.len() <= input.len() * 2);
        }
    }
}
