//! Growing one CART tree (Gini impurity) on a bootstrap sample.
//!
//! A bootstrap sample is kept as a weight per row (how many times the row was drawn), so each
//! distinct row is sorted once per node and feature however often it was drawn. A node owns
//! a contiguous range of the sampled rows, partitioned in place when it splits; nodes are
//! grown from an explicit stack, so tree depth never touches the call stack.

use super::ForestParams;
use super::tree::{Node, Tree, goes_left};
use crate::order::order_key;
use crate::rng::SplitMix64;

/// The training set, column-major, shared read-only by every training thread.
pub(crate) struct TrainData<'a> {
    /// Column `f` is `columns[f * n_rows..(f + 1) * n_rows]`.
    pub(crate) columns: &'a [f32],
    /// Number of rows; at most [`super::MAX_TRAINING_ROWS`], so row ids fit in `u32`.
    pub(crate) n_rows: usize,
    /// Number of features.
    pub(crate) n_features: usize,
    /// One label, 0 or 1, per row.
    pub(crate) labels: &'a [u8],
}

impl TrainData<'_> {
    fn column(&self, feature: usize) -> &[f32] {
        &self.columns[feature * self.n_rows..(feature + 1) * self.n_rows]
    }
}

/// The growth limits of [`ForestParams`], resolved against the data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrowLimits {
    max_depth: usize,
    min_samples_split: u64,
    min_samples_leaf: u64,
    max_features: usize,
    bootstrap: bool,
}

impl GrowLimits {
    pub(crate) fn new(params: &ForestParams, max_features: usize) -> Self {
        Self {
            max_depth: params.max_depth.unwrap_or(usize::MAX),
            min_samples_split: params.min_samples_split as u64,
            min_samples_leaf: params.min_samples_leaf as u64,
            max_features,
            bootstrap: params.bootstrap,
        }
    }
}

/// Weighted class counts of a set of samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Stats {
    weight: u64,
    positives: u64,
}

impl Stats {
    fn add(&mut self, weight: u32, label: u8) {
        self.weight += u64::from(weight);
        self.positives += u64::from(weight) * u64::from(label);
    }

    fn minus(self, other: Self) -> Self {
        Self {
            weight: self.weight - other.weight,
            positives: self.positives - other.positives,
        }
    }

    fn is_pure(self) -> bool {
        self.positives == 0 || self.positives == self.weight
    }

    /// Fraction of positives.
    fn value(self) -> f32 {
        if self.weight == 0 {
            0.0
        } else {
            (self.positives as f64 / self.weight as f64) as f32
        }
    }

    /// Σ class_weight² / weight. Maximising its sum over two children minimises their
    /// weighted Gini impurity, without computing the impurity itself.
    fn purity(self) -> f64 {
        if self.weight == 0 {
            return 0.0;
        }
        let p = self.positives as f64;
        let n = (self.weight - self.positives) as f64;
        (p * p + n * n) / self.weight as f64
    }

    /// Weight × Gini impurity: what a split removes from this is its importance.
    fn impurity_mass(self) -> f64 {
        self.weight as f64 - self.purity()
    }
}

/// The best split found so far at a node.
#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    threshold: f32,
    purity: f64,
}

/// What searching one feature at a node found.
enum FeatureSearch {
    /// Every sample has the same value: the feature does not count as searched.
    Constant,
    /// No threshold leaves enough samples on both sides.
    NoValidSplit,
    /// The best threshold for this feature.
    Found(Split),
}

/// A node waiting to be grown: its rows are `rows[start..end]`.
struct Pending {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    stats: Stats,
}

/// A grown tree and the Gini decrease each feature brought to it (not normalized).
pub(crate) struct GrownTree {
    pub(crate) tree: Tree,
    pub(crate) importances: Vec<f64>,
}

/// Grows trees one after another on one thread, reusing its buffers.
pub(crate) struct TreeBuilder<'a> {
    data: &'a TrainData<'a>,
    limits: GrowLimits,
    /// Bootstrap draws per row.
    weights: Vec<u32>,
    /// Rows with a non-zero weight, partitioned node by node.
    rows: Vec<u32>,
    /// Feature indices, shuffled a prefix at a time at each node.
    features: Vec<usize>,
    /// `order_key(value) << 32 | row` for the node and feature being searched.
    sorted: Vec<u64>,
}

impl<'a> TreeBuilder<'a> {
    pub(crate) fn new(data: &'a TrainData<'a>, limits: GrowLimits) -> Self {
        Self {
            data,
            limits,
            weights: vec![0; data.n_rows],
            rows: Vec::with_capacity(data.n_rows),
            features: (0..data.n_features).collect(),
            sorted: Vec::with_capacity(data.n_rows),
        }
    }

    /// Grows one tree; the result depends only on the data, the limits and `seed`.
    pub(crate) fn grow(&mut self, seed: u64) -> GrownTree {
        let mut rng = SplitMix64::new(seed);
        self.draw_sample(&mut rng);
        // A fresh order, so that a tree does not depend on the ones grown before it here.
        self.features
            .iter_mut()
            .enumerate()
            .for_each(|(i, f)| *f = i);

        let mut root = Stats::default();
        for &row in &self.rows {
            root.add(self.weights[row as usize], self.data.labels[row as usize]);
        }
        let mut nodes = vec![Node::leaf(root.value())];
        let mut importances = vec![0.0; self.data.n_features];
        let mut stack = vec![Pending {
            node: 0,
            start: 0,
            end: self.rows.len(),
            depth: 0,
            stats: root,
        }];

        while let Some(pending) = stack.pop() {
            let value = pending.stats.value();
            let Some(split) = self.find_split(&pending, &mut rng) else {
                nodes[pending.node] = Node::leaf(value);
                continue;
            };
            let (mid, left) = self.partition(&pending, &split);
            let right = pending.stats.minus(left);
            if left.weight == 0 || right.weight == 0 {
                // Unreachable: the threshold lies strictly between two sampled values.
                nodes[pending.node] = Node::leaf(value);
                continue;
            }
            // Never negative in exact arithmetic (Gini is concave); clamp the rounding.
            let decrease =
                pending.stats.impurity_mass() - left.impurity_mass() - right.impurity_mass();
            importances[split.feature] += decrease.max(0.0);

            // Children go after every existing node, so child index > parent index. At most
            // 2 × MAX_TRAINING_ROWS nodes exist, which fits in u32.
            let left_node = nodes.len();
            nodes.push(Node::leaf(left.value()));
            nodes.push(Node::leaf(right.value()));
            nodes[pending.node] = Node {
                feature: split.feature as u32,
                threshold: split.threshold,
                left: left_node as u32,
                right: (left_node + 1) as u32,
                value,
            };
            let depth = pending.depth + 1;
            stack.push(Pending {
                node: left_node + 1,
                start: mid,
                end: pending.end,
                depth,
                stats: right,
            });
            stack.push(Pending {
                node: left_node,
                start: pending.start,
                end: mid,
                depth,
                stats: left,
            });
        }
        GrownTree {
            tree: Tree::from_trusted_nodes(nodes),
            importances,
        }
    }

    /// Draws the bootstrap sample (or takes every row once) and lists the rows drawn.
    fn draw_sample(&mut self, rng: &mut SplitMix64) {
        let n = self.data.n_rows;
        if self.limits.bootstrap {
            self.weights.fill(0);
            for _ in 0..n {
                self.weights[rng.below(n)] += 1;
            }
        } else {
            self.weights.fill(1);
        }
        self.rows.clear();
        // n <= MAX_TRAINING_ROWS < u32::MAX.
        self.rows
            .extend((0..n as u32).filter(|&r| self.weights[r as usize] > 0));
    }

    /// The best split of a node over a random subset of features, or `None` to make it a
    /// leaf.
    ///
    /// Features are drawn without replacement until `max_features` non-constant ones have
    /// been searched (constant features do not count, as in scikit-learn). Any valid split
    /// is taken, even one that does not lower the impurity: a first split with no gain is
    /// what lets a tree learn XOR-like interactions.
    fn find_split(&mut self, node: &Pending, rng: &mut SplitMix64) -> Option<Split> {
        let limits = self.limits;
        let can_split = !node.stats.is_pure()
            && node.end - node.start >= 2
            && node.stats.weight >= limits.min_samples_split
            && node.stats.weight >= 2 * limits.min_samples_leaf
            && node.depth < limits.max_depth;
        if !can_split {
            return None;
        }
        let n_features = self.features.len();
        let mut best: Option<Split> = None;
        let mut searched = 0;
        for i in 0..n_features {
            let j = i + rng.below(n_features - i);
            self.features.swap(i, j);
            match self.search_feature(self.features[i], node) {
                FeatureSearch::Constant => continue,
                FeatureSearch::NoValidSplit => {}
                FeatureSearch::Found(split) => {
                    if best.is_none_or(|b| split.purity > b.purity) {
                        best = Some(split);
                    }
                }
            }
            searched += 1;
            if searched >= limits.max_features {
                break;
            }
        }
        best
    }

    /// The best threshold on `feature` for the node's rows: sort them by value, then sweep
    /// once, moving one row at a time to the left side.
    fn search_feature(&mut self, feature: usize, node: &Pending) -> FeatureSearch {
        let column = self.data.column(feature);
        let key = |packed: u64| (packed >> 32) as u32;
        let row = |packed: u64| (packed & u64::from(u32::MAX)) as usize;

        self.sorted.clear();
        self.sorted.extend(
            self.rows[node.start..node.end]
                .iter()
                .map(|&r| u64::from(order_key(column[r as usize])) << 32 | u64::from(r)),
        );
        self.sorted.sort_unstable();
        let (Some(&first), Some(&last)) = (self.sorted.first(), self.sorted.last()) else {
            return FeatureSearch::Constant;
        };
        if key(first) == key(last) {
            return FeatureSearch::Constant;
        }

        let min_leaf = self.limits.min_samples_leaf;
        let mut left = Stats::default();
        let mut best: Option<Split> = None;
        for pair in self.sorted.windows(2) {
            let (below, above) = (row(pair[0]), row(pair[1]));
            left.add(self.weights[below], self.data.labels[below]);
            if key(pair[0]) == key(pair[1]) {
                continue;
            }
            let right = node.stats.minus(left);
            if right.weight < min_leaf {
                break;
            }
            if left.weight < min_leaf {
                continue;
            }
            let purity = left.purity() + right.purity();
            if best.is_some_and(|b| purity <= b.purity) {
                continue;
            }
            if let Some(threshold) = split_threshold(column[below], column[above]) {
                best = Some(Split {
                    feature,
                    threshold,
                    purity,
                });
            }
        }
        best.map_or(FeatureSearch::NoValidSplit, FeatureSearch::Found)
    }

    /// Moves the node's rows that go left to the front of its range; returns where the right
    /// side starts and the left side's stats.
    fn partition(&mut self, node: &Pending, split: &Split) -> (usize, Stats) {
        let column = self.data.column(split.feature);
        let rows = &mut self.rows[node.start..node.end];
        let mut left = Stats::default();
        let mut mid = 0;
        for i in 0..rows.len() {
            let r = rows[i] as usize;
            if goes_left(column[r], split.threshold) {
                left.add(self.weights[r], self.data.labels[r]);
                rows.swap(i, mid);
                mid += 1;
            }
        }
        (node.start + mid, left)
    }
}

/// A finite threshold `t` that sends `lower` left and `upper` right under [`goes_left`],
/// where `upper` is a number that sorts strictly after `lower` (a number or `NaN`).
///
/// The midpoint when it is representable and strictly below `upper`; otherwise `lower`
/// itself. When `lower` is `NaN` or −∞, the smallest finite float, so that a split on
/// missingness sends every number (even one below those seen in training) right. `None`
/// when no finite threshold separates them (`upper` is −∞ or the smallest finite float):
/// model files never hold an infinite threshold.
fn split_threshold(lower: f32, upper: f32) -> Option<f32> {
    if lower.is_finite() {
        let mid = lower / 2.0 + upper / 2.0;
        Some(if mid.is_finite() && lower <= mid && mid < upper {
            mid
        } else {
            lower
        })
    } else {
        (f32::MIN < upper).then_some(f32::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_separate_neighbours() {
        let pairs = [
            (1.0, 2.0),
            (-3.0, -2.5),
            (-0.0, f32::MIN_POSITIVE),
            (f32::MAX, f32::INFINITY),
            (f32::MIN, f32::MAX),
            (1.0, 1.0_f32.next_up()),
            (f32::NAN, 0.0),
            (f32::NEG_INFINITY, 5.0),
            (f32::NAN, f32::INFINITY),
        ];
        for (lower, upper) in pairs {
            let t = split_threshold(lower, upper).unwrap();
            assert!(t.is_finite(), "{lower} {upper} -> {t}");
            assert!(goes_left(lower, t), "{lower} {upper} -> {t}");
            assert!(!goes_left(upper, t), "{lower} {upper} -> {t}");
        }
        assert_eq!(split_threshold(1.0, 2.0), Some(1.5));
        assert_eq!(split_threshold(f32::NAN, 1e-30), Some(f32::MIN));
        assert_eq!(split_threshold(f32::NAN, f32::NEG_INFINITY), None);
        assert_eq!(split_threshold(f32::NAN, f32::MIN), None);
    }

    #[test]
    fn purity_prefers_cleaner_splits() {
        let mixed = Stats {
            weight: 4,
            positives: 2,
        };
        let pure = Stats {
            weight: 2,
            positives: 0,
        };
        assert!(pure.purity() + pure.purity() > mixed.purity() / 2.0 + mixed.purity() / 2.0);
        assert_eq!(mixed.impurity_mass(), 2.0); // 4 × Gini 0.5
        assert_eq!(pure.impurity_mass(), 0.0);
    }
}
