//! DeepLog (Du et al., CCS 2017): an LSTM that predicts the next log key from the `h` keys
//! before it; a session is anomalous when one of its keys is not among the `g` most likely
//! predictions.
//!
//! Training runs on CPU with `candle` (embedding, stacked LSTM, linear layer, Adam on the
//! cross-entropy of the next key). Two choices differ from the paper, both documented in
//! `docs/logs.md`:
//! * every key is predicted, the first ones from a window left-padded with a start marker,
//!   and (by default) the end of the session is predicted as one more class, so a session
//!   that stops early is caught as well;
//! * training examples are deduplicated: HDFS's 4,855 training sessions hold 99,980 examples
//!   but only a few thousand distinct (window, next key) pairs, so each pair is trained once
//!   per epoch with its count as weight, which is the same objective at a fraction of the
//!   cost.
//!
//! Scoring does not use `candle`: the trained weights run in a small fused LSTM written for
//! one window at a time (the first layer's input projection is precomputed per key), and
//! the top-`g` predictions of each distinct window are cached, since log sessions repeat
//! the same windows over and over.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Module, Optimizer, RNN, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use vigil_ml::rng::SplitMix64;

use super::{DetectError, Reason, SessionDetector, Verdict, Vocab, check, check_optimiser};

/// Training and detection parameters (the paper's HDFS setting: h = 10, g = 9, two layers
/// of 64 units).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeepLogParams {
    /// Keys of history per prediction (`h`).
    pub window: usize,
    /// Predictions a key must be among (`g`).
    pub top_g: usize,
    /// Probability a key must also reach to count as predicted (0 is the paper's pure top-g
    /// rule). With few distinct keys, the top `g` hold keys the model gives almost no
    /// chance; this keeps them from excusing a key (or an end of session) that never
    /// follows this history.
    pub min_probability: f64,
    /// LSTM units per layer.
    pub hidden: usize,
    /// LSTM layers.
    pub layers: usize,
    /// Size of the key embedding.
    pub embedding: usize,
    /// Passes over the training examples.
    pub epochs: usize,
    /// Examples per optimiser step.
    pub batch: usize,
    /// Fewest optimiser steps: small training sets (few distinct examples, so few steps an
    /// epoch) run more epochs until they reach it.
    pub min_steps: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Predict the end of a session as one more class.
    pub end_of_session: bool,
    /// Random seed (initial weights, batch order).
    pub seed: u64,
    /// Windows whose predictions are cached when scoring (0: no cache).
    pub cache: usize,
}

impl Default for DeepLogParams {
    fn default() -> Self {
        DeepLogParams {
            window: 10,
            top_g: 9,
            min_probability: 0.001,
            hidden: 64,
            layers: 2,
            embedding: 16,
            epochs: 60,
            batch: 256,
            min_steps: 500,
            learning_rate: 0.003,
            end_of_session: true,
            seed: 0,
            cache: 200_000,
        }
    }
}

impl DeepLogParams {
    fn validate(&self) -> Result<(), DetectError> {
        check(
            (1..=100).contains(&self.window),
            "window",
            "must be 1..=100",
        )?;
        check(self.top_g >= 1, "top_g", "must be at least 1")?;
        check(
            (0.0..1.0).contains(&self.min_probability),
            "min_probability",
            "must be in [0, 1)",
        )?;
        check(
            (1..=1024).contains(&self.hidden),
            "hidden",
            "must be 1..=1024",
        )?;
        check((1..=4).contains(&self.layers), "layers", "must be 1..=4")?;
        check(
            (1..=512).contains(&self.embedding),
            "embedding",
            "must be 1..=512",
        )?;
        check_optimiser(
            self.epochs,
            self.min_steps,
            self.batch,
            65_536,
            self.learning_rate,
        )
    }
}

/// One LSTM layer's weights, PyTorch's layout and gate order (input, forget, cell, output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LayerWeights {
    /// `4H × in`.
    w_ih: Vec<f32>,
    /// `4H × H`.
    w_hh: Vec<f32>,
    /// `b_ih + b_hh`, `4H`.
    bias: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Weights {
    /// `tokens × E`.
    embedding: Vec<f32>,
    layers: Vec<LayerWeights>,
    /// `classes × H`.
    out_w: Vec<f32>,
    out_b: Vec<f32>,
}

/// What training did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Training sessions.
    pub sessions: usize,
    /// (window, next key) examples.
    pub examples: usize,
    /// Distinct examples trained on.
    pub distinct_examples: usize,
    /// Epochs run (more than asked when `min_steps` required it).
    pub epochs: usize,
    /// Mean cross-entropy of the last epoch.
    pub final_loss: f64,
    /// Share of training examples whose key is within the top `g` after training.
    pub train_top_g_accuracy: f64,
    /// Training time.
    pub seconds: f64,
}

/// The saved model.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    format: u32,
    params: DeepLogParams,
    vocab: Vocab,
    weights: Weights,
    training: TrainingInfo,
}

const FORMAT: u32 = 1;
const PAD: u32 = 0;

/// A training example: a window of tokens and the class that followed it.
type Example = (Box<[u32]>, u32);

/// The `g` most likely next classes after a window, best first, with their probabilities.
type Top = std::sync::Arc<[(u32, f32)]>;

/// A trained DeepLog detector.
pub struct DeepLog {
    params: DeepLogParams,
    vocab: Vocab,
    weights: Weights,
    training: TrainingInfo,
    /// Per key token: the first layer's input projection plus both biases, `4H`.
    first_input: Vec<f32>,
    cache: Mutex<HashMap<Box<[u32]>, Top>>,
}

impl std::fmt::Debug for DeepLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeepLog")
            .field("params", &self.params)
            .field("keys", &self.vocab.len())
            .finish_non_exhaustive()
    }
}

fn candle_err(e: candle_core::Error) -> DetectError {
    DetectError::Training(e.to_string())
}

struct Net {
    embedding: candle_nn::Embedding,
    layers: Vec<candle_nn::LSTM>,
    out: candle_nn::Linear,
}

impl Net {
    fn new(
        p: &DeepLogParams,
        tokens: usize,
        classes: usize,
        vb: &VarBuilder,
    ) -> candle_core::Result<Net> {
        let embedding = candle_nn::embedding(tokens, p.embedding, vb.pp("embedding"))?;
        let mut layers = Vec::new();
        for l in 0..p.layers {
            let input = if l == 0 { p.embedding } else { p.hidden };
            let config = candle_nn::LSTMConfig {
                layer_idx: l,
                ..Default::default()
            };
            layers.push(candle_nn::lstm(input, p.hidden, config, vb.pp("lstm"))?);
        }
        let out = candle_nn::linear(p.hidden, classes, vb.pp("out"))?;
        Ok(Net {
            embedding,
            layers,
            out,
        })
    }

    /// `(B, h)` token ids to `(B, classes)` logits.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut seq = self.embedding.forward(x)?;
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let states = layer.seq(&seq)?;
            if l == last {
                let h = states.last().expect("window is not empty").h().clone();
                return self.out.forward(&h);
            }
            seq = layer.states_to_tensor(&states)?;
        }
        unreachable!("at least one layer")
    }
}

/// Seeded initial weights in PyTorch's scheme, so that a seed gives the same model.
fn init_weights(
    varmap: &VarMap,
    p: &DeepLogParams,
    rng: &mut SplitMix64,
) -> candle_core::Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let n = var.elem_count();
        let values: Vec<f32> = if name.starts_with("embedding") {
            // N(0, 1) by Box–Muller.
            (0..n)
                .map(|_| {
                    let u1 = rng.next_f64().max(1e-12);
                    let u2 = rng.next_f64();
                    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
                })
                .collect()
        } else {
            // LSTM and output layers both take `hidden` inputs: U(-1/√H, 1/√H).
            let k = 1.0 / (p.hidden as f64).sqrt();
            (0..n)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * k) as f32)
                .collect()
        };
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu)?)?;
    }
    Ok(())
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>, DetectError> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(candle_err)
}

impl DeepLog {
    fn classes(&self) -> usize {
        self.vocab.len() + 2
    }

    fn end_class(&self) -> u32 {
        self.vocab.len() as u32 + 1
    }

    /// Trains on normal sessions. `progress` is called after each epoch with the epoch
    /// number and its mean loss (`params.epochs` epochs, or more to reach
    /// `params.min_steps` optimiser steps).
    pub fn train(
        sessions: &[Vec<u32>],
        params: &DeepLogParams,
        mut progress: impl FnMut(usize, f64),
    ) -> Result<DeepLog, DetectError> {
        params.validate()?;
        let start = std::time::Instant::now();
        let vocab = Vocab::of(sessions.iter().map(|s| s.as_slice()));
        if vocab.is_empty() || sessions.len() < 2 {
            return Err(DetectError::Training(format!(
                "{} sessions with {} distinct keys; DeepLog needs normal sessions to learn from",
                sessions.len(),
                vocab.len()
            )));
        }
        let h = params.window;
        let end = vocab.len() as u32 + 1;
        let mut counts: HashMap<Example, u32> = HashMap::new();
        let mut examples = 0usize;
        let mut padded = Vec::new();
        for s in sessions {
            padded.clear();
            padded.resize(h, PAD);
            padded.extend(s.iter().map(|&k| vocab.index(k).expect("in vocab")));
            let targets = s.len() + usize::from(params.end_of_session);
            for j in 0..targets {
                let target = if j < s.len() { padded[j + h] } else { end };
                *counts.entry((padded[j..j + h].into(), target)).or_default() += 1;
                examples += 1;
            }
        }
        if counts.is_empty() {
            return Err(DetectError::Training("the sessions hold no keys".into()));
        }
        let mut distinct: Vec<(Example, u32)> = counts.into_iter().collect();
        distinct.sort_unstable();
        let classes = vocab.len() + 2;
        let tokens = vocab.len() + 1;

        let device = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let net = Net::new(params, tokens, classes, &vb).map_err(candle_err)?;
        let mut rng = SplitMix64::new(params.seed);
        init_weights(&varmap, params, &mut rng).map_err(candle_err)?;
        let mut opt = candle_nn::AdamW::new(
            varmap.all_vars(),
            candle_nn::ParamsAdamW {
                lr: params.learning_rate,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
        .map_err(candle_err)?;

        let mut order: Vec<usize> = (0..distinct.len()).collect();
        let mut final_loss = f64::NAN;
        let steps_per_epoch = distinct.len().div_ceil(params.batch);
        let epochs = params
            .epochs
            .max(params.min_steps.div_ceil(steps_per_epoch));
        for epoch in 0..epochs {
            rng.shuffle(&mut order);
            let mut loss_sum = 0.0;
            let mut weight_sum = 0.0;
            for batch in order.chunks(params.batch) {
                let mut xs = Vec::with_capacity(batch.len() * h);
                let mut ys = Vec::with_capacity(batch.len());
                let mut ws = Vec::with_capacity(batch.len());
                for &i in batch {
                    let ((window, target), count) = &distinct[i];
                    xs.extend_from_slice(window);
                    ys.push(*target);
                    ws.push(*count as f32);
                }
                let total: f32 = ws.iter().sum();
                let x = Tensor::from_vec(xs, (batch.len(), h), &device).map_err(candle_err)?;
                let y = Tensor::from_vec(ys, (batch.len(), 1), &device).map_err(candle_err)?;
                let w = Tensor::from_vec(ws, batch.len(), &device).map_err(candle_err)?;
                let loss = (|| {
                    let logits = net.forward(&x)?;
                    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
                    let picked = logp.gather(&y, 1)?.squeeze(1)?;
                    (picked * &w)?
                        .sum_all()?
                        .affine(-1.0 / f64::from(total), 0.0)
                })()
                .map_err(candle_err)?;
                opt.backward_step(&loss).map_err(candle_err)?;
                let l = loss.to_scalar::<f32>().map_err(candle_err)? as f64;
                loss_sum += l * f64::from(total);
                weight_sum += f64::from(total);
            }
            final_loss = loss_sum / weight_sum.max(1.0);
            if !final_loss.is_finite() {
                return Err(DetectError::Training(format!(
                    "the loss diverged at epoch {} (lower the learning rate)",
                    epoch + 1
                )));
            }
            progress(epoch + 1, final_loss);
        }

        // Copy the weights out of candle into the scoring layout.
        let data = varmap.data().lock().expect("varmap lock");
        let get = |name: &str| -> Result<Vec<f32>, DetectError> {
            let var = data
                .get(name)
                .ok_or_else(|| DetectError::Training(format!("no variable {name}")))?;
            to_vec(var.as_tensor())
        };
        let mut layers = Vec::new();
        for l in 0..params.layers {
            let b_ih = get(&format!("lstm.bias_ih_l{l}"))?;
            let b_hh = get(&format!("lstm.bias_hh_l{l}"))?;
            layers.push(LayerWeights {
                w_ih: get(&format!("lstm.weight_ih_l{l}"))?,
                w_hh: get(&format!("lstm.weight_hh_l{l}"))?,
                bias: b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect(),
            });
        }
        let weights = Weights {
            embedding: get("embedding.weight")?,
            layers,
            out_w: get("out.weight")?,
            out_b: get("out.bias")?,
        };
        drop(data);
        let mut model = DeepLog::assemble(
            params.clone(),
            vocab,
            weights,
            TrainingInfo {
                sessions: sessions.len(),
                examples,
                distinct_examples: distinct.len(),
                epochs,
                final_loss,
                train_top_g_accuracy: 0.0,
                seconds: 0.0,
            },
        )?;
        let mut within = 0u64;
        let mut all = 0u64;
        for ((window, target), count) in &distinct {
            if model.predicted(&model.top_g(window), *target).is_some() {
                within += u64::from(*count);
            }
            all += u64::from(*count);
        }
        model.training.train_top_g_accuracy = within as f64 / all.max(1) as f64;
        model.training.seconds = start.elapsed().as_secs_f64();
        Ok(model)
    }

    fn assemble(
        params: DeepLogParams,
        vocab: Vocab,
        weights: Weights,
        training: TrainingInfo,
    ) -> Result<DeepLog, DetectError> {
        params.validate()?;
        let (hid, emb) = (params.hidden, params.embedding);
        let tokens = vocab.len() + 1;
        let classes = vocab.len() + 2;
        let bad = |what: &str| Err(DetectError::Model(format!("{what} has the wrong size")));
        if weights.embedding.len() != tokens * emb {
            return bad("the embedding");
        }
        if weights.layers.len() != params.layers {
            return bad("the layer list");
        }
        for (l, w) in weights.layers.iter().enumerate() {
            let input = if l == 0 { emb } else { hid };
            if w.w_ih.len() != 4 * hid * input
                || w.w_hh.len() != 4 * hid * hid
                || w.bias.len() != 4 * hid
            {
                return bad("an LSTM layer");
            }
        }
        if weights.out_w.len() != classes * hid || weights.out_b.len() != classes {
            return bad("the output layer");
        }
        let all_finite = weights
            .embedding
            .iter()
            .chain(&weights.out_w)
            .chain(&weights.out_b)
            .all(|v| v.is_finite())
            && weights.layers.iter().all(|l| {
                l.w_ih
                    .iter()
                    .chain(&l.w_hh)
                    .chain(&l.bias)
                    .all(|v| v.is_finite())
            });
        if !all_finite {
            return Err(DetectError::Model(
                "the weights hold NaN or infinity".into(),
            ));
        }
        // First layer: W_ih · embedding[token] + biases, per token.
        let first = &weights.layers[0];
        let mut first_input = vec![0f32; tokens * 4 * hid];
        for t in 0..tokens {
            let e = &weights.embedding[t * emb..(t + 1) * emb];
            let out = &mut first_input[t * 4 * hid..(t + 1) * 4 * hid];
            for (g, o) in out.iter_mut().enumerate() {
                *o = first.bias[g] + dot(&first.w_ih[g * emb..(g + 1) * emb], e);
            }
        }
        Ok(DeepLog {
            params,
            vocab,
            weights,
            training,
            first_input,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The model as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&Saved {
            format: FORMAT,
            params: self.params.clone(),
            vocab: self.vocab.clone(),
            weights: self.weights.clone(),
            training: self.training.clone(),
        })
        .expect("the model serialises")
    }

    /// A model saved by [`DeepLog::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<DeepLog, DetectError> {
        let saved: Saved =
            serde_json::from_slice(bytes).map_err(|e| DetectError::Model(e.to_string()))?;
        if saved.format != FORMAT {
            return Err(DetectError::Model(format!(
                "format {} (this Vigil reads format {FORMAT})",
                saved.format
            )));
        }
        DeepLog::assemble(
            saved.params,
            saved.vocab.rebuilt(),
            saved.weights,
            saved.training,
        )
    }

    /// Sets the size of the prediction cache (0 turns it off) and empties it.
    pub fn set_cache(&mut self, windows: usize) {
        self.params.cache = windows;
        self.cache.lock().expect("cache lock").clear();
    }

    /// The parameters.
    pub fn params(&self) -> &DeepLogParams {
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

    /// Logits of the next class after a window of token ids.
    fn logits(&self, window: &[u32]) -> Vec<f32> {
        let hid = self.params.hidden;
        let layers = &self.weights.layers;
        let mut h = vec![0f32; layers.len() * hid];
        let mut c = vec![0f32; layers.len() * hid];
        let mut gates = vec![0f32; 4 * hid];
        for &token in window {
            for (l, w) in layers.iter().enumerate() {
                if l == 0 {
                    let t = token as usize;
                    gates.copy_from_slice(&self.first_input[t * 4 * hid..(t + 1) * 4 * hid]);
                } else {
                    let below = &h[(l - 1) * hid..l * hid];
                    for (g, o) in gates.iter_mut().enumerate() {
                        *o = w.bias[g] + dot(&w.w_ih[g * hid..(g + 1) * hid], below);
                    }
                }
                let hl = &h[l * hid..(l + 1) * hid];
                for (g, o) in gates.iter_mut().enumerate() {
                    *o += dot(&w.w_hh[g * hid..(g + 1) * hid], hl);
                }
                let cl = &mut c[l * hid..(l + 1) * hid];
                let mut hn = vec![0f32; hid];
                for u in 0..hid {
                    let i = sigmoid(gates[u]);
                    let f = sigmoid(gates[hid + u]);
                    let g = gates[2 * hid + u].tanh();
                    let o = sigmoid(gates[3 * hid + u]);
                    cl[u] = f * cl[u] + i * g;
                    hn[u] = o * cl[u].tanh();
                }
                h[l * hid..(l + 1) * hid].copy_from_slice(&hn);
            }
        }
        let top = &h[(layers.len() - 1) * hid..];
        (0..self.classes())
            .map(|k| self.weights.out_b[k] + dot(&self.weights.out_w[k * hid..(k + 1) * hid], top))
            .collect()
    }

    /// The `g` most likely next classes after a window, best first, with their
    /// probabilities (cached).
    fn top_g(&self, window: &[u32]) -> Top {
        let caching = self.params.cache > 0;
        if caching && let Some(hit) = self.cache.lock().expect("cache lock").get(window) {
            return hit.clone();
        }
        let logits = self.logits(window);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let norm: f32 = logits.iter().skip(1).map(|l| (l - max).exp()).sum();
        let mut order: Vec<u32> = (0..logits.len() as u32).filter(|&k| k != PAD).collect();
        order.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        order.truncate(self.params.top_g);
        let top: Top = order
            .into_iter()
            .map(|k| (k, (logits[k as usize] - max).exp() / norm))
            .collect();
        if !caching {
            return top;
        }
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= self.params.cache {
            cache.clear();
        }
        cache.insert(window.into(), top.clone());
        top
    }

    /// The rank of `class` among the predictions after `window`, if it is predicted.
    fn predicted(&self, top: &[(u32, f32)], class: u32) -> Option<usize> {
        let min = self.params.min_probability as f32;
        top.iter().position(|&(c, p)| c == class && p >= min)
    }

    fn class_key(&self, class: u32) -> Option<u32> {
        if class == self.end_class() {
            None
        } else {
            self.vocab.key(class)
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums so that the compiler vectorises the loop.
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (x, y) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in a[chunks..].iter().zip(&b[chunks..]) {
        sum += x * y;
    }
    sum
}

impl SessionDetector for DeepLog {
    fn name(&self) -> &'static str {
        "deeplog"
    }

    fn judge(&self, session: &[u32]) -> Verdict {
        if let Some(verdict) = self.vocab.unseen_verdict(session) {
            return verdict;
        }
        let h = self.params.window;
        let g = self.params.top_g;
        let mut padded = vec![PAD; h];
        padded.extend(
            session
                .iter()
                .map(|&k| self.vocab.index(k).expect("checked above")),
        );
        let targets = session.len() + usize::from(self.params.end_of_session);
        let mut first: Option<Reason> = None;
        let mut misses = 0usize;
        let mut worst_rank = 0usize;
        for j in 0..targets {
            let target = if j < session.len() {
                padded[j + h]
            } else {
                self.end_class()
            };
            let top = self.top_g(&padded[j..j + h]);
            match self.predicted(&top, target) {
                Some(rank) => worst_rank = worst_rank.max(rank),
                None => {
                    misses += 1;
                    if first.is_none() {
                        let expected = top.iter().map(|&(c, _)| self.class_key(c)).collect();
                        first = Some(if j < session.len() {
                            Reason::Unexpected {
                                position: j,
                                key: session[j],
                                rank: g,
                                expected,
                            }
                        } else {
                            Reason::UnexpectedEnd {
                                length: session.len(),
                                expected,
                            }
                        });
                    }
                }
            }
        }
        match first {
            Some(reason) => Verdict {
                anomalous: true,
                score: 1.0 + misses as f64 / targets.max(1) as f64,
                reason: Some(reason),
            },
            None => Verdict::normal((worst_rank + 1) as f64 / (g + 1) as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two normal session shapes: a b c d e (sometimes with c repeated) and a b x y e.
    fn normal() -> Vec<Vec<u32>> {
        crate::detect::test_sessions()
    }

    fn params() -> DeepLogParams {
        DeepLogParams {
            window: 3,
            top_g: 1,
            hidden: 16,
            embedding: 8,
            epochs: 60,
            batch: 16,
            learning_rate: 0.02,
            ..DeepLogParams::default()
        }
    }

    #[test]
    fn learns_sequences_and_explains_misses() {
        // g = 2: after `1 2` both 3 and 7 are normal, after `3` both 3 and 4.
        let mut epochs = 0;
        let d2 = DeepLog::train(
            &normal(),
            &DeepLogParams {
                top_g: 2,
                ..params()
            },
            |e, _| epochs = e,
        )
        .unwrap();
        assert!(epochs >= 60 && epochs == d2.training().epochs);
        assert!(d2.training().final_loss < 0.5, "{:?}", d2.training());
        assert!(
            d2.training().train_top_g_accuracy > 0.99,
            "{:?}",
            d2.training()
        );
        for s in normal() {
            assert!(!d2.judge(&s).anomalous, "{s:?}");
        }
        // Out of order: 8 before 7.
        let v = d2.judge(&[1, 2, 8, 7, 5]);
        assert!(v.anomalous && v.score > 1.0);
        match v.reason {
            Some(Reason::Unexpected {
                position,
                key,
                expected,
                ..
            }) => {
                assert_eq!((position, key), (2, 8));
                assert!(
                    expected.contains(&Some(7)) && expected.contains(&Some(3)),
                    "{expected:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Stops early.
        let v = d2.judge(&[1, 2, 3, 4]);
        assert!(
            matches!(v.reason, Some(Reason::UnexpectedEnd { length: 4, .. })),
            "{v:?}"
        );
        // Never seen.
        let v = d2.judge(&[1, 2, 42]);
        assert_eq!(
            v.reason,
            Some(Reason::UnseenKey {
                position: 2,
                key: 42
            })
        );
    }

    #[test]
    fn same_seed_same_model_and_save_restore() {
        let p = DeepLogParams {
            epochs: 5,
            ..params()
        };
        let a = DeepLog::train(&normal(), &p, |_, _| ()).unwrap();
        let b = DeepLog::train(&normal(), &p, |_, _| ()).unwrap();
        assert_eq!(a.weights, b.weights);
        let back = DeepLog::from_json(&a.to_json()).unwrap();
        for s in normal().iter().chain([&vec![1, 8, 2]]) {
            assert_eq!(back.judge(s), a.judge(s));
        }
        // The fused scorer agrees with candle's forward pass.
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let net = Net::new(&p, a.vocab.len() + 1, a.classes(), &vb).unwrap();
        {
            let data = varmap.data().lock().unwrap();
            let set = |name: &str, v: &[f32]| {
                let var = &data[name];
                var.set(&Tensor::from_vec(v.to_vec(), var.shape(), &device).unwrap())
                    .unwrap();
            };
            set("embedding.weight", &a.weights.embedding);
            set("out.weight", &a.weights.out_w);
            set("out.bias", &a.weights.out_b);
            for (l, w) in a.weights.layers.iter().enumerate() {
                set(&format!("lstm.weight_ih_l{l}"), &w.w_ih);
                set(&format!("lstm.weight_hh_l{l}"), &w.w_hh);
                set(&format!("lstm.bias_ih_l{l}"), &w.bias);
                set(&format!("lstm.bias_hh_l{l}"), &vec![0.0; w.bias.len()]);
            }
        }
        let window = [0u32, 1, 2];
        let x = Tensor::from_vec(window.to_vec(), (1, 3), &device).unwrap();
        let want = net
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let got = a.logits(&window);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn refuses_bad_input() {
        assert!(DeepLog::train(&[], &params(), |_, _| ()).is_err());
        assert!(
            DeepLog::train(
                &normal(),
                &DeepLogParams {
                    window: 0,
                    ..params()
                },
                |_, _| ()
            )
            .is_err()
        );
        assert!(DeepLog::from_json(b"{}").is_err());
        let a = DeepLog::train(
            &normal(),
            &DeepLogParams {
                epochs: 1,
                ..params()
            },
            |_, _| (),
        )
        .unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&a.to_json()).unwrap();
        v["weights"]["out_b"] = serde_json::json!([1.0]);
        assert!(DeepLog::from_json(&serde_json::to_vec(&v).unwrap()).is_err());
    }
}
