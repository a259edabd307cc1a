//! Owns the answer/passage agreement check: whether the specifics an answer names (commands,
//! options, files, settings, code) can be found in the passages it was given.
//!
//! Small models asked about something the documents do not cover rarely refuse: they invent
//! a plausible setting (`MTA_STS = yes` in `smtpd.conf`). Retrieval cannot catch that when
//! the passages are on the right topic; the answer's own words can. An answer most of whose
//! specifics appear nowhere in the passages (nor in the question) is not grounded, and Lore
//! says it could not find the answer instead of showing it. An answer that only restates
//! the question (no word of its own, not even a yes or no) is no answer either.

use std::sync::LazyLock;

use regex::Regex;

use super::citations::content_words;

/// Inline code as the model writes it: `like this`.
static CODE_SPAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"`([^`\n]{2,120})`").unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Specifics outside code spans: options (`-q`, `--nocheck`), absolute paths, dotted,
/// underscored or assigned names (`smtpd.conf`, `DEB_BUILD_OPTIONS`, `a=b`, `host:port`) and
/// camel-case names (`OpenDKIM`). Plain words and acronyms are not specifics: they are
/// vocabulary, and a paraphrase may use other words for the same thing.
static SPECIFIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        (?:^|[\s(\[{,;:\x22'])
        (
            --?[A-Za-z][\w-]*
          | /[\w.-]+(?:/[\w.-]+)*
          | [\w+-]*[A-Za-z][\w+-]*(?:[_.=:/][\w+=-]+)+
          | [A-Za-z]*[a-z][A-Z]\w*
        )",
    )
    .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Values: numbers of two digits or more (`636`, `64,512`, `300`). One-digit numbers are
/// left out: they are as often words ("one year") in the passages as digits.
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^\w.,])(\d[\d,.]*\d)").unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// A citation marker, `[3]`: not part of what the answer claims.
static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[\d+(?:\s*,\s*\d+)*\]").unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Abbreviations that look like dotted names.
const NOT_SPECIFIC: &[&str] = &["e.g", "i.e", "etc", "vs"];

/// How an answer's specifics compare with its passages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agreement {
    /// Specifics found in a passage.
    pub supported: Vec<String>,
    /// Specifics found in no passage.
    pub unsupported: Vec<String>,
}

impl Agreement {
    /// More of the answer's specifics are missing from the passages than found there.
    pub fn is_ungrounded(&self) -> bool {
        self.unsupported.len() > self.supported.len()
    }
}

/// The specifics of `answer`, in order of first appearance, without repeats.
pub fn specifics(answer: &str) -> Vec<String> {
    let answer = MARKER.replace_all(answer, " ");
    let mut found: Vec<String> = CODE_SPAN
        .captures_iter(&answer)
        .map(|c| c[1].to_string())
        .collect();
    let prose = CODE_SPAN.replace_all(&answer, " ");
    found.extend(SPECIFIC.captures_iter(&prose).map(|c| c[1].to_string()));
    found.extend(NUMBER.captures_iter(&prose).map(|c| c[1].to_string()));
    let mut out: Vec<String> = Vec::new();
    for raw in found {
        let item = raw
            .trim()
            .trim_matches(|c: char| ".,;:()[]{}\"'".contains(c))
            .to_string();
        let key = item.to_lowercase();
        if item.chars().count() < 2
            || NOT_SPECIFIC.contains(&key.as_str())
            || out.iter().any(|o| o.to_lowercase() == key)
        {
            continue;
        }
        out.push(item);
    }
    out
}

/// Compares the specifics of `answer` with `passages`. Specifics the question already names
/// are left out: repeating the question proves nothing either way.
pub fn agreement(answer: &str, passages: &[&str], question: &str) -> Agreement {
    let context = normalise(&passages.join("\n"));
    let question = normalise(question);
    let mut result = Agreement::default();
    for item in specifics(answer) {
        let needle = normalise(&item);
        if contains_term(&question, &needle) {
            continue;
        }
        if contains_term(&context, &needle) {
            result.supported.push(item);
        } else {
            result.unsupported.push(item);
        }
    }
    result
}

/// Words that answer a yes/no question: an answer holding one says something even when
/// every other word comes from the question ("No, the project does not pay bounties").
const POLAR_WORDS: &[&str] = &["yes", "no", "not", "never", "cannot", "none", "nothing"];

/// `answer` has content words and every one of them is already in `question`, with no yes
/// or no among them: it restates the question instead of answering it.
pub fn restates_question(answer: &str, question: &str) -> bool {
    let answer = MARKER.replace_all(answer, " ").to_lowercase();
    let polar = answer
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .any(|w| POLAR_WORDS.contains(&w) || w.ends_with("n't"));
    let words = content_words(&answer);
    !polar && !words.is_empty() && words.is_subset(&content_words(question))
}

fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `needle` occurs in `haystack` and is not part of a longer word.
fn contains_term(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    haystack.match_indices(needle).any(|(at, _)| {
        !word(haystack[..at].chars().next_back())
            && !word(haystack[at + needle.len()..].chars().next())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specifics_are_code_options_paths_and_settings_not_words() {
        let answer = "Add `nocheck` to DEB_BUILD_OPTIONS in debian/rules [1]. Run chronyd -q, \
                      see /etc/chrony/chrony.conf, e.g. with OpenDKIM or DNS.";
        assert_eq!(
            specifics(answer),
            vec![
                "nocheck",
                "DEB_BUILD_OPTIONS",
                "debian/rules",
                "-q",
                "/etc/chrony/chrony.conf",
                "OpenDKIM"
            ]
        );
        assert!(specifics("Five days, then it bounces [2].").is_empty());
    }

    #[test]
    fn an_invented_setting_is_ungrounded() {
        let passages = [
            "smtp_tls_security_level (default: empty) The default SMTP TLS security level.",
            "Use smtp_tls_policy_maps to enforce TLS per destination.",
        ];
        let question = "How do we turn on MTA-STS policy enforcement in Postfix?";
        let invented = "Set `MTA_STS = yes` in `smtpd.conf` to enable MTA-STS.";
        let a = agreement(invented, &passages, question);
        assert_eq!(a.unsupported, vec!["MTA_STS = yes", "smtpd.conf"]);
        assert!(a.is_ungrounded());

        let grounded = "Set smtp_tls_security_level or use smtp_tls_policy_maps [2]; \
                        edit /etc/postfix/main.cf.";
        let a = agreement(grounded, &passages, question);
        assert_eq!(a.supported.len(), 2);
        assert_eq!(a.unsupported, vec!["/etc/postfix/main.cf"]);
        assert!(!a.is_ungrounded());
    }

    #[test]
    fn plain_prose_has_no_specifics_and_a_found_one_outweighs_a_stray_one() {
        let passages = ["Defaults:bob runas_default=oracle"];
        let a = agreement(
            "Add Defaults:bob runas_default=oracle to /etc/sudoers.",
            &passages,
            "How?",
        );
        assert!(!a.is_ungrounded(), "{a:?}");
        assert!(agreement("Edit /etc/sudoers.", &passages, "How?").is_ungrounded());
        let a = agreement("Yes, it does [1].", &passages, "Does it?");
        assert_eq!(a, Agreement::default());
    }

    #[test]
    fn invented_values_count_and_citation_numbers_do_not() {
        let passages = ["maximal_queue_lifetime (default: 5 days). The port is 636."];
        assert_eq!(
            specifics("Port 636 [12], after 64,512 bytes."),
            vec!["636", "64,512"]
        );
        let a = agreement("Logs must be kept for 30 days [2].", &passages, "How long?");
        assert_eq!(a.unsupported, vec!["30"]);
        assert!(a.is_ungrounded());
        assert!(!agreement("It uses port 636 [1].", &passages, "Which port?").is_ungrounded());
    }

    #[test]
    fn an_answer_that_only_restates_the_question_is_recognised() {
        let question = "Which main.cf settings hook OpenDKIM into Postfix so that outgoing mail gets DKIM-signed?";
        assert!(restates_question(
            "The main.cf settings hook OpenDKIM into Postfix so that outgoing mail gets DKIM-signed [1].",
            question
        ));
        assert!(!restates_question(
            "Set smtpd_milters in main.cf [1].",
            question
        ));
        let polar = "Does the sudo project pay a bounty for reported vulnerabilities?";
        assert!(!restates_question(
            "No, the sudo project does not pay a bounty for reported vulnerabilities.",
            polar
        ));
        assert!(!restates_question("Yes.", polar));
    }

    #[test]
    fn matches_respect_word_boundaries_and_the_question() {
        assert!(contains_term("use -q here", "-q"));
        assert!(!contains_term("use -quiet here", "-q"));
        assert!(!contains_term("maxfailures", "maxfailure"));
        let a = agreement(
            "Use `realmd` and `sssd.conf`, or `adcli`.",
            &["Kerberos realms."],
            "How do we join with realmd?",
        );
        assert_eq!(a.unsupported, vec!["sssd.conf", "adcli"]);
    }
}
