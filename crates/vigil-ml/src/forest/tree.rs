//! One decision tree: its nodes, prediction, and its validated flat-array file form.

use serde::{Deserialize, Serialize};

/// A node. A leaf has `left == 0`: the root is node 0 and children always come after their
/// parent, so 0 is never a child.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Node {
    /// Feature tested by a split node.
    pub(crate) feature: u32,
    /// A sample goes left when its feature is `NaN` or `<= threshold`. Always finite.
    pub(crate) threshold: f32,
    /// Left child, or 0 for a leaf.
    pub(crate) left: u32,
    /// Right child (0 for a leaf).
    pub(crate) right: u32,
    /// Fraction of positives among the node's training samples.
    pub(crate) value: f32,
}

impl Node {
    pub(crate) fn leaf(value: f32) -> Self {
        Self {
            feature: 0,
            threshold: 0.0,
            left: 0,
            right: 0,
            value,
        }
    }

    fn is_leaf(&self) -> bool {
        self.left == 0
    }
}

/// Whether a sample with feature value `x` goes to the left child of a split at `threshold`.
/// `NaN` (missing) always goes left.
pub(crate) fn goes_left(x: f32, threshold: f32) -> bool {
    x.is_nan() || x <= threshold
}

/// A decision tree whose structure has been checked: every child index is in range and
/// greater than its parent's, so prediction always terminates without a bounds failure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    /// Wraps nodes built by the trainer, which upholds the invariants by construction.
    pub(crate) fn from_trusted_nodes(nodes: Vec<Node>) -> Self {
        debug_assert!(validate_nodes(&nodes, usize::MAX).is_ok());
        Self { nodes }
    }

    /// The leaf value `row` reaches. `row` must have at least as many features as the tree
    /// was validated against (the forest checks this).
    pub(crate) fn predict(&self, row: &[f32]) -> f32 {
        let mut node = &self.nodes[0];
        while !node.is_leaf() {
            let next = if goes_left(row[node.feature as usize], node.threshold) {
                node.left
            } else {
                node.right
            };
            node = &self.nodes[next as usize];
        }
        node.value
    }

    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

/// A tree as stored in a model file: one array per node field, indexed by node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TreeRepr {
    feature: Vec<u32>,
    threshold: Vec<f32>,
    left: Vec<u32>,
    right: Vec<u32>,
    value: Vec<f32>,
}

impl From<&Tree> for TreeRepr {
    fn from(tree: &Tree) -> Self {
        let nodes = &tree.nodes;
        Self {
            feature: nodes.iter().map(|n| n.feature).collect(),
            threshold: nodes.iter().map(|n| n.threshold).collect(),
            left: nodes.iter().map(|n| n.left).collect(),
            right: nodes.iter().map(|n| n.right).collect(),
            value: nodes.iter().map(|n| n.value).collect(),
        }
    }
}

impl TreeRepr {
    /// Checks the arrays and builds the tree; `n_features` bounds the feature indices.
    pub(crate) fn into_tree(self, n_features: usize) -> Result<Tree, String> {
        let len = self.feature.len();
        let lens = [
            self.threshold.len(),
            self.left.len(),
            self.right.len(),
            self.value.len(),
        ];
        if lens.iter().any(|&l| l != len) {
            return Err(format!(
                "node arrays differ in length (feature {len}, threshold {}, left {}, right {}, value {})",
                lens[0], lens[1], lens[2], lens[3]
            ));
        }
        let nodes: Vec<Node> = (0..len)
            .map(|i| Node {
                feature: self.feature[i],
                threshold: self.threshold[i],
                left: self.left[i],
                right: self.right[i],
                value: self.value[i],
            })
            .collect();
        validate_nodes(&nodes, n_features)?;
        Ok(Tree { nodes })
    }
}

/// Checks the invariants prediction relies on, plus that the nodes form one tree.
fn validate_nodes(nodes: &[Node], n_features: usize) -> Result<(), String> {
    if nodes.is_empty() {
        return Err("a tree has no nodes".to_owned());
    }
    if u32::try_from(nodes.len()).is_err() {
        return Err(format!("{} nodes is too many for one tree", nodes.len()));
    }
    let mut has_parent = vec![false; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let fail = |reason: String| Err(format!("node {i}: {reason}"));
        if !(node.value.is_finite() && (0.0..=1.0).contains(&node.value)) {
            return fail(format!("value {} is not a probability", node.value));
        }
        if node.is_leaf() {
            if node.right != 0 {
                return fail(format!("a leaf (left = 0) has right child {}", node.right));
            }
            continue;
        }
        if node.feature as usize >= n_features {
            return fail(format!(
                "feature {} is out of range for {n_features} features",
                node.feature
            ));
        }
        if !node.threshold.is_finite() {
            return fail(format!("threshold {} is not finite", node.threshold));
        }
        for (side, child) in [("left", node.left), ("right", node.right)] {
            let child = child as usize;
            if child >= nodes.len() {
                return fail(format!(
                    "{side} child {child} is out of range for {} nodes",
                    nodes.len()
                ));
            }
            if child <= i {
                return fail(format!(
                    "{side} child {child} does not come after its parent (a cycle or a shared node)"
                ));
            }
            if std::mem::replace(&mut has_parent[child], true) {
                return fail(format!("node {child} has two parents"));
            }
        }
    }
    if let Some(orphan) = has_parent.iter().skip(1).position(|&p| !p) {
        return Err(format!("node {} is unreachable from the root", orphan + 1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(feature: u32, threshold: f32, left: u32, right: u32) -> Node {
        Node {
            feature,
            threshold,
            left,
            right,
            value: 0.5,
        }
    }

    fn stump() -> Vec<Node> {
        vec![split(0, 1.5, 1, 2), Node::leaf(0.0), Node::leaf(1.0)]
    }

    #[test]
    fn predicts_and_sends_nan_left() {
        let tree = Tree::from_trusted_nodes(stump());
        assert_eq!(tree.predict(&[1.0]), 0.0);
        assert_eq!(tree.predict(&[1.5]), 0.0);
        assert_eq!(tree.predict(&[2.0]), 1.0);
        assert_eq!(tree.predict(&[f32::INFINITY]), 1.0);
        assert_eq!(tree.predict(&[f32::NEG_INFINITY]), 0.0);
        assert_eq!(tree.predict(&[f32::NAN]), 0.0);
    }

    #[test]
    fn valid_tree_round_trips() {
        let tree = Tree::from_trusted_nodes(stump());
        let back = TreeRepr::from(&tree).into_tree(1).unwrap();
        assert_eq!(back, tree);
    }

    #[test]
    fn rejects_broken_structures() {
        let cases: Vec<(Vec<Node>, &str)> = vec![
            (vec![], "no nodes"),
            (
                vec![split(0, 1.0, 1, 3), Node::leaf(0.0), Node::leaf(1.0)],
                "out of range",
            ),
            (
                vec![
                    split(0, 1.0, 1, 2),
                    split(0, 1.0, 3, 1),
                    Node::leaf(0.0),
                    Node::leaf(1.0),
                ],
                "right child 1 does not come after its parent",
            ),
            (vec![split(0, 1.0, 1, 1), Node::leaf(0.0)], "two parents"),
            (
                vec![split(5, 1.0, 1, 2), Node::leaf(0.0), Node::leaf(1.0)],
                "feature 5",
            ),
            (
                vec![split(0, f32::NAN, 1, 2), Node::leaf(0.0), Node::leaf(1.0)],
                "threshold",
            ),
            (vec![Node::leaf(1.5)], "not a probability"),
            (vec![Node::leaf(0.5), Node::leaf(0.5)], "unreachable"),
            (
                vec![
                    Node {
                        right: 1,
                        ..Node::leaf(0.5)
                    },
                    Node::leaf(0.5),
                ],
                "a leaf",
            ),
        ];
        for (nodes, expected) in cases {
            let err = validate_nodes(&nodes, 2).unwrap_err();
            assert!(err.contains(expected), "{err} (expected {expected})");
        }
    }

    #[test]
    fn rejects_arrays_of_different_lengths() {
        let mut repr = TreeRepr::from(&Tree::from_trusted_nodes(stump()));
        repr.value.pop();
        let err = repr.into_tree(1).unwrap_err();
        assert!(err.contains("differ in length"), "{err}");
    }
}
