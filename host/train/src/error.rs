//! Errors of the training engine.

/// Why training, evaluation or export failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The configuration is unusable.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// Parameters became NaN or infinite.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// The device a backend runs on failed (no adapter, device lost, out of memory).
    #[error("{0}")]
    Device(String),
    /// Domain data could not be read or prepared.
    #[error(transparent)]
    Data(#[from] crate::domains::finance::DataError),
    /// Medical data could not be read or prepared.
    #[error(transparent)]
    Medical(#[from] crate::domains::medical::MedicalError),
    /// The synthetic education data could not be generated or prepared.
    #[error("education domain: {0}")]
    Education(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Encoding or decoding weights or logs failed.
    #[error("{0}")]
    Encoding(String),
    /// Drawing a plot failed.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The image file.
        path: String,
        /// The cause.
        message: String,
    },
}
