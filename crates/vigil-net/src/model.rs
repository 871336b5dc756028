//! The network model: features scaled to their quantiles among normal traffic, a scorer
//! (distance to the k-th nearest normal connection, or an Isolation Forest), a calibration
//! on held-out normal traffic that turns a raw score into the share of normal connections
//! it exceeds, and a threshold at a chosen false-positive rate.
//!
//! Why quantiles: connection features are heavy-tailed and zero-inflated (bytes, counts).
//! Mapping each to its rank among normal connections puts every feature on [0, 1] with
//! equal say, so a distance or a random split means the same whatever the units. Values
//! at or below the normal minimum map to 0 and at or above the maximum to 1 (scikit-learn's
//! `QuantileTransformer` rule; without it a column that is mostly zero maps 0 to 0.5).
//!
//! Categorical features (protocol, service, flag for NSL-KDD) compare by identity with a
//! weight: as one-hot columns scaled by `w`, two different seen levels are `2w²` apart in
//! squared distance and an unseen level `w²` from any seen one.

use crate::features::Baselines;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use vigil_ml::{IsolationForest, IsolationParams, Matrix, MlError};

/// Points in each quantile table.
const QUANTILES: usize = 1000;
/// Calibration scores kept in a model.
const MAX_CALIBRATION: usize = 4000;
/// A category never seen in training.
const UNSEEN: u32 = u32::MAX;

/// One numeric column: its name and whether `ln(1 + x)` is taken first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericColumn {
    /// Name.
    pub name: String,
    /// Take `ln(1 + x)` (heavy-tailed counts and sizes).
    pub log: bool,
}

/// What a sample holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Numeric columns.
    pub numeric: Vec<NumericColumn>,
    /// Categorical columns.
    pub categorical: Vec<String>,
}

/// One input to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Numeric values, in schema order.
    pub numeric: Vec<f64>,
    /// Categorical values, in schema order.
    pub categorical: Vec<String>,
}

/// Which scorer the model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Distance to the k-th nearest normal connection.
    #[default]
    Knn,
    /// Isolation Forest path length.
    Iforest,
}

impl Method {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Knn => "knn",
            Method::Iforest => "iforest",
        }
    }
}

/// Training parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelParams {
    /// The scorer.
    pub method: Method,
    /// Neighbours: the score is the distance to the k-th nearest.
    pub k: usize,
    /// Normal connections kept as references (a random subset when there are more).
    pub max_references: usize,
    /// Weight of a categorical column (see the module docs).
    pub category_weight: f64,
    /// Isolation Forest: trees.
    pub trees: usize,
    /// Isolation Forest: rows per tree.
    pub max_samples: usize,
    /// Share of the normal rows held out to calibrate scores and set the threshold.
    pub calibration_share: f64,
    /// Target false-positive rate: the threshold is the `1 - fpr` quantile of the
    /// held-out normal scores.
    pub target_fpr: f64,
    /// Let values above the normal range score past its end, up to one range further
    /// (off: they saturate at 1, as scikit-learn's `QuantileTransformer` does).
    pub beyond_range: bool,
    /// Random seed (subsets, the forest).
    pub seed: u64,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            method: Method::Knn,
            k: 3,
            max_references: 4000,
            category_weight: 0.8,
            trees: 200,
            max_samples: 2048,
            calibration_share: 0.2,
            target_fpr: 0.02,
            beyond_range: true,
            seed: 0,
        }
    }
}

/// Why a model cannot be trained or used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Too little data.
    #[error("{0}")]
    Data(String),
    /// A bad parameter.
    #[error("invalid parameter `{name}`: {reason}")]
    Param {
        /// Its name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A sample that does not fit the schema.
    #[error("the sample has {got} {kind} values, the model expects {expected}")]
    Shape {
        /// `numeric` or `categorical`.
        kind: &'static str,
        /// Given.
        got: usize,
        /// Expected.
        expected: usize,
    },
    /// From the forest.
    #[error(transparent)]
    Ml(#[from] MlError),
    /// A model file that cannot be right.
    #[error("corrupt model: {0}")]
    Corrupt(String),
}

/// Maps one column's values to their quantile among normal values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct QuantileTable {
    q: Vec<f64>,
}

impl QuantileTable {
    /// Quantiles at `i / (n - 1)` with linear interpolation (numpy's default).
    fn fit(mut values: Vec<f64>) -> QuantileTable {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let q = (0..QUANTILES)
            .map(|i| {
                let pos = i as f64 / (QUANTILES - 1) as f64 * (n - 1) as f64;
                let lo = pos.floor() as usize;
                let hi = (lo + 1).min(n - 1);
                values[lo] + (pos - lo as f64) * (values[hi] - values[lo])
            })
            .collect();
        QuantileTable { q }
    }

    fn p(i: usize) -> f64 {
        i as f64 / (QUANTILES - 1) as f64
    }

    /// `x`'s quantile in [0, 1]; ties take the middle of their run. With `beyond`,
    /// values above the normal range continue past 1 by how far out they are, relative to
    /// the range (at most 1 more), so that 50 MB is not "as much as the largest normal
    /// transfer". Values below it stay at 0: "less than ever" is rarely the signal, and
    /// counts that only grow would drift below it.
    fn transform(&self, x: f64, beyond: bool) -> f64 {
        let q = &self.q;
        if x.is_nan() {
            return 0.5;
        }
        let (lo, hi) = (q[0], q[q.len() - 1]);
        if x - 1e-7 < lo {
            return 0.0;
        }
        if x + 1e-7 > hi {
            return if beyond && x > hi {
                1.0 + ((x - hi) / (hi - lo).max(1e-9)).min(1.0)
            } else {
                1.0
            };
        }
        let a = q.partition_point(|v| *v < x); // first q >= x
        let b = q.partition_point(|v| *v <= x); // one past the last q <= x
        if a < b {
            return (Self::p(a) + Self::p(b - 1)) / 2.0;
        }
        // q[a - 1] < x < q[a]
        let (lo, hi) = (a - 1, a);
        Self::p(lo) + (x - q[lo]) / (q[hi] - q[lo]) * (Self::p(hi) - Self::p(lo))
    }

    /// The value at quantile `u` (for explanations).
    fn inverse(&self, u: f64) -> f64 {
        let pos = u.clamp(0.0, 1.0) * (QUANTILES - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(QUANTILES - 1);
        self.q[lo] + (pos - lo as f64) * (self.q[hi] - self.q[lo])
    }
}

/// Samples to the model's space: numeric values to quantiles, categories to ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Preprocessor {
    schema: Schema,
    beyond: bool,
    tables: Vec<QuantileTable>,
    levels: Vec<HashMap<String, u32>>,
}

/// A sample in the model's space.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    u: Vec<f32>,
    cat: Vec<u32>,
}

impl Preprocessor {
    fn fit(schema: &Schema, samples: &[Sample], beyond: bool) -> Preprocessor {
        let tables = schema
            .numeric
            .iter()
            .enumerate()
            .map(|(j, c)| {
                QuantileTable::fit(
                    samples
                        .iter()
                        .map(|s| prepare(s.numeric[j], c.log))
                        .collect(),
                )
            })
            .collect();
        let levels = (0..schema.categorical.len())
            .map(|j| {
                let mut names: Vec<&str> =
                    samples.iter().map(|s| s.categorical[j].as_str()).collect();
                names.sort_unstable();
                names.dedup();
                names
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| (n.to_string(), i as u32))
                    .collect()
            })
            .collect();
        Preprocessor {
            schema: schema.clone(),
            beyond,
            tables,
            levels,
        }
    }

    fn check(&self, s: &Sample) -> Result<(), ModelError> {
        if s.numeric.len() != self.schema.numeric.len() {
            return Err(ModelError::Shape {
                kind: "numeric",
                got: s.numeric.len(),
                expected: self.schema.numeric.len(),
            });
        }
        if s.categorical.len() != self.schema.categorical.len() {
            return Err(ModelError::Shape {
                kind: "categorical",
                got: s.categorical.len(),
                expected: self.schema.categorical.len(),
            });
        }
        Ok(())
    }

    fn point(&self, s: &Sample) -> Point {
        Point {
            u: s.numeric
                .iter()
                .zip(&self.schema.numeric)
                .zip(&self.tables)
                .map(|((x, c), t)| t.transform(prepare(*x, c.log), self.beyond) as f32)
                .collect(),
            cat: s
                .categorical
                .iter()
                .zip(&self.levels)
                .map(|(v, l)| l.get(v).copied().unwrap_or(UNSEEN))
                .collect(),
        }
    }

    /// The dense row the forest reads: quantiles, then one-hot categories.
    fn dense(&self, p: &Point, out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&p.u);
        for (id, levels) in p.cat.iter().zip(&self.levels) {
            let start = out.len();
            out.resize(start + levels.len(), 0.0);
            if *id != UNSEEN {
                out[start + *id as usize] = 1.0;
            }
        }
    }

    fn dense_len(&self) -> usize {
        self.schema.numeric.len() + self.levels.iter().map(HashMap::len).sum::<usize>()
    }
}

fn prepare(x: f64, log: bool) -> f64 {
    if log { x.max(0.0).ln_1p() } else { x }
}

/// Most references in a leaf of the ball tree.
const LEAF_SIZE: usize = 32;

/// A ball of references: every one within `radius` of `centroid`; a leaf holds the
/// references `start..end`, an inner node its two children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ball {
    start: u32,
    end: u32,
    radius: f32,
    centroid: Vec<f32>,
    /// Children (indices into the node list), for inner nodes.
    children: Option<(u32, u32)>,
}

/// The k-nearest-neighbour scorer over normal references.
///
/// References are grouped by their categories; each group is a ball tree built by
/// recursive bisection around two far-apart points. A query searches its own group first
/// (setting a tight k-th distance), then only the groups whose category distance is below
/// it, pruning every ball whose lower bound (`cat² + max(0, |q - c| - radius)²`) passes
/// the k-th best distance so far: exact, and far less work than a scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Knn {
    k: usize,
    /// Squared distance between two different seen categories, and to an unseen one.
    cat_differ: f32,
    cat_unseen: f32,
    dims: usize,
    /// References, row-major, `dims` quantiles each (in `order`, zero-padded to a
    /// multiple of 8), group by group.
    u: Vec<f32>,
    cat: Vec<u32>,
    n_cat: usize,
    /// Numeric dimensions in the order distances add them up (widest spread first, so
    /// that partial sums pass the bound early).
    order: Vec<u32>,
    balls: Vec<Ball>,
    /// The root ball of each category group, in category order.
    groups: Vec<u32>,
    /// Distances are exact up to this cap; a point with fewer than `k` references within
    /// it scores the cap. Set at twice the largest calibration score, far past the
    /// threshold, so that clear anomalies do not search the whole reference set.
    cap: f32,
}

/// Squared distance of two vectors whose length is a multiple of 8, in eight independent
/// lanes so that the compiler can use SIMD (float sums in one chain cannot be reordered).
#[inline]
fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            let t = x[i] - y[i];
            lanes[i] += t * t;
        }
    }
    lanes.iter().sum()
}

/// `dims` rounded up to a multiple of 8 (vectors are zero-padded to it).
fn padded(dims: usize) -> usize {
    dims.div_ceil(8) * 8
}

/// Builds the ball over `rows` (indices into `u`, `dims` wide; reordered in place so each
/// ball is a contiguous run starting at `offset`) and returns its index in `balls`.
fn build_ball(
    u: &[f32],
    dims: usize,
    rows: &mut [usize],
    offset: usize,
    balls: &mut Vec<Ball>,
) -> u32 {
    let row = |i: usize| &u[i * dims..(i + 1) * dims];
    let n = rows.len() as f32;
    let mut centroid = vec![0.0f32; dims];
    for &r in rows.iter() {
        for (c, v) in centroid.iter_mut().zip(row(r)) {
            *c += v / n;
        }
    }
    let radius = rows
        .iter()
        .map(|&r| sq_dist(&centroid, row(r)).sqrt())
        .fold(0.0f32, f32::max);
    let at = balls.len();
    balls.push(Ball {
        start: offset as u32,
        end: (offset + rows.len()) as u32,
        // A little slack for rounding, so the bound stays a bound.
        radius: radius * 1.000_1 + 1e-6,
        centroid,
        children: None,
    });
    if rows.len() <= LEAF_SIZE || radius == 0.0 {
        return at as u32;
    }
    let far = |from: &[f32], rows: &[usize]| {
        rows.iter()
            .copied()
            .max_by(|a, b| sq_dist(from, row(*a)).total_cmp(&sq_dist(from, row(*b))))
            .expect("rows")
    };
    let a = far(&balls[at].centroid.clone(), rows);
    let b = far(row(a), rows);
    let mut split = 0;
    for j in 0..rows.len() {
        if sq_dist(row(rows[j]), row(a)) <= sq_dist(row(rows[j]), row(b)) {
            rows.swap(split, j);
            split += 1;
        }
    }
    if split == 0 || split == rows.len() {
        split = rows.len() / 2;
    }
    let (l, r) = rows.split_at_mut(split);
    let left = build_ball(u, dims, l, offset, balls);
    let right = build_ball(u, dims, r, offset + split, balls);
    balls[at].children = Some((left, right));
    at as u32
}

impl Knn {
    fn fit(points: &[Point], k: usize, weight: f64) -> Knn {
        let dims = points.first().map_or(0, |p| p.u.len());
        let n_cat = points.first().map_or(0, |p| p.cat.len());
        let mut spread: Vec<(f64, u32)> = (0..dims)
            .map(|d| {
                let n = points.len() as f64;
                let mean = points.iter().map(|p| f64::from(p.u[d])).sum::<f64>() / n;
                let var = points
                    .iter()
                    .map(|p| (f64::from(p.u[d]) - mean).powi(2))
                    .sum::<f64>()
                    / n;
                (var, d as u32)
            })
            .collect();
        spread.sort_by(|a, b| b.0.total_cmp(&a.0));
        let order: Vec<u32> = spread.into_iter().map(|(_, d)| d).collect();
        let mut sorted: Vec<&Point> = points.iter().collect();
        sorted.sort_by(|a, b| a.cat.cmp(&b.cat));
        let width = padded(dims);
        let flat: Vec<f32> = sorted
            .iter()
            .flat_map(|p| {
                order
                    .iter()
                    .map(|&d| p.u[d as usize])
                    .chain(std::iter::repeat_n(0.0, width - dims))
            })
            .collect();
        // A ball tree within each run of equal categories.
        let mut balls = Vec::new();
        let mut groups = Vec::new();
        let mut perm: Vec<usize> = (0..sorted.len()).collect();
        let mut i = 0;
        while i < sorted.len() {
            let mut j = i + 1;
            while j < sorted.len() && sorted[j].cat == sorted[i].cat {
                j += 1;
            }
            groups.push(build_ball(&flat, width, &mut perm[i..j], i, &mut balls));
            i = j;
        }
        let mut u = Vec::with_capacity(flat.len());
        let mut cat = Vec::with_capacity(points.len() * n_cat);
        for &r in &perm {
            u.extend_from_slice(&flat[r * width..(r + 1) * width]);
            cat.extend_from_slice(&sorted[r].cat);
        }
        let w2 = (weight * weight) as f32;
        Knn {
            k,
            cat_differ: 2.0 * w2,
            cat_unseen: w2,
            dims,
            u,
            cat,
            n_cat,
            order,
            balls,
            groups,
            cap: f32::INFINITY,
        }
    }

    fn n_refs(&self) -> usize {
        self.cat
            .len()
            .checked_div(self.n_cat)
            .unwrap_or_else(|| self.u.len() / padded(self.dims).max(1))
    }

    fn cat_term(&self, query: &[u32], r: usize) -> f32 {
        let cats = &self.cat[r * self.n_cat..(r + 1) * self.n_cat];
        query
            .iter()
            .zip(cats)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| {
                if *a == UNSEEN {
                    self.cat_unseen
                } else {
                    self.cat_differ
                }
            })
            .sum()
    }

    /// `base` plus the squared distance from `q` (quantiles in `order`, padded) to
    /// reference `r`, or `None` once it passes `bound`.
    #[inline]
    fn distance(&self, q: &[f32], base: f32, r: usize, bound: f32) -> Option<f32> {
        let width = padded(self.dims);
        let row = &self.u[r * width..(r + 1) * width];
        // Sixteen dimensions (two SIMD rows) between bound checks.
        let mut d = base;
        for (a, b) in q.chunks(16).zip(row.chunks(16)) {
            d += sq_dist(a, b);
            if d > bound {
                return None;
            }
        }
        Some(d)
    }

    /// A reference's quantiles in the original dimension order.
    fn reference(&self, r: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.dims];
        let width = padded(self.dims);
        for (k, &d) in self.order.iter().enumerate() {
            out[d as usize] = self.u[r * width + k];
        }
        out
    }

    /// The distance to the k-th nearest reference and the nearest one's index.
    fn score(&self, p: &Point) -> (f64, usize) {
        let (score, nearest) = self.search_within(p, self.k, self.cap);
        (score, nearest.unwrap_or(0))
    }

    /// The nearest reference, searched without the cap (for explaining the clearest
    /// anomalies, whose capped search found none).
    fn nearest(&self, p: &Point) -> usize {
        self.search_within(p, 1, f32::INFINITY).1.unwrap_or(0)
    }

    /// The distance to the `k`-th nearest reference within `cap` (or `cap`), and the
    /// nearest reference found, if any.
    fn search_within(&self, p: &Point, k: usize, cap: f32) -> (f64, Option<usize>) {
        let n = self.n_refs();
        let k = k.min(n).max(1);
        let mut q: Vec<f32> = self.order.iter().map(|&d| p.u[d as usize]).collect();
        q.resize(padded(self.dims), 0.0);
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
        // The query's own group first, then the others by their category distance.
        let mut groups: Vec<(f32, u32)> = self
            .groups
            .iter()
            .map(|&g| {
                (
                    self.cat_term(&p.cat, self.balls[g as usize].start as usize),
                    g,
                )
            })
            .collect();
        groups.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut bound = cap * cap;
        for (cat, g) in groups {
            if cat > bound {
                break;
            }
            self.search(&q, cat, g, k, &mut best, &mut bound);
        }
        let nearest = best.first().map(|(_, r)| *r);
        if best.len() < k {
            // Fewer than k references within the cap.
            return (f64::from(cap), nearest);
        }
        let kth = best.last().map_or(0.0, |(d, _)| *d);
        (f64::from(kth).sqrt(), nearest)
    }

    fn search(
        &self,
        q: &[f32],
        cat: f32,
        ball: u32,
        k: usize,
        best: &mut Vec<(f32, usize)>,
        bound: &mut f32,
    ) {
        let b = &self.balls[ball as usize];
        let lower = |b: &Ball| {
            let gap = (sq_dist(q, &b.centroid).sqrt() - b.radius).max(0.0);
            cat + gap * gap
        };
        match b.children {
            None => {
                for r in b.start as usize..b.end as usize {
                    if let Some(d) = self.distance(q, cat, r, *bound) {
                        let at = best.partition_point(|(x, _)| *x <= d);
                        best.insert(at, (d, r));
                        if best.len() > k {
                            best.pop();
                        }
                        if best.len() == k {
                            *bound = best[k - 1].0;
                        }
                    }
                }
            }
            Some((l, r)) => {
                let (lb_l, lb_r) = (
                    lower(&self.balls[l as usize]),
                    lower(&self.balls[r as usize]),
                );
                let (first, lb_first, second, lb_second) = if lb_l <= lb_r {
                    (l, lb_l, r, lb_r)
                } else {
                    (r, lb_r, l, lb_l)
                };
                if lb_first <= *bound {
                    self.search(q, cat, first, k, best, bound);
                }
                if lb_second <= *bound {
                    self.search(q, cat, second, k, best, bound);
                }
            }
        }
    }

    /// Checks references and balls read from a file.
    fn validate(&self, dims: usize, n_cat: usize) -> bool {
        let n = self.n_refs();
        self.dims == dims
            && self.n_cat == n_cat
            && self.k > 0
            && self.cap > 0.0
            && self.order.len() == dims
            && self.order.iter().all(|d| (*d as usize) < dims)
            && n > 0
            && self.u.len() == n * padded(dims)
            && self.cat.len() == n * n_cat
            && !self.groups.is_empty()
            && self.groups.iter().all(|g| (*g as usize) < self.balls.len())
            && self.balls.iter().enumerate().all(|(i, b)| {
                b.start < b.end
                    && b.end as usize <= n
                    && b.centroid.len() == padded(dims)
                    && b.radius.is_finite()
                    // Children come after their parent: no cycles.
                    && b.children.is_none_or(|(l, r)| {
                        (l as usize) > i
                            && (r as usize) > i
                            && (l as usize) < self.balls.len()
                            && (r as usize) < self.balls.len()
                    })
            })
    }
}

/// Held-out normal scores: raw score to the share of normal connections it exceeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Calibration {
    sorted: Vec<f64>,
}

impl Calibration {
    fn fit(mut scores: Vec<f64>) -> Calibration {
        scores.sort_by(f64::total_cmp);
        if scores.len() > MAX_CALIBRATION {
            let n = scores.len();
            scores = (0..MAX_CALIBRATION)
                .map(|i| scores[i * (n - 1) / (MAX_CALIBRATION - 1)])
                .collect();
        }
        Calibration { sorted: scores }
    }

    /// Share of calibration scores strictly below `s`.
    fn cdf(&self, s: f64) -> f64 {
        self.sorted.partition_point(|v| *v < s) as f64 / self.sorted.len().max(1) as f64
    }

    /// The `q` quantile, linear between points.
    fn quantile(&self, q: f64) -> f64 {
        let n = self.sorted.len();
        let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        self.sorted[lo] + (pos - lo as f64) * (self.sorted[hi] - self.sorted[lo])
    }
}

/// One feature's part in a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// The feature.
    pub feature: String,
    /// Its value in this sample.
    pub value: String,
    /// What normal traffic shows instead (the nearest normal connection's value, or the
    /// median).
    pub normal: String,
    /// Share of the score it explains, in [0, 1].
    pub weight: f64,
}

/// A scored sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// The raw score (distance, or Isolation Forest's `s(x)`).
    pub raw: f64,
    /// Share of held-out normal connections scoring lower, in [0, 1].
    pub anomaly_score: f64,
    /// `raw` above the threshold.
    pub is_anomaly: bool,
}

/// Where a model's training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainingInfo {
    /// `nsl-kdd:FILE`, `store`, `csv:FILE`, …
    pub source: String,
    /// Rows fitted.
    pub rows: usize,
    /// Rows held out for calibration.
    pub calibration_rows: usize,
    /// Earliest record time, when the data has times.
    pub from: Option<String>,
    /// Latest record time.
    pub to: Option<String>,
    /// Seconds to fit.
    pub fit_seconds: f64,
}

/// A trained network model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetModel {
    /// Format of this file.
    pub format: u32,
    /// Version (`net-YYYYmmddTHHMMSSZ` by default).
    pub version: String,
    /// When it was trained (RFC 3339).
    pub trained_at: String,
    /// Parameters.
    pub params: ModelParams,
    /// Data.
    pub training: TrainingInfo,
    /// Evaluation figures, when measured.
    #[serde(default)]
    pub metrics: serde_json::Value,
    pre: Preprocessor,
    knn: Option<Knn>,
    forest: Option<IsolationForest>,
    calibration: Calibration,
    /// Raw score above which a sample is anomalous.
    pub threshold: f64,
    /// The baselines the live features were measured against (host models only).
    #[serde(default)]
    pub baselines: Option<Baselines>,
}

/// This crate's model format.
pub const FORMAT: u32 = 1;

fn split_rng(seed: u64) -> impl FnMut(usize) -> usize {
    // SplitMix64, local: deterministic subsets without a dependency.
    let mut state = seed ^ 0x5DEE_CE66_D1CE_4E5B;
    move |n: usize| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((u128::from(z) * n as u128) >> 64) as usize
    }
}

impl NetModel {
    /// Trains on `normal` samples (all assumed normal): a random share is held out to
    /// calibrate, the rest fits the preprocessing and the scorer.
    pub fn train(
        schema: &Schema,
        normal: &[Sample],
        params: &ModelParams,
        mut training: TrainingInfo,
    ) -> Result<NetModel, ModelError> {
        let started = std::time::Instant::now();
        if !(0.01..=0.5).contains(&params.calibration_share) {
            return Err(ModelError::Param {
                name: "calibration_share",
                reason: format!("{} is not in [0.01, 0.5]", params.calibration_share),
            });
        }
        if !(0.0001..=0.5).contains(&params.target_fpr) {
            return Err(ModelError::Param {
                name: "target_fpr",
                reason: format!("{} is not in [0.0001, 0.5]", params.target_fpr),
            });
        }
        if params.k == 0 || params.k > 100 {
            return Err(ModelError::Param {
                name: "k",
                reason: format!("{} is not in 1..=100", params.k),
            });
        }
        if params.max_references < 10 {
            return Err(ModelError::Param {
                name: "max_references",
                reason: "keep at least 10 references".into(),
            });
        }
        if normal.len() < 50 {
            return Err(ModelError::Data(format!(
                "{} normal samples: at least 50 are needed to train and calibrate",
                normal.len()
            )));
        }
        for s in normal {
            if s.numeric.len() != schema.numeric.len()
                || s.categorical.len() != schema.categorical.len()
            {
                return Err(ModelError::Shape {
                    kind: "numeric",
                    got: s.numeric.len(),
                    expected: schema.numeric.len(),
                });
            }
        }
        // Shuffle, then hold out the calibration share.
        let mut next = split_rng(params.seed);
        let mut order: Vec<usize> = (0..normal.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, next(i + 1));
        }
        let n_cal = ((normal.len() as f64) * params.calibration_share)
            .round()
            .max(10.0) as usize;
        let (cal_idx, fit_idx) = order.split_at(n_cal);
        let fit: Vec<Sample> = fit_idx.iter().map(|&i| normal[i].clone()).collect();
        let pre = Preprocessor::fit(schema, &fit, params.beyond_range);
        let mut points: Vec<Point> = fit.iter().map(|s| pre.point(s)).collect();
        let (knn, forest) = match params.method {
            Method::Knn => {
                // Distinct references, then a random subset.
                points.sort_by(|a, b| {
                    a.cat.cmp(&b.cat).then_with(|| {
                        a.u.iter()
                            .zip(&b.u)
                            .map(|(x, y)| x.total_cmp(y))
                            .find(|o| o.is_ne())
                            .unwrap_or(std::cmp::Ordering::Equal)
                    })
                });
                points.dedup();
                if points.len() > params.max_references {
                    for i in 0..params.max_references {
                        let j = i + next(points.len() - i);
                        points.swap(i, j);
                    }
                    points.truncate(params.max_references);
                }
                (
                    Some(Knn::fit(&points, params.k, params.category_weight)),
                    None,
                )
            }
            Method::Iforest => {
                let mut rows = Vec::with_capacity(points.len() * pre.dense_len());
                let mut buf = Vec::new();
                for p in &points {
                    pre.dense(p, &mut buf);
                    rows.extend_from_slice(&buf);
                }
                let x = Matrix::new(rows, points.len(), pre.dense_len())?;
                let forest = IsolationForest::fit(
                    &x,
                    &IsolationParams {
                        n_trees: params.trees,
                        max_samples: params.max_samples,
                        seed: params.seed,
                        ..IsolationParams::default()
                    },
                )?;
                (None, Some(forest))
            }
        };
        let mut model = NetModel {
            format: FORMAT,
            version: String::new(),
            trained_at: String::new(),
            params: params.clone(),
            training: TrainingInfo::default(),
            metrics: serde_json::Value::Null,
            pre,
            knn,
            forest,
            calibration: Calibration { sorted: vec![0.0] },
            threshold: 0.0,
            baselines: None,
        };
        let cal: Vec<f64> = cal_idx
            .iter()
            .map(|&i| model.raw_unchecked(&normal[i]))
            .collect();
        model.calibration = Calibration::fit(cal);
        model.threshold = model.calibration.quantile(1.0 - params.target_fpr);
        if let Some(knn) = &mut model.knn {
            let top = model.calibration.sorted.last().copied().unwrap_or(1.0);
            knn.cap = (top.max(model.threshold) * 1.01).max(1e-3) as f32;
        }
        training.rows = fit.len();
        training.calibration_rows = n_cal;
        training.fit_seconds = started.elapsed().as_secs_f64();
        model.training = training;
        let now = chrono::Utc::now();
        model.trained_at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        model.version = format!("net-{}", now.format("%Y%m%dT%H%M%SZ"));
        Ok(model)
    }

    /// The schema samples must follow.
    pub fn schema(&self) -> &Schema {
        &self.pre.schema
    }

    fn raw_unchecked(&self, s: &Sample) -> f64 {
        let p = self.pre.point(s);
        self.raw_point(&p).0
    }

    fn raw_point(&self, p: &Point) -> (f64, usize) {
        if let Some(knn) = &self.knn {
            return knn.score(p);
        }
        let forest = self.forest.as_ref().expect("a model has a scorer");
        let mut row = Vec::with_capacity(self.pre.dense_len());
        self.pre.dense(p, &mut row);
        (forest.score(&row).unwrap_or(0.0), 0)
    }

    /// Scores one sample.
    pub fn score(&self, s: &Sample) -> Result<Scored, ModelError> {
        self.pre.check(s)?;
        let raw = self.raw_unchecked(s);
        Ok(self.scored(raw))
    }

    fn scored(&self, raw: f64) -> Scored {
        Scored {
            raw,
            anomaly_score: self.calibration.cdf(raw),
            is_anomaly: raw > self.threshold,
        }
    }

    /// Scores many samples on up to `threads` threads (0: all cores).
    pub fn score_all(&self, samples: &[Sample], threads: usize) -> Result<Vec<Scored>, ModelError> {
        for s in samples {
            self.pre.check(s)?;
        }
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let mut out = vec![self.scored(0.0); samples.len()];
        let chunk = samples.len().div_ceil(threads).max(256);
        std::thread::scope(|scope| {
            for (slot, input) in out.chunks_mut(chunk).zip(samples.chunks(chunk)) {
                scope.spawn(move || match &self.forest {
                    // The forest scores a block of rows tree by tree (cache-friendly).
                    Some(forest) => {
                        let width = self.pre.dense_len();
                        let mut rows = Vec::with_capacity(input.len() * width);
                        let mut buf = Vec::with_capacity(width);
                        for s in input {
                            self.pre.dense(&self.pre.point(s), &mut buf);
                            rows.extend_from_slice(&buf);
                        }
                        let mut raw = vec![0.0; input.len()];
                        forest
                            .score_dense(&rows, &mut raw)
                            .expect("rows built to the forest's width");
                        for (o, r) in slot.iter_mut().zip(raw) {
                            *o = self.scored(r);
                        }
                    }
                    None => {
                        for (o, s) in slot.iter_mut().zip(input) {
                            *o = self.scored(self.raw_unchecked(s));
                        }
                    }
                });
            }
        });
        Ok(out)
    }

    /// Scores one sample and says which features made the score: against the nearest
    /// normal reference (k-NN) or by how early each feature isolated it (forest).
    pub fn explain(&self, s: &Sample, top: usize) -> Result<(Scored, Vec<Reason>), ModelError> {
        self.pre.check(s)?;
        let p = self.pre.point(s);
        let (raw, mut nearest) = self.raw_point(&p);
        if let Some(knn) = &self.knn
            && raw >= f64::from(knn.cap)
        {
            // The capped search may have found no reference at all: explain against the
            // true nearest one.
            nearest = knn.nearest(&p);
        }
        let scored = self.scored(raw);
        let schema = &self.pre.schema;
        let show = |x: f64| {
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{x:.0}")
            } else {
                format!("{x:.3}")
            }
        };
        let undo = |j: usize, v: f64| {
            if schema.numeric[j].log { v.exp_m1() } else { v }
        };
        let n_num = schema.numeric.len();
        // Weigh every feature first (no strings), then describe only the strongest: this
        // runs for every scored connection.
        let mut weights: Vec<(f64, usize)> = Vec::with_capacity(n_num + p.cat.len());
        let mut nearest_row = Vec::new();
        if let Some(knn) = &self.knn {
            nearest_row = knn.reference(nearest);
            for (j, (a, b)) in p.u.iter().zip(&nearest_row).enumerate().take(n_num) {
                weights.push((f64::from(a - b).powi(2), j));
            }
            let cats = &knn.cat[nearest * knn.n_cat..(nearest + 1) * knn.n_cat];
            for (j, (mine, theirs)) in p.cat.iter().zip(cats).enumerate() {
                if mine != theirs {
                    let d = if *mine == UNSEEN {
                        knn.cat_unseen
                    } else {
                        knn.cat_differ
                    };
                    weights.push((f64::from(d), n_num + j));
                }
            }
        } else if let Some(forest) = &self.forest {
            let mut row = Vec::new();
            self.pre.dense(&p, &mut row);
            let w = forest.contributions(&row)?;
            weights.extend((0..n_num).map(|j| (w[j], j)));
            let mut at = n_num;
            for j in 0..p.cat.len() {
                let n = self.pre.levels[j].len();
                weights.push((w[at..at + n].iter().sum(), n_num + j));
                at += n;
            }
        }
        let total: f64 = weights.iter().map(|(w, _)| w).sum();
        weights.sort_by(|a, b| b.0.total_cmp(&a.0));
        let reasons = weights
            .into_iter()
            .filter(|(w, _)| *w > 0.0)
            .take(top)
            .map(|(w, i)| {
                let weight = if total > 0.0 { w / total } else { 0.0 };
                if i < n_num {
                    let normal = match self.knn {
                        Some(_) => self.pre.tables[i].inverse(f64::from(nearest_row[i])),
                        None => self.pre.tables[i].inverse(0.5),
                    };
                    Reason {
                        feature: schema.numeric[i].name.clone(),
                        value: show(s.numeric[i]),
                        normal: show(undo(i, normal)),
                        weight,
                    }
                } else {
                    let j = i - n_num;
                    let normal = match &self.knn {
                        Some(knn) => {
                            let id = knn.cat[nearest * knn.n_cat + j];
                            self.pre.levels[j]
                                .iter()
                                .find(|(_, v)| **v == id)
                                .map_or_else(String::new, |(n, _)| n.clone())
                        }
                        None => String::new(),
                    };
                    Reason {
                        feature: schema.categorical[j].clone(),
                        value: s.categorical[j].clone(),
                        normal,
                        weight,
                    }
                }
            })
            .collect();
        Ok((scored, reasons))
    }

    /// Checks a model read from a file.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: &str| Err(ModelError::Corrupt(m.to_string()));
        if self.format != FORMAT {
            return Err(ModelError::Corrupt(format!(
                "format {} (this Vigil reads format {FORMAT}): retrain with `vigil net train`",
                self.format
            )));
        }
        if self.pre.tables.len() != self.pre.schema.numeric.len()
            || self.pre.levels.len() != self.pre.schema.categorical.len()
            || self
                .pre
                .tables
                .iter()
                .any(|t| t.q.len() != QUANTILES || t.q.iter().any(|v| !v.is_finite()))
        {
            return bad("preprocessing does not match the schema");
        }
        if self.calibration.sorted.is_empty() || !self.threshold.is_finite() {
            return bad("no calibration");
        }
        match (&self.knn, &self.forest) {
            (Some(k), None) => {
                if !k.validate(
                    self.pre.schema.numeric.len(),
                    self.pre.schema.categorical.len(),
                ) {
                    return bad("k-NN references do not match the schema");
                }
            }
            (None, Some(f)) => {
                f.validate()?;
                if f.n_features() != self.pre.dense_len() {
                    return bad("the forest does not match the schema");
                }
            }
            _ => return bad("a model has exactly one scorer"),
        }
        Ok(())
    }

    /// Reads and validates a model file's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<NetModel, ModelError> {
        let m: NetModel =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Corrupt(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema {
            numeric: vec![
                NumericColumn {
                    name: "bytes".into(),
                    log: true,
                },
                NumericColumn {
                    name: "rate".into(),
                    log: false,
                },
            ],
            categorical: vec!["service".into()],
        }
    }

    fn normal(n: usize) -> Vec<Sample> {
        let mut next = split_rng(7);
        (0..n)
            .map(|i| Sample {
                numeric: vec![
                    1000.0 + next(1000) as f64 + next(1000) as f64,
                    (next(100) + next(100)) as f64 / 500.0,
                ],
                categorical: vec![if i % 3 == 0 { "http" } else { "dns" }.into()],
            })
            .collect()
    }

    #[test]
    fn quantiles_follow_numpy_and_sklearn_rules() {
        let t = QuantileTable::fit(vec![0.0, 0.0, 0.0, 1.0, 2.0]);
        assert_eq!(t.transform(-1.0, false), 0.0);
        assert_eq!(t.transform(0.0, false), 0.0, "the minimum maps to 0");
        assert_eq!(t.transform(2.0, false), 1.0);
        assert_eq!(t.transform(9.0, false), 1.0);
        assert_eq!(t.transform(3.0, true), 1.5);
        assert_eq!(t.transform(9.0, true), 2.0);
        assert_eq!(t.transform(-1.0, true), 0.0);
        assert_eq!(t.transform(0.0, true), 0.0);
        let mid = t.transform(1.0, false);
        assert!((mid - 0.75).abs() < 0.01, "{mid}");
        let between = t.transform(1.5, false);
        assert!(between > mid && between < 1.0);
        assert!((t.inverse(0.75) - 1.0).abs() < 0.01);
    }

    #[test]
    fn both_methods_flag_the_odd_one() {
        for method in [Method::Knn, Method::Iforest] {
            let params = ModelParams {
                method,
                trees: 50,
                max_samples: 256,
                ..ModelParams::default()
            };
            let m =
                NetModel::train(&schema(), &normal(600), &params, TrainingInfo::default()).unwrap();
            m.validate().unwrap();
            let usual = m
                .score(&Sample {
                    numeric: vec![2000.0, 0.2],
                    categorical: vec!["dns".into()],
                })
                .unwrap();
            assert!(!usual.is_anomaly, "{method:?} {usual:?}");
            let odd = Sample {
                numeric: vec![5e7, 0.9],
                categorical: vec!["irc".into()],
            };
            let (s, reasons) = m.explain(&odd, 3).unwrap();
            assert!(s.is_anomaly && s.anomaly_score == 1.0, "{method:?} {s:?}");
            assert!(!reasons.is_empty());
            assert!(reasons.iter().any(|r| r.feature == "bytes"), "{reasons:?}");
            // Round trip.
            let json = serde_json::to_vec(&m).unwrap();
            let back = NetModel::from_json(&json).unwrap();
            assert_eq!(back.score(&odd).unwrap(), m.score(&odd).unwrap());
            // Batch equals single (to f32 rounding of path sums).
            let some = normal(40);
            let all = m.score_all(&some, 2).unwrap();
            let one = m.score(&some[5]).unwrap();
            assert!((all[5].raw - one.raw).abs() < 1e-6 && all[5].is_anomaly == one.is_anomaly);
            // Wrong shapes are errors.
            let short = Sample {
                numeric: vec![1.0],
                categorical: vec!["dns".into()],
            };
            assert!(matches!(m.score(&short), Err(ModelError::Shape { .. })));
        }
    }

    /// Regression: past the cap the search finds no reference, and the reasons were
    /// computed against reference 0; they must be against the true nearest one.
    #[test]
    fn clear_anomalies_are_explained_against_the_true_nearest() {
        let m = NetModel::train(
            &schema(),
            &normal(600),
            &ModelParams::default(),
            TrainingInfo::default(),
        )
        .unwrap();
        let knn = m.knn.as_ref().unwrap();
        let odd = Sample {
            numeric: vec![5e9, 40.0],
            categorical: vec!["irc".into()],
        };
        let p = m.pre.point(&odd);
        assert!(m.raw_point(&p).0 >= f64::from(knn.cap));
        let mut q: Vec<f32> = knn.order.iter().map(|&d| p.u[d as usize]).collect();
        q.resize(padded(knn.dims), 0.0);
        let brute = (0..knn.n_refs())
            .min_by(|&a, &b| {
                let da =
                    knn.cat_term(&p.cat, a) + sq_dist(&q, &knn.u[a * q.len()..(a + 1) * q.len()]);
                let db =
                    knn.cat_term(&p.cat, b) + sq_dist(&q, &knn.u[b * q.len()..(b + 1) * q.len()]);
                da.total_cmp(&db)
            })
            .unwrap();
        let found = knn.nearest(&p);
        let d = |r: usize| {
            knn.cat_term(&p.cat, r) + sq_dist(&q, &knn.u[r * q.len()..(r + 1) * q.len()])
        };
        assert!((d(found) - d(brute)).abs() < 1e-5, "{found} vs {brute}");
        let (_, reasons) = m.explain(&odd, 3).unwrap();
        assert!(!reasons.is_empty());
    }

    #[test]
    fn refuses_too_little_data_and_bad_parameters() {
        let p = ModelParams::default();
        assert!(matches!(
            NetModel::train(&schema(), &normal(10), &p, TrainingInfo::default()),
            Err(ModelError::Data(_))
        ));
        let bad = ModelParams {
            target_fpr: 0.9,
            ..p
        };
        assert!(NetModel::train(&schema(), &normal(100), &bad, TrainingInfo::default()).is_err());
        assert!(NetModel::from_json(b"{}").is_err());
    }
}
