//! Parser for /ToUnicode CMaps: `bfchar` and `bfrange` sections mapping character codes
//! (one or more bytes) to UTF-16BE text. Anything else in the CMap is skipped.

use super::font::normalise_glyph_text;
use std::collections::HashMap;

/// Most entries a single CMap may define; real fonts stay far below, a hostile one could
/// otherwise ask for billions through `bfrange`.
const MAX_ENTRIES: usize = 200_000;

/// Code → text map from a ToUnicode CMap.
#[derive(Debug, Default)]
pub(super) struct ToUnicode {
    map: HashMap<u32, String>,
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Hex(Vec<u8>),
    Word(&'a [u8]),
    ArrayStart,
    ArrayEnd,
}

impl ToUnicode {
    pub fn get(&self, code: u32) -> Option<&str> {
        self.map.get(&code).map(String::as_str)
    }

    pub fn parse(data: &[u8]) -> ToUnicode {
        let tokens = tokenize(data);
        let mut map = HashMap::new();
        let mut i = 0;
        while i < tokens.len() && map.len() < MAX_ENTRIES {
            match tokens[i] {
                Token::Word(b"beginbfchar") => {
                    i += 1;
                    while i + 1 < tokens.len() && tokens[i] != Token::Word(b"endbfchar") {
                        if let (Token::Hex(src), Token::Hex(dst)) = (&tokens[i], &tokens[i + 1]) {
                            map.insert(code_value(src), utf16_text(dst, 0));
                        }
                        i += 2;
                    }
                }
                Token::Word(b"beginbfrange") => {
                    i += 1;
                    while i + 2 < tokens.len() && tokens[i] != Token::Word(b"endbfrange") {
                        let (Token::Hex(lo), Token::Hex(hi)) = (&tokens[i], &tokens[i + 1]) else {
                            i += 1;
                            continue;
                        };
                        let (lo, hi) = (code_value(lo), code_value(hi));
                        let count = hi
                            .saturating_sub(lo)
                            .min((MAX_ENTRIES - map.len().min(MAX_ENTRIES)) as u32);
                        match &tokens[i + 2] {
                            Token::Hex(dst) => {
                                for k in 0..=count {
                                    map.insert(lo + k, utf16_text(dst, k));
                                }
                                i += 3;
                            }
                            Token::ArrayStart => {
                                let mut j = i + 3;
                                let mut k = 0;
                                while j < tokens.len() && tokens[j] != Token::ArrayEnd {
                                    if let Token::Hex(dst) = &tokens[j] {
                                        if k <= count {
                                            map.insert(lo + k, utf16_text(dst, 0));
                                        }
                                        k += 1;
                                    }
                                    j += 1;
                                }
                                i = j + 1;
                            }
                            _ => i += 3,
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
        ToUnicode { map }
    }
}

fn code_value(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

/// Decodes UTF-16BE, adding `offset` to the last code unit (bfrange increments).
fn utf16_text(bytes: &[u8], offset: u32) -> String {
    let mut units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| c.iter().fold(0u16, |acc, b| (acc << 8) | u16::from(*b)))
        .collect();
    if let Some(last) = units.last_mut() {
        *last = last.wrapping_add(offset as u16);
    }
    normalise_glyph_text(String::from_utf16_lossy(&units))
}

fn tokenize(data: &[u8]) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let is_delim = |c: u8| c.is_ascii_whitespace() || b"<>[]()/%{}".contains(&c);
    while i < data.len() {
        let c = data[i];
        match c {
            b'%' => {
                while i < data.len() && data[i] != b'\n' && data[i] != b'\r' {
                    i += 1;
                }
            }
            b'<' if data.get(i + 1) == Some(&b'<') => i += 2,
            b'>' => i += 1,
            b'<' => {
                let mut hex = Vec::new();
                let mut nibble: Option<u8> = None;
                i += 1;
                while i < data.len() && data[i] != b'>' {
                    if let Some(v) = (data[i] as char).to_digit(16) {
                        match nibble.take() {
                            Some(hi) => hex.push(hi << 4 | v as u8),
                            None => nibble = Some(v as u8),
                        }
                    }
                    i += 1;
                }
                if let Some(hi) = nibble {
                    hex.push(hi << 4);
                }
                i += 1;
                tokens.push(Token::Hex(hex));
            }
            b'[' => {
                tokens.push(Token::ArrayStart);
                i += 1;
            }
            b']' => {
                tokens.push(Token::ArrayEnd);
                i += 1;
            }
            b'(' => {
                // Literal strings do not occur in bf sections of real CMaps; skip them.
                let mut depth = 0;
                while i < data.len() {
                    match data[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            c if c.is_ascii_whitespace() || c == b'{' || c == b'}' => i += 1,
            _ => {
                let start = i;
                i += 1;
                while i < data.len() && !is_delim(data[i]) {
                    i += 1;
                }
                tokens.push(Token::Word(&data[start..i]));
            }
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfchar_and_bfrange_map_codes() {
        let cmap = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap
            1 begincodespacerange <0000> <FFFF> endcodespacerange
            2 beginbfchar <0003> <0020> <0011> <FB01> endbfchar
            2 beginbfrange <0024> <0026> <0041> <0030> <0031> [<0078> <00660066>] endbfrange
            endcmap";
        let map = ToUnicode::parse(cmap);
        assert_eq!(map.get(3), Some(" "));
        assert_eq!(map.get(0x11), Some("fi"));
        assert_eq!(map.get(0x24), Some("A"));
        assert_eq!(map.get(0x26), Some("C"));
        assert_eq!(map.get(0x30), Some("x"));
        assert_eq!(map.get(0x31), Some("ff"));
        assert_eq!(map.get(0x27), None);
    }

    #[test]
    fn surrogate_pairs_decode() {
        let map = ToUnicode::parse(b"1 beginbfchar <01> <D835DC00> endbfchar");
        assert_eq!(map.get(1), Some("\u{1D400}"));
    }

    #[test]
    fn huge_ranges_are_capped() {
        let map = ToUnicode::parse(b"1 beginbfrange <00000000> <FFFFFFFF> <0041> endbfrange");
        assert!(map.map.len() <= MAX_ENTRIES + 1);
    }
}
