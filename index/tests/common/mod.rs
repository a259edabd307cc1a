//! Shared fixtures for the integration tests and the benchmark example: a deterministic
//! PRNG, clustered unit vectors, Zipf-distributed word texts, and record builders.
#![allow(dead_code)]

use lore_index::{Batch, ChunkRecord, DocumentRecord, NewChunk};

/// splitmix64: tiny, deterministic, good enough for synthetic data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Approximately standard normal (sum of uniforms).
    pub fn gauss(&mut self) -> f32 {
        (0..4).map(|_| self.unit()).sum::<f32>() * 1.732 - 3.464
    }
}

pub fn normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// `n` unit vectors around `clusters` random centres (spread controls cluster width).
pub fn clustered_vectors(
    n: usize,
    dim: usize,
    clusters: usize,
    spread: f32,
    seed: u64,
) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| {
            let mut c: Vec<f32> = (0..dim).map(|_| rng.gauss()).collect();
            normalize(&mut c);
            c
        })
        .collect();
    (0..n)
        .map(|_| {
            let centre = &centres[rng.below(clusters)];
            let mut v: Vec<f32> = centre
                .iter()
                .map(|c| c + spread * rng.gauss() / (dim as f32).sqrt())
                .collect();
            normalize(&mut v);
            v
        })
        .collect()
}

/// Exact top-k by cosine (vectors are unit length): the ground truth for recall.
pub fn exact_top_k(vectors: &[Vec<f32>], query: &[f32], k: usize) -> Vec<usize> {
    let mut scored: Vec<(usize, f32)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i, v.iter().zip(query).map(|(a, b)| a * b).sum()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored.into_iter().map(|(i, _)| i).collect()
}

/// A vocabulary of pronounceable pseudo-words sampled with Zipf(1) frequencies.
pub struct ZipfWords {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl ZipfWords {
    pub fn new(size: usize, rng: &mut Rng) -> ZipfWords {
        const SYLLABLES: [&str; 16] = [
            "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qui", "dor", "len", "mar",
            "ost", "bel",
        ];
        let mut words = Vec::with_capacity(size);
        let mut seen = std::collections::HashSet::new();
        while words.len() < size {
            let syllables = 2 + rng.below(3);
            let word: String = (0..syllables).map(|_| SYLLABLES[rng.below(16)]).collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=size)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        ZipfWords { words, cumulative }
    }
    pub fn word(&self, rng: &mut Rng) -> &str {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let target = rng.unit() as f64 * total;
        let index = self.cumulative.partition_point(|&c| c < target);
        &self.words[index.min(self.words.len() - 1)]
    }
    pub fn text(&self, words: usize, rng: &mut Rng) -> String {
        (0..words)
            .map(|_| self.word(rng))
            .collect::<Vec<_>>()
            .join(" ")
    }
    /// The rank-th most frequent word (0 = most frequent).
    pub fn ranked(&self, rank: usize) -> &str {
        &self.words[rank]
    }
}

pub fn document(doc_id: &str, collection: &str, chunks: u32) -> DocumentRecord {
    DocumentRecord {
        doc_id: doc_id.to_string(),
        path: format!("/data/{collection}/{doc_id}"),
        collection: collection.to_string(),
        title: format!("Title of {doc_id}"),
        format: "text".into(),
        content_hash: format!("hash-{doc_id}"),
        pages: None,
        chunks,
        bytes: 1000,
        ingested_at: 1_700_000_000,
        warnings: vec![],
        source: None,
    }
}

pub fn chunk(doc: &DocumentRecord, ordinal: u32, text: &str, vector: Vec<f32>) -> NewChunk {
    NewChunk {
        record: ChunkRecord {
            doc_id: doc.doc_id.clone(),
            path: doc.path.clone(),
            collection: doc.collection.clone(),
            title: doc.title.clone(),
            heading: Some(format!("Section {ordinal}")),
            text: text.to_string(),
            page_start: Some(ordinal + 1),
            page_end: Some(ordinal + 1),
            char_start: u64::from(ordinal) * 100,
            char_end: u64::from(ordinal) * 100 + text.len() as u64,
            ordinal,
        },
        vector,
    }
}

/// New documents per generation batch.
pub const GENERATION_DOCS: usize = 3;

/// Batch `b` of a writer that commits generations (the crash and read-only tests): three
/// new documents with (b % 5) + 1 chunks, a replacement of the "shared"
/// document with (b % 7) + 1 chunks tagged gen{b}, the progress marker, and removal of the
/// documents of batch b - 2. So a committed state at progress p holds exactly batches p-1 and p.
pub fn generation_batch(b: u64, vectors: &[Vec<f32>]) -> Batch {
    let mut vector_index = (b as usize * 31) % vectors.len();
    let mut next_vector = || {
        vector_index = (vector_index + 1) % vectors.len();
        vectors[vector_index].clone()
    };
    let mut upserts = Vec::new();
    for i in 0..GENERATION_DOCS {
        let n = (b % 5) as u32 + 1;
        let doc = document(&format!("b{b}-{i}"), "batches", n);
        let chunks = (0..n)
            .map(|c| {
                chunk(
                    &doc,
                    c,
                    &format!("batch{b} doc{i} chunk{c} filler words"),
                    next_vector(),
                )
            })
            .collect();
        upserts.push((doc, chunks));
    }
    let n = (b % 7) as u32 + 1;
    let shared = document("shared", "shared", n);
    let chunks = (0..n)
        .map(|c| chunk(&shared, c, &format!("gen{b} shared part{c}"), next_vector()))
        .collect();
    upserts.push((shared, chunks));
    let mut progress = document("progress", "meta", 1);
    progress.content_hash = b.to_string();
    let marker = vec![chunk(
        &progress,
        0,
        &format!("progress gen{b}"),
        next_vector(),
    )];
    upserts.push((progress, marker));
    let removals = match b.checked_sub(2) {
        Some(old) => (0..GENERATION_DOCS)
            .map(|i| format!("b{old}-{i}"))
            .collect(),
        None => vec![],
    };
    Batch {
        upserts,
        removals,
        failures: Vec::new(),
    }
}
