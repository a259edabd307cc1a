//! The matmul against references: candle's dequantized weights times f32 activations, candle's
//! own quantized matmul, and the scalar kernels for every instruction set; plus the ignored
//! benchmarks (`cargo test -p lore-llm --lib -- --ignored --nocapture bench_`).

use super::*;
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

/// Deterministic pseudo-random values in [-1, 1) (xorshift).
pub(super) fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Case {
    q: QTensor,
    mat: QMatrix,
    /// candle's dequantized matrix, rows × cols.
    w: Vec<f32>,
}

fn make(dtype: GgmlDType, rows: usize, cols: usize, seed: u64) -> Case {
    // Rows with different magnitudes (and an offset) so scales and mins vary.
    let mut data = rand_vec(rows * cols, seed);
    for (r, row) in data.chunks_mut(cols).enumerate() {
        let g = 0.2 + (r % 7) as f32 * 0.3;
        for (i, v) in row.iter_mut().enumerate() {
            *v = *v * g + if i % 64 < 32 { 0.05 } else { -0.1 };
        }
    }
    let t = Tensor::from_vec(data, (rows, cols), &Device::Cpu).expect("tensor");
    let q = QTensor::quantize(&t, dtype).expect("quantize");
    let raw = q.data().expect("raw bytes");
    let mat = QMatrix::from_ggml(dtype, &raw, rows, cols).expect("from_ggml");
    let w = q
        .dequantize(&Device::Cpu)
        .expect("dequantize")
        .flatten_all()
        .expect("flatten")
        .to_vec1::<f32>()
        .expect("to_vec");
    Case { q, mat, w }
}

fn reference(w: &[f32], x: &[f32], rows: usize, cols: usize, n: usize) -> Vec<f32> {
    let mut y = vec![0f32; n * rows];
    for t in 0..n {
        for r in 0..rows {
            y[t * rows + r] = (0..cols)
                .map(|i| w[r * cols + i] as f64 * x[t * cols + i] as f64)
                .sum::<f64>() as f32;
        }
    }
    y
}

/// ‖y − yref‖ over the typical output size: √(Σ_{t,r} ‖w_r‖²‖x_t‖² / cols), which is
/// what ‖yref‖ is on average for random data but is not noisy when there are few outputs.
fn rel_err(y: &[f32], yref: &[f32], w: &[f32], x: &[f32], cols: usize) -> f32 {
    let num: f64 = y
        .iter()
        .zip(yref)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let wn: f64 = w.iter().map(|v| (*v as f64).powi(2)).sum();
    let xn: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum();
    (num / (wn * xn / cols as f64).max(1e-30)).sqrt() as f32
}

fn rel_l2(a: &[f32], b: &[f32]) -> f32 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt() as f32
}

const ALL: [GgmlDType; 13] = [
    GgmlDType::F32,
    GgmlDType::F16,
    GgmlDType::BF16,
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q8_0,
    GgmlDType::Q2K,
    GgmlDType::Q3K,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
];

fn shapes(dtype: GgmlDType) -> Vec<(usize, usize)> {
    let k = matches!(
        dtype,
        GgmlDType::Q2K | GgmlDType::Q3K | GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K
    );
    if k {
        vec![(37, 256), (20, 1536), (9, 4864)]
    } else {
        vec![(37, 896), (20, 576), (12, 1536), (9, 4864), (5, 64)]
    }
}

/// matmul against candle's dequantized matrix times f32 x, for every dtype, several
/// shapes and token counts, with 1 and 2 threads and every available instruction set.
///
/// Tolerance: relative error (see `rel_err`) 1e-2 for quantized types. The weights are used exactly
/// (same dequantized values); the error comes only from rounding the activations to int8
/// per 32-block (step max|x|/127, i.e. ~0.2% relative noise per dot product for these
/// random inputs, so 1e-2 leaves a 4x margin). F32/F16/BF16 are computed in f32: 1e-5.
#[test]
fn matmul_matches_dequantized_reference() {
    let pools = [Pool::new(1), Pool::new(2)];
    for (di, dtype) in ALL.into_iter().enumerate() {
        for (si, (rows, cols)) in shapes(dtype).into_iter().enumerate() {
            let c = make(dtype, rows, cols, (di * 10 + si) as u64 + 1);
            for n in [1, 3, 37, 70] {
                let x = rand_vec(n * cols, 1000 + n as u64);
                let yref = reference(&c.w, &x, rows, cols, n);
                for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni] {
                    if !isa.available() {
                        continue;
                    }
                    for pool in &pools {
                        let mut y = vec![f32::NAN; n * rows];
                        c.mat.matmul_isa(&x, n, &mut y, pool, isa);
                        let e = rel_err(&y, &yref, &c.w, &x, cols);
                        let tol = if c.mat.layout == Layout::F32 {
                            1e-5
                        } else {
                            1e-2
                        };
                        assert!(
                            e < tol,
                            "{dtype:?} {rows}x{cols} n={n} {isa:?} threads={}: rel err {e}",
                            pool.threads()
                        );
                    }
                }
            }
        }
    }
}

/// Against candle's own quantized matmul (which quantizes activations its own way:
/// Q8_0/Q8_1/Q8_K), so the tolerance is the sum of both errors: 2e-2.
#[test]
fn matmul_matches_candle_qmatmul() {
    let pool = Pool::new(2);
    for (di, dtype) in ALL.into_iter().enumerate() {
        let (rows, cols) = shapes(dtype)[1];
        let c = make(dtype, rows, cols, di as u64 + 77);
        let qmm = QMatMul::from_qtensor(c.q).expect("qmatmul");
        for n in [1, 3, 37] {
            let x = rand_vec(n * cols, 7 + n as u64);
            let xt = Tensor::from_vec(x.clone(), (n, cols), &Device::Cpu).expect("x");
            let yc = qmm
                .forward(&xt)
                .expect("forward")
                .flatten_all()
                .expect("flat")
                .to_vec1::<f32>()
                .expect("vec");
            let mut y = vec![0f32; n * rows];
            c.mat.matmul(&x, n, &mut y, &pool);
            let e = rel_l2(&y, &yc);
            assert!(e < 2e-2, "{dtype:?} n={n}: rel err vs candle {e}");
        }
    }
}

#[test]
fn dequantize_row_matches_candle() {
    for (di, dtype) in ALL.into_iter().enumerate() {
        for (rows, cols) in shapes(dtype) {
            let c = make(dtype, rows, cols, di as u64 + 300);
            let mut out = vec![0f32; cols];
            for r in 0..rows {
                c.mat.dequantize_row(r, &mut out);
                let want = &c.w[r * cols..(r + 1) * cols];
                let amax = want.iter().fold(0f32, |a, v| a.max(v.abs()));
                for (i, (a, b)) in out.iter().zip(want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-6 * amax,
                        "{dtype:?} row {r} col {i}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

/// All instruction sets compute the same integer sums; only f32 summation order differs.
#[test]
fn simd_paths_match_scalar() {
    let pool = Pool::new(2);
    for (di, dtype) in ALL.into_iter().enumerate() {
        for (si, (rows, cols)) in shapes(dtype).into_iter().enumerate() {
            let c = make(dtype, rows, cols, (di * 10 + si) as u64 + 500);
            for n in [1, 5, 37] {
                let x = rand_vec(n * cols, 2000 + n as u64);
                let mut ys = vec![0f32; n * rows];
                c.mat.matmul_isa(&x, n, &mut ys, &pool, Isa::Scalar);
                let scale = ys.iter().fold(0f32, |a, v| a.max(v.abs()));
                for isa in [Isa::Avx2, Isa::Avx512Vnni] {
                    if !isa.available() {
                        continue;
                    }
                    let mut y = vec![0f32; n * rows];
                    c.mat.matmul_isa(&x, n, &mut y, &pool, isa);
                    for (a, b) in y.iter().zip(&ys) {
                        assert!(
                            (a - b).abs() <= 1e-5 * scale,
                            "{dtype:?} {rows}x{cols} n={n} {isa:?}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn qmatrix_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<QMatrix>();
}

#[test]
fn rejects_bad_input() {
    let e = QMatrix::from_ggml(GgmlDType::Q8K, &[0u8; 292], 1, 256).expect_err("Q8K unsupported");
    assert!(e.to_string().contains("Q8K"), "{e}");
    let e = QMatrix::from_ggml(GgmlDType::Q4_0, &[0u8; 17], 1, 32).expect_err("short");
    assert!(e.to_string().contains("18"), "{e}");
    assert!(QMatrix::from_ggml(GgmlDType::Q4K, &[0u8; 144], 1, 32).is_err());
}

/// `cargo test --release -- --ignored --nocapture bench_matmul`
#[test]
#[ignore]
fn bench_matmul() {
    use std::time::Instant;
    let cases = [
        (GgmlDType::Q5_0, 4864, 896),
        (GgmlDType::Q4K, 896, 4864),
        (GgmlDType::Q6K, 896, 4864),
        (GgmlDType::Q4_1, 1536, 576),
        (GgmlDType::Q8_0, 896, 896),
    ];
    println!("| matrix | n_tokens | threads | lore GMAC/s | candle GMAC/s |");
    println!("| --- | --- | --- | --- | --- |");
    for (dtype, rows, cols) in cases {
        let c = make(dtype, rows, cols, 9);
        let qmm = QMatMul::from_qtensor(c.q).expect("qmatmul");
        for n in [1usize, 512] {
            let x = rand_vec(n * cols, 5);
            let xt = Tensor::from_vec(x.clone(), (n, cols), &Device::Cpu).expect("x");
            let mut y = vec![0f32; n * rows];
            let macs = (rows * cols * n) as f64;
            let reps = if n == 1 { 400 } else { 3 };
            for threads in [1, 2] {
                let pool = Pool::new(threads);
                c.mat.matmul(&x, n, &mut y, &pool);
                let t0 = Instant::now();
                for _ in 0..reps {
                    c.mat.matmul(&x, n, &mut y, &pool);
                }
                let ours = macs * reps as f64 / t0.elapsed().as_secs_f64() / 1e9;
                let rp = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("rayon");
                let creps = if n == 1 { 100 } else { 1 };
                let theirs = rp.install(|| {
                    let _ = qmm.forward(&xt).expect("fwd");
                    let t0 = Instant::now();
                    for _ in 0..creps {
                        let _ = qmm.forward(&xt).expect("fwd");
                    }
                    macs * creps as f64 / t0.elapsed().as_secs_f64() / 1e9
                });
                println!("| {dtype:?} {rows}x{cols} | {n} | {threads} | {ours:.1} | {theirs:.1} |");
            }
        }
    }
}

/// Random raw GGUF bytes for a `rows × cols` matrix of `dtype`, with sane f16 scales.
fn random_raw(dtype: GgmlDType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let (blck, tsize, scale_offs): (usize, usize, &[usize]) = match dtype {
        GgmlDType::Q4_0 | GgmlDType::Q5_0 | GgmlDType::Q8_0 => (32, dtype.type_size(), &[0]),
        GgmlDType::Q4_1 | GgmlDType::Q5_1 => (32, dtype.type_size(), &[0, 2]),
        GgmlDType::Q4K | GgmlDType::Q5K => (256, dtype.type_size(), &[0, 2]),
        GgmlDType::Q6K => (256, 210, &[208]),
        _ => panic!("not in the benchmark"),
    };
    let mut s = seed | 1;
    let mut raw: Vec<u8> = (0..rows * cols / blck * tsize)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect();
    let small = half::f16::from_f32(0.01).to_le_bytes();
    for blk in raw.chunks_exact_mut(tsize) {
        for &o in scale_offs {
            blk[o..o + 2].copy_from_slice(&small);
        }
    }
    raw
}

/// A Qwen2.5-0.5B-shaped stack (24 layers, Q4_K_M-like types, distinct memory so the
/// weights come from DRAM) plus the tied Q8_0 output matrix: decode and prompt tokens/s
/// of the matmuls alone. `cargo test --release -- --ignored --nocapture bench_model`
#[test]
#[ignore]
fn bench_model() {
    use std::time::Instant;
    let (h, kv, ff, vocab) = (896, 128, 4864, 151936);
    let mut mats = Vec::new();
    for l in 0..24u64 {
        let down = if l % 3 == 0 {
            GgmlDType::Q6K
        } else {
            GgmlDType::Q4K
        };
        for (i, (dt, r, c)) in [
            (GgmlDType::Q5_0, h, h),
            (GgmlDType::Q5_0, kv, h),
            (GgmlDType::Q8_0, kv, h),
            (GgmlDType::Q5_0, h, h),
            (GgmlDType::Q5_0, ff, h),
            (GgmlDType::Q5_0, ff, h),
            (down, h, ff),
        ]
        .into_iter()
        .enumerate()
        {
            let raw = random_raw(dt, r, c, l * 16 + i as u64 + 1);
            mats.push(QMatrix::from_ggml(dt, &raw, r, c).expect("layer matrix"));
        }
    }
    let raw = random_raw(GgmlDType::Q8_0, vocab, h, 99);
    mats.push(QMatrix::from_ggml(GgmlDType::Q8_0, &raw, vocab, h).expect("output"));
    drop(raw);
    let macs: usize = mats.iter().map(|m| m.rows() * m.cols()).sum();
    let bytes: usize = mats.iter().map(|m| m.size_bytes()).sum();
    println!(
        "model: {:.0} M MACs/token, {:.0} MB of weights",
        macs as f64 / 1e6,
        bytes as f64 / 1e6
    );
    let maxc = ff;
    for threads in [1, 2] {
        let pool = Pool::new(threads);
        let x = rand_vec(512 * maxc, 3);
        let mut y = vec![0f32; 512 * vocab.max(ff)];
        let tokens = 30;
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t0 = Instant::now();
            for _ in 0..tokens {
                for m in &mats {
                    m.matmul(&x[..m.cols()], 1, &mut y[..m.rows()], &pool);
                }
            }
            best = best.min(t0.elapsed().as_secs_f64() / tokens as f64);
        }
        println!(
            "threads {threads}: decode {:.1} tok/s ({:.1} GMAC/s, {:.1} GB/s of weights)",
            1.0 / best,
            macs as f64 / best / 1e9,
            bytes as f64 / best / 1e9
        );
        let n = 512;
        let t0 = Instant::now();
        for m in &mats[..mats.len() - 1] {
            m.matmul(&x[..n * m.cols()], n, &mut y[..n * m.rows()], &pool);
        }
        let layers = t0.elapsed().as_secs_f64();
        let lm = mats.len() - 1;
        let t0 = Instant::now();
        mats[lm].matmul(&x[..n * h], n, &mut y[..n * vocab], &pool);
        let out = t0.elapsed().as_secs_f64();
        println!(
            "threads {threads}: prompt {n} tokens: layers {:.1} tok/s ({:.1} GMAC/s); output matrix for all {n} tokens {:.2} s",
            n as f64 / layers,
            (macs - vocab * h) as f64 * n as f64 / layers / 1e9,
            out
        );
    }
}
