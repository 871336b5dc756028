//! The crate's one error type.

/// Why a matrix could not be built, a model trained or loaded, or data evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MlError {
    /// The number of values does not match the stated shape.
    #[error("{len} values cannot fill a {n_rows} × {n_cols} matrix")]
    Shape {
        /// Values supplied.
        len: usize,
        /// Rows stated.
        n_rows: usize,
        /// Columns stated.
        n_cols: usize,
    },
    /// The stated shape does not fit in memory addresses.
    #[error("a {n_rows} × {n_cols} matrix is too large")]
    TooLarge {
        /// Rows stated.
        n_rows: usize,
        /// Columns stated.
        n_cols: usize,
    },
    /// Rows of different lengths.
    #[error("row {row} has {len} values, but the first row has {expected}")]
    RaggedRows {
        /// Index of the first offending row.
        row: usize,
        /// Its length.
        len: usize,
        /// The first row's length.
        expected: usize,
    },
    /// A row index past the end of a matrix.
    #[error("row index {index} is out of range for {n_rows} rows")]
    RowOutOfRange {
        /// The index asked for.
        index: usize,
        /// Rows in the matrix.
        n_rows: usize,
    },
    /// Nothing to train on or evaluate.
    #[error("no rows: at least one sample is needed")]
    Empty,
    /// A matrix without columns.
    #[error("no features: the matrix has zero columns")]
    NoFeatures,
    /// More rows than the trainer can index.
    #[error("{n_rows} rows is more than the {max} a forest can be trained on")]
    TooManyRows {
        /// Rows supplied.
        n_rows: usize,
        /// The limit.
        max: usize,
    },
    /// Labels (or scores) and rows disagree in number.
    #[error("got {got} labels for {expected} rows")]
    LabelCount {
        /// Labels supplied.
        got: usize,
        /// Rows (or scores) they should match.
        expected: usize,
    },
    /// A label other than 0 or 1.
    #[error("label {value} at index {index}: labels must be 0 (negative) or 1 (positive)")]
    BadLabel {
        /// Position of the label.
        index: usize,
        /// The label found.
        value: u8,
    },
    /// Every label is the same, so there is nothing to separate or no rate to measure.
    #[error("every label is {class}: both classes (0 and 1) are needed")]
    OneClass {
        /// The only class present.
        class: u8,
    },
    /// A class has fewer samples than there are folds.
    #[error("class {class} has {count} samples, fewer than the {k} folds asked for")]
    TooFewSamples {
        /// The class.
        class: u8,
        /// Its samples.
        count: usize,
        /// Folds asked for.
        k: usize,
    },
    /// A row given to a model has the wrong number of features.
    #[error("the row has {got} features, the model expects {expected}")]
    RowLength {
        /// Features supplied.
        got: usize,
        /// Features the model was trained on.
        expected: usize,
    },
    /// A parameter outside its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter's name as written in configuration.
        name: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A serialized model that cannot be right.
    #[error("corrupt model: {0}")]
    CorruptModel(String),
    /// Malformed CSV training data.
    #[error("CSV line {line}: {reason}")]
    Csv {
        /// 1-based line number in the input.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}
