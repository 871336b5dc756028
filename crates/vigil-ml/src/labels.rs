//! Checks on binary label vectors shared by training, metrics and cross-validation.

use crate::MlError;

/// Counts of each class in a label vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClassCounts {
    pub(crate) negatives: usize,
    pub(crate) positives: usize,
}

/// Counts the classes, failing on a label other than 0 or 1.
pub(crate) fn count_classes(labels: &[u8]) -> Result<ClassCounts, MlError> {
    let mut positives = 0;
    for (index, &value) in labels.iter().enumerate() {
        match value {
            0 => {}
            1 => positives += 1,
            _ => return Err(MlError::BadLabel { index, value }),
        }
    }
    Ok(ClassCounts {
        negatives: labels.len() - positives,
        positives,
    })
}

/// Like [`count_classes`], and also fails when the labels are empty or of one class only.
pub(crate) fn require_both_classes(labels: &[u8]) -> Result<ClassCounts, MlError> {
    let counts = count_classes(labels)?;
    match (counts.negatives, counts.positives) {
        (0, 0) => Err(MlError::Empty),
        (0, _) => Err(MlError::OneClass { class: 1 }),
        (_, 0) => Err(MlError::OneClass { class: 0 }),
        _ => Ok(counts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rejects() {
        assert_eq!(
            require_both_classes(&[0, 1, 1]),
            Ok(ClassCounts {
                negatives: 1,
                positives: 2
            })
        );
        assert_eq!(require_both_classes(&[]), Err(MlError::Empty));
        assert_eq!(
            require_both_classes(&[1, 1]),
            Err(MlError::OneClass { class: 1 })
        );
        assert_eq!(
            count_classes(&[0, 2]),
            Err(MlError::BadLabel { index: 1, value: 2 })
        );
    }
}
