//! PDF fonts as the text extractor needs them: turning the byte codes of a shown string into
//! Unicode text and glyph advance widths. Covers simple fonts (Type1, TrueType, Type3 with
//! /Encoding, /Differences and /Widths, standard-14 metrics when widths are missing) and
//! composite Type0 fonts (2-byte codes, /W widths), both preferring a /ToUnicode CMap.

use super::cmap::ToUnicode;
use super::tables;
use lopdf::{Dictionary, Document, Object};

/// Width used when a font gives none and is not a standard-14 font: about an average glyph.
const FALLBACK_WIDTH: f32 = 0.5;

/// One decoded glyph of a shown string.
pub(super) struct DecodedGlyph<'f> {
    /// Unicode text (possibly several chars for ligatures, empty when unmappable).
    pub text: &'f str,
    /// Advance width in text space units per unit font size (glyph width / 1000).
    pub width: f32,
    /// A single-byte code 32: the only code word spacing (Tw) applies to.
    pub is_word_space_code: bool,
}

/// A font ready for decoding.
pub(super) struct Font {
    /// Composite font with 2-byte codes; otherwise codes are single bytes.
    two_byte: bool,
    /// Text for each single-byte code (simple fonts).
    simple_text: Vec<String>,
    /// Widths for each single-byte code (simple fonts).
    simple_widths: Vec<f32>,
    /// Unicode for multi-byte codes (composite fonts).
    to_unicode: Option<ToUnicode>,
    /// CID widths (composite fonts) as sorted (first, last, width) ranges.
    cid_widths: Vec<(u32, u32, f32)>,
    default_cid_width: f32,
    /// Vertical scale of glyph space relative to an ordinary 1000-unit font (Type3 fonts).
    pub size_scale: f32,
    /// Heavy weight, from the name or the font descriptor (used for heading detection).
    pub bold: bool,
    /// Bytes of ToUnicode CMap decoded to load the font: its cost, which the interpreter
    /// charges to the document's work budget.
    pub cmap_bytes: usize,
}

impl Font {
    /// Builds a font from its dictionary. Never fails: whatever cannot be read degrades to
    /// unmapped glyphs or default widths.
    pub fn load(doc: &Document, dict: &Dictionary) -> Font {
        let subtype = name_of(doc, dict.get(b"Subtype").ok()).unwrap_or_default();
        let base_font = name_of(doc, dict.get(b"BaseFont").ok()).unwrap_or_default();
        let to_unicode = deref(doc, dict.get(b"ToUnicode").ok())
            .and_then(|o| o.as_stream().ok())
            .and_then(|s| {
                // Bounded like content streams: a ToUnicode stream can be a deflate bomb.
                s.decompressed_content_with_limit(super::content::MAX_STREAM_BYTES)
                    .ok()
                    .or_else(|| Some(s.content.clone()))
            })
            .map(|bytes| (ToUnicode::parse(&bytes), bytes.len()));
        let (to_unicode, cmap_bytes) = match to_unicode {
            Some((map, bytes)) => (Some(map), bytes),
            None => (None, 0),
        };
        if subtype == b"Type0" {
            let mut font = Self::load_composite(doc, dict, &base_font, to_unicode);
            font.cmap_bytes = cmap_bytes;
            return font;
        }
        let is_type3 = subtype == b"Type3";
        let font_matrix = deref(doc, dict.get(b"FontMatrix").ok())
            .and_then(|o| o.as_array().ok())
            .map(|a| {
                a.iter()
                    .map(|v| number(doc, v).unwrap_or(0.0))
                    .collect::<Vec<f32>>()
            })
            .filter(|m| m.len() == 6);
        // Type3 glyph space is defined by FontMatrix; others use 1/1000 of text space.
        let (width_scale, size_scale) = match (&font_matrix, is_type3) {
            (Some(m), true) if m[0].abs() > 0.0 => (m[0], (m[3].abs() * 1000.0).clamp(0.01, 100.0)),
            _ => (0.001, 1.0),
        };

        let descriptor =
            deref(doc, dict.get(b"FontDescriptor").ok()).and_then(|o| o.as_dict().ok());
        let bold = is_bold(doc, &base_font, descriptor);
        let plain_name = strip_subset_prefix(&base_font);

        // Code → glyph text via base encoding + /Differences.
        let mut codes: Vec<Option<String>> = vec![None; 256];
        let encoding = deref(doc, dict.get(b"Encoding").ok());
        let symbolic_name = plain_name.contains("Symbol");
        let default_table: &[u16; 256] = if symbolic_name {
            &tables::SYMBOL
        } else {
            &tables::STANDARD
        };
        let (base_table, differences) = match encoding {
            Some(Object::Name(n)) => (encoding_table(n).unwrap_or(default_table), None),
            Some(Object::Dictionary(d)) => {
                let base = name_of(doc, d.get(b"BaseEncoding").ok())
                    .and_then(|n| encoding_table(&n))
                    .unwrap_or(default_table);
                (
                    base,
                    deref(doc, d.get(b"Differences").ok()).and_then(|o| o.as_array().ok()),
                )
            }
            _ => (default_table, None),
        };
        for (code, slot) in codes.iter_mut().enumerate() {
            if let Some(c) =
                char::from_u32(u32::from(base_table[code])).filter(|_| base_table[code] != 0)
            {
                *slot = Some(c.to_string());
            }
        }
        if let Some(diffs) = differences {
            let mut code: usize = 0;
            for item in diffs {
                match deref(doc, Some(item)) {
                    Some(Object::Integer(i)) => code = (*i).clamp(0, 255) as usize,
                    Some(Object::Name(n)) => {
                        if code < 256 {
                            codes[code] = glyph_name_to_text(n);
                        }
                        code += 1;
                    }
                    _ => {}
                }
            }
        }

        let mut simple_text = Vec::with_capacity(256);
        for (code, from_encoding) in codes.iter().enumerate() {
            let mapped = to_unicode
                .as_ref()
                .and_then(|t| t.get(code as u32))
                .map(str::to_owned);
            simple_text.push(normalise_glyph_text(
                mapped.or_else(|| from_encoding.clone()).unwrap_or_default(),
            ));
        }

        // Widths: /Widths from /FirstChar, else standard-14 metrics, else /MissingWidth.
        let missing_width = descriptor
            .and_then(|d| d.get(b"MissingWidth").ok())
            .and_then(|o| number(doc, o))
            .filter(|w| *w > 0.0)
            .map(|w| w * width_scale);
        let metrics = Base14Metrics::for_font(&plain_name);
        let mut simple_widths = Vec::with_capacity(256);
        for text in &simple_text {
            let from_metrics = metrics.as_ref().map(|m| m.width(text));
            simple_widths.push(from_metrics.or(missing_width).unwrap_or(FALLBACK_WIDTH));
        }
        let first_char = dict
            .get(b"FirstChar")
            .ok()
            .and_then(|o| number(doc, o))
            .unwrap_or(0.0) as i64;
        if let Some(widths) = deref(doc, dict.get(b"Widths").ok()).and_then(|o| o.as_array().ok()) {
            for (i, w) in widths.iter().enumerate() {
                let code = first_char + i as i64;
                if (0..256).contains(&code) {
                    if let Some(w) = number(doc, w) {
                        simple_widths[code as usize] = w * width_scale;
                    }
                }
            }
        }

        Font {
            two_byte: false,
            simple_text,
            simple_widths,
            to_unicode: None,
            cid_widths: Vec::new(),
            default_cid_width: 1.0,
            size_scale,
            bold,
            cmap_bytes,
        }
    }

    fn load_composite(
        doc: &Document,
        dict: &Dictionary,
        base_font: &[u8],
        to_unicode: Option<ToUnicode>,
    ) -> Font {
        let descendant = deref(doc, dict.get(b"DescendantFonts").ok())
            .and_then(|o| o.as_array().ok())
            .and_then(|a| a.first())
            .and_then(|o| deref(doc, Some(o)))
            .and_then(|o| o.as_dict().ok());
        let descriptor = descendant
            .and_then(|d| deref(doc, d.get(b"FontDescriptor").ok()))
            .and_then(|o| o.as_dict().ok());
        let default_cid_width = descendant
            .and_then(|d| d.get(b"DW").ok())
            .and_then(|o| number(doc, o))
            .unwrap_or(1000.0)
            / 1000.0;
        let mut cid_widths = Vec::new();
        if let Some(w) = descendant
            .and_then(|d| deref(doc, d.get(b"W").ok()))
            .and_then(|o| o.as_array().ok())
        {
            let mut i = 0;
            while i < w.len() {
                let Some(first) = number(doc, &w[i]) else {
                    break;
                };
                let first = first.max(0.0) as u32;
                match w.get(i + 1).and_then(|o| deref(doc, Some(o))) {
                    Some(Object::Array(list)) => {
                        for (k, width) in list.iter().enumerate() {
                            if let Some(width) = number(doc, width) {
                                let cid = first.saturating_add(k as u32);
                                cid_widths.push((cid, cid, width / 1000.0));
                            }
                        }
                        i += 2;
                    }
                    Some(last) => {
                        let last = number(doc, last).unwrap_or(0.0).max(0.0) as u32;
                        let width = w.get(i + 2).and_then(|o| number(doc, o)).unwrap_or(1000.0);
                        cid_widths.push((first, last.max(first), width / 1000.0));
                        i += 3;
                    }
                    None => break,
                }
            }
        }
        cid_widths.sort_by_key(|r| r.0);
        Font {
            two_byte: true,
            simple_text: Vec::new(),
            simple_widths: Vec::new(),
            to_unicode,
            cid_widths,
            default_cid_width,
            size_scale: 1.0,
            bold: is_bold(doc, base_font, descriptor),
            cmap_bytes: 0,
        }
    }

    /// Calls `emit` for every glyph of a shown string, in order.
    pub fn decode<'f>(&'f self, bytes: &[u8], mut emit: impl FnMut(DecodedGlyph<'f>)) {
        if self.two_byte {
            for pair in bytes.chunks(2) {
                let code = pair.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
                let text = self
                    .to_unicode
                    .as_ref()
                    .and_then(|t| t.get(code))
                    .unwrap_or("");
                emit(DecodedGlyph {
                    text,
                    width: self.cid_width(code),
                    is_word_space_code: false,
                });
            }
        } else {
            for &b in bytes {
                let i = usize::from(b);
                emit(DecodedGlyph {
                    text: &self.simple_text[i],
                    width: self.simple_widths[i],
                    is_word_space_code: b == 32,
                });
            }
        }
    }

    fn cid_width(&self, cid: u32) -> f32 {
        // Ranges are sorted by first CID; find the last range starting at or before `cid`.
        let idx = self.cid_widths.partition_point(|r| r.0 <= cid);
        if idx > 0 {
            let (first, last, width) = self.cid_widths[idx - 1];
            if cid >= first && cid <= last {
                return width;
            }
        }
        self.default_cid_width
    }
}

/// Standard-14 font metrics, looked up by the Unicode text of a glyph.
struct Base14Metrics {
    /// `None` for the monospaced Courier family.
    table: Option<&'static [(u16, u16)]>,
}

impl Base14Metrics {
    fn for_font(name: &str) -> Option<Base14Metrics> {
        let lower = name.to_ascii_lowercase();
        if lower.contains("courier") {
            return Some(Base14Metrics { table: None });
        }
        let bold = lower.contains("bold");
        let slanted = lower.contains("italic") || lower.contains("oblique");
        let key = if lower.contains("helvetica") || lower.contains("arial") {
            match (bold, slanted) {
                (false, false) => "Helvetica",
                (true, false) => "Helvetica-Bold",
                (false, true) => "Helvetica-Oblique",
                (true, true) => "Helvetica-BoldOblique",
            }
        } else if lower.contains("times") {
            match (bold, slanted) {
                (false, false) => "Times-Roman",
                (true, false) => "Times-Bold",
                (false, true) => "Times-Italic",
                (true, true) => "Times-BoldItalic",
            }
        } else if lower == "symbol" {
            "Symbol"
        } else {
            return None;
        };
        let table = tables::BASE14_WIDTHS
            .iter()
            .find(|(n, _)| *n == key)
            .map(|(_, t)| *t)?;
        Some(Base14Metrics { table: Some(table) })
    }

    fn width(&self, text: &str) -> f32 {
        let Some(table) = self.table else { return 0.6 };
        let Some(c) = text.chars().next() else {
            return FALLBACK_WIDTH;
        };
        let Ok(c) = u16::try_from(u32::from(c)) else {
            return FALLBACK_WIDTH;
        };
        match table.binary_search_by_key(&c, |p| p.0) {
            Ok(i) => f32::from(table[i].1) / 1000.0,
            Err(_) => FALLBACK_WIDTH,
        }
    }
}

fn encoding_table(name: &[u8]) -> Option<&'static [u16; 256]> {
    match name {
        b"WinAnsiEncoding" => Some(&tables::WIN_ANSI),
        b"MacRomanEncoding" => Some(&tables::MAC_ROMAN),
        b"StandardEncoding" => Some(&tables::STANDARD),
        // MacExpert holds small caps and old-style figures; Standard is the closest readable map.
        b"MacExpertEncoding" => Some(&tables::STANDARD),
        _ => None,
    }
}

/// Maps a glyph name to text: the Adobe Glyph List, `uniXXXX[XXXX…]`, `uXXXX[XX]`,
/// `a_b` ligature names and `name.suffix` variants.
pub(super) fn glyph_name_to_text(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let base = name.split('.').next().unwrap_or(name);
    if base.is_empty() {
        return None;
    }
    if base.contains('_') {
        let parts: Option<String> = base.split('_').map(single_glyph_name).collect();
        return parts;
    }
    single_glyph_name(base)
}

fn single_glyph_name(name: &str) -> Option<String> {
    if let Ok(i) = tables::GLYPH_NAMES.binary_search_by(|(n, _)| (*n).cmp(name)) {
        return char::from_u32(u32::from(tables::GLYPH_NAMES[i].1)).map(String::from);
    }
    if let Some(hex) = name.strip_prefix("uni") {
        if hex.len() >= 4 && hex.len() % 4 == 0 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let units: Vec<u16> = (0..hex.len() / 4)
                .filter_map(|k| u16::from_str_radix(&hex[k * 4..k * 4 + 4], 16).ok())
                .collect();
            return String::from_utf16(&units).ok();
        }
    }
    if let Some(hex) = name.strip_prefix('u') {
        if (4..=6).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return u32::from_str_radix(hex, 16)
                .ok()
                .and_then(char::from_u32)
                .map(String::from);
        }
    }
    None
}

/// Expands presentation forms (ligatures) and folds hyphen variants so that extracted words
/// are searchable as typed.
pub(super) fn normalise_glyph_text(text: String) -> String {
    if text.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{FB00}' => out.push_str("ff"),
            '\u{FB01}' => out.push_str("fi"),
            '\u{FB02}' => out.push_str("fl"),
            '\u{FB03}' => out.push_str("ffi"),
            '\u{FB04}' => out.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => out.push_str("st"),
            '\u{00AD}' | '\u{2010}' | '\u{2011}' => out.push('-'),
            '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() || c == '\u{FFFD}' || c == '\u{FEFF}' || c == '\u{200B}' => {}
            c => out.push(c),
        }
    }
    out
}

fn strip_subset_prefix(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    match name.split_once('+') {
        Some((prefix, rest))
            if prefix.len() == 6 && prefix.chars().all(|c| c.is_ascii_uppercase()) =>
        {
            rest.to_owned()
        }
        _ => name.into_owned(),
    }
}

fn is_bold(doc: &Document, base_font: &[u8], descriptor: Option<&Dictionary>) -> bool {
    let name = strip_subset_prefix(base_font).to_ascii_lowercase();
    if ["bold", "black", "heavy", "semibold", "demi"]
        .iter()
        .any(|k| name.contains(k))
    {
        return true;
    }
    // TeX bold extended fonts (cmbx10, cmssbx10, ec-lmbx…) and Latin Modern "-bold".
    if name.starts_with("cmbx")
        || name.contains("bx1")
        || name.contains("bx9")
        || name.contains("bx8")
        || name.contains("lmbx")
    {
        return true;
    }
    let Some(d) = descriptor else { return false };
    let weight = d
        .get(b"FontWeight")
        .ok()
        .and_then(|o| number(doc, o))
        .unwrap_or(0.0);
    let flags = d
        .get(b"Flags")
        .ok()
        .and_then(|o| number(doc, o))
        .unwrap_or(0.0) as i64;
    weight >= 600.0 || flags & (1 << 18) != 0
}

/// Follows a reference (one level deep is all PDF allows for these entries, but chains are
/// followed by lopdf with its own cycle guard).
pub(super) fn deref<'a>(doc: &'a Document, obj: Option<&'a Object>) -> Option<&'a Object> {
    let obj = obj?;
    doc.dereference(obj).ok().map(|(_, o)| o)
}

pub(super) fn number(doc: &Document, obj: &Object) -> Option<f32> {
    match deref(doc, Some(obj))? {
        Object::Integer(i) => Some(*i as f32),
        Object::Real(r) => Some(*r).filter(|r| r.is_finite()),
        _ => None,
    }
}

pub(super) fn name_of(doc: &Document, obj: Option<&Object>) -> Option<Vec<u8>> {
    match deref(doc, obj)? {
        Object::Name(n) => Some(n.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_names_map_to_text() {
        assert_eq!(glyph_name_to_text(b"A").as_deref(), Some("A"));
        assert_eq!(
            glyph_name_to_text(b"quoteright").as_deref(),
            Some("\u{2019}")
        );
        assert_eq!(glyph_name_to_text(b"fi").as_deref(), Some("\u{FB01}"));
        assert_eq!(glyph_name_to_text(b"uni00660069").as_deref(), Some("fi"));
        assert_eq!(glyph_name_to_text(b"u1F600").as_deref(), Some("\u{1F600}"));
        assert_eq!(glyph_name_to_text(b"f_f_i").as_deref(), Some("ffi"));
        assert_eq!(glyph_name_to_text(b"a.sc").as_deref(), Some("a"));
        assert_eq!(glyph_name_to_text(b"a123"), None);
    }

    #[test]
    fn ligatures_and_soft_hyphens_are_normalised() {
        assert_eq!(normalise_glyph_text("\u{FB03}".into()), "ffi");
        assert_eq!(normalise_glyph_text("\u{00AD}".into()), "-");
        assert_eq!(normalise_glyph_text("\u{0000}".into()), "");
    }

    #[test]
    fn base14_widths_come_from_afm_metrics() {
        let helvetica = Base14Metrics::for_font("Helvetica").map(|m| m.width("a"));
        assert_eq!(helvetica, Some(0.556));
        let courier = Base14Metrics::for_font("Courier-Bold").map(|m| m.width("W"));
        assert_eq!(courier, Some(0.6));
        assert!(Base14Metrics::for_font("CMR10").is_none());
    }
}
