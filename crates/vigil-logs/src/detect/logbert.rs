//! LogBERT (Guo, Yuan and Wu, IJCNN 2021): a small transformer encoder over log-key
//! sequences, trained on normal sessions to predict masked keys (masked log-key prediction)
//! while pulling the sequence's `DIST` summary towards a centre (volume of hypersphere
//! minimisation). A session is anomalous when more than `max_misses` of its keys are not
//! among the `g` most likely predictions for their masked position.
//!
//! Choices, all documented in `docs/logs.md`:
//! * each sequence is `[DIST] keys… [END]`; the end marker is predicted like a key, so a
//!   session that stops early is caught, as DeepLog's end class does;
//! * detection masks every position once (one masked copy per position, batched), instead of
//!   the paper's random masks, so a verdict is deterministic;
//! * sessions longer than the longest training session are judged in overlapping windows of
//!   that length (positions beyond it were never trained);
//! * training examples are deduplicated (distinct sequences with their counts as weights),
//!   and the verdicts of distinct sessions are cached when scoring.
//!
//! Training and scoring both run on CPU with `candle`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use vigil_ml::rng::SplitMix64;

use super::{DetectError, Reason, SessionDetector, Verdict, Vocab, check, check_optimiser};

/// Training and detection parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogBertParams {
    /// Longest window of keys the model reads (longer sessions are judged in overlapping
    /// windows).
    pub max_len: usize,
    /// Width of the model (embedding and attention).
    pub dim: usize,
    /// Attention heads (must divide `dim`).
    pub heads: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Width of the feed-forward layer.
    pub ff: usize,
    /// Share of positions masked per training sequence.
    pub mask_ratio: f64,
    /// Predictions a masked key must be among (`g`).
    pub top_g: usize,
    /// Probability a key must also reach to count as predicted.
    pub min_probability: f64,
    /// Missed keys a session may have and still be normal (`r` in the paper).
    pub max_misses: usize,
    /// Weight of the hypersphere loss (0 turns it off).
    pub hypersphere: f64,
    /// Share of training sessions inside the hypersphere's radius: a session whose summary
    /// lies further from the centre is anomalous (0: the sphere does not judge).
    pub sphere_quantile: f64,
    /// Passes over the training sequences.
    pub epochs: usize,
    /// Sequences per optimiser step.
    pub batch: usize,
    /// Fewest optimiser steps (small training sets run more epochs).
    pub min_steps: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Random seed (initial weights, masks, batch order).
    pub seed: u64,
    /// Distinct sessions whose verdicts are cached when scoring (0: no cache).
    pub cache: usize,
}

impl Default for LogBertParams {
    fn default() -> Self {
        LogBertParams {
            max_len: 128,
            dim: 64,
            heads: 4,
            layers: 2,
            ff: 128,
            mask_ratio: 0.3,
            top_g: 5,
            min_probability: 0.001,
            max_misses: 0,
            hypersphere: 0.1,
            sphere_quantile: 0.999,
            epochs: 20,
            batch: 64,
            min_steps: 500,
            learning_rate: 0.002,
            seed: 0,
            cache: 100_000,
        }
    }
}

impl LogBertParams {
    fn validate(&self) -> Result<(), DetectError> {
        check(
            (2..=512).contains(&self.max_len),
            "max_len",
            "must be 2..=512",
        )?;
        check((4..=512).contains(&self.dim), "dim", "must be 4..=512")?;
        check(
            self.heads >= 1 && self.dim.is_multiple_of(self.heads),
            "heads",
            "must be at least 1 and divide dim",
        )?;
        check((1..=8).contains(&self.layers), "layers", "must be 1..=8")?;
        check((1..=4096).contains(&self.ff), "ff", "must be 1..=4096")?;
        check(
            self.mask_ratio > 0.0 && self.mask_ratio < 1.0,
            "mask_ratio",
            "must be in (0, 1)",
        )?;
        check(self.top_g >= 1, "top_g", "must be at least 1")?;
        check(
            (0.0..1.0).contains(&self.min_probability),
            "min_probability",
            "must be in [0, 1)",
        )?;
        check(
            (0.0..=100.0).contains(&self.hypersphere),
            "hypersphere",
            "must be in [0, 100]",
        )?;
        check(
            (0.0..=1.0).contains(&self.sphere_quantile),
            "sphere_quantile",
            "must be in [0, 1]",
        )?;
        check_optimiser(
            self.epochs,
            self.min_steps,
            self.batch,
            4_096,
            self.learning_rate,
        )
    }
}

/// What training did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Training sessions.
    pub sessions: usize,
    /// Training sequences (windows of sessions).
    pub sequences: usize,
    /// Distinct sequences trained on.
    pub distinct_sequences: usize,
    /// The window the model reads (the longest training session, at most `max_len`).
    pub window: usize,
    /// Epochs run (more than asked when `min_steps` required it).
    pub epochs: usize,
    /// Mean masked-key cross-entropy of the last epoch.
    pub final_loss: f64,
    /// Mean squared distance of the `DIST` summaries to the centre in the last epoch.
    pub final_sphere: f64,
    /// Share of training sessions judged normal after training.
    pub train_normal_share: f64,
    /// Training time.
    pub seconds: f64,
}

/// A tensor in the saved model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedTensor {
    shape: Vec<usize>,
    values: Vec<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    format: u32,
    params: LogBertParams,
    vocab: Vocab,
    window: usize,
    sphere: Option<Sphere>,
    weights: BTreeMap<String, SavedTensor>,
    training: TrainingInfo,
}

/// The hypersphere normal sessions' summaries lie in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sphere {
    centre: Vec<f32>,
    /// The squared distance at `sphere_quantile` of the training sequences'.
    radius: f64,
    /// The training sequences' squared distances, sorted, with their weights (kept so the
    /// quantile can change without retraining).
    distances: Vec<(f32, u32)>,
}

impl Sphere {
    fn radius_at(distances: &[(f32, u32)], quantile: f64) -> f64 {
        let total: u64 = distances.iter().map(|&(_, w)| u64::from(w)).sum();
        let want = (quantile * total as f64).ceil() as u64;
        let mut seen = 0u64;
        for &(d, w) in distances {
            seen += u64::from(w);
            if seen >= want {
                return f64::from(d);
            }
        }
        distances.last().map_or(0.0, |&(d, _)| f64::from(d))
    }
}

const FORMAT: u32 = 1;
const PAD: u32 = 0;

/// Special tokens after the keys (`1..=n`).
#[derive(Debug, Clone, Copy)]
struct Tokens {
    end: u32,
    mask: u32,
    dist: u32,
}

impl Tokens {
    fn of(vocab: &Vocab) -> Tokens {
        let n = vocab.len() as u32;
        Tokens {
            end: n + 1,
            mask: n + 2,
            dist: n + 3,
        }
    }

    /// Token ids (embedding rows).
    fn count(self) -> usize {
        self.dist as usize + 1
    }

    /// Output classes: padding (never predicted), the keys, the end.
    fn classes(self) -> usize {
        self.end as usize + 1
    }
}

fn candle_err(e: candle_core::Error) -> DetectError {
    DetectError::Training(e.to_string())
}

struct Block {
    ln1: candle_nn::LayerNorm,
    qkv: candle_nn::Linear,
    proj: candle_nn::Linear,
    ln2: candle_nn::LayerNorm,
    ff1: candle_nn::Linear,
    ff2: candle_nn::Linear,
}

/// The encoder: token and position embeddings, pre-norm transformer blocks, a final norm and
/// the masked-key head.
struct Encoder {
    tokens: candle_nn::Embedding,
    positions: candle_nn::Embedding,
    blocks: Vec<Block>,
    ln: candle_nn::LayerNorm,
    head: candle_nn::Linear,
    heads: usize,
}

const LN_EPS: f64 = 1e-5;

/// Layer norm; the differentiable form while training (candle's fused kernel has no
/// backward pass).
fn norm(ln: &candle_nn::LayerNorm, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
    if train {
        let bias = ln.bias().expect("layer norms have a bias");
        candle_nn::ops::layer_norm_slow(x, ln.weight(), bias, LN_EPS as f32)
    } else {
        ln.forward(x)
    }
}

impl Encoder {
    fn new(p: &LogBertParams, tokens: Tokens, vb: &VarBuilder) -> candle_core::Result<Encoder> {
        let d = p.dim;
        let ln = |vb: VarBuilder| candle_nn::layer_norm(d, LN_EPS, vb);
        let mut blocks = Vec::new();
        for l in 0..p.layers {
            let vb = vb.pp(format!("blocks.{l}"));
            blocks.push(Block {
                ln1: ln(vb.pp("ln1"))?,
                qkv: candle_nn::linear(d, 3 * d, vb.pp("qkv"))?,
                proj: candle_nn::linear(d, d, vb.pp("proj"))?,
                ln2: ln(vb.pp("ln2"))?,
                ff1: candle_nn::linear(d, p.ff, vb.pp("ff1"))?,
                ff2: candle_nn::linear(p.ff, d, vb.pp("ff2"))?,
            });
        }
        Ok(Encoder {
            tokens: candle_nn::embedding(tokens.count(), d, vb.pp("tokens"))?,
            positions: candle_nn::embedding(p.max_len + 2, d, vb.pp("positions"))?,
            blocks,
            ln: ln(vb.pp("ln"))?,
            head: candle_nn::linear(d, tokens.classes(), vb.pp("head"))?,
            heads: p.heads,
        })
    }

    /// `(B, L)` token ids to `(B, L, classes)` logits and the `(B, dim)` `DIST` summaries.
    fn forward(&self, ids: &Tensor, train: bool) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, l) = ids.dims2()?;
        let device = ids.device();
        let positions = Tensor::arange(0u32, l as u32, device)?;
        let mut x = self
            .tokens
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        let d = x.dim(D::Minus1)?;
        let dh = d / self.heads;
        // Padding is never attended to.
        let pad = ids
            .eq(PAD)?
            .to_dtype(DType::F32)?
            .affine(-1e9, 0.0)?
            .reshape((b, 1, 1, l))?;
        let scale = 1.0 / (dh as f64).sqrt();
        for block in &self.blocks {
            let h = norm(&block.ln1, &x, train)?;
            let qkv = block
                .qkv
                .forward(&h)?
                .reshape((b, l, 3, self.heads, dh))?
                .permute((2, 0, 3, 1, 4))?;
            let q = qkv.get(0)?.contiguous()?;
            let k = qkv.get(1)?.contiguous()?;
            let v = qkv.get(2)?.contiguous()?;
            let att = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&pad)?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, l, d))?;
            x = (x + block.proj.forward(&y)?)?;
            let h = norm(&block.ln2, &x, train)?;
            x = (&x + block.ff2.forward(&block.ff1.forward(&h)?.gelu()?)?)?;
        }
        let x = norm(&self.ln, &x, train)?;
        let dist = x.narrow(1, 0, 1)?.squeeze(1)?;
        Ok((self.head.forward(&x)?, dist))
    }
}

/// Seeded initial weights: embeddings N(0, 0.02), linear layers PyTorch's
/// U(-1/√fan_in, 1/√fan_in), layer norms 1 and 0.
fn init_weights(varmap: &VarMap, rng: &mut SplitMix64) -> candle_core::Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let n = var.elem_count();
        let is_norm = name.contains("ln");
        let values: Vec<f32> = if is_norm && name.ends_with("weight") {
            vec![1.0; n]
        } else if is_norm {
            vec![0.0; n]
        } else if name.starts_with("tokens") || name.starts_with("positions") {
            (0..n)
                .map(|_| {
                    let u1 = rng.next_f64().max(1e-12);
                    let u2 = rng.next_f64();
                    (0.02 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos())
                        as f32
                })
                .collect()
        } else {
            let dims = var.dims();
            let fan_in = if dims.len() == 2 {
                dims[1]
            } else {
                // A bias: its layer's weight has `n` rows; the fan-in is that weight's width,
                // which PyTorch also uses for the bias bound.
                let weight = name.trim_end_matches("bias").to_string() + "weight";
                data.get(&weight).map_or(n, |w| w.dims()[1])
            };
            let k = 1.0 / (fan_in as f64).sqrt();
            (0..n)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * k) as f32)
                .collect()
        };
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu)?)?;
    }
    Ok(())
}

/// The token sequences a session is read as: `[DIST] keys… [END]` when it fits the window,
/// else overlapping windows of `window` keys (half a window apart), the last ending with
/// `[END]`. Each comes with the position in the session of its first key.
fn sequences(tokens: &[u32], window: usize, special: Tokens) -> Vec<(usize, Vec<u32>)> {
    let build = |start: usize, end: usize, last: bool| {
        let mut s = Vec::with_capacity(end - start + 2);
        s.push(special.dist);
        s.extend_from_slice(&tokens[start..end]);
        if last {
            s.push(special.end);
        }
        (start, s)
    };
    let n = tokens.len();
    if n <= window {
        return vec![build(0, n, true)];
    }
    let stride = (window / 2).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start + window < n {
        out.push(build(start, start + window, false));
        start += stride;
    }
    out.push(build(n - window, n, true));
    out
}

/// A copy of a sequence to read: one position masked to predict it, or none to place the
/// sequence's summary on the sphere (`index` 0).
struct Probe {
    /// Which session of the batch.
    session: usize,
    /// Position of the masked token in the session (`len` for the end).
    position: usize,
    /// Masked position in the sequence.
    index: usize,
    target: u32,
    ids: Vec<u32>,
}

/// What a probe read.
enum Read {
    /// The most likely classes at the masked position, best first, with probabilities.
    Top(Vec<(u32, f32)>),
    /// The squared distance of the summary to the centre.
    Distance(f64),
}

/// One session's reads, summed up.
#[derive(Debug, Clone, Default)]
struct Tally {
    first: Option<Reason>,
    misses: usize,
    targets: usize,
    worst_rank: usize,
    distance: f64,
}

fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y) * f64::from(x - y))
        .sum()
}

/// A trained LogBERT detector.
pub struct LogBert {
    params: LogBertParams,
    vocab: Vocab,
    window: usize,
    sphere: Option<Sphere>,
    tokens: Tokens,
    varmap: VarMap,
    encoder: Encoder,
    training: TrainingInfo,
    cache: Mutex<HashMap<Box<[u32]>, Verdict>>,
}

impl std::fmt::Debug for LogBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBert")
            .field("params", &self.params)
            .field("keys", &self.vocab.len())
            .finish_non_exhaustive()
    }
}

/// Probes per forward pass when scoring.
const PROBE_BATCH: usize = 512;

impl LogBert {
    /// Trains on normal sessions. `progress` is called after each epoch with the epoch
    /// number and its mean masked-key loss.
    pub fn train(
        sessions: &[Vec<u32>],
        params: &LogBertParams,
        mut progress: impl FnMut(usize, f64),
    ) -> Result<LogBert, DetectError> {
        params.validate()?;
        let start = std::time::Instant::now();
        let vocab = Vocab::of(sessions.iter().map(|s| s.as_slice()));
        if vocab.is_empty() || sessions.len() < 2 {
            return Err(DetectError::Training(format!(
                "{} sessions with {} distinct keys; LogBERT needs normal sessions to learn from",
                sessions.len(),
                vocab.len()
            )));
        }
        let tokens = Tokens::of(&vocab);
        let longest = sessions.iter().map(Vec::len).max().unwrap_or(1);
        let window = longest.clamp(1, params.max_len);
        let mut counts: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut total = 0usize;
        for s in sessions {
            let ids: Vec<u32> = s
                .iter()
                .map(|&k| vocab.index(k).expect("in vocab"))
                .collect();
            for (_, seq) in sequences(&ids, window, tokens) {
                *counts.entry(seq).or_default() += 1;
                total += 1;
            }
        }
        let mut distinct: Vec<(Vec<u32>, u32)> = counts.into_iter().collect();
        distinct.sort_unstable();

        let device = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let encoder = Encoder::new(params, tokens, &vb).map_err(candle_err)?;
        let mut rng = SplitMix64::new(params.seed);
        init_weights(&varmap, &mut rng).map_err(candle_err)?;
        let mut opt = candle_nn::AdamW::new(
            varmap.all_vars(),
            candle_nn::ParamsAdamW {
                lr: params.learning_rate,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
        .map_err(candle_err)?;

        let steps_per_epoch = distinct.len().div_ceil(params.batch);
        let epochs = params
            .epochs
            .max(params.min_steps.div_ceil(steps_per_epoch));
        let mut order: Vec<usize> = (0..distinct.len()).collect();
        let mut centre: Option<Tensor> = None;
        let (mut final_loss, mut final_sphere) = (f64::NAN, f64::NAN);
        for epoch in 0..epochs {
            rng.shuffle(&mut order);
            let (mut loss_sum, mut loss_weight) = (0.0, 0.0);
            let (mut sphere_sum, mut sphere_weight) = (0.0, 0.0);
            let mut dist_sum: Option<Tensor> = None;
            for batch in order.chunks(params.batch) {
                let l = batch
                    .iter()
                    .map(|&i| distinct[i].0.len())
                    .max()
                    .unwrap_or(1);
                let mut ids = Vec::with_capacity(batch.len() * l);
                let mut targets = Vec::with_capacity(batch.len() * l);
                let mut weights = Vec::with_capacity(batch.len() * l);
                let mut seq_weights = Vec::with_capacity(batch.len());
                for &i in batch {
                    let (seq, count) = &distinct[i];
                    let w = *count as f32;
                    seq_weights.push(w);
                    // Mask positions 1.. (never DIST), at least one.
                    let mut masked: Vec<bool> = (0..seq.len())
                        .map(|j| j > 0 && rng.next_f64() < params.mask_ratio)
                        .collect();
                    if !masked.iter().any(|&m| m) {
                        masked[1 + rng.below(seq.len() - 1)] = true;
                    }
                    for (&t, &m) in seq.iter().zip(&masked) {
                        ids.push(if m { tokens.mask } else { t });
                        targets.push(if m { t } else { PAD });
                        weights.push(if m { w } else { 0.0 });
                    }
                    // Padding to the batch's longest sequence.
                    for _ in seq.len()..l {
                        ids.push(PAD);
                        targets.push(PAD);
                        weights.push(0.0);
                    }
                }
                let n = batch.len();
                let masked_weight: f32 = weights.iter().sum();
                let seq_weight: f32 = seq_weights.iter().sum();
                let step = (|| -> candle_core::Result<(Tensor, f64, Option<f64>, Tensor)> {
                    let x = Tensor::from_vec(ids, (n, l), &device)?;
                    let y = Tensor::from_vec(targets, (n * l, 1), &device)?;
                    let w = Tensor::from_vec(weights, n * l, &device)?;
                    let (logits, dist) = encoder.forward(&x, true)?;
                    let logp = candle_nn::ops::log_softmax(
                        &logits.reshape((n * l, tokens.classes()))?,
                        D::Minus1,
                    )?;
                    let picked = logp.gather(&y, 1)?.squeeze(1)?;
                    let mlkp = (picked * &w)?
                        .sum_all()?
                        .affine(-1.0 / f64::from(masked_weight.max(1.0)), 0.0)?;
                    let sw = Tensor::from_vec(seq_weights, (n, 1), &device)?;
                    let weighted_dist = dist.detach().broadcast_mul(&sw)?.sum(0)?;
                    let (loss, sphere) = match (&centre, params.hypersphere > 0.0) {
                        (Some(c), true) => {
                            let sq = dist.broadcast_sub(c)?.sqr()?.sum(1)?;
                            let sphere = (sq * sw.squeeze(1)?)?
                                .sum_all()?
                                .affine(1.0 / f64::from(seq_weight), 0.0)?;
                            let value = sphere.to_scalar::<f32>()? as f64;
                            (
                                (&mlkp + sphere.affine(params.hypersphere, 0.0)?)?,
                                Some(value),
                            )
                        }
                        _ => (mlkp.clone(), None),
                    };
                    let value = mlkp.to_scalar::<f32>()? as f64;
                    Ok((loss, value, sphere, weighted_dist))
                })()
                .map_err(candle_err)?;
                let (loss, value, sphere, weighted_dist) = step;
                opt.backward_step(&loss).map_err(candle_err)?;
                loss_sum += value * f64::from(masked_weight);
                loss_weight += f64::from(masked_weight);
                if let Some(s) = sphere {
                    sphere_sum += s * f64::from(seq_weight);
                    sphere_weight += f64::from(seq_weight);
                }
                dist_sum = Some(match dist_sum {
                    Some(sum) => (sum + weighted_dist).map_err(candle_err)?,
                    None => weighted_dist,
                });
            }
            final_loss = loss_sum / loss_weight.max(1.0);
            final_sphere = if sphere_weight > 0.0 {
                sphere_sum / sphere_weight
            } else {
                f64::NAN
            };
            if !final_loss.is_finite() {
                return Err(DetectError::Training(format!(
                    "the loss diverged at epoch {} (lower the learning rate)",
                    epoch + 1
                )));
            }
            // The centre is the mean summary of the epoch just run (as in the paper's code).
            centre = match dist_sum {
                Some(sum) => Some(sum.affine(1.0 / total as f64, 0.0).map_err(candle_err)?),
                None => None,
            };
            progress(epoch + 1, final_loss);
        }
        drop(opt);
        let mut model = LogBert {
            params: params.clone(),
            vocab,
            window,
            sphere: None,
            tokens,
            varmap,
            encoder,
            training: TrainingInfo {
                sessions: sessions.len(),
                sequences: total,
                distinct_sequences: distinct.len(),
                window,
                epochs,
                final_loss,
                final_sphere,
                train_normal_share: 0.0,
                seconds: 0.0,
            },
            cache: Mutex::new(HashMap::new()),
        };
        model.fit_sphere(&distinct)?;
        let refs: Vec<&[u32]> = sessions.iter().map(Vec::as_slice).collect();
        let normal = model
            .judge_batch(&refs)
            .iter()
            .filter(|v| !v.anomalous)
            .count();
        model.training.train_normal_share = normal as f64 / sessions.len() as f64;
        model.cache.lock().expect("cache lock").clear();
        model.training.seconds = start.elapsed().as_secs_f64();
        Ok(model)
    }

    /// The model as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let data = self.varmap.data().lock().expect("varmap lock");
        let weights = data
            .iter()
            .map(|(name, var)| {
                let t = var.as_tensor();
                let values = t
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .expect("an f32 CPU tensor");
                (
                    name.clone(),
                    SavedTensor {
                        shape: t.dims().to_vec(),
                        values,
                    },
                )
            })
            .collect();
        serde_json::to_vec(&Saved {
            format: FORMAT,
            params: self.params.clone(),
            vocab: self.vocab.clone(),
            window: self.window,
            sphere: self.sphere.clone(),
            weights,
            training: self.training.clone(),
        })
        .expect("the model serialises")
    }

    /// A model saved by [`LogBert::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<LogBert, DetectError> {
        let saved: Saved =
            serde_json::from_slice(bytes).map_err(|e| DetectError::Model(e.to_string()))?;
        if saved.format != FORMAT {
            return Err(DetectError::Model(format!(
                "format {} (this Vigil reads format {FORMAT})",
                saved.format
            )));
        }
        saved.params.validate()?;
        if saved.window == 0 || saved.window > saved.params.max_len {
            return Err(DetectError::Model("the window is out of range".into()));
        }
        if let Some(sphere) = &saved.sphere
            && (sphere.centre.len() != saved.params.dim
                || !sphere.centre.iter().all(|v| v.is_finite())
                || !sphere.radius.is_finite()
                || !sphere.distances.iter().all(|(d, _)| d.is_finite()))
        {
            return Err(DetectError::Model("the sphere is malformed".into()));
        }
        let vocab = saved.vocab.rebuilt();
        if vocab.is_empty() {
            return Err(DetectError::Model("the model knows no keys".into()));
        }
        let tokens = Tokens::of(&vocab);
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let encoder = Encoder::new(&saved.params, tokens, &vb)
            .map_err(|e| DetectError::Model(e.to_string()))?;
        {
            let data = varmap.data().lock().expect("varmap lock");
            if data.len() != saved.weights.len() {
                return Err(DetectError::Model(format!(
                    "{} tensors saved, the model has {}",
                    saved.weights.len(),
                    data.len()
                )));
            }
            for (name, var) in data.iter() {
                let t = saved
                    .weights
                    .get(name)
                    .ok_or_else(|| DetectError::Model(format!("no tensor {name}")))?;
                if t.shape != var.dims()
                    || t.values.len() != var.elem_count()
                    || !t.values.iter().all(|v| v.is_finite())
                {
                    return Err(DetectError::Model(format!(
                        "tensor {name} has the wrong shape or non-finite values"
                    )));
                }
                let value = Tensor::from_vec(t.values.clone(), var.shape(), &device)
                    .map_err(|e| DetectError::Model(e.to_string()))?;
                var.set(&value)
                    .map_err(|e| DetectError::Model(e.to_string()))?;
            }
        }
        Ok(LogBert {
            params: saved.params,
            vocab,
            window: saved.window,
            sphere: saved.sphere,
            tokens,
            varmap,
            encoder,
            training: saved.training,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Sets the size of the verdict cache (0 turns it off) and empties it.
    pub fn set_cache(&mut self, sessions: usize) {
        self.params.cache = sessions;
        self.cache.lock().expect("cache lock").clear();
    }

    /// Sets the detection rule (`g`, minimum probability, misses allowed) and empties the
    /// cache.
    pub fn set_rule(
        &mut self,
        top_g: usize,
        min_probability: f64,
        max_misses: usize,
        sphere_quantile: f64,
    ) {
        self.params.top_g = top_g.max(1);
        self.params.min_probability = min_probability.clamp(0.0, 0.999);
        self.params.max_misses = max_misses;
        self.params.sphere_quantile = sphere_quantile.clamp(0.0, 1.0);
        if let Some(sphere) = &mut self.sphere {
            sphere.radius = Sphere::radius_at(&sphere.distances, self.params.sphere_quantile);
        }
        self.cache.lock().expect("cache lock").clear();
    }

    /// The parameters.
    pub fn params(&self) -> &LogBertParams {
        &self.params
    }

    /// What training did.
    pub fn training(&self) -> &TrainingInfo {
        &self.training
    }

    /// The keys known from training.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn class_key(&self, class: u32) -> Option<u32> {
        if class == self.tokens.end {
            None
        } else {
            self.vocab.key(class)
        }
    }

    /// Judges sessions together: the masked copies of every distinct uncached session go
    /// through the encoder in large batches.
    fn judge_batch(&self, sessions: &[&[u32]]) -> Vec<Verdict> {
        let mut out: Vec<Option<Verdict>> = vec![None; sessions.len()];
        // Sessions to compute, deduplicated; `todo[i]` indexes `sessions`.
        let mut todo: Vec<usize> = Vec::new();
        let mut first_of: HashMap<&[u32], usize> = HashMap::new();
        {
            let cache = self.cache.lock().expect("cache lock");
            for (i, s) in sessions.iter().enumerate() {
                if let Some(v) = self.vocab.unseen_verdict(s) {
                    out[i] = Some(v);
                } else if let Some(v) = cache.get(*s) {
                    out[i] = Some(v.clone());
                } else if !first_of.contains_key(*s) {
                    first_of.insert(s, i);
                    todo.push(i);
                }
            }
        }
        let mut probes: Vec<Probe> = Vec::new();
        for (slot, &i) in todo.iter().enumerate() {
            let ids: Vec<u32> = sessions[i]
                .iter()
                .map(|&k| self.vocab.index(k).expect("checked"))
                .collect();
            for (offset, seq) in sequences(&ids, self.window, self.tokens) {
                for index in 1..seq.len() {
                    let mut masked = seq.clone();
                    let target = masked[index];
                    masked[index] = self.tokens.mask;
                    probes.push(Probe {
                        session: slot,
                        position: offset + index - 1,
                        index,
                        target,
                        ids: masked,
                    });
                }
                if self.sphere.is_some() && self.params.sphere_quantile > 0.0 {
                    probes.push(Probe {
                        session: slot,
                        position: offset,
                        index: 0,
                        target: PAD,
                        ids: seq,
                    });
                }
            }
        }
        let g = self.params.top_g;
        let min = self.params.min_probability as f32;
        let mut results: Vec<Tally> = vec![Tally::default(); todo.len()];
        for chunk in probes.chunks(PROBE_BATCH) {
            let read = self.read(chunk).expect("scoring a well-formed batch");
            for (probe, read) in chunk.iter().zip(read) {
                let session = sessions[todo[probe.session]];
                let r = &mut results[probe.session];
                let top = match read {
                    Read::Distance(d) => {
                        r.distance = r.distance.max(d);
                        continue;
                    }
                    Read::Top(top) => top,
                };
                r.targets += 1;
                match top.iter().position(|&(c, p)| c == probe.target && p >= min) {
                    Some(rank) => r.worst_rank = r.worst_rank.max(rank),
                    None => {
                        r.misses += 1;
                        // Windows overlap: keep the earliest miss.
                        let earlier = match &r.first {
                            None => true,
                            Some(Reason::Unexpected { position, .. }) => *position > probe.position,
                            Some(_) => false,
                        };
                        if earlier {
                            let expected = top.iter().map(|&(c, _)| self.class_key(c)).collect();
                            r.first = Some(if probe.target == self.tokens.end {
                                Reason::UnexpectedEnd {
                                    length: session.len(),
                                    expected,
                                }
                            } else {
                                Reason::Unexpected {
                                    position: probe.position,
                                    key: session[probe.position],
                                    rank: g,
                                    expected,
                                }
                            });
                        }
                    }
                }
            }
        }
        let radius = self
            .sphere
            .as_ref()
            .filter(|_| self.params.sphere_quantile > 0.0)
            .map(|s| s.radius);
        let mut cache = self.cache.lock().expect("cache lock");
        for (slot, &i) in todo.iter().enumerate() {
            let r = &results[slot];
            // A little slack: the same sequence read in another batch (other padding) lands
            // a rounding error away, and the farthest training sequence is on the radius.
            let far = radius.filter(|&radius| r.distance > radius * (1.0 + 1e-3) + 1e-6);
            let verdict = if r.misses > self.params.max_misses {
                Verdict {
                    anomalous: true,
                    score: 1.0 + r.misses as f64 / r.targets.max(1) as f64,
                    reason: r.first.clone(),
                }
            } else if let Some(radius) = far {
                Verdict {
                    anomalous: true,
                    score: 1.0 + (r.distance / radius.max(1e-12) - 1.0).min(1.0),
                    reason: Some(Reason::FarFromNormal {
                        distance: r.distance,
                        radius,
                    }),
                }
            } else {
                let by_rank = (r.worst_rank + 1) as f64 / (g + 1) as f64;
                let by_distance = radius.map_or(0.0, |radius| r.distance / radius.max(1e-12));
                Verdict::normal(by_rank.max(by_distance).min(0.99))
            };
            if self.params.cache > 0 {
                if cache.len() >= self.params.cache {
                    cache.clear();
                }
                cache.insert(sessions[i].into(), verdict.clone());
            }
            out[i] = Some(verdict);
        }
        drop(cache);
        // Duplicates within the batch take their first copy's verdict.
        for (i, s) in sessions.iter().enumerate() {
            if out[i].is_none() {
                out[i] = out[first_of[*s]].clone();
            }
        }
        out.into_iter()
            .map(|v| v.expect("every session judged"))
            .collect()
    }

    /// Runs probes through the encoder: the top-`g` classes (with probabilities) at each
    /// masked position, the squared distance to the centre for unmasked ones.
    fn read(&self, probes: &[Probe]) -> candle_core::Result<Vec<Read>> {
        let l = probes.iter().map(|p| p.ids.len()).max().unwrap_or(1);
        let mut ids = Vec::with_capacity(probes.len() * l);
        for p in probes {
            ids.extend_from_slice(&p.ids);
            ids.resize(ids.len() + l - p.ids.len(), PAD);
        }
        let x = Tensor::from_vec(ids, (probes.len(), l), &Device::Cpu)?;
        let (logits, dist) = self.encoder.forward(&x, false)?;
        let logits = logits.flatten_from(1)?.to_vec2::<f32>()?;
        let dist = dist.to_vec2::<f32>()?;
        let classes = self.tokens.classes();
        Ok(probes
            .iter()
            .zip(logits.iter().zip(&dist))
            .map(|(p, (row, summary))| {
                if p.index == 0 {
                    let centre = self.sphere.as_ref().map_or(&[][..], |s| &s.centre);
                    return Read::Distance(squared_distance(summary, centre));
                }
                let row = &row[p.index * classes..(p.index + 1) * classes];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let norm: f32 = row.iter().skip(1).map(|v| (v - max).exp()).sum();
                let mut order: Vec<u32> = (1..classes as u32).collect();
                order.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
                order.truncate(self.params.top_g);
                Read::Top(
                    order
                        .into_iter()
                        .map(|c| (c, (row[c as usize] - max).exp() / norm))
                        .collect(),
                )
            })
            .collect())
    }

    /// The `DIST` summaries of token sequences.
    fn summaries(&self, seqs: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(PROBE_BATCH) {
            let l = chunk.iter().map(|s| s.len()).max().unwrap_or(1);
            let mut ids = Vec::with_capacity(chunk.len() * l);
            for s in chunk {
                ids.extend_from_slice(s);
                ids.resize(ids.len() + l - s.len(), PAD);
            }
            let x = Tensor::from_vec(ids, (chunk.len(), l), &Device::Cpu)?;
            out.extend(self.encoder.forward(&x, false)?.1.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    /// Places the training sequences on the sphere: the centre is their weighted mean
    /// summary, the radius the asked quantile of their squared distances.
    fn fit_sphere(&mut self, distinct: &[(Vec<u32>, u32)]) -> Result<(), DetectError> {
        let seqs: Vec<&[u32]> = distinct.iter().map(|(s, _)| s.as_slice()).collect();
        let summaries = self.summaries(&seqs).map_err(candle_err)?;
        let dim = self.params.dim;
        let mut centre = vec![0f64; dim];
        let mut total = 0f64;
        for (summary, (_, w)) in summaries.iter().zip(distinct) {
            for (c, v) in centre.iter_mut().zip(summary) {
                *c += f64::from(*v) * f64::from(*w);
            }
            total += f64::from(*w);
        }
        let centre: Vec<f32> = centre.iter().map(|c| (c / total) as f32).collect();
        let mut distances: Vec<(f32, u32)> = summaries
            .iter()
            .zip(distinct)
            .map(|(s, (_, w))| (squared_distance(s, &centre) as f32, *w))
            .collect();
        distances.sort_by(|a, b| a.0.total_cmp(&b.0));
        let radius = Sphere::radius_at(&distances, self.params.sphere_quantile);
        self.sphere = Some(Sphere {
            centre,
            radius,
            distances,
        });
        Ok(())
    }
}

impl SessionDetector for LogBert {
    fn name(&self) -> &'static str {
        "logbert"
    }

    fn judge(&self, session: &[u32]) -> Verdict {
        self.judge_batch(&[session]).pop().expect("one verdict")
    }

    fn judge_many(&self, sessions: &[&[u32]]) -> Vec<Verdict> {
        self.judge_batch(sessions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two normal session shapes: a b c d e (sometimes with c repeated) and a b x y e.
    fn normal() -> Vec<Vec<u32>> {
        crate::detect::test_sessions()
    }

    fn params() -> LogBertParams {
        LogBertParams {
            dim: 16,
            heads: 2,
            ff: 32,
            top_g: 2,
            epochs: 10,
            min_steps: 300,
            batch: 8,
            learning_rate: 0.01,
            ..LogBertParams::default()
        }
    }

    #[test]
    fn windows_cover_every_key_once_or_more() {
        let t = Tokens {
            end: 10,
            mask: 11,
            dist: 12,
        };
        assert_eq!(sequences(&[1, 2], 4, t), vec![(0, vec![12, 1, 2, 10])]);
        let w = sequences(&[1, 2, 3, 4, 5, 6, 7], 4, t);
        assert_eq!(
            w,
            vec![
                (0, vec![12, 1, 2, 3, 4]),
                (2, vec![12, 3, 4, 5, 6]),
                (3, vec![12, 4, 5, 6, 7, 10]),
            ]
        );
        assert_eq!(sequences(&[1, 2, 3, 4], 4, t).len(), 1);
    }

    #[test]
    fn learns_sequences_and_explains_misses() {
        let mut epochs = 0;
        let m = LogBert::train(&normal(), &params(), |e, _| epochs = e).unwrap();
        assert_eq!(epochs, m.training().epochs);
        assert!(m.training().train_normal_share > 0.99, "{:?}", m.training());
        for s in normal() {
            assert!(!m.judge(&s).anomalous, "{s:?}");
        }
        // Out of order: 8 before 7.
        let v = m.judge(&[1, 2, 8, 7, 5]);
        assert!(v.anomalous && v.score > 1.0, "{v:?}");
        assert!(matches!(v.reason, Some(Reason::Unexpected { .. })), "{v:?}");
        // Stops early.
        let v = m.judge(&[1, 2, 3, 4]);
        assert!(v.anomalous, "{v:?}");
        // Never seen.
        let v = m.judge(&[1, 2, 42]);
        assert_eq!(
            v.reason,
            Some(Reason::UnseenKey {
                position: 2,
                key: 42
            })
        );
        // Batched and one at a time agree, duplicates included, cached or not.
        let batch: Vec<&[u32]> = vec![&[1, 2, 8, 7, 5], &[1, 2, 3, 4, 5], &[1, 2, 8, 7, 5]];
        let many = m.judge_many(&batch);
        let mut fresh = LogBert::from_json(&m.to_json()).unwrap();
        fresh.set_cache(0);
        for (s, v) in batch.iter().zip(&many) {
            assert_eq!(&fresh.judge(s), v);
        }
    }

    #[test]
    fn same_seed_same_model_and_refuses_bad_input() {
        let p = LogBertParams {
            epochs: 2,
            min_steps: 0,
            ..params()
        };
        let a = LogBert::train(&normal(), &p, |_, _| ()).unwrap();
        let b = LogBert::train(&normal(), &p, |_, _| ()).unwrap();
        let weights = |m: &LogBert| {
            serde_json::from_slice::<serde_json::Value>(&m.to_json()).unwrap()["weights"].clone()
        };
        assert_eq!(weights(&a), weights(&b));
        assert!(LogBert::train(&[], &p, |_, _| ()).is_err());
        assert!(
            LogBert::train(
                &normal(),
                &LogBertParams {
                    heads: 3,
                    ..p.clone()
                },
                |_, _| ()
            )
            .is_err()
        );
        assert!(LogBert::from_json(b"{}").is_err());
        let mut v: serde_json::Value = serde_json::from_slice(&a.to_json()).unwrap();
        v["weights"]["head.bias"]["values"] = serde_json::json!([1.0]);
        assert!(LogBert::from_json(&serde_json::to_vec(&v).unwrap()).is_err());
    }
}
