//! Training: the networks, the SBD losses, the hypergradients, the backends and Algorithm 1.

pub mod augmented;
pub mod backend;
pub mod bilevel;
pub mod lbfgs;
pub mod linalg;
pub mod mlp;
pub mod objective;
pub mod trainer;
