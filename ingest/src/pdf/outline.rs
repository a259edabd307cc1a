//! The document outline (bookmarks): titles with their nesting depth and the page each one
//! points to, resolving explicit destinations, named destinations (/Dests dictionary and the
//! /Names name tree) and GoTo actions.

use super::font::deref;
use lopdf::{Dictionary, Document, Object, ObjectId};
use std::collections::{HashMap, HashSet};

/// Outline items read at most (guards against hostile or cyclic outlines).
const MAX_ENTRIES: usize = 20_000;
const MAX_DEPTH: u8 = 16;

/// One outline item that leads to a page.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub title: String,
    /// 1-based page number.
    pub page: u32,
    /// 0 for top-level items.
    pub depth: u8,
}

/// Reads the outline; an absent or unreadable outline yields no entries.
pub(super) fn read(doc: &Document, page_numbers: &HashMap<ObjectId, u32>) -> Vec<Entry> {
    let Ok(catalog) = doc.catalog() else {
        return Vec::new();
    };
    let Some(root) = deref(doc, catalog.get(b"Outlines").ok()).and_then(|o| o.as_dict().ok())
    else {
        return Vec::new();
    };
    let mut reader = Reader {
        doc,
        page_numbers,
        named: None,
        catalog,
        seen: HashSet::new(),
        out: Vec::new(),
    };
    reader.walk(root.get(b"First").ok(), 0);
    reader.out
}

struct Reader<'a> {
    doc: &'a Document,
    page_numbers: &'a HashMap<ObjectId, u32>,
    catalog: &'a Dictionary,
    /// Named destinations, built on first use.
    named: Option<HashMap<Vec<u8>, &'a Object>>,
    seen: HashSet<ObjectId>,
    out: Vec<Entry>,
}

impl<'a> Reader<'a> {
    fn walk(&mut self, first: Option<&'a Object>, depth: u8) {
        let mut next = first;
        while let Some(Object::Reference(id)) = next {
            if depth > MAX_DEPTH || self.out.len() >= MAX_ENTRIES || !self.seen.insert(*id) {
                return;
            }
            let Ok(item) = self.doc.get_dictionary(*id) else {
                return;
            };
            let title = deref(self.doc, item.get(b"Title").ok())
                .and_then(|t| lopdf::decode_text_string(t).ok())
                .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "));
            if let (Some(title), Some(page)) = (title, self.item_page(item)) {
                self.out.push(Entry { title, page, depth });
            }
            self.walk(item.get(b"First").ok(), depth + 1);
            next = item.get(b"Next").ok();
        }
    }

    fn item_page(&mut self, item: &'a Dictionary) -> Option<u32> {
        if let Ok(dest) = item.get(b"Dest") {
            return self.dest_page(dest, 0);
        }
        let action = deref(self.doc, item.get(b"A").ok())?.as_dict().ok()?;
        if action.get(b"S").and_then(|s| s.as_name()).ok() != Some(b"GoTo".as_slice()) {
            return None;
        }
        self.dest_page(action.get(b"D").ok()?, 0)
    }

    fn dest_page(&mut self, dest: &'a Object, hops: u8) -> Option<u32> {
        if hops > 4 {
            return None;
        }
        match deref(self.doc, Some(dest))? {
            Object::Array(items) => match items.first()? {
                Object::Reference(page) => self.page_numbers.get(page).copied(),
                // Remote-style destinations give a 0-based page index.
                Object::Integer(i) => u32::try_from(*i).ok().map(|i| i + 1),
                _ => None,
            },
            Object::Dictionary(d) => self.dest_page(d.get(b"D").ok()?, hops + 1),
            Object::Name(name) | Object::String(name, _) => {
                let target = *self.named_destinations().get(name.as_slice())?;
                self.dest_page(target, hops + 1)
            }
            _ => None,
        }
    }

    fn named_destinations(&mut self) -> &HashMap<Vec<u8>, &'a Object> {
        if self.named.is_none() {
            let mut map = HashMap::new();
            if let Some(dests) =
                deref(self.doc, self.catalog.get(b"Dests").ok()).and_then(|o| o.as_dict().ok())
            {
                for (k, v) in dests.iter() {
                    map.insert(k.clone(), v);
                }
            }
            let tree = deref(self.doc, self.catalog.get(b"Names").ok())
                .and_then(|o| o.as_dict().ok())
                .and_then(|n| deref(self.doc, n.get(b"Dests").ok()));
            if let Some(tree) = tree {
                let mut visited = HashSet::new();
                collect_name_tree(self.doc, tree, 0, &mut visited, &mut map);
            }
            self.named = Some(map);
        }
        self.named.get_or_insert_with(HashMap::new)
    }
}

fn collect_name_tree<'a>(
    doc: &'a Document,
    node: &'a Object,
    depth: u8,
    visited: &mut HashSet<ObjectId>,
    map: &mut HashMap<Vec<u8>, &'a Object>,
) {
    if depth > 32 || map.len() > 1_000_000 {
        return;
    }
    if let Object::Reference(id) = node {
        if !visited.insert(*id) {
            return;
        }
    }
    let Some(dict) = deref(doc, Some(node)).and_then(|o| o.as_dict().ok()) else {
        return;
    };
    if let Some(names) = deref(doc, dict.get(b"Names").ok()).and_then(|o| o.as_array().ok()) {
        for pair in names.chunks(2) {
            if let [key, value] = pair {
                if let Some(Object::String(k, _)) = deref(doc, Some(key)) {
                    map.insert(k.clone(), value);
                }
            }
        }
    }
    if let Some(kids) = deref(doc, dict.get(b"Kids").ok()).and_then(|o| o.as_array().ok()) {
        for kid in kids {
            collect_name_tree(doc, kid, depth + 1, visited, map);
        }
    }
}
