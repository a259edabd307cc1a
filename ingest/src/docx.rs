//! DOCX (Office Open XML word-processing) files: reading the ZIP container defensively (entry
//! count, declared sizes and actually decompressed bytes are all bounded, so a zip bomb is
//! refused instead of filling memory) and turning `word/document.xml` into heading, paragraph
//! and table-row blocks. Heading levels come from paragraph styles resolved through
//! `word/styles.xml`; the title from `docProps/core.xml` or the Title style.

use crate::document::{BlockKind, ParsedDocument};
use crate::{Budget, Error, Limits, Result};
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use zip::result::ZipError;
use zip::ZipArchive;

/// More parts than any real document has (even with thousands of images); beyond this the
/// archive's central directory alone would cost more memory than the text is worth.
const MAX_ZIP_ENTRIES: u64 = 10_000;

/// Members smaller than this are not held to the compression-ratio limit: a tiny, highly
/// repetitive XML part can legitimately compress 500:1 and is harmless.
const RATIO_EXEMPT_BYTES: u64 = 1024 * 1024;

/// WordprocessingML namespaces: transitional (what Word, LibreOffice and pandoc write) and
/// strict ISO 29500.
const W_NS: [&str; 2] = [
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "http://purl.oclc.org/ooxml/wordprocessingml/main",
];
const MC_NS: &str = "http://schemas.openxmlformats.org/markup-compatibility/2006";
const DC_NS: &str = "http://purl.org/dc/elements/1.1/";

/// Parses a DOCX file into headings, paragraphs and table rows, seeing the deadline of
/// `budget` between parts and XML events.
pub fn parse(bytes: &[u8], limits: &Limits, budget: &Budget) -> Result<ParsedDocument> {
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Err(Error::Docx(
            "this is an OLE compound file (a legacy .doc or a password-protected DOCX), not a ZIP package"
                .into(),
        ));
    }
    if let Some(entries) = declared_entry_count(bytes) {
        if entries > MAX_ZIP_ENTRIES {
            return Err(too_many_entries(entries));
        }
    }
    let mut archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| Error::Docx(format!("not a readable ZIP package: {e}")))?;
    if archive.len() as u64 > MAX_ZIP_ENTRIES {
        return Err(too_many_entries(archive.len() as u64));
    }
    let mut unzip = UnzipBudget {
        remaining: limits.max_unzipped_bytes,
        max_ratio: limits.max_zip_ratio,
    };

    let document = match read_part(&mut archive, "word/document.xml", &mut unzip)? {
        Some(xml) => xml,
        None => {
            let target = read_part(&mut archive, "_rels/.rels", &mut unzip)?
                .and_then(|rels| main_document_target(&rels))
                .ok_or_else(|| Error::Docx("no word/document.xml: not a Word document".into()))?;
            read_part(&mut archive, &target, &mut unzip)?
                .ok_or_else(|| Error::Docx(format!("main document part {target} is missing")))?
        }
    };
    let mut warnings = Vec::new();
    let styles = match read_part(&mut archive, "word/styles.xml", &mut unzip)? {
        Some(xml) => parse_styles(&xml).unwrap_or_else(|e| {
            warnings.push(format!(
                "styles.xml unreadable, heading levels guessed from style names: {e}"
            ));
            HashMap::new()
        }),
        None => HashMap::new(),
    };
    let core_title = match read_part(&mut archive, "docProps/core.xml", &mut unzip)? {
        Some(xml) => core_title(&xml).unwrap_or_else(|e| {
            warnings.push(format!("docProps/core.xml unreadable: {e}"));
            None
        }),
        None => None,
    };

    budget.check()?;
    let (mut doc, style_title) = parse_document(&document, &styles, budget)?;
    doc.title = core_title.or(style_title);
    doc.warnings.extend(warnings);
    Ok(doc)
}

fn too_many_entries(entries: u64) -> Error {
    Error::ZipBomb(format!(
        "{entries} ZIP entries, more than the {MAX_ZIP_ENTRIES} allowed"
    ))
}

/// The entry count recorded in the ZIP end-of-central-directory record, read before the
/// central directory is loaded so a million-entry archive is refused cheaply. `None` when the
/// record is not found or defers to ZIP64 (the count is then checked after opening).
fn declared_entry_count(bytes: &[u8]) -> Option<u64> {
    const EOCD_LEN: usize = 22;
    const MAX_COMMENT: usize = 0xFFFF;
    if bytes.len() < EOCD_LEN {
        return None;
    }
    let search_from = bytes.len().saturating_sub(EOCD_LEN + MAX_COMMENT);
    let tail = &bytes[search_from..];
    let pos = tail.windows(4).rposition(|w| w == b"PK\x05\x06")?;
    let record = tail.get(pos..pos + EOCD_LEN)?;
    let total = u16::from_le_bytes([record[10], record[11]]);
    (total != 0xFFFF).then_some(u64::from(total))
}

/// How many more bytes may be decompressed, and the largest tolerated ratio per member.
struct UnzipBudget {
    remaining: u64,
    max_ratio: u64,
}

/// Reads one part of the package as text, enforcing the decompression limits: first on the
/// sizes the archive declares, then on the bytes the decompressor actually produces, since
/// declared sizes are attacker-controlled.
fn read_part(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    budget: &mut UnzipBudget,
) -> Result<Option<String>> {
    let file = match archive.by_name(name) {
        Ok(f) => f,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(Error::Docx(format!("cannot open {name}: {e}"))),
    };
    let declared = file.size();
    let compressed = file.compressed_size().max(1);
    if declared > budget.remaining {
        return Err(Error::ZipBomb(format!(
            "{name} declares {declared} bytes uncompressed, over the remaining limit of {} bytes",
            budget.remaining
        )));
    }
    if declared > RATIO_EXEMPT_BYTES && declared / compressed > budget.max_ratio {
        return Err(Error::ZipBomb(format!(
            "{name} declares a compression ratio of {}:1, over the limit of {}:1",
            declared / compressed,
            budget.max_ratio
        )));
    }
    let allowed = budget.remaining.min(
        compressed
            .saturating_mul(budget.max_ratio)
            .max(RATIO_EXEMPT_BYTES),
    );
    let data = read_capped(file, allowed)
        .map_err(|e| Error::Docx(format!("cannot decompress {name}: {e}")))?
        .ok_or_else(|| {
            Error::ZipBomb(format!(
                "{name} decompresses to more than {allowed} bytes (declared {declared})"
            ))
        })?;
    budget.remaining -= data.len() as u64;
    Ok(Some(decode_xml(&data)))
}

/// Reads at most `cap` bytes; `None` if the reader had more to give.
fn read_capped(reader: impl Read, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut data)?;
    Ok((data.len() as u64 <= cap).then_some(data))
}

/// XML parts are UTF-8 or UTF-16 with a BOM (ECMA-376 Part 2 §8.1.4).
fn decode_xml(data: &[u8]) -> String {
    let (text, _, _) = encoding_rs::UTF_8.decode(data);
    text.into_owned()
}

/// The target of the package's officeDocument relationship, for packages whose main part is
/// not at the conventional `word/document.xml`.
fn main_document_target(rels: &str) -> Option<String> {
    let mut reader = NsReader::from_str(rels);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "Relationship" => {
                let rel_type = attr(&e, "Type").unwrap_or_default();
                if rel_type.ends_with("/officeDocument") {
                    return attr(&e, "Target").map(|t| t.trim_start_matches('/').to_string());
                }
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// An attribute's value by local name (`w:val` → "val"), entities resolved.
fn attr(e: &BytesStart<'_>, local: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .map(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| a.value.clone().into_owned())
        })
}

fn is_w(ns: &ResolveResult<'_>) -> bool {
    matches!(ns, ResolveResult::Bound(n) if W_NS.contains(&n.as_ref()))
}

fn resolve_entity(r: &BytesRef<'_>) -> Option<String> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Some(c.to_string());
    }
    quick_xml::escape::resolve_predefined_entity(r).map(str::to_string)
}

/// What a paragraph style means for structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StyleRole {
    Title,
    Heading(u8),
}

/// Paragraph styleId → role, with `basedOn` inheritance and outline levels resolved. Names
/// are used rather than ids because ids are localised ("berschrift1" in a German Word) while
/// built-in names are always English ("heading 1").
fn parse_styles(xml: &str) -> std::result::Result<HashMap<String, StyleRole>, String> {
    struct RawStyle {
        name: Option<String>,
        based_on: Option<String>,
        outline: Option<u8>,
    }
    let mut raw: HashMap<String, RawStyle> = HashMap::new();
    let mut reader = NsReader::from_str(xml);
    let mut current: Option<(String, RawStyle)> = None;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(e) | Event::Empty(e) if is_w(&ns) => match e.local_name().as_ref() {
                "style" => {
                    if let Some((id, style)) = current.take() {
                        raw.insert(id, style);
                    }
                    let is_paragraph = attr(&e, "type").is_none_or(|t| t == "paragraph");
                    if let (true, Some(id)) = (is_paragraph, attr(&e, "styleId")) {
                        current = Some((
                            id,
                            RawStyle {
                                name: None,
                                based_on: None,
                                outline: None,
                            },
                        ));
                    }
                }
                "name" => {
                    if let Some((_, s)) = current.as_mut() {
                        s.name = attr(&e, "val");
                    }
                }
                "basedOn" => {
                    if let Some((_, s)) = current.as_mut() {
                        s.based_on = attr(&e, "val");
                    }
                }
                "outlineLvl" => {
                    if let Some((_, s)) = current.as_mut() {
                        s.outline = attr(&e, "val").and_then(|v| v.parse().ok());
                    }
                }
                _ => {}
            },
            Event::End(e) if is_w(&ns) && e.local_name().as_ref() == "style" => {
                if let Some((id, style)) = current.take() {
                    raw.insert(id, style);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let own_role = |s: &RawStyle| -> Option<StyleRole> {
        s.name.as_deref().and_then(role_from_name).or_else(|| {
            s.outline
                .filter(|l| *l < 9)
                .map(|l| StyleRole::Heading((l + 1).min(6)))
        })
    };
    let mut roles = HashMap::new();
    for id in raw.keys() {
        // Follow basedOn a bounded number of steps: style cycles exist in the wild.
        let mut cursor = raw.get(id);
        for _ in 0..16 {
            let Some(style) = cursor else { break };
            if let Some(role) = own_role(style) {
                roles.insert(id.clone(), role);
                break;
            }
            cursor = style.based_on.as_ref().and_then(|b| raw.get(b));
        }
    }
    Ok(roles)
}

/// "heading 3" → Heading(3), "Title" → Title (case-insensitive, as Word treats them).
fn role_from_name(name: &str) -> Option<StyleRole> {
    let lower = name.trim().to_ascii_lowercase();
    if lower == "title" {
        return Some(StyleRole::Title);
    }
    let n: u8 = lower.strip_prefix("heading")?.trim().parse().ok()?;
    (1..=9).contains(&n).then(|| StyleRole::Heading(n.min(6)))
}

/// Role of a style id when styles.xml gave none: ids written by common producers
/// ("Heading1", "heading 2", "Title").
fn role_from_id(id: &str) -> Option<StyleRole> {
    role_from_name(id).or_else(|| {
        let lower = id.to_ascii_lowercase();
        let n: u8 = lower.strip_prefix("heading")?.parse().ok()?;
        (1..=9).contains(&n).then(|| StyleRole::Heading(n.min(6)))
    })
}

fn core_title(xml: &str) -> std::result::Result<Option<String>, String> {
    let mut reader = NsReader::from_str(xml);
    let mut in_title = false;
    let mut title = String::new();
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        let is_dc = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == DC_NS);
        match event {
            Event::Start(e) if is_dc && e.local_name().as_ref() == "title" => in_title = true,
            Event::End(e) if is_dc && e.local_name().as_ref() == "title" => break,
            Event::Text(t) if in_title => title.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_title => title.extend(resolve_entity(&r)),
            Event::Eof => break,
            _ => {}
        }
    }
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok((!title.is_empty()).then_some(title))
}

/// A table row being read: finished cells and the text of the current one.
#[derive(Default)]
struct Row {
    cells: Vec<String>,
    cell: String,
}

/// Walks `word/document.xml`. Returns the document and the text of the first Title-style
/// paragraph.
fn parse_document(
    xml: &str,
    styles: &HashMap<String, StyleRole>,
    budget: &Budget,
) -> Result<(ParsedDocument, Option<String>)> {
    let mut doc = ParsedDocument::default();
    let mut reader = NsReader::from_str(xml);
    let mut title = None;
    // Paragraph nesting (text boxes put paragraphs inside a run of another paragraph).
    let mut para_depth = 0usize;
    let mut para_role: Option<StyleRole> = None;
    let mut para_text = String::new();
    let mut run_depth = 0usize;
    let mut in_text = false;
    // Inside mc:Fallback, which repeats the mc:Choice content for old readers.
    let mut fallback_depth = 0usize;
    let mut rows: Vec<Row> = Vec::new();
    let mut saw_body = false;

    loop {
        budget.tick()?;
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| Error::Docx(format!("malformed word/document.xml: {e}")))?;
        if fallback_depth > 0 {
            match event {
                Event::Start(_) => fallback_depth += 1,
                Event::End(_) => fallback_depth -= 1,
                Event::Eof => break,
                _ => {}
            }
            continue;
        }
        let w = is_w(&ns);
        match event {
            Event::Start(ref e)
                if matches!(ns, ResolveResult::Bound(n) if n.as_ref() == MC_NS)
                    && e.local_name().as_ref() == "Fallback" =>
            {
                fallback_depth = 1;
            }
            Event::Start(ref e) | Event::Empty(ref e) if w => {
                let is_empty = matches!(event, Event::Empty(_));
                match e.local_name().as_ref() {
                    "body" => saw_body = true,
                    "p" if !is_empty => {
                        if para_depth == 0 {
                            para_role = None;
                            para_text.clear();
                        } else if !para_text.ends_with(char::is_whitespace) {
                            para_text.push(' ');
                        }
                        para_depth += 1;
                    }
                    "pStyle" if para_depth == 1 && para_role.is_none() => {
                        if let Some(id) = attr(e, "val") {
                            para_role = styles.get(&id).copied().or_else(|| role_from_id(&id));
                        }
                    }
                    "outlineLvl" if para_depth == 1 && para_role.is_none() => {
                        para_role = attr(e, "val")
                            .and_then(|v| v.parse::<u8>().ok())
                            .filter(|l| *l < 9)
                            .map(|l| StyleRole::Heading((l + 1).min(6)));
                    }
                    "r" if !is_empty => run_depth += 1,
                    "t" if !is_empty && run_depth > 0 => in_text = true,
                    "tab" | "ptab" if run_depth > 0 => para_text.push('\t'),
                    "br" | "cr" if run_depth > 0 => para_text.push('\n'),
                    "noBreakHyphen" if run_depth > 0 => para_text.push('-'),
                    "tr" if !is_empty => rows.push(Row::default()),
                    "tc" if !is_empty => {
                        if let Some(row) = rows.last_mut() {
                            row.cell.clear();
                        }
                    }
                    _ => {}
                }
            }
            Event::End(ref e) if w => match e.local_name().as_ref() {
                "t" => in_text = false,
                "r" => run_depth = run_depth.saturating_sub(1),
                "p" => {
                    para_depth = para_depth.saturating_sub(1);
                    if para_depth > 0 && !para_text.ends_with(char::is_whitespace) {
                        para_text.push(' ');
                    }
                    if para_depth == 0 {
                        let text = para_text.trim();
                        if let Some(row) = rows.last_mut() {
                            if !text.is_empty() {
                                if !row.cell.is_empty() {
                                    row.cell.push(' ');
                                }
                                row.cell.push_str(text);
                            }
                        } else {
                            let kind = match para_role {
                                Some(StyleRole::Title) => {
                                    if title.is_none() && !text.is_empty() {
                                        title = Some(text.to_string());
                                    }
                                    BlockKind::Heading { level: 1 }
                                }
                                Some(StyleRole::Heading(level)) => BlockKind::Heading { level },
                                None => BlockKind::Paragraph,
                            };
                            doc.push_block(kind, text, None);
                        }
                    }
                }
                "tc" => {
                    if let Some(row) = rows.last_mut() {
                        let cell = std::mem::take(&mut row.cell);
                        row.cells
                            .push(cell.split_whitespace().collect::<Vec<_>>().join(" "));
                    }
                }
                "tr" => {
                    if let Some(row) = rows.pop() {
                        let cells: Vec<String> =
                            row.cells.into_iter().filter(|c| !c.is_empty()).collect();
                        let text = cells.join(" | ");
                        match rows.last_mut() {
                            // A nested table's row becomes part of the enclosing cell.
                            Some(outer) => {
                                if !outer.cell.is_empty() {
                                    outer.cell.push(' ');
                                }
                                outer.cell.push_str(&text);
                            }
                            None => doc.push_block(BlockKind::Paragraph, &text, None),
                        }
                    }
                }
                _ => {}
            },
            Event::Text(ref t) if in_text => para_text.push_str(&t.xml10_content()),
            Event::CData(ref t) if in_text => para_text.push_str(&t.xml10_content()),
            Event::GeneralRef(ref r) if in_text => para_text.extend(resolve_entity(r)),
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_body {
        return Err(Error::Docx("word/document.xml has no w:body".into()));
    }
    Ok((doc, title))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], limits: &Limits) -> Result<ParsedDocument> {
        super::parse(bytes, limits, &Budget::unlimited())
    }
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    const P: BlockKind = BlockKind::Paragraph;
    const fn h(level: u8) -> BlockKind {
        BlockKind::Heading { level }
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/docx")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn blocks(doc: &ParsedDocument) -> Vec<(BlockKind, &str)> {
        doc.blocks
            .iter()
            .map(|b| (b.kind, doc.block_text(b)))
            .collect()
    }

    /// A ZIP built by the `zip` crate with the given (name, content) members.
    fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        for (name, content) in members {
            w.start_file(*name, opts).unwrap();
            w.write_all(content).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn pandoc_docx_headings_lists_tables_and_title() {
        let doc = parse(&fixture("pandoc-handbook.docx"), &Limits::default()).unwrap();
        assert_eq!(doc.title.as_deref(), Some("Lore Test Handbook"));
        let b = blocks(&doc);
        assert_eq!(b[0], (h(1), "Lore Test Handbook"));
        assert!(b.contains(&(h(1), "Installation")), "{b:?}");
        assert!(b.contains(&(h(2), "Requirements")));
        assert!(b.contains(&(h(1), "Troubleshooting")));
        assert!(b.contains(&(P, "A 64-bit CPU with AVX2")));
        assert!(b.contains(&(P, "Option | Default | Meaning")));
        assert!(b.contains(&(P, "port | 8080 | TCP port to listen on")));
        assert!(b.contains(&(P, "The configuration file lives in /etc/lore/lore.toml.")));
        assert!(doc.text.contains("[server]\nport = 8080"), "{:?}", doc.text);
        assert!(doc.warnings.is_empty(), "{:?}", doc.warnings);
    }

    #[test]
    fn libreoffice_docx_tabs_breaks_tables_and_title_style() {
        let doc = parse(&fixture("libreoffice-report.docx"), &Limits::default()).unwrap();
        // core.xml has an empty dc:title, so the Title-style paragraph names the document.
        assert_eq!(doc.title.as_deref(), Some("Quarterly Maintenance Report"));
        assert_eq!(
            blocks(&doc),
            vec![
                (h(1), "Quarterly Maintenance Report"),
                (h(1), "Summary"),
                (P, "Name:\tBackup server\nStatus:\tHealthy & patched"),
                (h(2), "Disk usage"),
                (P, "Volume | Used"),
                (P, "/srv | 71 %"),
                (P, "Grüße aus Köln — Unicode survives the round trip."),
            ]
        );
    }

    #[test]
    fn zip_without_document_and_garbage_are_docx_errors() {
        assert!(matches!(
            parse(&fixture("not-a-docx.docx"), &Limits::default()),
            Err(Error::Docx(_))
        ));
        assert!(matches!(
            parse(b"definitely not a zip file", &Limits::default()),
            Err(Error::Docx(_))
        ));
        let real = fixture("pandoc-handbook.docx");
        let truncated = &real[..real.len() / 2];
        assert!(matches!(
            parse(truncated, &Limits::default()),
            Err(Error::Docx(_))
        ));
    }

    #[test]
    fn truncated_or_corrupted_packages_never_panic() {
        let real = fixture("libreoffice-report.docx");
        for cut in (0..real.len()).step_by(97) {
            let _ = parse(&real[..cut], &Limits::default());
        }
        for pos in (0..real.len()).step_by(53) {
            let mut corrupted = real.clone();
            corrupted[pos] ^= 0x5a;
            // Either a document or a typed error; a corrupted deflate stream or CRC is an error.
            if let Err(e) = parse(&corrupted, &Limits::default()) {
                assert!(matches!(e, Error::Docx(_) | Error::ZipBomb(_)), "{e:?}");
            }
        }
    }

    #[test]
    fn malformed_document_xml_is_a_docx_error() {
        let bad = zip_of(&[(
            "word/document.xml",
            br#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>x</w:r></w:p></w:body></w:document>"#,
        )]);
        match parse(&bad, &Limits::default()) {
            Err(Error::Docx(msg)) => assert!(msg.contains("malformed"), "{msg}"),
            other => panic!("expected Docx error, got {other:?}"),
        }
    }

    #[test]
    fn styles_resolve_by_name_inheritance_and_outline_level() {
        let styles = r#"<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>
<w:style w:type="paragraph" w:styleId="Custom"><w:name w:val="My Heading"/><w:basedOn w:val="berschrift1"/></w:style>
<w:style w:type="paragraph" w:styleId="Outline"><w:name w:val="Outlined"/><w:pPr><w:outlineLvl w:val="2"/></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="Loop"><w:name w:val="Loop"/><w:basedOn w:val="Loop"/></w:style>
<w:style w:type="paragraph" w:styleId="Titel"><w:name w:val="Title"/></w:style>
<w:style w:type="character" w:styleId="Heading1Char"><w:name w:val="heading 1 Char"/></w:style>
</w:styles>"#;
        let roles = parse_styles(styles).unwrap();
        assert_eq!(roles.get("berschrift1"), Some(&StyleRole::Heading(1)));
        assert_eq!(roles.get("Custom"), Some(&StyleRole::Heading(1)));
        assert_eq!(roles.get("Outline"), Some(&StyleRole::Heading(3)));
        assert_eq!(roles.get("Titel"), Some(&StyleRole::Title));
        assert_eq!(roles.get("Loop"), None);
        assert_eq!(roles.get("Heading1Char"), None);
    }

    #[test]
    fn declared_zip_bomb_is_refused() {
        // 300 MB of zeros deflate to ~300 KB: the classic bomb shape.
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .large_file(true);
        w.start_file("word/document.xml", opts).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            w.write_all(&zeros).unwrap();
        }
        let bomb = w.finish().unwrap().into_inner();
        assert!(bomb.len() < 2 << 20, "bomb is {} bytes", bomb.len());
        match parse(&bomb, &Limits::default()) {
            Err(Error::ZipBomb(msg)) => assert!(msg.contains("word/document.xml"), "{msg}"),
            other => panic!("expected ZipBomb, got {other:?}"),
        }
    }

    #[test]
    fn compression_ratio_limit_applies_below_the_size_limit() {
        let zeros = vec![b' '; 8 << 20];
        let bomb = zip_of(&[("word/document.xml", &zeros)]);
        let limits = Limits {
            max_unzipped_bytes: 1 << 30,
            ..Limits::default()
        };
        match parse(&bomb, &limits) {
            Err(Error::ZipBomb(msg)) => assert!(msg.contains("ratio"), "{msg}"),
            other => panic!("expected ZipBomb, got {other:?}"),
        }
    }

    #[test]
    fn actual_decompressed_bytes_are_capped_whatever_the_header_says() {
        let endless = std::io::repeat(b'x').take(10_000);
        assert_eq!(read_capped(endless, 4096).unwrap(), None);
        let small = std::io::repeat(b'x').take(4096);
        assert_eq!(
            read_capped(small, 4096).unwrap().map(|d| d.len()),
            Some(4096)
        );
    }

    #[test]
    fn too_many_entries_is_a_zip_bomb() {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        for i in 0..=MAX_ZIP_ENTRIES {
            w.start_file(format!("m/{i}"), opts).unwrap();
        }
        let many = w.finish().unwrap().into_inner();
        assert!(matches!(
            parse(&many, &Limits::default()),
            Err(Error::ZipBomb(_))
        ));
    }

    #[test]
    fn text_boxes_fallbacks_and_tab_stops_do_not_duplicate_or_leak() {
        let xml = r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"><w:body>
<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t xml:space="preserve">Before </w:t></w:r>
<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><w:txbxContent><w:p><w:r><w:t>boxed</w:t></w:r></w:p></w:txbxContent></w:drawing></mc:Choice>
<mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>boxed</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent></w:r>
<w:r><w:t>after &amp; &#169;</w:t></w:r><w:r><w:instrText>PAGE</w:instrText><w:delText>deleted</w:delText></w:r></w:p>
</w:body></w:document>"#;
        let (doc, _) = parse_document(xml, &HashMap::new(), &Budget::unlimited()).unwrap();
        assert_eq!(doc.text, "Before boxed after & ©");
    }
}
