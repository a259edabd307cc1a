//! Content-stream interpreter for text: runs a page's operators (graphics state, text state,
//! text-showing operators, Form XObjects) and records every shown glyph with its position in
//! default user space, its font size and its Unicode text.
//!
//! Every operation run, glyph shown and content byte decoded is charged to the document's
//! [`Budget`]: Form XObjects may draw each other many times over, so the work is not bounded
//! by the file's size, and an exhausted budget stops the document with its error.

use super::font::{deref, number, Font};
use crate::{Budget, Result};
use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId};
use std::collections::HashMap;
use std::rc::Rc;

/// Form XObjects nested deeper than this are ignored (real documents use 1–3 levels).
const MAX_FORM_DEPTH: usize = 12;
/// Glyphs recorded per page at most; beyond it a page is surely not prose.
const MAX_GLYPHS_PER_PAGE: usize = 500_000;
/// Largest decompressed content stream accepted.
pub(super) const MAX_STREAM_BYTES: usize = 64 * 1024 * 1024;
/// Content-stream bytes that cost one work unit to decode (an operation is ~10–20 bytes).
pub const CONTENT_BYTES_PER_UNIT: u64 = 16;
/// What the budget's error names when the work runs out.
const WORK: &str = "PDF content work (operations run, glyphs shown, content bytes decoded)";

/// A glyph placed on the page.
#[derive(Debug, Clone)]
pub(super) struct Glyph {
    /// Baseline origin in default user space (y grows upwards).
    pub x: f32,
    pub y: f32,
    /// Where the glyph's advance ends (x).
    pub x_end: f32,
    /// Effective font size in user space units.
    pub size: f32,
    pub bold: bool,
    /// Byte range of the glyph's text in [`PageGlyphs::text`].
    pub start: u32,
    pub end: u32,
}

/// Every glyph of one page, in content-stream order.
#[derive(Debug, Default)]
pub(super) struct PageGlyphs {
    pub glyphs: Vec<Glyph>,
    pub text: String,
}

impl PageGlyphs {
    pub fn glyph_text(&self, g: &Glyph) -> &str {
        &self.text[g.start as usize..g.end as usize]
    }
}

/// Fonts already loaded, shared across pages (documents reuse font objects everywhere).
/// Fonts written inline in a resource dictionary are keyed by the dictionary's address, which
/// is stable while the document is borrowed: without that, every `Tf` naming one would parse
/// its ToUnicode CMap again.
#[derive(Default)]
pub(super) struct FontCache {
    by_id: HashMap<ObjectId, Rc<Font>>,
    inline: HashMap<*const Dictionary, Rc<Font>>,
}

type Matrix = [f32; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

/// `a × b` for PDF's row-vector affine matrices.
fn multiply(a: &Matrix, b: &Matrix) -> Matrix {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]
}

#[derive(Clone)]
struct GraphicsState {
    ctm: Matrix,
    font: Option<Rc<Font>>,
    font_size: f32,
    char_spacing: f32,
    word_spacing: f32,
    horizontal_scale: f32,
    leading: f32,
    rise: f32,
}

impl GraphicsState {
    fn new(ctm: Matrix) -> Self {
        GraphicsState {
            ctm,
            font: None,
            font_size: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            horizontal_scale: 1.0,
            leading: 0.0,
            rise: 0.0,
        }
    }
}

/// Extracts the glyphs of one page, charging the work to `budget`.
pub(super) fn page_glyphs(
    doc: &Document,
    page_id: ObjectId,
    fonts: &mut FontCache,
    budget: &Budget,
) -> Result<PageGlyphs> {
    let mut out = PageGlyphs::default();
    let Ok(page) = doc.get_dictionary(page_id) else {
        return Ok(out);
    };
    let resources = inherited(doc, page, b"Resources");
    let content = page_content(doc, page);
    budget.spend(content_units(&content), WORK)?;
    let mut run = Interpreter {
        doc,
        fonts,
        out: &mut out,
        form_stack: Vec::new(),
        budget,
        stopped: None,
    };
    run.execute(&content, resources, GraphicsState::new(IDENTITY));
    match run.stopped {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn content_units(content: &[u8]) -> u64 {
    content.len() as u64 / CONTENT_BYTES_PER_UNIT
}

/// A page attribute, looked up through the /Parent chain for inheritable ones.
fn inherited<'a>(doc: &'a Document, page: &'a Dictionary, key: &[u8]) -> Option<&'a Dictionary> {
    let mut node = page;
    for _ in 0..32 {
        if let Some(d) = deref(doc, node.get(key).ok()).and_then(|o| o.as_dict().ok()) {
            return Some(d);
        }
        node = deref(doc, node.get(b"Parent").ok()).and_then(|o| o.as_dict().ok())?;
    }
    None
}

fn page_content(doc: &Document, page: &Dictionary) -> Vec<u8> {
    let mut data = Vec::new();
    let streams: Vec<&Object> = match deref(doc, page.get(b"Contents").ok()) {
        Some(Object::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    };
    for s in streams {
        if let Some(Object::Stream(stream)) = deref(doc, Some(s)) {
            if let Some(bytes) = stream_bytes(stream) {
                if data.len() + bytes.len() > MAX_STREAM_BYTES {
                    break;
                }
                data.extend_from_slice(&bytes);
                data.push(b'\n');
            }
        }
    }
    data
}

fn stream_bytes(stream: &lopdf::Stream) -> Option<Vec<u8>> {
    if stream.dict.get(b"Filter").is_ok() {
        stream
            .decompressed_content_with_limit(MAX_STREAM_BYTES)
            .ok()
    } else {
        Some(stream.content.clone())
    }
}

struct Interpreter<'a, 'o> {
    doc: &'a Document,
    fonts: &'o mut FontCache,
    out: &'o mut PageGlyphs,
    form_stack: Vec<ObjectId>,
    budget: &'o Budget,
    /// Why interpretation stopped early (budget or deadline), ending every level of forms.
    stopped: Option<crate::Error>,
}

impl<'a> Interpreter<'a, '_> {
    fn execute(
        &mut self,
        content: &[u8],
        resources: Option<&'a Dictionary>,
        initial: GraphicsState,
    ) {
        let mut state = initial;
        let mut saved: Vec<GraphicsState> = Vec::new();
        let mut text_matrix = IDENTITY;
        let mut line_matrix = IDENTITY;
        for op in Content::decode_iter(content) {
            let Ok(op) = op else { break };
            if self.out.glyphs.len() >= MAX_GLYPHS_PER_PAGE || self.stopped.is_some() {
                break;
            }
            if let Err(e) = self.budget.spend(1, WORK) {
                self.stopped = Some(e);
                break;
            }
            let operands = &op.operands;
            let num = |i: usize| {
                operands
                    .get(i)
                    .and_then(|o| number(self.doc, o))
                    .unwrap_or(0.0)
            };
            match op.operator.as_str() {
                "q" if saved.len() < 256 => saved.push(state.clone()),
                "Q" => {
                    if let Some(s) = saved.pop() {
                        state = s;
                    }
                }
                "cm" if operands.len() == 6 => {
                    let m = [num(0), num(1), num(2), num(3), num(4), num(5)];
                    state.ctm = multiply(&m, &state.ctm);
                }
                "BT" => {
                    text_matrix = IDENTITY;
                    line_matrix = IDENTITY;
                }
                "Tf" => {
                    state.font_size = num(1);
                    state.font = operands
                        .first()
                        .and_then(|o| o.as_name().ok())
                        .and_then(|name| self.font(resources, name));
                }
                "Tc" => state.char_spacing = num(0),
                "Tw" => state.word_spacing = num(0),
                "Tz" => state.horizontal_scale = num(0) / 100.0,
                "TL" => state.leading = num(0),
                "Ts" => state.rise = num(0),
                "Td" => {
                    line_matrix = multiply(&[1.0, 0.0, 0.0, 1.0, num(0), num(1)], &line_matrix);
                    text_matrix = line_matrix;
                }
                "TD" => {
                    state.leading = -num(1);
                    line_matrix = multiply(&[1.0, 0.0, 0.0, 1.0, num(0), num(1)], &line_matrix);
                    text_matrix = line_matrix;
                }
                "Tm" if operands.len() == 6 => {
                    line_matrix = [num(0), num(1), num(2), num(3), num(4), num(5)];
                    text_matrix = line_matrix;
                }
                "T*" => {
                    line_matrix =
                        multiply(&[1.0, 0.0, 0.0, 1.0, 0.0, -state.leading], &line_matrix);
                    text_matrix = line_matrix;
                }
                "Tj" => {
                    if let Some(Object::String(bytes, _)) = operands.first() {
                        self.show(bytes, &state, &mut text_matrix);
                    }
                }
                "'" => {
                    line_matrix =
                        multiply(&[1.0, 0.0, 0.0, 1.0, 0.0, -state.leading], &line_matrix);
                    text_matrix = line_matrix;
                    if let Some(Object::String(bytes, _)) = operands.first() {
                        self.show(bytes, &state, &mut text_matrix);
                    }
                }
                "\"" => {
                    state.word_spacing = num(0);
                    state.char_spacing = num(1);
                    line_matrix =
                        multiply(&[1.0, 0.0, 0.0, 1.0, 0.0, -state.leading], &line_matrix);
                    text_matrix = line_matrix;
                    if let Some(Object::String(bytes, _)) = operands.get(2) {
                        self.show(bytes, &state, &mut text_matrix);
                    }
                }
                "TJ" => {
                    if let Some(Object::Array(items)) = operands.first() {
                        for item in items {
                            match item {
                                Object::String(bytes, _) => {
                                    self.show(bytes, &state, &mut text_matrix)
                                }
                                other => {
                                    if let Some(adjust) = number(self.doc, other) {
                                        let tx = -adjust / 1000.0
                                            * state.font_size
                                            * state.horizontal_scale;
                                        translate_text(&mut text_matrix, tx);
                                    }
                                }
                            }
                        }
                    }
                }
                "Do" => {
                    if let Some(name) = operands.first().and_then(|o| o.as_name().ok()) {
                        self.form(resources, name, &state);
                    }
                }
                _ => {}
            }
        }
    }

    fn font(&mut self, resources: Option<&'a Dictionary>, name: &[u8]) -> Option<Rc<Font>> {
        let fonts = deref(self.doc, resources?.get(b"Font").ok())?
            .as_dict()
            .ok()?;
        let entry = fonts.get(name).ok()?;
        let (dict, cached) = match entry {
            Object::Reference(id) => (
                self.doc.get_dictionary(*id).ok()?,
                self.fonts.by_id.get(id).cloned(),
            ),
            Object::Dictionary(dict) => (dict, self.fonts.inline.get(&(dict as *const _)).cloned()),
            _ => return None,
        };
        if cached.is_some() {
            return cached;
        }
        let font = Rc::new(Font::load(self.doc, dict));
        // Many fonts may share one huge CMap stream: each load decodes it again.
        if let Err(e) = self
            .budget
            .spend(font.cmap_bytes as u64 / CONTENT_BYTES_PER_UNIT, WORK)
        {
            self.stopped = Some(e);
            return None;
        }
        match entry {
            Object::Reference(id) => self.fonts.by_id.insert(*id, font.clone()),
            _ => self.fonts.inline.insert(dict, font.clone()),
        };
        Some(font)
    }

    fn form(&mut self, resources: Option<&'a Dictionary>, name: &[u8], state: &GraphicsState) {
        if self.form_stack.len() >= MAX_FORM_DEPTH {
            return;
        }
        let Some(xobjects) = resources
            .and_then(|r| deref(self.doc, r.get(b"XObject").ok()))
            .and_then(|o| o.as_dict().ok())
        else {
            return;
        };
        let Ok(Object::Reference(id)) = xobjects.get(name) else {
            return;
        };
        if self.form_stack.contains(id) {
            return;
        }
        let Ok(Object::Stream(stream)) = self.doc.get_object(*id) else {
            return;
        };
        if stream.dict.get(b"Subtype").and_then(|o| o.as_name()).ok() != Some(b"Form".as_slice()) {
            return;
        }
        let Some(content) = stream_bytes(stream) else {
            return;
        };
        // Drawing a form costs its decoding again each time: that is the multiplying path.
        if let Err(e) = self.budget.spend(1 + content_units(&content), WORK) {
            self.stopped = Some(e);
            return;
        }
        let matrix = deref(self.doc, stream.dict.get(b"Matrix").ok())
            .and_then(|o| o.as_array().ok())
            .filter(|a| a.len() == 6)
            .map(|a| {
                let mut m = IDENTITY;
                for (slot, v) in m.iter_mut().zip(a) {
                    *slot = number(self.doc, v).unwrap_or(0.0);
                }
                m
            })
            .unwrap_or(IDENTITY);
        let form_resources = deref(self.doc, stream.dict.get(b"Resources").ok())
            .and_then(|o| o.as_dict().ok())
            .or(resources);
        let mut inner = state.clone();
        inner.ctm = multiply(&matrix, &state.ctm);
        self.form_stack.push(*id);
        self.execute(&content, form_resources, inner);
        self.form_stack.pop();
    }

    fn show(&mut self, bytes: &[u8], state: &GraphicsState, text_matrix: &mut Matrix) {
        let Some(font) = state.font.clone() else {
            return;
        };
        // A byte is at most one glyph; charged up front so one huge string cannot escape.
        if let Err(e) = self.budget.spend(bytes.len() as u64, WORK) {
            self.stopped = Some(e);
            return;
        }
        let font_size = state.font_size;
        let scale_h = state.horizontal_scale;
        font.decode(bytes, |glyph| {
            let m = multiply(text_matrix, &state.ctm);
            let x = state.rise * m[2] + m[4];
            let y = state.rise * m[3] + m[5];
            let size = (font_size * (m[2] * m[2] + m[3] * m[3]).sqrt() * font.size_scale).abs();
            // The glyph's own extent excludes character spacing: some producers (groff via
            // ghostscript) set word spaces with Tc and cancel it inside words with TJ kerns.
            let visible = glyph.width * font_size * scale_h;
            let mut advance = glyph.width * font_size + state.char_spacing;
            if glyph.is_word_space_code {
                advance += state.word_spacing;
            }
            let tx = advance * scale_h;
            // A space's extent is its whole advance: some producers show a space with a
            // negative word spacing just to nudge the next glyph, which is no word break.
            let is_space = glyph.text == " ";
            let x_end = x + if is_space { tx } else { visible } * m[0];
            translate_text(text_matrix, tx);
            if glyph.text.is_empty() || !x.is_finite() || !y.is_finite() || !size.is_finite() {
                return;
            }
            let start = self.out.text.len() as u32;
            self.out.text.push_str(glyph.text);
            self.out.glyphs.push(Glyph {
                x,
                y,
                x_end,
                size,
                bold: font.bold,
                start,
                end: self.out.text.len() as u32,
            });
        });
    }
}

fn translate_text(m: &mut Matrix, tx: f32) {
    m[4] += tx * m[0];
    m[5] += tx * m[1];
}
