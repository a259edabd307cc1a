//! Generators for hostile inputs: documents whose parsing cost grows faster than their size.
//! They are produced at test time (the PDF by lopdf's writer) rather than committed as bytes,
//! so the size of each attack is a parameter. Shared by the `hostile_inputs` test and the
//! `hostile-inputs` timing example.

#![allow(dead_code)] // each user takes the generators it needs

use lopdf::{dictionary, Document, Object, Stream};

/// `<div>` nested `depth` deep around one sentence (2.2 MB at 200 000).
pub fn nested_html(tag: &str, depth: usize) -> Vec<u8> {
    let mut out = String::with_capacity(depth * (2 * tag.len() + 5) + 100);
    out.push_str("<!DOCTYPE html><html><head><title>Nested</title></head><body>\n");
    for _ in 0..depth {
        out.push('<');
        out.push_str(tag);
        out.push('>');
    }
    out.push_str("The innermost sentence survives.");
    for _ in 0..depth {
        out.push_str("</");
        out.push_str(tag);
        out.push('>');
    }
    out.push_str("\n<p>A paragraph after the nesting.</p></body></html>\n");
    out.into_bytes()
}

/// A one-page PDF whose page draws Form XObject 0, and whose form `i` draws form `i + 1`
/// `fanout` times, `depth` forms deep: `fanout^depth` form invocations for a file of a few
/// KB. The page also shows one line of text, so the document is not text-less.
pub fn form_bomb_pdf(depth: usize, fanout: usize) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
    });
    // Built from the innermost form outwards so each knows its successor's id.
    let mut next: Option<lopdf::ObjectId> = None;
    for level in (0..depth).rev() {
        let mut content = String::new();
        let mut resources = lopdf::Dictionary::new();
        match next {
            Some(inner) => {
                for i in 0..fanout {
                    content.push_str(&format!("q 1 0 0 1 {i} 0 cm /X Do Q\n"));
                }
                resources.set("XObject", dictionary! { "X" => inner });
            }
            None => content.push_str("0 0 m 10 10 l S\n"),
        }
        let dict = dictionary! {
            "Type" => "XObject",
            "Subtype" => "Form",
            "BBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            "Resources" => resources,
            "Name" => Object::Name(format!("F{level}").into_bytes()),
        };
        next = Some(doc.add_object(Stream::new(dict, content.into_bytes())));
    }
    let mut page_content =
        String::from("BT /F1 12 Tf 72 720 Td (A page that draws a form bomb.) Tj ET\n");
    let mut xobjects = lopdf::Dictionary::new();
    if let Some(first) = next {
        page_content.push_str("/X Do\n");
        xobjects.set("X", first);
    }
    let content_id = doc.add_object(Stream::new(dictionary! {}, page_content.into_bytes()));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content_id,
        "Resources" => dictionary! {
            "Font" => dictionary! { "F1" => font_id },
            "XObject" => xobjects,
        },
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => vec![page_id.into()],
            "Count" => 1,
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out)
        .expect("writing to memory cannot fail");
    out
}

/// Block formatting elements left open inside `<div>`s that close them: html5ever keeps each
/// `<b>` in its list of active formatting elements (distinct attributes defeat the
/// "Noah's Ark" limit of three) and re-opens all of them at every new one: `n²` elements.
pub fn reopened_formatting_html(n: usize) -> Vec<u8> {
    let mut out = String::from("<!DOCTYPE html><html><body>\n");
    for i in 0..n {
        out.push_str(&format!("<div><b id=b{i}>w{i} </div>"));
    }
    out.push_str("<p>The end.</p></body></html>\n");
    out.into_bytes()
}

/// Markdown of `depth` nested block quotes, or list items (line `k` carries `k` markers, so
/// the size grows with the square of the depth: 50 MB at 10 000 quotes).
pub fn nested_markdown(marker: &str, depth: usize) -> Vec<u8> {
    let mut out = String::new();
    for level in 0..depth {
        if marker == "-" {
            out.push_str(&"  ".repeat(level));
            out.push_str("- item\n");
        } else {
            out.push_str(&marker.repeat(level + 1));
            out.push_str(" quote\n");
        }
    }
    out.push_str("\nThe last paragraph.\n");
    out.into_bytes()
}

/// Markdown inline syntax that never closes: `n` copies of `unit` on one line.
pub fn unclosed_markdown_inline(unit: &str, n: usize) -> Vec<u8> {
    format!("Start {} end.\n", unit.repeat(n)).into_bytes()
}

/// A DOCX whose `word/document.xml` nests `depth` elements (paragraphs in runs in
/// paragraphs, the text-box shape) around one sentence, built with the `zip` crate.
pub fn nested_docx(depth: usize) -> Vec<u8> {
    use std::io::Write;
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>",
    );
    for _ in 0..depth {
        xml.push_str("<w:p><w:r>");
    }
    xml.push_str("<w:t>The innermost sentence survives.</w:t>");
    for _ in 0..depth {
        xml.push_str("</w:r></w:p>");
    }
    xml.push_str("</w:body></w:document>");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("word/document.xml", options)
        .expect("in-memory zip");
    zip.write_all(xml.as_bytes()).expect("in-memory zip");
    zip.finish().expect("in-memory zip").into_inner()
}

/// Plain text of `lines` lines of `width` characters without a blank line between them.
pub fn one_paragraph_text(lines: usize, width: usize) -> Vec<u8> {
    let line = format!("{}\n", "word ".repeat(width / 5));
    line.repeat(lines).into_bytes()
}
